"""Throttling with real clients over TCP: globalOutstandingLimit under a flood
(clients that pipeline writes without limit), the RequestThrottler's
Throttled (-127) answers and stale drops, the connection token bucket.

The flood test runs against Apache ZooKeeper too (ZKPY_IT_TARGET=apache): the
same outcomes are asserted of both.  A zkpy server here runs as its own
process, so that the flooding threads of this process do not slow it down."""

import contextlib
import re
import struct
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from tests.conftest import TARGET, run_server
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest, PathWatchRequest
from zkpy.rawclient import RawClient
from zkpy.testing.apache import four_letter_word

OPEN = list(OPEN_ACL_UNSAFE)
_FRAME = struct.Struct(">iii")   # length, xid, opcode
_REPLY = struct.Struct(">iiqi")  # length, xid, zxid, err


@contextlib.contextmanager
def server(config):
    if TARGET == "apache":
        with run_server(config) as srv:
            yield srv
    else:
        from zkpy.testing import ZkpyServer

        with ZkpyServer(config={k: str(v) for k, v in config.items()}, subprocess=True) as srv:
            yield srv


def outstanding(srv) -> int:
    text = four_letter_word(srv.host, srv.port, "srvr")
    match = re.search(r"^Outstanding: (-?\d+)$", text, re.M)   # ZooKeeper's count dips below 0 at times
    assert match, text
    return int(match.group(1))


class Flooder:
    """One session that pipelines setData requests without limit, as fast as
    the server reads them, while another thread reads the replies and checks
    that each one answers the next xid with OK."""

    BATCH = 200

    def __init__(self, hosts, path, size=1024):
        self.client = RawClient.open(hosts)
        self.sock = self.client.sock
        body = bytearray()
        # SetDataRequest: path, data, version -1
        p = path.encode()
        body += struct.pack(">i", len(p)) + p + struct.pack(">i", size) + b"x" * size
        body += struct.pack(">i", -1)
        self.body = bytes(body)
        self.sent = 0
        self.answered = 0
        self.errors = []
        self.stopping = threading.Event()
        self.done_sending = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)
        self.client.close()

    def _send(self):
        n = len(self.body) + 8
        try:
            while not self.stopping.is_set():
                first = self.sent + 1
                batch = b"".join(_FRAME.pack(n, xid, Op.SET_DATA) + self.body
                                 for xid in range(first, first + self.BATCH))
                self.sock.sendall(batch)
                self.sent += self.BATCH
        except OSError as e:
            self.errors.append(f"send: {e}")
        finally:
            self.done_sending.set()

    def _read(self):
        buf = bytearray()
        self.sock.settimeout(60)
        try:
            while not (self.done_sending.is_set() and self.answered >= self.sent):
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self.errors.append(f"closed by the server after {self.answered} replies")
                    return
                buf += chunk
                pos = 0
                while len(buf) - pos >= 4:
                    (length,) = struct.unpack_from(">i", buf, pos)
                    if len(buf) - pos - 4 < length:
                        break
                    _, xid, _, err = _REPLY.unpack_from(buf, pos)
                    pos += 4 + length
                    if xid < 0:
                        continue   # a notification or a ping's reply
                    self.answered += 1
                    if xid != self.answered or err != 0:
                        self.errors.append(f"reply {self.answered}: xid {xid}, err {err}")
                        return
                del buf[:pos]
        except OSError as e:
            self.errors.append(f"read: {e} after {self.answered} of {self.sent} replies")


class User:
    """A well-behaved kazoo session: an ephemeral node, then reads and
    writes one at a time until told to stop."""

    def __init__(self, hosts, name):
        self.name = name
        self.states = []
        self.errors = []
        self.ops = 0
        self.client = KazooClient(hosts=hosts, timeout=4.0)
        self.client.add_listener(self.states.append)
        self.client.start(timeout=15)
        self.session_id = self.client.client_id[0]
        self.client.create(f"/flood/{name}", b"", ephemeral=True)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        zk = self.client
        path = f"/flood/{self.name}"
        try:
            while not self.stopping.is_set():
                zk.set(path, str(self.ops).encode())
                data, _ = zk.get(path)
                assert data == str(self.ops).encode()
                zk.create(f"{path}-child", b"x")
                zk.delete(f"{path}-child")
                self.ops += 1
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))


def test_flooding_clients_do_not_starve_other_sessions():
    # Three clients pipeline writes without limit for several session
    # timeouts; three others work at their own pace.  Every request of both
    # kinds is answered, nobody's session expires, and the server never has
    # more than about globalOutstandingLimit requests in process: a client
    # that adds one over the limit is not read until its requests are done.
    limit = 50
    with server({"globalOutstandingLimit": limit}) as srv:
        with RawClient.open(srv.hosts) as c:
            assert c.request(Op.CREATE, CreateRequest("/flood", b"", OPEN, 0))[0].err == 0
            for i in range(3):
                assert c.request(Op.CREATE, CreateRequest(f"/flood/f{i}", b"", OPEN, 0))[0].err == 0
        users = [User(srv.hosts, f"u{i}") for i in range(3)]
        flooders = [Flooder(srv.hosts, f"/flood/f{i}") for i in range(3)]
        connections = len(users) + len(flooders)
        try:
            for f in flooders:
                f.start()
            for u in users:
                u.thread.start()
            seen = []
            deadline = time.monotonic() + 12   # three session timeouts of flood
            while time.monotonic() < deadline:
                seen.append(outstanding(srv))
                time.sleep(0.05)
        finally:
            for u in users:
                u.stopping.set()
            for f in flooders:
                f.stop()
            for u in users:
                u.thread.join(30)
        for f in flooders:
            assert not f.errors, f.errors
            assert f.answered == f.sent > 0
        for u in users:
            assert not u.errors, (u.name, u.errors)
            assert u.ops > 0
            assert KazooState.LOST not in u.states, (u.name, u.states)
            assert u.client.client_id[0] == u.session_id
            assert u.client.exists(f"/flood/{u.name}").ephemeralOwner == u.session_id
            u.client.stop()
            u.client.close()
        # Never much more in process than the limit.  In zkpy: the request
        # that reaches limit + 1 (it found no more than the limit), then from
        # each connection one request that pauses it and perhaps a ping
        # (pings never pause).  ZooKeeper counts a request only once its
        # RequestThrottler thread passes it on, so a connection may add a
        # few more meanwhile.  Without the limit the flooders would have
        # many thousands in process.
        assert max(seen) <= 2 * limit, seen
        if TARGET != "apache":
            assert max(seen) <= limit + 1 + 2 * connections, seen
        assert outstanding(srv) == 0


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_serves_one_request_at_a_time(make_server, limit):
    # Over the limit as soon as anything is in process: each connection is
    # read again when its own requests are answered, so a pipelining client
    # still gets every reply, in order.
    srv = make_server({"globalOutstandingLimit": limit})
    with RawClient.open(srv.hosts) as c, RawClient.open(srv.hosts) as other:
        xids = []
        for i in range(200):
            xids.append((c.send(Op.CREATE, CreateRequest(f"/n{i}", b"", OPEN, 0)), Op.CREATE))
            xids.append((c.send(Op.EXISTS, PathWatchRequest(f"/n{i}", False)), Op.EXISTS))
        for xid, op in xids:
            hdr, _ = c.read_reply(op)
            assert (hdr.xid, hdr.err) == (xid, 0)
        assert other.request(Op.EXISTS, PathWatchRequest("/n199", False))[0].err == 0


def test_a_tls_connection_is_paused_and_resumed(tmp_path):
    # Reading is paused and resumed through the TLS layer: with a limit of
    # 0 a pipelining client is read one request at a time, and every reply
    # still comes, in order.
    from tests.support import pki
    from zkpy.testing import free_port

    keys, ctx = pki.mutual_tls(tmp_path)
    port = free_port()
    config = {"secureClientPort": port,
              "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
              **keys,
              "globalOutstandingLimit": 0}
    with run_server(config) as srv:
        with RawClient("127.0.0.1", port, ssl_context=ctx) as c:
            c.connect()
            sent = []
            for i in range(300):
                sent.append((c.send(Op.CREATE, CreateRequest(f"/t{i}", b"x" * 500, OPEN, 0)),
                             Op.CREATE))
                sent.append((c.send(Op.EXISTS, PathWatchRequest(f"/t{i}", False)), Op.EXISTS))
            for xid, op in sent:
                hdr, _ = c.read_reply(op)
                assert (hdr.xid, hdr.err) == (xid, 0)
        assert outstanding(srv) == 0
