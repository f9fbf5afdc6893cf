"""Reads and the other requests that change no znode (FinalRequestProcessor's
read half, setWatches included): each handler takes the server, the
connection and the decoded request, and returns the reply body (bytes) or
raises KeeperError.  Watches are registered here, after the checks pass, as
ZooKeeper does."""

from operator import attrgetter

from ..datatree.acl import check_acl
from ..datatree.znode import child_names
from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import AddWatchMode, EventType, Op, Perms, WatcherType
from ..protocol.records import ACL
from . import replies

_READ = Perms.READ
_MZXID = attrgetter("mzxid")
_PZXID = attrgetter("pzxid")


def _node_for_read(server, conn, path):
    node = server.tree.nodes.get(path)
    if node is None:
        raise KeeperError(Err.NO_NODE)
    if not check_acl(node.acl, _READ, conn.auth_ids, server.skip_acl, server.sasl_any):
        raise KeeperError(Err.NO_AUTH)
    return node


def _read_data(server, conn, req):
    """The node a getData reads, its data watch registered."""
    node = _node_for_read(server, conn, req.path)
    if req.watch:
        server.watches.add_data_watch(req.path, conn)
    return node


def get_data(server, conn, req):
    node = _read_data(server, conn, req)
    return replies.get_data_body(node.data, node.stat())


def get_data_reply(server, conn, req, xid, zxid) -> bytes:
    """get_data's whole reply frame (see RequestDispatch._evaluate)."""
    node = _read_data(server, conn, req)
    return replies.get_data_reply(xid, zxid, node.data, node.stat())


def exists(server, conn, req):
    path = req.path
    if path is None or "\0" in path:
        raise KeeperError(Err.BAD_ARGUMENTS)
    node = server.tree.nodes.get(path)
    if node is not None and not check_acl(node.acl, _READ, conn.auth_ids, server.skip_acl, server.sasl_any):
        raise KeeperError(Err.NO_AUTH)
    if req.watch:
        # Registered even for a missing node: it then waits for NodeCreated.
        server.watches.add_data_watch(path, conn)
    if node is None:
        raise KeeperError(Err.NO_NODE)
    return replies.stat_body(node.stat())


def get_children(server, conn, req):
    node = _node_for_read(server, conn, req.path)
    if req.watch:
        server.watches.add_child_watch(req.path, conn)
    return replies.encode_strings(child_names(req.path, node.children))


def get_children2(server, conn, req):
    node = _node_for_read(server, conn, req.path)
    if req.watch:
        server.watches.add_child_watch(req.path, conn)
    return replies.encode_strings(child_names(req.path, node.children)) + \
        replies.stat_body(node.stat())


def get_all_children_number(server, conn, req):
    _node_for_read(server, conn, req.path)
    return replies.INT.pack(server.tree.count_descendants(req.path))


def get_acl(server, conn, req):
    node = server.tree.nodes.get(req.path)
    if node is None:
        raise KeeperError(Err.NO_NODE)
    ids, skip, any_ = conn.auth_ids, server.skip_acl, server.sasl_any
    can_admin = check_acl(node.acl, Perms.ADMIN, ids, skip, any_)
    if not can_admin and not check_acl(node.acl, _READ, ids, skip, any_):
        raise KeeperError(Err.NO_AUTH)
    acl = node.acl
    if not can_admin:
        # Without ADMIN, digest hashes are redacted to "user:x".
        acl = [ACL(a.perms, a.scheme, a.id.split(":", 1)[0] + ":x") if a.scheme == "digest" else a
               for a in acl]
    return replies.acl_body(acl, node.stat())


def get_ephemerals(server, conn, req):
    prefix = req.path
    paths = server.tree.ephemerals.get(conn.session_id, ())
    # ZooKeeper: a blank prefix, or "/" once trimmed, means all of them.
    if prefix and prefix.strip() and prefix.strip() != "/":
        paths = [p for p in paths if p.startswith(prefix)]
    return replies.encode_strings(sorted(paths))


def sync(server, conn, req):
    return replies.encode_string(req.path)


def close_local_session(server, conn, req):
    """closeSession of a local session, which no txn closes: a role leaves
    it to be answered here in its turn (after the session's earlier
    requests, with the zxid applied by then), as FinalRequestProcessor
    does; the session ends and the connection closes after the reply."""
    server.sessions.remove(conn.session_id)
    conn.close_after_flush = True
    return b""


def who_am_i(server, conn, req):
    parts = [replies.INT.pack(len(conn.auth_ids))]
    for scheme, id_ in conn.auth_ids:
        user = id_.split(":", 1)[0] if scheme == "digest" else id_
        parts.append(replies.encode_string(scheme))
        parts.append(replies.encode_string(user))
    return b"".join(parts)


def add_watch(server, conn, req):
    if req.mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        raise KeeperError(Err.MARSHALLING_ERROR)
    server.watches.add_persistent(req.path, conn, req.mode == AddWatchMode.PERSISTENT_RECURSIVE)
    return b"\x00\x00\x00\x00"  # an ErrorResponse{err=0}; the Java client reads it


def _watcher_type(t):
    if t not in (WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY,
                 WatcherType.PERSISTENT, WatcherType.PERSISTENT_RECURSIVE):
        raise KeeperError(Err.MARSHALLING_ERROR)
    return t


def check_watches(server, conn, req):
    if not server.watches.has_watch(req.path, conn, _watcher_type(req.type)):
        raise KeeperError(Err.NO_WATCHER)
    return b""


def remove_watches(server, conn, req):
    if not server.watches.remove_watch(req.path, conn, _watcher_type(req.type)):
        raise KeeperError(Err.NO_WATCHER)
    return b""


def multi_read(server, conn, req):
    """Each read succeeds or fails on its own; multiRead never sets watches."""
    parts = []
    for op, sub in req.ops:
        sub.watch = False
        try:
            body = get_data(server, conn, sub) if op == Op.GET_DATA else \
                replies.encode_strings(child_names(
                    sub.path, _node_for_read(server, conn, sub.path).children))
            parts.append(replies.multi_header(op, False, 0))
            parts.append(body)
        except KeeperError as e:
            parts.append(replies.multi_header(Op.ERROR, False, e.code))
            parts.append(replies.INT.pack(e.code))
    parts.append(replies.MULTI_END)
    return b"".join(parts)


def set_watches(server, conn, sw):
    """Re-register a reconnecting client's watches, first telling it what
    changed since relativeZxid (events go out before the reply)."""
    tree = server.tree
    watches = server.watches
    rz = sw.relative_zxid
    notify = replies.notification

    def rewatch(paths, changed_at, changed, add):
        # A node gone, or changed since relativeZxid, is told at once;
        # otherwise the watch is set again.
        for path in paths:
            node = tree.nodes.get(path)
            if node is None:
                conn.send_event(notify(EventType.NODE_DELETED, path))
            elif changed_at(node) > rz:
                conn.send_event(notify(changed, path))
            else:
                add(path, conn)

    rewatch(sw.data, _MZXID, EventType.NODE_DATA_CHANGED, watches.add_data_watch)
    for path in sw.exist:
        if tree.nodes.get(path) is None:
            watches.add_data_watch(path, conn)
        else:
            conn.send_event(notify(EventType.NODE_CREATED, path))
    rewatch(sw.child, _PZXID, EventType.NODE_CHILDREN_CHANGED, watches.add_child_watch)
    for path in sw.persistent or ():
        watches.add_persistent(path, conn, False)
    for path in sw.persistent_recursive or ():
        watches.add_persistent(path, conn, True)
    return b""


READ_HANDLERS = {
    Op.GET_DATA: get_data,
    Op.EXISTS: exists,
    Op.GET_CHILDREN: get_children,
    Op.GET_CHILDREN2: get_children2,
    Op.GET_ALL_CHILDREN_NUMBER: get_all_children_number,
    Op.GET_ACL: get_acl,
    Op.GET_EPHEMERALS: get_ephemerals,
    Op.SYNC: sync,
    Op.CLOSE_SESSION: close_local_session,
    Op.WHO_AM_I: who_am_i,
    Op.ADD_WATCH: add_watch,
    Op.CHECK_WATCHES: check_watches,
    Op.REMOVE_WATCHES: remove_watches,
    Op.MULTI_READ: multi_read,
    Op.SET_WATCHES: set_watches,
    Op.SET_WATCHES2: set_watches,
}
