"""A leader's and a follower's ZabPeer driven by hand: what several proposals
handled together put on the wire.  An ACK covers every proposal up to its
zxid and a COMMIT every proposal up to its zxid, so a group commit costs one
ACK per follower and one COMMIT per follower, not one per txn; observers still
get every txn (INFORM)."""

from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.zab.peer import ESTABLISHED, FOLLOWING, LEADING, LOOKING, ZabPeer
from zkpy.zab.messages import (
    DIFF, Ack, AckEpoch, Apply, Commit, FollowerInfo, Inform, LeaderInfo, Log, NewLeader,
    Proposal, Send, Sync, UpToDate, Vote,
)
from zkpy.zab.quorum import QuorumConfig, make_zxid

TICK = 100


def txn(zxid):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.ERROR, (-101,))


def sends(out, kind=None):
    return [(eff.to, eff.msg) for eff in out
            if type(eff) is Send and (kind is None or type(eff.msg) is kind)]


def leader_of(voters=(1, 2, 3), observers=()):
    """Peer 3 elected and established, every other peer synced."""
    q = QuorumConfig.of(list(voters), list(observers))
    p = ZabPeer(3, q, now=0, tick_ms=TICK, init_limit=10, sync_limit=5)
    p.start()
    p.take()
    for i in voters:
        if i != 3:
            p.receive(i, Vote(0, 0, 3, 1, LOOKING))
    p.tick(1000)
    assert p.role == LEADING
    others = [i for i in list(voters) + list(observers) if i != 3]
    for i in others:
        p.receive(i, FollowerInfo(0, 0, i in observers, 1))
    for i in others:
        p.receive(i, AckEpoch(0, 0))
    for eff in p.take():
        if type(eff) is Log:
            p.logged(eff.txns[-1].zxid)
    for i in others:
        p.receive(i, Ack(make_zxid(1, 0)))
    p.take()
    assert p.phase == ESTABLISHED and p.serving
    return p


def follower_of_3():
    """Peer 1 synced with leader 3 in epoch 1, nothing logged yet."""
    p = ZabPeer(1, QuorumConfig.of([1, 2, 3]), now=0, tick_ms=TICK, init_limit=10, sync_limit=5)
    p.start()
    p.receive(2, Vote(0, 0, 3, 1, FOLLOWING))
    p.receive(3, Vote(0, 0, 3, 1, LEADING))
    assert p.role == FOLLOWING
    p.receive(3, LeaderInfo(1, p.follow_attempt))
    p.receive(3, Sync(DIFF, 0, [], 0))
    p.receive(3, NewLeader(make_zxid(1, 0)))
    p.receive(3, UpToDate())
    assert p.follow_phase == ESTABLISHED and p.serving
    p.take()
    return p


def propose(p, n):
    zs = []
    for _ in range(n):
        z = p.next_zxid()
        p.propose(txn(z))
        zs.append(z)
    return zs


def test_one_commit_per_follower_for_proposals_acked_together():
    p = leader_of()
    zs = propose(p, 4)
    out = p.take()
    for f in (1, 2):
        assert [m.txn.zxid for to, m in sends(out, Proposal) if to == f] == zs
    p.logged(zs[-1])                   # the leader's own log
    p.receive(1, Ack(zs[2]))       # follower 1: the first three, in one ACK
    out = p.take()
    assert sends(out, Commit) == [(1, Commit(zs[2])), (2, Commit(zs[2]))]
    assert [e.txn.zxid for e in out if type(e) is Apply] == zs[:3]
    p.receive(2, Ack(zs[3]))
    out = p.take()
    assert sends(out, Commit) == [(1, Commit(zs[3])), (2, Commit(zs[3]))]
    assert [e.txn.zxid for e in out if type(e) is Apply] == [zs[3]]


def test_commits_wait_for_the_leaders_own_log():
    p = leader_of()
    zs = propose(p, 3)
    p.take()
    p.receive(1, Ack(zs[2]))
    assert sends(p.take(), Commit) == []
    p.logged(zs[1])
    out = p.take()
    assert sends(out, Commit) == [(1, Commit(zs[1])), (2, Commit(zs[1]))]
    p.logged(zs[2])
    assert sends(p.take(), Commit) == [(1, Commit(zs[2])), (2, Commit(zs[2]))]


def test_observers_get_every_committed_txn():
    p = leader_of(voters=(1, 2, 3), observers=(4,))
    zs = propose(p, 3)
    p.take()
    p.logged(zs[-1])
    p.receive(1, Ack(zs[-1]))
    out = p.take()
    assert [m.txn.zxid for to, m in sends(out, Inform) if to == 4] == zs
    assert sends(out, Commit) == [(1, Commit(zs[-1])), (2, Commit(zs[-1]))]


def test_a_follower_acks_a_group_commit_once():
    f = follower_of_3()
    zs = [make_zxid(1, i) for i in range(1, 5)]
    for z in zs:
        f.receive(3, Proposal(txn(z)))
    assert sends(f.take(), Ack) == []     # nothing durable yet
    f.logged(zs[2])
    assert sends(f.take(), Ack) == [(3, Ack(zs[2]))]
    f.logged(zs[3])
    assert sends(f.take(), Ack) == [(3, Ack(zs[3]))]
    f.receive(3, Commit(zs[3]))
    assert [e.txn.zxid for e in f.take() if type(e) is Apply] == zs


def test_history_stays_bounded_and_keeps_at_least_its_limit():
    f = follower_of_3()
    f.history_limit = 80
    zs = [make_zxid(1, i) for i in range(1, 1001)]
    for z in zs:
        f.receive(3, Proposal(txn(z)))
        f.logged(z)
        f.receive(3, Commit(z))
        f.take()
        assert 80 <= len(f.history) <= 80 + 80 // 8 + 1 or len(f.history) == z & 0xFFFF
        assert f.history_zxids == [t.zxid for t in f.history]
        assert f.history_base < f.history_zxids[0]
    assert f.history_zxids[-1] == zs[-1] and f.last_applied == zs[-1]
