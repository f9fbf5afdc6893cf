"""The ``x509`` scheme: a TLS client's id, ACL matching, hostname checks.

A client that presents a certificate on the secure port is known by its
subject's distinguished name exactly as Java prints it
(``X500Principal.getName()``, RFC 2253 style) -- the id ACLs are written
against, e.g. ``CN=client,OU=zk,O=Example,C=US``.  Java's rules, which
:func:`x500_name` reproduces byte for byte (tests compare with a JVM):

* RDNs from the most specific (last in the certificate) to the least,
  joined by ","; several attributes in one RDN joined by "+" in encoded order;
* keywords only for CN, C, L, ST, O, OU, STREET, DC and UID; any other
  attribute (emailAddress, serialNumber, title ...) is its dotted OID;
* an OID-named attribute, or a value that is not a Printable, T61, IA5,
  General, BMP or UTF8 string, is "#" and the lowercase hex of its whole DER
  encoding;
* otherwise the value's bytes are decoded as UTF-8 (even for BMP and T61
  strings, as Java does), each of , = + < > # ; " \\ is preceded by a
  backslash, NUL becomes \\00, and leading and trailing spaces (and CRs)
  are preceded by a backslash.

After the handshake (X509AuthenticationProvider.handleAuthentication via
NettyServerCnxnFactory's CertificateVerifier) the connection gets
``("super", id)`` when the id equals X509AuthenticationProvider.superUser,
then ``("x509", id)``; see :func:`handshake_outcome`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from cryptography import x509 as cx509

__all__ = [
    "x500_name",
    "subject_name",
    "x509_auth_ids",
    "x509_matches",
    "is_valid_x509_id",
    "HandshakeOutcome",
    "handshake_outcome",
    "HostnameMismatch",
    "verify_peer_host",
]

_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
    "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}
# Tags Java's AVA treats as strings in RFC 2253 output (isDerString, non-canonical).
_STRING_TAGS = {0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C}  # Printable T61 IA5 General BMP UTF8
_ESCAPEES = ',=+<>#;"\\'
_X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"


# --- a minimal DER walker (only what a Name needs) --------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, start of value, end of value, start of element) at ``pos``."""
    start = pos
    tag = data[pos]
    pos += 1
    length = data[pos]
    pos += 1
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end, start


def _children(data: bytes, start: int, end: int):
    pos = start
    while pos < end:
        tag, vstart, vend, estart = _tlv(data, pos)
        yield tag, vstart, vend, estart
        pos = vend


def _oid(body: bytes) -> str:
    first = body[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for b in body[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _ava_string(oid: str, tag: int, data: bytes, vstart: int, vend: int, estart: int) -> str:
    keyword = _RFC2253_KEYWORDS.get(oid, oid)
    if keyword[0].isdigit() or tag not in _STRING_TAGS:
        return f"{keyword}=#{data[estart:vend].hex()}"
    text = data[vstart:vend].decode("utf-8", "replace")
    out = []
    for c in text:
        if c in _ESCAPEES:
            out.append("\\" + c)
        elif c == "\0":
            out.append("\\00")
        else:
            out.append(c)
    chars = "".join(out)
    lead = 0
    while lead < len(chars) and chars[lead] in " \r":
        lead += 1
    trail = len(chars) - 1
    while trail >= 0 and chars[trail] in " \r":
        trail -= 1
    value = "".join(
        ("\\" + c) if (i < lead or i > trail) else c for i, c in enumerate(chars)
    )
    return f"{keyword}={value}"


def x500_name(name_der: bytes) -> str:
    """X500Principal(name_der).getName(): the RFC 2253 string Java prints."""
    tag, start, end, _ = _tlv(name_der, 0)
    if tag != 0x30:
        raise ValueError("a Name is a SEQUENCE")
    rdns = []
    for rtag, rstart, rend, _ in _children(name_der, start, end):
        avas = []
        for atag, astart, aend, _ in _children(name_der, rstart, rend):
            parts = list(_children(name_der, astart, aend))
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise ValueError("malformed AttributeTypeAndValue")
            oid = _oid(name_der[parts[0][1]:parts[0][2]])
            vtag, vstart, vend, vestart = parts[1]
            avas.append(_ava_string(oid, vtag, name_der, vstart, vend, vestart))
        rdns.append("+".join(avas))
    return ",".join(reversed(rdns))


def subject_name(cert_der: bytes) -> str:
    """The x509 id of a certificate: its subject as X500Principal.getName()."""
    cert = cx509.load_der_x509_certificate(cert_der)
    return x500_name(cert.subject.public_bytes())


# --- auth ids and ACL matching -----------------------------------------------------------------


def x509_auth_ids(cert_der: bytes, super_user: str | None = None) -> list[tuple[str, str]]:
    """The ids a connection gets for its client certificate, in ZooKeeper's order."""
    ident = subject_name(cert_der)
    ids = []
    if super_user is not None and ident == super_user:
        ids.append(("super", ident))
    ids.append(("x509", ident))
    return ids


def x509_matches(ident: str, acl_expr: str, super_user: str | None = None) -> bool:
    """X509AuthenticationProvider.matches: exact, and the super user matches all."""
    if super_user is not None and ident == super_user:
        return True
    return ident == acl_expr


# X500Principal(String) accepts RFC 1779/2253 names with these keywords
# (AVAKeyword's full table) or OIDs; used for setACL/create validity.
_ALL_KEYWORDS = {
    "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
    "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
    "SERIALNUMBER",
}
_OID_TEXT = re.compile(r"(?:OID\.)?[0-9]+(?:\.[0-9]+)+", re.IGNORECASE)


def is_valid_x509_id(ident: str) -> bool:
    """Roughly ``new X500Principal(id)`` succeeding: type=value pairs separated
    by ',' ';' or '+', known keywords or OIDs, escapes and quotes well formed."""
    if not ident.strip():
        return True  # the empty DN
    i, n = 0, len(ident)
    while True:
        eq = ident.find("=", i)
        if eq < 0:
            return False
        keyword = ident[i:eq].strip()
        if keyword.upper() not in _ALL_KEYWORDS and not _OID_TEXT.fullmatch(keyword):
            return False
        j = eq + 1
        while j < n and ident[j] == " ":
            j += 1
        if j < n and ident[j] == '"':
            j += 1
            while j < n and ident[j] != '"':
                j += 2 if ident[j] == "\\" else 1
            if j >= n:
                return False
            j += 1
            while j < n and ident[j] == " ":
                j += 1
            if j < n and ident[j] not in ",;+":
                return False
        elif j < n and ident[j] == "#":
            k = j + 1
            while k < n and ident[k] not in ",;+":
                k += 1
            hexpart = ident[j + 1:k].strip()
            if not hexpart or len(hexpart) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", hexpart):
                return False
            j = k
        else:
            while j < n and ident[j] not in ",;+":
                if ident[j] == "\\":
                    if j + 1 >= n:
                        return False
                    j += 2
                elif ident[j] in '"<>=':
                    return False
                else:
                    j += 1
        if j >= n:
            return True
        i = j + 1


@dataclass
class HandshakeOutcome:
    """What the transport does with a finished TLS handshake on the client port."""

    close: bool = False
    auth_ids: list[tuple[str, str]] = field(default_factory=list)
    auth_failed: bool = False  # counts in the server's auth-failure statistic
    reason: str = ""


def handshake_outcome(config, peer_cert_der: bytes | None) -> HandshakeOutcome:
    """NettyServerCnxnFactory.CertificateVerifier after a successful handshake.

    ``peer_cert_der`` is ``ssl_object.getpeercert(binary_form=True)``.  With
    clientAuth=none no certificate is asked for and no id is given; with want
    a client without a certificate is let in anonymously; a certificate is
    turned into ids by the provider registered for ssl.authProvider (x509 by
    default); without that provider the connection is closed.
    """
    from .providers import registered_schemes

    if config.ssl_client_auth == "none":
        return HandshakeOutcome()
    if peer_cert_der is None:
        if config.ssl_client_auth == "need":
            return HandshakeOutcome(close=True, reason="no client certificate")
        return HandshakeOutcome()
    provider = registered_schemes(config).get(config.ssl_auth_provider)
    if provider != _X509_PROVIDER:
        return HandshakeOutcome(
            close=True, reason=f"no x509 auth provider for scheme {config.ssl_auth_provider!r}"
        )
    try:
        ids = x509_auth_ids(peer_cert_der, config.x509_super_user)
    except ValueError as e:
        return HandshakeOutcome(close=True, auth_failed=True, reason=f"bad certificate: {e}")
    return HandshakeOutcome(auth_ids=ids)


# --- hostname verification (ZKHostnameVerifier + ZKTrustManager) -------------------------------


class HostnameMismatch(Exception):
    """The peer's certificate does not name the address (nor the host name)."""


_IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|[0-1]?\d?\d)(\.(25[0-5]|2[0-4]\d|[0-1]?\d?\d)){3}")


def _host_kind(host: str) -> str:
    if _IPV4.fullmatch(host):
        return "ipv4"
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
        return "ipv6"
    except ValueError:
        return "dns"


def _match_identity(host: str, identity: str) -> bool:
    star = identity.find("*")
    if star < 0:
        return host.lower() == identity.lower()
    prefix, suffix = identity[:star], identity[star + 1:]
    if prefix and not host.startswith(prefix):
        return False
    if suffix and not host.endswith(suffix):
        return False
    return "." not in host[len(prefix):len(host) - len(suffix)]


def _verify_one(host: str, cert: cx509.Certificate) -> None:
    try:
        san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
        dns = [d for d in san.get_values_for_type(cx509.DNSName)]
        ips = [str(a) for a in san.get_values_for_type(cx509.IPAddress)]
    except cx509.ExtensionNotFound:
        dns, ips = [], []
    kind = _host_kind(host)
    if dns or ips:
        if kind == "ipv4":
            ok = host in ips
        elif kind == "ipv6":
            want = ipaddress.IPv6Address(host.split("%", 1)[0])
            ok = any(ipaddress.ip_address(a) == want for a in ips if ":" in a)
        else:
            ok = any(_match_identity(host.lower(), d.lower()) for d in dns)
        if not ok:
            raise HostnameMismatch(
                f"certificate for <{host}> doesn't match any of the subject alternative names: "
                f"{dns + ips}"
            )
        return
    cns = [a.value for a in cert.subject.get_attributes_for_oid(cx509.NameOID.COMMON_NAME)]
    if not cns:
        raise HostnameMismatch(
            f"certificate subject for <{host}> has no common name and no alternative names"
        )
    cn = cns[-1]  # the most specific one, as ZKHostnameVerifier.extractCN picks
    if not _match_identity(host.lower(), str(cn).lower()):
        raise HostnameMismatch(f"certificate for <{host}> doesn't match common name {cn}")


def verify_peer_host(cert_der: bytes, address: str, host_names=()) -> None:
    """ZKTrustManager.performHostVerification: the peer's IP address first,
    then each of ``host_names`` (the caller's reverse lookup of it, if any).
    Raises HostnameMismatch."""
    cert = cx509.load_der_x509_certificate(cert_der)
    try:
        _verify_one(address, cert)
        return
    except HostnameMismatch as first:
        error = first
    for name in host_names:
        try:
            _verify_one(name, cert)
            return
        except HostnameMismatch as e:
            error = e
    raise error
