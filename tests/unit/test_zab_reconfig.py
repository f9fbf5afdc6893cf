"""Reconfiguration in ZabPeer, driven by hand: a reconfig txn is committed
only by a quorum of the old and of the new configuration (and so is every
proposal after it until then); a leader that leaves names the next one and
commits nothing more; a learner takes the leader's view of what is pending."""

from tests.support.zab import establish_leader
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.server.membership import read_config
from zkpy.zab.messages import (
    DIFF, Ack, Commit, LeaderInfo, Log, NewLeader, Proposal,
    Reconfigured, Send, Sync, UpToDate, Vote,
)
from zkpy.zab.peer import ESTABLISHED, FOLLOWING, LEADING, LOOKING, ZabPeer
from zkpy.zab.quorum import make_zxid

TICK = 100


def text(voters, observers=(), version=0) -> bytes:
    lines = [f"server.{i}=127.0.0.1:{2880 + i}:{3880 + i}:participant;127.0.0.1:{2180 + i}"
             for i in voters]
    lines += [f"server.{i}=127.0.0.1:{2880 + i}:{3880 + i}:observer;127.0.0.1:{2180 + i}"
              for i in observers]
    return "\n".join(sorted(lines) + [f"version={version:x}"]).encode()


def write(zxid):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.ERROR, (-101,))


def reconfig(zxid, voters, observers=()):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.RECONFIG,
               ("/zookeeper/config", text(voters, observers, zxid), -1))


def sends(out, kind):
    return [(eff.to, eff.msg) for eff in out if type(eff) is Send and type(eff.msg) is kind]


def peer(pid, voters, **kw):
    t = text(voters)
    return ZabPeer(pid, read_config(t), now=0, tick_ms=TICK, init_limit=10, sync_limit=5,
                   read_config=read_config, config_text=t, **kw)


def leader(voters=(1, 2, 3), learners=(1, 2, 4, 5)):
    """Peer 3 leads voters in epoch 1; learners (voters or not) are synced."""
    return establish_leader(peer(3, voters), voters, learners)


def propose(p, make, *args):
    z = p.next_zxid()
    p.propose_all([make(z, *args)])
    p.logged(z)
    return z


def committed(p) -> int:
    p.take()
    return p.commit_point


def test_a_reconfig_commits_only_with_a_quorum_of_the_old_and_of_the_new_configuration():
    p = leader()
    z = propose(p, reconfig, (1, 2, 3, 4, 5))
    w = propose(p, write)
    before = committed(p)
    # 3, 4 and 5 are a quorum of the new five, not of the old three.
    p.receive(4, Ack(w))
    p.receive(5, Ack(w))
    assert committed(p) == before
    assert p.quorum.voters == {1, 2, 3}
    # 1 makes {1, 3} of the old three as well: both are committed.
    p.receive(1, Ack(w))
    out = p.take()
    assert p.commit_point == w
    assert p.quorum.voters == {1, 2, 3, 4, 5} and p.quorum.version == z
    assert Reconfigured(text((1, 2, 3, 4, 5), (), z), True) in out


def test_a_proposal_after_a_pending_reconfig_needs_both_quorums_too():
    p = leader()
    z = propose(p, reconfig, (1, 2, 3, 4, 5))
    w = propose(p, write)
    # The old quorum alone ({1, 2, 3}) acks the write but not the new one.
    p.receive(1, Ack(z))
    p.receive(2, Ack(w))
    assert committed(p) == z      # the reconfig itself: {1, 2, 3} of both
    p.receive(1, Ack(w))
    p.receive(4, Ack(w))
    assert committed(p) == w      # in force now: {1, 2, 3, 4} of five


def test_a_leader_removed_names_the_next_one_and_commits_nothing_more():
    p = leader(voters=(1, 2, 3), learners=(1, 2))
    z = propose(p, reconfig, (1, 2))
    w = propose(p, write)
    p.take()
    p.receive(2, Ack(w))          # 2 acked both, 1 nothing yet
    p.receive(1, Ack(z))
    out = p.take()
    # The commit of the reconfig names 2 (the new voter that acked the most),
    # and the old leader looks, without a vote of its own (it has none).
    commits = sends(out, Commit)
    assert commits and all(c.zxid == z and c.leader == 2 for _, c in commits)
    assert p.commit_point == z and p.role == LOOKING and not p.voting
    assert w not in [c.zxid for _, c in commits] and p.commit_point == z
    assert all(v.leader != 3 for _, v in sends(out, Vote))


def test_a_leader_that_handed_over_commits_again_when_it_leads_again():
    p = leader(voters=(1, 2, 3), learners=(1, 2))
    propose(p, reconfig, (1, 2))
    p.receive(1, Ack(p.last_logged))
    p.receive(2, Ack(p.last_logged))
    p.take()
    assert p.role == LOOKING and not p.voting
    # A later reconfiguration makes it a voter again and it is elected.
    z2 = make_zxid(2, 1)
    p.receive(1, Vote(2, z2, 3, 9, LOOKING, text((1, 2, 3), (), z2)))
    assert p.quorum.voters == {1, 2, 3}
    p.receive(2, Vote(2, z2, 3, 9, LOOKING, text((1, 2, 3), (), z2)))
    p.tick(p.now + 1000)
    assert p.role == LEADING, p.role
    assert p.allowed_to_commit


def follower(voters=(1, 2, 3)):
    """Peer 1 synced with leader 3 in epoch 1."""
    p = peer(1, voters)
    p.start()
    p.receive(2, Vote(0, 0, 3, 1, FOLLOWING))
    p.receive(3, Vote(0, 0, 3, 1, LEADING))
    assert p.role == FOLLOWING
    p.receive(3, LeaderInfo(1, p.follow_attempt))
    p.receive(3, Sync(DIFF, 0, [], 0))
    p.receive(3, NewLeader(make_zxid(1, 0), text(voters)))
    for eff in p.take():
        if type(eff) is Log:
            p.logged(eff.txns[-1].zxid)
    p.logged(p.last_logged)
    p.receive(3, UpToDate())
    assert p.follow_phase == ESTABLISHED and p.serving
    p.take()
    return p


def test_a_learner_drops_a_pending_reconfig_its_new_leader_never_had():
    """Logged but never committed (the leader that proposed it was cut off):
    the next leader's NEWLEADER carries the configuration in force, and the
    learner must not put its own pending one in force at UPTODATE."""
    p = follower()
    z = make_zxid(1, 1)
    p.receive(3, Proposal(reconfig(z, (1, 2))))
    p.logged(z)
    assert p.next_quorum is not None and p.next_quorum.version == z
    # Leader 3 is gone; 2 leads epoch 2 without the reconfig.
    p.receive(3, Vote(0, 0, 0, 0, LOOKING))        # (whatever) the link to 3 breaks:
    p.link_down(3)
    p.take()
    p.receive(2, Vote(1, 0, 2, p.round, LEADING))
    if p.role != FOLLOWING or p.leader_id != 2:
        p.receive(2, Vote(1, 0, 2, p.round, LEADING))
    assert p.role == FOLLOWING and p.leader_id == 2
    p.receive(2, LeaderInfo(2, p.follow_attempt))
    p.receive(2, Sync(DIFF, 0, [], 0))   # (a TRUNC to 0 would drop the txn as well)
    p.receive(2, NewLeader(make_zxid(2, 0), text((1, 2, 3))))
    p.logged(p.last_logged)
    p.receive(2, UpToDate())
    p.take()
    assert p.next_quorum is None
    assert p.quorum.voters == {1, 2, 3} and p.quorum.version == 0
