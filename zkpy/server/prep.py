"""Prep (ZooKeeper's PrepRequestProcessor): validate a write request against the
tree as it will be once every earlier txn is applied, and turn it into a txn
body, or raise KeeperError with the code ZooKeeper gives, checked in
ZooKeeper's order.  Pure: no I/O, no clock (the caller passes the time).

Writes are prepped in arrival order but applied later (after the log), so prep
keeps "outstanding changes": what each path will look like after the txns
prepped but not yet applied.  A multi validates its ops in order against a
private overlay of those changes, which is merged only if every op passes."""

import collections

from ..datatree.acl import check_acl, fixup_acl
from ..datatree.paths import SYSTEM_PATHS, is_valid_path, parent_of, split_path, validate_path
from ..datatree.txn import CONTAINER_OWNER, MAX_TTL, owner_kind, ttl_owner
from ..protocol.errors import Err, KeeperError, MarshallingError
from ..protocol.opcodes import CREATE_OPS, CreateMode, Op, Perms
from ..protocol.records import CreateRequest
from .quota import QuotaChecker

INT_MAX = 2**31 - 1


def _multi_create(op, req):
    """The create op a multi really runs.  ZooKeeper rebuilds each create of
    a multi from its flags (MultiOperationRecord -> Op.create): the opcode
    becomes createTTL for the TTL modes, createContainer for mode 4 and
    create otherwise -- so a create2 answers with the path only, a
    createContainer with flags 0 makes a plain node -- and only createTTL
    keeps its ttl.  A TTL mode on any other create opcode fails the whole
    multi with MarshallingError (ZooKeeper's createTTL code is handed a
    CreateRequest instead of a CreateTTLRequest)."""
    flags = req.flags
    if flags in CreateMode.TTL_MODES:
        if op != Op.CREATE_TTL:
            raise MarshallingError("TTL mode on a create without a ttl in a multi")
        return op, req
    if req.ttl != -1:
        req = CreateRequest(req.path, req.data, req.acl, flags)
    return (Op.CREATE_CONTAINER if flags == CreateMode.CONTAINER else Op.CREATE), req


def _next_version(v: int) -> int:
    return -(2**31) if v == INT_MAX else v + 1


_SAME = object()


class PendingNode:
    """What prep needs to know of a node that a txn in flight changes, as
    of the last prepped txn (its data only for the quota check of a
    setData: ChangeRecord.data).  A node no txn in flight changes is read
    from the tree itself: a ZNode has the same fields (numChildren as
    num_children), and prep never changes it."""
    __slots__ = ("version", "aversion", "creates", "num_children", "owner", "acl", "data")

    def __init__(self, version, aversion, creates, num_children, owner, acl, data=None):
        self.version = version
        self.aversion = aversion
        self.creates = creates
        self.num_children = num_children
        self.owner = owner
        self.acl = acl
        self.data = data


def _changed(rec, version=None, aversion=None, creates=None, num_children=None, acl=None,
             data=_SAME):
    """A PendingNode: rec (a PendingNode or a ZNode) with some fields changed
    (on the hot path: no **kwargs)."""
    return PendingNode(rec.version if version is None else version,
                       rec.aversion if aversion is None else aversion,
                       rec.creates if creates is None else creates,
                       rec.num_children if num_children is None else num_children,
                       rec.owner,
                       rec.acl if acl is None else acl,
                       rec.data if data is _SAME else data)


_MISSING = object()
_CREATE_PERM = Perms.CREATE
_SEQUENTIAL_FLAG = 2    # CreateMode flags 2 and 3 (of the fast path's 0-3)
_EPHEMERAL_FLAG = 1     # 1 and 3
_NO_OVERLAY: dict = {}   # (never written: prep only reads an overlay it is given)


class Prep:
    def __init__(self, tree, extended_types_enabled=False, skip_acl=False, enforce_quota=False,
                 providers=None, quota_exceeded=None):
        # providers: the ACL schemes the server has (ClientSecurity), None
        # for world, digest and ip only.
        self.providers = providers
        self.sasl_any = providers.sasl_any if providers is not None else None
        self.tree = tree
        self.extended_types_enabled = extended_types_enabled
        self.skip_acl = skip_acl
        # enforceQuota: ZooKeeperServer.checkQuota, None when off (no quota work).
        # quota_exceeded: the counter set refusals are counted in.
        self.quota = QuotaChecker(exceeded_per_namespace=quota_exceeded) if enforce_quota else None
        self.outstanding: dict[str, tuple] = {}   # path -> (zxid, PendingNode | None)
        # (zxid, paths it changed) in zxid order: what applied() may forget.
        self.changes = collections.deque()

    # --- the view prep validates against ------------------------------------------

    def _get(self, path, overlay):
        """The node at path as the txns prepped so far leave it: a
        PendingNode, the ZNode in the tree (read only), or None."""
        rec = overlay.get(path, _MISSING)
        if rec is not _MISSING:
            return rec
        o = self.outstanding.get(path)
        if o is not None:
            return o[1]
        return self.tree.nodes.get(path)

    def _check(self, rec, perm, auth_ids):
        if not check_acl(rec.acl, perm, auth_ids, self.skip_acl, self.sasl_any):
            raise KeeperError(Err.NO_AUTH)

    def applied(self, zxid: int) -> None:
        """Forget outstanding changes made by txns up to zxid (now in the tree)."""
        changes = self.changes
        outstanding = self.outstanding
        while changes and changes[0][0] <= zxid:
            for path in changes.popleft()[1]:
                o = outstanding.get(path)
                if o is not None and o[0] <= zxid:  # (not if a later txn changed it again)
                    del outstanding[path]

    def commit_overlay(self, overlay, zxid) -> None:
        self.commit_changes(overlay, zxid)
        self.changes.append((zxid, overlay))

    def commit_change(self, path, rec, zxid) -> None:
        """commit_overlay({path: rec}, zxid), for a txn of the fast path
        that changes one node: applied_change(path, zxid), not applied(),
        forgets it (it is not in `changes`, which saves a tuple and a
        deque entry per setData)."""
        self.outstanding[path] = (zxid, rec)

    def commit_changes(self, overlay, zxid) -> None:
        """commit_change for a fast-path txn that changes the nodes of
        overlay (a create: the node and its parent); applied_change of
        each forgets them."""
        outstanding = self.outstanding
        for path, rec in overlay.items():
            outstanding[path] = (zxid, rec)

    def applied_change(self, path, zxid) -> None:
        """The txn zxid of commit_change(path, ...) is in the tree.  (Every
        txn before it was applied first, each forgetting its own changes.)"""
        o = self.outstanding.get(path)
        if o is not None and o[0] == zxid:   # (not if a later txn changed it again)
            del self.outstanding[path]

    def reset(self) -> None:
        """Forget every outstanding change (their txns will never be applied)."""
        self.outstanding.clear()
        self.changes.clear()

    # --- single ops ----------------------------------------------------------------------

    def prep_op(self, op, req, session_id, auth_ids, overlay, check_session=None):
        """Validate one write op; returns its txn body and records the change in
        overlay.  Raises KeeperError.  check_session, if given, is called
        where ZooKeeper checks the session's owner (it raises SessionMoved):
        first for most ops, after the mode and ttl checks for a create (with
        True for an ephemeral one, which needs a global session), never for
        deleteContainer (the server's own request)."""
        if op in CREATE_OPS:
            return self._create(op, req, session_id, auth_ids, overlay, check_session)
        if op == Op.DELETE_CONTAINER:
            return self._delete_container(req.path, overlay)
        if check_session is not None:
            check_session()
        if op == Op.DELETE:
            return self._delete(req.path, req.version, auth_ids, overlay)
        if op == Op.SET_DATA:
            return self._set_data(req, auth_ids, overlay)
        if op == Op.SET_ACL:
            return self._set_acl(req, auth_ids, overlay)
        if op == Op.CHECK:
            return self._check_version(req, auth_ids, overlay)
        raise KeeperError(Err.UNIMPLEMENTED)

    def _create(self, op, req, session_id, auth_ids, overlay, check_session=None):
        flags = req.flags
        if not 0 <= flags <= 6:
            raise KeeperError(Err.BAD_ARGUMENTS, "invalid create flags")
        ttl = req.ttl
        if flags in CreateMode.TTL_MODES:
            if not self.extended_types_enabled:
                raise KeeperError(Err.UNIMPLEMENTED)
            if not 0 < ttl <= MAX_TTL:
                raise KeeperError(Err.BAD_ARGUMENTS, "invalid ttl")
        elif ttl >= 0:
            raise KeeperError(Err.BAD_ARGUMENTS, "ttl given for a non-TTL mode")
        if check_session is not None:
            check_session(flags in CreateMode.EPHEMERAL_MODES)
        path = req.path
        if path is None or "/" not in path or "\0" in path:
            raise KeeperError(Err.BAD_ARGUMENTS)
        acl = fixup_acl(req.acl, auth_ids, self.providers)
        parent_path = parent_of(path)
        parent = self._get(parent_path, overlay)
        if parent is None:
            raise KeeperError(Err.NO_NODE)
        self._check(parent, Perms.CREATE, auth_ids)
        creates = parent.creates
        if flags in CreateMode.SEQUENTIAL_MODES:
            path = path + ("%010d" % creates if creates >= 0 else "%011d" % creates)
        validate_path(path)
        if self._get(path, overlay) is not None:
            raise KeeperError(Err.NODE_EXISTS)
        if parent.owner and owner_kind(parent.owner) == "ephemeral":
            raise KeeperError(Err.NO_CHILDREN_FOR_EPHEMERALS)
        if self.quota is not None:
            self.quota.check(self.tree, path, None, req.data, True)
        if op == Op.CREATE_CONTAINER:
            # ZooKeeper's data tree goes by the opcode, not the flags: every
            # createContainer makes a container (even with ephemeral flags),
            # and a create/create2 with flags 4 makes a plain persistent node.
            owner = CONTAINER_OWNER
        elif flags in CreateMode.TTL_MODES:
            owner = ttl_owner(ttl)
        elif flags in CreateMode.EPHEMERAL_MODES:
            owner = session_id
        else:
            owner = 0
        new_creates = creates + 1 if creates != INT_MAX else -(2**31)
        overlay[parent_path] = _changed(parent, creates=new_creates,
                                        num_children=parent.num_children + 1)
        overlay[path] = PendingNode(0, 0, 0, 0, owner, acl, req.data)
        return (path, req.data, acl, owner, new_creates)

    def _delete(self, path, version, auth_ids, overlay):
        if path is None or "/" not in path or "\0" in path or path in SYSTEM_PATHS:
            raise KeeperError(Err.BAD_ARGUMENTS)
        parent_path, _ = split_path(path)
        parent = self._get(parent_path, overlay)
        if parent is None:
            raise KeeperError(Err.NO_NODE)
        self._check(parent, Perms.DELETE, auth_ids)
        node = self._get(path, overlay)
        if node is None:
            raise KeeperError(Err.NO_NODE)
        if version != -1 and version != node.version:
            raise KeeperError(Err.BAD_VERSION)
        if node.num_children > 0:
            raise KeeperError(Err.NOT_EMPTY)
        overlay[parent_path] = _changed(parent, num_children=parent.num_children - 1)
        overlay[path] = None
        return (path,)

    def _delete_container(self, path, overlay):
        if path is None or "/" not in path or "\0" in path or path in SYSTEM_PATHS:
            raise KeeperError(Err.BAD_ARGUMENTS)
        node = self._get(path, overlay)
        if node is None:
            raise KeeperError(Err.NO_NODE)
        if owner_kind(node.owner) not in ("container", "ttl"):
            raise KeeperError(Err.BAD_VERSION)
        if node.num_children > 0:
            raise KeeperError(Err.NOT_EMPTY)
        parent_path, _ = split_path(path)
        parent = self._get(parent_path, overlay)
        overlay[parent_path] = _changed(parent, num_children=parent.num_children - 1)
        overlay[path] = None
        return (path,)

    def _set_data(self, req, auth_ids, overlay):
        path = req.path
        body, overlay[path] = self.set_data(path, req.data, req.version, auth_ids, overlay)
        return body

    def create(self, path, data, acls, flags, session_id, auth_ids, overlay):
        """The fast path's prep of a create or create2 with flags 0-3
        (persistent or ephemeral, sequential or not) and no ttl
        (fast_path.py): _create's checks in _create's order, written out
        for these modes -- a dozen calls less per create.  Returns its txn
        body and records the change in overlay; None where _create would
        raise (the general path then answers with its error)."""
        if "/" not in path or "\0" in path:
            return None
        acl = fixup_acl(acls, auth_ids, self.providers)
        i = path.rfind("/")
        parent_path = path[:i] if i > 0 else "/"
        parent = overlay.get(parent_path, _MISSING)
        if parent is _MISSING:
            o = self.outstanding.get(parent_path)
            parent = o[1] if o is not None else self.tree.nodes.get(parent_path)
        if parent is None or not check_acl(parent.acl, _CREATE_PERM, auth_ids, self.skip_acl,
                                           self.sasl_any):
            return None
        creates = parent.creates
        if flags & _SEQUENTIAL_FLAG:   # 2 and 3
            path = path + ("%010d" % creates if creates >= 0 else "%011d" % creates)
        if not is_valid_path(path):
            return None
        node = overlay.get(path, _MISSING)
        if node is _MISSING:
            o = self.outstanding.get(path)
            node = o[1] if o is not None else self.tree.nodes.get(path)
        if node is not None:
            return None
        if parent.owner and owner_kind(parent.owner) == "ephemeral":
            return None
        owner = session_id if flags & _EPHEMERAL_FLAG else 0   # 1 and 3
        new_creates = creates + 1 if creates != INT_MAX else -(2**31)
        overlay[parent_path] = PendingNode(parent.version, parent.aversion, new_creates,
                                           parent.num_children + 1, parent.owner, parent.acl,
                                           parent.data)
        overlay[path] = PendingNode(0, 0, 0, 0, owner, acl, data)
        return (path, data, acl, owner, new_creates)

    def set_data(self, path, data, version, auth_ids, overlay=_NO_OVERLAY):
        """Validate a setData; returns its txn body and the node as the txn
        leaves it (a PendingNode), which the caller records.  Raises
        KeeperError.  (Also the fast path's prep: fast_path.py.)"""
        # The most frequent write: _get, _check and _changed written out
        # here, three calls less per setData.
        node = overlay.get(path, _MISSING)
        if node is _MISSING:
            o = self.outstanding.get(path)
            node = o[1] if o is not None else self.tree.nodes.get(path)
        if node is None or not path:
            # Only a path that names no node can be invalid: every node's
            # was validated by its create ("" is the root's alias, no path).
            validate_path(path)
            raise KeeperError(Err.NO_NODE)
        if not check_acl(node.acl, Perms.WRITE, auth_ids, self.skip_acl, self.sasl_any):
            raise KeeperError(Err.NO_AUTH)
        if self.quota is not None:
            self.quota.check(self.tree, path, node.data, data, False)
        current = node.version
        if version != -1 and version != current:
            raise KeeperError(Err.BAD_VERSION)
        version = current + 1 if current != INT_MAX else -(2**31)
        return (path, data, version), PendingNode(version, node.aversion, node.creates,
                                                  node.num_children, node.owner, node.acl, data)

    def _set_acl(self, req, auth_ids, overlay):
        path = req.path
        validate_path(path)
        acl = fixup_acl(req.acl, auth_ids, self.providers)
        node = self._get(path, overlay)
        if node is None:
            raise KeeperError(Err.NO_NODE)
        self._check(node, Perms.ADMIN, auth_ids)
        if req.version != -1 and req.version != node.aversion:
            raise KeeperError(Err.BAD_VERSION)
        aversion = _next_version(node.aversion)
        overlay[path] = _changed(node, aversion=aversion, acl=acl)
        return (path, acl, aversion)

    def _check_version(self, req, auth_ids, overlay):
        validate_path(req.path)
        node = self._get(req.path, overlay)
        if node is None:
            raise KeeperError(Err.NO_NODE)
        self._check(node, Perms.READ, auth_ids)
        if req.version != -1 and req.version != node.version:
            raise KeeperError(Err.BAD_VERSION)
        return (req.path, req.version)

    # --- whole requests ----------------------------------------------------------------

    def prep_multi(self, ops, session_id, auth_ids, check_session=None):
        """A multi's txn body and overlay.  On the first failing op every op
        gets an error result (0 before it, its code, RuntimeInconsistency after)
        and nothing changes: ZooKeeper's all-or-nothing encoding.  Each op
        checks the session as it would alone (see prep_op)."""
        overlay = {}
        bodies = []
        for i, (op, req) in enumerate(ops):
            if op in CREATE_OPS:
                op, req = _multi_create(op, req)  # may fail the whole multi
            try:
                bodies.append((op, self.prep_op(op, req, session_id, auth_ids, overlay,
                                                check_session)))
            except MarshallingError:
                raise   # the whole request fails (an exception in ZooKeeper's prep)
            except KeeperError as e:
                failed = [(Op.ERROR, (0,))] * i + [(Op.ERROR, (e.code,))]
                failed += [(Op.ERROR, (Err.RUNTIME_INCONSISTENCY,))] * (len(ops) - i - 1)
                return (failed,), {}
        return (bodies,), overlay

    def close_session_paths(self, session_id) -> list:
        """Ephemerals the closing session owns, counting prepped creates."""
        paths = set(self.tree.ephemerals.get(session_id, ()))
        for path, (_, rec) in self.outstanding.items():
            if rec is None:
                paths.discard(path)
            elif rec.owner == session_id:
                paths.add(path)
        return sorted(paths)
