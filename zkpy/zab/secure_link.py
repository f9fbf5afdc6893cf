"""sslQuorum on the peer links: TLS with the ssl.quorum.* keys.

Both ends of a link check the other: the listener asks for the dialer's
certificate (ssl.quorum.clientAuth, need by default) and the dialer checks
the listener's; with ssl.quorum.hostnameVerification (on by default) each
end also checks that the other's certificate names its address
(zkpy.security.x509.verify_peer_host), as ZooKeeper's ZKTrustManager does on
quorum links.  A link that fails any of this is closed before its first
frame, so a peer without the right certificate can neither join nor vote;
each failure is logged, once per peer address at warning level.

With sslQuorumReloadCertFiles the stores are looked at about once a second
and new links use the new certificates (links already up keep theirs, as in
ZooKeeper).

An accepted link is a zkpy.security.tls_layer.TlsLayer (which reports
failed handshakes); a dialled one is the event loop's
``create_connection(ssl=...)``, where :class:`_Held` stands in for the
link's protocol until the listener's certificate is checked.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from ..security.tls import ContextReloader, TlsSettings, client_context, server_context
from ..security.tls_layer import TlsLayer
from ..security.x509 import HostnameMismatch, verify_peer_host

log = logging.getLogger("zkpy.zab")

HANDSHAKE_TIMEOUT_S = 10.0
RELOAD_CHECK_S = 1.0


class LinkSecurity:
    """The TLS contexts of the peer links, built (and checked) at startup."""

    def __init__(self, config):
        settings = TlsSettings.from_config(config, quorum=True)
        self.settings = settings
        self.verify_host = settings.hostname_verification
        if config.ssl_quorum_reload_cert_files:
            self._server = ContextReloader(settings, server_context)
            self._client = ContextReloader(settings, client_context)
        else:
            self._server = _Fixed(server_context(settings))
            self._client = _Fixed(client_context(settings))
        self.reloading = config.ssl_quorum_reload_cert_files
        self._logged: set = set()

    @classmethod
    def from_config(cls, config) -> "LinkSecurity | None":
        return cls(config) if config.ssl_quorum else None

    def check_reload(self) -> None:
        for reloader in (self._server, self._client):
            if reloader.check():
                log.info("quorum TLS: %s re-read", self.settings.key_store.location
                         if self.settings.key_store else "the trust store")
            elif reloader.last_error is not None:
                log.warning("quorum TLS: keeping the old certificates: %s", reloader.last_error)
                reloader.last_error = None

    async def reload_forever(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_CHECK_S)
            self.check_reload()

    def failure(self, address: str, what: str) -> None:
        if address not in self._logged:
            self._logged.add(address)
            log.warning("quorum TLS with %s refused: %s", address, what)
        else:
            log.debug("quorum TLS with %s refused: %s", address, what)

    # --- the two ends ------------------------------------------------------------------------

    def accepting_factory(self, loop, make_protocol):
        """A protocol factory for the listener: TLS first, then make_protocol()."""

        def on_secure(layer):
            if not self._host_ok(layer, layer.peer[0]):
                return None
            proto = make_protocol()
            proto.connection_made(layer)
            return proto

        def on_failure(layer, why):
            self.failure(layer.peer[0], why)

        return lambda: TlsLayer(self._server.context, loop, on_secure, on_failure,
                                timeout_s=HANDSHAKE_TIMEOUT_S)

    async def dial(self, loop, make_protocol, host: str, port: int):
        """Connect over TLS and check the listener; the link's protocol is
        connected only if all is well.  Raises OSError on failure."""
        held = _Held()
        try:
            transport, _ = await loop.create_connection(
                lambda: held, host, port, ssl=self._client.context, server_hostname=host,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        except ssl.SSLError as e:
            self.failure(f"{host}:{port}", _reason(e))
            raise
        if not self._host_ok(transport, host):
            transport.close()
            raise ConnectionRefusedError("peer certificate does not name its address")
        held.release(make_protocol(), transport)

    def _host_ok(self, transport, address: str) -> bool:
        if not self.verify_host:
            return True
        sslobj = transport.get_extra_info("ssl_object")
        cert = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if cert is None:
            return True   # clientAuth none/want without a certificate: nothing to check
        try:
            verify_peer_host(cert, address)
        except HostnameMismatch as e:
            self.failure(address, str(e))
            return False
        return True


class _Fixed:
    def __init__(self, context):
        self.context = context
        self.last_error = None

    def check(self) -> bool:
        return False


class _Held(asyncio.Protocol):
    """Holds a link's place until its checks pass, then hands over."""

    def __init__(self):
        self.proto = None
        self.buffered = []
        self.lost = None

    def release(self, proto, transport):
        self.proto = proto
        proto.connection_made(transport)
        for data in self.buffered:
            proto.data_received(data)
        self.buffered = []
        if self.lost is not None:
            proto.connection_lost(self.lost[0])

    def data_received(self, data):
        if self.proto is None:
            self.buffered.append(bytes(data))
        else:
            self.proto.data_received(data)

    def connection_lost(self, exc):
        if self.proto is None:
            self.lost = (exc,)
        else:
            self.proto.connection_lost(exc)

    def pause_writing(self):
        if self.proto is not None:
            self.proto.pause_writing()

    def resume_writing(self):
        if self.proto is not None:
            self.proto.resume_writing()

    def eof_received(self):
        return False


def _reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or str(e) or type(e).__name__
