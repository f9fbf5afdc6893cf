"""The security keys of zoo.cfg: defaults, parsing as ZooKeeper parses them, errors."""

from __future__ import annotations

import pytest

from zkpy.security.providers import registered_schemes, unknown_provider_classes
from zkpy.server.config import ConfigError, parse_config


def cfg(*lines):
    return parse_config("\n".join(("dataDir=/tmp/zk",) + lines))


def err(*lines) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg(*lines)
    assert "\n" not in str(info.value)
    return info.value


def test_defaults():
    c = cfg()
    assert c.secure_client_port is None and c.ssl_client_auth == "need"
    assert c.ssl_protocol == "TLSv1.2" and c.ssl_hostname_verification is True
    assert c.ssl_quorum is False and c.ssl_auth_provider == "x509"
    assert c.digest_auth_enabled is True and c.digest_auth_alg == "SHA1"
    assert c.quorum_auth_kerberos_service_principal == "zkquorum/localhost"
    assert c.quorum_auth_learner_login_context == "QuorumLearner"
    assert c.sasl_server_login_context == "Server"
    assert registered_schemes(c).keys() == {"ip", "digest"}


def test_values_and_spellings():
    c = cfg("secureClientPort=2281", "zookeeper.ssl.clientAuth=Want",
            "ssl.quorum.keyStore.type=pkcs12", "ssl.enabledProtocols=TLSv1.2,TLSv1.3",
            "ssl.hostnameVerification=yes", "client.portUnification=TRUE",
            "allowSaslFailedClients=True", "kerberos.removeHostFromPrincipal=TRUE",
            "kerberos.removeRealmFromPrincipal=true",
            "zookeeper.DigestAuthenticationProvider.enabled=false",
            "DigestAuthenticationProvider.digestAlg=sha3-256",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory")
    assert c.secure_client_port == 2281 and c.ssl_client_auth == "want"
    assert c.ssl_quorum_keystore_type == "PKCS12"
    assert c.ssl_enabled_protocols == ("TLSv1.2", "TLSv1.3")
    assert c.ssl_hostname_verification is False  # Boolean.parseBoolean
    assert c.client_port_unification is True and c.allow_sasl_failed_clients is True
    assert c.kerberos_remove_host_from_principal is False  # "true".equals(...)
    assert c.kerberos_remove_realm_from_principal is True
    assert "digest" not in registered_schemes(c)
    assert c.digest_auth_alg == "sha3-256"
    assert c.auth_providers == {"x509": "org.apache.zookeeper.server.auth.X509AuthenticationProvider"}
    assert c.unknown_keys == []


@pytest.mark.parametrize("line,key", [
    ("ssl.clientAuth=maybe", "ssl.clientAuth"),
    ("ssl.quorum.clientAuth=yes", "ssl.quorum.clientAuth"),
    ("ssl.keyStore.type=P12", "ssl.keyStore.type"),
    ("ssl.protocol=TLSv9", "ssl.protocol"),
    ("ssl.quorum.enabledProtocols=TLSv1.2,TLS1.3", "ssl.quorum.enabledProtocols"),
    ("ssl.ciphersuites=NOPE", "ssl.ciphersuites"),
    ("sslQuorum=yes", "sslQuorum"),
    ("portUnification=1", "portUnification"),
    ("quorum.auth.enableSasl=on", "quorum.auth.enableSasl"),
    ("secureClientPort=70000", "secureClientPort"),
    ("secureClientPortAddress=127.0.0.1", "secureClientPortAddress"),
    ("DigestAuthenticationProvider.digestAlg=ROT13", "DigestAuthenticationProvider.digestAlg"),
    ("serverCnxnFactory=com.example.Factory", "serverCnxnFactory"),
    ("security.auth_to_local=RULE:nonsense", "security.auth_to_local"),
])
def test_bad_values_name_the_key(line, key):
    assert err(line).key == key


def test_ssl_auth_provider_needs_a_provider():
    e = err("secureClientPort=2281", "ssl.authProvider=custom")
    assert e.key == "ssl.authProvider"
    c = cfg("secureClientPort=2281", "ssl.authProvider=custom", "authProvider.custom=com.example.P")
    assert unknown_provider_classes(c) == ["authProvider.custom=com.example.P"]
    # without a secure port nothing is registered for x509
    assert "x509" not in cfg().auth_providers


def test_super_users_collected_by_prefix():
    c = cfg("superUser=a", "zookeeper.superUser.two=b", "superUser.x=c")
    assert c.sasl_super_users == frozenset({"a", "b", "c"})
    assert c.unknown_keys == []


def test_enforce_auth_schemes_are_trimmed():
    c = cfg("enforce.auth.enabled=true", "enforce.auth.schemes= digest ,ip")
    assert c.enforce_auth_schemes == ("digest", "ip")
    assert err("enforce.auth.enabled=true", "enforce.auth.schemes=digest,,ip").key == \
        "enforce.auth.schemes"
