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

    prep     setData: Prep.set_data; create: Prep.prep_op (the same
             checks, the same outstanding changes)
    log      ZooKeeperServer.log_change / log_txn: a zxid, the outstanding
             changes, the txn logged (and fsynced) like any other
    apply    DataTree.apply_set_data / DataTree.apply: the same change to
             the tree, the digest and the quota figures; then the watches,
             the reply (replies.stat_reply / create_reply) and the turn of
             the requests behind it

What that buys (scripts/bench-pipeline, interleaved runs on a 2-core
machine): a setData costs 6.0 us of event-loop work here against 7.0
through the general path, a create 9.4 against 10.3; under fsynced load
(scripts/bench --force-sync) the server spends about 1 us less CPU per
setData.

A write is usual when the server has no audit log (which reads the decoded
record), does not enforce quotas (a refusal is counted, so the check must
be made once), holds no writes (a restore) and is under
globalOutstandingLimit; a setData when its frame decodes as the fast
decoder reads it (records.set_data_fields) and its path is outside
/zookeeper/; a create when it is a create or create2 with the flags of a
persistent or ephemeral node, sequential or not, whose record decodes;
and prep passes it.  Any other returns False before anything is changed,
and the general path takes the request from the start: every error is the
general path's, with its order of checks.  The reply and its figures are
made as for any write."""

from ..protocol.errors import KeeperError, MarshallingError
from ..protocol.opcodes import EventType, Op
from ..protocol.records import FRAME_DECODERS, set_data_fields
from .replies import create_reply, stat_reply
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

    def _usual_server(self) -> bool:
        server = self.server
        return server.audit is None and server.prep.quota is None and server.held is None \
            and server.in_process <= server.outstanding_limit

    def take(self, conn, payload, op, xid, received) -> bool:
        """Take a setData, create or create2 frame (its header read, its
        session valid) if it is a usual one; False: the general path is to
        take it."""
        if not self._usual_server():
            return False
        if op == _SET_DATA:
            return self._take_set_data(conn, payload, xid, received)
        return self._take_create(conn, payload, op, xid, received)

    # --- setData ------------------------------------------------------------------------

    def _take_set_data(self, conn, payload, xid, received) -> bool:
        fields = set_data_fields(payload, conn.max_frame * 2)
        if fields is None:
            return False
        path, data, version = fields
        if path.startswith(_SYSTEM_SUBTREE):
            return False
        server = self.server
        try:
            body, rec = server.prep.set_data(path, data, version, conn.auth_ids)
        except KeeperError:
            return False
        request = self._pending(conn, xid, _SET_DATA, received)
        server.log_change(conn.session_id, xid, _SET_DATA, body, path, rec, request,
                          self.applied)
        return True

    def applied(self, txn):
        """A setData txn taken here is logged: ZooKeeperServer.apply's steps
        for it, in its order."""
        server = self.server
        node = server.tree.apply_set_data(txn)
        zxid = txn.zxid
        server.prep.applied(zxid)
        watches = server.watches
        if watches.data or watches.child:   # (else nobody watches anything)
            server.deliver(((_CHANGED, txn.body[0], node.acl),))
        request = server.take_waiter((txn.session_id, txn.cxid))
        if request is not None:
            request.reply = stat_reply(request.xid, zxid, node.stat())
            self._answered(request)
        server.role.applied(txn)

    # --- create -------------------------------------------------------------------------

    def _take_create(self, conn, payload, op, xid, received) -> bool:
        try:
            record = _DECODE_CREATE(payload, conn.max_frame * 2)
        except MarshallingError:
            return False
        if not 0 <= record.flags <= _PLAIN_FLAGS:
            return False
        server = self.server
        sid = conn.session_id
        overlay = {}
        try:
            body = server.prep.prep_op(op, record, sid, conn.auth_ids, overlay)
        except KeeperError:
            return False
        request = self._pending(conn, xid, op, received)
        server.log_txn(sid, xid, op, body, overlay, request, self.applied_create)
        return True

    def applied_create(self, txn):
        """A create txn taken here is logged: ZooKeeperServer.apply's steps
        for it, in its order."""
        server = self.server
        (path, stat), events = server.tree.apply(txn)
        zxid = txn.zxid
        server.prep.applied(zxid)
        watches = server.watches
        if watches.data or watches.child:   # (else nobody watches anything)
            server.deliver(events)
        request = server.take_waiter((txn.session_id, txn.cxid))
        if request is not None:
            request.reply = create_reply(request.xid, zxid, request.op, path, stat)
            self._answered(request)
        server.role.applied(txn)

    # --- both ---------------------------------------------------------------------------

    def _pending(self, conn, xid, op, received) -> Request:
        """The request taken, in its connection's queue until its txn is
        applied (no decoded record: nothing after prep reads it here)."""
        request = Request(conn, xid, op, None, received)
        request.pending = True
        conn.queue.append(request)
        self.server.in_process += 1
        return request

    @staticmethod
    def _answered(request):
        """Its reply is ready: sent now if it is first in line (txn_applied's
        last step)."""
        conn = request.conn
        if conn.queue and conn.queue[0] is request:
            conn.drain()
