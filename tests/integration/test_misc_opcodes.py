"""The remaining opcodes: sync, getEphemerals, getAllChildrenNumber, whoAmI,
reconfig, sasl, unknown opcodes, and setWatches / setWatches2 as a client
sends them after a reconnect."""

import pytest
from kazoo.exceptions import NoAuthError, NoNodeError, ReconfigDisabledError
from kazoo.security import ACL, Id

from zkpy.protocol.errors import Err
from zkpy.protocol.jute import Writer
from zkpy.protocol.opcodes import CreateMode, EventType, Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CreateRequest,
    PathRequest,
    ReconfigRequest,
    SASLRequest,
    SetDataRequest,
    SetWatches,
)

from .rawconn import RawConn

OPEN = list(OPEN_ACL_UNSAFE)
CREATED, DELETED, CHANGED, CHILD = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                                    EventType.NODE_DATA_CHANGED, EventType.NODE_CHILDREN_CHANGED)


# --- sync ----------------------------------------------------------------------------------------

def test_sync_echoes_the_path_and_takes_no_zxid(hosts, base):
    with RawConn.connect(hosts) as c:
        z = c.ping().zxid
        for path in (base, base + "/does-not-exist", "/"):
            hdr, r = c.call(Op.SYNC, PathRequest(path))
            assert (hdr.err, hdr.zxid) == (0, z)
            assert r.ustring() == path
            assert r.remaining() == 0


def test_sync_is_answered_after_earlier_writes(hosts, base):
    with RawConn.connect(hosts) as c:
        xs = [c.send(Op.CREATE, CreateRequest(f"{base}/s{i}", b"", OPEN, 0)) for i in range(20)]
        xs.append(c.send(Op.SYNC, PathRequest(base)))
        replies = [c.wait_reply(x)[0] for x in xs]
        assert [h.xid for h in replies] == xs
        assert replies[-1].zxid == replies[-2].zxid


def test_kazoo_sync(zk, zk2, base):
    zk.create(base + "/k", b"v")
    assert zk2.sync(base) == base
    assert zk2.get(base + "/k")[0] == b"v"


# --- getEphemerals -------------------------------------------------------------------------------

def test_get_ephemerals(hosts, base):
    with RawConn.connect(hosts) as c, RawConn.connect(hosts) as other:
        for name in ("ea", "eab", "x/e"):
            if "/" in name:
                c.call(Op.CREATE, CreateRequest(f"{base}/x", b"", OPEN, 0))
            assert c.err(Op.CREATE, CreateRequest(f"{base}/{name}", b"", OPEN, CreateMode.EPHEMERAL)) == 0
        c.call(Op.CREATE, CreateRequest(f"{base}/persistent", b"", OPEN, 0))
        other.call(Op.CREATE, CreateRequest(f"{base}/theirs", b"", OPEN, CreateMode.EPHEMERAL))

        def ephemerals(prefix):
            hdr, r = c.call(Op.GET_EPHEMERALS, PathRequest(prefix))
            assert hdr.err == 0
            return sorted(r.strings())

        mine = sorted([f"{base}/ea", f"{base}/eab", f"{base}/x/e"])
        for everything in ("/", "", None, " ", " / "):
            assert ephemerals(everything) == mine
        assert ephemerals(base + "/ea") == [f"{base}/ea", f"{base}/eab"]  # a string prefix
        assert ephemerals(base + "/x") == [f"{base}/x/e"]
        assert ephemerals(base + "/nothing") == []
        assert ephemerals(base[1:]) == []
        hdr, r = other.call(Op.GET_EPHEMERALS, PathRequest("/"))
        assert r.strings() == [f"{base}/theirs"]


def test_get_ephemerals_of_a_session_without_any(hosts):
    with RawConn.connect(hosts) as c:
        hdr, r = c.call(Op.GET_EPHEMERALS, PathRequest("/"))
        assert hdr.err == 0 and r.strings() == []


# --- getAllChildrenNumber ------------------------------------------------------------------------

def test_get_all_children_number(make_server):
    srv = make_server()
    with RawConn.connect(srv.hosts) as c:
        def count(path):
            hdr, r = c.call(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(path))
            return r.int() if hdr.err == 0 else hdr.err

        assert count("/") == 3  # /zookeeper, /zookeeper/quota, /zookeeper/config
        assert count("/zookeeper") == 2
        for p in ("/a", "/a/b", "/a/b/c", "/a/d", "/ab"):
            c.call(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        assert count("/") == 8
        assert count("/a") == 3
        assert count("/a/b/c") == 0
        assert count("/missing") == Err.NO_NODE
        assert count("") == 9  # ZooKeeper counts every key that starts with "/"


def test_get_all_children_number_needs_read(zk, base, hosts):
    zk.create(base + "/locked", acl=[ACL(0, Id("world", "anyone"))])
    with RawConn.connect(hosts) as c:
        assert c.err(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(base + "/locked")) == Err.NO_AUTH


# --- reconfig, sasl, unknown opcodes --------------------------------------------------------------

def test_reconfig_is_disabled(hosts, zk):
    with RawConn.connect(hosts) as c:
        z = c.ping().zxid
        hdr, r = c.call(Op.RECONFIG, ReconfigRequest("server.2=127.0.0.1:2888:3888", None, None, -1))
        assert hdr.err == Err.RECONFIG_DISABLED
        assert r.remaining() == 0
        assert hdr.zxid == z + 1  # an error txn, like any failed write
        assert c.ping().err == 0
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving="2", new_members=None)


@pytest.mark.parametrize("op", [0, 10, 23, 99, 108, 999, -3, -100, 0x7FFFFFFF])
def test_unknown_opcode_is_unimplemented_and_closes(hosts, zk, base, op):
    with RawConn.connect(hosts) as c:
        z = c.ping().zxid
        hdr, r = c.call_payload(op, b"\0" * 12)
        assert (hdr.err, hdr.zxid) == (Err.UNIMPLEMENTED, -1)
        assert r.remaining() == 0
        assert c.is_closed()
    assert zk.exists(base) is not None
    with RawConn.connect(hosts) as c:
        assert c.ping().zxid == z + 1  # only the new session took a zxid


@pytest.mark.zkpy_only  # 3.8.0 runs it as a write: errors come back, success never answers
def test_top_level_check_is_unimplemented(hosts, base):
    from zkpy.protocol.records import CheckVersionRequest

    with RawConn.connect(hosts) as c:
        hdr, _ = c.call(Op.CHECK, CheckVersionRequest(base, 0))
        assert hdr.err == Err.UNIMPLEMENTED
        assert c.is_closed()


@pytest.mark.zkpy_only  # 3.8.0 answers MarshallingError (an error txn) and keeps the connection
def test_create_session_after_the_handshake_is_refused(hosts):
    with RawConn.connect(hosts) as c:
        hdr, _ = c.call_payload(Op.CREATE_SESSION, b"")
        assert hdr.err == Err.UNIMPLEMENTED
        assert c.is_closed()


@pytest.mark.zkpy_only  # 3.8.0 without SASL configured answers OK with a null token
def test_sasl_without_sasl_configured_fails_auth_and_closes(hosts, zk, base):
    with RawConn.connect(hosts) as c:
        hdr, r = c.call(Op.SASL, SASLRequest(b"token"))
        assert (hdr.err, hdr.zxid) == (Err.AUTH_FAILED, 0)
        assert c.is_closed()
    assert zk.exists(base) is not None


# --- whoAmI ------------------------------------------------------------------------------------

def test_who_am_i_of_a_fresh_connection(hosts):
    with RawConn.connect(hosts) as c:
        hdr, r = c.call(Op.WHO_AM_I)
        assert hdr.err == 0
        n = r.int()
        assert [(r.ustring(), r.ustring()) for _ in range(n)] == [("ip", "127.0.0.1")]
        assert r.remaining() == 0


# --- setWatches / setWatches2 -------------------------------------------------------------------

def test_set_watches_after_reconnect(hosts, base, zk):
    """Catch-up events for what changed since relativeZxid go out before the
    reply; the rest is registered and fires later."""
    for name in ("same", "changed", "gone", "exists", "kids-same", "kids-changed", "kids-gone"):
        zk.create(f"{base}/{name}", b"")
    zk.create(f"{base}/kids-same/k")
    with RawConn.connect(hosts) as c:
        rz = c.ping().zxid
        sid, passwd = c.session_id, c.passwd
    zk.set(f"{base}/changed", b"new")
    zk.delete(f"{base}/gone")
    zk.create(f"{base}/kids-changed/k")
    zk.delete(f"{base}/kids-gone")
    with RawConn.connect(hosts, session_id=sid, passwd=passwd, last_zxid=rz) as c:
        sw = SetWatches(
            rz,
            [f"{base}/same", f"{base}/changed", f"{base}/gone"],
            [f"{base}/exists", f"{base}/not-yet"],
            [f"{base}/kids-same", f"{base}/kids-changed", f"{base}/kids-gone"])
        z = c.ping().zxid
        c.frames.clear()
        hdr, r = c.call(Op.SET_WATCHES, sw, xid=-8)
        assert (hdr.xid, hdr.err, hdr.zxid) == (-8, 0, z)
        assert r.remaining() == 0
        assert [k for k, _ in c.frames] == ["event"] * 5 + ["reply"]
        assert c.take_events() == [
            (CHANGED, f"{base}/changed"), (DELETED, f"{base}/gone"),
            (CREATED, f"{base}/exists"),
            (CHILD, f"{base}/kids-changed"), (DELETED, f"{base}/kids-gone")]
        assert all(zx == -1 for zx in c.event_zxids)
        # What was registered fires now; what produced an event was not registered.
        zk.set(f"{base}/same", b"1")
        zk.create(f"{base}/not-yet")
        zk.create(f"{base}/kids-same/k2")
        zk.set(f"{base}/changed", b"again")
        zk.set(f"{base}/exists", b"again")
        got = {(c.wait_event().type, c.events[-1].path) for _ in range(3)}
        assert got == {(CHANGED, f"{base}/same"), (CREATED, f"{base}/not-yet"),
                       (CHILD, f"{base}/kids-same")}
        assert c.no_more_events()


def test_set_watches_with_a_positive_xid(hosts, base):
    with RawConn.connect(hosts) as c:
        z = c.ping().zxid
        hdr, _ = c.call(Op.SET_WATCHES, SetWatches(z, [base], [], []), xid=42)
        assert (hdr.xid, hdr.err) == (42, 0)
        c.call(Op.SET_DATA, SetDataRequest(base, b"x", -1))
        assert c.take_events() == [(CHANGED, base)]


def test_set_watches2_registers_persistent_watches_without_catch_up(hosts, base, zk):
    zk.create(base + "/p")
    zk.create(base + "/r")
    with RawConn.connect(hosts) as c:
        sw = SetWatches(0, [], [], [], [base + "/p"], [base + "/r"])
        c.frames.clear()
        hdr, r = c.call(Op.SET_WATCHES2, sw)
        assert hdr.err == 0 and r.remaining() == 0
        assert [k for k, _ in c.frames] == ["reply"]  # relativeZxid 0, yet no events
        zk.set(base + "/p", b"1")
        zk.create(base + "/p/kid")
        zk.create(base + "/r/a")
        zk.create(base + "/r/a/b")
        zk.set(base + "/p", b"2")
        got = [c.wait_event() for _ in range(5)]
        assert [(e.type, e.path) for e in got] == [
            (CHANGED, base + "/p"), (CHILD, base + "/p"), (CREATED, base + "/r/a"),
            (CREATED, base + "/r/a/b"), (CHANGED, base + "/p")]
        assert c.no_more_events()


@pytest.mark.parametrize("counts, err", [
    ((0, 0, 0), 0), ((0, -1, 0), Err.MARSHALLING_ERROR), ((-1, -1, -1), Err.MARSHALLING_ERROR)])
def test_set_watches_with_empty_and_null_lists(hosts, counts, err):
    w = Writer()
    w.long(0)
    for n in counts:
        w.int(n)
    with RawConn.connect(hosts) as c:
        hdr, _ = c.call_payload(Op.SET_WATCHES, bytes(w.out))
        assert hdr.err == err
        assert c.ping().err == 0


def test_kazoo_api_on_missing_nodes_reports_no_node(zk, base):
    with pytest.raises(NoNodeError):
        zk.get_acls(base + "/missing")
    zk.create(base + "/locked", acl=[ACL(0, Id("world", "anyone"))])
    with pytest.raises(NoAuthError):
        zk.get_acls(base + "/locked")
    with pytest.raises(NoAuthError):
        zk.get(base + "/locked")
    zk.delete(base + "/locked")  # DELETE on the (open) parent is enough
