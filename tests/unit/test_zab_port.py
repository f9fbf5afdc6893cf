"""ZabPort gathers what a pass of the event loop makes for the other peers:
the leader's txns become one proposal message per follower, a learner's
forwarded writes one message to the leader; nothing overtakes anything
sent before it."""

from tests.unit.test_zab_batching import follower_of_3, leader_of, sends, txn
from tests.unit.test_zab_reconfig import leader as reconfig_leader, reconfig
from zkpy.protocol.opcodes import Op
from zkpy.zab.messages import (
    App, ForwardRequest, ForwardRequests, Log, Proposal, Proposals, SyncRequest, Touch,
)
from zkpy.zab.peer import LEADING
from zkpy.zab.port import ZabPort


class Pass:
    """The end of the event loop's pass, run by hand."""

    def __init__(self):
        self.due = []

    def call_soon(self, fn):
        self.due.append(fn)

    def end(self):
        due, self.due = self.due, []
        for fn in due:
            fn()


def port_of(core):
    taken = []
    loop = Pass()
    port = ZabPort(core, lambda: taken.extend(core.take()), loop.call_soon)
    return port, loop, taken


def forwarded(xid):
    return ForwardRequest(0x99, xid, Op.SET_DATA, b"\x00" * 8, [])


def test_the_leaders_txns_of_one_pass_are_proposed_together():
    core = leader_of()
    port, loop, taken = port_of(core)
    z = core.next_zxid()
    txns = [txn(z + i) for i in range(3)]
    for t in txns:
        port.propose(t)
    assert taken == [] and core.next_zxid() == z     # nothing before the pass ends
    loop.end()
    assert [list(e.txns) for e in taken if type(e) is Log] == [txns]
    assert [(to, type(m), list(m.txns)) for to, m in sends(taken)] == \
        [(1, Proposals, txns), (2, Proposals, txns)]
    port.propose(txn(z + 3))
    loop.end()
    assert [type(m) for _, m in sends(taken)][-2:] == [Proposal, Proposal]


def test_a_leader_that_stepped_down_in_the_pass_proposes_nothing():
    core = leader_of()
    port, loop, taken = port_of(core)
    port.propose(txn(core.next_zxid()))
    core.link_down(1)
    core.link_down(2)                # no quorum left: looking now
    assert core.role != LEADING
    core.take()
    loop.end()
    assert sends(taken, Proposal) == [] and not [e for e in taken if type(e) is Log]


def test_a_learners_forwarded_writes_of_one_pass_go_as_one_message():
    core = follower_of_3()
    port, loop, taken = port_of(core)
    port.forward(forwarded(1))
    port.forward(forwarded(2))
    assert sends(taken) == []
    loop.end()
    assert sends(taken) == [(3, App(ForwardRequests((forwarded(1), forwarded(2)))))]
    taken.clear()
    port.forward(forwarded(3))
    loop.end()
    assert sends(taken) == [(3, App(forwarded(3)))]


def test_what_a_learner_sends_its_leader_keeps_its_order():
    """A sync after a write must reach the leader after it: the leader
    answers a sync once what it proposed before it is committed."""
    core = follower_of_3()
    port, loop, taken = port_of(core)
    port.forward(forwarded(1))
    port.forward(forwarded(2))
    port.to_leader(SyncRequest(0x99, 3))
    port.forward(forwarded(4))
    port.to_leader(Touch([0x99]))
    loop.end()
    assert [m.payload for _, m in sends(taken)] == [
        ForwardRequests((forwarded(1), forwarded(2))), SyncRequest(0x99, 3),
        forwarded(4), Touch([0x99])]


def test_asking_where_the_proposals_stand_proposes_what_the_pass_gathered():
    """A sync waits for the last proposal: it must cover every write
    prepped before it, proposed or still gathered."""
    core = leader_of()
    port, loop, taken = port_of(core)
    z = core.next_zxid()
    port.propose(txn(z))
    port.propose(txn(z + 1))
    assert port.last_proposed == z + 1
    assert [list(m.txns) for _, m in sends(taken, Proposals)] == [[txn(z), txn(z + 1)]] * 2
    loop.end()                       # the pass's own turn finds nothing left
    assert len(sends(taken)) == 2
    port.propose(txn(z + 2))
    assert port.next_zxid() == z + 3


def test_a_gathered_reconfiguration_is_pending():
    core = reconfig_leader(voters=(1, 2, 3), learners=(1, 2, 4, 5))
    port, loop, taken = port_of(core)
    assert not port.reconfig_pending()
    port.propose(reconfig(core.next_zxid(), (1, 2, 3, 4)))
    assert port.reconfig_pending()
    assert b"server.4=" in core.next_text
