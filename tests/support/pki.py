"""Certificates and key stores for the security tests.

A throw-away CA and leaf certificates made with ``cryptography`` (PEM), and
JKS / PKCS12 stores made with the JDK's ``keytool`` the way ZooKeeper users
make them (genkeypair, certreq, signed by the CA, importcert).  ``java_x500_names``
asks a JVM how it prints certificate subjects (X500Principal.getName()).

Tools that scripts/test installs are required in CI: a missing keytool or
java fails there instead of skipping.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

STORE_PASSWORD = "s3cret-pw"


def require_tool(name: str) -> str:
    import pytest

    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed (scripts/test installs it)", pytrace=False)
    pytest.skip(f"{name} is not installed")


def name(*pairs: tuple) -> x509.Name:
    """name((NameOID.COMMON_NAME, "x"), ...) in DER order (least specific first)."""
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        enc = (serialization.BestAvailableEncryption(password.encode())
               if password else serialization.NoEncryption())
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class CA:
    def __init__(self, cn: str = "zkpy test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = name((NameOID.COMMON_NAME, cn))
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, subject: x509.Name, public_key, *, dns=(), ips=()) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
        )
        alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, subject: x509.Name | str, *, dns=("localhost",), ips=("127.0.0.1",),
              rsa_key: bool = False) -> Issued:
        if isinstance(subject, str):
            subject = name((NameOID.COMMON_NAME, subject))
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
               else ec.generate_private_key(ec.SECP256R1()))
        return Issued(self.sign(subject, key.public_key(), dns=dns, ips=ips), key)


def write_pem_key_store(path: Path, issued: Issued, ca: CA, password: str | None = None) -> Path:
    """One file with the (optionally encrypted) PKCS#8 key and the chain, as
    ZooKeeper's PEM key store expects."""
    path.write_bytes(issued.key_pem(password) + issued.cert_pem() + ca.cert_pem())
    return path


def write_pem_trust_store(path: Path, *cas: CA) -> Path:
    path.write_bytes(b"".join(c.cert_pem() for c in cas))
    return path


def mutual_tls(directory: Path) -> tuple[dict, ssl.SSLContext]:
    """A CA, a PEM key store and trust store for a server, and a client
    context with a certificate of that CA: (the server's ssl.* keys, the
    client's context)."""
    ca = CA()
    key_store = write_pem_key_store(directory / "server.pem", ca.issue("zk-server"), ca)
    trust_store = write_pem_trust_store(directory / "trust.pem", ca)
    client = ca.issue("client")
    (directory / "client.crt").write_bytes(client.cert_pem())
    (directory / "client.key").write_bytes(client.key_pem())
    (directory / "ca.pem").write_bytes(ca.cert_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(directory / "ca.pem"))
    ctx.load_cert_chain(str(directory / "client.crt"), str(directory / "client.key"))
    return {"ssl.keyStore.location": str(key_store),
            "ssl.trustStore.location": str(trust_store)}, ctx


def _keytool(*args: str) -> None:
    keytool = require_tool("keytool")
    proc = subprocess.run([keytool, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"keytool {' '.join(args[:2])} failed: {proc.stdout}{proc.stderr}")


def keytool_key_store(directory: Path, alias: str, dname: str, ca: CA, *,
                      store_type: str = "JKS", password: str = STORE_PASSWORD,
                      ips=("127.0.0.1",), dns=("localhost",)) -> Path:
    """genkeypair + certreq with keytool, the CA signs, importcert the chain."""
    ext = "jks" if store_type == "JKS" else "p12"
    store = directory / f"{alias}.{ext}"
    _keytool("-genkeypair", "-keystore", str(store), "-storetype", store_type,
             "-storepass", password, "-keypass", password, "-alias", alias,
             "-keyalg", "EC", "-groupname", "secp256r1", "-dname", dname, "-validity", "30")
    csr_path = directory / f"{alias}.csr"
    _keytool("-certreq", "-keystore", str(store), "-storetype", store_type,
             "-storepass", password, "-alias", alias, "-file", str(csr_path))
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    cert = ca.sign(csr.subject, csr.public_key(), dns=dns, ips=ips)
    ca_path = directory / "ca-for-keytool.pem"
    ca_path.write_bytes(ca.cert_pem())
    _keytool("-importcert", "-noprompt", "-keystore", str(store), "-storetype", store_type,
             "-storepass", password, "-alias", "ca", "-file", str(ca_path))
    signed = directory / f"{alias}.crt"
    signed.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.cert_pem())
    _keytool("-importcert", "-noprompt", "-keystore", str(store), "-storetype", store_type,
             "-storepass", password, "-alias", alias, "-file", str(signed))
    return store


def keytool_trust_store(directory: Path, ca: CA, *, store_type: str = "JKS",
                        password: str = STORE_PASSWORD, filename: str | None = None) -> Path:
    ext = "jks" if store_type == "JKS" else "p12"
    store = directory / (filename or f"trust.{ext}")
    ca_path = directory / "ca-trust.pem"
    ca_path.write_bytes(ca.cert_pem())
    _keytool("-importcert", "-noprompt", "-keystore", str(store), "-storetype", store_type,
             "-storepass", password, "-alias", "ca", "-file", str(ca_path))
    return store


_X500_PROGRAM = """
import java.io.*;
import java.security.cert.*;
public class X500Names {
    public static void main(String[] args) throws Exception {
        CertificateFactory f = CertificateFactory.getInstance("X.509");
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (String a : args) {
            try (InputStream in = new FileInputStream(a)) {
                X509Certificate c = (X509Certificate) f.generateCertificate(in);
                out.println(c.getSubjectX500Principal().getName());
            }
        }
    }
}
"""


def java_x500_names(directory: Path, ders: list[bytes]) -> list[str]:
    """X500Principal.getName() of each certificate's subject, from a JVM."""
    java = require_tool("java")
    src = directory / "X500Names.java"
    src.write_text(_X500_PROGRAM)
    files = []
    for i, der in enumerate(ders):
        p = directory / f"c{i}.der"
        p.write_bytes(der)
        files.append(str(p))
    proc = subprocess.run([java, str(src), *files], capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace"))
    return proc.stdout.decode("utf-8").split("\n")[: len(ders)]
