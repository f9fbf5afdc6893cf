"""Key and trust material, loaded the way ZooKeeper's X509Util loads it.

* The store type comes from ``ssl[.quorum].keyStore.type`` /
  ``trustStore.type`` (PEM, JKS, PKCS12, BCFKS; any case) or, when that is
  not set, from the file name's extension: ``.pem``, ``.jks``, ``.p12``,
  ``.bcfks`` (KeyStoreFileType.fromPropertyValueOrFileName; ``.pfx`` is not
  one of ZooKeeper's extensions, so it needs an explicit type there and here).
* The password is ``*.password``, or the contents of ``*.passwordPath`` when
  that is set (SecretUtils.readSecret: UTF-8, one trailing line separator
  dropped).  An unset password is the empty string.
* PEM key store: one file with the private key (PKCS#8, encrypted with the
  password when one is given) and the certificate chain; PEM trust store:
  every certificate in the file.  We also accept the PKCS#1 and unencrypted
  forms that Java would reject, since refusing them helps nobody.
* JKS key store: the private key entry, decrypted with the store password
  (ZooKeeper's KeyManagerFactory uses the store password for the key too);
  JKS/PKCS12 trust store: the trusted-certificate entries only, as
  PKIXBuilderParameters(KeyStore) uses them.
* BCFKS needs the BouncyCastle FIPS provider; there is no Python reader, so
  it is a clear ConfigError.

Every failure is a ConfigError naming the key whose value is wrong: the
location for a missing or unreadable file, the password for a wrong
password, the type for an undetectable type.  JKS is read with pyjks; PEM
and PKCS#12 with ``cryptography``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..server.config import ConfigError

__all__ = [
    "EXTENSIONS",
    "KeyMaterial",
    "StoreSpec",
    "store_type_for",
    "read_password",
    "load_key_store",
    "load_trust_store",
]

EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}

_PEM_CERT = re.compile(
    rb"-+BEGIN\s+.*CERTIFICATE[^-]*-+(?:\s|\r|\n)+([a-z0-9+/=\r\n]+)-+END\s+.*CERTIFICATE[^-]*-+",
    re.IGNORECASE,
)
_PEM_KEY = re.compile(
    rb"-+BEGIN\s+.*PRIVATE\s+KEY[^-]*-+(?:\s|\r|\n)+[a-z0-9+/=\r\n:,\-\s]+?-+END\s+.*PRIVATE\s+KEY[^-]*-+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StoreSpec:
    """One store as configured, with the config keys to name in errors."""

    location: str
    password: str = ""
    password_path: str | None = None
    type: str | None = None
    location_key: str = "ssl.keyStore.location"
    password_key: str = "ssl.keyStore.password"
    password_path_key: str = "ssl.keyStore.passwordPath"
    type_key: str = "ssl.keyStore.type"

    @classmethod
    def from_config(cls, config, prefix: str, which: str) -> "StoreSpec | None":
        """``prefix`` is "ssl." or "ssl.quorum."; ``which`` "keyStore" or "trustStore".
        None when the location is not set."""
        field = prefix.replace(".", "_") + which.lower()
        location = getattr(config, f"{field}_location")
        if not location:
            return None
        return cls(
            location=location,
            password=getattr(config, f"{field}_password"),
            password_path=getattr(config, f"{field}_password_path"),
            type=getattr(config, f"{field}_type"),
            location_key=f"{prefix}{which}.location",
            password_key=f"{prefix}{which}.password",
            password_path_key=f"{prefix}{which}.passwordPath",
            type_key=f"{prefix}{which}.type",
        )


@dataclass(frozen=True)
class KeyMaterial:
    """A private key and its certificate chain (leaf first)."""

    private_key: object
    chain: tuple[x509.Certificate, ...]

    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def store_type_for(type_value: str | None, location: str, *, type_key: str = "ssl.keyStore.type") -> str:
    """KeyStoreFileType.fromPropertyValueOrFileName."""
    if type_value:
        upper = type_value.upper()
        if upper not in EXTENSIONS.values():
            raise ConfigError(f"unknown store type {type_value!r}", key=type_key)
        return upper
    dot = location.rfind(".")
    if dot >= 0 and location[dot:] in EXTENSIONS:
        return EXTENSIONS[location[dot:]]
    raise ConfigError(
        f"unable to auto-detect the store type from the file name {location!r}; "
        f"set {type_key} (PEM, JKS or PKCS12)",
        key=type_key,
    )


def read_password(spec: StoreSpec) -> str:
    """The password, read from ``passwordPath`` when that is set."""
    if not spec.password_path:
        return spec.password or ""
    try:
        text = Path(spec.password_path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the password file {spec.password_path} ({_reason(e)})",
            key=spec.password_path_key,
        ) from None
    # Java strips exactly one System.lineSeparator(), "\n" on Linux.
    return text[:-1] if text.endswith("\n") else text


def load_key_store(spec: StoreSpec) -> KeyMaterial:
    kind = store_type_for(spec.type, spec.location, type_key=spec.type_key)
    password = read_password(spec)
    data = _read(spec)
    if kind == "PEM":
        return _pem_key_material(data, password, spec)
    if kind == "JKS":
        return _jks_key_material(data, password, spec)
    if kind == "PKCS12":
        return _pkcs12_key_material(data, password, spec)
    raise _bcfks(spec)


def load_trust_store(spec: StoreSpec) -> tuple[x509.Certificate, ...]:
    kind = store_type_for(spec.type, spec.location, type_key=spec.type_key)
    password = read_password(spec)
    data = _read(spec)
    if kind == "PEM":
        certs = _pem_certificates(data, spec)
    elif kind == "JKS":
        store = _jks_load(data, password, spec)
        certs = tuple(x509.load_der_x509_certificate(e.cert) for e in store.certs.values())
    elif kind == "PKCS12":
        p12 = _pkcs12_load(data, password, spec)
        certs = tuple(c.certificate for c in p12.additional_certs)
        if p12.cert is not None and not certs:
            certs = (p12.cert.certificate,)
    else:
        raise _bcfks(spec)
    if not certs:
        raise ConfigError(
            f"{spec.location} holds no trusted certificates", key=spec.location_key
        )
    return certs


# --- helpers ---------------------------------------------------------------------------------


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _read(spec: StoreSpec) -> bytes:
    try:
        return Path(spec.location).read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {spec.location} ({_reason(e)})", key=spec.location_key
        ) from None


def _bcfks(spec: StoreSpec) -> ConfigError:
    return ConfigError(
        "BCFKS stores need the BouncyCastle FIPS provider, which zkpy does not have; "
        "convert the store to PKCS12 or PEM",
        key=spec.type_key,
    )


def _bad_password(spec: StoreSpec, detail: str) -> ConfigError:
    key = spec.password_path_key if spec.password_path else spec.password_key
    return ConfigError(f"cannot open {spec.location}: {detail}", key=key)


def _pem_certificates(data: bytes, spec: StoreSpec) -> tuple[x509.Certificate, ...]:
    certs = []
    for m in _PEM_CERT.finditer(data):
        body = b"-----BEGIN CERTIFICATE-----\n" + m.group(1).strip() + b"\n-----END CERTIFICATE-----\n"
        try:
            certs.append(x509.load_pem_x509_certificate(body))
        except ValueError as e:
            raise ConfigError(
                f"{spec.location} has a malformed certificate ({e})", key=spec.location_key
            ) from None
    return tuple(certs)


def _pem_key_material(data: bytes, password: str, spec: StoreSpec) -> KeyMaterial:
    m = _PEM_KEY.search(data)
    if m is None:
        raise ConfigError(f"{spec.location} holds no private key", key=spec.location_key)
    block = m.group(0)
    encrypted = b"ENCRYPTED" in block.split(b"\n", 1)[0].upper() or b"Proc-Type" in block
    try:
        key = serialization.load_pem_private_key(
            block, password.encode("utf-8") if (password and encrypted) else None
        )
    except TypeError:  # encrypted, but no password given
        raise _bad_password(spec, "the private key is encrypted and no password is set") from None
    except ValueError:
        if encrypted:
            raise _bad_password(spec, "wrong password for the private key") from None
        raise ConfigError(
            f"{spec.location} has a private key that cannot be read", key=spec.location_key
        ) from None
    chain = _pem_certificates(data, spec)
    if not chain:
        raise ConfigError(
            f"{spec.location} holds no certificates", key=spec.location_key
        )
    return KeyMaterial(key, chain)


def _jks_load(data: bytes, password: str, spec: StoreSpec):
    import jks

    try:
        return jks.KeyStore.loads(data, password)
    except jks.KeystoreSignatureException:
        raise _bad_password(spec, "wrong keystore password") from None
    except (jks.KeystoreException, ValueError, IndexError) as e:
        raise ConfigError(
            f"{spec.location} is not a JKS keystore ({_reason(e)})", key=spec.location_key
        ) from None


def _jks_key_material(data: bytes, password: str, spec: StoreSpec) -> KeyMaterial:
    store = _jks_load(data, password, spec)
    if not store.private_keys:
        raise ConfigError(f"{spec.location} holds no private key entry", key=spec.location_key)
    entry = next(iter(store.private_keys.values()))
    if not entry.is_decrypted():
        raise _bad_password(spec, "the key password differs from the keystore password")
    key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
    chain = tuple(x509.load_der_x509_certificate(der) for _, der in entry.cert_chain)
    return KeyMaterial(key, chain)


def _pkcs12_load(data: bytes, password: str, spec: StoreSpec):
    try:
        return pkcs12.load_pkcs12(data, password.encode("utf-8") if password else None)
    except ValueError:
        # cryptography says "Invalid password or PKCS12 data"; tell them apart
        # by trying the other obvious password.
        raise _bad_password(spec, "wrong password, or not a PKCS12 file") from None


def _pkcs12_key_material(data: bytes, password: str, spec: StoreSpec) -> KeyMaterial:
    p12 = _pkcs12_load(data, password, spec)
    if p12.key is None or p12.cert is None:
        raise ConfigError(f"{spec.location} holds no private key entry", key=spec.location_key)
    chain = (p12.cert.certificate,) + tuple(c.certificate for c in p12.additional_certs)
    return KeyMaterial(p12.key, chain)


def mtimes(*specs: StoreSpec | None) -> tuple:
    """File identities for change detection: (mtime_ns, size, inode) per file."""
    out = []
    for spec in specs:
        if spec is None:
            out.append(None)
            continue
        paths = [spec.location] + ([spec.password_path] if spec.password_path else [])
        for path in paths:
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
    return tuple(out)
