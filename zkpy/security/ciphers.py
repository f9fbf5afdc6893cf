"""Java cipher suite names (ssl.ciphersuites) -> OpenSSL names.

ZooKeeper hands ``ssl.ciphersuites`` to JSSE, which speaks the IANA names
(``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``); OpenSSL, behind Python's ``ssl``,
has its own (``ECDHE-RSA-AES128-GCM-SHA256``).  This table covers the suites
a current JDK enables by default plus the older RSA/DHE ones people still
list.  What is not mappable, and why:

* suites with RC4, 3DES, NULL, anon, export ciphers, Kerberos or ARIA/CAMELLIA
  key exchange: either disabled by the JDK itself or absent from the default
  OpenSSL build, so a config naming them would not work with ZooKeeper either;
* TLS 1.3 suites (``TLS_AES_128_GCM_SHA256`` ...) are accepted, but Python's
  ``ssl`` cannot restrict the TLS 1.3 set: naming any of them enables TLS 1.3
  with OpenSSL's default TLS 1.3 suites (the same three).  Naming none of them
  disables TLS 1.3, as it does in Java (no usable suite).

This module imports nothing, so ``zkpy.server.config`` can use it to validate.
"""

__all__ = [
    "TLS13_SUITES",
    "ZOOKEEPER_DEFAULT_CIPHERS",
    "openssl_cipher_name",
    "openssl_cipher_string",
]

TLS13_SUITES = frozenset({
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
})

# X509Util's defaults on Java 9+ (GCM first, then CBC); used when
# ssl.ciphersuites is not set.
ZOOKEEPER_DEFAULT_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)

_TLS12 = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "DHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": "DHE-RSA-AES128-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": "DHE-RSA-AES256-SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}

# The renegotiation signalling value JSSE lists among suites; OpenSSL always
# sends it, so it maps to nothing.
_SIGNALLING = "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"


def openssl_cipher_name(java_name: str) -> str | None:
    """OpenSSL's name for a Java suite name; '' for TLS 1.3 and signalling
    suites (nothing to pass to set_ciphers); None if not mappable."""
    if java_name in TLS13_SUITES or java_name == _SIGNALLING:
        return ""
    return _TLS12.get(java_name)


def openssl_cipher_string(java_names) -> tuple[str, bool]:
    """(cipher string for SSLContext.set_ciphers, whether TLS 1.3 suites were named).

    The string is empty when only TLS 1.3 suites were named.  Raises
    ValueError for a name that is not mappable.
    """
    names: list[str] = []
    tls13 = False
    for java_name in java_names:
        mapped = openssl_cipher_name(java_name)
        if mapped is None:
            raise ValueError(f"unknown or unsupported cipher suite {java_name!r}")
        if java_name in TLS13_SUITES:
            tls13 = True
        if mapped and mapped not in names:
            names.append(mapped)
    return ":".join(names), tls13
