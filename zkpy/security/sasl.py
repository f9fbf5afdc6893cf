"""Client SASL (opcode 102), quorum SASL, and enforce.auth -- sans I/O.

Client SASL, as ZooKeeperServer.processSasl does it:

* :meth:`SaslServerFactory.from_config` is ServerCnxnFactory.configureSaslLogin:
  with no JAAS file there is no SASL (each opcode 102 request is answered
  OK with a null token, the reply ZooKeeper sends when the connection has no
  SaslServer); with a JAAS file, its ``Server`` section (sasl.serverconfig)
  chooses GSSAPI when it has a Krb5LoginModule, DIGEST-MD5 otherwise.  A
  JAAS file without that section also means no SASL (ZooKeeper says nothing;
  we return a warning).  An unreadable file, a syntax error or a keytab that
  gives no key is a ConfigError naming java.security.auth.login.config.
* Each connection gets a :class:`SaslSession` (ZooKeeper creates the
  SaslServer with the connection); each opcode 102 request's token goes to
  :meth:`SaslSession.handle`, whose :class:`SaslReply` says what to send:
  a reply header (xid of the request, zxid 0, ``err``) followed by a
  SetSASLResponse record (one jute buffer, ``token``; None is length -1),
  both also on failure; the ids to add to the connection once the exchange
  completes -- ``("sasl", id)`` and ``("super", "")`` when the id is one of
  the zookeeper.superUser[.*] values; and whether to close the connection
  after the reply is flushed (ZooKeeper's sendCloseSession: the connection
  goes, the session stays until it expires).
* A failed exchange answers AUTHFAILED and closes, or
  SESSIONCLOSEDREQUIRESASLAUTH and closes when SASL is required
  (enforce.auth with the sasl scheme), or -- with allowSaslFailedClients and
  SASL not required -- answers OK with a null token and keeps the connection.
  Any token after completion is a failure (the JDK mechanisms refuse it).

enforce.auth (AuthenticationHelper): :class:`AuthEnforcer` answers whether a
connection's ids satisfy enforce.auth.schemes.  Every request other than
auth (100) and sasl (102) -- pings included -- is checked before it reaches
prep; a connection that fails gets a reply header with
SESSIONCLOSEDREQUIRESASLAUTH (-124) and no body, then is closed.

Quorum SASL (SaslQuorumAuthServer / SaslQuorumAuthLearner): sections
QuorumServer / QuorumLearner; DIGEST-MD5 with protocol "zookeeper-quorum" and
server name "zk-quorum-sasl-md5", or GSSAPI when a section logs in with
Krb5LoginModule; see :class:`QuorumAuthServer` and :class:`QuorumAuthLearner`.  The statuses are ZooKeeper's (0 in progress,
1 success, -1 error); zkpy.zab.quorum_auth carries them on the peer links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..protocol.errors import Err
from ..protocol.jute import Writer
from ..server.config import ConfigError
from .jaas import JAAS_KEY, JaasConfig, load_jaas
from .kerberos_name import default_realm, parse_rules, sasl_authorized_id
from .providers import registered_schemes
from .sasl_digest import (
    CLIENT_PROTOCOL,
    CLIENT_SERVER_NAME,
    QUORUM_PROTOCOL,
    QUORUM_SERVER_NAME,
    DigestMD5Client,
    DigestMD5Server,
    SaslAuthFailed,
)

__all__ = [
    "SaslReply",
    "SaslSession",
    "SaslServerFactory",
    "sasl_reply_frame",
    "sasl_matches",
    "AuthEnforcer",
    "QuorumAuthServer",
    "QuorumAuthLearner",
    "QUORUM_IN_PROGRESS",
    "QUORUM_SUCCESS",
    "QUORUM_ERROR",
    "QUORUM_MAX_RETRIES",
]

QUORUM_IN_PROGRESS, QUORUM_SUCCESS, QUORUM_ERROR = 0, 1, -1
QUORUM_MAX_RETRIES = 5


@dataclass
class SaslReply:
    err: int = 0
    token: bytes | None = None
    close: bool = False
    auth_ids: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False
    failure: str = ""  # why, for the log


def sasl_reply_frame(xid: int, reply: SaslReply) -> bytes:
    """The whole reply frame (length prefix, ReplyHeader, SetSASLResponse)."""
    w = Writer()
    w.int(xid)
    w.long(0)
    w.int(reply.err)
    w.buffer(reply.token)
    body = bytes(w.out)
    return len(body).to_bytes(4, "big") + body


def sasl_matches(ident: str, acl_expr: str, let_any_user_do_x: str | None = None) -> bool:
    """SASLAuthenticationProvider.matches: the id "super", an exact match, or
    any id when the ACL names zookeeper.letAnySaslUserDoX's value."""
    if ident == "super" or ident == acl_expr:
        return True
    return let_any_user_do_x is not None and acl_expr == let_any_user_do_x


class AuthEnforcer:
    """AuthenticationHelper: enforce.auth.* and sessionRequireClientSASLAuth."""

    ERROR = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH

    def __init__(self, enabled: bool, schemes: tuple[str, ...]):
        self.enabled = enabled
        self.schemes = frozenset(schemes)
        self.sasl_required = enabled and "sasl" in self.schemes

    @classmethod
    def from_config(cls, config) -> "AuthEnforcer":
        # config's _check_enforce_auth has already refused unknown schemes.
        if config.session_require_client_sasl_auth:
            return cls(True, ("sasl",))
        return cls(config.enforce_auth_enabled, config.enforce_auth_schemes)

    def allows(self, auth_ids) -> bool:
        """True if requests may proceed: enforcement off, or some id's scheme
        is one of enforce.auth.schemes."""
        if not self.enabled:
            return True
        return any(scheme in self.schemes for scheme, _ in auth_ids)


class SaslSession:
    """One connection's SASL exchange (ZooKeeperSaslServer + processSasl)."""

    def __init__(self, factory: "SaslServerFactory | None"):
        self._factory = factory
        self._mech = factory._new_mechanism() if factory is not None else None
        self.authorization_id: str | None = None

    def handle(self, token: bytes | None) -> SaslReply:
        if self._mech is None:
            return SaslReply()  # no SASL configured: OK, null token
        f = self._factory
        try:
            challenge, complete = self._mech.step(token or b"")
        except SaslAuthFailed as e:
            if f.allow_failed_clients and not f.sasl_required:
                return SaslReply(failure=str(e))
            err = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH if f.sasl_required else Err.AUTH_FAILED
            return SaslReply(err=err, close=True, failure=str(e))
        reply = SaslReply(token=challenge)
        if complete:
            ident = self._mech.authorization_id
            self.authorization_id = ident
            reply.complete = True
            reply.auth_ids.append(("sasl", ident))
            if ident and ident in f.super_users:
                reply.auth_ids.append(("super", ""))
        return reply


class SaslServerFactory:
    """Built once at startup; hands each connection a SaslSession."""

    def __init__(self, new_mechanism: Callable[[], object], *, mechanism: str,
                 super_users=frozenset(), allow_failed_clients: bool = False,
                 sasl_required: bool = False):
        self._new_mechanism = new_mechanism
        self.mechanism = mechanism
        self.super_users = frozenset(super_users)
        self.allow_failed_clients = allow_failed_clients
        self.sasl_required = sasl_required

    def new_session(self) -> SaslSession:
        return SaslSession(self)

    @staticmethod
    def no_sasl_session() -> SaslSession:
        return SaslSession(None)

    @classmethod
    def from_config(cls, config, warnings: list[str] | None = None) -> "SaslServerFactory | None":
        if config.jaas_config is None:
            return None
        jaas = load_jaas(config.jaas_config)
        section = config.sasl_server_login_context
        if not jaas.has(section):
            # Worth a word unless the file is there for quorum SASL alone.
            if warnings is not None and (not config.quorum_auth_enable_sasl
                                         or "sasl" in registered_schemes(config)):
                warnings.append(
                    f"{config.jaas_config} has no '{section}' section: client SASL is off")
            return None
        entries = jaas.section(section)
        authorize = _authorizer(config)
        common = dict(
            super_users=config.sasl_super_users,
            allow_failed_clients=config.allow_sasl_failed_clients,
            sasl_required=AuthEnforcer.from_config(config).sasl_required,
        )
        krb = JaasConfig.kerberos_login(entries)
        if krb is not None:
            acceptor = _acceptor(krb, JAAS_KEY)

            def gssapi_mech():
                from .sasl_gssapi import GssapiServer

                return GssapiServer(acceptor, authorize)

            return cls(gssapi_mech, mechanism="GSSAPI", **common)
        credentials = JaasConfig.digest_credentials(entries)
        super_password = config.sasl_super_password

        def digest_mech():
            return DigestMD5Server(credentials, protocol=CLIENT_PROTOCOL,
                                   server_name=CLIENT_SERVER_NAME,
                                   super_password=super_password, authorize=authorize)

        return cls(digest_mech, mechanism="DIGEST-MD5", **common)


def _authorizer(config) -> Callable[[str, str], str]:
    """SaslServerCallbackHandler.handleAuthorizeCallback with this config."""
    rules = parse_rules(config.kerberos_auth_to_local)
    realm = default_realm()

    def authorize(authentication_id: str, authorization_id: str) -> str:
        return sasl_authorized_id(
            authentication_id, authorization_id,
            remove_host=config.kerberos_remove_host_from_principal,
            remove_realm=config.kerberos_remove_realm_from_principal,
            rules=rules, realm_default=realm,
        )

    return authorize


def _need_gssapi(key: str) -> None:
    """Kerberos needs the Python GSSAPI binding, an optional dependency."""
    try:
        import gssapi  # noqa: F401
    except ImportError:
        raise ConfigError("Kerberos needs the gssapi package (pip install gssapi)",
                          key=key) from None


def _acceptor(krb, key: str):
    _need_gssapi(key)
    from .sasl_gssapi import GssapiAcceptor

    if not krb.principal:
        raise ConfigError("Krb5LoginModule has no principal option", key=key)
    if "/" not in krb.principal.split("@", 1)[0]:
        # SecurityUtils.createSaslServer splits service/host; ZooKeeper logs an
        # error and gives connections no SaslServer.  Refuse it at startup.
        raise ConfigError(
            f"the server principal {krb.principal!r} must be service/host@REALM", key=key)
    try:
        return GssapiAcceptor(krb.principal, krb.keytab)
    except ValueError as e:
        raise ConfigError(f"Kerberos login failed: {e}", key=key) from None


# --- quorum SASL -------------------------------------------------------------------------------


class QuorumAuthServer:
    """The server side of quorum SASL: checks a learner that authenticates
    against the QuorumServer section (quorum.auth.server.saslLoginContext):
    DIGEST-MD5 with its user_NAME entries, or GSSAPI when the section logs
    in with Krb5LoginModule (the acceptor is its principal, service/host@REALM,
    from its keytab)."""

    def __init__(self, credentials: dict[str, str], require: bool,
                 authz_hosts: frozenset[str] = frozenset(), acceptor=None):
        self._credentials = credentials
        self.require = require
        self._authz_hosts = frozenset(authz_hosts)
        self._acceptor = acceptor
        self.mechanism = "GSSAPI" if acceptor is not None else "DIGEST-MD5"

    @classmethod
    def from_config(cls, config) -> "QuorumAuthServer | None":
        """None unless quorum.auth.enableSasl.  The QuorumServer section must
        exist (SaslQuorumAuthServer refuses to start without it)."""
        if not config.quorum_auth_enable_sasl:
            return None
        key = "quorum.auth.server.saslLoginContext"
        entries = _quorum_section(config, config.quorum_auth_server_login_context, key)
        # QuorumPeer.initialize: the hosts of the ensemble's server.N lines.
        hosts = frozenset(s.host for s in config.servers.values())
        require = config.quorum_auth_server_require_sasl
        krb = JaasConfig.kerberos_login(entries, key=key)
        if krb is not None:
            return cls({}, require, hosts, acceptor=_acceptor(krb, key))
        # SaslQuorumServerCallbackHandler takes user_NAME options from every
        # entry of the section.
        return cls(JaasConfig.digest_credentials(entries), require, hosts)

    def authorize(self, authentication_id: str, authorization_id: str) -> str:
        """SaslQuorumServerCallbackHandler.handleAuthorizeCallback: the learner
        may act only as itself, and a name of the form service/host@REALM
        only from a host of the ensemble."""
        if authentication_id != authorization_id:
            raise ValueError(f"{authentication_id} may not act as {authorization_id}")
        parts = re.split("[/@]", authorization_id)
        if len(parts) == 3 and parts[1] not in self._authz_hosts:
            raise ValueError(f"{parts[1]} is not authorized to connect")
        return authorization_id

    def new_exchange(self) -> "QuorumExchange":
        if self._acceptor is not None:
            from .sasl_gssapi import GssapiServer

            return QuorumExchange(GssapiServer(self._acceptor, self.authorize))
        return QuorumExchange(DigestMD5Server(
            self._credentials, protocol=QUORUM_PROTOCOL, server_name=QUORUM_SERVER_NAME,
            authorize=self.authorize))


def _quorum_section(config, name: str, key: str):
    if config.jaas_config is None:
        raise ConfigError(
            "quorum.auth.enableSasl is true but no JAAS file is configured", key=JAAS_KEY)
    return load_jaas(config.jaas_config).section(name, key=key)


class QuorumExchange:
    """One learner's authentication: feed tokens, send (status, token) back."""

    def __init__(self, mech: DigestMD5Server):
        self._mech = mech
        self._tries = 0
        self.authenticated = False
        self.failure = ""          # why it failed, for the log
        self.authorization_id: str | None = None

    def handle(self, token: bytes) -> tuple[int, bytes]:
        try:
            challenge, complete = self._mech.step(token)
        except SaslAuthFailed as e:
            self.failure = str(e)
            return QUORUM_ERROR, b""
        if complete:
            self.authenticated = True
            self.authorization_id = self._mech.authorization_id
            return QUORUM_SUCCESS, challenge or b""
        self._tries += 1
        if self._tries > QUORUM_MAX_RETRIES:
            self.failure = f"retries={self._tries} exceeded"
            return QUORUM_ERROR, challenge or b""
        return QUORUM_IN_PROGRESS, challenge or b""


class QuorumAuthLearner:
    """The learner side, from the QuorumLearner section: DIGEST-MD5 with its
    username and password, or GSSAPI as its Krb5LoginModule principal
    towards quorum.auth.kerberos.servicePrincipal."""

    def __init__(self, username: str, password: str, require: bool, *,
                 initiator=None, service_principal: str = "zkquorum/localhost",
                 server_realm: str | None = None):
        self._username, self._password = username, password
        self.require = require
        self._initiator = initiator
        self._service_principal = service_principal
        self._server_realm = server_realm
        self.mechanism = "GSSAPI" if initiator is not None else "DIGEST-MD5"

    @classmethod
    def from_config(cls, config) -> "QuorumAuthLearner | None":
        if not config.quorum_auth_enable_sasl:
            return None
        key = "quorum.auth.learner.saslLoginContext"
        entries = _quorum_section(config, config.quorum_auth_learner_login_context, key)
        require = config.quorum_auth_learner_require_sasl
        krb = JaasConfig.kerberos_login(entries, key=key)
        if krb is not None:
            return cls("", "", require, initiator=_initiator(krb, key),
                       service_principal=config.quorum_auth_kerberos_service_principal,
                       server_realm=config.kerberos_server_realm)
        username, password = JaasConfig.digest_login(entries, key=key)
        return cls(username, password, require)

    def target(self, host: str) -> str:
        """The principal to authenticate to on ``host``: SecurityUtils.
        getServerPrincipal (service/_HOST takes the host, lower-cased; a
        principal with a realm is used as written), then, if the result has no
        realm, zookeeper.server.realm's or else the learner's own."""
        principal = self._service_principal
        parts = principal.split("/")
        if len(parts) == 2 and parts[1] == "_HOST":
            principal = f"{parts[0]}/{host.lower()}"
        realm = self._server_realm or (self._initiator.realm if self._initiator else "")
        if "@" not in principal and realm:
            principal += "@" + realm
        return principal

    def new_client(self, host: str = ""):
        """A client for one exchange with the peer on ``host``."""
        if self._initiator is not None:
            from .sasl_gssapi import GssapiClient

            return GssapiClient(self._initiator, self.target(host))
        return DigestMD5Client(self._username, self._password, protocol=QUORUM_PROTOCOL,
                               server_name=QUORUM_SERVER_NAME)


def _initiator(krb, key: str):
    _need_gssapi(key)
    from .sasl_gssapi import GssapiInitiator

    if not krb.principal:
        raise ConfigError("Krb5LoginModule has no principal option", key=key)
    try:
        return GssapiInitiator(krb.principal, krb.keytab if krb.use_keytab else None)
    except ValueError as e:
        raise ConfigError(f"Kerberos login failed: {e}", key=key) from None
