"""Election without a network: when may a looking peer decide?

As FastLeaderElection, a peer that sees a quorum agree with its vote waits a
moment (finalizeWait) for a better vote.  But when every voter that can be
heard has voted, and for the same peer, there is nothing left to wait for:
a voter whose link is down (a killed leader) cannot send a better vote, and
comes back to an elected leader.  So the survivors of a leader's crash decide
at once."""

from zkpy.zab.messages import Vote
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
