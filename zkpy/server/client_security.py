"""What the client pipeline needs of the security configuration, built once
when the server starts: the SASL mechanism factory, enforce.auth, the ACL
schemes that have a provider, the digest scheme's hash, and the TLS context
of the secure client port.  Building it reads the JAAS file, keytabs and key
stores, so a bad file stops the server at startup (a ConfigError naming the
key) instead of failing each connection.

It also keeps the figures mntr reports about secure and plaintext
connections (ZooKeeper's ServerStats and NettyServerCnxnFactory counters)."""

from __future__ import annotations

import logging

from ..datatree.acl import FixedAcls
from ..security.providers import registered_schemes, unknown_provider_classes
from ..security.sasl import AuthEnforcer, SaslServerFactory
from .config import hashlib_name

log = logging.getLogger("zkpy.server")

NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"


class ClientSecurity:
    def __init__(self, config):
        self.config = config
        warnings: list[str] = []
        self.sasl = SaslServerFactory.from_config(config, warnings)
        for warning in warnings:
            log.warning("%s", warning)
        for line in unknown_provider_classes(config):
            # ProviderRegistry logs "Problems loading" and goes on.
            log.warning("%s: not a provider zkpy knows; ignored", line)
        self.enforcer = AuthEnforcer.from_config(config)
        self.schemes = registered_schemes(config)
        self.digest_alg = hashlib_name(config.digest_auth_alg) or "sha1"
        self.sasl_any = config.sasl_let_any_user_do_x
        self.acl_cache = FixedAcls()   # fixed-up ACL lists (valid for these schemes)
        # The TLS context of the secure client port (and of a port that
        # takes both, client.portUnification).
        self.tls_context = None
        self.tls_settings = None
        if config.secure_client_port is not None or config.client_port_unification:
            from ..security.tls import TlsSettings, server_context

            self.tls_settings = TlsSettings.from_config(config)
            self.tls_context = server_context(self.tls_settings)
        # NettyServerCnxnFactory counts every connection that starts without
        # TLS (the plaintext port, and a unified port before it knows); the
        # NIO factory counts nothing.  zkpy serves TLS as Netty does, so it
        # counts whenever TLS or the Netty factory is configured.
        self.count_non_mtls = (self.tls_context is not None
                               or config.server_cnxn_factory == NETTY_FACTORY)
        self.non_mtls_local = 0
        self.non_mtls_remote = 0
        self.handshakes_failed = 0

    def note_plaintext(self, address: str) -> None:
        """A connection began without TLS (NettyServerCnxnFactory.channelActive)."""
        if _is_loopback(address):
            self.non_mtls_local += 1
        else:
            self.non_mtls_remote += 1

    def new_sasl_session(self):
        """The SASL exchange of one connection (no SASL: OK with a null token)."""
        if self.sasl is None:
            return SaslServerFactory.no_sasl_session()
        return self.sasl.new_session()

    def valid_id(self, scheme: str, ident: str) -> bool:
        """ProviderRegistry.getServerProvider(scheme).isValid(id) for the
        schemes beyond world, auth, digest and ip."""
        if scheme not in self.schemes:
            return False
        if scheme == "x509":
            from ..security.x509 import is_valid_x509_id

            return is_valid_x509_id(ident)
        if scheme == "sasl":
            return _valid_kerberos_name(ident)
        return True


def _valid_kerberos_name(ident: str) -> bool:
    """SASLAuthenticationProvider.isValid: new KerberosName(id) succeeds
    (service[/host][@REALM], no empty host or realm after their separator)."""
    from ..security.kerberos_name import KerberosName

    try:
        KerberosName.parse(ident)
    except ValueError:
        return False
    return True


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
