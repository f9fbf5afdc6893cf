"""TLS, x509, SASL DIGEST-MD5 and enforce.auth, compared with Apache ZooKeeper.

Each scenario starts an Apache ZooKeeper 3.8 (NettyServerCnxnFactory, which
it needs for TLS) and a zkpy with the same zoo.cfg keys and the same key
stores and JAAS files, runs the same clients against each (kazoo with
use_ssl or sasl_options, RawClient over TLS) and compares what they saw.
Key stores are made here, as ZooKeeper users make them: JKS and PKCS12 with
the JDK's keytool, PEM with the `cryptography` package.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID
from kazoo.client import KazooClient, KazooState
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_acl

from tests.support import pki
from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import AuthPacket, PathWatchRequest
from zkpy.rawclient import ConnectionClosed, RawClient
from zkpy.testing import ZkpyServer
from zkpy.testing.apache import ApacheZooKeeper, free_port, require_apache

NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
PW = pki.STORE_PASSWORD
ALICE = "CN=alice,OU=clients,O=Example\\, Inc.,C=US"   # as Java prints the subject


@dataclass
class Pki:
    dir: Path
    ca: pki.CA
    stores: dict          # store type -> (key store, trust store)
    clients: dict         # name -> (cert file, key file)
    ca_file: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Pki:
    require_apache()
    d = tmp_path_factory.mktemp("pki")
    ca = pki.CA()
    stores = {
        "JKS": (pki.keytool_key_store(d, "server-jks", "CN=zk-server", ca, store_type="JKS"),
                pki.keytool_trust_store(d, ca, store_type="JKS")),
        "PKCS12": (pki.keytool_key_store(d, "server-p12", "CN=zk-server", ca,
                                         store_type="PKCS12"),
                   pki.keytool_trust_store(d, ca, store_type="PKCS12")),
    }
    server = ca.issue("zk-server")
    # Unencrypted: the JDK cannot read a PKCS#8 key encrypted with PBES2,
    # which is what `cryptography` writes.
    stores["PEM"] = (pki.write_pem_key_store(d / "server.pem", server, ca),
                     pki.write_pem_trust_store(d / "trust.pem", ca))
    clients = {}
    subjects = {
        "alice": pki.name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Example, Inc."),
                          (NameOID.ORGANIZATIONAL_UNIT_NAME, "clients"),
                          (NameOID.COMMON_NAME, "alice")),
        "bob": "bob",
        "admin": "admin",
    }
    for who, subject in subjects.items():
        issued = ca.issue(subject)
        (d / f"{who}.crt").write_bytes(issued.cert_pem())
        (d / f"{who}.key").write_bytes(issued.key_pem())
        clients[who] = (d / f"{who}.crt", d / f"{who}.key")
    rogue_ca = pki.CA("rogue CA")
    rogue = rogue_ca.issue("alice")
    (d / "rogue.crt").write_bytes(rogue.cert_pem())
    (d / "rogue.key").write_bytes(rogue.key_pem())
    clients["rogue"] = (d / "rogue.crt", d / "rogue.key")
    ca_file = d / "ca.pem"
    ca_file.write_bytes(ca.cert_pem())
    return Pki(d, ca, stores, clients, ca_file)


def tls_keys(certs: Pki, store_type: str = "PEM", **extra) -> dict:
    key_store, trust_store = certs.stores[store_type]
    cfg = {
        "ssl.keyStore.location": key_store, "ssl.trustStore.location": trust_store,
    }
    if store_type != "PEM":
        cfg.update({"ssl.keyStore.password": PW, "ssl.trustStore.password": PW})
    cfg.update(extra)
    return cfg


@dataclass
class Target:
    name: str
    server: object
    port: int            # clientPort
    secure_port: int | None

    def mntr(self) -> dict:
        text = (self.server.four_letter(word="mntr") if self.name == "zkpy"
                else self.server.four_letter_word("mntr"))
        out = {}
        for line in text.splitlines():
            key, _, value = line.partition("\t")
            out[key] = value
        return out


@contextlib.contextmanager
def pair(config: dict, *, secure: bool = True, jvm: tuple = ()):
    """(apache, zkpy) with the same keys; each with its own secure port."""
    config = {k: str(v) for k, v in config.items()}
    ports = (free_port(), free_port()) if secure else (None, None)
    a_cfg = dict(config, serverCnxnFactory=NETTY)
    z_cfg = dict(config, serverCnxnFactory=NETTY)
    if secure:
        a_cfg["secureClientPort"] = str(ports[0])
        z_cfg["secureClientPort"] = str(ports[1])
    jaas = config.get("java.security.auth.login.config")
    jvm_args = list(jvm) + ([f"-Djava.security.auth.login.config={jaas}"] if jaas else [])
    with ApacheZooKeeper(extra_cfg=a_cfg, jvm_args=jvm_args) as apache, \
            ZkpyServer(config=z_cfg) as zkpy:
        yield (Target("apache", apache, apache.port, ports[0]),
               Target("zkpy", zkpy, zkpy.port, ports[1]))


def client_context(certs: Pki, who: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(certs.ca_file))
    if who is not None:
        cert, key = certs.clients[who]
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def kazoo(certs: Pki, port: int, who: str | None = "alice", **kwargs) -> KazooClient:
    opts = {}
    if who is not None:
        cert, key = certs.clients[who]
        opts = dict(certfile=str(cert), keyfile=str(key))
    zk = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, ca=str(certs.ca_file),
                     verify_certs=True, timeout=10, **opts, **kwargs)
    zk.start(timeout=15)
    return zk


def outcome(fn) -> str:
    try:
        value = fn()
    except Exception as e:  # the kind of failure is what is compared
        return type(e).__name__
    return repr(value)


def probe(host_port: tuple, ctx: ssl.SSLContext | None) -> str:
    """Connect (over TLS if ctx), ask for a session: what happened."""
    try:
        c = RawClient(*host_port, timeout=5, ssl_context=ctx)
    except ssl.SSLError:
        return "handshake refused"
    except OSError:
        return "connection refused"
    try:
        c.connect()
    except (ConnectionClosed, ssl.SSLError, OSError):
        return "closed"
    finally:
        c.close()
    return "session" if c.session_id else "no session"


def start_refused(client) -> str:
    """Start a client whose SASL login the server should refuse: was it?
    kazoo says CONNECTED before its SASL exchange, so start() returns or
    times out depending on when the refusal arrives, and the state it
    passes through on its way to closed depends on timing too: what the
    server decided is whether the session was lost."""
    lost = threading.Event()
    client.add_listener(lambda state: state == KazooState.LOST and lost.set())
    with contextlib.suppress(KazooTimeoutError):
        client.start(timeout=5)
    return "refused" if lost.wait(20) else "not refused"


def both(targets, scenario):
    """Run scenario(target) on each server; the two transcripts must be equal."""
    results = [scenario(t) for t in targets]
    assert results[0] == results[1], f"apache: {results[0]}\nzkpy:   {results[1]}"
    return results[0]


# --- TLS and x509 ------------------------------------------------------------------------------


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12", "PEM"])
def test_kazoo_over_tls_with_x509_acls(certs, store_type):
    with pair(tls_keys(certs, store_type)) as targets:
        def scenario(t):
            out = []
            alice = kazoo(certs, t.secure_port, "alice")
            bob = kazoo(certs, t.secure_port, "bob")
            try:
                acl = [make_acl("x509", ALICE, all=True)]
                out.append(outcome(lambda: alice.create("/mine", b"a", acl=acl)))
                out.append(outcome(lambda: alice.get("/mine")[0]))
                out.append(outcome(lambda: bob.get("/mine")[0]))
                out.append(outcome(lambda: bob.set("/mine", b"b")))
                out.append(outcome(lambda: [(a.perms, a.id.scheme, a.id.id)
                                            for a in alice.get_acls("/mine")[0]]))
                # An invalid x509 id (not a distinguished name) is InvalidACL.
                out.append(outcome(lambda: alice.create(
                    "/bad", b"", acl=[make_acl("x509", "not a name", all=True)])))
                # auth: expands to the connection's x509 id.
                out.append(outcome(lambda: alice.create(
                    "/auth", b"", acl=[make_acl("auth", "", all=True)])))
                out.append(outcome(lambda: [a.id.id for a in alice.get_acls("/auth")[0]]))
            finally:
                alice.stop()
                bob.stop()
            return out

        transcript = both(targets, scenario)
        assert transcript[1] == repr(b"a") and transcript[2] == "NoAuthError"


def test_who_am_i_and_client_auth_modes(certs):
    def ids(t, who):
        with contextlib.closing(RawClient("127.0.0.1", t.secure_port,
                                          ssl_context=client_context(certs, who))) as c:
            c.connect()
            hdr, infos = c.request(Op.WHO_AM_I)
            return sorted(infos)

    for mode in ("need", "want", "none"):
        with pair(tls_keys(certs, **{"ssl.clientAuth": mode})) as targets:
            def scenario(t):
                out = [probe(("127.0.0.1", t.secure_port), client_context(certs, None))]
                if out[0] == "session":
                    out.append(ids(t, None))
                out.append(ids(t, "alice"))
                return out

            transcript = both(targets, scenario)
            if mode == "need":
                assert transcript[0] != "session"
            else:
                assert transcript[-1] == (
                    [("ip", "127.0.0.1"), ("x509", ALICE)] if mode == "want"
                    else [("ip", "127.0.0.1")])


def test_x509_super_user(certs):
    with pair(tls_keys(certs, **{"X509AuthenticationProvider.superUser": "CN=admin"})) \
            as targets:
        def scenario(t):
            alice = kazoo(certs, t.secure_port, "alice")
            admin = kazoo(certs, t.secure_port, "admin")
            try:
                alice.create("/locked", b"x", acl=[make_acl("x509", ALICE, read=True)])
                return [outcome(lambda: admin.get("/locked")[0]),
                        outcome(lambda: admin.set("/locked", b"y") and None),
                        outcome(lambda: admin.delete("/locked"))]
            finally:
                alice.stop()
                admin.stop()

        assert both(targets, scenario)[0] == repr(b"x")


def test_failed_handshakes_close_that_connection_and_count(certs):
    """An untrusted certificate, a plaintext client and garbage on the secure
    port: each connection is closed, auth_failed_count counts the failed
    handshakes, and a session that was there goes on."""
    with pair(tls_keys(certs)) as targets:
        def scenario(t):
            good = kazoo(certs, t.secure_port, "alice")
            try:
                good.create("/still", b"here")
                before = int(t.mntr()["zk_auth_failed_count"])
                out = [probe(("127.0.0.1", t.secure_port), client_context(certs, "rogue"))]
                out.append(probe(("127.0.0.1", t.secure_port), None))   # plaintext
                with socket.create_connection(("127.0.0.1", t.secure_port), timeout=5) as s:
                    s.sendall(b"\x16\x03\x01\x00\x05garbage-garbage")
                    out.append(_read_to_close(s))
                with socket.create_connection(("127.0.0.1", t.secure_port), timeout=5) as s:
                    s.sendall(b"ruok")
                    out.append(_read_to_close(s))
                out.append(_eventually(lambda: int(t.mntr()["zk_auth_failed_count"]) - before,
                                       4))
                out.append(outcome(lambda: good.get("/still")[0]))
                out.append(probe(("127.0.0.1", t.secure_port), client_context(certs, "bob")))
                return out
            finally:
                good.stop()

        transcript = both(targets, scenario)
        assert transcript[-2:] == [repr(b"here"), "session"]


def _read_to_close(s: socket.socket) -> str:
    """"closed" once the server closes; what it sent is not compared (TLS
    alerts differ between Java and OpenSSL)."""
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    return "closed"


def _eventually(fn, want, timeout=10.0):
    """fn() once it equals want (counts settle after the close), else its last value."""
    deadline = time.monotonic() + timeout
    value = fn()
    while value != want and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fn()
    return value


def test_port_unification_and_non_mtls_counts(certs):
    """client.portUnification: TLS and plaintext clients on clientPort; every
    connection counts as non-mTLS (Netty counts before it knows), a TLS
    connection to secureClientPort does not."""
    with pair(tls_keys(certs, **{"client.portUnification": "true"})) as targets:
        def scenario(t):
            def local():
                return int(t.mntr()["zk_non_mtls_local_conn_count"])

            before = local()
            out = [probe(("127.0.0.1", t.port), client_context(certs, "alice")),
                   probe(("127.0.0.1", t.port), None),
                   probe(("127.0.0.1", t.secure_port), client_context(certs, "alice"))]
            plain = KazooClient(hosts=f"127.0.0.1:{t.port}", timeout=10)
            plain.start(timeout=15)
            secure = kazoo(certs, t.port, "alice")
            try:
                plain.create("/unified", b"p")
                out.append(outcome(lambda: secure.get("/unified")[0]))
            finally:
                plain.stop()
                secure.stop()
            # the two probes on clientPort, the two kazoo clients, this mntr
            out.append(local() - before)
            out.append(t.mntr()["zk_non_mtls_remote_conn_count"])
            return out

        transcript = both(targets, scenario)
        assert transcript[:3] == ["session"] * 3


# --- SASL DIGEST-MD5 ---------------------------------------------------------------------------

JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"""
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


def sasl_keys(tmp_path, **extra) -> dict:
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(JAAS)
    cfg = {"java.security.auth.login.config": jaas, "authProvider.1": SASL_PROVIDER}
    cfg.update(extra)
    return cfg


def sasl_client(port, user, password, **kwargs) -> KazooClient:
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10, sasl_options={
        "mechanism": "DIGEST-MD5", "username": user, "password": password}, **kwargs)
    zk.start(timeout=15)
    return zk


def test_sasl_digest_md5_and_sasl_acls(tmp_path):
    require_apache()
    with pair(sasl_keys(tmp_path), secure=False) as targets:
        def scenario(t):
            out = []
            bob = sasl_client(t.port, "bob", "bobsecret")
            anon = KazooClient(hosts=f"127.0.0.1:{t.port}", timeout=10)
            anon.start(timeout=15)
            try:
                out.append(outcome(lambda: bob.create(
                    "/bobs", b"b", acl=[make_acl("sasl", "bob", all=True)])))
                out.append(outcome(lambda: bob.get("/bobs")[0]))
                out.append(outcome(lambda: anon.get("/bobs")[0]))
                out.append(outcome(lambda: [(a.id.scheme, a.id.id)
                                            for a in bob.get_acls("/bobs")[0]]))
                out.append(outcome(lambda: bob.create(
                    "/sasl-auth", b"", acl=[make_acl("auth", "", all=True)]) and None))
                out.append(outcome(lambda: [(a.id.scheme, a.id.id)
                                            for a in bob.get_acls("/sasl-auth")[0]]))
                out.append(outcome(lambda: anon.create(
                    "/bad-sasl", b"", acl=[make_acl("sasl", "x@", all=True)])))
            finally:
                bob.stop()
                anon.stop()
            wrong = KazooClient(hosts=f"127.0.0.1:{t.port}", timeout=5, sasl_options={
                "mechanism": "DIGEST-MD5", "username": "bob", "password": "wrong"})
            out.append(start_refused(wrong))
            wrong.stop()
            wrong.close()
            return out

        transcript = both(targets, scenario)
        assert transcript[1] == repr(b"b") and transcript[2] == "NoAuthError"


def test_sasl_wrong_password_on_the_wire(tmp_path):
    """The reply to a failing SASL token (AuthFailed with a null token), then
    the connection closes; with allowSaslFailedClients it answers OK and
    stays."""
    require_apache()
    from puresasl.client import SASLClient

    def exchange(t, password):
        with contextlib.closing(RawClient("127.0.0.1", t.port, timeout=5)) as c:
            c.connect()
            client = SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5",
                                username="bob", password=password)
            from zkpy.protocol.records import SASLRequest

            hdr, challenge = c.request(Op.SASL, SASLRequest(b""))
            steps = [(hdr.err, challenge is not None)]
            hdr, token = c.request(Op.SASL, SASLRequest(client.process(challenge)))
            steps.append((hdr.err, token is not None))
            steps.append(c.is_closed_by_server(2))
            return steps

    for allow in ("false", "true"):
        with pair(sasl_keys(tmp_path, allowSaslFailedClients=allow), secure=False) as targets:
            transcript = both(targets, lambda t: [exchange(t, "bobsecret"),
                                                  exchange(t, "wrong")])
            assert transcript[0] == [(0, True), (0, True), False]
            assert transcript[1][1][0] == (0 if allow == "true" else Err.AUTH_FAILED)


# --- enforce.auth ------------------------------------------------------------------------------


def test_enforce_auth(tmp_path):
    require_apache()
    keys = sasl_keys(tmp_path, **{"enforce.auth.enabled": "true",
                                  "enforce.auth.schemes": "sasl,digest"})
    with pair(keys, secure=False) as targets:
        def scenario(t):
            out = []
            # No id of the schemes: the first request (a ping too) is refused.
            for op, record in ((Op.EXISTS, PathWatchRequest("/", False)), (Op.PING, None)):
                with contextlib.closing(RawClient("127.0.0.1", t.port, timeout=5)) as c:
                    c.connect()
                    hdr, _ = c.request(op, record)
                    out.append((hdr.err, hdr.zxid, c.is_closed_by_server(2)))
            # addauth digest first: allowed.
            with contextlib.closing(RawClient("127.0.0.1", t.port, timeout=5)) as c:
                c.connect()
                hdr, _ = c.request(Op.AUTH, AuthPacket(0, "digest", b"u:p"))
                out.append(hdr.err)
                hdr, _ = c.request(Op.EXISTS, PathWatchRequest("/", False))
                out.append(hdr.err)
            bob = sasl_client(t.port, "bob", "bobsecret")
            try:
                out.append(outcome(lambda: bob.exists("/") is not None))
            finally:
                bob.stop()
            return out

        transcript = both(targets, scenario)
        assert transcript[0] == (Err.SESSION_CLOSED_REQUIRE_SASL_AUTH, 0, True)


def test_session_require_client_sasl_auth_and_failed_sasl(tmp_path):
    """sessionRequireClientSASLAuth: a failed SASL answers
    SESSIONCLOSEDREQUIRESASLAUTH (even with allowSaslFailedClients)."""
    require_apache()
    keys = sasl_keys(tmp_path, sessionRequireClientSASLAuth="true",
                     allowSaslFailedClients="true")
    with pair(keys, secure=False) as targets:
        def scenario(t):
            wrong = KazooClient(hosts=f"127.0.0.1:{t.port}", timeout=5, sasl_options={
                "mechanism": "DIGEST-MD5", "username": "bob", "password": "wrong"})
            out = [start_refused(wrong)]
            wrong.stop()
            wrong.close()
            with contextlib.closing(RawClient("127.0.0.1", t.port, timeout=5)) as c:
                c.connect()
                hdr, _ = c.request(Op.EXISTS, PathWatchRequest("/", False))
                out.append((hdr.err, c.is_closed_by_server(2)))
            return out

        both(targets, scenario)
