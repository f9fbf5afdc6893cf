"""The fast path: a standalone server's usual setData, from its frame to its
reply, without the general pipeline's choosing between cases.

The general path (dispatch -> role.submit_write -> prep_and_log -> prep_op
-> _log_txn; then apply -> DataTree.apply -> txn_applied -> write_reply)
serves every op, role and option, and each write pays for that: a decoded
record object, an overlay dict, a list of events, a Stat tuple on its way
to the reply, and a dozen calls that each pick a case.  The most frequent
write -- a setData on a standalone server, whose checks pass -- takes the
same steps here, through the same code for what they decide:

    prep     Prep.set_data           the same checks, the same PendingNode
    log      ZooKeeperServer.log_change: a zxid, the outstanding change,
             the txn logged (and fsynced) like any other
    apply    DataTree.apply_set_data  the same change to the node, the
             digest and the quota figures; then the watches, the reply
             (replies.stat_reply) and the turn of the requests behind it

What that buys: a setData costs 6.0 us of event-loop work here against
7.0 through the general path (scripts/bench-pipeline, interleaved runs on
a 2-core machine), and under fsynced load (scripts/bench --force-sync) the
server spends about 1 us less CPU per setData.

A setData is usual when its frame decodes as the fast decoder reads it
(records.set_data_fields), its path is outside /zookeeper/, the server
has no audit log (which reads the decoded record), does not enforce quotas
(a refusal is counted, so the check must be made once), holds no writes (a
restore) and is under globalOutstandingLimit, and prep passes it.  Any
other returns False before anything is changed, and the general path takes
the request from the start: every error is the general path's, with its
order of checks.  The reply and its figures are made as for any write."""

from ..protocol.errors import KeeperError
from ..protocol.opcodes import EventType, Op
from ..protocol.records import set_data_fields
from .replies import stat_reply
from .request import Request

_SET_DATA = Op.SET_DATA
_CHANGED = EventType.NODE_DATA_CHANGED
_SYSTEM_SUBTREE = "/zookeeper/"


class FastPath:
    def __init__(self, server):
        self.server = server

    def take(self, conn, payload, xid, received) -> bool:
        """Take a setData frame (its header read, its session valid) if it
        is a usual one; False: the general path is to take it."""
        server = self.server
        if server.audit is not None or server.prep.quota is not None \
                or server.held is not None or server.in_process > server.outstanding_limit:
            return False
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
        request = Request(conn, xid, _SET_DATA, None, received)
        request.pending = True
        conn.queue.append(request)
        server.in_process += 1
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
            conn = request.conn
            if conn.queue and conn.queue[0] is request:
                conn.drain()
        server.role.applied(txn)
