"""The fast path: a standalone server's usual setData and create, from the
frame to the reply, without the general pipeline's choosing between cases.

The general path (dispatch -> role.submit_write -> prep_and_log -> prep_op
-> log_txn; then apply -> DataTree.apply -> txn_applied -> write_reply)
serves every op, role and option, and each write pays for that: a dozen
calls that each pick a case, and for a setData a decoded record object, an
overlay dict, a list of events and a Stat tuple on its way to the reply.
The most frequent writes -- a setData or a create on a standalone server,
whose checks pass -- take the same steps here, through the same code for
what they decide:

    prep     setData: Prep.set_data; create: Prep.create (_create's
             checks for these modes, in its order; the same outstanding
             changes)
    log      ZooKeeperServer.log_change / log_create: a zxid, the outstanding
             changes, the txn logged (and fsynced) like any other
    apply    DataTree.apply_set_data / apply_create: the same change to
             the tree, the digest and the quota figures; then the watches,
             the reply (replies.node_stat_reply / create_reply) and the turn of
             the requests behind it

What that buys (scripts/bench-pipeline, interleaved runs on a 2-core
machine): a setData costs 7.2 us of event-loop work here against 9.1-9.6
through the general path, a create 11.0 against 13.2-13.4.

A write is usual when the server has no audit log (which reads the decoded
record), does not enforce quotas (a refusal is counted, so the check must
be made once), holds no writes (a restore) and is under
globalOutstandingLimit; a setData when its frame decodes as the fast
decoder reads it (records.set_data_fields) and its path is outside
/zookeeper/; a create when it is a create or create2 with the flags of a
persistent or ephemeral node, sequential or not, whose record decodes
(records.create_fields, or the full decoder); and prep passes it.  Any
other returns False before anything is changed, and the general path takes
the request from the start: every error is the general path's, with its
order of checks.  The reply and its figures are made as for any write."""

import collections

from ..protocol.errors import KeeperError, MarshallingError
from ..protocol.opcodes import EventType, Op
from ..protocol.records import FRAME_DECODERS, create_fields, set_data_fields
from .replies import create_reply, node_stat_reply
from .request import Request

_SET_DATA = Op.SET_DATA
_CHANGED = EventType.NODE_DATA_CHANGED
_SYSTEM_SUBTREE = "/zookeeper/"
_DECODE_CREATE = FRAME_DECODERS[Op.CREATE]   # (create and create2 share the record)
# CreateMode flags the fast path takes: persistent, ephemeral, and their
# sequential forms (containers and TTL nodes go the general path).
_PLAIN_FLAGS = 3
# The ops it takes (dispatch asks it only about these).
OPS = frozenset((Op.SET_DATA, Op.CREATE, Op.CREATE2))


class FastPath:
    def __init__(self, server):
        self.server = server
        # What the log calls back once a txn taken here is logged, bound
        # once (a method looked up on the instance is a new object each time).
        self._applied_set_data = self.applied_set_data
        self._applied_create = self.applied_create
        # The requests taken here, in the order of their txns in the log,
        # which is the order they are applied in: each txn's request is
        # the first one left (ZooKeeperServer.expect_reply's dict, keyed by
        # session and xid, is the general path's way; a deque is cheaper).
        self.waiters = collections.deque()

    def take(self, conn, payload, op, xid, received) -> bool:
        """Take a setData, create or create2 frame (its header read, its
        session valid) if it is a usual one; False: the general path is to
        take it."""
        server = self.server
        if server.audit is not None or server.prep.quota is not None \
                or server.held is not None or server.in_process > server.outstanding_limit:
            return False    # not a usual server (see above)
        if op != _SET_DATA:
            return self._take_create(conn, payload, op, xid, received)
        # A setData, the most frequent write, is taken here (a call less).
        fields = set_data_fields(payload, conn.max_frame * 2)
        if fields is None:
            return False
        path, data, version = fields
        if path.startswith(_SYSTEM_SUBTREE):
            return False
        try:
            body, rec = server.prep.set_data(path, data, version, conn.auth_ids)
        except KeeperError:
            return False
        self._wait(conn, xid, _SET_DATA, received)
        server.log_change(conn.session_id, xid, _SET_DATA, body, path, rec,
                          self._applied_set_data)
        return True

    # --- setData ------------------------------------------------------------------------

    def applied_set_data(self, txn):
        """A setData txn taken here is logged: ZooKeeperServer.apply's steps
        for it, in its order."""
        request = self.waiters.popleft()
        server = self.server
        node_path = txn.body[0]
        node = server.tree.apply_set_data(txn)
        zxid = txn.zxid
        server.prep.applied_change(node_path, zxid)
        watches = server.watches
        if watches.data or watches.child:   # (else nobody watches anything)
            server.deliver(((_CHANGED, node_path, node.acl),))
        self._answered(request, node_stat_reply(request.xid, zxid, node))

    # --- create -------------------------------------------------------------------------

    def _take_create(self, conn, payload, op, xid, received) -> bool:
        fields = create_fields(payload, conn.max_frame * 2)
        if fields is None:   # (the first create with its ACL, null data, ...)
            try:
                record = _DECODE_CREATE(payload, conn.max_frame * 2)
            except MarshallingError:
                return False
            fields = record.path, record.data, record.acl, record.flags
        path, data, acl, flags = fields
        if not 0 <= flags <= _PLAIN_FLAGS:
            return False
        server = self.server
        sid = conn.session_id
        overlay = {}
        try:
            body = server.prep.create(path, data, acl, flags, sid, conn.auth_ids, overlay)
        except KeeperError:   # (fixup_acl's InvalidACL)
            return False
        if body is None:
            return False
        self._wait(conn, xid, op, received)
        server.log_create(sid, xid, op, body, overlay, self._applied_create)
        return True

    def applied_create(self, txn):
        """A create txn taken here is logged: ZooKeeperServer.apply's steps
        for it, in its order."""
        request = self.waiters.popleft()
        server = self.server
        watches = server.watches
        # (no events made when nobody watches anything)
        events = [] if watches.data or watches.child else None
        path, stat = server.tree.apply_create(txn, events)
        zxid = txn.zxid
        prep = server.prep
        prep.applied_change(path, zxid)
        i = path.rfind("/")
        prep.applied_change(path[:i] if i > 0 else "/", zxid)
        if events:
            server.deliver(events)
        self._answered(request, create_reply(request.xid, zxid, request.op, path, stat))

    # --- both ---------------------------------------------------------------------------

    def _wait(self, conn, xid, op, received) -> None:
        """The request taken waits for its txn: in its connection's queue
        (no decoded record: nothing after prep reads it here), counted in
        process, and among the waiters, in the order its txn is logged."""
        request = Request(conn, xid, op, None, received)
        request.pending = True
        conn.queue.append(request)
        self.server.in_process += 1
        self.waiters.append(request)

    def _answered(self, request, reply) -> None:
        """The last steps of ZooKeeperServer.apply for a txn taken here:
        its reply, sent now if it is first in line (txn_applied's last
        step)."""
        request.reply = reply
        conn = request.conn
        queue = conn.queue    # (empty if the connection is gone)
        if queue and queue[0] is request:
            conn.drain()
        # (role.applied(txn) is not called: the fast path runs on a
        # standalone server, whose role has nothing to do once a txn is
        # applied.)
