"""enableEagerACLCheck: an ensemble member refuses a write the ACLs forbid
before it goes to the leader's pipeline (ZooKeeperServer.authWriteRequest, in
ZooKeeper's LeaderRequestProcessor, FollowerRequestProcessor and
ObserverRequestProcessor), so that the refusal costs no proposal and no zxid.

Checked against this member's tree as it is (not the writes still in the
pipeline), for create and create2 (CREATE on the parent, and the new ACL
must be valid), delete (DELETE on the parent), setData (WRITE) and setACL
(ADMIN, and the new ACL must be valid); every other write goes on as usual,
and so does one whose node is missing or whose path is malformed (the leader
refuses those).  A refused write is answered NoAuth or InvalidACL with zxid 0,
as ZooKeeper answers it.  A standalone server has no such check, in
ZooKeeper either."""

from ..datatree.acl import check_acl, fixup_acl
from ..datatree.paths import SYSTEM_PATHS, split_path
from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import Op, Perms
from .replies import header_only

# op -> (permission, checked on the parent?, carries an ACL to validate?)
_CHECKED = {
    Op.CREATE: (Perms.CREATE, True, True),
    Op.CREATE2: (Perms.CREATE, True, True),
    Op.DELETE: (Perms.DELETE, True, False),
    Op.SET_DATA: (Perms.WRITE, False, False),
    Op.SET_ACL: (Perms.ADMIN, False, True),
}


def refused(server, request) -> bool:
    """True (and the request answered) if the ACLs forbid the write."""
    checked = _CHECKED.get(request.op)
    rec = request.record
    if checked is None or rec is None:
        return False
    perm, on_parent, has_acl = checked
    path = rec.path
    if on_parent:
        # parentPath's BadArguments (no '/', a NUL, a system path) lets the
        # write go on, for the leader to refuse.
        if not path or "/" not in path or "\0" in path or path in SYSTEM_PATHS:
            return False
        path = split_path(path)[0]
    prep = server.prep
    auth_ids = request.conn.auth_ids
    err = 0
    try:
        if has_acl:
            fixup_acl(rec.acl, auth_ids, prep.providers)
        node = server.tree.nodes.get(path)
        if node is not None and not check_acl(node.acl, perm, auth_ids, prep.skip_acl,
                                              prep.sasl_any):
            err = Err.NO_AUTH
    except KeeperError as e:
        if e.code != Err.INVALID_ACL:
            return False
        err = e.code
    if not err:
        return False
    request.pending = False
    request.reply = header_only(request.xid, 0, err)
    conn = request.conn
    if conn.queue and conn.queue[0] is request:
        conn.drain()
    return True
