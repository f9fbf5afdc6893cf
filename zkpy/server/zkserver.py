"""ZooKeeperServer: the request pipeline of one server, whatever its role
(standalone is an ensemble of one).  A write goes prep -> log -> apply ->
reply; a read is answered once the connection's earlier requests are done.

    connection.py  frames in, frames out, handshake, 4lw
    dispatch.py    where each request goes; replies in order
    roles/         what this server does as standalone, leader, follower,
                   observer or read-only peer: writes, syncs, sessions
    zkserver.py    this file: the mechanics every role shares -- prep and
                   log a write, apply a txn, deliver watches, reply, sessions
    prep.py        request -> txn (validation, ZooKeeper's error precedence)
    reads.py       the read side of FinalRequestProcessor
    replies.py     reply encoding

The log is pluggable: anything with append(txn, on_logged).  The in-memory log
calls back at once; a durable log calls back after its group fsync; a
leader's log is its ZAB peer, which applies a txn once a quorum has it.  Txns
are applied strictly in zxid order as they come back.

No I/O here: connections and the log are objects handed in, and time comes
from the clock (zkpy.server.clock)."""

import collections
import logging

from ..datatree.acl import check_acl
from ..datatree.tree import DataTree, ErrorResult
from ..datatree.txn import Txn, ttl_of
from ..datatree.watches import WatchManager
from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import CREATE_OPS, EventType, Op, Perms
from ..session.tracker import SessionTracker, session_password
from . import replies
from .audit import AuditLog
from .client_security import ClientSecurity
from .clock import REAL_CLOCK
from .fast_path import FastPath
from .membership import membership_text, set_config_node
from .prep import Prep
from .request import CONNECTING, NEW, Request
from .roles.standalone import StandaloneRole
from .metrics import ServerMetrics
from .stats import ServerStats
from .handshake_limit import HandshakeLimit
from .large_requests import large_request_limit
from .throttle import ReadTurns, connection_throttle, request_throttler

log = logging.getLogger("zkpy.server")

VERSION = "3.8.0-zkpy"


class MemoryLog:
    """No durability: every txn is "logged" as soon as it is appended."""

    def append(self, txn, on_logged):
        on_logged(txn)

    def close(self):
        pass


class ZooKeeperServer:
    def __init__(self, config, txn_log=None, tree=None, server_id=1, clock=REAL_CLOCK,
                 replay_until=0):
        """replay_until: txns up to this zxid may already be in the (fuzzy)
        snapshot the tree was loaded from; applying them again is replay."""
        self.config = config
        self.clock = clock
        self.server_id = server_id
        self.tree = tree or DataTree()
        self.tree.set_digest_enabled(config.digest_enabled)
        self.watches = WatchManager()
        self.skip_acl = config.skip_acl
        self.security = ClientSecurity(config)   # SASL, enforce.auth, TLS: read once
        self.sasl_any = self.security.sasl_any     # for ACL checks
        self.metrics = ServerMetrics()
        self.prep = Prep(self.tree, config.extended_types_enabled, config.skip_acl,
                         config.enforce_quota, self.security,
                         self.metrics.sets["quota_exceeded_error_per_namespace"])
        self.audit = AuditLog() if config.audit_enable else None   # audit.enable
        self.sessions = SessionTracker(server_id, config.tick_time, clock.now_ms(),
                                       clock.wall_ms())
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, clock.now_ms())
        self.log = txn_log or MemoryLog()
        self.next_zxid = self.tree.last_zxid + 1
        # Connection -> None: a set that keeps the order connections came in
        # (reports list them so, and a simulated run closes them the same
        # way every time).
        self.connections: dict = {}
        self.conn_by_session: dict[int, object] = {}
        # (session id, cxid) -> the Request awaiting that txn, or a FIFO of
        # them (a client may reuse an xid, so one key can stand for several).
        self.waiting: dict = {}
        self.stats = ServerStats(self.metrics)
        # Watchers triggered per event, by event type (WatchManager's figures).
        self._watch_summaries = {t: self.metrics.summary(name)
                                 for t, name in _WATCH_SUMMARIES.items()}
        # Requests in the pipeline and not answered yet (ZooKeeper's
        # requestsInProcess): what globalOutstandingLimit and the
        # RequestThrottler measure.  A read answered as it arrives is never
        # counted; one waiting behind its session's writes is.
        self.in_process = 0
        self.outstanding_limit = config.global_outstanding_limit
        self.read_turns = ReadTurns()   # connections resumed, to dispatch what they held back
        self.request_throttler = request_throttler(config, self.metrics)
        self.connection_throttle = connection_throttle(config, clock.now_ms(), self.metrics)
        self.large_requests = large_request_limit(config, self.metrics)
        self.tls_handshakes = HandshakeLimit(config.outstanding_handshake_limit, self.metrics)
        self.started = clock.wall_ms()
        self.super_digest = config.super_digest
        self.replay_until = replay_until
        self.shut_down = False
        # Writes that wait while the tree is being replaced (a restore):
        # (function, args) to run in order once it is done; None: no hold.
        self.held = None
        self.fast_path = FastPath(self)
        self.role = StandaloneRole(self)
        self.role.enter()
        self.take_membership()

    # --- roles --------------------------------------------------------------------------

    def set_role(self, role):
        """Play role from now on (an ensemble member's peer changed state)."""
        old, self.role = self.role, role
        old.exit()
        role.enter()

    @property
    def mode(self) -> str:
        """What srvr prints after Mode: (standalone, leader, follower, ...)."""
        return self.role.mode

    @property
    def serving(self) -> bool:
        return self.role.serving and not self.shut_down

    # --- the write path -------------------------------------------------------------

    def submit(self, session_id, cxid, op, build, waiter=None):
        """Turn a write of the server's own (a session's creation or expiry, a
        container's deletion) into a txn and hand it to the log.  build()
        returns (txn type, body, prep overlay) or raises KeeperError, which
        becomes an error txn (it consumes a zxid, as in ZooKeeper)."""
        if self.held is not None:
            self.held.append((self.submit, (session_id, cxid, op, build, waiter)))
            return None
        try:
            txn_type, body, overlay = build()
        except KeeperError as e:
            txn_type, body, overlay = Op.ERROR, (e.code,), None
        return self.log_txn(session_id, cxid, txn_type, body, overlay, waiter)

    def log_txn(self, session_id, cxid, txn_type, body, overlay, waiter, on_logged=None):
        """Log a txn with the next zxid, its prep overlay made outstanding;
        on_logged(txn) applies it once logged (self.apply if not given).
        waiter: the request its reply goes to, if any."""
        zxid = self.next_zxid
        self.next_zxid = zxid + 1
        if overlay:
            self.prep.commit_overlay(overlay, zxid)
        txn = Txn(session_id, cxid, zxid, self.clock.wall_ms(), txn_type, body)
        if waiter is not None:
            # Keyed by (session, cxid): a follower learns a txn's zxid only
            # when the leader's commit reaches it.
            self.expect_reply((session_id, cxid), waiter)
        self.log.append(txn, on_logged or self.apply)
        return txn

    def log_change(self, session_id, cxid, txn_type, body, path, rec, on_logged):
        """log_txn for a client's txn that changes one node (path, left as
        rec), which on_logged(txn) applies and answers: the fast path's
        (fast_path.py, which keeps its own waiting requests)."""
        zxid = self.next_zxid
        self.next_zxid = zxid + 1
        self.prep.commit_change(path, rec, zxid)
        self.log.append(Txn(session_id, cxid, zxid, self.clock.wall_ms(), txn_type, body),
                        on_logged)

    def log_create(self, session_id, cxid, txn_type, body, overlay, on_logged):
        """log_change for a create of the fast path, which changes the nodes
        of overlay (the node and its parent)."""
        zxid = self.next_zxid
        self.next_zxid = zxid + 1
        self.prep.commit_changes(overlay, zxid)
        self.log.append(Txn(session_id, cxid, zxid, self.clock.wall_ms(), txn_type, body),
                        on_logged)

    def expect_reply(self, key, request):
        """Remember that request waits for the txn keyed (session id, cxid).
        Usually one request per key; a client that reuses an xid makes a FIFO."""
        # One dict operation in the usual case (once per write).
        other = self.waiting.setdefault(key, request)
        if other is request:
            return
        if type(other) is collections.deque:
            other.append(request)
        else:
            self.waiting[key] = collections.deque((other, request))

    def take_waiter(self, key):
        """The oldest request waiting on key (txns of a session apply in order)."""
        # One dict operation in the usual case (once per txn): the only
        # request waiting is popped with its key.
        waiters = self.waiting.pop(key, None)
        if type(waiters) is not collections.deque:
            return waiters
        request = waiters.popleft()
        if waiters:
            self.waiting[key] = waiters
        return request

    def prep_and_log(self, request, reply=True, owner=None):
        """A client's write: prep it into a txn (or an error txn) and log it.
        reply=False for a write a follower forwarded (the follower answers its
        client).  owner: on an ensemble's leader, the server the request came
        through -- a session that has moved to another server gets
        SessionMoved."""
        if self.held is not None:
            self.held.append((self.prep_and_log, (request, reply, owner)))
            return
        conn = request.conn
        sid = conn.session_id
        op = request.op
        overlay = None
        try:
            if op in _SINGLE_OPS and owner is None and request.decode_error is None \
                    and self.sessions.is_valid(sid):
                # The usual write: one op, decoded, from a live session of
                # this server.  Nothing _prep_request checks first can apply
                # to it, so it goes straight to prep (a call less per write).
                overlay = {}
                body = self.prep.prep_op(op, request.record, sid, conn.auth_ids, overlay)
                txn_type = op
            else:
                body, txn_type, overlay = self._prep_request(request, sid, owner)
        except KeeperError as e:
            txn_type, body = Op.ERROR, (e.code,)
        self.log_txn(sid, request.xid, txn_type, body, overlay, request if reply else None)

    def _prep_request(self, request, sid, owner):
        """(txn body, txn type, prep overlay) of a client's write; raises KeeperError."""
        op = request.op
        check = None
        if owner is not None:
            def check(ephemeral=False):
                if ephemeral:
                    # Only a global session may own an ephemeral.
                    self.role.check_global_session(sid, op)
                if not self.sessions.check_owner(sid, owner):
                    raise KeeperError(Err.SESSION_MOVED)
        if request.decode_error is not None:
            if check is not None and op in _OWNER_CHECKED_BEFORE_DECODING:
                check()
            raise request.decode_error
        if op == Op.RECONFIG and not self.config.reconfig_enabled:
            raise KeeperError(Err.RECONFIG_DISABLED)
        if not self.sessions.is_valid(sid) and not self.role.local_session_elsewhere(sid):
            raise KeeperError(Err.SESSION_EXPIRED)
        rec = request.record
        auth_ids = request.conn.auth_ids
        if op == Op.MULTI:
            body, overlay = self.prep.prep_multi(rec.ops, sid, auth_ids, check)
            return body, Op.MULTI, overlay
        if op == Op.CLOSE_SESSION:
            # No owner check: any server may close the session (ZooKeeper's
            # expiry closes sessions it does not own).
            self.sessions.set_closing(sid)
            return (self.prep.close_session_paths(sid),), Op.CLOSE_SESSION, None
        if op == Op.RECONFIG:
            return self.role.prep_reconfig(request, check), Op.RECONFIG, None
        overlay = {}
        return self.prep.prep_op(op, rec, sid, auth_ids, overlay, check), op, overlay

    def apply(self, txn):
        """A logged txn: apply it, tell the watchers, then answer its request."""
        # Txns up to replay_until may already be in a fuzzy snapshot.
        result, events = self.tree.apply(txn, txn.zxid <= self.replay_until)
        self.prep.applied(txn.zxid)
        t = txn.type
        if t == Op.CLOSE_SESSION:
            self.sessions.remove(txn.session_id)
        elif t == Op.CREATE_SESSION:
            self.sessions.add(txn.session_id, txn.body[0], self.clock.now_ms())
        watches = self.watches
        if events and (watches.data or watches.child):   # (else nobody watches anything)
            self.deliver(events)
        waiter = self.take_waiter((txn.session_id, txn.cxid))
        if self.audit is not None:
            self.audit.applied(txn, result, events, waiter)
        if waiter is not None:
            waiter.conn.txn_applied(waiter, txn, result)
        elif t == Op.CLOSE_SESSION:
            # Expired (or closed through another peer): drop its connection.
            conn = self.conn_by_session.get(txn.session_id)
            if conn is not None:
                conn.close()
        self.role.applied(txn)

    def deliver(self, events):
        watches = self.watches
        for event_type, path, acl in events:
            watchers = watches.trigger(path, event_type)
            if not watchers:
                continue
            summary = self._watch_summaries.get(event_type)
            if summary is not None:
                summary.add(len(watchers))
            frame = replies.notification(event_type, path)
            for conn in watchers:
                # Only to connections that may read the node (ZOOKEEPER-4026).
                if check_acl(acl, Perms.READ, conn.auth_ids, self.skip_acl, self.sasl_any):
                    conn.send_event(frame)

    def write_reply(self, request, txn, result):
        """The reply frame for a write request whose txn was applied, or
        replies.CLOSE: a request on a session that moved to another server
        gets no reply, its connection is closed (FinalRequestProcessor), so
        that the client goes back to the server that owns the session."""
        xid, zxid = request.xid, txn.zxid
        t = txn.type
        if t == Op.SET_DATA or t == Op.SET_ACL:
            return replies.stat_reply(xid, zxid, result)
        if t in CREATE_OPS:
            path, stat = result
            return replies.create_reply(xid, zxid, request.op, path, stat)
        if t == Op.ERROR:
            if txn.body[0] == Err.SESSION_MOVED:
                return replies.CLOSE
            return replies.header_only(xid, zxid, self.role.reply_error(request, txn.body[0]))
        if t == Op.MULTI:
            if _moved_in_multi(txn):
                return replies.CLOSE
            return replies.with_body(xid, zxid, self._multi_body(txn, result))
        if t == Op.RECONFIG:
            # GetDataResponse: the new membership and /zookeeper/config's Stat.
            return replies.with_body(xid, zxid, replies.get_data_body(txn.body[1], result))
        return replies.header_only(xid, zxid, 0)

    @staticmethod
    def _multi_body(txn, results) -> bytes:
        parts = []
        for (op_type, _), res in zip(txn.body[0], results):
            if isinstance(res, ErrorResult):
                parts.append(replies.multi_header(Op.ERROR, False, res.err))
                parts.append(replies.INT.pack(res.err))
            elif op_type in CREATE_OPS:
                path, stat = res
                rtype = Op.CREATE if op_type == Op.CREATE else Op.CREATE2
                parts.append(replies.multi_header(rtype, False, 0))
                parts.append(replies.create_body(rtype, path, stat))
            elif op_type == Op.SET_DATA:
                parts.append(replies.multi_header(op_type, False, 0))
                parts.append(replies.stat_body(res))
            else:  # delete, check
                parts.append(replies.multi_header(op_type, False, 0))
        parts.append(replies.MULTI_END)
        return b"".join(parts)

    def answer_sync(self, request):
        """The reply to a sync: its path, with the zxid applied so far."""
        request.reply = replies.with_body(request.xid, self.tree.last_zxid,
                                          replies.encode_string(request.record.path))
        request.pending = False
        request.conn.drain()

    # --- sessions ----------------------------------------------------------------------

    def negotiate_timeout(self, requested: int) -> int:
        c = self.config
        return max(c.min_session_timeout, min(requested, c.max_session_timeout))

    def password(self, sid) -> bytes:
        return session_password(sid)

    def new_session(self, conn, timeout) -> int:
        """Create a session through a createSession txn; the client's
        handshake is answered when it is applied."""
        sid = self.sessions.new_session_id()
        # Tracked at once so that expiry covers a session whose txn is in flight.
        self.sessions.add(sid, timeout, self.clock.now_ms())
        handshake = Request(conn, 0, Op.CREATE_SESSION, None, self.clock.now_ms())
        self.submit(sid, 0, Op.CREATE_SESSION,
                    lambda: (Op.CREATE_SESSION, (timeout,), None), handshake)
        return sid

    def resume_session_here(self, conn, sid, timeout) -> bool:
        """Resume a session this server tracks; False if it is gone."""
        if self.role.touch_session(sid, self.clock.now_ms(), timeout):
            conn.handshake_done(sid)
            return True
        conn.session_expired()
        return False

    def expire_sessions_now(self, now_ms):
        """Close, through closeSession txns, every session whose time is up."""
        for sid in self.sessions.expired(now_ms):
            log.info("Expiring session 0x%x", sid & 0xFFFFFFFFFFFFFFFF)
            self.metrics.count("stale_sessions_expired")
            self.close_session(sid)
            conn = self.conn_by_session.get(sid)
            if conn is not None:
                conn.close()

    def close_session(self, sid):
        self.sessions.set_closing(sid)
        self.submit(sid, 0, Op.CLOSE_SESSION,
                    lambda: (Op.CLOSE_SESSION, (self.prep.close_session_paths(sid),), None))

    def track_sessions_of_tree(self):
        """Rebuild the session tracker from the tree: the sessions that live,
        each with a full timeout from now."""
        self.sessions.clear()
        now = self.clock.now_ms()
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, now)

    # --- containers and TTL nodes -------------------------------------------------

    def reap_containers_now(self, now_wall_ms) -> int:
        """Delete empty containers and expired TTL nodes (ContainerManager), each
        through a deleteContainer txn so that watches fire as for a delete."""
        c = self.config
        budget = max(1, c.container_max_per_minute * max(1, c.container_check_interval_ms // 60000))
        never_used = c.container_max_never_used_interval_ms
        candidates = []
        tree = self.tree
        for path in tree.containers:
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            if node.creates > 0 or (never_used > 0 and now_wall_ms - node.mtime > never_used):
                candidates.append(path)
        for path in tree.ttls:
            node = tree.nodes.get(path)
            if node is not None and not node.children and \
                    now_wall_ms - node.mtime > ttl_of(node.owner):
                candidates.append(path)
        for path in sorted(candidates)[:budget]:
            self.submit(0, 0, Op.DELETE_CONTAINER, lambda p=path: self._prep_reap(p))
        return min(len(candidates), budget)

    def _prep_reap(self, path):
        overlay = {}
        body = self.prep.prep_op(Op.DELETE_CONTAINER, _PathOnly(path), 0, (), overlay)
        return Op.DELETE_CONTAINER, body, overlay

    # --- a new tree (a follower synced by SNAP, a restore) --------------------------------

    def hold_writes(self):
        """Prep no write until release_writes(): the tree is being replaced,
        and a write must be prepped against the tree it will apply to."""
        if self.held is None:
            self.held = []

    def release_writes(self):
        held, self.held = self.held, None
        for fn, args in held or ():
            fn(*args)

    def install_tree(self, tree):
        tree.set_digest_enabled(self.config.digest_enabled)
        self.tree = tree
        self.prep.tree = tree
        self.prep.reset()
        self.track_sessions_of_tree()
        if not self.config.reconfig_enabled:
            # Without reconfiguration the membership is what zoo.cfg says,
            # not what the leader's snapshot holds (as in ZooKeeper, where a
            # rolling restart may change it); with it, the snapshot's is the
            # committed one, which the sync puts in force here too.
            self.take_membership()

    def take_membership(self):
        """An ensemble member's /zookeeper/config holds its membership (a
        standalone server's stays empty, as ZooKeeper's does)."""
        c = self.config
        if not c.is_standalone:
            set_config_node(self.tree, membership_text(c), c.config_version,
                            self.clock.wall_ms())

    # --- time --------------------------------------------------------------------------

    def tick(self, now_ms):
        """Every tickTime: expire sessions (as the role does it), close idle
        connections (NIOServerCnxn's timeouts)."""
        self.role.expire_sessions(now_ms)
        sessionless = self.config.sessionless_cnxn_timeout_ms
        interval = max(1, sessionless)
        for conn in list(self.connections):
            if conn.state in (NEW, CONNECTING):
                if now_ms - conn.last_recv > sessionless:
                    self.metrics.count("sessionless_connections_expired")
                    conn.close()
            elif conn.timeout and \
                    now_ms >= ((conn.last_recv + conn.timeout) // interval + 1) * interval:
                # Due as NIOServerCnxnFactory's expiry queue has it (and dump
                # shows it): at the first multiple of the sessionless timeout
                # after its last read plus its session timeout.  A silent
                # client's session, expired at a tick, usually goes first and
                # takes the connection with it.
                conn.close()

    # --- connections ----------------------------------------------------------------------

    def register(self, conn):
        # (connection_request_count counts ConnectRequests, as ZooKeeper's
        # processConnectRequest does: the connection throttle counts them.)
        self.connections[conn] = None

    def admit(self, conn) -> bool:
        """maxClientCnxns per client IP (0: unlimited), maxCnxns in all."""
        c = self.config
        if c.max_cnxns and len(self.connections) > c.max_cnxns:
            self.metrics.count("connection_rejected")
            return False
        if c.max_client_cnxns:
            ip = conn.peer[0]
            same = sum(1 for other in self.connections if other.peer[0] == ip)
            if same > c.max_client_cnxns:
                self.metrics.count("connection_rejected")
                return False
        return True

    def unregister(self, conn):
        if self.connections.pop(conn, False) is None:
            self.metrics.count("connection_drop_count")
        self.watches.remove_watcher(conn)
        if conn.session_id and self.conn_by_session.get(conn.session_id) is conn:
            del self.conn_by_session[conn.session_id]

    def close_connections(self):
        for conn in list(self.connections):
            conn.close()

    def shutdown(self):
        self.shut_down = True
        self.close_connections()
        self.log.close()


# Event type -> the summary of how many watchers each such event triggers.
_WATCH_SUMMARIES = {
    EventType.NODE_CREATED: "node_created_watch_count",
    EventType.NODE_DELETED: "node_deleted_watch_count",
    EventType.NODE_DATA_CHANGED: "node_changed_watch_count",
    EventType.NODE_CHILDREN_CHANGED: "node_children_watch_count",
}

# Writes of one op that prep_op takes as they are (no multi, reconfig or
# closeSession).
_SINGLE_OPS = CREATE_OPS | {Op.DELETE, Op.SET_DATA, Op.SET_ACL}

# ZooKeeper's prep checks the session's owner before it decodes these (a
# create, a multi: after).
_OWNER_CHECKED_BEFORE_DECODING = frozenset({Op.DELETE, Op.SET_DATA, Op.SET_ACL})


def _moved_in_multi(txn) -> bool:
    """A failed multi carries its error code in one of its (ERROR, (code,)) ops."""
    for op_type, body in txn.body[0]:
        if op_type == Op.ERROR and body[0] == Err.SESSION_MOVED:
            return True
    return False


class _PathOnly:
    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path
