"""One follower's ZabPeer, driven by hand: what it must not take from its
leader while it is rejoining.

Found on real processes (tests/ensemble/test_processes.py, a follower cut off
and let back in with the held traffic delivered): the follower timed out and
went LOOKING while the leader, kept from timing it out by the delivered
backlog, went on broadcasting to it.  LOOKING, the follower dropped those
proposals; back FOLLOWING the same leader it took the later ones before the
leader had answered its FOLLOWERINFO, leaving a gap in its log that the DIFF
(from its new last zxid) never filled: acknowledged writes missing on it."""

from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.zab.peer import DISCOVERY, ESTABLISHED, FOLLOWING, LEADING, LOOKING, ZabPeer
from zkpy.zab.messages import (
    DIFF, AckEpoch, Commit, FollowerInfo, LeaderInfo, Log, NewLeader, Ping, Proposal, Send,
    Sync, UpToDate, Vote,
)
from zkpy.zab.quorum import QuorumConfig, make_zxid

TICK = 100


def txn(zxid):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.ERROR, (-101,))


def drive(peer):
    """Carry out the effects a driver would: every log write becomes durable."""
    while peer.out:
        for eff in peer.take():
            if type(eff) is Log:
                for t in eff.txns:
                    peer.logged(t.zxid)


def follower_of_3():
    p = ZabPeer(1, QuorumConfig.of([1, 2, 3]), now=0, tick_ms=TICK, init_limit=10, sync_limit=5)
    p.start()
    drive(p)
    join(p, epoch=1)
    return p


def join(p, epoch):
    # Peer 3 leads, peer 2 follows it: peer 1 joins.
    p.receive(2, Vote(epoch - 1, 0, 3, 1, FOLLOWING))
    p.receive(3, Vote(epoch - 1, 0, 3, 1, LEADING))
    assert p.role == FOLLOWING and p.follow_phase == DISCOVERY
    drive(p)
    p.receive(3, LeaderInfo(epoch, p.follow_attempt))
    drive(p)
    p.receive(3, Sync(DIFF, p.last_logged, [], p.last_logged))
    p.receive(3, NewLeader(make_zxid(epoch, 0)))
    drive(p)
    p.receive(3, UpToDate())
    drive(p)
    assert p.follow_phase == ESTABLISHED and p.serving


def test_leftovers_of_an_earlier_following_leave_no_gap():
    p = follower_of_3()
    z = [make_zxid(1, i) for i in range(1, 7)]
    p.receive(3, Proposal(txn(z[0])))
    p.receive(3, Commit(z[0]))
    drive(p)
    assert p.last_applied == z[0]
    # The leader goes silent (a partition): the follower gives up on it.
    p.tick(p.now + 6 * TICK + 1)
    drive(p)
    assert p.role == LOOKING
    # What the leader sent meanwhile arrives: dropped while LOOKING...
    p.receive(3, Proposal(txn(z[1])))
    p.receive(3, Proposal(txn(z[2])))
    # ...the follower rejoins the same leader (same epoch, it still leads)...
    p.receive(2, Vote(1, z[0], 3, 1, FOLLOWING))
    p.receive(3, Vote(1, z[0], 3, 1, LEADING))
    assert p.role == FOLLOWING and p.follow_phase == DISCOVERY
    drive(p)
    # ...and the rest of the leftovers must not be taken as a continuation.
    p.receive(3, Proposal(txn(z[3])))
    p.receive(3, Commit(z[3]))
    drive(p)
    assert p.last_logged == z[0] and p.last_applied == z[0]
    # The leader answers: the sync starts from what the follower really holds.
    p.receive(3, LeaderInfo(1, p.follow_attempt))
    out = p.take()
    assert Send(3, AckEpoch(p.current_epoch, z[0])) in out


def test_pings_still_answered_while_rejoining():
    p = follower_of_3()
    p.tick(p.now + 6 * TICK + 1)
    drive(p)
    p.receive(2, Vote(1, 0, 3, 1, FOLLOWING))
    p.receive(3, Vote(1, 0, 3, 1, LEADING))
    p.take()
    p.receive(3, Ping())
    assert Send(3, Ping()) in p.take()


def test_a_peer_that_follows_another_turns_a_would_be_follower_away():
    """Peers 1 and 2 agreed on 2; before 2 decided, peer 3 came up and 2 went
    with it.  Peer 1, already FOLLOWING 2, must not wait out initLimit for an
    answer that never comes: 2 tells it whom it follows, and 1 looks again
    and joins the real leader."""
    two = ZabPeer(2, QuorumConfig.of([1, 2, 3]), now=0, tick_ms=TICK, init_limit=10,
                  sync_limit=5)
    two.start()
    two.receive(3, Vote(0, 0, 3, 1, LEADING))
    two.receive(1, Vote(0, 0, 3, 1, FOLLOWING))
    assert two.role == FOLLOWING and two.leader_id == 3
    two.take()
    two.receive(1, FollowerInfo(0, 0, False, 1))
    answer = [eff.msg for eff in two.take() if type(eff) is Send and eff.to == 1]
    assert answer and type(answer[0]) is Vote and answer[0].leader == 3 \
        and answer[0].state == FOLLOWING

    one = ZabPeer(1, QuorumConfig.of([1, 2, 3]), now=0, tick_ms=TICK, init_limit=10,
                  sync_limit=5)
    one.start()
    one.receive(2, Vote(0, 0, 2, 1, LOOKING))
    one.tick(1000)
    assert one.role == FOLLOWING and one.leader_id == 2 and one.follow_phase == DISCOVERY
    one.take()
    one.receive(2, answer[0])
    assert one.role == LOOKING
    one.take()
    one.receive(2, Vote(0, 0, 3, 1, FOLLOWING))
    one.receive(3, Vote(0, 0, 3, 1, LEADING))
    assert one.role == FOLLOWING and one.leader_id == 3


def follower_in_discovery(**limits):
    p = ZabPeer(1, QuorumConfig.of([1, 2, 3]), now=0, tick_ms=TICK, init_limit=10, sync_limit=5,
                **limits)
    p.start()
    drive(p)
    p.receive(2, Vote(0, 0, 3, 1, FOLLOWING))
    p.receive(3, Vote(0, 0, 3, 1, LEADING))
    assert p.role == FOLLOWING and p.follow_phase == DISCOVERY
    drive(p)
    return p


def test_connect_to_learner_master_limit_bounds_the_wait_for_the_leader():
    """connectToLearnerMasterLimit: a follower whose leader has not answered
    its FOLLOWERINFO within that many ticks looks again; without it, the
    follower waits initLimit ticks."""
    p = follower_in_discovery(connect_limit=3)
    start = p.now
    p.tick(start + 3 * TICK + 1)
    assert p.role == LOOKING

    p = follower_in_discovery()
    start = p.now
    p.tick(start + 3 * TICK + 1)
    assert p.role == FOLLOWING
    p.tick(start + 10 * TICK + 1)
    assert p.role == LOOKING


def test_connect_to_learner_master_limit_ends_with_the_leaders_answer():
    # Once the leader has answered, syncing has initLimit, as before.
    p = follower_in_discovery(connect_limit=3)
    p.receive(3, LeaderInfo(1, p.follow_attempt))
    drive(p)
    start = p.now
    p.tick(start + 5 * TICK)
    assert p.role == FOLLOWING
