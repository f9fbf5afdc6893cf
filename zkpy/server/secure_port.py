"""TLS on the client port: secureClientPort, and client.portUnification (TLS
and plaintext on one port), as NettyServerCnxnFactory serves them.

A secure connection is a :class:`TlsLayer` between the socket and its
ClientConnection: the standard ``ssl`` module's SSLObject on memory BIOs
encrypts and decrypts, and to the ClientConnection the layer is its
transport (write, close, pause/resume, extra info).  The layer rather than
``create_server(ssl=...)`` or ``start_tls`` because a unified port has
already read the first bytes when it learns that they start a TLS handshake
(they must reach the TLS engine), and because a failed handshake has to be
counted (auth_failed_count) and logged, which the event loop's own TLS hides.

What happens when, as in ZooKeeper:

* the ClientConnection exists only once the handshake is done: cons, stat
  and mntr's connection count do not list a connection still shaking hands;
* after the handshake, zkpy.security.x509.handshake_outcome decides: a
  client certificate gives the connection its x509 (and super) ids; a
  missing certificate with ssl.clientAuth=need, or no provider for
  ssl.authProvider, closes it;
* a failed handshake (a bad certificate, a plaintext client, garbage, no
  handshake within 10 s -- Netty's default) closes that connection, counts
  in auth_failed_count and is logged once per client address;
* on a unified port the first byte decides: 0x16 (a TLS handshake record)
  means TLS, anything else plaintext.  A plaintext connection is handed the
  socket itself and costs nothing more.

Plaintext connections count in non_mtls_local/remote_conn_count when TLS (or
the Netty connection factory) is configured (ClientSecurity.count_non_mtls).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from ..protocol.errors import Err
from ..protocol.jute import INT_INT
from ..protocol.opcodes import Op
from ..security.x509 import handshake_outcome
from . import replies
from .connection import ClientConnection

log = logging.getLogger("zkpy.server")

TLS_HANDSHAKE_RECORD = 0x16
HANDSHAKE_TIMEOUT_S = 10.0        # Netty SslHandler's default handshake timeout
_READ_CHUNK = 256 * 1024
_unpack_header = INT_INT.unpack_from


# --- the connection classes --------------------------------------------------------------


class AuthEnforcedConnection(ClientConnection):
    """A connection under enforce.auth (AuthenticationHelper): every request
    but auth and sasl -- pings included -- from a connection without an id
    of the required schemes is answered SESSIONCLOSEDREQUIRESASLAUTH at once
    and the connection closed (the session lives on until it expires).
    A separate class, so that servers without enforce.auth pay nothing."""

    def _handle_request(self, payload):
        if len(payload) >= 8 and not self.server.security.enforcer.allows(self.auth_ids):
            xid, op = _unpack_header(payload, 0)
            if op != Op.AUTH and op != Op.SASL:
                log.error("Client authentication scheme(s) %s does not match with any of the "
                          "expected authentication scheme %s, closing session.",
                          [s for s, _ in self.auth_ids],
                          sorted(self.server.security.enforcer.schemes))
                self.stats.packets_received += 1
                self.server.stats.packets_received += 1
                self.send(replies.header_only(xid, 0, Err.SESSION_CLOSED_REQUIRE_SASL_AUTH))
                self.close()
                return
        super()._handle_request(payload)


class _CountedMixin:
    def connection_made(self, transport):
        super().connection_made(transport)
        self.server.security.note_plaintext(self.peer[0])


class CountedConnection(_CountedMixin, ClientConnection):
    """A plaintext connection that counts in non_mtls_*_conn_count."""


class CountedAuthEnforcedConnection(_CountedMixin, AuthEnforcedConnection):
    pass


def connection_class(security, *, plaintext: bool):
    enforced = security.enforcer.enabled
    if plaintext and security.count_non_mtls:
        return CountedAuthEnforcedConnection if enforced else CountedConnection
    return AuthEnforcedConnection if enforced else ClientConnection


def client_port_factory(server, loop):
    """The protocol factory of clientPort: plain connections, or the sniffer
    of a unified port."""
    security = server.security
    if server.config.client_port_unification:
        # The sniffer counts every connection (see UnifiedPortSniffer).
        cls = connection_class(security, plaintext=False)
        return lambda: UnifiedPortSniffer(server, loop, cls)
    cls = connection_class(security, plaintext=True)
    return lambda: cls(server, loop)


async def open_secure_port(server, loop, backlog: int):
    """Listen on secureClientPort (None when it is not configured)."""
    config = server.config
    if config.secure_client_port is None:
        return None
    cls = connection_class(server.security, plaintext=False)
    host = config.secure_client_port_address or None
    return await loop.create_server(
        lambda: TlsLayer(server, loop, cls), host=host, port=config.secure_client_port,
        reuse_address=True, backlog=backlog)


# --- failures, logged once per address -----------------------------------------------------

_LOGGED_MAX = 4096


class _OncePerAddress:
    """Which client addresses have had a TLS failure logged already."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def log(self, address: str, message: str, *args) -> None:
        count = self.seen.get(address)
        if count is None:
            if len(self.seen) >= _LOGGED_MAX:
                self.seen.clear()
            self.seen[address] = 1
            log.warning("TLS from %s: " + message + " (further failures from this address "
                        "are logged at debug level)", address, *args)
        else:
            self.seen[address] = count + 1
            log.debug("TLS from %s: " + message, address, *args)


FAILURES = _OncePerAddress()


# --- the TLS layer ---------------------------------------------------------------------------


class TlsLayer(asyncio.Protocol):
    """The socket's protocol, and the transport of the ClientConnection above it."""

    def __init__(self, server, loop, conn_class, first_bytes: bytes = b""):
        self.server = server
        self.loop = loop
        self.conn_class = conn_class
        self.conn = None
        self.raw = None
        self.peer = ("", 0)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = server.security.tls_context.wrap_bio(
            self.incoming, self.outgoing, server_side=True)
        self.first_bytes = first_bytes
        self.handshaken = False
        self.closed = False
        self.timer = None

    # --- the socket side (asyncio.Protocol) ------------------------------------------------

    def connection_made(self, transport):
        self.raw = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        self.timer = self.loop.call_later(HANDSHAKE_TIMEOUT_S, self._handshake_timed_out)
        if self.first_bytes:
            data, self.first_bytes = self.first_bytes, b""
            self.data_received(data)

    def data_received(self, data):
        if self.closed:
            return
        self.incoming.write(data)
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return
        self._read_plaintext()

    def eof_received(self):
        return False  # close: a TLS peer ends with close_notify

    def connection_lost(self, exc):
        if self.handshaken is False:
            # The client went away mid-handshake: Netty's handshake future
            # fails, and that counts as an unsuccessful handshake too.
            self._failed("connection closed during the handshake")
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.conn is not None:
            self.conn.connection_lost(exc)

    def pause_writing(self):
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self):
        if self.conn is not None:
            self.conn.resume_writing()

    # --- the handshake -------------------------------------------------------------------------

    def _handshake(self):
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except (ssl.SSLError, OSError, ValueError) as e:
            self._failed(_reason(e))
            return
        self.handshaken = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._send_out()
        outcome = handshake_outcome(self.server.config,
                                    self.sslobj.getpeercert(binary_form=True))
        if outcome.close:
            if outcome.auth_failed:
                self.server.stats.auth_failed += 1
            FAILURES.log(self.peer[0], "%s; closing", outcome.reason)
            self._close_now()
            return
        conn = self.conn_class(self.server, self.loop)
        self.conn = conn
        conn.connection_made(self)
        for ident in outcome.auth_ids:
            if ident not in conn.auth_ids:
                conn.auth_ids.append(ident)

    def _handshake_timed_out(self):
        self.timer = None
        if not self.handshaken and not self.closed:
            self._failed("no TLS handshake within %.0f s" % HANDSHAKE_TIMEOUT_S)

    def _failed(self, reason: str):
        """NettyServerCnxnFactory.CertificateVerifier: an unsuccessful handshake."""
        self.server.stats.auth_failed += 1
        self.server.security.handshakes_failed += 1
        FAILURES.log(self.peer[0], "unsuccessful handshake (%s); closing", reason)
        self._send_out()   # the alert, if OpenSSL made one
        self._close_now()
        self.handshaken = None   # failed: counted once

    # --- application data ------------------------------------------------------------------------

    def _read_plaintext(self):
        chunks = []
        read = self.sslobj.read
        try:
            while True:
                chunk = read(_READ_CHUNK)
                if not chunk:
                    self._close_now()   # close_notify seen (or EOF)
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.close()
        except (ssl.SSLError, OSError) as e:
            FAILURES.log(self.peer[0], "%s; closing", _reason(e))
            self._close_now()
        if self.outgoing.pending:
            self._send_out()      # post-handshake messages (TLS 1.3 key updates)
        if chunks and self.conn is not None:
            self.conn.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _send_out(self):
        if self.outgoing.pending and self.raw is not None:
            self.raw.write(self.outgoing.read())

    def _close_now(self):
        self.closed = True
        if self.raw is not None:
            self.raw.close()

    # --- the transport the ClientConnection sees -----------------------------------------------

    def write(self, data):
        if self.closed:
            return
        try:
            self.sslobj.write(data)
        except (ssl.SSLError, OSError) as e:
            FAILURES.log(self.peer[0], "%s; closing", _reason(e))
            self._close_now()
            return
        self.raw.write(self.outgoing.read())

    def close(self):
        if self.closed:
            return
        try:
            self.sslobj.unwrap()        # our close_notify
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._send_out()
        self._close_now()

    def abort(self):
        self.closed = True
        if self.raw is not None:
            self.raw.abort()

    def is_closing(self):
        return self.closed or self.raw is None or self.raw.is_closing()

    def pause_reading(self):
        if self.raw is not None and not self.closed:
            self.raw.pause_reading()

    def resume_reading(self):
        if self.raw is not None and not self.closed:
            self.raw.resume_reading()

    def get_write_buffer_size(self):
        return self.raw.get_write_buffer_size() if self.raw is not None else 0

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self.sslobj
        if name == "peercert":
            return self.sslobj.getpeercert() if self.handshaken else default
        if name == "cipher":
            return self.sslobj.cipher() if self.handshaken else default
        if self.raw is None:
            return default
        return self.raw.get_extra_info(name, default)


def _reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or str(e) or type(e).__name__


# --- client.portUnification ---------------------------------------------------------------------


class UnifiedPortSniffer(asyncio.Protocol):
    """The first byte of a connection on a unified port picks TLS or
    plaintext (NettyServerCnxnFactory.DualModeSslHandler).  Every connection
    counts as non-mTLS, the TLS ones too: Netty counts when the connection
    opens, before the first byte, when it has no TLS handler yet."""

    def __init__(self, server, loop, conn_class):
        self.server = server
        self.loop = loop
        self.conn_class = conn_class
        self.raw = None
        self.taken = None

    def connection_made(self, transport):
        self.raw = transport
        peer = transport.get_extra_info("peername") or ("",)
        self.server.security.note_plaintext(peer[0])

    def data_received(self, data):
        if self.taken is not None:   # not reached: the socket changed protocol
            self.taken.data_received(data)
            return
        if not data:
            return
        if data[0] == TLS_HANDSHAKE_RECORD:
            proto = TlsLayer(self.server, self.loop, self.conn_class, bytes(data))
        else:
            proto = self.conn_class(self.server, self.loop)
        self.taken = proto
        self.raw.set_protocol(proto)
        proto.connection_made(self.raw)
        if proto.__class__ is not TlsLayer:
            proto.data_received(data)

    def connection_lost(self, exc):
        if self.taken is not None:
            self.taken.connection_lost(exc)

    def eof_received(self):
        return False
