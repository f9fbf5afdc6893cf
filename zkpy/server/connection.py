"""One client connection: frames in, frames out.

States: NEW (the first 4 bytes may be a four-letter word), CONNECTING (the
ConnectRequest is being settled; later frames wait in the buffer, as ZooKeeper
stops reading), ESTABLISHED, CLOSED.

Ordering: requests are answered strictly in arrival order.  A read is answered
at once when nothing is ahead of it; otherwise it waits in `queue` behind the
writes still on their way through the log, and is answered (against the tree as
it is then) when they are done.  Watch events are written the moment the
change is applied, so they always precede the reply that reflects it."""

import asyncio
import collections
import logging
import time

from ..datatree.acl import digest_id
from ..protocol.errors import Err, KeeperError, MarshallingError
from ..protocol.jute import INT, INT_INT, Reader, Writer
from ..protocol.opcodes import LAST_OP_CODES, EventType, Op, WRITE_OPS, Xid
from ..protocol.records import REQUEST_DECODERS, ConnectRequest, ConnectResponse
from . import fourletter, replies
from .reads import READ_HANDLERS
from .request import Request

log = logging.getLogger("zkpy.server")

NEW, CONNECTING, ESTABLISHED, CLOSED = range(4)

_unpack_int = INT.unpack_from
_unpack_header = INT_INT.unpack_from
_header_only = replies.header_only
_with_body = replies.with_body

_EXPIRED_PASSWD = bytes(16)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class ClientConnection(asyncio.Protocol):
    def __init__(self, server, loop):
        self.server = server
        self.loop = loop
        self.transport = None
        self.state = NEW
        self.buf = bytearray()
        self.out = []
        self.flush_scheduled = False
        self.queue = collections.deque()
        self.session_id = 0
        self.timeout = 0
        self.auth_ids = []
        self.peer = ("", 0)
        self.read_only_byte = None
        self.close_after_flush = False
        self.processing = False
        self.max_frame = server.config.jute_maxbuffer
        # Figures for cons / stat.
        self.established = 0
        self.last_recv = _now_ms()
        self.packets_received = 0
        self.packets_sent = 0
        self.last_op = "NA"
        self.last_cxid = None
        self.last_zxid = -1
        self.last_response = 0
        self.last_latency = 0
        self.lat_min = 0
        self.lat_max = 0
        self.lat_total = 0
        self.lat_count = 0

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        self.auth_ids = [("ip", _java_ip(peer[0]))]
        self.server.register(self)
        if not self.server.admit(self):
            log.warning("Too many connections from %s - max is %s", peer[0],
                        self.server.config.max_client_cnxns)
            self.close()

    def connection_lost(self, exc):
        self.state = CLOSED
        self.queue.clear()
        self.server.unregister(self)

    def pause_writing(self):
        # The client is not reading its replies: stop reading its requests.
        if self.transport is not None and self.state != CLOSED:
            self.transport.pause_reading()

    def resume_writing(self):
        if self.transport is not None and self.state != CLOSED:
            self.transport.resume_reading()

    def data_received(self, data):
        if self.state == CLOSED:
            return
        self.buf += data
        self.last_recv = _now_ms()
        if self.state == NEW and len(self.buf) >= 4:
            word = bytes(self.buf[:4])
            if word in fourletter.COMMANDS:
                if word == b"stmk" and len(self.buf) < 12 and \
                        self.server.config.four_letter_word_allowed("stmk"):
                    return  # wait for its 8-byte mask
                self._four_letter_word(word.decode())
                return
        if self.state != CONNECTING:
            self._process_frames()

    # --- frames ------------------------------------------------------------------------

    def _process_frames(self):
        if self.processing:
            return  # re-entered from a handshake completing inside the loop below
        self.processing = True
        try:
            self._process_frames_now()
        finally:
            self.processing = False

    def _process_frames_now(self):
        buf = self.buf
        pos = 0
        end = len(buf)
        touched = False
        while end - pos >= 4 and self.state not in (CONNECTING, CLOSED):
            n = _unpack_int(buf, pos)[0]
            if n < 0 or n > self.max_frame:
                log.warning("Len error %d from %s; closing", n, self.peer[0])
                self.close()
                return
            if end - pos - 4 < n:
                break
            payload = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            if self.state == NEW:
                self._handle_connect(payload)
            else:
                touched = True
                self._handle_request(payload)
        if pos:
            del buf[:pos]
        if touched and self.session_id and self.state == ESTABLISHED:
            self.server.touch_session(self.session_id, self.last_recv)

    def _handle_request(self, payload):
        server = self.server
        self.packets_received += 1
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
            return
        decoder = REQUEST_DECODERS.get(op)
        if decoder is None:
            if op == Op.CHECK and server.read_only:
                # A read-only server refuses it before anything looks at it.
                req = Request(self, xid, op, None, self.last_recv)
                self.queue.append(req)
                server.submit_request(req)
                return
            self.queue.append(_unimplemented(self, xid, op))
            self.drain()
            return
        owner = server.owner
        if owner is not None and op not in WRITE_OPS and op != Op.AUTH and op != Op.SASL \
                and not server.sessions.check_owner(self.session_id, owner):
            # A leader checks every request of its own clients against the
            # session's owner (writes in prep): the session has moved to
            # another peer, so this connection is closed, without a reply,
            # once the replies before this request are out.  Requests that
            # came in the same batch still go through prep first (a write
            # among them uses up a zxid), as in ZooKeeper, where the close
            # happens at the end of the pipeline.
            req = Request(self, xid, op, None, self.last_recv)
            req.reply = replies.CLOSE
            self.queue.append(req)
            self.loop.call_soon(self.drain)
            return
        error = None
        try:
            r = Reader(payload, 8, self.max_frame * 2)
            record = decoder(r)
        except MarshallingError as e:
            if op == Op.AUTH or op == Op.SASL:
                # ZooKeeper decodes these in the I/O layer; a bad one drops
                # the connection without a reply.
                self.close()
                return
            record, error = None, e
        req = Request(self, xid, op, record, self.last_recv, error,
                      payload if op in WRITE_OPS else None)
        if op in WRITE_OPS:
            self.queue.append(req)
            server.submit_request(req)
        elif op == Op.SYNC and server.defer_sync:
            self.queue.append(req)
            server.submit_sync(req)
        elif self.queue:
            self.queue.append(req)
        else:
            self._send_reply(req, self._evaluate(req))

    def _evaluate(self, req) -> bytes:
        """The reply to a request that changes no znode, built now."""
        server = self.server
        op = req.op
        xid = req.xid
        zxid = server.tree.last_zxid
        if req.decode_error is not None:
            return _header_only(xid, zxid, Err.MARSHALLING_ERROR)
        if op == Op.PING:
            return _header_only(Xid.PING, zxid, 0)
        handler = READ_HANDLERS.get(op)
        if handler is not None:
            try:
                return _with_body(xid, zxid, handler(server, self, req.record))
            except KeeperError as e:
                return _header_only(xid, zxid, e.code)
        if op == Op.AUTH:
            return self._auth(req)
        if op == Op.SET_WATCHES or op == Op.SET_WATCHES2:
            self._set_watches(req.record)
            return _header_only(xid, server.tree.last_zxid, 0)
        if op == Op.SASL:
            # No SASL here: refuse as a failed authentication does.
            self.close_after_flush = True
            return _header_only(xid, 0, Err.AUTH_FAILED)
        self.close_after_flush = True
        return _header_only(xid, zxid, Err.UNIMPLEMENTED)

    def txn_applied(self, req, txn, result):
        """Called by the server when the txn of a request of ours is applied."""
        if req.op == Op.CREATE_SESSION:
            self._handshake_done(txn.session_id)
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
        while q and self.state != CLOSED:
            head = q[0]
            reply = head.reply
            if reply is None:
                if head.op in WRITE_OPS or (head.op == Op.SYNC and self.server.defer_sync):
                    return  # still on its way through the leader or the log
                reply = self._evaluate(head)
            q.popleft()
            if reply is replies.CLOSE:
                self.close()
                return
            self._send_reply(head, reply)

    def _send_reply(self, req, frame):
        now = _now_ms()
        lat = now - req.received
        self.last_latency = lat
        self.last_response = now
        self.last_op = req.op
        if req.xid > 0:
            self.last_cxid = req.xid
        self.last_zxid = self.server.tree.last_zxid
        if self.lat_count == 0 or lat < self.lat_min:
            self.lat_min = lat
        if lat > self.lat_max:
            self.lat_max = lat
        self.lat_total += lat
        self.lat_count += 1
        stats = self.server.stats
        stats.latency.add(lat)
        stats.packets_sent += 1
        size = len(frame) - 4  # ZooKeeper counts the reply without its length prefix
        stats.last_response_size = size
        if stats.max_response_size < size:
            stats.max_response_size = size
        if stats.min_response_size < 0 or size < stats.min_response_size:
            stats.min_response_size = size
        self.packets_sent += 1
        self.send(frame)
        if self.close_after_flush:
            self.close()

    # --- output ---------------------------------------------------------------------------

    def send(self, frame):
        if self.state == CLOSED:
            return
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def send_event(self, frame):
        self.server.stats.packets_sent += 1
        self.packets_sent += 1
        self.send(frame)

    def flush(self):
        self.flush_scheduled = False
        if self.out and self.transport is not None:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out.clear()
            self.transport.write(data)

    def close(self):
        if self.state == CLOSED:
            return
        self.flush()
        self.state = CLOSED
        if self.transport is not None:
            self.transport.close()

    # --- handshake ---------------------------------------------------------------------------

    def _handle_connect(self, payload):
        server = self.server
        try:
            req = ConnectRequest.read(Reader(payload))
        except MarshallingError:
            log.warning("Malformed ConnectRequest from %s; closing", self.peer[0])
            self.close()
            return
        self.read_only_byte = req.read_only
        if server.read_only and not req.read_only:
            # A read-only server takes only clients that ask for read-only
            # (an old client without the byte is not one of them).
            log.info("Refusing session request for not-read-only client %s", self.peer[0])
            self.close()
            return
        if req.last_zxid_seen > server.tree.last_zxid:
            log.info("Refusing session request for client %s as it has seen zxid 0x%x our last "
                     "zxid is 0x%x client must try another server", self.peer[0],
                     req.last_zxid_seen, server.tree.last_zxid)
            self.close()
            return
        if not server.serving:
            self.close()
            return
        timeout = server.negotiate_timeout(req.timeout)
        self.timeout = timeout
        if req.session_id == 0:
            self.state = CONNECTING
            server.create_session(self, timeout)
            return
        sid = req.session_id
        if not server.validate_session(sid):
            log.info("Refusing global session reconnection in RO mode %s", self.peer[0])
            self.close()
            return
        other = server.conn_by_session.get(sid)
        if other is not None and other is not self:
            other.close()
        if req.passwd != server.password(sid):
            self.session_expired()
            return
        # The server answers with _handshake_done or session_expired, at once
        # or (a follower asking its leader) later; frames wait till then.
        self.state = CONNECTING
        server.resume_session(self, sid, timeout)

    def session_expired(self):
        """Refuse a reconnect: the session is gone (or the password is wrong)."""
        if self.state == CLOSED:
            return
        self._send_connect_response(0, 0, _EXPIRED_PASSWD)
        self.close()

    def _handshake_done(self, sid):
        if self.state == CLOSED:
            return
        self.session_id = sid
        self.state = ESTABLISHED
        self.established = int(time.time() * 1000)
        self.server.conn_by_session[sid] = self
        self._send_connect_response(self.timeout, sid, self.server.password(sid))
        if self.buf:
            self._process_frames()

    def _send_connect_response(self, timeout, sid, passwd):
        ro = None if self.read_only_byte is None else self.server.read_only
        w = Writer()
        ConnectResponse(0, timeout, sid, passwd, ro).write(w)
        self.send(INT.pack(len(w.out)) + bytes(w.out))

    # --- auth and setWatches ------------------------------------------------------------------

    def _auth(self, req) -> bytes:
        server = self.server
        pkt = req.record
        scheme = pkt.scheme
        if scheme == "digest" and server.config.digest_enabled:
            text = (pkt.auth or b"").decode("utf-8", "replace")
            ident = digest_id(text)
            if ("digest", ident) not in self.auth_ids:
                self.auth_ids.append(("digest", ident))
            if server.super_digest and ident == server.super_digest \
                    and ("super", "") not in self.auth_ids:
                self.auth_ids.append(("super", ""))
            return _header_only(req.xid, 0, 0)
        if scheme == "ip":
            ident = ("ip", _java_ip(self.peer[0]))
            if ident not in self.auth_ids:
                self.auth_ids.append(ident)
            return _header_only(req.xid, 0, 0)
        server.stats.auth_failed += 1
        self.close_after_flush = True
        return _header_only(req.xid, 0, Err.AUTH_FAILED)

    def _set_watches(self, sw):
        """Re-register a reconnecting client's watches, first telling it what
        changed since relativeZxid (events go out before the reply)."""
        tree = self.server.tree
        watches = self.server.watches
        rz = sw.relative_zxid
        notify = replies.notification
        for path in sw.data:
            node = tree.nodes.get(path)
            if node is None:
                self.send_event(notify(EventType.NODE_DELETED, path))
            elif node.mzxid > rz:
                self.send_event(notify(EventType.NODE_DATA_CHANGED, path))
            else:
                watches.add_data_watch(path, self)
        for path in sw.exist:
            if tree.nodes.get(path) is None:
                watches.add_data_watch(path, self)
            else:
                self.send_event(notify(EventType.NODE_CREATED, path))
        for path in sw.child:
            node = tree.nodes.get(path)
            if node is None:
                self.send_event(notify(EventType.NODE_DELETED, path))
            elif node.pzxid > rz:
                self.send_event(notify(EventType.NODE_CHILDREN_CHANGED, path))
            else:
                watches.add_child_watch(path, self)
        for path in sw.persistent or ():
            watches.add_persistent(path, self, False)
        for path in sw.persistent_recursive or ():
            watches.add_persistent(path, self, True)

    # --- four-letter words ----------------------------------------------------------------

    def _four_letter_word(self, word):
        self.state = CLOSED
        try:
            text = fourletter.run(self.server, word, bytes(self.buf[4:12]))
        except Exception:  # a report must never take the server down
            log.exception("four-letter word %s failed", word)
            text = ""
        self.server.unregister(self)
        if self.transport is not None:
            self.transport.write(text.encode("utf-8"))
            self.transport.close()

    def describe(self, brief: bool) -> str:
        """The cons / stat line of this connection."""
        ip, port = self.peer
        s = f" /{_java_ip(ip)}:{port}[1](queued={len(self.queue)},recved={self.packets_received}," \
            f"sent={self.packets_sent}"
        if brief or not self.session_id:
            return s + ")"
        s += f",sid=0x{self.session_id & 0xFFFFFFFFFFFFFFFF:x}"
        s += f",lop={_op_name(self.last_op)},est={self.established},to={self.timeout}"
        if self.last_cxid is not None:
            s += f",lcxid=0x{self.last_cxid:x}"
        s += f",lzxid=0x{self.last_zxid & 0xFFFFFFFFFFFFFFFF:x},lresp={self.last_response}"
        avg = self.lat_total // self.lat_count if self.lat_count else 0
        s += f",llat={self.last_latency},minlat={self.lat_min},avglat={avg},maxlat={self.lat_max})"
        return s

    def reset_stats(self):
        self.packets_received = self.packets_sent = 0
        self.last_op = "NA"
        self.last_cxid = None
        self.last_zxid = -1
        self.last_response = self.last_latency = 0
        self.lat_min = self.lat_max = self.lat_total = self.lat_count = 0


def _unimplemented(conn, xid, op):
    req = Request(conn, xid, op, None, _now_ms())
    # ZooKeeper's UnimplementedRequestProcessor answers with the zxid of a
    # request that never got one: -1.
    req.reply = _header_only(xid, -1, Err.UNIMPLEMENTED)
    conn.close_after_flush = True
    return req


def _op_name(op):
    return op if isinstance(op, str) else LAST_OP_CODES.get(op, "NA")


def _java_ip(addr: str) -> str:
    """Addresses as Java prints them (IPv6 uncompressed, no brackets)."""
    if ":" not in addr:
        return addr
    import ipaddress
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return addr
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return ":".join(str(int(p, 16)) and format(int(p, 16), "x") for p in ip.exploded.split(":"))
    return str(ip)
