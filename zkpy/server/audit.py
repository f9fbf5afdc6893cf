"""Audit log (`audit.enable=true`), as ZooKeeper 3.8's AuditHelper,
ZKAuditProvider, AuditEvent and Slf4jAuditLogger write it.

Every line goes to the Python logger "zkpy.audit" (INFO, or ERROR for a
failure), so that an operator routes it to its own file with the logging
configuration; with audit off nothing is built at all.  A line is tab
separated key=value pairs, in this order, a key left out when it has no value:

    session=0x1000a2f3c0000  user=127.0.0.1,alice  ip=127.0.0.1
    operation=create  znode=/a  znode_type=persistent  acl=...  result=success

What is audited, and when:
  * a client's create / create2 / createContainer (not createTTL), delete,
    setData, setACL, multi and reconfig, once its txn is applied (or its
    error txn comes back), on the server the client is connected to -- never
    a forwarded request on the leader, never the server's own deleteContainer;
  * a multi that succeeds: one line per create, delete and setData in it
    (checks are not audited; a sequential create has no znode_type, as in
    ZooKeeper, which looks the mode up by the unsequenced path); a multi that
    fails: one "multiOperation" failure line, without a znode;
  * a failed request: result=failure, with the path of the request;
  * the ephemerals a closeSession deletes (on every server that applies it):
    operation=ephemeralZNodeDeletionOnSessionCloseOrExpire, the server's
    user, the session, no ip;
  * serverStart (success or failure) and serverStop (result=invoked: logged
    when the stop is asked for).

user is the comma separated users of the connection's auth ids, as
AuthUtil.getUsers: an ip id gives the address, a digest id its user name (the
part before ':'); super gives nothing.  The server's own user is the login
name of the process (ZooKeeper: its Kerberos login, or user.name)."""

import getpass
import logging

from ..protocol.opcodes import Op

log = logging.getLogger("zkpy.audit")

OP_START = "serverStart"
OP_STOP = "serverStop"
OP_CREATE = "create"
OP_DELETE = "delete"
OP_SETDATA = "setData"
OP_SETACL = "setAcl"
OP_MULTI_OP = "multiOperation"
OP_RECONFIG = "reconfig"
OP_DEL_EZNODE_EXP = "ephemeralZNodeDeletionOnSessionCloseOrExpire"

SUCCESS, FAILURE, INVOKED = "success", "failure", "invoked"

# CreateMode.fromFlag(flags).toString().toLowerCase()
CREATE_MODES = {
    0: "persistent",
    1: "ephemeral",
    2: "persistent_sequential",
    3: "ephemeral_sequential",
    4: "container",
    5: "persistent_with_ttl",
    6: "persistent_sequential_with_ttl",
}
_CREATES = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER})
_DELETES = frozenset({Op.DELETE, Op.DELETE_CONTAINER})
_CREATED_IN_MULTI = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER})
_EVENT_DELETED = 2   # EventType.NodeDeleted


def format_event(result, session=None, user=None, ip=None, operation=None, znode=None,
                 znode_type=None, acl=None) -> str:
    """AuditEvent.toString(): the fields with a value, then result."""
    parts = []
    for key, value in (("session", session), ("user", user), ("ip", ip),
                       ("operation", operation), ("znode", znode),
                       ("znode_type", znode_type), ("acl", acl)):
        if value is not None:
            parts.append(f"{key}={value}")
    parts.append(f"result={result}")
    return "\t".join(parts)


def session_hex(session_id: int) -> str:
    return f"0x{session_id & 0xFFFFFFFFFFFFFFFF:x}"


def users(auth_ids):
    """AuthUtil.getUsers: None when no id names a user."""
    names = []
    for scheme, ident in auth_ids:
        if scheme == "digest":
            name = ident.split(":")[0]     # DigestAuthenticationProvider.getUserName
        elif scheme == "ip":
            name = ident
        else:
            continue   # no provider ("super"): no user
        if name.strip():
            names.append(name)
    return ",".join(names) if names else None


def acl_text(acl) -> str:
    """ZKUtil.aclToString: scheme:id:perms for each entry, with no separator
    between entries (as ZooKeeper prints them)."""
    out = []
    for perms, scheme, ident in acl:
        p = "".join(c for bit, c in ((4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a"))
                    if perms & bit)
        out.append(f"{scheme}:{ident}:{p}")
    return "".join(out)


class AuditLog:
    """The audit calls of one server.  `applied` is the one call the request
    path makes, after a txn is applied and before its reply is written."""

    def __init__(self, server_user: str | None = None, logger=None):
        if server_user is None:
            try:
                server_user = getpass.getuser()
            except Exception:   # no login name (a container without passwd entry)
                server_user = "<NA>"
        self.server_user = server_user
        self.logger = logger or log

    def emit(self, result, **fields) -> None:
        line = format_event(result, **fields)
        if result == FAILURE:
            self.logger.error("%s", line)
        else:
            self.logger.info("%s", line)

    # --- the server ---------------------------------------------------------------

    def server_start(self) -> None:
        self.emit(SUCCESS, user=self.server_user, operation=OP_START)

    def server_start_failed(self) -> None:
        self.emit(FAILURE, user=self.server_user, operation=OP_START)

    def server_stop(self) -> None:
        self.emit(INVOKED, user=self.server_user, operation=OP_STOP)

    # --- txns ------------------------------------------------------------------------

    def applied(self, txn, result, events, request) -> None:
        """A txn was applied: audit the ephemerals a closeSession deleted (on
        every server) and the client request it answers (request: the
        Request this server will reply to, None if it replies to none)."""
        if txn.type == Op.CLOSE_SESSION:
            if events:
                self._ephemerals_deleted(txn.session_id, events)
            return
        if request is not None:
            try:
                self.request_done(request, txn, result)
            except Exception:   # as AuditHelper: never fail the request
                log.exception("Failed to audit log request %s", request.op)

    def _ephemerals_deleted(self, session_id, events) -> None:
        session = session_hex(session_id)
        for event_type, path, _ in events:
            if event_type == _EVENT_DELETED:
                self.emit(SUCCESS, session=session, user=self.server_user,
                          operation=OP_DEL_EZNODE_EXP, znode=path)

    def request_done(self, request, txn, result) -> None:
        """AuditHelper.addAuditLog(request, rc, failedTxn)."""
        op = request.op
        record = request.record
        failed = txn.type == Op.ERROR
        acl = None
        mode = None
        if op in _CREATES:
            operation = OP_CREATE
            mode = CREATE_MODES.get(getattr(record, "flags", None))
            if mode is None:
                return   # CreateMode.fromFlag throws: ZooKeeper logs no line
            path = record.path if failed else result[0]
        elif op in _DELETES:
            operation = OP_DELETE
            path = record.path if failed else txn.body[0]
        elif op == Op.SET_DATA:
            operation = OP_SETDATA
            path = record.path if failed else txn.body[0]
        elif op == Op.SET_ACL:
            operation = OP_SETACL
            acl = acl_text(record.acl or ())
            path = record.path if failed else txn.body[0]
        elif op == Op.MULTI:
            if not failed:
                self._multi(request, txn, result)
                return
            operation = OP_MULTI_OP
            path = None
        elif op == Op.RECONFIG:
            operation = OP_RECONFIG
            path = None if failed else "/zookeeper/config"
        else:
            return
        self._log_request(request, FAILURE if failed else SUCCESS, operation, path, mode, acl)

    def _multi(self, request, txn, results) -> None:
        """logMultiOperation: each create, delete and setData that succeeded,
        or one failure line when the multi failed."""
        modes = {}
        for op, req in getattr(request.record, "ops", ()):
            if op in _CREATES and getattr(req, "path", None) is not None:
                modes[req.path] = CREATE_MODES.get(req.flags)
        lines = []
        failed = False
        for (op_type, body), res in zip(txn.body[0], results):
            if op_type in _CREATED_IN_MULTI:
                lines.append((OP_CREATE, res[0], modes.get(res[0])))
            elif op_type in _DELETES:
                lines.append((OP_DELETE, body[0], None))
            elif op_type == Op.SET_DATA:
                lines.append((OP_SETDATA, body[0], None))
            elif op_type == Op.ERROR:
                failed = True
                break
        if failed:
            self._log_request(request, FAILURE, OP_MULTI_OP, None, None, None)
            return
        for operation, path, mode in lines:
            self._log_request(request, SUCCESS, operation, path, mode, None)

    def _log_request(self, request, result, operation, path, mode, acl) -> None:
        conn = request.conn
        auth_ids = conn.auth_ids
        ip = next((ident for scheme, ident in auth_ids if scheme == "ip"), None)
        if ip is None:
            peer = getattr(conn, "peer", None)
            ip = peer[0] if peer else ""
        self.emit(result, session=session_hex(conn.session_id), user=users(auth_ids), ip=ip,
                  operation=operation, znode=path, znode_type=mode, acl=acl)
