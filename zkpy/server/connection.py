"""One client connection: frames in, frames out, and the handshake.

States: NEW (the first 4 bytes may be a four-letter word), CONNECTING (the
ConnectRequest is being settled; later frames wait in the buffer, as ZooKeeper
stops reading), ESTABLISHED, CLOSED.

What happens to each request after its frame is cut out is dispatch.py's
business (RequestDispatch, a part of this same object); what the server
does with a session, a write or a sync depends on its role (roles/)."""

import asyncio
import collections
import logging

from ..protocol.errors import MarshallingError
from ..protocol.jute import INT, Reader, Writer
from ..protocol.records import ConnectRequest, ConnectResponse
from . import fourletter, large_requests, throttled_dispatch
from .auth import initial_auth_ids
from .connstats import ConnectionStats
from .dispatch import RequestDispatch
from .request import CLOSED, CONNECTING, ESTABLISHED, NEW

log = logging.getLogger("zkpy.server")

_unpack_int = INT.unpack_from

_EXPIRED_PASSWD = bytes(16)


class ClientConnection(RequestDispatch, asyncio.Protocol):
    def __init__(self, server, loop):
        self.server = server
        self.loop = loop
        self.clock = server.clock
        self.transport = None
        self.state = NEW
        self.buf = bytearray()
        self.out = []
        self.answered = []   # requests whose replies are in out (their figures not taken yet)
        self.flush_scheduled = False
        self.queue = collections.deque()   # requests not answered yet, in order
        self.session_id = 0
        self.timeout = 0
        self.auth_ids = []
        self.peer = ("", 0)
        self.read_only_byte = None
        self.close_after_flush = False
        self.processing = False
        self.max_frame = server.config.jute_maxbuffer
        self.last_recv = self.clock.now_ms()
        self.stats = ConnectionStats()      # cons / stat figures
        self.throttled = False      # not read: too much in process (globalOutstandingLimit)
        self.waiting_turn = False   # in server.read_turns, to dispatch what it held back
        self.write_paused = False   # not read: the client does not read its replies
        if server.request_throttler.enabled:
            throttled_dispatch.install(self)
        if server.large_requests.enabled:
            large_requests.install(self)

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        self.auth_ids = initial_auth_ids(self.peer)
        self.server.register(self)
        if not self.server.admit(self):
            log.warning("Too many connections from %s - max is %s", peer[0],
                        self.server.config.max_client_cnxns)
            self.close()

    def connection_lost(self, exc):
        self.state = CLOSED
        server = self.server
        if self.queue:
            server.in_process -= len(self.queue)
            self.queue.clear()
            if server.request_throttler.held:
                throttled_dispatch.pump(server, self.loop)
        server.unregister(self)

    def pause_writing(self):
        # The client is not reading its replies: stop reading its requests.
        self.write_paused = True
        if self.transport is not None and self.state != CLOSED:
            self.transport.pause_reading()

    def resume_writing(self):
        self.write_paused = False
        if self.transport is not None and self.state != CLOSED and not self.throttled:
            self.transport.resume_reading()

    def disable_recv(self) -> bool:
        """Stop reading this client's requests (ServerCnxn.disableRecv): it
        added one while the server was over globalOutstandingLimit.  Frames
        already read wait in buf."""
        self.throttled = True
        if self.transport is not None and self.state != CLOSED:
            self.transport.pause_reading()
        return True

    def enable_recv(self):
        """Read again (ServerCnxn.enableRecv).  The frames that waited in buf
        go first, in turns with other clients resumed at the same time; the
        socket is read once they are all dispatched, so that a client kept
        at the limit never has more than one read's worth here."""
        self.throttled = False
        if self.transport is None or self.state == CLOSED:
            return
        if self.buf:
            if not self.waiting_turn:
                self.waiting_turn = True
                turns = self.server.read_turns
                turns.waiting.append(self)
                if not turns.scheduled:
                    turns.scheduled = True
                    self.loop.call_soon(_take_turns, turns, self.loop)
        elif not self.write_paused:
            self.transport.resume_reading()

    def _read_one_buffered(self) -> bool:
        """Dispatch the first frame that waited in buf; True if this
        connection should have another turn."""
        if self.throttled or self.state != ESTABLISHED:
            return False
        buf = self.buf
        if len(buf) >= 4:
            n = _unpack_int(buf, 0)[0]
            if n < 0 or n > self.max_frame:
                log.warning("Len error %d from %s; closing", n, self.peer[0])
                self.close()
                return False
            if len(buf) - 4 >= n:
                payload = bytes(buf[4:4 + n])
                del buf[:4 + n]
                now = self.last_recv = self.clock.now_ms()   # read now, as ZooKeeper would
                paused = self._handle_request(payload, now)
                if self.state != ESTABLISHED:
                    return False
                self.server.role.touch_session(self.session_id, now)
                return not paused
        if not self.write_paused:
            self.transport.resume_reading()   # nothing whole left: read the socket again
        return False

    def data_received(self, data):
        if self.state == CLOSED:
            return
        self.server.stats.bytes_received += len(data)
        self.last_recv = self.clock.now_ms()
        if self.state == ESTABLISHED and not self.buf and not self.throttled \
                and not self.processing:
            # The usual read: whole frames and nothing left from the last.
            # They are cut from the bytes read (one copy each, where the
            # buffer costs two); only a partial frame at the end is kept.
            self.processing = True
            try:
                pos = self._process_frames_now(data)
            finally:
                self.processing = False
            if pos < len(data) and self.state != CLOSED:
                self.buf += data[pos:] if pos else data
            return
        self.buf += data
        if self.state == NEW and len(self.buf) >= 4:
            word = bytes(self.buf[:4])
            if word in fourletter.COMMANDS:
                if word == b"stmk" and len(self.buf) < 12 and \
                        self.server.config.four_letter_word_allowed("stmk"):
                    return  # wait for its 8-byte mask
                self._four_letter_word(word.decode())
                return
        if self.state != CONNECTING and not self.throttled:
            self._process_frames()

    # --- frames ------------------------------------------------------------------------

    def _process_frames(self):
        if self.processing:
            return  # re-entered from a handshake completing inside the loop below
        self.processing = True
        try:
            buf = self.buf
            pos = self._process_frames_now(buf)
            if pos:
                del buf[:pos]
        finally:
            self.processing = False

    def _process_frames_now(self, buf) -> int:
        """Dispatch the whole frames at the start of buf (bytes, or self.buf);
        how many bytes they took."""
        pos = 0
        end = len(buf)
        touched = False
        received = self.last_recv
        while end - pos >= 4 and self.state not in (CONNECTING, CLOSED):
            n = _unpack_int(buf, pos)[0]
            if n < 0 or n > self.max_frame:
                log.warning("Len error %d from %s; closing", n, self.peer[0])
                self.close()
                return pos
            if end - pos - 4 < n:
                break
            payload = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            if self.state == NEW:
                self._handle_connect(payload)
            else:
                touched = True
                if self._handle_request(payload, received):
                    break   # reading paused (globalOutstandingLimit): the rest waits in buf
        if touched and self.session_id and self.state == ESTABLISHED:
            self.server.role.touch_session(self.session_id, self.last_recv)
        return pos

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
        self.stats.packets_sent += 1
        self.send(frame)

    def flush(self):
        self.flush_scheduled = False
        if self.answered:
            answered, self.answered = self.answered, []
            self.server.stats.replied(self.stats, answered, self.clock.now_ms())
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
        role = server.role
        # A packet received, as any request frame is (packetReceived).
        self.stats.packets_received += 1
        server.stats.packets_received += 1
        try:
            req = ConnectRequest.read(Reader(payload))
        except MarshallingError:
            log.warning("Malformed ConnectRequest from %s; closing", self.peer[0])
            self.close()
            return
        # The connection token bucket comes first (processConnectRequest);
        # a refused client sees its connection closed without a reply.  A
        # new session is priced as a local one where sessions start local.
        local = role.read_only or getattr(role, "local_sessions", False)
        if not server.connection_throttle.admit(req.session_id, local, self.clock.now_ms()):
            log.warning("Closing connection from %s: connection throttled", self.peer[0])
            self.close()
            return
        self.read_only_byte = req.read_only
        if not role.admits_client(req.read_only, self.peer[0]):
            self.close()
            return
        if req.last_zxid_seen > server.tree.last_zxid:
            log.info("Refusing session request for client %s as it has seen zxid 0x%x our last "
                     "zxid is 0x%x client must try another server", self.peer[0],
                     req.last_zxid_seen, server.tree.last_zxid)
            self.close()
            return
        if not role.serving:
            self.close()
            return
        timeout = server.negotiate_timeout(req.timeout)
        self.timeout = timeout
        if req.session_id == 0:
            self.state = CONNECTING
            role.create_session(self, timeout)
            return
        sid = req.session_id
        if not role.may_resume(sid, self.peer[0]):
            self.close()
            return
        other = server.conn_by_session.get(sid)
        if other is not None and other is not self:
            other.close()
        if req.passwd != server.password(sid):
            self.session_expired()
            return
        # The role answers with handshake_done or session_expired, at once
        # or (a follower asking its leader) later; frames wait till then.
        self.state = CONNECTING
        role.resume_session(self, sid, timeout)

    def session_expired(self):
        """Refuse a reconnect: the session is gone (or the password is wrong)."""
        if self.state == CLOSED:
            return
        self._send_connect_response(0, 0, _EXPIRED_PASSWD)
        self.close()

    def session_created(self, sid, received, txn):
        """A new session for this connection (its ConnectRequest came in at
        monotonic ms received): its createSession is counted as ZooKeeper's
        FinalRequestProcessor counts a request answered -- with the tree's
        last zxid, in updatelatency if a txn made the session (txn), else
        in readlatency (a local or a read-only server's session) -- and the
        handshake is answered."""
        now = self.clock.now_ms()
        latency = now - received
        self.stats.session_created(self.server.tree.last_zxid, now, latency)
        stats = self.server.stats
        (stats.update_latency if txn else stats.read_latency).add(latency)
        self.handshake_done(sid)

    def handshake_done(self, sid):
        """The session is granted (created, or resumed)."""
        if self.state == CLOSED:
            return
        self.session_id = sid
        self.state = ESTABLISHED
        self.stats.established = self.clock.wall_ms()
        self.server.conn_by_session[sid] = self
        self._send_connect_response(self.timeout, sid, self.server.password(sid))
        if self.buf:
            self._process_frames()

    def _send_connect_response(self, timeout, sid, passwd):
        # An old client sends no readOnly byte and gets none back.
        ro = None if self.read_only_byte is None else self.server.role.read_only
        w = Writer()
        ConnectResponse(0, timeout, sid, passwd, ro).write(w)
        self.stats.packets_sent += 1
        self.server.stats.packets_sent += 1
        self.send(INT.pack(len(w.out)) + bytes(w.out))

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
        return self.stats.describe(self, brief)


# Frames dispatched per call of _take_turns before the event loop's other work.
_TURNS_PER_CALL = 256


def _take_turns(turns, loop):
    """Connections resumed together dispatch the frames they held back one
    each in turn, as ZooKeeper's selector reads one request per client per
    pass: the room under globalOutstandingLimit goes round, rather than to
    the first one resumed."""
    waiting = turns.waiting
    for _ in range(_TURNS_PER_CALL):
        if not waiting:
            break
        conn = waiting.popleft()
        if conn._read_one_buffered():
            waiting.append(conn)
        else:
            conn.waiting_turn = False
    if waiting:
        loop.call_soon(_take_turns, turns, loop)
    else:
        turns.scheduled = False
