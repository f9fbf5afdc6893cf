"""Watches: one-shot data/exist/child watches (kazoo and raw), persistent and
persistent-recursive watches (addWatch), checkWatches/removeWatches, and the
delivery rules: one event per connection per trigger, notification before the
reply that reflects the change, the order of events within a txn."""

import queue

import pytest

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import AddWatchMode, EventType, Op, WatcherType
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    AddWatchRequest,
    CreateRequest,
    DeleteRequest,
    PathWatchRequest,
    SetDataRequest,
    WatchTypeRequest,
)

from zkpy.rawclient import RawClient

OPEN = list(OPEN_ACL_UNSAFE)
CREATED, DELETED, CHANGED, CHILD = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                                    EventType.NODE_DATA_CHANGED, EventType.NODE_CHILDREN_CHANGED)


class Recorder:
    """A kazoo watch function that queues the events it gets."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def next(self, timeout=10):
        return self.q.get(timeout=timeout)

    def empty_after(self, client):
        """True if nothing more arrived by the time a round trip completes."""
        client.sync("/")
        client.exists("/")
        return self.q.empty()


def ev(t, path):
    return (t, path)


def raw_event(c):
    e = c.next_event().event
    return (e.type, e.path)


def taken(c):
    """(type, path) of every notification c received and had not taken yet."""
    return [(n.event.type, n.event.path) for n in c.take_events()]


# --- one-shot watches through kazoo ----------------------------------------------------------

def test_data_watch_fires_once(zk, zk2, base):
    p = base + "/d"
    zk.create(p, b"0")
    rec = Recorder()
    zk.get(p, watch=rec)
    zk2.set(p, b"1")
    e = rec.next()
    assert (e.type, e.path, e.state) == ("CHANGED", p, "CONNECTED")
    zk2.set(p, b"2")
    assert rec.empty_after(zk)


def test_exists_watch_on_missing_node_sees_create(zk, zk2, base):
    p = base + "/later"
    rec = Recorder()
    assert zk.exists(p, watch=rec) is None
    zk2.create(p)
    e = rec.next()
    assert (e.type, e.path) == ("CREATED", p)


def test_exists_watch_sees_delete_and_change(zk, zk2, base):
    p = base + "/x"
    zk.create(p)
    rec = Recorder()
    zk.exists(p, watch=rec)
    zk2.set(p, b"v")
    assert rec.next().type == "CHANGED"
    zk.exists(p, watch=rec)
    zk2.delete(p)
    assert rec.next().type == "DELETED"


def test_child_watch_fires_on_create_and_delete_of_children(zk, zk2, base):
    rec = Recorder()
    zk.get_children(base, watch=rec)
    zk2.create(base + "/c")
    e = rec.next()
    assert (e.type, e.path) == ("CHILD", base)
    zk.get_children(base, watch=rec)
    zk2.delete(base + "/c")
    assert rec.next().type == "CHILD"
    # Data changes of the parent or of a child are not child events.
    zk.get_children(base, watch=rec)
    zk2.set(base, b"x")
    zk2.create(base + "/d")  # this one fires it
    assert rec.next().type == "CHILD"
    assert rec.empty_after(zk)


def test_get_on_missing_node_sets_no_watch(zk, zk2, base):
    from kazoo.exceptions import NoNodeError

    rec = Recorder()
    with pytest.raises(NoNodeError):
        zk.get(base + "/none", watch=rec)
    with pytest.raises(NoNodeError):
        zk.get_children(base + "/none", watch=rec)
    zk2.create(base + "/none")
    zk2.create(base + "/none/kid")
    assert rec.empty_after(zk)


# --- raw: exact events and ordering -----------------------------------------------------------

def test_notification_frame_fields(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/n", b"", OPEN, 0))
        c.request(Op.GET_DATA, PathWatchRequest(base + "/n", True))
        c.request(Op.SET_DATA, SetDataRequest(base + "/n", b"1", -1))
        e = c.events[-1].event
        assert (e.type, e.state, e.path) == (CHANGED, 3, base + "/n")
        assert c.events[-1].zxid == -1  # 3.8 sends -1 in the notification header


def test_notification_precedes_the_write_reply_on_the_same_connection(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/n", b"", OPEN, 0))
        c.request(Op.EXISTS, PathWatchRequest(base + "/n", True))
        c.received.clear()
        xid = c.send(Op.SET_DATA, SetDataRequest(base + "/n", b"1", -1))
        hdr, _ = c.read_reply(Op.SET_DATA)
        assert hdr.xid == xid
        assert [kind for kind, _ in c.received] == ["event", "reply"]


def test_notification_precedes_a_later_read_reply_on_another_connection(hosts, base):
    with RawClient.open(hosts) as watcher, RawClient.open(hosts) as writer:
        writer.request(Op.CREATE, CreateRequest(base + "/n", b"old", OPEN, 0))
        watcher.request(Op.GET_DATA, PathWatchRequest(base + "/n", True))
        writer.request(Op.SET_DATA, SetDataRequest(base + "/n", b"new", -1))
        watcher.received.clear()
        hdr, (data, _) = watcher.request(Op.GET_DATA, PathWatchRequest(base + "/n", False))
        assert data == b"new"
        assert [kind for kind, _ in watcher.received] == ["event", "reply"]
        e = watcher.events[-1].event
        assert (e.type, e.path) == (CHANGED, base + "/n")


def test_pipelined_requests_are_answered_in_order(hosts, base):
    """Reads queued behind writes see them, and replies keep request order."""
    with RawClient.open(hosts) as c:
        requests = [(Op.CREATE, CreateRequest(base + "/p", b"1", OPEN, 0)),
                    (Op.GET_DATA, PathWatchRequest(base + "/p", True)),
                    (Op.SET_DATA, SetDataRequest(base + "/p", b"2", -1)),
                    (Op.GET_DATA, PathWatchRequest(base + "/p", False)),
                    (Op.DELETE, DeleteRequest(base + "/p", -1)),
                    (Op.EXISTS, PathWatchRequest(base + "/p", False))]
        xids = [c.send(op, rec) for op, rec in requests]
        results = []
        for op, _ in requests:
            hdr, _ = c.read_reply(op)
            results.append((hdr.xid, hdr.err))
        assert results == [(x, e) for x, e in zip(xids, [0, 0, 0, 0, 0, Err.NO_NODE])]
        kinds = [k for k, v in c.received]
        # The data watch fired between the getData and the setData replies.
        assert kinds == ["reply", "reply", "event", "reply", "reply", "reply", "reply"]


def test_create_fires_node_created_then_children_changed(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.EXISTS, PathWatchRequest(base + "/k", True))
        c.request(Op.GET_CHILDREN, PathWatchRequest(base, True))
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        assert taken(c) == [(CREATED, base + "/k"), (CHILD, base)]


def test_delete_fires_node_deleted_once_then_children_changed(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        c.request(Op.GET_DATA, PathWatchRequest(base + "/k", True))
        c.request(Op.GET_CHILDREN, PathWatchRequest(base + "/k", True))  # same connection
        c.request(Op.GET_CHILDREN, PathWatchRequest(base, True))
        c.request(Op.DELETE, DeleteRequest(base + "/k", -1))
        assert taken(c) == [(DELETED, base + "/k"), (CHILD, base)]
        assert c.no_more_events()


def test_child_watcher_of_deleted_node_gets_node_deleted(hosts, base):
    with RawClient.open(hosts) as c, RawClient.open(hosts) as w:
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        w.request(Op.GET_CHILDREN, PathWatchRequest(base + "/k", True))
        c.request(Op.DELETE, DeleteRequest(base + "/k", -1))
        assert raw_event(w) == (DELETED, base + "/k")


def test_same_watch_registered_twice_fires_once(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        c.request(Op.GET_DATA, PathWatchRequest(base + "/k", True))
        c.request(Op.GET_DATA, PathWatchRequest(base + "/k", True))
        c.request(Op.EXISTS, PathWatchRequest(base + "/k", True))
        c.request(Op.SET_DATA, SetDataRequest(base + "/k", b"", -1))
        assert taken(c) == [(CHANGED, base + "/k")]
        assert c.no_more_events()


def test_every_watching_connection_is_told(hosts, base):
    conns = [RawClient.open(hosts) for _ in range(5)]
    try:
        conns[0].request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        for c in conns:
            c.request(Op.EXISTS, PathWatchRequest(base + "/k", True))
        conns[0].request(Op.SET_DATA, SetDataRequest(base + "/k", b"", -1))
        for c in conns:
            assert raw_event(c) == (CHANGED, base + "/k")
    finally:
        for c in conns:
            c.close()


def test_watches_die_with_the_connection(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        w.request(Op.EXISTS, PathWatchRequest(base + "/k", True))
        # Same session, new connection: the old connection's watches are gone.
        w2 = RawClient.open(hosts, session_id=w.session_id, passwd=w.passwd)
        with w2:
            assert w.is_closed_by_server()
            c.request(Op.SET_DATA, SetDataRequest(base + "/k", b"", -1))
            assert w2.no_more_events()


def test_failed_writes_and_set_acl_fire_nothing(hosts, base):
    with RawClient.open(hosts) as c, RawClient.open(hosts) as w:
        c.request(Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))
        w.request(Op.GET_DATA, PathWatchRequest(base + "/k", True))
        w.request(Op.GET_CHILDREN, PathWatchRequest(base + "/k", True))
        assert c.request(
            Op.SET_DATA, SetDataRequest(base + "/k", b"", 99))[0].err == Err.BAD_VERSION
        assert c.request(
            Op.CREATE, CreateRequest(base + "/k", b"", OPEN, 0))[0].err == Err.NODE_EXISTS
        from zkpy.protocol.records import SetACLRequest
        assert c.request(Op.SET_ACL, SetACLRequest(base + "/k", OPEN, -1))[0].err == 0
        assert w.no_more_events()


# --- addWatch: persistent and recursive -------------------------------------------------------

def add_watch(c, path, mode):
    hdr, body = c.request(Op.ADD_WATCH, AddWatchRequest(path, mode), raw=True)
    assert hdr.err == 0
    assert body == b"\0\0\0\0"  # an ErrorResponse{0} body


def test_persistent_watch(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/pw"
        add_watch(w, p, AddWatchMode.PERSISTENT)  # no node yet: that is fine
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        c.request(Op.SET_DATA, SetDataRequest(p, b"1", -1))
        c.request(Op.SET_DATA, SetDataRequest(p, b"2", -1))
        c.request(Op.CREATE, CreateRequest(p + "/kid", b"", OPEN, 0))
        c.request(Op.SET_DATA, SetDataRequest(p + "/kid", b"", -1))     # not seen
        c.request(Op.CREATE, CreateRequest(p + "/kid/g", b"", OPEN, 0))  # not seen
        c.request(Op.DELETE, DeleteRequest(p + "/kid/g", -1))
        c.request(Op.DELETE, DeleteRequest(p + "/kid", -1))
        c.request(Op.DELETE, DeleteRequest(p, -1))
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))  # survives the delete
        got = [raw_event(w) for _ in range(7)]
        assert got == [(CREATED, p), (CHANGED, p), (CHANGED, p), (CHILD, p), (CHILD, p),
                       (DELETED, p), (CREATED, p)]
        assert w.no_more_events()


def test_recursive_watch(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/rw"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        add_watch(w, p, AddWatchMode.PERSISTENT_RECURSIVE)
        c.request(Op.CREATE, CreateRequest(p + "/a", b"", OPEN, 0))
        c.request(Op.CREATE, CreateRequest(p + "/a/b", b"", OPEN, 0))
        c.request(Op.SET_DATA, SetDataRequest(p + "/a/b", b"1", -1))
        c.request(Op.SET_DATA, SetDataRequest(p, b"1", -1))
        c.request(Op.DELETE, DeleteRequest(p + "/a/b", -1))
        c.request(Op.CREATE, CreateRequest(base + "/rw2", b"", OPEN, 0))  # a sibling: not seen
        got = [raw_event(w) for _ in range(5)]
        assert got == [(CREATED, p + "/a"), (CREATED, p + "/a/b"), (CHANGED, p + "/a/b"),
                       (CHANGED, p), (DELETED, p + "/a/b")]
        assert w.no_more_events()  # never NodeChildrenChanged


def test_recursive_and_one_shot_watch_on_one_connection_give_one_event(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/rw"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        c.request(Op.CREATE, CreateRequest(p + "/a", b"", OPEN, 0))
        add_watch(w, p, AddWatchMode.PERSISTENT_RECURSIVE)
        w.request(Op.GET_DATA, PathWatchRequest(p + "/a", True))
        c.request(Op.SET_DATA, SetDataRequest(p + "/a", b"1", -1))
        assert raw_event(w) == (CHANGED, p + "/a")
        assert w.no_more_events()


def test_add_watch_with_bad_mode_is_marshalling_error(hosts, base):
    with RawClient.open(hosts) as c:
        assert c.request(Op.ADD_WATCH, AddWatchRequest(base, 2))[0].err == Err.MARSHALLING_ERROR
        assert c.request(Op.ADD_WATCH, AddWatchRequest(base, -1))[0].err == Err.MARSHALLING_ERROR
        assert c.ping()[0].err == 0


@pytest.mark.zkpy_only  # ZooKeeper 3.8.0: the later standard registration replaces the mode
def test_one_shot_registration_keeps_persistent_watch(hosts, base):
    """Modes coexist on a path (ZooKeeper 3.9 / ZOOKEEPER-4466)."""
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/pw"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        add_watch(w, p, AddWatchMode.PERSISTENT)
        w.request(Op.GET_DATA, PathWatchRequest(p, True))
        c.request(Op.SET_DATA, SetDataRequest(p, b"1", -1))
        c.request(Op.SET_DATA, SetDataRequest(p, b"2", -1))
        assert [raw_event(w), raw_event(w)] == [(CHANGED, p), (CHANGED, p)]


# --- checkWatches / removeWatches -------------------------------------------------------------

def test_check_and_remove_one_shot_watches(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/k"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        check = lambda t: w.request(Op.CHECK_WATCHES, WatchTypeRequest(p, t))[0].err  # noqa: E731
        remove = lambda t: w.request(Op.REMOVE_WATCHES, WatchTypeRequest(p, t))[0].err  # noqa: E731
        assert check(WatcherType.ANY) == Err.NO_WATCHER
        w.request(Op.GET_DATA, PathWatchRequest(p, True))
        assert check(WatcherType.DATA) == 0
        assert check(WatcherType.ANY) == 0
        assert check(WatcherType.CHILDREN) == Err.NO_WATCHER
        assert check(WatcherType.DATA) == 0  # checking removes nothing
        assert remove(WatcherType.CHILDREN) == Err.NO_WATCHER
        assert remove(WatcherType.DATA) == 0
        assert remove(WatcherType.DATA) == Err.NO_WATCHER
        w.request(Op.GET_CHILDREN, PathWatchRequest(p, True))
        w.request(Op.EXISTS, PathWatchRequest(p, True))
        assert check(WatcherType.CHILDREN) == 0
        assert remove(WatcherType.ANY) == 0
        assert check(WatcherType.ANY) == Err.NO_WATCHER
        # Removed watches do not fire.
        c.request(Op.SET_DATA, SetDataRequest(p, b"", -1))
        c.request(Op.CREATE, CreateRequest(p + "/c", b"", OPEN, 0))
        assert w.no_more_events()


@pytest.mark.zkpy_only  # 3.8.0's checkWatches answers OK if any connection watches the path
def test_watches_are_checked_per_connection(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as other:
        w.request(Op.EXISTS, PathWatchRequest(base, True))
        assert other.request(
            Op.CHECK_WATCHES, WatchTypeRequest(base, WatcherType.DATA))[0].err == Err.NO_WATCHER
        assert other.request(
            Op.REMOVE_WATCHES, WatchTypeRequest(base, WatcherType.ANY))[0].err == Err.NO_WATCHER
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(base, WatcherType.DATA))[0].err == 0


def test_remove_persistent_watch_with_any(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/k"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        add_watch(w, p, AddWatchMode.PERSISTENT)
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == 0
        assert w.request(Op.REMOVE_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == 0
        assert w.request(
            Op.CHECK_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == Err.NO_WATCHER
        c.request(Op.SET_DATA, SetDataRequest(p, b"", -1))
        c.request(Op.CREATE, CreateRequest(p + "/c", b"", OPEN, 0))
        assert w.no_more_events()


def test_remove_recursive_watch_with_any(hosts, base):
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/k"
        add_watch(w, p, AddWatchMode.PERSISTENT_RECURSIVE)
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == 0
        assert w.request(Op.REMOVE_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == 0
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        c.request(Op.CREATE, CreateRequest(p + "/c", b"", OPEN, 0))
        assert w.no_more_events()


@pytest.mark.zkpy_only  # 3.8.0: Data/Children match (and remove) every mode in that table
def test_data_and_children_types_match_only_one_shot_watches(hosts, base):
    """ZooKeeper 3.9 semantics: Data and Children name the one-shot watches;
    persistent ones are reached by Persistent, PersistentRecursive or Any."""
    with RawClient.open(hosts) as w, RawClient.open(hosts) as c:
        p = base + "/k"
        c.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        add_watch(w, p, AddWatchMode.PERSISTENT)
        add_watch(w, p + "/r", AddWatchMode.PERSISTENT_RECURSIVE)
        for path in (p, p + "/r"):
            for t in (WatcherType.DATA, WatcherType.CHILDREN):
                assert w.request(
                    Op.CHECK_WATCHES, WatchTypeRequest(path, t))[0].err == Err.NO_WATCHER
                assert w.request(
                    Op.REMOVE_WATCHES, WatchTypeRequest(path, t))[0].err == Err.NO_WATCHER
        c.request(Op.SET_DATA, SetDataRequest(p, b"", -1))
        assert raw_event(w) == (CHANGED, p)


@pytest.mark.parametrize("wtype", [0, 6, -1])
def test_bad_watcher_type_is_marshalling_error(hosts, base, wtype):
    with RawClient.open(hosts) as c:
        c.request(Op.EXISTS, PathWatchRequest(base, True))
        assert c.request(
            Op.CHECK_WATCHES, WatchTypeRequest(base, wtype))[0].err == Err.MARSHALLING_ERROR
        assert c.request(
            Op.REMOVE_WATCHES, WatchTypeRequest(base, wtype))[0].err == Err.MARSHALLING_ERROR
        assert c.ping()[0].err == 0


@pytest.mark.zkpy_only  # WatcherType 4 and 5 are 3.9+; 3.8.0 answers MarshallingError
def test_persistent_watcher_types(hosts, base):
    with RawClient.open(hosts) as w:
        p = base + "/k"
        add_watch(w, p, AddWatchMode.PERSISTENT)
        add_watch(w, p + "/r", AddWatchMode.PERSISTENT_RECURSIVE)
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(p, WatcherType.PERSISTENT))[0].err == 0
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(
            p, WatcherType.PERSISTENT_RECURSIVE))[0].err == Err.NO_WATCHER
        assert w.request(Op.CHECK_WATCHES, WatchTypeRequest(
            p + "/r", WatcherType.PERSISTENT_RECURSIVE))[0].err == 0
        assert w.request(Op.REMOVE_WATCHES, WatchTypeRequest(p, WatcherType.PERSISTENT))[0].err == 0
        assert w.request(
            Op.CHECK_WATCHES, WatchTypeRequest(p, WatcherType.ANY))[0].err == Err.NO_WATCHER


# ZOOKEEPER-4026 (3.8.4+, 3.9.2+; in Debian's 3.8.0 as the CVE-2024-23944 fix)
def test_events_are_filtered_by_read_permission(hosts, base):
    from zkpy.protocol.records import ACL, AuthPacket, SetACLRequest
    from zkpy.datatree.acl import digest_id

    with RawClient.open(hosts) as owner, RawClient.open(hosts) as w:
        owner.request(Op.AUTH, AuthPacket(0, "digest", b"alice:pw"), xid=-4)
        p = base + "/secret"
        owner.request(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
        w.request(Op.EXISTS, PathWatchRequest(p, True))
        acl = [ACL(31, "digest", digest_id("alice:pw"))]
        assert owner.request(Op.SET_ACL, SetACLRequest(p, acl, -1))[0].err == 0
        owner.request(Op.SET_DATA, SetDataRequest(p, b"x", -1))
        assert w.no_more_events()
