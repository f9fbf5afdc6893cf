"""DIGEST-MD5 (RFC 2831), server and client, as the JDK's mechanism speaks it.

The server side is what ZooKeeper gets from
``Sasl.createSaslServer("DIGEST-MD5", "zookeeper", "zk-sasl-md5", null, handler)``
(for quorum SASL: "zookeeper-quorum" / "zk-quorum-sasl-md5"):

1. the client's first token (empty for every ZooKeeper client) is ignored
   and the server answers
   ``realm="zk-sasl-md5",nonce="...",charset=utf-8,algorithm=md5-sess``
   (no qop directive: qop defaults to auth, the only one offered);
2. the client's digest-response is checked as the JDK checks it -- a known
   realm, our nonce, nc 00000001, qop auth, digest-uri "zookeeper/zk-sasl-md5"
   (case-insensitive), the response hash -- and the server answers
   ``rspauth=<hex>`` and is complete.  Any later token is an error.

The password of a user comes from ``credentials`` (the JAAS section's
``user_NAME`` options); for "super", SASLAuthenticationProvider.superPassword
overrides it when set (ZooKeeper only consults it for a user it knows).
The authorization id is the one ``authorize(authentication_id, authzid)``
returns -- for client SASL, zkpy.security.kerberos_name.sasl_authorized_id,
which ZooKeeper applies to DIGEST user names too.

Every failure raises :class:`SaslAuthFailed`; hashing is hashlib's MD5 over
the RFC's strings.  Usernames, realms and passwords are hashed as ISO-8859-1
when they fit, UTF-8 otherwise, as the JDK does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Callable

__all__ = [
    "SaslAuthFailed",
    "DigestMD5Server",
    "DigestMD5Client",
    "CLIENT_PROTOCOL",
    "CLIENT_SERVER_NAME",
    "QUORUM_PROTOCOL",
    "QUORUM_SERVER_NAME",
]

CLIENT_PROTOCOL, CLIENT_SERVER_NAME = "zookeeper", "zk-sasl-md5"
QUORUM_PROTOCOL, QUORUM_SERVER_NAME = "zookeeper-quorum", "zk-quorum-sasl-md5"
MAX_RESPONSE_LENGTH = 4096  # the JDK server's limit on a client response
_KEYS = ("username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri", "response",
         "maxbuf", "charset", "cipher", "authzid", "auth-param")


class SaslAuthFailed(Exception):
    """The exchange failed (wrong password, malformed token, wrong state)."""


def _h(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def _latin1_or_utf8(text: str) -> bytes:
    # DigestMD5Base.stringToByte_8859_1
    if any(ord(c) > 0xFF for c in text):
        return text.encode("utf-8")
    return text.encode("latin-1")


def _quote(value: bytes) -> bytes:
    out = bytearray()
    for b in value:
        if b in (0x22, 0x5C) or b == 127 or (b <= 31 and b not in (9, 10, 13)):
            out.append(0x5C)
        out.append(b)
    return bytes(out)


def parse_directives(data: bytes, *, repeatable: tuple[str, ...] = ()) -> dict[str, list[bytes]]:
    """RFC 2831 name=value lists as the JDK's parseDirectives reads them.
    Raises SaslAuthFailed on syntax errors and on a repeated directive not in
    ``repeatable``."""
    out: dict[str, list[bytes]] = {}
    lws = b" \t\r\n"
    i, n = 0, len(data)

    def skip(j: int) -> int:
        while j < n and data[j] in lws:
            j += 1
        return j

    def put(key: bytes, value: bytes) -> None:
        name = key.decode("utf-8", "replace").lower()
        if name in out and name not in repeatable:
            raise SaslAuthFailed(f"DIGEST-MD5: peer sent more than one {name} directive")
        out.setdefault(name, []).append(value)

    i = skip(0)
    while i < n:
        if data[i] == 0x2C:  # empty element
            i = skip(i + 1)
            continue
        start = i
        while i < n and data[i] not in b"=" and data[i] not in lws and data[i] != 0x2C:
            i += 1
        key = data[start:i]
        i = skip(i)
        if not key or i >= n or data[i] != 0x3D:
            raise SaslAuthFailed("DIGEST-MD5: malformed directive")
        i = skip(i + 1)
        if i >= n:
            raise SaslAuthFailed(f"DIGEST-MD5: valueless directive {key!r}")
        if data[i] == 0x22:
            i += 1
            value = bytearray()
            while True:
                if i >= n:
                    raise SaslAuthFailed(f"DIGEST-MD5: unmatched quote in {key!r}")
                b = data[i]
                if b == 0x5C:
                    if i + 1 >= n:
                        raise SaslAuthFailed(f"DIGEST-MD5: unmatched quote in {key!r}")
                    value.append(data[i + 1])
                    i += 2
                elif b == 0x22:
                    i += 1
                    break
                else:
                    value.append(b)
                    i += 1
            j = skip(i)
            if j < n and data[j] != 0x2C:
                raise SaslAuthFailed("DIGEST-MD5: expecting ',' after a quoted string")
            i = j
        else:
            start = i
            while i < n and data[i] != 0x2C and data[i] not in lws:
                i += 1
            value = data[start:i]
            i = skip(i)
            if i < n and data[i] != 0x2C:
                raise SaslAuthFailed("DIGEST-MD5: expecting ',' after a value")
        put(key, bytes(value))
        if i < n:
            i = skip(i + 1)
    return out


def _response_value(method: str, digest_uri: str, qop: str, username: str, realm: str,
                    password: str, nonce: bytes, cnonce: bytes, nc: int,
                    authzid: bytes | None) -> bytes:
    a2 = (method + ":" + digest_uri).encode("utf-8")
    start = _h(_latin1_or_utf8(username) + b":" + _latin1_or_utf8(realm) + b":"
               + _latin1_or_utf8(password))
    a1 = start + b":" + nonce + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid
    kd = (_hex(a1) + b":" + nonce + b":" + b"%08x" % nc + b":" + cnonce + b":"
          + qop.encode("utf-8") + b":" + _hex(a2))
    return _hex(kd)


class DigestMD5Server:
    mechanism = "DIGEST-MD5"

    def __init__(
        self,
        credentials: dict[str, str],
        *,
        protocol: str = CLIENT_PROTOCOL,
        server_name: str = CLIENT_SERVER_NAME,
        super_password: str | None = None,
        authorize: Callable[[str, str], str] | None = None,
        nonce: bytes | None = None,
    ):
        self._credentials = credentials
        self._digest_uri = f"{protocol}/{server_name}"
        self._realms = [server_name]  # the JDK uses the server name as the realm
        self._super_password = super_password
        self._authorize = authorize or (lambda authn, authz: authz)
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(32))
        self._step = 1
        self.complete = False
        self.authorization_id: str | None = None
        self.authentication_id: str | None = None

    def step(self, token: bytes) -> tuple[bytes | None, bool]:
        if len(token) > MAX_RESPONSE_LENGTH:
            raise SaslAuthFailed(
                f"DIGEST-MD5: invalid digest response length {len(token)}")
        if self._step == 1:
            self._step = 3  # a non-empty initial response is ignored, as in the JDK
            challenge = b"".join(b'realm="' + _quote(r.encode("utf-8")) + b'",' for r in self._realms)
            challenge += b'nonce="' + _quote(self._nonce) + b'",charset=utf-8,algorithm=md5-sess'
            return challenge, False
        if self._step == 3:
            self._step = 0
            rspauth = self._validate(token)
            self.complete = True
            return rspauth, True
        raise SaslAuthFailed("DIGEST-MD5: server at illegal state")

    def _validate(self, token: bytes) -> bytes:
        d = parse_directives(token)

        def one(name: str) -> bytes | None:
            v = d.get(name)
            return v[0] if v else None

        def text(name: str) -> str | None:
            v = one(name)
            return None if v is None else v.decode("utf-8", "replace")

        charset = text("charset")
        if charset is not None and charset != "utf-8":
            raise SaslAuthFailed(f"DIGEST-MD5: incompatible charset value {charset}")
        username = text("username")
        if username is None:
            raise SaslAuthFailed("DIGEST-MD5: missing username")
        realm = text("realm") or ""
        if realm not in self._realms:
            raise SaslAuthFailed(f"DIGEST-MD5: nonexistent realm {realm!r}")
        nonce = one("nonce")
        if nonce is None or nonce != self._nonce:
            raise SaslAuthFailed("DIGEST-MD5: missing or mismatched nonce")
        cnonce = one("cnonce")
        if cnonce is None:
            raise SaslAuthFailed("DIGEST-MD5: missing cnonce")
        nc = text("nc")
        if nc is not None:
            try:
                nc_value = int(nc, 16)
            except ValueError:
                raise SaslAuthFailed(f"DIGEST-MD5: bad nonce count {nc!r}") from None
            if nc_value != 1:
                raise SaslAuthFailed(f"DIGEST-MD5: nonce count does not match: {nc}")
        qop = text("qop") or "auth"
        if qop != "auth":
            raise SaslAuthFailed(f"DIGEST-MD5: server does not support qop {qop!r}")
        uri = text("digest-uri")
        if uri is None or uri.lower() != self._digest_uri.lower():
            raise SaslAuthFailed(
                f"DIGEST-MD5: mismatched URI {uri!r}; expecting {self._digest_uri!r}")
        response = one("response")
        if response is None:
            raise SaslAuthFailed("DIGEST-MD5: missing response")
        authzid_bytes = one("authzid")
        authzid = authzid_bytes.decode("utf-8", "replace") if authzid_bytes is not None else username
        password = self._password(username)
        if password is None:
            raise SaslAuthFailed(f"DIGEST-MD5: cannot acquire password for {username}")
        expected = _response_value("AUTHENTICATE", uri, qop, username, realm, password,
                                   self._nonce, cnonce, 1, authzid_bytes)
        if not hmac.compare_digest(response, expected):
            raise SaslAuthFailed("DIGEST-MD5: mismatched response (wrong password?)")
        try:
            self.authorization_id = self._authorize(username, authzid)
        except ValueError as e:
            raise SaslAuthFailed(f"DIGEST-MD5: cannot authorize {username}: {e}") from None
        self.authentication_id = username
        return b"rspauth=" + _response_value("", uri, qop, username, realm, password,
                                             self._nonce, cnonce, 1, authzid_bytes)

    def _password(self, username: str) -> str | None:
        if username not in self._credentials:
            return None
        if username == "super" and self._super_password is not None:
            return self._super_password
        return self._credentials[username]


class DigestMD5Client:
    """The client side, as ZooKeeper's learners (and Java clients) run it:
    an empty first token, then the digest-response, then check rspauth."""

    mechanism = "DIGEST-MD5"

    def __init__(self, username: str, password: str, *, protocol: str = CLIENT_PROTOCOL,
                 server_name: str = CLIENT_SERVER_NAME, authzid: str | None = None,
                 cnonce: bytes | None = None):
        self._username, self._password = username, password
        self._digest_uri = f"{protocol}/{server_name}"
        self._authzid = authzid
        self._cnonce = cnonce or base64.b64encode(secrets.token_bytes(32))
        self._expected_rspauth: bytes | None = None
        self._state = 0
        self.complete = False

    def initial_response(self) -> bytes:
        """DIGEST-MD5 has no initial response: ZooKeeper sends an empty token."""
        return b""

    def step(self, challenge: bytes) -> bytes | None:
        if self._state == 0:
            self._state = 1
            return self._respond(challenge)
        if self._state == 1:
            d = parse_directives(challenge)
            got = (d.get("rspauth") or [None])[0]
            if got is None or not hmac.compare_digest(got, self._expected_rspauth or b""):
                raise SaslAuthFailed("DIGEST-MD5: server's rspauth does not match")
            self._state = 2
            self.complete = True
            return None
        raise SaslAuthFailed("DIGEST-MD5: client at illegal state")

    def _respond(self, challenge: bytes) -> bytes:
        d = parse_directives(challenge, repeatable=("realm", "qop"))
        nonce = (d.get("nonce") or [None])[0]
        if nonce is None:
            raise SaslAuthFailed("DIGEST-MD5: challenge without nonce")
        realms = d.get("realm") or [b""]
        realm = realms[0].decode("utf-8", "replace")
        qops = b",".join(d.get("qop") or [b"auth"]).split(b",")
        if b"auth" not in [q.strip() for q in qops]:
            raise SaslAuthFailed("DIGEST-MD5: server does not offer qop auth")
        authz = self._authzid.encode("utf-8") if self._authzid else None
        response = _response_value("AUTHENTICATE", self._digest_uri, "auth", self._username, realm,
                                   self._password, nonce, self._cnonce, 1, authz)
        self._expected_rspauth = _response_value("", self._digest_uri, "auth", self._username,
                                                 realm, self._password, nonce, self._cnonce, 1,
                                                 authz)
        parts = [
            b'charset=utf-8',
            b'username="' + _quote(self._username.encode("utf-8")) + b'"',
            b'realm="' + _quote(realm.encode("utf-8")) + b'"',
            b'nonce="' + _quote(nonce) + b'"',
            b"nc=00000001",
            b'cnonce="' + _quote(self._cnonce) + b'"',
            b'digest-uri="' + _quote(self._digest_uri.encode("utf-8")) + b'"',
            b"maxbuf=65536",
            b"response=" + response,
            b"qop=auth",
        ]
        if authz is not None:
            parts.append(b'authzid="' + _quote(authz) + b'"')
        return b",".join(parts)
