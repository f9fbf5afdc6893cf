"""Key stores (PEM, JKS, PKCS12 made by keytool) and SSLContexts that really
handshake over loopback."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support import pki
from zkpy.security.keystores import StoreSpec, load_key_store, load_trust_store, store_type_for
from zkpy.security.tls import (
    ContextReloader,
    TlsSettings,
    client_context,
    peer_host_must_be_verified,
    server_context,
)
from zkpy.security.x509 import subject_name
from zkpy.server.config import ConfigError, parse_config


@pytest.fixture(scope="module")
def ca():
    return pki.CA()


@pytest.fixture(scope="module")
def other_ca():
    return pki.CA("an unrelated CA")


def handshake(server_ctx, client_ctx, *, server_hostname=None):
    """Handshake over a loopback TCP connection; returns (server info, client info)
    where info is a dict or the exception the side got."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result = {}

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(20)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as s:
                result["server"] = {
                    "peer": s.getpeercert(binary_form=True),
                    "version": s.version(),
                    "cipher": s.cipher()[0],
                }
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as e:
            result["server"] = e
        finally:
            listener.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
                data = s.recv(2)
                result["client"] = {
                    "peer": s.getpeercert(binary_form=True),
                    "version": s.version(),
                    "data": data,
                }
    except (ssl.SSLError, OSError) as e:
        result["client"] = e
    t.join(30)
    return result["server"], result["client"]


def cfg(*lines):
    return parse_config("\n".join(("dataDir=/tmp/zk",) + lines))


def pem_setup(tmp_path, ca, *, server_pw=None, client_cn="client"):
    server = pki.write_pem_key_store(tmp_path / "server.pem", ca.issue("server"), ca, server_pw)
    trust = pki.write_pem_trust_store(tmp_path / "ca.pem", ca)
    client = pki.write_pem_key_store(tmp_path / "client.pem", ca.issue(client_cn), ca)
    return server, trust, client


def client_settings(trust, key=None, **kw):
    return TlsSettings(
        prefix="ssl.quorum.",
        key_store=StoreSpec(str(key)) if key else None,
        trust_store=StoreSpec(str(trust)),
        **kw,
    )


# --- store types and loading ------------------------------------------------------------------


@pytest.mark.parametrize("type_value,location,expected", [
    (None, "a/b/key.pem", "PEM"), (None, "x.jks", "JKS"), (None, "x.p12", "PKCS12"),
    ("pkcs12", "x.pem", "PKCS12"), ("Jks", "noext", "JKS"), (None, "x.bcfks", "BCFKS"),
])
def test_store_type_for(type_value, location, expected):
    assert store_type_for(type_value, location) == expected


@pytest.mark.parametrize("location", ["store.pfx", "store", "store.PEM"])
def test_undetectable_type_names_the_type_key(location):
    with pytest.raises(ConfigError) as info:
        store_type_for(None, location, type_key="ssl.quorum.keyStore.type")
    assert info.value.key == "ssl.quorum.keyStore.type"


def test_pem_key_store_encrypted_and_plain(tmp_path, ca):
    issued = ca.issue("pem")
    enc = pki.write_pem_key_store(tmp_path / "enc.pem", issued, ca, "pw")
    plain = pki.write_pem_key_store(tmp_path / "plain.pem", issued, ca)
    for path, pw in ((enc, "pw"), (plain, "")):
        m = load_key_store(StoreSpec(str(path), pw))
        assert len(m.chain) == 2 and m.chain[0] == issued.cert
    with pytest.raises(ConfigError) as info:
        load_key_store(StoreSpec(str(enc), "wrong"))
    assert info.value.key == "ssl.keyStore.password"
    with pytest.raises(ConfigError) as info:
        load_key_store(StoreSpec(str(enc), ""))
    assert info.value.key == "ssl.keyStore.password"


def test_password_path(tmp_path, ca):
    path = pki.write_pem_key_store(tmp_path / "k.pem", ca.issue("pp"), ca, "from-file")
    (tmp_path / "pw").write_text("from-file\n")  # one trailing newline is dropped
    spec = StoreSpec(str(path), "ignored", password_path=str(tmp_path / "pw"))
    assert load_key_store(spec).chain
    with pytest.raises(ConfigError) as info:
        load_key_store(StoreSpec(str(path), password_path=str(tmp_path / "missing")))
    assert info.value.key == "ssl.keyStore.passwordPath"


def test_missing_file_names_the_location_key(tmp_path):
    c = cfg("secureClientPort=0", f"ssl.keyStore.location={tmp_path}/nope.jks",
            f"ssl.trustStore.location={tmp_path}/nope.p12")
    with pytest.raises(ConfigError) as info:
        server_context(TlsSettings.from_config(c))
    assert info.value.key in ("ssl.keyStore.location", "ssl.trustStore.location")
    assert "nope" in str(info.value) and "\n" not in str(info.value)


def test_bcfks_is_a_clear_error(tmp_path):
    p = tmp_path / "k.bcfks"
    p.write_bytes(b"x")
    with pytest.raises(ConfigError, match="BouncyCastle") as info:
        load_key_store(StoreSpec(str(p), type_key="ssl.keyStore.type"))
    assert info.value.key == "ssl.keyStore.type"


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_keytool_stores(tmp_path, ca, store_type):
    key_store = pki.keytool_key_store(tmp_path, "server", "CN=keytool server,O=zkpy", ca,
                                      store_type=store_type)
    trust = pki.keytool_trust_store(tmp_path, ca, store_type=store_type)
    m = load_key_store(StoreSpec(str(key_store), pki.STORE_PASSWORD))
    assert subject_name(m.chain[0].public_bytes(serialization.Encoding.DER)) == \
        "CN=keytool server,O=zkpy"
    assert m.chain[-1] == ca.cert
    assert load_trust_store(StoreSpec(str(trust), pki.STORE_PASSWORD)) == (ca.cert,)
    with pytest.raises(ConfigError) as info:
        load_key_store(StoreSpec(str(key_store), "wrong-password",
                                 password_key="ssl.keyStore.password"))
    assert info.value.key == "ssl.keyStore.password"


# --- handshakes -------------------------------------------------------------------------------


def test_pem_mutual_tls_gives_the_client_subject(tmp_path, ca):
    server, trust, client = pem_setup(tmp_path, ca, server_pw="spw")
    c = cfg("secureClientPort=0", f"ssl.keyStore.location={server}", "ssl.keyStore.password=spw",
            f"ssl.trustStore.location={trust}")
    srv, cli = handshake(server_context(TlsSettings.from_config(c)),
                         client_context(client_settings(trust, client)))
    assert cli["data"] == b"ok"
    assert srv["version"] == "TLSv1.2"  # ZooKeeper's default ssl.protocol
    assert subject_name(srv["peer"]) == "CN=client"
    assert subject_name(cli["peer"]) == "CN=server"


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_keytool_mutual_tls(tmp_path, ca, store_type):
    ext = "jks" if store_type == "JKS" else "p12"
    key_store = pki.keytool_key_store(tmp_path, "server", "CN=zk1,OU=servers", ca,
                                      store_type=store_type)
    client_store = pki.keytool_key_store(tmp_path, "client", "CN=app,OU=clients", ca,
                                         store_type=store_type)
    trust = pki.keytool_trust_store(tmp_path, ca, store_type=store_type)
    c = cfg("secureClientPort=0", f"ssl.keyStore.location={key_store}",
            f"ssl.keyStore.password={pki.STORE_PASSWORD}", f"ssl.trustStore.location={trust}",
            f"ssl.trustStore.password={pki.STORE_PASSWORD}")
    assert key_store.suffix == f".{ext}"
    client = TlsSettings(
        prefix="ssl.quorum.",
        key_store=StoreSpec(str(client_store), pki.STORE_PASSWORD),
        trust_store=StoreSpec(str(trust), pki.STORE_PASSWORD),
    )
    srv, cli = handshake(server_context(TlsSettings.from_config(c)), client_context(client))
    assert cli["data"] == b"ok"
    assert subject_name(srv["peer"]) == "CN=app,OU=clients"


def test_client_auth_need_want_none(tmp_path, ca, other_ca):
    server, trust, client = pem_setup(tmp_path, ca)
    base = ("secureClientPort=0", f"ssl.keyStore.location={server}",
            f"ssl.trustStore.location={trust}")
    anonymous = client_context(client_settings(trust))
    # need (the default): a client without a certificate is refused
    srv, cli = handshake(server_context(TlsSettings.from_config(cfg(*base))), anonymous)
    assert isinstance(srv, (ssl.SSLError, OSError))
    # want: let in without a certificate
    srv, cli = handshake(
        server_context(TlsSettings.from_config(cfg(*base, "ssl.clientAuth=want"))), anonymous)
    assert cli["data"] == b"ok" and srv["peer"] is None
    # want, but a certificate from an untrusted CA: refused
    stranger = pki.write_pem_key_store(tmp_path / "stranger.pem", other_ca.issue("x"), other_ca)
    srv, cli = handshake(
        server_context(TlsSettings.from_config(cfg(*base, "ssl.clientAuth=want"))),
        client_context(client_settings(trust, stranger)))
    assert isinstance(srv, ssl.SSLError)
    # none: the client's certificate is not even asked for
    srv, cli = handshake(
        server_context(TlsSettings.from_config(cfg(*base, "ssl.clientAuth=NONE"))),
        client_context(client_settings(trust, client)))
    assert cli["data"] == b"ok" and srv["peer"] is None


def test_client_refuses_a_server_from_an_unknown_ca(tmp_path, ca, other_ca):
    server, trust, _ = pem_setup(tmp_path, ca)
    other_trust = pki.write_pem_trust_store(tmp_path / "other.pem", other_ca)
    c = cfg("secureClientPort=0", f"ssl.keyStore.location={server}",
            f"ssl.trustStore.location={trust}", "ssl.clientAuth=none")
    srv, cli = handshake(server_context(TlsSettings.from_config(c)),
                         client_context(client_settings(other_trust)))
    assert isinstance(cli, ssl.SSLCertVerificationError)


def test_protocols(tmp_path, ca):
    server, trust, client = pem_setup(tmp_path, ca)
    base = ("secureClientPort=0", f"ssl.keyStore.location={server}",
            f"ssl.trustStore.location={trust}", "ssl.clientAuth=none")
    s13 = server_context(TlsSettings.from_config(cfg(*base, "ssl.protocol=TLSv1.3")))
    srv, cli = handshake(s13, client_context(client_settings(trust, protocol="TLS")))
    assert cli["version"] == "TLSv1.3"
    only12 = client_context(client_settings(trust, protocol="TLSv1.2"))
    srv, cli = handshake(s13, only12)
    assert isinstance(cli, (ssl.SSLError, OSError))
    both = server_context(TlsSettings.from_config(cfg(*base, "ssl.enabledProtocols=TLSv1.2, TLSv1.3")))
    srv, cli = handshake(both, client_context(client_settings(trust)))
    assert cli["version"] == "TLSv1.2"  # the client side enables TLSv1.2 only (default)


def test_ciphersuites(tmp_path, ca):
    server, trust, _ = pem_setup(tmp_path, ca)
    base = ("secureClientPort=0", f"ssl.keyStore.location={server}",
            f"ssl.trustStore.location={trust}", "ssl.clientAuth=none")
    c = cfg(*base, "ssl.ciphersuites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    srv, cli = handshake(server_context(TlsSettings.from_config(c)),
                         client_context(client_settings(trust)))
    assert srv["cipher"] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    # only TLS 1.3 suites named: TLS 1.3 even though ssl.protocol says TLSv1.2
    c = cfg(*base, "ssl.enabledProtocols=TLSv1.2,TLSv1.3", "ssl.ciphersuites=TLS_AES_128_GCM_SHA256")
    srv, cli = handshake(server_context(TlsSettings.from_config(c)),
                         client_context(client_settings(trust, protocol="TLSv1.3")))
    assert cli["version"] == "TLSv1.3"
    with pytest.raises(ConfigError) as info:
        cfg(*base, "ssl.ciphersuites=TLS_RSA_WITH_RC4_128_MD5")
    assert info.value.key == "ssl.ciphersuites"


def test_hostname_verification_rules():
    quorum = TlsSettings(prefix="ssl.quorum.")
    client_port = TlsSettings(prefix="ssl.")
    assert peer_host_must_be_verified(quorum, server_side=True)
    assert peer_host_must_be_verified(quorum, server_side=False)
    assert not peer_host_must_be_verified(client_port, server_side=True)
    assert not peer_host_must_be_verified(
        TlsSettings(prefix="ssl.quorum.", hostname_verification=False), server_side=False)


def test_reloader_picks_up_a_new_key_store(tmp_path, ca):
    server, trust, _ = pem_setup(tmp_path, ca)
    c = cfg("sslQuorum=true", "sslQuorumReloadCertFiles=true",
            f"ssl.quorum.keyStore.location={server}", f"ssl.quorum.trustStore.location={trust}",
            "ssl.quorum.clientAuth=none")
    reloader = ContextReloader(TlsSettings.from_config(c, quorum=True), server_context)
    assert reloader.check() is False
    srv, cli = handshake(reloader.context, client_context(client_settings(trust)))
    assert subject_name(cli["peer"]) == "CN=server"
    # a half-written file keeps the old context
    server.write_bytes(b"garbage")
    os.utime(server, ns=(1, 1))
    assert reloader.check() is False and reloader.last_error is not None
    pki.write_pem_key_store(server, ca.issue("renewed"), ca)
    assert reloader.check() is True and reloader.reloads == 1
    srv, cli = handshake(reloader.context, client_context(client_settings(trust)))
    assert subject_name(cli["peer"]) == "CN=renewed"
