"""Authentication requests (addAuth, opcode 100; SASL, opcode 102): they give
a connection its auth ids, the (scheme, id) pairs that ACL checks look at.
Every connection starts with its ("ip", address) id; a TLS client with a
certificate starts with its x509 ids too (secure_port.py)."""

import logging

from ..datatree.acl import digest_id
from ..protocol.errors import Err
from ..protocol.opcodes import Op
from ..security.sasl import sasl_reply_frame
from . import replies
from .addresses import java_ip

log = logging.getLogger("zkpy.server")


def initial_auth_ids(peer) -> list:
    return [("ip", java_ip(peer[0]))]


def authenticate(server, conn, req) -> bytes:
    """The reply to an auth or sasl request; a failure also marks the
    connection to be closed once the reply is out (as ZooKeeper does)."""
    if req.op == Op.SASL:
        return sasl(server, conn, req)
    pkt = req.record
    scheme = pkt.scheme
    ids = conn.auth_ids
    security = server.security
    if scheme == "digest" and server.config.digest_auth_enabled:
        ident = digest_id((pkt.auth or b"").decode("utf-8", "replace"), security.digest_alg)
        if ("digest", ident) not in ids:
            ids.append(("digest", ident))
        if server.super_digest and ident == server.super_digest and ("super", "") not in ids:
            ids.append(("super", ""))
        return replies.header_only(req.xid, 0, 0)
    if scheme == "ip":
        ident = ("ip", java_ip(conn.peer[0]))
        if ident not in ids:
            ids.append(ident)
        return replies.header_only(req.xid, 0, 0)
    if scheme == "x509" and "x509" in security.schemes and \
            any(s == "x509" for s, _ in ids):
        # X509AuthenticationProvider takes the connection's certificate again;
        # its ids are already there.
        return replies.header_only(req.xid, 0, 0)
    # Not counted in auth_failed_count: ZooKeeper counts failed TLS
    # handshakes and certificates there, not addAuth.
    log.warning("Authentication failed for scheme: %s", scheme)
    conn.close_after_flush = True
    return replies.header_only(req.xid, 0, Err.AUTH_FAILED)


def sasl(server, conn, req) -> bytes:
    """ZooKeeperServer.processSasl: one step of the connection's SASL exchange.
    Without SASL configured the answer is OK with a null token."""
    session = getattr(conn, "sasl_session", None)
    if session is None:
        session = conn.sasl_session = server.security.new_sasl_session()
    reply = session.handle(req.record.token)
    if reply.failure:
        log.warning("Client %s failed to SASL authenticate: %s", conn.peer[0], reply.failure)
    for ident in reply.auth_ids:
        if ident not in conn.auth_ids:
            conn.auth_ids.append(ident)
    if reply.complete:
        log.info("Session 0x%x: adding SASL authorization for authorizationID: %s",
                 conn.session_id, session.authorization_id)
    if reply.close:
        conn.close_after_flush = True
    return sasl_reply_frame(req.xid, reply)
