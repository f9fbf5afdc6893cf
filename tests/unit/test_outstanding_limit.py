"""globalOutstandingLimit and the RequestThrottler on real connections and a
real server, step by step: the transport is a stand-in that records pauses,
the loop runs when the test says, and the log keeps each write until the
test lets it through (as a slow disk would)."""

from pathlib import Path

from zkpy.protocol.errors import Err
from zkpy.protocol.jute import INT, Reader
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, ConnectResponse, CreateRequest, PathWatchRequest, ReplyHeader,
    encode_request,
)
from zkpy.rawclient import encode_connect
from zkpy.server.config import ServerConfig
from zkpy.server.connection import ClientConnection
from zkpy.server.zkserver import ZooKeeperServer

OPEN = list(OPEN_ACL_UNSAFE)


class Clock:
    now = 1000

    def now_ms(self):
        return self.now

    def wall_ms(self):
        return 1_700_000_000_000 + self.now


class Loop:
    def __init__(self):
        self.ready = []
        self.timers = []

    def call_soon(self, fn, *args):
        self.ready.append((fn, args))

    def call_later(self, delay, fn, *args):
        self.timers.append((delay, fn, args))

    def run(self):
        while self.ready:
            ready, self.ready = self.ready, []
            for fn, args in ready:
                fn(*args)


class HeldLog:
    """A log whose writes are logged when the test says so."""

    def __init__(self):
        self.waiting = []

    def append(self, txn, on_logged):
        self.waiting.append((txn, on_logged))

    def release(self, n=None):
        n = len(self.waiting) if n is None else n
        batch, self.waiting = self.waiting[:n], self.waiting[n:]
        for txn, on_logged in batch:
            on_logged(txn)

    def close(self):
        pass


class Transport:
    def __init__(self, loop):
        self.loop = loop
        self.out = bytearray()
        self.reading = True
        self.pauses = 0
        self.closed = False
        self.protocol = None

    def get_extra_info(self, name):
        return ("127.0.0.1", 40000) if name == "peername" else None

    def write(self, data):
        self.out += data

    def close(self):
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def pause_reading(self):
        self.reading = False
        self.pauses += 1

    def resume_reading(self):
        self.reading = True


class Client:
    def __init__(self, server, loop):
        self.loop = loop
        self.transport = Transport(loop)
        self.conn = ClientConnection(server, loop)
        self.transport.protocol = self.conn
        self.conn.connection_made(self.transport)
        self.pos = 0
        self.xid = 0
        self.conn.data_received(encode_connect(0, bytes(16), 30000, 0, False))
        loop.run()
        server.log.release()
        loop.run()
        ConnectResponse.read(Reader(self._frame()))

    def _frame(self):
        out = self.transport.out
        n = INT.unpack_from(out, self.pos)[0]
        frame = bytes(out[self.pos + 4:self.pos + 4 + n])
        self.pos += 4 + n
        return frame

    def send(self, op, record):
        self.xid += 1
        self.conn.data_received(encode_request(self.xid, op, record))
        return self.xid

    def send_many(self, requests):
        data = b""
        for op, record in requests:
            self.xid += 1
            data += encode_request(self.xid, op, record)
        self.conn.data_received(data)

    def replies(self):
        out = []
        while self.pos < len(self.transport.out):
            out.append(ReplyHeader.read(Reader(self._frame())))
        return out


def make_server(**settings):
    config = ServerConfig(data_dir=Path("/nonexistent"), tick_time=2000)
    for key, value in settings.items():
        setattr(config, key, value)
    return ZooKeeperServer(config, HeldLog(), clock=Clock())


def creates(prefix, n):
    return [(Op.CREATE, CreateRequest(f"/{prefix}{i}", b"", OPEN, 0)) for i in range(n)]


def test_a_connection_over_the_limit_is_paused_until_its_requests_are_answered():
    loop = Loop()
    server = make_server(global_outstanding_limit=2)
    c = Client(server, loop)
    c.send_many(creates("a", 10))
    # Three in process (the third found two there, more than the limit? no:
    # the limit is passed when a request finds more than 2): 0, 1, 2 go in,
    # the fourth finds 3 > 2, goes in and pauses the connection.
    assert server.in_process == 4
    assert c.conn.throttled and not c.transport.reading
    assert len(c.conn.buf) > 0   # the rest waits, unread
    server.log.release()
    loop.run()
    # Answered: the connection reads again, its buffered frames first.
    assert [h.err for h in c.replies()] == [0] * 4
    assert server.in_process == 4 and c.conn.throttled
    while server.log.waiting:
        server.log.release()
        loop.run()
    assert [h.err for h in c.replies()] == [0] * 6
    assert server.in_process == 0
    assert not c.conn.throttled and c.transport.reading and not c.conn.buf


def test_reads_answered_at_once_are_never_in_process():
    loop = Loop()
    server = make_server(global_outstanding_limit=0)
    c = Client(server, loop)
    c.send_many([(Op.EXISTS, PathWatchRequest("/", False))] * 50)
    loop.run()
    assert len(c.replies()) == 50
    assert server.in_process == 0 and not c.conn.throttled


def test_a_ping_never_pauses_its_connection():
    loop = Loop()
    server = make_server(global_outstanding_limit=1)
    other = Client(server, loop)
    c = Client(server, loop)
    other.send(Op.CREATE, CreateRequest("/x", b"", OPEN, 0))   # none before it: in
    c.send(Op.CREATE, CreateRequest("/y", b"", OPEN, 0))       # 1 before it, not more than 1: in
    assert server.in_process == 2 and not c.conn.throttled
    # Over the limit now; a ping behind c's write waits for it (and counts),
    # but does not stop c from being read, as a request would.
    c.conn.data_received(encode_request(-2, Op.PING, None))
    assert server.in_process == 3 and not c.conn.throttled
    c.send(Op.EXISTS, PathWatchRequest("/", False))
    assert server.in_process == 4 and c.conn.throttled
    server.log.release()
    loop.run()
    assert [(h.xid, h.err) for h in c.replies()] == [(1, 0), (-2, 0), (2, 0)]
    assert server.in_process == 0 and not c.conn.throttled


def test_connections_resumed_together_share_the_room():
    loop = Loop()
    server = make_server(global_outstanding_limit=40)
    clients = [Client(server, loop) for _ in range(3)]
    for i, c in enumerate(clients):
        c.send_many(creates(f"c{i}-", 200))
    # The first filled the room (41 in, and one over) before the others came.
    assert [len(c.conn.queue) for c in clients] == [42, 1, 1]
    assert all(c.conn.throttled for c in clients)
    server.log.release()
    loop.run()
    # Resumed together: they take turns, one request each, until the room
    # is gone (41 go in under the limit, then each adds the one that pauses it).
    for _ in range(5):
        queued = [len(c.conn.queue) for c in clients]
        assert sum(queued) == 44 and max(queued) - min(queued) <= 1, queued
        assert all(c.conn.throttled for c in clients)
        server.log.release()
        loop.run()


def test_in_process_forgets_a_closed_connections_requests():
    loop = Loop()
    server = make_server(global_outstanding_limit=1000)
    c = Client(server, loop)
    c.send_many(creates("a", 5) + [(Op.EXISTS, PathWatchRequest("/", False))] * 3)
    assert server.in_process == 8
    c.conn.close()
    loop.run()
    assert server.in_process == 0
    server.log.release()   # the writes still apply; nobody waits for the replies
    loop.run()
    assert server.in_process == 0
    assert "/a4" in server.tree.nodes


def test_throttled_requests_answer_throttled_in_turn_without_running():
    loop = Loop()
    server = make_server(request_throttle_max_requests=1, throttled_op_wait_time=5)
    c = Client(server, loop)
    c.send_many(creates("a", 3) + [(Op.GET_DATA, PathWatchRequest("/", False)),
                                   (Op.PING, None)])
    # The first went in; the others wait behind it.
    assert server.in_process == 1 and len(server.request_throttler.held) == 4
    assert server.request_throttler.request_throttle_wait_count == 1
    server.clock.now += 6
    server.log.release()
    loop.run()
    replies = c.replies()
    assert [(h.xid, h.err) for h in replies] == [
        (1, 0), (2, Err.THROTTLED), (3, Err.THROTTLED), (4, Err.THROTTLED), (-2, 0)]
    assert all(h.zxid == replies[0].zxid for h in replies)
    assert "/a1" not in server.tree.nodes and not server.log.waiting
    assert server.request_throttler.throttled_ops == 3
    assert server.in_process == 0


def test_the_stall_timer_looks_again_and_drops_a_vanished_clients_requests():
    loop = Loop()
    server = make_server(request_throttle_max_requests=1, request_throttle_stall_time=50)
    busy = Client(server, loop)
    gone = Client(server, loop)
    busy.send(Op.CREATE, CreateRequest("/busy", b"", OPEN, 0))      # fills the pipeline
    gone.send_many(creates("g", 3))                                  # held
    assert len(server.request_throttler.held) == 3
    (delay, fn, args), = loop.timers
    assert delay == 0.05
    gone.conn.transport.close()
    loop.run()
    loop.timers.clear()
    fn(*args)           # the stall timer: the head's connection is gone
    t = server.request_throttler
    assert not t.held and t.stale_requests_dropped == 1
    server.log.release()
    loop.run()
    assert "/g0" not in server.tree.nodes and "/busy" in server.tree.nodes
