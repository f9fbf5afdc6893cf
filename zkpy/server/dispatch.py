"""Where a client's request goes once its frame is read, and the order of the
replies.  RequestDispatch is the request half of ClientConnection (a mixin:
one object, so the hot path pays no extra hop).

    write (WRITE_OPS)     -> the server's role (submit_write): prep, the log
                             or the leader, apply; the reply comes back
                             through txn_applied()
    usual setData, create -> on a standalone server, fast_path.py: the same
                             steps without the choosing between cases
    sync                  -> the role (submit_sync)
    auth, sasl            -> auth.py
    any other known op    -> answered from the tree (reads.py), at once if
                             nothing is ahead of it, else in its turn
    unknown op            -> the role may take it (a read-only server answers
                             NotReadOnly); otherwise Unimplemented, and closed

Ordering: requests are answered strictly in arrival order.  A request whose
reply depends on the pipeline is `pending`; one behind it waits in `queue`
and is answered (against the tree as it is then) when its turn comes.  Watch
events are written the moment the change is applied, so they always precede
the reply that reflects it.

Every request in a queue is counted in the server's in_process until it is
answered.  A connection that adds one while more than globalOutstandingLimit
are in process stops being read (disable_recv) until its own requests are
answered or the server is back under the limit (ServerCnxn's
incrOutstandingAndCheckThrottle / decrOutstandingAndCheckThrottle).  With
request_throttle_max_requests, requests first pass the RequestThrottler
(throttled_dispatch.py)."""

import logging

from ..protocol.errors import Err, KeeperError, MarshallingError
from ..protocol.jute import INT_INT
from ..protocol.opcodes import Op, WRITE_OPS, Xid
from ..protocol.records import FRAME_DECODERS
from . import fast_path, replies
from .auth import authenticate
from .reads import READ_HANDLERS, get_data_reply
from .request import CLOSED, Request

log = logging.getLogger("zkpy.server")

_unpack_header = INT_INT.unpack_from
_header_only = replies.header_only
_with_body = replies.with_body
_CLOSE = replies.CLOSE
_GET_DATA = Op.GET_DATA
_FAST_OPS = fast_path.OPS


class RequestDispatch:
    """Needs of its host: server, loop, queue, session_id, auth_ids, peer,
    max_frame, last_recv, stats, answered, close_after_flush, state, send(),
    close(), session_created()."""

    def _handle_request(self, payload, received) -> bool:
        """Dispatch one request frame (received: when, in monotonic ms).
        True if reading from this connection has been paused."""
        server = self.server
        self.stats.packets_received += 1
        server.stats.packets_received += 1
        if len(payload) < 8:
            log.warning("Short request from %s; closing", self.peer[0])
            self.close()
            return
        xid, op = _unpack_header(payload, 0)
        if not server.sessions.is_valid(self.session_id):
            # A request on an expired or closing session: dropped, connection
            # closed -- but after the reply to our own closeSession, if one is
            # still on its way through the log.
            if not any(r.op == Op.CLOSE_SESSION for r in self.queue):
                self.close()
            return False
        role = server.role
        if op in _FAST_OPS and role.takes_fast_path \
                and server.fast_path.take(self, payload, op, xid, received):
            return False    # a usual setData or create, taken by fast_path.py
        decoder = FRAME_DECODERS.get(op)
        if decoder is None:
            self._unknown_request(xid, op, received)
            return False
        if role.checks_reads and op not in WRITE_OPS and op != Op.AUTH and op != Op.SASL \
                and role.refuses_read(self):
            # The session has moved to another server: this connection is
            # closed, without a reply, once the replies before this request
            # are out.  Requests that came in the same batch still go through
            # the pipeline first (a write among them uses up a zxid), as in
            # ZooKeeper, where the close happens at the end of the pipeline.
            req = Request(self, xid, op, None, received)
            req.reply = _CLOSE
            self.queue.append(req)
            server.in_process += 1
            self.loop.call_soon(self.drain)
            return False
        error = None
        try:
            record = decoder(payload, self.max_frame * 2)
        except MarshallingError as e:
            if op == Op.AUTH or op == Op.SASL:
                # ZooKeeper decodes these in the I/O layer; a bad one drops
                # the connection without a reply.
                self.close()
                return False
            record, error = None, e
        # Checked before the request is counted, as ZooKeeper does; the
        # pause comes before the submission, whose reply may come at once.
        # Pings and the client's other negative xids never pause a connection.
        if op in WRITE_OPS:
            req = Request(self, xid, op, record, received, error, payload)
            req.pending = True
            self.queue.append(req)
            n = server.in_process
            server.in_process = n + 1
            if n > server.outstanding_limit and xid > 0:
                self.disable_recv()
                role.submit_write(req)
                return True
            role.submit_write(req)
            return False
        if op == Op.SYNC:
            req = Request(self, xid, op, record, received, error)
            req.pending = True
            self.queue.append(req)
            n = server.in_process
            server.in_process = n + 1
            paused = n > server.outstanding_limit and xid > 0 and self.disable_recv()
            role.submit_sync(req)
            return paused
        if self.queue:
            self.queue.append(Request(self, xid, op, record, received, error))
            n = server.in_process
            server.in_process = n + 1
            return n > server.outstanding_limit and xid > 0 and self.disable_recv()
        req = Request(self, xid, op, record, received, error)
        self._send_reply(req, self._evaluate(req))
        return False

    def _unknown_request(self, xid, op, received):
        """An opcode with no request record of its own (check outside a multi,
        createSession after the handshake, anything unknown)."""
        req = Request(self, xid, op, None, received)
        req.pending = True
        self.queue.append(req)
        self.server.in_process += 1
        if not self.server.role.submit_unknown(req):
            # ZooKeeper's UnimplementedRequestProcessor answers with the zxid
            # of a request that never got one: -1.
            req.pending = False
            req.reply = _header_only(xid, -1, Err.UNIMPLEMENTED)
            self.close_after_flush = True
            self.drain()

    def _evaluate(self, req) -> bytes:
        """The reply to a request that changes no znode, built now."""
        server = self.server
        op = req.op
        xid = req.xid
        zxid = server.tree.last_zxid
        if req.decode_error is not None:
            # MarshallingError, or Throttled for a request the RequestThrottler held too long
            return _header_only(xid, zxid, req.decode_error.code)
        if op == _GET_DATA:
            # The most frequent request: its reply frame is packed at once.
            try:
                return get_data_reply(server, self, req.record, xid, zxid)
            except KeeperError as e:
                return _header_only(xid, zxid, e.code)
        if op == Op.PING:
            return _header_only(Xid.PING, zxid, 0)
        handler = READ_HANDLERS.get(op)
        if handler is not None:
            try:
                return _with_body(xid, zxid, handler(server, self, req.record))
            except KeeperError as e:
                return _header_only(xid, zxid, e.code)
        if op == Op.AUTH or op == Op.SASL:
            return authenticate(server, self, req)
        self.close_after_flush = True
        return _header_only(xid, zxid, Err.UNIMPLEMENTED)

    def txn_applied(self, req, txn, result):
        """Called by the server when the txn of a request of ours is applied."""
        if req.op == Op.CREATE_SESSION:
            self.session_created(txn.session_id, req.received, True)
            return
        req.reply = self.server.write_reply(req, txn, result)
        if req.op == Op.CLOSE_SESSION:
            self.close_after_flush = True
        if self.queue and self.queue[0] is req:
            self.drain()

    def drain(self):
        """Send every reply at the head of the queue that is ready, answering
        waiting reads as their turn comes."""
        q = self.queue
        answered = 0
        while q and self.state != CLOSED:
            head = q[0]
            reply = head.reply
            if reply is None:
                if head.pending:
                    break  # still on its way through the pipeline
                reply = self._evaluate(head)
            q.popleft()
            answered += 1
            if reply is _CLOSE:
                self.close()
                break
            self._send_reply(head, reply)
        if answered:
            server = self.server
            server.in_process -= answered
            if self.throttled and (not q or not over_outstanding_limit(server)):
                self.enable_recv()

    def _send_reply(self, req, frame):
        # Its figures (latency, sizes, the connection's last op) are taken
        # when the connection's output is flushed, for all the replies of
        # that write at once (ClientConnection.flush, ServerStats.replied).
        req.reply = frame
        self.answered.append(req)
        self.send(frame)
        if self.close_after_flush:
            self.close()


def over_outstanding_limit(server) -> bool:
    """ZooKeeperServer.shouldThrottle's server half: more requests in
    process, or waiting in the RequestThrottler, than globalOutstandingLimit."""
    limit = server.outstanding_limit
    return server.in_process > limit or len(server.request_throttler.held) > limit
