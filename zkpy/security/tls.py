"""``ssl.SSLContext`` objects from the ssl.* / ssl.quorum.* keys.

One :class:`TlsSettings` per prefix: ``ssl.`` for the secure client port
(ZooKeeper's ClientX509Util) and ``ssl.quorum.`` for the links between
peers (QuorumX509Util).  :func:`server_context` is for a listening socket
(the secure client port, or the quorum/election listener when sslQuorum is
on); :func:`client_context` is for the quorum dialer.

What follows ZooKeeper (X509Util and SSLContextAndOptions):

* clientAuth none/want/need -> CERT_NONE/CERT_OPTIONAL/CERT_REQUIRED on the
  server side; a client always verifies the server.
* Without a trust store Java falls back to the JDK's default CAs; we fall
  back to the system CAs.  Without a key store the context has no
  certificate (fine for a quorum dialer only if the other side does not
  need one, as in Java).
* ssl.protocol (default TLSv1.2) names the one protocol enabled unless
  ssl.enabledProtocols lists several.  ``TLS`` means "whatever the
  context supports" (TLS 1.2 and 1.3 here).  Python sets a minimum and a
  maximum version, so a list with a gap (TLSv1.1,TLSv1.3) enables the whole
  range between.
* ssl.ciphersuites: Java names, mapped by :mod:`.ciphers`; unset means
  ZooKeeper's defaults (ECDHE with AES-GCM, then AES-CBC), and TLS 1.3 keeps
  OpenSSL's three suites.  (ZooKeeper 3.8's own default list has no TLS 1.3
  suite, which breaks ssl.protocol=TLSv1.3 unless ciphersuites is set; we do
  not reproduce that failure.)
* Hostname verification (ssl[.quorum].hostnameVerification, default true)
  is not done by OpenSSL here: ZooKeeper checks the peer's address first and
  its reverse-resolved name second, on both ends of a quorum link, which
  Python's ``check_hostname`` cannot express.  Call
  :func:`zkpy.security.x509.verify_peer_host` after the handshake (see
  :func:`peer_host_must_be_verified`).
* Client-initiated renegotiation is refused (X509Util sets
  jdk.tls.rejectClientInitiatedRenegotiation); OpenSSL's
  OP_NO_RENEGOTIATION does the same.

Certificate reloading (sslQuorumReloadCertFiles) is :class:`ContextReloader`:
the listener calls ``check()`` now and then (say once a second) and uses
``context`` for the next accepted connection; a broken new file keeps the
old context, as ZooKeeper keeps its old one when the reload throws.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives import serialization

from ..server.config import ConfigError
from .ciphers import ZOOKEEPER_DEFAULT_CIPHERS, openssl_cipher_string
from .keystores import StoreSpec, load_key_store, load_trust_store, mtimes

__all__ = [
    "TlsSettings",
    "server_context",
    "client_context",
    "peer_host_must_be_verified",
    "ContextReloader",
]

_VERSIONS = {
    "SSLv3": ssl.TLSVersion.SSLv3,
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_VERIFY = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class TlsSettings:
    prefix: str  # "ssl." or "ssl.quorum."
    key_store: StoreSpec | None = None
    trust_store: StoreSpec | None = None
    client_auth: str = "need"
    protocol: str = "TLSv1.2"
    enabled_protocols: tuple[str, ...] | None = None
    ciphersuites: tuple[str, ...] | None = None
    hostname_verification: bool = True
    handshake_detection_timeout_ms: int = 5000

    @classmethod
    def from_config(cls, config, *, quorum: bool = False) -> "TlsSettings":
        prefix = "ssl.quorum." if quorum else "ssl."
        f = "ssl_quorum_" if quorum else "ssl_"
        return cls(
            prefix=prefix,
            key_store=StoreSpec.from_config(config, prefix, "keyStore"),
            trust_store=StoreSpec.from_config(config, prefix, "trustStore"),
            client_auth=getattr(config, f + "client_auth"),
            protocol=getattr(config, f + "protocol"),
            enabled_protocols=getattr(config, f + "enabled_protocols"),
            ciphersuites=getattr(config, f + "ciphersuites"),
            hostname_verification=getattr(config, f + "hostname_verification"),
            handshake_detection_timeout_ms=getattr(config, f + "handshake_detection_timeout_ms"),
        )

    def version_range(self) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
        names = self.enabled_protocols or (self.protocol,)
        versions = []
        for name in names:
            if name in ("TLS", "SSL"):
                versions += [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
            elif name in _VERSIONS:
                versions.append(_VERSIONS[name])
            # SSLv2Hello is a hello format, not a version: nothing to enable.
        if not versions:
            raise ConfigError(
                "names no usable protocol version",
                key=self.prefix + ("enabledProtocols" if self.enabled_protocols else "protocol"),
            )
        return min(versions), max(versions)


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A context for a listening socket (client port or quorum listener)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, settings)
    ctx.verify_mode = _VERIFY[settings.client_auth]
    return ctx


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A context for the quorum dialer (and for tests acting as clients)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Names are checked by verify_peer_host after the handshake (see above).
    ctx.check_hostname = False
    _common(ctx, settings)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_host_must_be_verified(settings: TlsSettings, *, server_side: bool) -> bool:
    """Whether the transport must call x509.verify_peer_host after a handshake.

    Clients verify the server's name when hostnameVerification is on; servers
    verify clients' names only on quorum links (QuorumX509Util), never on the
    client port (ClientX509Util.shouldVerifyClientHostname is false).
    """
    if not settings.hostname_verification:
        return False
    return settings.prefix == "ssl.quorum." or not server_side


def _common(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    low, high = settings.version_range()
    suites = settings.ciphersuites or ZOOKEEPER_DEFAULT_CIPHERS
    try:
        cipher_string, tls13 = openssl_cipher_string(suites)
    except ValueError as e:
        raise ConfigError(str(e), key=settings.prefix + "ciphersuites") from None
    if settings.ciphersuites is not None and not tls13 and high > ssl.TLSVersion.TLSv1_2:
        high = ssl.TLSVersion.TLSv1_2  # Java: no TLS 1.3 suite, no TLS 1.3
    if not cipher_string and low < ssl.TLSVersion.TLSv1_3:
        low = ssl.TLSVersion.TLSv1_3  # only TLS 1.3 suites named
    if low > high:
        raise ConfigError(
            "the enabled protocols and cipher suites have no version in common",
            key=settings.prefix + "ciphersuites",
        )
    try:
        ctx.minimum_version = low
        ctx.maximum_version = high
        if cipher_string:
            ctx.set_ciphers(cipher_string)
    except (ssl.SSLError, ValueError) as e:
        raise ConfigError(
            f"not supported by this OpenSSL ({e})", key=settings.prefix + "ciphersuites"
        ) from None
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    if settings.trust_store is not None:
        certs = load_trust_store(settings.trust_store)
        cadata = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        ctx.load_verify_locations(cadata=cadata.decode("ascii"))
    else:
        ctx.load_default_certs(
            ssl.Purpose.CLIENT_AUTH if ctx.protocol == ssl.PROTOCOL_TLS_SERVER
            else ssl.Purpose.SERVER_AUTH
        )
    if settings.key_store is not None:
        material = load_key_store(settings.key_store)
        try:
            _load_cert_chain(ctx, material.chain_pem(), material.key_pem())
        except ssl.SSLError as e:
            raise ConfigError(
                f"the key and certificate in {settings.key_store.location} do not fit ({e})",
                key=settings.key_store.location_key,
            ) from None


def _load_cert_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """load_cert_chain reads files only; hand it an anonymous in-memory file
    (memfd) so the decrypted key never touches a disk."""
    data = chain_pem + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("zkpy-key", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        except FileNotFoundError:
            pass  # no /proc: fall through to a private temporary file
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "key.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ctx.load_cert_chain(path)


class ContextReloader:
    """Rebuild a context when its key or trust store files change.

    ``factory`` is :func:`server_context` or :func:`client_context`.  The
    first context is built at once, so a bad file is a startup ConfigError;
    later failures keep the previous context and are kept in ``last_error``.
    """

    def __init__(self, settings: TlsSettings, factory: Callable[[TlsSettings], ssl.SSLContext]):
        self.settings = settings
        self.factory = factory
        self._stamp = self._current_stamp()
        self.context = factory(settings)
        self.last_error: Exception | None = None
        self.reloads = 0

    def _current_stamp(self) -> tuple:
        return mtimes(self.settings.key_store, self.settings.trust_store)

    def check(self) -> bool:
        """Rebuild if a file changed since the last check; True if a new
        context is now in use."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            context = self.factory(self.settings)
        except (ConfigError, ssl.SSLError, OSError, ValueError) as e:
            self.last_error = e
            return False
        self.context = context
        self.last_error = None
        self.reloads += 1
        return True
