"""Driving a ZabPeer by hand in unit tests."""

from zkpy.zab.messages import Ack, AckEpoch, FollowerInfo, Log, Vote
from zkpy.zab.peer import ESTABLISHED, LEADING, LOOKING
from zkpy.zab.quorum import make_zxid


def establish_leader(p, voters, learners, observers=()):
    """Start p, have the other voters elect it, and sync `learners` (those
    in `observers` as observers) in epoch 1: p leads, established, serving."""
    p.start()
    p.take()
    for i in voters:
        if i != p.id:
            p.receive(i, Vote(0, 0, p.id, 1, LOOKING))
    p.tick(1000)
    assert p.role == LEADING
    for i in learners:
        p.receive(i, FollowerInfo(0, 0, i in observers, 1))
    for i in learners:
        p.receive(i, AckEpoch(0, 0))
    for eff in p.take():
        if type(eff) is Log:
            p.logged(eff.txns[-1].zxid)
    for i in learners:
        p.receive(i, Ack(make_zxid(1, 0)))
    p.take()
    assert p.phase == ESTABLISHED and p.serving
    return p
