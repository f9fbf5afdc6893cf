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
    PathWatchRequest,
    ReconfigRequest,
    SASLRequest,
    SetDataRequest,
    SetWatches,
)

from zkpy.rawclient import RawClient

OPEN = list(OPEN_ACL_UNSAFE)
CREATED, DELETED, CHANGED, CHILD = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                                    EventType.NODE_DATA_CHANGED, EventType.NODE_CHILDREN_CHANGED)


def taken(c):
    """(type, path) of every notification c received and had not taken yet."""
    return [(n.event.type, n.event.path) for n in c.take_events()]


# --- sync ----------------------------------------------------------------------------------------

def test_sync_echoes_the_path_and_takes_no_zxid(hosts, base):
    with RawClient.open(hosts) as c:
        z = c.ping()[0].zxid
        for path in (base, base + "/does-not-exist", "/"):
            hdr, synced = c.request(Op.SYNC, PathRequest(path))  # (nothing left over)
            assert (hdr.err, hdr.zxid) == (0, z)
            assert synced == path


def test_sync_is_answered_after_earlier_writes(hosts, base):
    with RawClient.open(hosts) as c:
        xs = [c.send(Op.CREATE, CreateRequest(f"{base}/s{i}", b"", OPEN, 0)) for i in range(20)]
        xs.append(c.send(Op.SYNC, PathRequest(base)))
        replies = [c.read_reply(Op.CREATE)[0] for _ in range(20)] + [c.read_reply(Op.SYNC)[0]]
        assert [h.xid for h in replies] == xs
        assert replies[-1].zxid == replies[-2].zxid


def test_kazoo_sync(zk, zk2, base):
    zk.create(base + "/k", b"v")
    assert zk2.sync(base) == base
    assert zk2.get(base + "/k")[0] == b"v"


# --- getEphemerals -------------------------------------------------------------------------------

def test_get_ephemerals(hosts, base):
    with RawClient.open(hosts) as c, RawClient.open(hosts) as other:
        for name in ("ea", "eab", "x/e"):
            if "/" in name:
                c.request(Op.CREATE, CreateRequest(f"{base}/x", b"", OPEN, 0))
            req = CreateRequest(f"{base}/{name}", b"", OPEN, CreateMode.EPHEMERAL)
            assert c.request(Op.CREATE, req)[0].err == 0
        c.request(Op.CREATE, CreateRequest(f"{base}/persistent", b"", OPEN, 0))
        other.request(Op.CREATE, CreateRequest(f"{base}/theirs", b"", OPEN, CreateMode.EPHEMERAL))

        def ephemerals(prefix):
            hdr, paths = c.request(Op.GET_EPHEMERALS, PathRequest(prefix))
            assert hdr.err == 0
            return sorted(paths)

        mine = sorted([f"{base}/ea", f"{base}/eab", f"{base}/x/e"])
        for everything in ("/", "", None, " ", " / "):
            assert ephemerals(everything) == mine
        assert ephemerals(base + "/ea") == [f"{base}/ea", f"{base}/eab"]  # a string prefix
        assert ephemerals(base + "/x") == [f"{base}/x/e"]
        assert ephemerals(base + "/nothing") == []
        assert ephemerals(base[1:]) == []
        hdr, paths = other.request(Op.GET_EPHEMERALS, PathRequest("/"))
        assert paths == [f"{base}/theirs"]


def test_get_ephemerals_of_a_session_without_any(hosts):
    with RawClient.open(hosts) as c:
        hdr, paths = c.request(Op.GET_EPHEMERALS, PathRequest("/"))
        assert hdr.err == 0 and paths == []


# --- getAllChildrenNumber ------------------------------------------------------------------------

def test_get_all_children_number(make_server):
    srv = make_server()
    with RawClient.open(srv.hosts) as c:
        def count(path):
            hdr, number = c.request(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(path))
            return number if hdr.err == 0 else hdr.err

        assert count("/") == 3  # /zookeeper, /zookeeper/quota, /zookeeper/config
        assert count("/zookeeper") == 2
        for p in ("/a", "/a/b", "/a/b/c", "/a/d", "/ab"):
            c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        assert count("/") == 8
        assert count("/a") == 3
        assert count("/a/b/c") == 0
        assert count("/missing") == Err.NO_NODE
        assert count("") == 9  # ZooKeeper counts every key that starts with "/"


def test_get_all_children_number_needs_read(zk, base, hosts):
    zk.create(base + "/locked", acl=[ACL(0, Id("world", "anyone"))])
    with RawClient.open(hosts) as c:
        assert c.request(
            Op.GET_ALL_CHILDREN_NUMBER, PathRequest(base + "/locked"))[0].err == Err.NO_AUTH


# --- reconfig, sasl, unknown opcodes --------------------------------------------------------------

def test_reconfig_is_disabled(hosts, zk):
    with RawClient.open(hosts) as c:
        z = c.ping()[0].zxid
        hdr, body = c.request(
            Op.RECONFIG, ReconfigRequest("server.2=127.0.0.1:2888:3888", None, None, -1))
        assert hdr.err == Err.RECONFIG_DISABLED
        assert body is None
        assert hdr.zxid == z + 1  # an error txn, like any failed write
        assert c.ping()[0].err == 0
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving="2", new_members=None)


@pytest.mark.parametrize("op", [0, 10, 23, 99, 108, 999, -3, -100, 0x7FFFFFFF])
def test_unknown_opcode_is_unimplemented_and_closes(hosts, zk, base, op):
    with RawClient.open(hosts) as c:
        z = c.ping()[0].zxid
        hdr, body = c.request(op, b"\0" * 12)
        assert (hdr.err, hdr.zxid) == (Err.UNIMPLEMENTED, -1)
        assert body is None
        assert c.is_closed_by_server()
    assert zk.exists(base) is not None
    with RawClient.open(hosts) as c:
        assert c.ping()[0].zxid == z + 1  # only the new session took a zxid


@pytest.mark.zkpy_only  # 3.8.0 runs it as a write: errors come back, success never answers
def test_top_level_check_is_unimplemented(hosts, base):
    from zkpy.protocol.records import CheckVersionRequest

    with RawClient.open(hosts) as c:
        hdr, _ = c.request(Op.CHECK, CheckVersionRequest(base, 0))
        assert hdr.err == Err.UNIMPLEMENTED
        assert c.is_closed_by_server()


@pytest.mark.zkpy_only  # 3.8.0 answers MarshallingError (an error txn) and keeps the connection
def test_create_session_after_the_handshake_is_refused(hosts):
    with RawClient.open(hosts) as c:
        hdr, _ = c.request(Op.CREATE_SESSION, b"")
        assert hdr.err == Err.UNIMPLEMENTED
        assert c.is_closed_by_server()


def test_sasl_without_sasl_configured_answers_ok_with_a_null_token(hosts, zk, base):
    # ZooKeeper 3.8: the connection has no SaslServer; processSasl answers OK
    # with a null token and the connection stays.
    with RawClient.open(hosts) as c:
        hdr, token = c.request(Op.SASL, SASLRequest(b"token"))
        assert (hdr.err, hdr.zxid, token) == (0, 0, None)
        hdr, _ = c.request(Op.EXISTS, PathWatchRequest(base, False))
        assert hdr.err == 0
    assert zk.exists(base) is not None


# --- whoAmI ------------------------------------------------------------------------------------

def test_who_am_i_of_a_fresh_connection(hosts):
    with RawClient.open(hosts) as c:
        hdr, infos = c.request(Op.WHO_AM_I)  # (nothing left over)
        assert hdr.err == 0
        assert infos == [("ip", "127.0.0.1")]


# --- setWatches / setWatches2 -------------------------------------------------------------------

def test_set_watches_after_reconnect(hosts, base, zk):
    """Catch-up events for what changed since relativeZxid go out before the
    reply; the rest is registered and fires later."""
    for name in ("same", "changed", "gone", "exists", "kids-same", "kids-changed", "kids-gone"):
        zk.create(f"{base}/{name}", b"")
    zk.create(f"{base}/kids-same/k")
    with RawClient.open(hosts) as c:
        rz = c.ping()[0].zxid
        sid, passwd = c.session_id, c.passwd
    zk.set(f"{base}/changed", b"new")
    zk.delete(f"{base}/gone")
    zk.create(f"{base}/kids-changed/k")
    zk.delete(f"{base}/kids-gone")
    with RawClient.open(hosts, session_id=sid, passwd=passwd, last_zxid=rz) as c:
        sw = SetWatches(
            rz,
            [f"{base}/same", f"{base}/changed", f"{base}/gone"],
            [f"{base}/exists", f"{base}/not-yet"],
            [f"{base}/kids-same", f"{base}/kids-changed", f"{base}/kids-gone"])
        z = c.ping()[0].zxid
        c.received.clear()
        hdr, body = c.request(Op.SET_WATCHES, sw, xid=-8, raw=True)
        assert (hdr.xid, hdr.err, hdr.zxid) == (-8, 0, z)
        assert body == b""
        assert [k for k, _ in c.received] == ["event"] * 5 + ["reply"]
        assert taken(c) == [
            (CHANGED, f"{base}/changed"), (DELETED, f"{base}/gone"),
            (CREATED, f"{base}/exists"),
            (CHILD, f"{base}/kids-changed"), (DELETED, f"{base}/kids-gone")]
        assert all(n.zxid == -1 for n in c.events)
        # What was registered fires now; what produced an event was not registered.
        zk.set(f"{base}/same", b"1")
        zk.create(f"{base}/not-yet")
        zk.create(f"{base}/kids-same/k2")
        zk.set(f"{base}/changed", b"again")
        zk.set(f"{base}/exists", b"again")
        got = {(e.type, e.path) for e in [c.next_event().event for _ in range(3)]}
        assert got == {(CHANGED, f"{base}/same"), (CREATED, f"{base}/not-yet"),
                       (CHILD, f"{base}/kids-same")}
        assert c.no_more_events()


def test_set_watches_with_a_positive_xid(hosts, base):
    with RawClient.open(hosts) as c:
        z = c.ping()[0].zxid
        hdr, _ = c.request(Op.SET_WATCHES, SetWatches(z, [base], [], []), xid=42)
        assert (hdr.xid, hdr.err) == (42, 0)
        c.request(Op.SET_DATA, SetDataRequest(base, b"x", -1))
        assert taken(c) == [(CHANGED, base)]


def test_set_watches2_registers_persistent_watches_without_catch_up(hosts, base, zk):
    zk.create(base + "/p")
    zk.create(base + "/r")
    with RawClient.open(hosts) as c:
        sw = SetWatches(0, [], [], [], [base + "/p"], [base + "/r"])
        c.received.clear()
        hdr, body = c.request(Op.SET_WATCHES2, sw, raw=True)
        assert hdr.err == 0 and body == b""
        assert [k for k, _ in c.received] == ["reply"]  # relativeZxid 0, yet no events
        zk.set(base + "/p", b"1")
        zk.create(base + "/p/kid")
        zk.create(base + "/r/a")
        zk.create(base + "/r/a/b")
        zk.set(base + "/p", b"2")
        got = [c.next_event().event for _ in range(5)]
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
    with RawClient.open(hosts) as c:
        hdr, _ = c.request(Op.SET_WATCHES, bytes(w.out))
        assert hdr.err == err
        assert c.ping()[0].err == 0


def test_kazoo_api_on_missing_nodes_reports_no_node(zk, base):
    with pytest.raises(NoNodeError):
        zk.get_acls(base + "/missing")
    zk.create(base + "/locked", acl=[ACL(0, Id("world", "anyone"))])
    with pytest.raises(NoAuthError):
        zk.get_acls(base + "/locked")
    with pytest.raises(NoAuthError):
        zk.get(base + "/locked")
    zk.delete(base + "/locked")  # DELETE on the (open) parent is enough
