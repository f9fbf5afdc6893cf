"""A tiny synchronous ZooKeeper client over a plain socket, for the requests
kazoo cannot make (addWatch, removeWatches, createTTL, multiRead, setWatches,
whoAmI, garbage...) and for checking bytes, xids, zxids and frame order.

    with RawConn.connect(hosts) as c:
        hdr, r = c.call(Op.GET_DATA, PathWatchRequest("/a", True))
        data = r.buffer(); stat = read_stat(r)

Replies are matched by xid; watch notifications read on the way are kept in
`events` (WatcherEvent) and every frame read is logged in `frames` as
("event", WatcherEvent) or ("reply", ReplyHeader), so tests can check order.
It uses the project's codec (zkpy.protocol) on the client side.
"""

from __future__ import annotations

import socket
import struct
import time

from zkpy.protocol.jute import Reader, Writer
from zkpy.protocol.opcodes import Op, Xid
from zkpy.protocol.records import (
    ACL,
    ConnectRequest,
    ConnectResponse,
    ReplyHeader,
    Stat,
    WatcherEvent,
    encode_request,
    read_acl,
)

__all__ = [
    "RawConn", "ConnectionClosed", "split_hosts", "read_stat", "read_acls",
    "read_multi", "frame", "connect_payload",
]

DEFAULT_TIMEOUT = 10.0


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset)."""


def split_hosts(hosts: str) -> tuple[str, int]:
    host, _, port = hosts.rpartition(":")
    return host, int(port)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect_payload(timeout=10000, session_id=0, passwd=bytes(16), last_zxid=0,
                    read_only: bool | None = False) -> bytes:
    w = Writer()
    ConnectRequest(0, last_zxid, timeout, session_id, passwd, read_only).write(w)
    return bytes(w.out)


def read_stat(r: Reader) -> Stat:
    return Stat.read(r)


def read_acls(r: Reader) -> list[ACL]:
    return r.vector(read_acl)


def read_multi(r: Reader) -> list[tuple[int, int, object]]:
    """A MultiResponse as [(type, err, body)]: body is the path for create,
    (path, Stat) for create2, a Stat for setData, (data, Stat) for getData,
    children for getChildren, the error code for an error, None otherwise."""
    out = []
    while True:
        op_type, done, err = r.int(), r.bool(), r.int()
        if done:
            assert (op_type, err) == (-1, -1), (op_type, err)
            return out
        if op_type == Op.CREATE:
            body = r.ustring()
        elif op_type == Op.CREATE2:
            body = (r.ustring(), read_stat(r))
        elif op_type == Op.SET_DATA:
            body = read_stat(r)
        elif op_type == Op.GET_DATA:
            body = (r.buffer(), read_stat(r))
        elif op_type == Op.GET_CHILDREN:
            body = r.strings()
        elif op_type == Op.ERROR:
            body = r.int()
        else:  # delete, check
            body = None
        out.append((op_type, err, body))


class RawConn:
    def __init__(self, hosts: str, timeout: float = DEFAULT_TIMEOUT):
        self.host, self.port = split_hosts(hosts)
        self.hosts = hosts
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.next_xid = 1
        self.events: list[WatcherEvent] = []
        self.event_zxids: list[int] = []
        self.frames: list[tuple[str, object]] = []
        self.session_id = 0
        self.passwd = bytes(16)
        self.negotiated_timeout = 0
        self.connect_response: ConnectResponse | None = None
        self.last_zxid = 0

    # --- set-up ----------------------------------------------------------------

    @classmethod
    def connect(cls, hosts: str, session_timeout: int = 10000, session_id: int = 0,
                passwd: bytes = bytes(16), last_zxid: int = 0,
                read_only: bool | None = False, timeout: float = DEFAULT_TIMEOUT) -> "RawConn":
        """Open a socket and do the handshake; raises ConnectionClosed if the
        server closes instead of answering.  Does not check that the session
        was granted (see `expired`)."""
        c = cls(hosts, timeout)
        try:
            c.handshake(session_timeout, session_id, passwd, last_zxid, read_only)
        except BaseException:
            c.close()
            raise
        return c

    def handshake(self, session_timeout=10000, session_id=0, passwd=bytes(16),
                  last_zxid=0, read_only: bool | None = False) -> ConnectResponse:
        self.send_raw(frame(connect_payload(session_timeout, session_id, passwd,
                                            last_zxid, read_only)))
        payload = self.read_frame()
        resp = ConnectResponse.read(Reader(payload))
        self.connect_response = resp
        self.connect_payload_len = len(payload)
        self.session_id = resp.session_id
        self.passwd = resp.passwd
        self.negotiated_timeout = resp.timeout
        return resp

    @property
    def expired(self) -> bool:
        r = self.connect_response
        return r is not None and r.timeout <= 0 and r.session_id == 0

    # --- bytes -----------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            # The server closed on the first bytes of a long send (a bad frame
            # length); is_closed() reports it.
            pass

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no frame from {self.hosts} in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"no frame from {self.hosts} in time") from None
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from None
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(self.buf)} buffered bytes")
            self.buf += chunk

    def read_frame(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(4, deadline)
        (n,) = struct.unpack_from(">i", self.buf)
        assert 0 <= n <= 16 * 1024 * 1024, f"bad frame length {n}"
        self._fill(4 + n, deadline)
        payload = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return payload

    def read_message(self, timeout: float | None = None) -> tuple[ReplyHeader, Reader]:
        """The next frame after the handshake: (header, reader of the body).
        Notifications are recorded in `events` as well as returned."""
        r = Reader(self.read_frame(timeout))
        hdr = ReplyHeader.read(r)
        if hdr.xid == Xid.NOTIFICATION:
            pos = r.pos
            ev = WatcherEvent.read(r)
            r.pos = pos
            self.events.append(ev)
            self.event_zxids.append(hdr.zxid)
            self.frames.append(("event", ev))
        else:
            self.frames.append(("reply", hdr))
            if hdr.zxid > self.last_zxid:
                self.last_zxid = hdr.zxid
        return hdr, r

    # --- requests --------------------------------------------------------------

    def send(self, op: int, record=None, xid: int | None = None) -> int:
        if xid is None:
            xid = self.next_xid
            self.next_xid += 1
        self.send_raw(encode_request(xid, op, record))
        return xid

    def send_payload(self, xid: int, op: int, body: bytes = b"") -> int:
        """A request whose body is given as raw bytes (possibly garbage)."""
        self.send_raw(frame(struct.pack(">ii", xid, op) + body))
        return xid

    def wait_reply(self, xid: int, timeout: float | None = None) -> tuple[ReplyHeader, Reader]:
        """Read frames until the reply with xid (-2 for a ping)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            hdr, r = self.read_message(max(0.0, deadline - time.monotonic()))
            if hdr.xid == Xid.NOTIFICATION:
                continue
            assert hdr.xid == xid, f"reply for xid {hdr.xid} while waiting for {xid}"
            return hdr, r

    def call(self, op: int, record=None, xid: int | None = None,
             timeout: float | None = None) -> tuple[ReplyHeader, Reader]:
        xid = self.send(op, record, xid)
        return self.wait_reply(Xid.PING if op == Op.PING else xid, timeout)

    def call_payload(self, op: int, body: bytes = b"", xid: int | None = None,
                     timeout: float | None = None) -> tuple[ReplyHeader, Reader]:
        if xid is None:
            xid = self.next_xid
            self.next_xid += 1
        self.send_payload(xid, op, body)
        return self.wait_reply(xid, timeout)

    def err(self, op: int, record=None) -> int:
        """Just the error code of a request's reply."""
        return self.call(op, record)[0].err

    def ping(self) -> ReplyHeader:
        return self.call(Op.PING)[0]

    def wait_event(self, timeout: float | None = None) -> WatcherEvent:
        """The next notification (one already read by call() first)."""
        if self._unclaimed < len(self.events):
            ev = self.events[self._unclaimed]
            self._unclaimed += 1
            return ev
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            hdr, _ = self.read_message(max(0.0, deadline - time.monotonic()))
            if hdr.xid == Xid.NOTIFICATION:
                self._unclaimed += 1
                return self.events[-1]
            raise AssertionError(f"unexpected reply {hdr} while waiting for an event")

    _unclaimed = 0

    def take_events(self) -> list[tuple[int, str]]:
        """(type, path) of every notification read but not yet claimed."""
        out = [(e.type, e.path) for e in self.events[self._unclaimed:]]
        self._unclaimed = len(self.events)
        return out

    def no_more_events(self) -> bool:
        """Round-trip a ping: True if no notification is left unclaimed (by
        wait_event or take_events), counting any that arrive before the ping
        reply."""
        self.ping()
        return self._unclaimed == len(self.events)

    # --- endings ---------------------------------------------------------------

    def is_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True if the server closes the socket within timeout.  Frames that
        arrive first are read and kept (see `frames`)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self.buf:
                    self._fill(4, deadline)
                    (n,) = struct.unpack_from(">i", self.buf)
                    self._fill(4 + n, deadline)
                    self.read_message(remaining)
                else:
                    self._fill(1, deadline)
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
