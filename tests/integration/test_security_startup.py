"""Bad security files stop zkpy-server at startup: one line naming the key,
exit status 2 (zkpy's ConfigError).  ZooKeeper reads most of these files
lazily (on the first handshake or SASL exchange), so there is nothing of its
to compare: these pin zkpy's promise."""

import subprocess
import sys

import pytest

from tests.support import pki
from zkpy.testing import free_port

pytestmark = pytest.mark.zkpy_only


def _start(tmp_path, keys: dict):
    cfg = tmp_path / "zoo.cfg"
    lines = {"dataDir": tmp_path / "data", "clientPort": free_port(),
             "clientPortAddress": "127.0.0.1", **keys}
    cfg.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return subprocess.run([sys.executable, "-m", "zkpy.server.main", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def _stores(tmp_path):
    ca = pki.CA()
    ks = pki.keytool_key_store(tmp_path, "server", "CN=zk", ca, store_type="PKCS12")
    ts = pki.keytool_trust_store(tmp_path, ca, store_type="PKCS12")
    return ks, ts


@pytest.mark.parametrize("case", ["wrong password", "missing key store", "missing JAAS file",
                                  "JAAS syntax error", "missing keytab"])
def test_bad_security_file_stops_the_server(tmp_path, case):
    keys = {}
    if case in ("wrong password", "missing key store"):
        ks, ts = _stores(tmp_path)
        keys = {"secureClientPort": free_port(), "ssl.keyStore.location": ks,
                "ssl.keyStore.password": "not-it", "ssl.trustStore.location": ts,
                "ssl.trustStore.password": pki.STORE_PASSWORD}
        if case == "missing key store":
            keys["ssl.keyStore.location"] = tmp_path / "nope.p12"
            keys["ssl.keyStore.password"] = pki.STORE_PASSWORD
        key = "ssl.keyStore."
    else:
        jaas = tmp_path / "jaas.conf"
        if case == "JAAS syntax error":
            jaas.write_text("Server { org.apache.zookeeper.server.auth.DigestLoginModule "
                            "required user_a=\"b\" }")   # no ';' after the options
        elif case == "missing keytab":
            jaas.write_text("Server { com.sun.security.auth.module.Krb5LoginModule required "
                            f"useKeyTab=true keyTab=\"{tmp_path / 'none.keytab'}\" "
                            "principal=\"zookeeper/localhost@EXAMPLE.ORG\"; };")
        keys = {"java.security.auth.login.config": jaas,
                "authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"}
        key = "java.security.auth.login.config"
    proc = _start(tmp_path, keys)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("zkpy-server:")]
    assert len(lines) == 1 and key in lines[0], proc.stderr
