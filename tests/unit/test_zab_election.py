"""Election without a network: when may a looking peer decide?

As FastLeaderElection, a peer that sees a quorum agree with its vote waits a
moment (finalizeWait) for a better vote.  But when every voter that can be
heard has voted, and for the same peer, there is nothing left to wait for:
a voter whose link is down (a killed leader) cannot send a better vote, and
comes back to an elected leader.  So the survivors of a leader's crash decide
at once."""

from zkpy.zab.messages import Send, Vote
from zkpy.zab.peer import FOLLOWING, LEADING, LOOKING, ZabPeer
from zkpy.zab.quorum import QuorumConfig

TICK = 100


def looking(pid, voters=(1, 2, 3), zxid=0):
    p = ZabPeer(pid, QuorumConfig.of(list(voters)), now=0, tick_ms=TICK, init_limit=10,
                sync_limit=5, finalize_ms=200, base_zxid=zxid)
    p.start()
    p.take()
    return p


def test_the_survivors_of_a_crash_decide_without_waiting():
    p = looking(1)
    p.link_down(3)                                  # the old leader: gone
    p.receive(2, Vote(0, 0, 2, 1, LOOKING))          # 2's vote beats ours (higher id)
    assert p.role == FOLLOWING and p.leader_id == 2   # no tick, no finalize wait


def test_a_peer_that_can_be_heard_is_waited_for():
    p = looking(1)
    p.receive(2, Vote(0, 0, 2, 1, LOOKING))          # 3 has not voted, but may
    assert p.role == LOOKING
    p.tick(150)
    assert p.role == LOOKING                          # still within finalizeWait
    p.tick(250)
    assert p.role == FOLLOWING and p.leader_id == 2


def test_a_link_going_down_ends_the_wait():
    p = looking(1)
    p.receive(2, Vote(0, 0, 2, 1, LOOKING))
    assert p.role == LOOKING
    p.link_down(3)
    assert p.role == FOLLOWING and p.leader_id == 2


def test_a_silent_peer_heard_again_is_waited_for_again():
    p = looking(2)
    p.link_down(3)
    p.receive(3, Vote(0, 0, 1, 1, LOOKING))          # 3 is back, and votes for 1
    p.receive(1, Vote(0, 0, 2, 1, LOOKING))          # 1 agrees with us; 3 does not
    assert p.role == LOOKING
    p.receive(3, Vote(0, 0, 2, 1, LOOKING))          # now every voter agrees
    assert p.role == LEADING


def test_no_quorum_no_decision():
    p = looking(1)
    p.link_down(2)
    p.link_down(3)
    p.tick(1000)
    assert p.role == LOOKING


def _votes_to(peer, to):
    return [e.msg for e in peer.take() if isinstance(e, Send) and e.to == to
            and isinstance(e.msg, Vote)]


def test_a_better_vote_is_told_to_a_peer_that_missed_it():
    """The old leader dies; 3 notices first and broadcasts its vote while 1
    is still following (1 answers with its old leader).  Then 1 notices,
    looks, and votes for itself: 3 must tell it its better vote at once, not
    at its next re-broadcast (up to tickTime/2 later)."""
    three = looking(3)
    three.link_down(2)
    three.receive(1, Vote(0, 0, 2, 0, FOLLOWING))     # 1 still follows 2
    assert three.role == LOOKING
    three.take()
    one = looking(1)                                   # now 1 looks too,
    one.link_down(2)
    three.receive(1, Vote(0, 0, 1, 1, LOOKING))        # for itself: worse than 3's vote
    (reply,) = _votes_to(three, 1)
    assert (reply.leader, reply.state) == (3, LOOKING)
    one.receive(3, reply)
    assert one.role == FOLLOWING and one.leader_id == 3   # no tick needed
    (agreed,) = _votes_to(one, 3)
    three.receive(1, agreed)
    assert three.role == LEADING


def test_an_equal_vote_is_not_answered():
    p = looking(2)
    p.receive(1, Vote(0, 0, 2, 1, LOOKING))
    assert _votes_to(p, 1) == []
