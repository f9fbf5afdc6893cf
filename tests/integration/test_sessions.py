"""Sessions: the handshake and its reply shapes, timeout negotiation,
expiry (ephemerals deleted, watches fired), resumption from a new connection,
the expired-session reply, lastZxidSeen ahead of the server, closeSession."""

import time

import pytest
from kazoo.protocol.states import KazooState

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import CreateMode, EventType, Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CreateRequest,
    PathRequest,
    PathWatchRequest,
)
from zkpy.session.tracker import session_password

from zkpy.rawclient import ConnectionClosed, RawClient

OPEN = list(OPEN_ACL_UNSAFE)
TICK = 200  # min session timeout 400 ms, max 4000 ms


@pytest.fixture(scope="module")
def fast():
    from tests.conftest import run_server
    with run_server({"tickTime": TICK}) as srv:
        yield srv


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def node_exists(hosts, path):
    with RawClient.open(hosts) as c:
        return c.request(Op.EXISTS, PathWatchRequest(path, False))[0].err == 0


# --- handshake ---------------------------------------------------------------------------------

def test_new_session_reply(fast):
    with RawClient.open(fast.hosts, timeout_ms=2000) as c:
        r = c.connect_response
        assert r.protocol_version == 0
        assert r.timeout == 2000
        assert r.session_id != 0
        assert (r.session_id >> 56) == 1  # standalone server id 1
        assert len(r.passwd) == 16
        assert r.read_only is False
        assert len(c.connect_frame) == 37


def test_password_is_javas_random_of_the_session_id(fast):
    with RawClient.open(fast.hosts) as c:
        assert c.passwd == session_password(c.session_id)


def test_sessions_get_distinct_ids(fast):
    conns = [RawClient.open(fast.hosts) for _ in range(4)]
    try:
        ids = {c.session_id for c in conns}
        assert len(ids) == 4
    finally:
        for c in conns:
            c.close()


def test_reply_without_read_only_byte_when_the_client_sent_none(fast):
    with RawClient.open(fast.hosts, read_only_byte=False) as c:
        assert len(c.connect_frame) == 36
        assert c.connect_response.read_only is None
        assert c.session_id != 0
        assert c.ping()[0].err == 0


@pytest.mark.parametrize("requested, negotiated", [
    (1, 2 * TICK), (0, 2 * TICK), (-5, 2 * TICK), (1000, 1000), (10**6, 20 * TICK)])
def test_timeout_is_clamped_to_min_and_max(fast, requested, negotiated):
    with RawClient.open(fast.hosts, timeout_ms=requested) as c:
        assert c.negotiated_timeout == negotiated


def test_explicit_min_and_max_session_timeout(make_server):
    srv = make_server({"tickTime": 100, "minSessionTimeout": 700, "maxSessionTimeout": 900})
    with RawClient.open(srv.hosts, timeout_ms=1) as c:
        assert c.negotiated_timeout == 700
    with RawClient.open(srv.hosts, timeout_ms=5000) as c:
        assert c.negotiated_timeout == 900


def test_new_session_consumes_a_zxid(fast):
    with RawClient.open(fast.hosts) as a:
        z0 = a.ping()[0].zxid
        with RawClient.open(fast.hosts):
            pass
        assert a.ping()[0].zxid == z0 + 1


def test_ping_reply(fast):
    with RawClient.open(fast.hosts) as c:
        hdr, body = c.request(Op.PING, xid=-2, raw=True)
        assert (hdr.xid, hdr.err) == (-2, 0)
        assert body == b""
        # Whatever xid the ping carries, the reply says -2.
        c.send(Op.PING, xid=12345)
        hdr, _ = c.read_reply(Op.PING)
        assert hdr.xid == -2 and not c.events  # the very next frame


# --- expiry ------------------------------------------------------------------------------------

def test_silent_session_expires_with_its_ephemerals(fast):
    with RawClient.open(fast.hosts, timeout_ms=400) as doomed, \
            RawClient.open(fast.hosts, timeout_ms=4000) as watcher:
        assert doomed.negotiated_timeout == 400
        assert doomed.request(
            Op.CREATE, CreateRequest("/exp", b"", OPEN, 0))[0].err in (0, Err.NODE_EXISTS)
        assert doomed.request(
            Op.CREATE, CreateRequest("/exp/e1", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        assert doomed.request(Op.CREATE, CreateRequest("/exp/e2-", b"", OPEN,
                                                       CreateMode.EPHEMERAL_SEQUENTIAL))[0].err == 0
        assert watcher.request(Op.EXISTS, PathWatchRequest("/exp/e1", True))[0].err == 0
        assert watcher.request(Op.GET_CHILDREN, PathWatchRequest("/exp", True))[0].err == 0
        # doomed now says nothing; the server expires the session...
        # (ZooKeeper deletes them in no particular order.)
        got = {(n.event.type, n.event.path) for n in (watcher.next_event(timeout=15),
                                                      watcher.next_event(timeout=15))}
        assert got == {(EventType.NODE_DELETED, "/exp/e1"),
                       (EventType.NODE_CHILDREN_CHANGED, "/exp")}
        hdr, children = watcher.request(Op.GET_CHILDREN, PathWatchRequest("/exp", False))
        assert children == []
        # ...and closes its connection, without a notification.
        assert doomed.is_closed_by_server(timeout=15)
        assert not [k for k, _ in doomed.received if k == "event"]
        # The session is gone for good: resuming it gets the expired reply.
        with RawClient.open(fast.hosts, session_id=doomed.session_id,
                             passwd=doomed.passwd) as again:
            assert again.expired
            assert again.connect_response.passwd == bytes(16)
            assert again.is_closed_by_server()


def test_pings_keep_a_session_alive(fast):
    with RawClient.open(fast.hosts, timeout_ms=1000) as c:
        assert c.request(
            Op.CREATE, CreateRequest("/alive", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            assert c.ping()[0].err == 0
            time.sleep(0.1)
        assert c.request(Op.EXISTS, PathWatchRequest("/alive", False))[0].err == 0


def test_expiry_is_seen_by_kazoo_watchers(fast, make_client):
    zk = make_client(fast.hosts)
    seen = []
    zk.ensure_path("/kexp")
    with RawClient.open(fast.hosts, timeout_ms=400) as doomed:
        doomed.request(Op.CREATE, CreateRequest("/kexp/eph", b"", OPEN, CreateMode.EPHEMERAL))
        assert zk.exists("/kexp/eph", watch=seen.append) is not None
        assert wait_until(lambda: seen, timeout=15)
    assert seen[0].type == "DELETED" and seen[0].path == "/kexp/eph"
    assert zk.exists("/kexp/eph") is None


# --- resumption --------------------------------------------------------------------------------

def test_session_resumes_on_a_new_connection(fast):
    a = RawClient.open(fast.hosts, timeout_ms=3000)
    with a:
        assert a.request(
            Op.CREATE, CreateRequest("/resume", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        last = a.ping()[0].zxid
        with RawClient.open(fast.hosts, timeout_ms=2000, session_id=a.session_id,
                             passwd=a.passwd, last_zxid=last) as b:
            r = b.connect_response
            assert (r.session_id, r.passwd, r.timeout) == (a.session_id, a.passwd, 2000)
            assert not b.expired
            # The old connection is closed by the server.
            assert a.is_closed_by_server()
            # The session and its ephemeral live on.
            hdr, paths = b.request(Op.GET_EPHEMERALS, PathRequest("/"))
            assert paths == ["/resume"]
            hdr, stat = b.request(Op.EXISTS, PathWatchRequest("/resume", False))
            assert stat.ephemeralOwner == a.session_id
            # Resuming consumes no zxid.
            assert b.ping()[0].zxid == last


def test_wrong_password_gets_the_expired_reply(fast):
    with RawClient.open(fast.hosts) as a:
        bad = bytes(x ^ 0xFF for x in a.passwd)
        with RawClient.open(fast.hosts, session_id=a.session_id, passwd=bad) as b:
            r = b.connect_response
            assert (r.timeout, r.session_id, r.passwd) == (0, 0, bytes(16))
            assert r.read_only is False
            assert len(b.connect_frame) == 37
            assert b.is_closed_by_server()
        # Java closes the live connection before it checks the password.
        assert a.is_closed_by_server()
    # The session itself survives: the right password still resumes it.
    with RawClient.open(fast.hosts, session_id=a.session_id, passwd=a.passwd) as c:
        assert c.session_id == a.session_id


def test_unknown_session_gets_the_expired_reply(fast):
    with RawClient.open(fast.hosts, session_id=0x0123456789ABCDEF,
                         passwd=session_password(0x0123456789ABCDEF)) as c:
        assert c.expired
        assert c.is_closed_by_server()
    with RawClient.open(fast.hosts, session_id=0x0123456789ABCDEF, read_only_byte=False) as c:
        assert c.expired and len(c.connect_frame) == 36
        assert c.is_closed_by_server()


def test_last_zxid_ahead_of_the_server_is_refused_without_reply(fast):
    with RawClient.open(fast.hosts) as a:
        ahead = a.ping()[0].zxid + 1000
    with pytest.raises(ConnectionClosed):
        RawClient.open(fast.hosts, last_zxid=ahead)
    with RawClient.open(fast.hosts) as a:
        # A resume attempt is refused the same way, and leaves the session alone.
        with pytest.raises(ConnectionClosed):
            RawClient.open(fast.hosts, session_id=a.session_id, passwd=a.passwd,
                            last_zxid=a.ping()[0].zxid + 1000)
        assert a.ping()[0].err == 0


def test_kazoo_keeps_its_session_across_a_dropped_connection(hosts, make_client, base):
    zk = make_client(hosts)
    states = []
    zk.add_listener(states.append)
    zk.create(base + "/mine", ephemeral=True)
    sid, passwd = zk.client_id
    # Taking the session over from another connection drops kazoo's connection.
    with RawClient.open(hosts, session_id=sid, passwd=passwd) as thief:
        assert thief.session_id == sid
    assert wait_until(lambda: KazooState.SUSPENDED in states)
    assert wait_until(lambda: zk.state == KazooState.CONNECTED)
    assert zk.client_id[0] == sid
    assert KazooState.LOST not in states
    assert zk.exists(base + "/mine").ephemeralOwner == sid


# --- closeSession ------------------------------------------------------------------------------

def test_close_session(fast):
    with RawClient.open(fast.hosts) as c, RawClient.open(fast.hosts) as w:
        assert c.request(
            Op.CREATE, CreateRequest("/closing", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        assert c.request(
            Op.CREATE, CreateRequest("/closing2", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        w.request(Op.EXISTS, PathWatchRequest("/closing", True))
        z0 = c.ping()[0].zxid
        hdr, body = c.request(Op.CLOSE_SESSION, xid=77, raw=True)
        assert (hdr.xid, hdr.err) == (77, 0)
        assert hdr.zxid == z0 + 1  # one zxid for the close and all its deletes
        assert body == b""
        assert c.is_closed_by_server()
        ev = w.next_event().event
        assert (ev.type, ev.path) == (EventType.NODE_DELETED, "/closing")
        assert w.request(Op.EXISTS, PathWatchRequest("/closing2", False))[0].err == Err.NO_NODE
        with RawClient.open(fast.hosts, session_id=c.session_id, passwd=c.passwd) as again:
            assert again.expired


def test_kazoo_stop_closes_the_session(fast, make_client):
    a = make_client(fast.hosts)
    b = make_client(fast.hosts)
    a.create("/kstop", ephemeral=True)
    seen = []
    b.exists("/kstop", watch=seen.append)
    a.stop()
    assert wait_until(lambda: seen)
    assert seen[0].type == "DELETED"
    assert b.exists("/kstop") is None


def test_requests_pipelined_behind_close_session_are_not_answered(fast):
    from zkpy.protocol.records import encode_request

    with RawClient.open(fast.hosts) as c:
        x = 1
        # One write, so that the server has read everything when it closes
        # (data arriving after the close would make the kernel answer RST).
        c.send_raw(encode_request(1, Op.CLOSE_SESSION)
                   + encode_request(2, Op.EXISTS, PathWatchRequest("/", False))
                   + encode_request(3, Op.CREATE, CreateRequest("/after-close", b"", OPEN, 0)))
        hdr, _ = c.read_reply(Op.CLOSE_SESSION)
        assert hdr.xid == x and hdr.err == 0
        assert c.is_closed_by_server()
        assert [h.xid for k, h in c.received if k == "reply"] == [x]
    assert not node_exists(fast.hosts, "/after-close")


def test_close_session_with_many_ephemerals_in_a_tree(fast):
    with RawClient.open(fast.hosts) as c:
        c.request(Op.CREATE, CreateRequest("/many", b"", OPEN, 0))
        for i in range(50):
            req = CreateRequest(f"/many/e{i}", b"", OPEN, CreateMode.EPHEMERAL)
            assert c.request(Op.CREATE, req)[0].err == 0
        c.request(Op.CLOSE_SESSION)
    with RawClient.open(fast.hosts) as c:
        hdr, children = c.request(Op.GET_CHILDREN, PathWatchRequest("/many", False))
        assert children == []


def test_ephemeral_deleted_by_another_session_leaves_the_owner_consistent(fast):
    with RawClient.open(fast.hosts) as owner, RawClient.open(fast.hosts) as other:
        owner.request(Op.CREATE, CreateRequest("/eph-x", b"", OPEN, CreateMode.EPHEMERAL))
        owner.request(Op.CREATE, CreateRequest("/eph-y", b"", OPEN, CreateMode.EPHEMERAL))
        from zkpy.protocol.records import DeleteRequest
        assert other.request(Op.DELETE, DeleteRequest("/eph-x", -1))[0].err == 0
        hdr, paths = owner.request(Op.GET_EPHEMERALS, PathRequest("/eph-"))
        assert paths == ["/eph-y"]
        # Re-created by the other session, it is the other session's now.
        assert other.request(
            Op.CREATE, CreateRequest("/eph-x", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0
        assert owner.request(Op.CLOSE_SESSION)[0].err == 0
        hdr, paths = other.request(Op.GET_EPHEMERALS, PathRequest("/eph-"))
        assert paths == ["/eph-x"]
        assert other.request(Op.EXISTS, PathWatchRequest("/eph-x", False))[0].err == 0
        assert other.request(Op.EXISTS, PathWatchRequest("/eph-y", False))[0].err == Err.NO_NODE


def test_ephemerals_created_in_a_multi_go_with_the_session(fast):
    from zkpy.protocol.records import MultiRequest

    with RawClient.open(fast.hosts) as c:
        ops = [(Op.CREATE, CreateRequest("/meph", b"", OPEN, CreateMode.EPHEMERAL)),
               (Op.CREATE, CreateRequest("/meph-seq-", b"", OPEN, CreateMode.EPHEMERAL_SEQUENTIAL))]
        assert c.request(Op.MULTI, MultiRequest(ops))[0].err == 0
        hdr, paths = c.request(Op.GET_EPHEMERALS, PathRequest("/meph"))
        assert len(paths) == 2
        c.request(Op.CLOSE_SESSION)
    assert not node_exists(fast.hosts, "/meph")
