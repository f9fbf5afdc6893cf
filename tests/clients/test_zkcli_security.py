"""zkCli.sh over TLS and with SASL, against Apache ZooKeeper and zkpy.

The Java CLI is set up as its users set it up, through JVM properties
(zkCli.sh's CLIENT_JVMFLAGS):

* TLS: ``zookeeper.client.secure=true``, the Netty client socket and the
  ``zookeeper.ssl.*`` key and trust stores (JKS or PKCS12, made with keytool)
  against each server's secureClientPort (NettyServerCnxnFactory, the same
  stores, ssl.clientAuth=need);
* SASL: a client JAAS file (``java.security.auth.login.config``) with a
  ``Client`` section: DIGEST-MD5 (DigestLoginModule, username/password), or
  Kerberos (Krb5LoginModule with a keytab from a KDC on loopback and
  ``java.security.krb5.conf``).

The same script runs against both servers and every command's output must be
the same; whoami's lines are compared as a set (the order of a connection's
ids is a known difference, docs/compatibility.md).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.support import pki
from zkpy.testing import ZkpyServer
from zkpy.testing.apache import JAVA_DIR, ApacheZooKeeper, free_port, require_apache

from .test_zkcli import run_zkcli

NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
PW = pki.STORE_PASSWORD
# Netty's client needs two jars that zookeeper.jar's manifest leaves out; a
# second -cp replaces zkCli.sh's own.
CLIENT_CLASSPATH = ":".join(["/etc/zookeeper/conf", str(JAVA_DIR / "zookeeper.jar"),
                             str(JAVA_DIR / "netty-codec.jar"),
                             str(JAVA_DIR / "netty-resolver.jar")])
# zkCli splits an ACL list at commas, so the subject has none.
CLIENT_SUBJECT = "CN=zkcli"


@contextlib.contextmanager
def servers(config: dict, *, secure: bool, jvm: tuple = ()):
    """[(name, connect string)] of an Apache ZooKeeper and a zkpy with the
    same keys; with secure, the connect string names the secure port."""
    config = {k: str(v) for k, v in config.items()}
    ports = (free_port(), free_port())
    a_cfg, z_cfg = dict(config, serverCnxnFactory=NETTY), dict(config, serverCnxnFactory=NETTY)
    if secure:
        a_cfg["secureClientPort"], z_cfg["secureClientPort"] = str(ports[0]), str(ports[1])
    with ApacheZooKeeper(extra_cfg=a_cfg, jvm_args=list(jvm)) as apache, \
            ZkpyServer(config=z_cfg) as zkpy:
        if secure:
            yield [("apache", f"127.0.0.1:{ports[0]}"), ("zkpy", f"127.0.0.1:{ports[1]}")]
        else:
            yield [("apache", apache.hosts), ("zkpy", zkpy.hosts)]


def outputs(transcript) -> dict:
    """Each command's (stdout, stderr); whoami's lines as a set."""
    out = {}
    for key, r in transcript.results.items():
        if r.cmd == "whoami":
            out[key] = (sorted(r.out), r.err)
        else:
            out[key] = (r.out, r.err)
    return out


def run_on_both(targets, steps, jvm_flags) -> dict:
    seen = {}
    for name, hosts in targets:
        t = run_zkcli(hosts, steps, jvm_flags=jvm_flags)
        seen[name] = (outputs(t), t)
    (a, ta), (z, tz) = seen["apache"], seen["zkpy"]
    for key in a:
        assert a[key] == z[key], (f"step {key}: apache {a[key]} zkpy {z[key]}\n"
                                  f"apache:\n{ta.dump()}\nzkpy:\n{tz.dump()}")
    return a


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    require_apache()
    d = tmp_path_factory.mktemp("zkcli-pki")
    ca = pki.CA()
    out = {}
    for store_type in ("JKS", "PKCS12"):
        sub = d / store_type
        sub.mkdir()
        out[store_type] = {
            "server": pki.keytool_key_store(sub, "server", "CN=zk-server", ca,
                                            store_type=store_type),
            "client": pki.keytool_key_store(sub, "zkcli", CLIENT_SUBJECT, ca,
                                            store_type=store_type),
            "trust": pki.keytool_trust_store(sub, ca, store_type=store_type),
        }
    return out


def tls_client_flags(s: dict) -> list[str]:
    return [
        "-cp", CLIENT_CLASSPATH,
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.keyStore.location={s['client']}",
        f"-Dzookeeper.ssl.keyStore.password={PW}",
        f"-Dzookeeper.ssl.trustStore.location={s['trust']}",
        f"-Dzookeeper.ssl.trustStore.password={PW}",
    ]


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_zkcli_over_tls_with_an_x509_acl(stores, store_type):
    s = stores[store_type]
    config = {"ssl.keyStore.location": s["server"], "ssl.keyStore.password": PW,
              "ssl.trustStore.location": s["trust"], "ssl.trustStore.password": PW,
              "ssl.clientAuth": "need"}
    steps = [
        ("create", "create /tls data1"),
        ("get", "get /tls"),
        ("whoami", "whoami"),
        ("setAcl", f"setAcl /tls x509:{CLIENT_SUBJECT}:cdrwa"),
        ("getAcl", "getAcl /tls"),
        ("get_mine", "get /tls"),
        ("set_mine", "set /tls data2"),
        ("create_other", "create /other x x509:CN=somebody-else:cdrwa"),
        ("get_other", "get /other"),
        ("getAcl_other", "getAcl /other"),
        ("bad_x509", "create /bad x x509:not-a-name:cdrwa"),
        ("get_again", "get /tls"),
    ]
    with servers(config, secure=True) as targets:
        seen = run_on_both(targets, steps, tls_client_flags(s))
    assert seen["get"] == (["data1"], [])
    assert seen["whoami"][0] == sorted(["Auth scheme: User", "ip: 127.0.0.1",
                                        f"x509: {CLIENT_SUBJECT}"])
    assert seen["getAcl"][0] == [f"'x509,'{CLIENT_SUBJECT}", ": cdrwa"]
    assert seen["get_again"] == (["data2"], [])
    assert seen["get_other"][1] == ["Insufficient permission : /other"]


# --- SASL DIGEST-MD5 ---------------------------------------------------------------------------

SERVER_JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"""


def client_jaas(path: Path, body: str) -> Path:
    path.write_text("Client {\n" + body + "\n};\n")
    return path


def test_zkcli_with_sasl_digest_md5(tmp_path):
    require_apache()
    server_jaas = tmp_path / "server.jaas"
    server_jaas.write_text(SERVER_JAAS)
    bob = client_jaas(tmp_path / "bob.jaas", """
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";""")
    config = {"java.security.auth.login.config": server_jaas, "authProvider.1": SASL_PROVIDER}
    steps = [
        ("whoami", "whoami"),
        ("create", "create /bobs data sasl:bob:cdrwa"),
        ("getAcl", "getAcl /bobs"),
        ("get", "get /bobs"),
        ("create_auth", "create /auth x auth::cdr"),
        ("getAcl_auth", "getAcl /auth"),
        ("create_alice", "create /alices x sasl:alice:cdrwa"),
        ("get_alice", "get /alices"),
    ]
    with servers(config, secure=False,
                 jvm=(f"-Djava.security.auth.login.config={server_jaas}",)) as targets:
        seen = run_on_both(targets, steps, [f"-Djava.security.auth.login.config={bob}"])
    assert seen["whoami"][0] == sorted(["Auth scheme: User", "ip: 127.0.0.1", "sasl: bob"])
    assert seen["getAcl"][0] == ["'sasl,'bob", ": cdrwa"]
    assert seen["get"] == (["data"], [])
    assert seen["getAcl_auth"][0] == ["'sasl,'bob", ": cdr"]
    assert seen["get_alice"][1] == ["Insufficient permission : /alices"]


def test_zkcli_with_a_wrong_sasl_password(tmp_path):
    """zkCli with a wrong DIGEST-MD5 password: the server answers AuthFailed
    and closes; the CLI prints the same on both."""
    require_apache()
    server_jaas = tmp_path / "server.jaas"
    server_jaas.write_text(SERVER_JAAS)
    wrong = client_jaas(tmp_path / "wrong.jaas", """
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="not-bobs";""")
    config = {"java.security.auth.login.config": server_jaas, "authProvider.1": SASL_PROVIDER}
    steps = [("whoami", "whoami"), ("ls", "ls /")]
    with servers(config, secure=False,
                 jvm=(f"-Djava.security.auth.login.config={server_jaas}",)) as targets:
        seen = run_on_both(targets, steps, [f"-Djava.security.auth.login.config={wrong}"])
    # AuthFailed: the client stops, and says so for every later command.
    assert "Not connected" in seen["ls"][0]


# --- SASL with Kerberos ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    require_apache()
    from tests.support.kdc import kdc_in_environment

    directory = tmp_path_factory.mktemp("kdc")
    with kdc_in_environment(directory) as k:
        k.server_keytab = k.add_principal("zookeeper/localhost", directory / "zk.keytab")
        k.alice_keytab = k.add_principal("alice", directory / "alice.keytab")
        yield k


@pytest.mark.parametrize("remove_realm", [False, True])
def test_zkcli_with_kerberos(kdc, tmp_path, remove_realm):
    from tests.support.kdc import REALM

    server_jaas = tmp_path / "server.jaas"
    server_jaas.write_text(f"""
Server {{
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="{kdc.server_keytab}" storeKey=true useTicketCache=false
    principal="zookeeper/localhost@{REALM}";
}};
""")
    alice = client_jaas(tmp_path / "alice.jaas", f"""
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="{kdc.alice_keytab}" storeKey=true useTicketCache=false
    principal="alice@{REALM}";""")
    config = {"java.security.auth.login.config": server_jaas, "authProvider.1": SASL_PROVIDER}
    if remove_realm:
        config["kerberos.removeRealmFromPrincipal"] = "true"
    ident = "alice" if remove_realm else f"alice@{REALM}"
    steps = [
        ("whoami", "whoami"),
        ("create", f"create /alices data sasl:{ident}:cdrwa"),
        ("get", "get /alices"),
        ("create_auth", "create /auth x auth::cdrwa"),
        ("getAcl_auth", "getAcl /auth"),
    ]
    krb = f"-Djava.security.krb5.conf={kdc.krb5_conf}"
    # zkCli's connect string names localhost: it asks for zookeeper/localhost.
    with servers(config, secure=False,
                 jvm=(f"-Djava.security.auth.login.config={server_jaas}", krb)) as targets:
        targets = [(name, hosts.replace("127.0.0.1", "localhost")) for name, hosts in targets]
        seen = run_on_both(targets, steps,
                           [f"-Djava.security.auth.login.config={alice}", krb])
    assert seen["whoami"][0] == sorted(["Auth scheme: User", "ip: 127.0.0.1",
                                        f"sasl: {ident}"])
    assert seen["get"] == (["data"], [])
    assert seen["getAcl_auth"][0] == [f"'sasl,'{ident}", ": cdrwa"]
