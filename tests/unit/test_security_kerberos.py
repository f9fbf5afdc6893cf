"""GSSAPI SASL against a real MIT KDC on loopback (temporary realm, keytabs)."""

from __future__ import annotations


import pytest

from tests.support.kdc import REALM, kdc_in_environment
from zkpy.security.sasl import SaslServerFactory
from zkpy.server.config import ConfigError, parse_config


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kdc")
    with kdc_in_environment(directory) as k:
        k.server_keytab = k.add_principal("zookeeper/localhost", directory / "zk.keytab")
        k.alice_keytab = k.add_principal("alice", directory / "alice.keytab")
        k.host_keytab = k.add_principal("zkcli/client.example", directory / "zkcli.keytab")
        yield k


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


# --- quorum SASL with Kerberos -----------------------------------------------------------------


def quorum_config(kdc, tmp_path, learner_principal, learner_keytab, *lines):
    (tmp_path / "myid").write_text("1\n")
    jaas = tmp_path / "quorum.conf"
    jaas.write_text(f"""
QuorumServer {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="{kdc.quorum_keytab}" storeKey=true
    principal="zkquorum/127.0.0.1@{REALM}";
}};
QuorumLearner {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="{learner_keytab}" storeKey=true
    principal="{learner_principal}@{REALM}";
}};
""")
    return parse_config("\n".join((
        f"dataDir={tmp_path}", f"java.security.auth.login.config={jaas}", "initLimit=5",
        "syncLimit=2", "server.1=127.0.0.1:2888:3888", "server.2=127.0.0.1:2889:3889",
        "quorum.auth.enableSasl=true", "quorum.auth.learnerRequireSasl=true",
        "quorum.auth.serverRequireSasl=true",
        "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST") + lines))


def shuttle(d, li):
    """Run a link's exchange (zkpy.zab.quorum_auth) between two handshakes;
    the reason of the first end to refuse, or None."""
    from zkpy.zab.quorum_auth import _HEAD, Refused

    d.peer_host = li.peer_host = "127.0.0.1"
    d.start()
    pending = [(li, d.take())]
    while pending:
        to, frames = pending.pop(0)
        for f in frames:
            _, _, status, sid = _HEAD.unpack_from(f)
            try:
                to.receive(status, sid, f[_HEAD.size:])
            except Refused as e:
                return str(e)
            pending.append((d if to is li else li, to.take()))
    assert d.done and li.done
    return None


@pytest.fixture(scope="module")
def quorum_keys(kdc, tmp_path_factory):
    d = tmp_path_factory.mktemp("quorum-keys")
    kdc.quorum_keytab = kdc.add_principal("zkquorum/127.0.0.1", d / "zkquorum.keytab")
    kdc.stranger_keytab = kdc.add_principal("zkquorum/elsewhere.example", d / "stranger.keytab")
    return kdc


def test_quorum_gssapi_both_ways(quorum_keys, tmp_path):
    from zkpy.zab.quorum_auth import QuorumLinkAuth

    kdc = quorum_keys
    auth = QuorumLinkAuth.from_config(quorum_config(kdc, tmp_path, "zkquorum/127.0.0.1",
                                                   kdc.quorum_keytab))
    assert auth.server.mechanism == auth.learner.mechanism == "GSSAPI"
    d, li = auth.handshake(True), auth.handshake(False)
    assert shuttle(d, li) is None
    assert d.authenticated_as == li.authenticated_as == f"zkquorum/127.0.0.1@{REALM}"


def test_quorum_gssapi_refuses_a_principal_of_another_host(quorum_keys, tmp_path):
    """SaslQuorumServerCallbackHandler: service/host@REALM must name a host
    of the ensemble."""
    from zkpy.zab.quorum_auth import QuorumLinkAuth

    kdc = quorum_keys
    (tmp_path / "a").mkdir()
    ours = QuorumLinkAuth.from_config(quorum_config(kdc, tmp_path / "a", "zkquorum/127.0.0.1",
                                                   kdc.quorum_keytab))
    (tmp_path / "b").mkdir()
    stranger = QuorumLinkAuth.from_config(quorum_config(
        kdc, tmp_path / "b", "zkquorum/elsewhere.example", kdc.stranger_keytab))
    why = shuttle(stranger.handshake(True), ours.handshake(False))
    assert "elsewhere.example is not authorized to connect" in why
