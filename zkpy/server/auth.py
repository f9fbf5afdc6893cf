"""Authentication requests (addAuth, opcode 100; SASL, opcode 102): they give
a connection its auth ids, the (scheme, id) pairs that ACL checks look at.
Every connection starts with its ("ip", address) id."""

from ..datatree.acl import digest_id
from ..protocol.errors import Err
from ..protocol.opcodes import Op
from . import replies
from .addresses import java_ip


def initial_auth_ids(peer) -> list:
    return [("ip", java_ip(peer[0]))]


def authenticate(server, conn, req) -> bytes:
    """The reply to an auth or sasl request; a failure also marks the
    connection to be closed once the reply is out (as ZooKeeper does)."""
    if req.op == Op.SASL:
        # No SASL here: refuse as a failed authentication does.
        conn.close_after_flush = True
        return replies.header_only(req.xid, 0, Err.AUTH_FAILED)
    pkt = req.record
    scheme = pkt.scheme
    ids = conn.auth_ids
    if scheme == "digest" and server.config.digest_auth_enabled:
        ident = digest_id((pkt.auth or b"").decode("utf-8", "replace"))
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
    server.stats.auth_failed += 1
    conn.close_after_flush = True
    return replies.header_only(req.xid, 0, Err.AUTH_FAILED)
