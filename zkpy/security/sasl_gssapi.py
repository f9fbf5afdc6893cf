"""GSSAPI (Kerberos V5, RFC 4752): the server side as the JDK's GssKrb5Server runs
it, and the client side a quorum learner needs (GssapiClient, at the end).

ZooKeeper picks GSSAPI when the JAAS ``Server`` section logs in with
Krb5LoginModule (its Subject then has a Kerberos principal, e.g.
``zookeeper/zk1.example.org@EXAMPLE.ORG``); the acceptor is that principal,
read from the section's keyTab.  The exchange:

1. accept the client's context tokens, answering each output token (the
   AP-REP for mutual authentication) until the context is established;
2. the client sends an empty token; the server answers its security-layer
   offer, wrapped: one byte of qop bits (1 = none, the only one offered) and
   a 3-byte maximum buffer size (65536);
3. the client answers, wrapped, its choice, its buffer size and optionally
   an authorization id; the server checks the choice and completes with no
   token (the reply's buffer is null).

The authentication id is the client's principal (``alice@EXAMPLE.ORG``);
the recorded id comes from ``authorize(principal, authzid)``, for client
SASL kerberos_name.sasl_authorized_id with kerberos.removeHostFromPrincipal /
removeRealmFromPrincipal.  Failures raise SaslAuthFailed.

Uses the ``gssapi`` package (MIT Kerberos underneath); the keytab is passed
through the credential store, so no KRB5_KTNAME environment is needed.
"""

from __future__ import annotations

import secrets
from typing import Callable

from .sasl_digest import SaslAuthFailed

__all__ = ["GssapiServer", "GssapiAcceptor", "GssapiClient", "GssapiInitiator", "RECV_MAX_BUF",
           "QOP_AUTH"]

QOP_AUTH = 1
RECV_MAX_BUF = 65536


class GssapiAcceptor:
    """The server's credentials, acquired once at startup (Login in ZooKeeper).

    ``principal`` is the JAAS principal option (service/host@REALM), ``keytab``
    its keyTab.  Raises ValueError if Kerberos cannot give us the key.
    """

    def __init__(self, principal: str, keytab: str | None = None):
        import gssapi

        self.principal = principal
        try:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            store = {"keytab": keytab} if keytab else None
            self.creds = gssapi.Credentials(name=name, usage="accept", store=store)
        except gssapi.exceptions.GSSError as e:
            raise ValueError(f"cannot get the key of {principal}: {e}") from None


class GssapiServer:
    mechanism = "GSSAPI"

    def __init__(self, acceptor: GssapiAcceptor,
                 authorize: Callable[[str, str], str] | None = None):
        import gssapi

        self._gssapi = gssapi
        self._ctx = gssapi.SecurityContext(creds=acceptor.creds, usage="accept")
        self._authorize = authorize or (lambda authn, authz: authz)
        self._stage = 0
        self.complete = False
        self.authentication_id: str | None = None
        self.authorization_id: str | None = None

    def step(self, token: bytes) -> tuple[bytes | None, bool]:
        GSSError = self._gssapi.exceptions.GSSError
        try:
            if self._stage == 0:
                out = self._ctx.step(token)
                if self._ctx.complete:
                    self._stage = 1
                    self.authentication_id = str(self._ctx.initiator_name)
                return (out or b""), False
            if self._stage == 1:
                if token:
                    raise SaslAuthFailed("GSSAPI: expected an empty token after the context")
                offer = bytes([QOP_AUTH]) + RECV_MAX_BUF.to_bytes(3, "big")
                self._stage = 2
                return self._ctx.wrap(offer, False).message, False
            if self._stage == 2:
                self._stage = 3
                data = self._ctx.unwrap(token).message
                if len(data) < 4:
                    raise SaslAuthFailed("GSSAPI: short security layer answer")
                if not data[0] & QOP_AUTH:
                    raise SaslAuthFailed("GSSAPI: client selected an unsupported protection")
                peer = self.authentication_id or ""
                authzid = data[4:].decode("utf-8", "replace") if len(data) > 4 else peer
                try:
                    self.authorization_id = self._authorize(peer, authzid)
                except ValueError as e:
                    raise SaslAuthFailed(f"GSSAPI: cannot authorize {peer}: {e}") from None
                self.complete = True
                return None, True
        except GSSError as e:
            raise SaslAuthFailed(f"GSSAPI: {e}") from None
        raise SaslAuthFailed("GSSAPI: server at illegal state")


# --- the client side: a quorum learner ---------------------------------------------------------


class GssapiInitiator:
    """A quorum learner's credentials (its QuorumLearner Krb5LoginModule),
    acquired at startup.

    With a keytab, tickets are got from the KDC when first needed and kept in
    a credential cache of this process's memory (the user's own cache is not
    touched); without one (useTicketCache), the default cache must hold them.
    Raises ValueError if Kerberos cannot give us the principal's key.
    """

    def __init__(self, principal: str, keytab: str | None = None):
        import gssapi

        self.principal = principal
        try:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            # A cache of our own: one per login, as each JAAS Login has its Subject.
            store = ({"client_keytab": keytab, "ccache": f"MEMORY:zkpy-{secrets.token_hex(8)}"}
                     if keytab else None)
            self.creds = gssapi.Credentials(name=name, usage="initiate", store=store)
        except gssapi.exceptions.GSSError as e:
            raise ValueError(f"cannot get the credentials of {principal}: {e}") from None

    @property
    def realm(self) -> str:
        return self.principal.rpartition("@")[2] if "@" in self.principal else ""


class GssapiClient:
    """RFC 4752 as the JDK's GssKrb5Client runs it, for ``target`` (the
    server's principal, service/host@REALM): context tokens until the
    context is established (an empty token then), then the answer to the
    server's security-layer offer (no protection, its buffer size, no
    authorization id).  Failures raise SaslAuthFailed.

    The first token asks the KDC for a service ticket (once: it is cached);
    the call blocks for that round trip, which a peer link pays when it is
    made, not per message."""

    mechanism = "GSSAPI"

    def __init__(self, initiator: GssapiInitiator, target: str):
        import gssapi

        self._gssapi = gssapi
        try:
            name = gssapi.Name(target, gssapi.NameType.kerberos_principal)
            self._ctx = gssapi.SecurityContext(
                name=name, creds=initiator.creds, usage="initiate",
                flags=(gssapi.RequirementFlag.mutual_authentication
                       | gssapi.RequirementFlag.integrity
                       | gssapi.RequirementFlag.confidentiality))
        except gssapi.exceptions.GSSError as e:
            raise SaslAuthFailed(f"GSSAPI: {e}") from None
        self._stage = 0
        self.complete = False

    def initial_response(self) -> bytes:
        return self._call(lambda: self._ctx.step(b"") or b"")

    def step(self, challenge: bytes) -> bytes | None:
        if self.complete:
            if challenge:
                raise SaslAuthFailed("GSSAPI: a token after completion")
            return None
        if not self._ctx.complete:
            return self._call(lambda: self._ctx.step(challenge) or b"")
        return self._call(lambda: self._answer_offer(challenge))

    def _answer_offer(self, challenge: bytes) -> bytes:
        offer = self._ctx.unwrap(challenge).message
        if len(offer) != 4:
            raise SaslAuthFailed("GSSAPI: the server's security layer offer is not 4 bytes")
        if not offer[0] & QOP_AUTH:
            raise SaslAuthFailed("GSSAPI: the server offers no authentication-only layer")
        self.complete = True
        return self._ctx.wrap(bytes([QOP_AUTH]) + offer[1:4], False).message

    def _call(self, fn) -> bytes:
        try:
            return fn()
        except self._gssapi.exceptions.GSSError as e:
            raise SaslAuthFailed(f"GSSAPI: {e}") from None
