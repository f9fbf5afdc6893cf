"""Local sessions without a network: the session tracker's two kinds of
session, and a follower's and a leader's server (real roles, real
ClientConnection objects on a fake transport, a fake clock) with
localSessionsEnabled.

What is asserted is what a 3-peer Apache ZooKeeper 3.8.0 ensemble did with
the same requests (tests/ensemble/test_local_sessions.py runs them against
one): sessions made and closed with no message to the leader and no txn,
ids with the server's id in the top byte, an ephemeral's upgrade (a
createSession ahead of the request) or its refusal (EphemeralOnLocalSession
for the request whose txn failed at the leader), the leader's checks of
sessions it does not know, mntr and dump."""

import pytest

from zkpy.datatree.txn import Txn
from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.jute import Reader
from zkpy.protocol.records import (
    CreateRequest, MultiRequest, PathWatchRequest, ReplyHeader, SetDataRequest, encode_request,
)
from zkpy.server.request import Request
from zkpy.server.roles import FollowerRole, LeaderRole
from zkpy.server.roles.local_sessions import needs_global_session
from zkpy.session.tracker import SessionTracker, session_password
from zkpy.zab.messages import (
    CreateSession, ForwardRequest, Revalidate, Revalidated, Touch,
)
from zkpy.zab.peer import FOLLOWING

from test_read_only import (  # the fakes of the read-only tests: loop, port, client
    GLOBAL_SID, MY_ID, WORLD, Client, FakeLoop, FakePort, ensemble_server, word,
)

WALL = 1_700_000_000_000


# --- the tracker ---------------------------------------------------------------------------

def tracker():
    return SessionTracker(3, 500, 0, WALL)


def test_local_sessions_expire_from_buckets_of_their_own():
    t = tracker()
    t.add(1, 1000, 0)
    t.add(2, 1000, 0, local=True)
    assert t.is_local(2) and not t.is_local(1) and t.local_count() == 1
    assert t.is_valid(1) and t.is_valid(2)
    assert t.expired(5000) == [1]              # a global session's expiry
    assert t.expired_local(5000) == [2]        # a local one's, separately
    assert not t.is_valid(2)


def test_an_upgrade_makes_a_local_session_global_once():
    t = tracker()
    t.add(2, 1500, 0, local=True)
    assert t.upgrade(2, 100) == 1500
    assert not t.is_local(2) and t.local_count() == 0
    assert t.upgrade(2, 100) is None           # already global
    assert t.upgrade(99, 100) is None          # unknown
    assert t.expired_local(10_000) == [] and t.expired(10_000) == [2]


def test_a_committed_create_session_makes_a_session_global():
    t = tracker()
    t.add(2, 1500, 0, local=True)
    t.add(2, 1500, 200)                        # its createSession txn applied
    assert not t.is_local(2)
    assert not t.local.buckets and t.buckets
    t.remove(2)
    assert not t.buckets and not t.sessions


def test_clear_forgets_both_kinds():
    t = tracker()
    t.add(1, 1000, 0)
    t.add(2, 1000, 0, local=True)
    t.clear()
    assert not t.sessions and not t.buckets and not t.local.buckets


# --- which requests need a global session --------------------------------------------------

def req(op, record):
    return Request(None, 1, op, record, 0)


@pytest.mark.parametrize("op,record,needs", [
    (Op.CREATE, CreateRequest("/e", b"", WORLD, 1), True),
    (Op.CREATE2, CreateRequest("/e", b"", WORLD, 3), True),
    (Op.CREATE, CreateRequest("/p", b"", WORLD, 0), False),
    (Op.CREATE, CreateRequest("/p", b"", WORLD, 2), False),
    # Not upgraded: the leader refuses them as a session that is not global.
    (Op.CREATE_CONTAINER, CreateRequest("/c", b"", WORLD, 1), False),
    (Op.MULTI, MultiRequest([(Op.CREATE, CreateRequest("/p", b"", WORLD, 0)),
                             (Op.CREATE_CONTAINER, CreateRequest("/e", b"", WORLD, 1))]), True),
    (Op.MULTI, MultiRequest([(Op.CREATE, CreateRequest("/p", b"", WORLD, 0))]), False),
    (Op.SET_DATA, SetDataRequest("/p", b"", -1), False),
    (Op.CREATE, None, False),                  # undecodable: MarshallingError at the leader
], ids=lambda v: "" if not isinstance(v, int) else str(v))
def test_needs_global_session(op, record, needs):
    assert needs_global_session(req(op, record)) is needs


# --- a follower --------------------------------------------------------------------------

@pytest.fixture
def loop():
    return FakeLoop()


def serving(tmp_path, port, role, *extra):
    server = ensemble_server(tmp_path, "localSessionsEnabled=true", *extra)
    port.core.role = FOLLOWING
    port.base = server.tree.last_zxid
    server.set_role(role(server, port))
    return server


@pytest.fixture
def follower(tmp_path):
    port = FakePort()
    return serving(tmp_path, port, FollowerRole, "localSessionsUpgradingEnabled=true"), port


@pytest.fixture
def follower_without_upgrades(tmp_path):
    port = FakePort()
    return serving(tmp_path, port, FollowerRole), port


def commit(server, sid, cxid, op, body):
    """The leader's txn reaches the follower."""
    txn = Txn(sid, cxid, server.tree.last_zxid + 1, WALL, op, body)
    server.apply(txn)
    return txn


def test_a_follower_grants_a_local_session_at_once(follower, loop):
    server, port = follower
    before = server.tree.last_zxid
    c = Client(server, loop)
    resp = c.connect(read_only=False)
    assert resp.session_id >> 56 == MY_ID and resp.timeout == 10000
    assert resp.passwd == session_password(resp.session_id)
    assert not port.sent and server.tree.last_zxid == before
    mntr = dict(line.split("\t") for line in word(server, "mntr").splitlines())
    assert (mntr["zk_global_sessions"], mntr["zk_local_sessions"]) == ("1", "1")
    dump = word(server, "dump").splitlines()
    assert dump[1] == "Local Session Sets (1)/(1):"
    assert f"\t0x{resp.session_id:x}" in dump
    assert dump[dump.index("Global Sessions(1):") + 1] == f"0x{GLOBAL_SID:x}\t30000ms"


def test_a_local_session_resumes_here_without_the_leader(follower, loop):
    server, port = follower
    first = Client(server, loop)
    resp = first.connect(read_only=False)
    again = Client(server, loop)
    assert again.connect(resp.session_id, resp.passwd, read_only=False).session_id == \
        resp.session_id
    assert first.closed and not port.sent
    # A session it does not have as local is the leader's to judge.
    other = Client(server, loop)
    assert other.connect(GLOBAL_SID, session_password(GLOBAL_SID), read_only=False) is None
    assert type(port.sent[-1]) is Revalidate


def test_a_local_sessions_writes_go_to_the_leader_and_it_is_not_touched_there(follower, loop):
    server, port = follower
    c = Client(server, loop)
    resp = c.connect(read_only=False)
    assert c.request(Op.SET_DATA, SetDataRequest("/a", b"x", -1)) is None
    (fwd,) = port.sent
    assert type(fwd) is ForwardRequest and fwd.session_id == resp.session_id
    server.clock.now += 10_000
    server.role.tick(server.clock.now)
    assert not [m for m in port.sent if type(m) is Touch]


def test_an_ephemeral_upgrades_the_session_first(follower, loop):
    server, port = follower
    c = Client(server, loop)
    resp = c.connect(read_only=False, timeout=6000)
    sid = resp.session_id
    assert c.request(Op.CREATE, CreateRequest("/e", b"", WORLD, 1)) is None
    upgrade, fwd = port.sent
    assert (type(upgrade), upgrade.session_id, upgrade.timeout) == (CreateSession, sid, 6000)
    assert type(fwd) is ForwardRequest and fwd.op == Op.CREATE
    assert not server.sessions.is_local(sid)
    # Its createSession commits, then the create: the client sees the create.
    commit(server, sid, 0, Op.CREATE_SESSION, (6000,))
    assert sid in server.tree.sessions
    loop.run()
    assert c.frames() == []
    txn = commit(server, sid, c.xid, Op.CREATE, ("/e", b"", WORLD, sid, 1))
    loop.run()
    (payload,) = c.frames()
    hdr = ReplyHeader.read(Reader(payload))
    assert (hdr.err, hdr.zxid) == (0, txn.zxid)
    # A global session now: the leader keeps it alive.
    c.request(Op.GET_DATA, PathWatchRequest("/e", False))
    server.clock.now += 10_000
    server.role.tick(server.clock.now)
    touch = [m for m in port.sent if type(m) is Touch]
    assert touch and sid in touch[-1].session_ids
    mntr = dict(line.split("\t") for line in word(server, "mntr").splitlines())
    assert (mntr["zk_global_sessions"], mntr["zk_local_sessions"]) == ("2", "0")


def test_without_upgrading_the_ephemeral_fails_with_ephemeral_on_local_session(
        follower_without_upgrades, loop):
    server, port = follower_without_upgrades
    c = Client(server, loop)
    sid = c.connect(read_only=False).session_id
    assert c.request(Op.CREATE, CreateRequest("/e", b"", WORLD, 1)) is None
    (fwd,) = port.sent                       # forwarded anyway, no upgrade
    assert type(fwd) is ForwardRequest
    # The leader does not know the session: an error txn (a zxid used up).
    txn = commit(server, sid, c.xid, Op.ERROR, (Err.SESSION_EXPIRED,))
    loop.run()
    (payload,) = c.frames()
    hdr = ReplyHeader.read(Reader(payload))
    assert (hdr.err, hdr.zxid) == (Err.EPHEMERAL_ON_LOCAL_SESSION, txn.zxid)
    assert server.sessions.is_local(sid)
    # Another write's error is the leader's.
    assert c.request(Op.SET_DATA, SetDataRequest("/nope", b"", -1)) is None
    commit(server, sid, c.xid, Op.ERROR, (Err.NO_NODE,))
    loop.run()
    (payload,) = c.frames()
    assert ReplyHeader.read(Reader(payload)).err == Err.NO_NODE


def test_close_session_of_a_local_session_is_answered_here(follower, loop):
    server, port = follower
    c = Client(server, loop)
    resp = c.connect(read_only=False)
    hdr = c.request(Op.CLOSE_SESSION)
    assert (hdr.err, hdr.zxid) == (0, server.tree.last_zxid)
    assert c.closed and not port.sent
    assert resp.session_id not in server.sessions.sessions


def test_close_session_waits_for_the_write_ahead_of_it(follower, loop):
    server, port = follower
    c = Client(server, loop)
    sid = c.connect(read_only=False).session_id
    c.xid += 1
    c.send(encode_request(c.xid, Op.SET_DATA, SetDataRequest("/a", b"x", -1)) +
           encode_request(c.xid + 1, Op.CLOSE_SESSION))
    set_xid = c.xid
    c.xid += 1
    assert c.frames() == [] and server.sessions.is_local(sid)
    txn = commit(server, sid, set_xid, Op.SET_DATA, ("/a", b"x", 1))
    loop.run()
    hdrs = [ReplyHeader.read(Reader(p)) for p in c.frames()]
    assert [(h.xid, h.zxid, h.err) for h in hdrs] == [(set_xid, txn.zxid, 0),
                                                       (c.xid, txn.zxid, 0)]
    assert c.closed and sid not in server.sessions.sessions


def test_local_sessions_expire_on_their_server(follower, loop):
    server, port = follower
    c = Client(server, loop)
    sid = c.connect(read_only=False, timeout=1000).session_id
    session = server.sessions.sessions[sid]
    server.tick(session.expire_at)
    loop.run()
    assert c.closed and sid not in server.sessions.sessions and not port.sent


# --- a leader ----------------------------------------------------------------------------

class LeaderPort(FakePort):
    def __init__(self):
        super().__init__()
        self.apps = []

    base = 0

    def next_zxid(self):
        return self.base + 1

    def reset_proposal_sizes(self):
        pass

    def send_app(self, to, msg):
        self.apps.append((to, msg))


@pytest.fixture
def leader(tmp_path):
    port = LeaderPort()
    return serving(tmp_path, port, LeaderRole, "localSessionsUpgradingEnabled=true"), port


@pytest.fixture
def leader_without_upgrades(tmp_path):
    port = LeaderPort()
    return serving(tmp_path, port, LeaderRole), port


def forwarded(server, frm, sid, xid, op, record):
    """A learner forwards a client's write (the in-memory log applies its
    txn at once)."""
    payload = encode_request(xid, op, record)[4:]
    server.role.on_app(frm, ForwardRequest(sid, xid, op, payload, []))


def test_the_leaders_own_clients_get_local_sessions(leader, loop):
    server, port = leader
    before = server.tree.last_zxid
    c = Client(server, loop)
    resp = c.connect(read_only=False)
    assert resp.session_id >> 56 == MY_ID and server.tree.last_zxid == before
    dump = word(server, "dump").splitlines()
    assert dump[1] == "Local Session Sets (1)/(1):"
    assert "Global Session Sets (1)/(1):" in dump
    # A learner's client cannot resume it.
    server.role.on_app(1, Revalidate(resp.session_id, 5000, 7))
    assert port.apps[-1] == (1, Revalidated(7, False))
    server.role.on_app(1, Revalidate(GLOBAL_SID, 5000, 8))
    assert port.apps[-1] == (1, Revalidated(8, True))


def test_the_leaders_ephemeral_upgrade_is_a_create_session_txn_first(leader, loop):
    server, port = leader
    c = Client(server, loop)
    sid = c.connect(read_only=False).session_id
    before = server.tree.last_zxid
    hdr = c.request(Op.CREATE, CreateRequest("/e", b"", WORLD, 1))
    assert (hdr.err, hdr.zxid) == (0, before + 2)
    assert sid in server.tree.sessions and server.tree.nodes["/e"].owner == sid
    assert not server.sessions.is_local(sid)


def test_an_upgrade_is_not_audited_and_its_create_is(tmp_path, loop, caplog):
    port = LeaderPort()
    server = serving(tmp_path, port, LeaderRole, "localSessionsUpgradingEnabled=true",
                     "audit.enable=true")
    c = Client(server, loop)
    c.connect(read_only=False)
    with caplog.at_level("INFO"):
        assert c.request(Op.CREATE, CreateRequest("/e", b"", WORLD, 1)).err == 0
    audit = [r.getMessage() for r in caplog.records if r.name == "zkpy.audit"]
    assert len(audit) == 1 and "operation=create" in audit[0] and "znode=/e" in audit[0]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_leaders_refusal_without_upgrading(leader_without_upgrades, loop):
    server, port = leader_without_upgrades
    c = Client(server, loop)
    c.connect(read_only=False)
    before = server.tree.last_zxid
    hdr = c.request(Op.CREATE, CreateRequest("/e", b"", WORLD, 1))
    assert (hdr.err, hdr.zxid) == (Err.EPHEMERAL_ON_LOCAL_SESSION, before + 1)
    # createContainer with an ephemeral mode is not upgraded: not global.
    hdr = c.request(Op.CREATE_CONTAINER, CreateRequest("/c", b"", WORLD, 1))
    assert hdr.err == Err.SESSION_EXPIRED


OTHER_LOCAL = (1 << 56) | 0x1234        # a local session of server 1
MY_UNKNOWN = (MY_ID << 56) | 0x1234     # one of ours, gone


def test_the_leader_lets_other_servers_local_sessions_write(leader, loop):
    server, port = leader
    before = server.tree.last_zxid
    forwarded(server, 1, OTHER_LOCAL, 5, Op.SET_DATA, SetDataRequest("/a", b"z", -1))
    assert server.tree.nodes["/a"].data == b"z" and server.tree.last_zxid == before + 1
    # ... but not own an ephemeral, nor write once its id says it was ours.
    forwarded(server, 1, OTHER_LOCAL, 6, Op.CREATE, CreateRequest("/e", b"", WORLD, 1))
    forwarded(server, 1, MY_UNKNOWN, 7, Op.SET_DATA, SetDataRequest("/a", b"w", -1))
    assert "/e" not in server.tree.nodes and server.tree.nodes["/a"].data == b"z"
    assert server.tree.last_zxid == before + 3         # two error txns


def test_prep_of_an_unknown_session_without_local_sessions_is_expired(tmp_path, loop):
    port = LeaderPort()
    server = ensemble_server(tmp_path)
    port.base = server.tree.last_zxid
    server.set_role(LeaderRole(server, port))
    forwarded(server, 1, OTHER_LOCAL, 5, Op.SET_DATA, SetDataRequest("/a", b"z", -1))
    assert server.tree.nodes["/a"].data == b"data"


def test_the_leader_expires_its_local_sessions_without_a_txn(leader, loop):
    server, port = leader
    c = Client(server, loop)
    sid = c.connect(read_only=False, timeout=1000).session_id
    before = server.tree.last_zxid
    server.tick(server.sessions.sessions[sid].expire_at)
    loop.run()
    assert c.closed and sid not in server.sessions.sessions
    assert server.tree.last_zxid == before


def test_standalone_has_no_local_sessions(tmp_path, loop):
    from zkpy.server.config import parse_config
    from zkpy.server.zkserver import ZooKeeperServer
    config = parse_config(f"dataDir={tmp_path}\nlocalSessionsEnabled=true\n"
                          "localSessionsUpgradingEnabled=true\n")
    server = ZooKeeperServer(config)
    c = Client(server, loop)
    sid = c.connect(read_only=False).session_id
    assert sid in server.tree.sessions and not server.sessions.is_local(sid)


# --- a silent connection ------------------------------------------------------------------

def test_a_silent_connection_closes_when_the_expiry_queue_says(follower, loop):
    """NIOServerCnxnFactory keeps connections in an expiry queue of
    nio.sessionlessCnxnTimeout (10 s) intervals: a connection whose client
    went silent is closed at the first multiple of it after its last read
    plus its session timeout -- usually after its session expired and took
    it.  (A follower expires no global session: only this closes it.)"""
    server, port = follower
    c = Client(server, loop)
    assert c.connect(GLOBAL_SID, session_password(GLOBAL_SID), read_only=False) is None
    revalidate = port.sent[-1]
    server.role.on_app(2, Revalidated(revalidate.token, True))
    loop.run()
    conn = c.conn
    due = ((conn.last_recv + conn.timeout) // 10_000 + 1) * 10_000
    assert due > conn.last_recv + conn.timeout + 1
    server.tick(conn.last_recv + conn.timeout + 1)
    loop.run()
    assert not c.closed
    server.tick(due)
    loop.run()
    assert c.closed
