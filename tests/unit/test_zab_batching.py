"""A leader's and a follower's ZabPeer driven by hand: what several proposals
handled together put on the wire.  An ACK covers every proposal up to its
zxid and a COMMIT every proposal up to its zxid, so a group commit costs one
ACK per follower and one COMMIT per follower, not one per txn; observers get
every txn, those of one commit in one message (INFORM for one, Informs for
more).  The txns a leader proposes together travel to each follower as one
message (Proposals), which it logs as one batch."""

from tests.support.zab import establish_leader
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.zab.messages import (
    DIFF, Ack, AckEpoch, App, Apply, CheckDigest, Commit, FollowerInfo, Inform, Informs,
    LeaderInfo,
    Log, NewLeader, Proposal, Proposals, Send, Sync, UpToDate, Vote,
)
from zkpy.zab.peer import ESTABLISHED, FOLLOWING, LEADING, LOOKING, ZabPeer
from zkpy.zab.quorum import QuorumConfig, make_zxid

TICK = 100


def txn(zxid):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.ERROR, (-101,))


def sends(out, kind=None):
    return [(eff.to, eff.msg) for eff in out
            if type(eff) is Send and (kind is None or type(eff.msg) is kind)]


def log_batches(out):
    """The zxids of each Log effect, one list an effect."""
    return [[t.zxid for t in e.txns] for e in out if type(e) is Log]


def informed(out, to):
    """The txns INFORM and Informs messages to `to` carry, one list a message."""
    return [[m.txn] if type(m) is Inform else list(m.txns) for t, m in sends(out)
            if t == to and type(m) in (Inform, Informs)]


def leader_of(voters=(1, 2, 3), observers=()):
    """Peer 3 elected and established, every other peer synced."""
    q = QuorumConfig.of(list(voters), list(observers))
    p = ZabPeer(3, q, now=0, tick_ms=TICK, init_limit=10, sync_limit=5)
    others = [i for i in list(voters) + list(observers) if i != 3]
    return establish_leader(p, voters, others, observers)


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
        p.propose_all([txn(z)])
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
    assert [[t.zxid for t in txns] for txns in informed(out, 4)] == [zs]   # one message
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


def test_txns_proposed_together_go_to_each_follower_as_one_message():
    p = leader_of(voters=(1, 2, 3), observers=(4,))
    z0 = p.next_zxid()
    txns = [txn(z0 + i) for i in range(4)]
    p.propose_all(txns)
    out = p.take()
    assert [e.txns for e in out if type(e) is Log] == [txns]
    msgs = sends(out)
    assert [to for to, _ in msgs] == [1, 2]           # no proposal to the observer
    assert all(type(m) is Proposals and list(m.txns) == txns for _, m in msgs)
    assert msgs[0][1] is msgs[1][1]                   # one message, encoded once
    assert p.last_proposed == z0 + 3 and p.next_zxid() == z0 + 4
    # Each txn is a proposal of its own: one ACK commits the ones it covers.
    p.logged(z0 + 3)
    p.receive(1, Ack(z0 + 1))
    out = p.take()
    assert sends(out, Commit) == [(1, Commit(z0 + 1)), (2, Commit(z0 + 1))]
    assert [e.txn.zxid for e in out if type(e) is Apply] == [z0, z0 + 1]
    assert [[t.zxid for t in txns] for txns in informed(out, 4)] == [[z0, z0 + 1]]


def test_a_single_txn_goes_as_a_plain_proposal():
    p = leader_of()
    z = p.next_zxid()
    p.propose_all([txn(z)])
    assert [type(m) for _, m in sends(p.take())] == [Proposal, Proposal]


def test_a_follower_logs_proposals_as_one_batch_and_acks_their_last():
    f = follower_of_3()
    zs = [make_zxid(1, i) for i in range(1, 6)]
    f.receive(3, Proposals(tuple(txn(z) for z in zs[:3])))
    out = f.take()
    assert log_batches(out) == [zs[:3]]
    assert sends(out, Ack) == []
    # A resent batch that overlaps what is logged: only the new ones are logged.
    f.receive(3, Proposals(tuple(txn(z) for z in zs[1:5])))
    out = f.take()
    assert log_batches(out) == [zs[3:5]]
    f.receive(3, Proposals(tuple(txn(z) for z in zs[:2])))
    assert f.take() == []
    assert f.history_zxids == zs
    f.logged(zs[2])
    assert sends(f.take(), Ack) == [(3, Ack(zs[2]))]
    f.logged(zs[4])
    assert sends(f.take(), Ack) == [(3, Ack(zs[4]))]
    f.receive(3, Commit(zs[4]))
    assert [e.txn.zxid for e in f.take() if type(e) is Apply] == zs


def test_a_message_held_for_an_observer_follows_the_inform_of_its_zxid():
    """A sync an observer asked for is answered right after the txn it
    waited for, before any later txn: the informs are cut there."""
    p = leader_of(voters=(1, 2, 3), observers=(4,))
    zs = propose(p, 2)
    p.send_app_after_commits(4, "synced")     # waits for zs[1], the last proposed
    zs += propose(p, 2)
    p.take()
    p.logged(zs[-1])
    p.receive(1, Ack(zs[-1]))
    out = p.take()
    to4 = [m for to, m in sends(out) if to == 4]
    assert [type(m) for m in to4] == [Informs, App, Informs]
    assert [[t.zxid for t in m.txns] for m in to4 if type(m) is Informs] == [zs[:2], zs[2:]]
    assert to4[1].payload == "synced"


def test_an_observer_logs_and_applies_informs_as_one_batch():
    f = follower_of_3()
    f.receive(3, Informs(tuple(txn(make_zxid(1, i)) for i in (1, 2, 3)), 99))
    out = f.take()
    assert log_batches(out) == [[make_zxid(1, i) for i in (1, 2, 3)]]
    f.logged(make_zxid(1, 3))
    out = f.take()
    assert [e.txn.zxid for e in out if type(e) is Apply] == [make_zxid(1, i) for i in (1, 2, 3)]
    assert [(e.zxid, e.digest) for e in out if type(e) is CheckDigest] == [(make_zxid(1, 3), 99)]
    # A resent overlap: only what is new is logged.
    f.receive(3, Informs(tuple(txn(make_zxid(1, i)) for i in (3, 4))))
    assert log_batches(f.take()) == [[make_zxid(1, 4)]]


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


# --- the tree digest travels with commits -------------------------------------------------------

def test_a_leader_applies_a_txn_before_its_commit_goes_out():
    """So that the driver can stamp the commit with the digest of the tree
    that holds it (zkpy/server/digests.py)."""
    p = leader_of(voters=(1, 2, 3), observers=(4,))
    zs = propose(p, 3)
    p.take()
    p.logged(zs[-1])
    p.receive(1, Ack(zs[-1]))
    out = p.take()
    applied = [i for i, e in enumerate(out) if type(e) is Apply]
    commits = [i for i, e in enumerate(out) if type(e) is Send and type(e.msg) is Commit]
    assert len(applied) == 3 and commits and max(applied) < min(commits)
    for i, e in enumerate(out):   # each INFORM after the Apply of its txns
        if type(e) is Send and type(e.msg) in (Inform, Informs):
            txns = [e.msg.txn] if type(e.msg) is Inform else e.msg.txns
            for t in txns:
                assert any(type(a) is Apply and a.txn is t for a in out[:i])


def test_a_follower_checks_the_leaders_digest_once_it_has_applied_the_commit():
    f = follower_of_3()
    zs = [make_zxid(1, i) for i in range(1, 4)]
    for z in zs:
        f.receive(3, Proposal(txn(z)))
    f.receive(3, Commit(zs[1], 1234))
    assert not [e for e in f.take() if type(e) in (Apply, CheckDigest)]   # nothing durable yet
    f.logged(zs[2])
    out = [e for e in f.take() if type(e) in (Apply, CheckDigest)]
    assert [(type(e), getattr(e, "zxid", None) or e.txn.zxid) for e in out] == \
        [(Apply, zs[0]), (Apply, zs[1]), (CheckDigest, zs[1])]
    assert out[-1].digest == 1234
    f.receive(3, Commit(zs[2]))        # no digest (the leader's is off): nothing to check
    assert not [e for e in f.take() if type(e) is CheckDigest]


def test_a_resyncing_follower_claims_nothing_and_gets_a_snap():
    f = follower_of_3()
    f.receive(3, Proposal(txn(make_zxid(1, 1))))
    f.logged(make_zxid(1, 1))
    f.resync()
    assert f.role == LOOKING and not f.serving
    f.take()
    f.receive(2, Vote(1, make_zxid(1, 1), 3, 1, FOLLOWING))
    f.receive(3, Vote(1, make_zxid(1, 1), 3, 1, LEADING))
    infos = [e.msg for e in f.take() if type(e) is Send and type(e.msg) is FollowerInfo]
    assert infos and infos[-1].last_zxid == -1
    # The leader's side: a learner that claims nothing is synced by SNAP.
    p = leader_of()
    p.receive(1, FollowerInfo(p.accepted_epoch, -1, False, 9))
    p.receive(1, AckEpoch(p.current_epoch, -1))
    syncs = [m for to, m in sends(p.take(), Sync) if to == 1]
    assert syncs and syncs[0].kind == "SNAP"
