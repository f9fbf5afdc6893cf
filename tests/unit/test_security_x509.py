"""x509 ids: Java's X500Principal.getName() is the reference (asked of a JVM)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from tests.support import pki
from zkpy.security.x509 import (
    HostnameMismatch,
    handshake_outcome,
    is_valid_x509_id,
    subject_name,
    verify_peer_host,
    x509_auth_ids,
    x509_matches,
)
from zkpy.server.config import parse_config

_ASN1 = x509.name._ASN1Type

TRICKY_NAMES = [
    pki.name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Example"),
             (NameOID.ORGANIZATIONAL_UNIT_NAME, "zk"), (NameOID.COMMON_NAME, "client")),
    pki.name((NameOID.COMMON_NAME, "a,b+c=d<e>f;g\"h\\i#j")),
    pki.name((NameOID.COMMON_NAME, " leading and trailing ")),
    pki.name((NameOID.COMMON_NAME, "#hash first")),
    pki.name((NameOID.COMMON_NAME, "Zoë Ünïcødé 日本")),
    pki.name((NameOID.DOMAIN_COMPONENT, "org"), (NameOID.DOMAIN_COMPONENT, "example"),
             (NameOID.USER_ID, "u42"), (NameOID.COMMON_NAME, "dc user")),
    pki.name((NameOID.EMAIL_ADDRESS, "zk@example.org"), (NameOID.COMMON_NAME, "mail")),
    pki.name((NameOID.SERIAL_NUMBER, "12345"), (NameOID.TITLE, "Dr"),
             (NameOID.STREET_ADDRESS, "1 Main St"), (NameOID.LOCALITY_NAME, "Town"),
             (NameOID.STATE_OR_PROVINCE_NAME, "State"), (NameOID.COMMON_NAME, "many")),
    pki.name((NameOID.COMMON_NAME, "tab\there"), (NameOID.GIVEN_NAME, "Ann"),
             (NameOID.SURNAME, "Lee")),
    x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "multi"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "valued"),
    ]), x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])]),
    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printable", _ASN1.PrintableString),
               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bmp", _ASN1.BMPString),
               x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ia5", _ASN1.IA5String)]),
    x509.Name([x509.NameAttribute(ObjectIdentifier("1.2.3.4.5"), "custom oid"),
               x509.NameAttribute(NameOID.COMMON_NAME, "ends with cr\r")]),
]


@pytest.fixture(scope="module")
def ca():
    return pki.CA()


def test_subject_names_match_java(ca, tmp_path):
    ders = [ca.issue(n).der for n in TRICKY_NAMES]
    expected = pki.java_x500_names(tmp_path, ders)
    got = [subject_name(d) for d in ders]
    for n, e, g in zip(TRICKY_NAMES, expected, got):
        assert g == e, f"{n.rfc4514_string()}: zkpy {g!r} != java {e!r}"


def test_keytool_made_certificate_matches_java(ca, tmp_path):
    pki.require_tool("keytool")
    store = pki.keytool_key_store(tmp_path, "client", "CN=Client One, OU=Ops, O=Acme\\, Inc., C=US", ca)
    from zkpy.security.keystores import StoreSpec, load_key_store
    from cryptography.hazmat.primitives import serialization

    material = load_key_store(StoreSpec(str(store), pki.STORE_PASSWORD))
    der = material.chain[0].public_bytes(serialization.Encoding.DER)
    assert subject_name(der) == pki.java_x500_names(tmp_path, [der])[0]
    assert subject_name(der) == "CN=Client One,OU=Ops,O=Acme\\, Inc.,C=US"


def test_auth_ids_super_user_first(ca):
    der = ca.issue("admin").der
    assert x509_auth_ids(der) == [("x509", "CN=admin")]
    assert x509_auth_ids(der, "CN=admin") == [("super", "CN=admin"), ("x509", "CN=admin")]
    assert x509_auth_ids(der, "CN=other") == [("x509", "CN=admin")]


def test_matches():
    assert x509_matches("CN=a", "CN=a")
    assert not x509_matches("CN=a", "CN=b")
    assert not x509_matches("CN=a", "cn=a")  # exact string comparison, as in ZooKeeper
    assert x509_matches("CN=root", "CN=b", super_user="CN=root")
    assert not x509_matches("CN=a", "CN=b", super_user="CN=root")


@pytest.mark.parametrize("ident,valid", [
    ("CN=a,OU=b,O=c", True), ("", True), ("cn=lower;o=semicolon", True),
    ("CN=a+OU=b", True), ("CN=\"quoted, value\"", True), ("1.2.3.4=#0403616263", True),
    ("EMAILADDRESS=a@b", True), ("CN=a\\,b", True),
    ("CN", False), ("XX=a", False), ("CN=a,", False), ("CN=\"open", False), ("CN=a\\", False),
    ("1.2.3=#abc", False),
])
def test_is_valid_x509_id(ident, valid):
    assert is_valid_x509_id(ident) is valid


def _cfg(*lines):
    return parse_config("\n".join(("dataDir=/tmp/zk", "secureClientPort=0") + lines))


def test_handshake_outcome(ca):
    der = ca.issue("c1").der
    out = handshake_outcome(_cfg(), der)
    assert not out.close and out.auth_ids == [("x509", "CN=c1")]
    out = handshake_outcome(_cfg("X509AuthenticationProvider.superUser=CN=c1"), der)
    assert out.auth_ids == [("super", "CN=c1"), ("x509", "CN=c1")]
    # clientAuth=none: no certificate is asked for, no id given
    assert handshake_outcome(_cfg("ssl.clientAuth=none"), der).auth_ids == []
    # want: anonymous clients are let in
    out = handshake_outcome(_cfg("ssl.clientAuth=want"), None)
    assert not out.close and out.auth_ids == []
    assert handshake_outcome(_cfg(), None).close
    # a scheme whose provider is not the x509 one: ZooKeeper closes the connection
    out = handshake_outcome(_cfg("ssl.authProvider=x9",
                                 "authProvider.x9=org.apache.zookeeper.server.auth."
                                 "X509AuthenticationProvider"), der)
    assert out.close


def test_hostname_verification(ca):
    c = ca.issue("srv", dns=("zk1.example.org", "*.zk.example.org"), ips=("127.0.0.1", "::1"))
    verify_peer_host(c.der, "127.0.0.1")
    verify_peer_host(c.der, "0:0:0:0:0:0:0:1")
    verify_peer_host(c.der, "10.0.0.9", host_names=("zk1.example.org",))
    verify_peer_host(c.der, "10.0.0.9", host_names=("a.zk.example.org",))
    with pytest.raises(HostnameMismatch):
        verify_peer_host(c.der, "127.0.0.2")
    with pytest.raises(HostnameMismatch):
        verify_peer_host(c.der, "10.0.0.9", host_names=("a.b.zk.example.org",))
    # no SAN at all: the most specific CN is the fallback
    cn_only = ca.issue(pki.name((NameOID.COMMON_NAME, "outer"), (NameOID.COMMON_NAME, "zk3")),
                       dns=(), ips=())
    verify_peer_host(cn_only.der, "10.0.0.1", host_names=("ZK3",))
    with pytest.raises(HostnameMismatch):
        verify_peer_host(cn_only.der, "10.0.0.1", host_names=("outer",))
