"""The peer links (zkpy/zab/transport.py) over a real loopback connection:
frames of one event-loop pass go out in one write, in order; a reserved frame
holds back what is sent after it; txns travel as the bytes their log record
holds.  Also fork_bytes (zkpy/storage/forked.py), which makes a SNAP's frame."""

import asyncio
import os

from zkpy.datatree import txn as txn_mod
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.storage.forked import fork_bytes
from zkpy.storage.txnlog import RECORD, encode_txn
from zkpy.testing import free_port
from zkpy.zab.messages import DIFF, Commit, NewLeader, Ping, Proposal, Sync
from zkpy.zab.transport import PeerTransport, decode, encode, proposal_size


def txn(zxid, data=b"v"):
    return Txn(0x1234, zxid & 0xFFFF, zxid, 1700000000000, Op.SET_DATA, ("/a", data, 3))


class Pair:
    """Peers 1 and 2 linked on loopback; what each receives, in order."""

    def __init__(self):
        self.got = {1: [], 2: []}
        self.down = {1: [], 2: []}
        self.t = {}

    async def __aenter__(self):
        ports = {1: free_port(), 2: free_port()}
        addresses = {i: ("127.0.0.1", p) for i, p in ports.items()}
        for i in (1, 2):
            self.t[i] = PeerTransport(
                i, addresses, lambda frm, msg, i=i: self.got[i].append((frm, msg)),
                lambda peer, i=i: self.down[i].append(peer), retry_s=0.02)
            await self.t[i].start()
        await self.until(lambda: 1 in self.t[2].links and 2 in self.t[1].links)
        return self

    async def __aexit__(self, *exc):
        for t in self.t.values():
            await t.stop()

    async def until(self, cond, timeout=10):
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.005)


async def test_frames_of_one_pass_are_written_at_once_in_order(monkeypatch):
    async with Pair() as p:
        link = p.t[2].links[1]
        writes = []
        real_write = link.transport.write
        monkeypatch.setattr(link.transport, "write",
                            lambda data: (writes.append(bytes(data)), real_write(data)))
        msgs = [Proposal(txn(i)) for i in range(1, 6)] + [Commit(5)]
        for m in msgs:
            p.t[2].send(1, m)
        assert writes == []          # nothing yet: written at the end of the pass
        await p.until(lambda: len(p.got[1]) == len(msgs))
        assert len(writes) == 1
        assert writes[0] == b"".join(encode(m) for m in msgs)
        got = [m for _, m in p.got[1]]
        assert [type(m) for m in got] == [type(m) for m in msgs]
        assert [m.txn.zxid for m in got[:5]] == [1, 2, 3, 4, 5]


async def test_a_reserved_frame_holds_back_what_follows_it():
    async with Pair() as p:
        p.t[2].send(1, Ping())
        place = p.t[2].reserve(1)
        p.t[2].send(1, NewLeader(7))
        p.t[2].send(1, Commit(3))
        await p.until(lambda: len(p.got[1]) == 1)
        await asyncio.sleep(0.05)
        assert [m for _, m in p.got[1]] == [Ping()]
        p.t[2].fill(place, encode(Sync(DIFF, 3, [txn(3)], 3)))
        await p.until(lambda: len(p.got[1]) == 4)
        kinds = [type(m) for _, m in p.got[1]]
        assert kinds == [Ping, Sync, NewLeader, Commit]


async def test_dropping_a_reserved_frame_breaks_the_link():
    async with Pair() as p:
        place = p.t[2].reserve(1)
        p.t[2].send(1, NewLeader(7))
        p.t[2].drop(place)
        assert p.down[2] == [1]
        await p.until(lambda: 2 in p.down[1])
        assert all(type(m) is not NewLeader for _, m in p.got[1])


async def test_no_link_reports_the_peer_down():
    async with Pair() as p:
        assert p.t[2].reserve(3) is None
        p.t[2].send(3, Ping())
        await p.until(lambda: p.down[2] == [3, 3])


def test_a_txn_travels_as_its_log_record_bytes(monkeypatch):
    t = txn(0x500000001, b"x" * 100)
    record = encode_txn(t)
    payload = record[RECORD.size:]
    frame = encode(Proposal(t))
    assert frame.endswith(payload)
    # Packed once: neither the proposal nor the log packs it again.
    calls = []
    real = txn_mod._pack
    monkeypatch.setattr(txn_mod, "_pack", lambda *a: calls.append(a) or real(*a))
    assert encode(Proposal(t)) == frame and encode_txn(t) == record
    assert calls == []
    # The follower's copy keeps the bytes it came in: its log writes them as they are.
    got = decode(frame[4:]).txn
    assert (got.zxid, got.body[1]) == (t.zxid, t.body[1])
    assert got.packed() == payload and encode_txn(got) == record


async def test_fork_bytes_hands_back_what_the_child_made():
    loop = asyncio.get_running_loop()
    state = {"data": b"abc" * 1_000_000}
    done = loop.create_future()
    assert fork_bytes(lambda: state["data"] + str(os.getpid()).encode(), loop,
                      done.set_result)
    state["data"] = b"changed after the fork"
    result = await asyncio.wait_for(done, 30)
    assert result.startswith(b"abc" * 1_000_000)
    assert int(result[3_000_000:]) != os.getpid()

    failed = loop.create_future()

    def boom():
        raise RuntimeError("no")
    assert fork_bytes(boom, loop, failed.set_result)
    assert await asyncio.wait_for(failed, 30) is None


async def test_a_forked_child_holds_none_of_the_parents_sockets():
    """A leader killed while a child serialises its tree must not leave its
    peer and client connections open in the child."""
    import socket
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        def make():
            try:
                os.fstat(a.fileno())
                return b"open"
            except OSError:
                return b"closed"
        done = loop.create_future()
        assert fork_bytes(make, loop, done.set_result)
        assert await asyncio.wait_for(done, 30) == b"closed"
        os.fstat(a.fileno())      # still open here
    finally:
        a.close()
        b.close()


def test_proposal_size_is_the_size_of_the_proposals_frame():
    # What mntr reports per proposal when a batch of them travels together.
    for size in (0, 1, 4, 100, 300, 70000):
        t = txn(0x500000001, b"x" * size)
        assert proposal_size(t) == len(encode(Proposal(t))) - 4, size


def test_every_peer_message_comes_back_as_it_was_sent():
    from zkpy.zab import messages as m
    t = txn(0x300000007)
    samples = [
        m.Hello(3), m.Vote(2, 0x200000005, 3, 7, "LOOKING"), m.FollowerInfo(1, 5, True, 2),
        m.LeaderInfo(4, 2), m.AckEpoch(3, 0x300000001), m.Sync(m.TRUNC, 5, [t], 6),
        m.Sync(m.SNAP, 5, [], 5, b"snapshot bytes"), m.NewLeader(0x400000000),
        m.UpToDate(), m.Proposal(t), m.Proposals((t, txn(0x300000008))), m.Ack(9), m.Commit(9), m.Inform(t), m.Informs((t, txn(0x300000008)), 77, 2),
        m.Ping(),
        m.App(m.ForwardRequest(0x1234, 7, Op.SET_DATA, b"\x00\x01", [("ip", "1.2.3.4")])),
        m.App(m.ForwardRequests((m.ForwardRequest(0x1234, 8, Op.DELETE, b"\x02", []),
                                 m.ForwardRequest(0x1236, 1, Op.CREATE, b"\x03", [])))),
        m.App(m.CreateSession(0x1235, 30000)), m.App(m.Revalidate(0x1235, 4000, 9)),
        m.App(m.Revalidated(9, True)), m.App(m.Touch([1, 2, 3])),
        m.App(m.SyncRequest(0x1235, 8)), m.App(m.Synced(0x1235, 8, 0x300000009)),
    ]
    assert {type(s) for s in samples} | {type(s.payload) for s in samples
                                          if type(s) is m.App} == set(m._BY_TAG.values())
    for msg in samples:
        got = decode(encode(msg)[4:])
        if type(msg) is m.App and type(msg.payload) is m.ForwardRequest:
            # Lists travel as arrays and come back as tuples.
            assert got.payload.auth_ids == (("ip", "1.2.3.4"),)
            got.payload.auth_ids = msg.payload.auth_ids
        if type(msg) is m.App and type(msg.payload) is m.ForwardRequests:
            assert [r.auth_ids for r in got.payload.requests] == [(), ()]
            for r in got.payload.requests:
                r.auth_ids = []
        if hasattr(msg, "txn"):
            assert got.txn.packed() == msg.txn.packed()
            got.txn = msg.txn
        if type(msg) in (m.Sync, m.Proposals, m.Informs):
            assert [x.packed() for x in got.txns] == [x.packed() for x in msg.txns]
            got.txns = msg.txns
        assert got == msg, msg


async def test_a_peer_with_several_addresses_is_reached_on_the_one_that_answers():
    """multiAddress.enabled: peer 1 listens on each of its addresses; peer 2
    knows one more for it that nothing listens on, and dials on to the next."""
    a, b, c, nobody = free_port(), free_port(), free_port(), free_port()
    got = []
    one = PeerTransport(1, {1: [("127.0.0.1", a), ("127.0.0.1", b)], 2: ("127.0.0.1", c)},
                        lambda frm, msg: got.append(msg), lambda peer: None, retry_s=0.02)
    two = PeerTransport(2, {1: [("127.0.0.1", nobody), ("127.0.0.1", b)], 2: ("127.0.0.1", c)},
                        lambda frm, msg: None, lambda peer: None, retry_s=0.02)
    await one.start()
    await two.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while 1 not in two.links:
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.01)
        two.send(1, Ping())
        while not got:
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.01)
        assert got == [Ping()]
    finally:
        await one.stop()
        await two.stop()


async def test_quorum_listen_on_all_ips():
    # server.N names 127.0.0.1; with quorumListenOnAllIPs the port answers on
    # another loopback address too, without it only on the one named.
    for listen_all, reachable in ((True, True), (False, False)):
        port = free_port()
        t = PeerTransport(1, {1: ("127.0.0.1", port)}, lambda frm, msg: None,
                          lambda peer: None, listen_on_all_ips=listen_all)
        await t.start()
        try:
            try:
                _, writer = await asyncio.open_connection("127.0.0.2", port)
                writer.close()
                reached = True
            except OSError:
                reached = False
            assert reached is reachable, listen_all
        finally:
            await t.stop()
