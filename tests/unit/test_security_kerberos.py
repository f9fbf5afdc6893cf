"""GSSAPI SASL against a real MIT KDC on loopback (temporary realm, keytabs)."""

from __future__ import annotations

import os

import pytest

from tests.support.kdc import KDC, REALM
from zkpy.security.sasl import SaslServerFactory
from zkpy.server.config import ConfigError, parse_config


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kdc")
    k = KDC(directory)
    saved = {v: os.environ.get(v) for v in ("KRB5_CONFIG", "KRB5CCNAME")}
    os.environ["KRB5_CONFIG"] = str(k.krb5_conf)
    os.environ["KRB5CCNAME"] = k.env["KRB5CCNAME"]
    k.server_keytab = k.add_principal("zookeeper/localhost", directory / "zk.keytab")
    k.alice_keytab = k.add_principal("alice", directory / "alice.keytab")
    k.host_keytab = k.add_principal("zkcli/client.example", directory / "zkcli.keytab")
    yield k
    k.stop()
    for v, value in saved.items():
        if value is None:
            os.environ.pop(v, None)
        else:
            os.environ[v] = value


def server_config(kdc, tmp_path, *lines):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(f"""
Server {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    keyTab="{kdc.server_keytab}"
    storeKey=true
    useTicketCache=false
    principal="zookeeper/localhost@{REALM}";
}};
""")
    return parse_config("\n".join((
        "dataDir=/tmp/zk", f"java.security.auth.login.config={jaas}") + lines))


def gssapi_client_exchange(session, kdc, principal, keytab, authzid=b""):
    """The client side of RFC 4752 as the JDK's and kazoo's clients run it."""
    import gssapi

    kdc.kinit(principal, keytab)
    creds = gssapi.Credentials(usage="initiate")
    target = gssapi.Name("zookeeper@localhost", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                 flags=gssapi.RequirementFlag.mutual_authentication)
    token = ctx.step(b"")
    replies = []
    while True:
        reply = session.handle(token)
        replies.append(reply)
        if reply.err or reply.complete:
            return replies
        if not ctx.complete:
            token = ctx.step(reply.token) or b""
            if ctx.complete and token == b"":
                continue
            continue
        if reply.token:
            offer = ctx.unwrap(reply.token).message
            assert offer[0] & 1 and int.from_bytes(offer[1:4], "big") == 65536
            token = ctx.wrap(bytes([1]) + offer[1:4] + authzid, False).message
        else:
            token = b""


def test_gssapi_login_and_ids(kdc, tmp_path):
    factory = SaslServerFactory.from_config(server_config(kdc, tmp_path))
    assert factory.mechanism == "GSSAPI"
    replies = gssapi_client_exchange(factory.new_session(), kdc, "alice", kdc.alice_keytab)
    last = replies[-1]
    assert last.complete and last.err == 0 and last.token is None
    assert last.auth_ids == [("sasl", f"alice@{REALM}")]


@pytest.mark.parametrize("lines,expected", [
    ((), f"zkcli/client.example@{REALM}"),
    (("kerberos.removeHostFromPrincipal=true",), f"zkcli@{REALM}"),
    (("kerberos.removeRealmFromPrincipal=true",), "zkcli/client.example"),
    (("kerberos.removeHostFromPrincipal=true", "kerberos.removeRealmFromPrincipal=true"),
     "zkcli"),
    (("kerberos.removeRealmFromPrincipal=TRUE",), f"zkcli/client.example@{REALM}"),
])
def test_principal_canonicalisation(kdc, tmp_path, lines, expected):
    factory = SaslServerFactory.from_config(server_config(kdc, tmp_path, *lines))
    last = gssapi_client_exchange(factory.new_session(), kdc, f"zkcli/client.example",
                                  kdc.host_keytab)[-1]
    assert last.auth_ids == [("sasl", expected)]


def test_super_user_by_principal(kdc, tmp_path):
    factory = SaslServerFactory.from_config(server_config(
        kdc, tmp_path, "kerberos.removeRealmFromPrincipal=true", "zookeeper.superUser.x=alice"))
    last = gssapi_client_exchange(factory.new_session(), kdc, "alice", kdc.alice_keytab)[-1]
    assert last.auth_ids == [("sasl", "alice"), ("super", "")]


def test_garbage_token_fails(kdc, tmp_path):
    factory = SaslServerFactory.from_config(server_config(kdc, tmp_path))
    reply = factory.new_session().handle(b"\x60\x03not a token")
    assert reply.err == -115 and reply.close


def test_keytab_without_the_key_is_a_config_error(kdc, tmp_path):
    jaas = tmp_path / "bad.conf"
    jaas.write_text(f"""Server {{ com.sun.security.auth.module.Krb5LoginModule required
        useKeyTab=true keyTab="{kdc.alice_keytab}" principal="zookeeper/otherhost@{REALM}"; }};""")
    config = parse_config(f"dataDir=/tmp/zk\njava.security.auth.login.config={jaas}")
    with pytest.raises(ConfigError) as info:
        SaslServerFactory.from_config(config)
    assert info.value.key == "java.security.auth.login.config"
