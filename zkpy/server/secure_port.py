"""TLS on the client port: secureClientPort, and client.portUnification (TLS
and plaintext on one port), as NettyServerCnxnFactory serves them.

A secure connection is a zkpy.security.tls_layer.TlsLayer between the
socket and its ClientConnection (to which the layer is the transport); see
there why not the event loop's own TLS.

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

from ..protocol.errors import Err
from ..protocol.jute import INT_INT
from ..protocol.opcodes import Op
from ..security.tls_layer import TlsLayer
from .handshake_limit import limited
from . import replies
from .connection import ClientConnection

log = logging.getLogger("zkpy.server")

TLS_HANDSHAKE_RECORD = 0x16
HANDSHAKE_TIMEOUT_S = 10.0        # Netty SslHandler's default handshake timeout
_unpack_header = INT_INT.unpack_from


# --- the connection classes --------------------------------------------------------------


class AuthEnforcedConnection(ClientConnection):
    """A connection under enforce.auth (AuthenticationHelper): every request
    but auth and sasl -- pings included -- from a connection without an id
    of the required schemes is answered SESSIONCLOSEDREQUIRESASLAUTH at once
    and the connection closed (the session lives on until it expires).
    A separate class, so that servers without enforce.auth pay nothing."""

    def _handle_request(self, payload, received):
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
                return False
        return super()._handle_request(payload, received)


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
        return limited(server.tls_handshakes, lambda: UnifiedPortSniffer(server, loop, cls))
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
        limited(server.tls_handshakes, lambda: secure_connection(server, loop, cls)),
        host=host, port=config.secure_client_port,
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


def secure_connection(server, loop, conn_class, first_bytes: bytes = b"") -> TlsLayer:
    """The protocol of a socket that speaks TLS to the client port."""

    handshakes = server.tls_handshakes
    # Here, not at the top: the x509 module loads cryptography's, about 20 ms
    # of every start, and only a TLS connection needs it.
    from ..security.x509 import handshake_outcome

    def on_secure(layer):
        if handshakes.enabled:
            handshakes.finish()
        outcome = handshake_outcome(server.config, layer.sslobj.getpeercert(binary_form=True))
        if outcome.close:
            if outcome.auth_failed:
                server.stats.auth_failed += 1
            FAILURES.log(layer.peer[0], "%s; closing", outcome.reason)
            return None
        conn = conn_class(server, loop)
        conn.connection_made(layer)   # its ip id first, as NettyServerCnxn has it
        for ident in outcome.auth_ids:
            if ident not in conn.auth_ids:
                conn.auth_ids.append(ident)
        return conn

    def on_failure(layer, why):
        # NettyServerCnxnFactory.CertificateVerifier: an unsuccessful handshake.
        if handshakes.enabled:
            handshakes.finish()
        server.stats.auth_failed += 1
        server.security.handshakes_failed += 1
        FAILURES.log(layer.peer[0], "unsuccessful handshake (%s); closing", why)

    return TlsLayer(server.security.tls_context, loop, on_secure, on_failure,
                    first_bytes=first_bytes, timeout_s=HANDSHAKE_TIMEOUT_S)


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
            proto = secure_connection(self.server, self.loop, self.conn_class, bytes(data))
            self.taken = proto
            self.raw.set_protocol(proto)
            proto.connection_made(self.raw)
        else:
            if self.server.tls_handshakes.enabled:   # no handshake after all
                self.server.tls_handshakes.finish()
            proto = self.conn_class(self.server, self.loop)
            self.taken = proto
            self.raw.set_protocol(proto)
            proto.connection_made(self.raw)
            proto.data_received(data)

    def connection_lost(self, exc):
        if self.taken is not None:
            self.taken.connection_lost(exc)
        elif self.server.tls_handshakes.enabled:   # gone before its first byte
            self.server.tls_handshakes.finish()

    def eof_received(self):
        return False
