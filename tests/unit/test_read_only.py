"""Read-only mode without a network: an ensemble member's server, cut off
from its quorum, driven through real ClientConnection objects on a fake
transport, and the switch to read-only after the grace period, on a fake
clock.

What is asserted is what a 3-peer Apache ZooKeeper 3.8.0 ensemble (started
with -Dreadonlymode.enabled=true and localSessionsEnabled=true) did with the
same requests: the handshake's refusals (connection closed, nothing sent),
the readOnly flag in ConnectResponse, local sessions named after the peer,
NotReadOnly (-119, with the last zxid) for every state-changing request and
sync, the four-letter words of a ReadOnlyZooKeeperServer."""

from pathlib import Path

import pytest

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.errors import Err
from zkpy.protocol.jute import INT, Reader, Writer
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    ACL, CheckVersionRequest, ConnectRequest, ConnectResponse, CreateRequest, DeleteRequest,
    MultiRequest, PathRequest, PathWatchRequest, ReplyHeader, SetDataRequest, encode_request,
)
from zkpy.server import fourletter
from zkpy.server.config import parse_config
from zkpy.server.connection import ClientConnection
from zkpy.server.prep import Prep
from zkpy.server.roles import LookingRole, ReadOnlyRole, follow_peer
from zkpy.server.zkserver import ZooKeeperServer
from zkpy.session.tracker import session_password
from zkpy.zab.messages import CreateSession, RoleChanged, Serving
from zkpy.zab.peer import FOLLOWING, LEADING, LOOKING

WORLD = [ACL(31, "world", "anyone")]
GLOBAL_SID = 0x0200_0000_0000_0001
MY_ID = 3


# --- fakes ---------------------------------------------------------------------------------

class FakeLoop:
    def __init__(self):
        self.soon = []

    def call_soon(self, fn, *args):
        self.soon.append((fn, args))

    def run(self):
        while self.soon:
            fn, args = self.soon.pop(0)
            fn(*args)


class FakeClock:
    def __init__(self):
        self.now = 1_000_000

    def now_ms(self):
        return self.now

    def wall_ms(self):
        return 1_700_000_000_000 + self.now


class FakeTransport:
    def __init__(self, loop):
        self.loop = loop
        self.out = bytearray()
        self.closed = False
        self.protocol = None

    def get_extra_info(self, name):
        return ("127.0.0.1", 40000) if name == "peername" else None

    def write(self, data):
        assert not self.closed
        self.out += data

    def close(self):
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class FakeCore:
    role = LOOKING
    leader_id = None


class FakePort:
    """The ZAB port of the server's roles: what they send to the leader."""

    def __init__(self):
        self.core = FakeCore()
        self.my_id = MY_ID
        self.sent = []

    def to_leader(self, msg):
        self.sent.append(msg)

    def forward(self, msg):
        # (ZabPort sends the writes of one pass together, in this order.)
        self.sent.append(msg)


class Client:
    """One client connection to the server: frames in, frames out."""

    def __init__(self, server, loop):
        self.loop = loop
        self.transport = FakeTransport(loop)
        self.conn = ClientConnection(server, loop)
        self.transport.protocol = self.conn
        self.conn.connection_made(self.transport)
        self.pos = 0
        self.xid = 0

    def send(self, data: bytes):
        self.conn.data_received(data)
        self.loop.run()

    def frames(self) -> list:
        out = []
        buf = bytes(self.transport.out)
        while len(buf) - self.pos >= 4:
            (n,) = INT.unpack_from(buf, self.pos)
            out.append(buf[self.pos + 4:self.pos + 4 + n])
            self.pos += 4 + n
        return out

    def connect(self, session_id=0, passwd=bytes(16), timeout=30000, last_zxid=0,
                read_only=True):
        w = Writer()
        ConnectRequest(0, last_zxid, timeout, session_id, passwd, read_only).write(w)
        self.send(INT.pack(len(w.out)) + bytes(w.out))
        frames = self.frames()
        if not frames:
            return None
        (payload,) = frames
        return ConnectResponse.read(Reader(payload))

    def request(self, op, record=None):
        self.xid += 1
        self.send(encode_request(self.xid, op, record))
        frames = self.frames()
        if not frames:
            return None
        (payload,) = frames
        return ReplyHeader.read(Reader(payload))

    @property
    def closed(self):
        return self.transport.closed


# --- a server with a tree and a global session -------------------------------------------

def make_tree():
    tree = DataTree()
    prep = Prep(tree)
    zxid = 0x1_0000_0000

    def apply(sid, op, body):
        nonlocal zxid
        zxid += 1
        tree.apply(Txn(sid, 1, zxid, 1_700_000_000_000, op, body))
        prep.applied(zxid)

    apply(GLOBAL_SID, Op.CREATE_SESSION, (30000,))
    for path in ("/a", "/a/b"):
        overlay = {}
        body = prep.prep_op(Op.CREATE, CreateRequest(path, b"data", WORLD, 0), GLOBAL_SID, (),
                            overlay)
        prep.commit_overlay(overlay, zxid + 1)
        apply(GLOBAL_SID, Op.CREATE, body)
    return tree


def config(tmp_path: Path, *extra):
    (tmp_path / "myid").write_text(str(MY_ID))
    text = "\n".join([f"dataDir={tmp_path}", "tickTime=500", "initLimit=10", "syncLimit=5",
                      "4lw.commands.whitelist=*",
                      "server.1=127.0.0.1:2888:3888", "server.2=127.0.0.1:2889:3889",
                      "server.3=127.0.0.1:2890:3890", *extra])
    return parse_config(text)


@pytest.fixture
def loop():
    return FakeLoop()


@pytest.fixture
def port():
    return FakePort()


def ensemble_server(tmp_path, *extra):
    s = ZooKeeperServer(config(tmp_path, *extra), tree=make_tree(), server_id=MY_ID,
                        clock=FakeClock())
    s.set_role(LookingRole(s))    # LOOKING: serves nobody yet
    return s


@pytest.fixture
def server(tmp_path):
    return ensemble_server(tmp_path, "readonlymode.enabled=true")


@pytest.fixture
def ro(server):
    server.set_role(ReadOnlyRole(server))
    return server


def word(server, w):
    return fourletter.run(server, w, b"")


# --- before and after -------------------------------------------------------------------

def test_a_looking_peer_serves_nobody_until_read_only_starts(server, loop):
    c = Client(server, loop)
    assert c.connect(read_only=True) is None and c.closed
    assert word(server, "isro") == "null"
    assert word(server, "mntr") == fourletter.ZK_NOT_SERVING + "\n"


def test_four_letter_words_of_a_read_only_peer(ro, loop):
    assert word(ro, "isro") == "ro"
    srvr = word(ro, "srvr").splitlines()
    assert srvr[1] == "READ-ONLY mode; serving only read-only clients"
    assert "Mode: read-only" in srvr
    c = Client(ro, loop)
    c.connect(read_only=True)
    mntr = dict(line.split("\t") for line in word(ro, "mntr").splitlines())
    assert mntr["zk_server_state"] == "read-only"
    assert (mntr["zk_global_sessions"], mntr["zk_local_sessions"]) == ("1", "1")
    assert "zk_peer_state" not in mntr and "zk_quorum_size" not in mntr
    conf = word(ro, "conf")
    assert conf.endswith("peerType=0\n") and "membership" not in conf
    dump = word(ro, "dump").splitlines()
    assert dump[1] == "Local Session Sets (1)/(1):"
    assert f"Global Sessions(1):" in dump
    assert f"0x{GLOBAL_SID:x}\t30000ms" in dump


def test_a_follower_dumps_its_global_sessions(server, port, loop):
    port.core.role = FOLLOWING
    follow_peer(server, port, Serving(True))
    dump = word(server, "dump").splitlines()
    assert dump[:3] == ["SessionTracker dump:", "Global Sessions(1):",
                        f"0x{GLOBAL_SID:x}\t30000ms"]
    conf = word(server, "conf")
    assert "membership: " in conf


# --- the handshake ---------------------------------------------------------------------------

def test_a_read_only_client_gets_a_local_session(ro, port, loop):
    c = Client(ro, loop)
    resp = c.connect(read_only=True, timeout=100000)
    assert resp.read_only is True
    assert resp.session_id >> 56 == MY_ID            # named after this peer
    assert resp.timeout == ro.config.max_session_timeout
    assert resp.passwd == session_password(resp.session_id)
    assert resp.session_id not in ro.tree.sessions   # no txn: nobody else knows it
    assert not port.sent


@pytest.mark.parametrize("read_only", [False, None], ids=["read-write", "no readOnly byte"])
def test_other_clients_are_refused(ro, loop, read_only):
    c = Client(ro, loop)
    assert c.connect(read_only=read_only) is None
    assert c.closed


def test_a_global_session_cannot_resume_on_a_read_only_peer(ro, loop):
    c = Client(ro, loop)
    assert c.connect(GLOBAL_SID, session_password(GLOBAL_SID)) is None
    assert c.closed


def test_a_client_that_has_seen_a_later_zxid_is_refused(ro, loop):
    c = Client(ro, loop)
    assert c.connect(last_zxid=ro.tree.last_zxid + 1) is None and c.closed


def test_a_local_session_resumes_and_an_unknown_one_is_expired(ro, loop):
    first = Client(ro, loop)
    resp = first.connect()
    again = Client(ro, loop)
    resp2 = again.connect(resp.session_id, resp.passwd)
    assert (resp2.session_id, resp2.read_only) == (resp.session_id, True)
    assert first.closed                              # the older connection
    unknown = Client(ro, loop)
    resp3 = unknown.connect(resp.session_id + 1, session_password(resp.session_id + 1))
    assert (resp3.timeout, resp3.session_id, resp3.read_only) == (0, 0, True)
    assert unknown.closed


# --- requests --------------------------------------------------------------------------------

def test_reads_are_answered_from_the_tree(ro, loop):
    c = Client(ro, loop)
    c.connect()
    hdr = c.request(Op.GET_DATA, PathWatchRequest("/a", False))
    assert (hdr.err, hdr.zxid) == (0, ro.tree.last_zxid)
    assert c.request(Op.GET_CHILDREN, PathWatchRequest("/a", False)).err == 0
    assert c.request(Op.EXISTS, PathWatchRequest("/nope", False)).err == Err.NO_NODE
    assert c.request(Op.PING).err == 0


@pytest.mark.parametrize("op,record", [
    (Op.CREATE, CreateRequest("/x", b"", WORLD, 0)),
    (Op.CREATE2, CreateRequest("/x", b"", WORLD, 0)),
    (Op.CREATE_CONTAINER, CreateRequest("/x", b"", WORLD, 4)),
    (Op.DELETE, DeleteRequest("/a/b", -1)),
    (Op.SET_DATA, SetDataRequest("/a", b"y", -1)),
    (Op.MULTI, MultiRequest([(Op.CHECK, CheckVersionRequest("/a", -1))])),
    (Op.SYNC, PathRequest("/a")),
    (Op.CHECK, CheckVersionRequest("/a", -1)),
    (Op.DELETE_CONTAINER, PathRequest("/a")),
], ids=lambda v: str(v) if isinstance(v, int) else "")
def test_every_state_changing_request_is_not_read_only(ro, port, loop, op, record):
    c = Client(ro, loop)
    c.connect()
    before = ro.tree.last_zxid
    hdr = c.request(op, record)
    assert (hdr.xid, hdr.zxid, hdr.err) == (c.xid, before, Err.NOT_READ_ONLY)
    assert not c.closed
    assert ro.tree.last_zxid == before and not port.sent
    assert c.request(Op.GET_DATA, PathWatchRequest("/a", False)).err == 0


def test_a_malformed_write_is_not_read_only_too(ro, loop):
    c = Client(ro, loop)
    c.connect()
    c.xid += 1
    c.send(INT.pack(9) + INT.pack(c.xid) + INT.pack(Op.SET_DATA) + b"\x00")
    (payload,) = c.frames()
    assert ReplyHeader.read(Reader(payload)).err == Err.NOT_READ_ONLY


def test_close_session_closes_the_local_session(ro, loop):
    c = Client(ro, loop)
    resp = c.connect()
    hdr = c.request(Op.CLOSE_SESSION)
    assert (hdr.err, hdr.zxid) == (0, ro.tree.last_zxid)
    assert c.closed
    assert resp.session_id not in ro.sessions.sessions
    again = Client(ro, loop)
    assert again.connect(resp.session_id, resp.passwd).timeout == 0     # expired


def test_local_sessions_expire_on_the_read_only_peer(ro, loop):
    c = Client(ro, loop)
    resp = c.connect(timeout=1000)
    session = ro.sessions.sessions[resp.session_id]
    ro.role.expire_sessions(session.expire_at)
    loop.run()
    assert c.closed and resp.session_id not in ro.sessions.sessions


# --- leaving read-only mode ------------------------------------------------------------------

def test_leaving_read_only_mode_closes_every_connection(ro, loop):
    global_tracker = ro.role.global_tracker
    clients = [Client(ro, loop) for _ in range(2)]
    for c in clients:
        c.connect()
    ro.set_role(LookingRole(ro))
    loop.run()
    assert all(c.closed for c in clients)
    assert ro.sessions is global_tracker and ro.mode == "looking"
    assert word(ro, "isro") == "null"
    assert not ro.connections


def test_serving_again_ends_read_only_mode(ro, port, loop):
    c = Client(ro, loop)
    c.connect()
    port.core.role = FOLLOWING
    follow_peer(ro, port, RoleChanged(FOLLOWING, 2, 1))
    follow_peer(ro, port, Serving(True))
    loop.run()
    assert c.closed
    assert not ro.role.read_only and ro.mode == "follower"
    assert word(ro, "isro") == "rw"
    assert GLOBAL_SID in ro.sessions.sessions       # the global tracker, rebuilt
    # A read-only client of a read-write peer gets an ordinary session.
    rw = Client(ro, loop)
    assert rw.connect(read_only=True) is None        # the leader is asked first
    msg = port.sent[-1]
    assert type(msg) is CreateSession
    sid, timeout = msg.session_id, msg.timeout
    ro.apply(Txn(sid, 0, ro.tree.last_zxid + 1, 1_700_000_000_000, Op.CREATE_SESSION,
                 (timeout,)))
    loop.run()
    (payload,) = rw.frames()
    resp = ConnectResponse.read(Reader(payload))
    assert (resp.session_id, resp.read_only) == (sid, False)


# --- the grace period: a peer that stays looking serves read-only clients ----------------

def looking_for(server, port, ms):
    """The peer goes LOOKING; ms later, is its server read-only?"""
    follow_peer(server, port, RoleChanged(LOOKING, None, 1))
    assert not server.serving
    start = server.clock.now
    server.clock.now = start + ms - 1
    server.role.tick(server.clock.now)
    assert server.mode == "looking"
    server.clock.now = start + ms
    server.role.tick(server.clock.now)
    return server.mode == "read-only"


def test_read_only_starts_after_the_grace_period_if_still_looking(server, port):
    assert looking_for(server, port, 2000)          # max(2000 ms, tickTime)


def test_the_grace_period_is_at_least_a_tick(tmp_path, port):
    server = ensemble_server(tmp_path, "readonlymode.enabled=true", "tickTime=3000")
    assert looking_for(server, port, 3000)


@pytest.mark.parametrize("state", [FOLLOWING, LEADING])
def test_a_leader_found_in_time_means_no_read_only_server(server, port, state):
    follow_peer(server, port, RoleChanged(LOOKING, None, 1))
    follow_peer(server, port, RoleChanged(state, 2, 1))
    server.clock.now += 10_000
    server.role.tick(server.clock.now)
    assert server.mode == "looking" and not server.serving


def test_a_leader_found_ends_read_only_mode(ro, port):
    follow_peer(ro, port, RoleChanged(FOLLOWING, 2, 1))
    assert ro.mode == "looking" and not ro.serving


def test_without_readonlymode_a_looking_peer_stays_looking(tmp_path, port):
    server = ensemble_server(tmp_path)
    follow_peer(server, port, RoleChanged(LOOKING, None, 1))
    server.clock.now += 10_000
    server.role.tick(server.clock.now)
    assert server.mode == "looking"
