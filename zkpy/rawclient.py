"""A small synchronous ZooKeeper client on zkpy's own codec, for tests.

It sends any opcode with any record (or any bytes), so that odd and hostile
input can be tried as easily as the usual requests, and it shows everything the
server sends back, in order: replies, watch notifications, and where the
notifications fell between the replies.  No threads, no reconnects, no retries:
one socket, blocking reads with a timeout.

    c = RawClient("127.0.0.1", 2181)          # or RawClient("127.0.0.1:2181")
    c.connect(timeout_ms=10000)
    hdr, stat = c.request(Op.EXISTS, PathWatchRequest("/a", True))
    hdr, (path, stat) = c.request(Op.CREATE2, CreateRequest("/a", b"x", OPEN_ACL_UNSAFE, 0))
    c.events            # [Notification(after=1, zxid=-1, event=WatcherEvent(1, 3, "/a"))]
    c.close_session()   # closeSession, then the socket

    with RawClient.open("127.0.0.1:2181") as c:        # socket and handshake
        hdr, body = c.request(Op.GET_DATA, b"garbage")    # any bytes as the body
        c.next_event(); c.take_events(); c.no_more_events()
        c.is_closed_by_server()

Replies are decoded by opcode (RESPONSE_DECODERS); an error reply has no body
(None), or, if the server sent one anyway, its raw bytes; with raw=True a
reply's body comes back undecoded.  Every frame received is also kept, in
order, in `received`; notifications also in `events`, where next_event() and
take_events() take them in order.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import NamedTuple

from .protocol.jute import INT, Reader, Writer
from .protocol.opcodes import Op, Xid
from .protocol.records import (
    ConnectRequest, ConnectResponse, ReplyHeader, Stat, WatcherEvent, encode_request,
    read_acl,
)

__all__ = [
    "RawClient", "ConnectionClosed", "ProtocolViolation", "Notification", "MultiResult",
    "RESPONSE_DECODERS", "decode_response", "encode_connect",
    "decode_stat", "decode_create", "decode_create2", "decode_get_data", "decode_acl",
    "decode_children", "decode_children2", "decode_path", "decode_strings",
    "decode_int", "decode_error_response", "decode_multi", "decode_who_am_i",
    "decode_sasl", "decode_empty",
]


class ConnectionClosed(Exception):
    """The server closed the connection (or it broke) before the awaited frame."""


class ProtocolViolation(Exception):
    """The server sent something that is not a well-formed reply."""


class Notification(NamedTuple):
    """A watch event (xid -1).  `after` is how many replies this client had
    received when the event arrived: events with after == n came between the
    n-th and the (n+1)-th reply."""
    after: int
    zxid: int
    event: WatcherEvent


class MultiResult(NamedTuple):
    """One result of a multi or multiRead: `type` is the MultiHeader's type
    (the op's opcode, or -1 for an error), `err` its err, `value` the decoded
    body (None for delete, check and -1 results: the error body is checked to
    repeat `err`)."""
    type: int
    err: int
    value: object = None


# --- response decoders ---------------------------------------------------------------
# Each takes a Reader positioned after the ReplyHeader and returns the decoded
# record; decode_response() checks that nothing is left over.

def decode_empty(r: Reader):
    return None


def decode_stat(r: Reader) -> Stat:
    """ExistsResponse, SetDataResponse, SetACLResponse."""
    return Stat.read(r)


def decode_path(r: Reader) -> str:
    """CreateResponse, SyncResponse."""
    return r.ustring()


decode_create = decode_path


def decode_create2(r: Reader) -> tuple:
    """Create2Response (create2, createContainer, createTTL): (path, Stat)."""
    return r.ustring(), Stat.read(r)


def decode_get_data(r: Reader) -> tuple:
    """GetDataResponse (getData, reconfig): (data or None, Stat)."""
    return r.buffer(), Stat.read(r)


def decode_acl(r: Reader) -> tuple:
    """GetACLResponse: (list of ACL or None, Stat)."""
    return r.vector(read_acl), Stat.read(r)


def decode_strings(r: Reader):
    """GetChildrenResponse, GetEphemeralsResponse: a list of str (or None)."""
    return r.strings()


decode_children = decode_strings


def decode_children2(r: Reader) -> tuple:
    """GetChildren2Response: (children, Stat of the parent)."""
    return r.strings(), Stat.read(r)


def decode_int(r: Reader) -> int:
    """GetAllChildrenNumberResponse."""
    return r.int()


def decode_error_response(r: Reader) -> int:
    """ErrorResponse (the body of an addWatch reply)."""
    return r.int()


def decode_who_am_i(r: Reader):
    """WhoAmIResponse: list of (authScheme, user)."""
    return r.vector(lambda rr: (rr.ustring(), rr.ustring()))


def decode_sasl(r: Reader):
    """SetSASLResponse: the token (bytes or None)."""
    return r.buffer()


_MULTI_RESULT_DECODERS = {
    Op.CREATE: decode_create,
    Op.CREATE2: decode_create2,
    Op.CREATE_CONTAINER: decode_create2,
    Op.CREATE_TTL: decode_create2,
    Op.DELETE: decode_empty,
    Op.DELETE_CONTAINER: decode_empty,
    Op.SET_DATA: decode_stat,
    Op.CHECK: decode_empty,
    Op.GET_DATA: decode_get_data,
    Op.GET_CHILDREN: decode_children,
}


def decode_multi(r: Reader) -> list:
    """MultiResponse: a list of MultiResult up to the terminator."""
    results = []
    while True:
        op_type, done, err = r.int(), r.bool(), r.int()
        if done:
            if op_type != -1 or err != -1:
                raise ProtocolViolation(f"multi terminator ({op_type}, True, {err})")
            return results
        if op_type == Op.ERROR:
            body_err = r.int()
            if body_err != err:
                raise ProtocolViolation(f"multi error result: header err {err}, body {body_err}")
            results.append(MultiResult(op_type, err))
            continue
        decoder = _MULTI_RESULT_DECODERS.get(op_type)
        if decoder is None:
            raise ProtocolViolation(f"unknown multi result type {op_type}")
        results.append(MultiResult(op_type, err, decoder(r)))


# opcode -> decoder of the success body.
RESPONSE_DECODERS = {
    Op.CREATE: decode_create,
    Op.CREATE2: decode_create2,
    Op.CREATE_CONTAINER: decode_create2,
    Op.CREATE_TTL: decode_create2,
    Op.DELETE: decode_empty,
    Op.DELETE_CONTAINER: decode_empty,
    Op.EXISTS: decode_stat,
    Op.GET_DATA: decode_get_data,
    Op.SET_DATA: decode_stat,
    Op.GET_ACL: decode_acl,
    Op.SET_ACL: decode_stat,
    Op.GET_CHILDREN: decode_children,
    Op.GET_CHILDREN2: decode_children2,
    Op.SYNC: decode_path,
    Op.PING: decode_empty,
    Op.CHECK: decode_empty,
    Op.MULTI: decode_multi,
    Op.MULTI_READ: decode_multi,
    Op.RECONFIG: decode_get_data,
    Op.CHECK_WATCHES: decode_empty,
    Op.REMOVE_WATCHES: decode_empty,
    Op.AUTH: decode_empty,
    Op.SET_WATCHES: decode_empty,
    Op.SET_WATCHES2: decode_empty,
    Op.SASL: decode_sasl,
    Op.GET_EPHEMERALS: decode_strings,
    Op.GET_ALL_CHILDREN_NUMBER: decode_int,
    Op.ADD_WATCH: decode_error_response,
    Op.WHO_AM_I: decode_who_am_i,
    Op.CLOSE_SESSION: decode_empty,
}


def decode_response(op: int, body: bytes, pos: int = 0):
    """Decode the success body of a reply to op.  Raises ProtocolViolation if
    the body is malformed or has bytes left over."""
    decoder = RESPONSE_DECODERS.get(op, decode_empty)
    r = Reader(body, pos)
    try:
        value = decoder(r)
    except ProtocolViolation:
        raise
    except Exception as e:
        raise ProtocolViolation(f"reply to op {op} does not decode: {e}") from e
    if r.remaining():
        raise ProtocolViolation(
            f"reply to op {op}: {r.remaining()} bytes left over: {bytes(body[r.pos:])!r}")
    return value


# --- the client ------------------------------------------------------------------------

_LEN = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">ii")
DEFAULT_SESSION_TIMEOUT_MS = 10000


def _split_hosts(hosts: str) -> tuple[str, int]:
    """("127.0.0.1", 2181) from "127.0.0.1:2181"."""
    host, _, port = hosts.rpartition(":")
    return host, int(port)


def encode_connect(session_id: int = 0, passwd: bytes = bytes(16),
                   timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, last_zxid: int = 0,
                   read_only: bool | None = False) -> bytes:
    """A whole ConnectRequest frame (length prefix included), as
    encode_request() makes a request's; read_only None leaves the readOnly
    byte out (as clients older than 3.4 do)."""
    w = Writer()
    ConnectRequest(0, last_zxid, timeout_ms, session_id, passwd, read_only).write(w)
    return INT.pack(len(w.out)) + bytes(w.out)


class RawClient:
    """One connection to a ZooKeeper server.  See the module docstring.

    host and port, or one "host:port" string as host.  timeout (seconds) is
    the default wait of every read; read_only_byte False leaves the readOnly
    byte out of the ConnectRequest; ssl_context (an ssl.SSLContext) speaks
    TLS, for a secure client port.  The constructor only opens the socket:
    connect() does the handshake, or open() does both."""

    def __init__(self, host: str, port: int | None = None, timeout: float = 10.0,
                 read_only_byte: bool = True, max_frame: int = 0xFFFFF * 4,
                 ssl_context=None):
        if port is None:
            host, port = _split_hosts(host)
        self.host = host
        self.port = port
        self.timeout = timeout
        self.read_only_byte = read_only_byte
        self.max_frame = max_frame
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:   # a secure client port: TLS first
            try:
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname=None)
            except BaseException:
                self.sock.close()
                raise
        self._buf = bytearray()
        self.xid = 0
        self.session_id = 0
        self.passwd = bytes(16)
        self.negotiated_timeout = 0
        self.connect_response: ConnectResponse | None = None
        self.connect_frame: bytes | None = None   # its frame's payload, as received
        self.last_zxid = 0           # highest reply-header zxid seen (as clients track it)
        self.replies = 0             # replies received so far
        self.bytes_received = 0      # every byte read from the socket, handshake included
        self.events: list[Notification] = []
        self.events_taken = 0        # events[:events_taken] were taken (next_event, take_events)
        # Everything received after the handshake, in order:
        #   ("reply", ReplyHeader) and ("event", Notification).
        self.received: list = []
        self.closed = False

    @classmethod
    def open(cls, host: str, port: int | None = None, *, session_id: int = 0,
             passwd: bytes = bytes(16), timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
             last_zxid: int = 0, read_only: bool = False, **options) -> "RawClient":
        """A client with its handshake done: the constructor (options are its
        keyword arguments), then connect().  Raises ConnectionClosed if the
        server closes instead of answering, having closed the socket.  Does
        not check that the session was granted (see `expired`)."""
        c = cls(host, port, **options)
        try:
            c.connect(session_id, passwd, timeout_ms, last_zxid, read_only)
        except BaseException:
            c.close()
            raise
        return c

    # --- bytes ------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (no framing added).  ConnectionClosed if the
        server has closed the connection (and we learn it on sending)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.closed = True
            raise ConnectionClosed(f"connection closed by the server: {e}") from e

    def send_frame(self, payload: bytes) -> None:
        """Send payload as one frame (its length prefix added)."""
        self.send_raw(_LEN.pack(len(payload)) + bytes(payload))

    def _fill(self, n: int, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout:
                raise
            except OSError as e:  # reset by peer and the like
                self.closed = True
                raise ConnectionClosed(f"connection broken: {e}") from e
            if not chunk:
                self.closed = True
                raise ConnectionClosed(
                    f"connection closed by the server ({len(self._buf)} bytes pending)")
            self.bytes_received += len(chunk)
            self._buf += chunk

    def recv_frame(self, timeout: float | None = None) -> bytes:
        """The payload of the next frame.  Raises ConnectionClosed, or
        socket.timeout if nothing complete arrives in time."""
        self._fill(4, timeout)
        (n,) = _LEN.unpack_from(self._buf, 0)
        if n < 0 or n > self.max_frame:
            raise ProtocolViolation(f"frame length {n}")
        self._fill(4 + n, timeout)
        payload = bytes(self._buf[4:4 + n])
        del self._buf[:4 + n]
        return payload

    def recv_all(self, timeout: float = 10.0) -> bytes:
        """Every byte until the server closes the connection (4lw replies)."""
        self.sock.settimeout(timeout)
        chunks = [bytes(self._buf)]
        self._buf.clear()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.bytes_received += len(chunk)
            chunks.append(chunk)
        self.closed = True
        return b"".join(chunks)

    def is_closed_by_server(self, timeout: float | None = None) -> bool:
        """True if the server closes the connection within timeout seconds
        (the client's timeout if None); False if it is still open then.
        Frames that arrive meanwhile are filed like any other."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._read_one(remaining)
        except ConnectionClosed:
            return True
        except socket.timeout:
            return False

    # --- handshake --------------------------------------------------------------------

    def connect(self, session_id: int = 0, passwd: bytes = bytes(16),
                timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, last_zxid: int = 0,
                read_only: bool = False) -> ConnectResponse:
        """Send a ConnectRequest and return the ConnectResponse.  Raises
        ConnectionClosed if the server closes the connection instead."""
        self.send_connect(session_id, passwd, timeout_ms, last_zxid, read_only)
        return self.recv_connect()

    def send_connect(self, session_id: int = 0, passwd: bytes = bytes(16),
                     timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, last_zxid: int = 0,
                     read_only: bool = False):
        self.send_raw(encode_connect(session_id, passwd, timeout_ms, last_zxid,
                                     read_only if self.read_only_byte else None))

    def recv_connect(self, timeout: float | None = None) -> ConnectResponse:
        """Read the ConnectResponse; it is also kept in `connect_response`, and
        its frame's payload in `connect_frame`."""
        payload = self.recv_frame(timeout)
        r = Reader(payload)
        resp = ConnectResponse.read(r)
        self.connect_frame = payload
        self.connect_response = resp
        if resp.session_id:
            self.session_id = resp.session_id
            self.passwd = resp.passwd
            self.negotiated_timeout = resp.timeout
        return resp

    @property
    def expired(self) -> bool:
        """True if the handshake got the expired-session reply (timeout 0 and
        session id 0: an expired, unknown or wrongly authenticated session)."""
        r = self.connect_response
        return r is not None and r.timeout <= 0 and r.session_id == 0

    # --- requests ---------------------------------------------------------------------

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def send(self, op: int, record=None, xid: int | None = None) -> int:
        """Send a request without waiting; returns its xid.  record is a
        request record, None for no body, or bytes: the body as it is
        (possibly garbage)."""
        if xid is None:
            xid = Xid.PING if op == Op.PING else self.next_xid()
        if isinstance(record, (bytes, bytearray, memoryview)):
            self.send_frame(_REQUEST_HEADER.pack(xid, op) + bytes(record))
        else:
            self.send_raw(encode_request(xid, op, record))
        return xid

    def _read_one(self, timeout: float | None = None):
        """Read and file one frame; returns ("reply", ReplyHeader, body bytes)
        or ("event", Notification, None)."""
        payload = self.recv_frame(timeout)
        r = Reader(payload)
        try:
            hdr = ReplyHeader.read(r)
        except Exception as e:
            raise ProtocolViolation(f"frame without a reply header: {payload!r}") from e
        if hdr.xid == Xid.NOTIFICATION:
            try:
                ev = WatcherEvent.read(r)
            except Exception as e:
                raise ProtocolViolation(f"bad notification: {payload!r}") from e
            if r.remaining():
                raise ProtocolViolation(f"notification with trailing bytes: {payload!r}")
            n = Notification(self.replies, hdr.zxid, ev)
            self.events.append(n)
            self.received.append(("event", n))
            return "event", n, None
        self.replies += 1
        if hdr.zxid > self.last_zxid:
            self.last_zxid = hdr.zxid
        self.received.append(("reply", hdr))
        return "reply", hdr, payload[16:]

    def read_reply(self, op: int, timeout: float | None = None, *, raw: bool = False):
        """Wait for the next reply (filing notifications on the way) and decode
        it as the answer to op: (ReplyHeader, decoded body or None).  With
        raw=True: (ReplyHeader, the body as received, b"" if none)."""
        while True:
            kind, hdr, body = self._read_one(timeout)
            if kind == "reply":
                break
        if raw:
            return hdr, bytes(body)
        if hdr.err != 0:
            # Normally just the header.  The Java server does send a body
            # with an error when it had built one before failing (e.g. the
            # empty MultiResponse of a multi that failed to decode): it is
            # returned undecoded, as bytes.
            return hdr, (bytes(body) if body else None)
        return hdr, decode_response(op, body)

    def request(self, op: int, record=None, xid: int | None = None,
                timeout: float | None = None, *, raw: bool = False):
        """Send a request (see send()) and wait for its reply: (ReplyHeader,
        decoded body), or with raw=True the body undecoded (see read_reply()).
        Replies must come back in order: a reply with another xid is a
        ProtocolViolation (as it is for the Java client)."""
        xid = self.send(op, record, xid)
        hdr, value = self.read_reply(op, timeout, raw=raw)
        expected = Xid.PING if op == Op.PING else xid
        if hdr.xid != expected:
            raise ProtocolViolation(f"reply xid {hdr.xid}, expected {expected}")
        return hdr, value

    def ping(self):
        """A ping (xid -2): (ReplyHeader, None)."""
        return self.request(Op.PING)

    # --- notifications ----------------------------------------------------------------

    def next_event(self, timeout: float | None = None) -> Notification:
        """Take the next notification not taken yet: one already received (by
        a request on the way to its reply), else the next frame, which must be
        a notification (a reply instead is a ProtocolViolation).  Raises
        socket.timeout if none arrives within timeout (the client's if None)."""
        if self.events_taken == len(self.events):
            kind, hdr, _ = self._read_one(timeout)
            if kind == "reply":
                raise ProtocolViolation(f"reply {hdr} while waiting for a notification")
        n = self.events[self.events_taken]
        self.events_taken += 1
        return n

    def take_events(self) -> list[Notification]:
        """Take every notification received and not taken yet (reads nothing)."""
        out = self.events[self.events_taken:]
        self.events_taken = len(self.events)
        return out

    def no_more_events(self, timeout: float | None = None) -> bool:
        """Round-trip a ping, then True if every notification received,
        including any that came before the ping's reply, has been taken."""
        self.request(Op.PING, timeout=timeout)
        return self.events_taken == len(self.events)

    # --- closing ----------------------------------------------------------------------

    def close_session(self, timeout: float | None = None):
        """closeSession, then close the socket.  Returns the ReplyHeader, or
        None if the connection was already gone."""
        hdr = None
        try:
            hdr, _ = self.request(Op.CLOSE_SESSION, timeout=timeout)
        except (ConnectionClosed, OSError, ProtocolViolation):
            pass
        self.close()
        return hdr

    def close(self) -> None:
        """Close the socket (the session lives on until it expires)."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
