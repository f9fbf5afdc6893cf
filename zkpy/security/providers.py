"""Which ACL schemes a server knows: ZooKeeper's ProviderRegistry.

``ip`` is always there, ``digest`` unless DigestAuthenticationProvider.enabled
is false, and every ``authProvider.<name>=<class>`` adds the scheme of that
class.  zkpy cannot load Java classes, so it knows ZooKeeper's own providers
by class name; any other class is reported by :func:`unknown_provider_classes`
(ZooKeeper logs "Problems loading" for a class it cannot load and goes on,
and so should the server).

A scheme's presence matters: an ACL with a scheme that has no provider is
InvalidACL on create/setACL and never matches; enforce.auth.schemes must name
registered schemes; and the x509 id of a TLS client is only taken when the
x509 provider is registered (ZooKeeper registers it itself when a secure
client port is configured, see config's ``_configure_ssl_auth``).
"""

from __future__ import annotations

__all__ = ["ZOOKEEPER_PROVIDERS", "registered_schemes", "unknown_provider_classes"]

ZOOKEEPER_PROVIDERS = {
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider": "ip",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider": "digest",
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider": "sasl",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider": "x509",
    "org.apache.zookeeper.server.auth.KeyAuthenticationProvider": "key",
    "org.apache.zookeeper.server.auth.EnsembleAuthenticationProvider": "ensemble",
}


def registered_schemes(config) -> dict[str, str]:
    """scheme -> provider class name, as ProviderRegistry.initialize builds it."""
    schemes = {"ip": "org.apache.zookeeper.server.auth.IPAuthenticationProvider"}
    if config.digest_auth_enabled:
        schemes["digest"] = "org.apache.zookeeper.server.auth.DigestAuthenticationProvider"
    for class_name in config.auth_providers.values():
        scheme = ZOOKEEPER_PROVIDERS.get(class_name.strip())
        if scheme is not None:
            schemes[scheme] = class_name.strip()
    return schemes


def unknown_provider_classes(config) -> list[str]:
    """authProvider.N classes zkpy does not implement (to log as warnings)."""
    return [
        f"authProvider.{name}={cls}"
        for name, cls in config.auth_providers.items()
        if cls.strip() not in ZOOKEEPER_PROVIDERS
    ]
