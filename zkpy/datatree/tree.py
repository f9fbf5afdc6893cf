"""The DataTree: znodes by path, ephemerals by session, and apply(txn).

apply() is deterministic: the same txns in the same order give the same tree on
every peer and after every replay.  It trusts the txn (prep has validated it),
and returns the result for the reply and the watch events to fire, as
(event type, path, acl) in the order ZooKeeper fires them.

Two pieces of bookkeeping ride along, both deterministic (every peer, and a
restart from snapshot + log, computes the same):
  * the tree digest (digest.py), kept by adding each changed node's new
    CRC and subtracting its old one, when digest_enabled;
  * quota roots and their zookeeper_stats nodes (quota.py), nothing at all
    while no quota root exists."""

import logging

from ..crc import crc32 as _crc32
from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import CREATE_OPS, EventType, Op
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from . import quota as _quota
from .digest import (DIGEST_LOG_INTERVAL, EXCLUDED_PREFIX, STAT_PACK as _pack, DigestLog,
                     node_digest, to_long, tree_digest)
from .paths import split_path
from .txn import Txn, owner_kind
from .znode import ZNode

_DIGEST_LOG_MASK = DIGEST_LOG_INTERVAL - 1
_QUOTA_ZOOKEEPER = _quota.QUOTA_ZOOKEEPER
_PROC_ZOOKEEPER = _quota.PROC_ZOOKEEPER
_LIMIT_NODE = _quota.LIMIT_NODE
_STAT_NODE = _quota.STAT_NODE

log = logging.getLogger("zkpy.datatree")

_CREATED = EventType.NODE_CREATED
_DELETED = EventType.NODE_DELETED
_CHANGED = EventType.NODE_DATA_CHANGED
_CHILDREN = EventType.NODE_CHILDREN_CHANGED


class ErrorResult:
    """A failed op inside a multi (or an error txn)."""
    __slots__ = ("err",)

    def __init__(self, err):
        self.err = err

    def __repr__(self):
        return f"ErrorResult({self.err})"


class DataTree:
    # ZooKeeper's zookeeper.digest.enabled is one switch for the process; a
    # server sets this before it loads its data (trees made without an
    # explicit digest_enabled follow it).
    digest_default = True

    def __init__(self, digest_enabled=None):
        self.nodes: dict[str, ZNode] = {}
        self.ephemerals: dict[int, set] = {}   # session id -> paths
        self.containers: set = set()
        self.ttls: set = set()
        self.sessions: dict[int, int] = {}     # live session id -> timeout (ms)
        self.last_zxid = 0
        self._acl_cache: dict = {}
        self._last_acl = None       # the last ACL create_node interned, and what it became
        self._last_interned = None
        self._time = 0    # the last txn time a znode was given (create_node)
        root = self._new_node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        self.nodes["/"] = root
        # ZooKeeper also files the root under "" (and counts it in Node count).
        self.nodes[""] = root
        self._add_system_node("/zookeeper", OPEN_ACL_UNSAFE)
        self._add_system_node("/zookeeper/quota", OPEN_ACL_UNSAFE)
        config = self._add_system_node("/zookeeper/config", READ_ACL_UNSAFE)
        config.aversion = -1
        self.quota = _quota.QuotaRoots()
        self._quota_roots = self.quota.roots    # the set itself: a cheap "any?"
        self._quota_stats = {}   # stats path -> (the data written, its parsed form)
        self.digest_enabled = self.digest_default if digest_enabled is None else digest_enabled
        self.digest_log = DigestLog()
        self._digest = tree_digest(self.nodes) if self.digest_enabled else 0
        self._pcrc_node = None      # see _parent_crc
        self._pcrc = 0
        # The parent create_node last changed, whose part of the digest is
        # settled later (see _settle).  While there is one, it is
        # _pcrc_node: nothing asks _parent_crc about another parent, or
        # changes its data, without settling it first.
        self._stale = None

    # --- the digest and quota bookkeeping as a whole ----------------------------------

    @property
    def digest(self):
        """The tree digest now (after the last applied txn), as the signed
        64-bit value ZooKeeper prints and puts in its txns; None when the
        digest is off.  A follower compares this, right after applying a
        txn, with the digest the leader had after the same txn."""
        self._settle()
        return to_long(self._digest) if self.digest_enabled else None

    def set_digest_enabled(self, enabled: bool) -> None:
        """Turn the digest on (computing it over the whole tree) or off."""
        enabled = bool(enabled)
        if enabled and not self.digest_enabled:
            self._digest = tree_digest(self.nodes)
            for node in self.nodes.values():
                node.digest = None   # not kept while the digest was off
        elif not enabled:
            self._digest = 0
        self.digest_enabled = enabled
        self._pcrc_node = None   # its digest was not kept while the digest was off
        self._stale = None

    def digest_sum(self):
        """The digest as the tree keeps it (a non-negative sum), for a
        snapshot of this tree as it stands; None when the digest is off."""
        self._settle()
        return self._digest if self.digest_enabled else None

    def loaded(self, digest=None) -> None:
        """For loaders that filled self.nodes directly (snapshots): find the
        quota roots and recount their stats, as ZooKeeper's setupQuota does
        after reading a snapshot, and take the digest (digest_sum() of the
        tree the nodes came from) or compute it from scratch."""
        self._pcrc_node = None
        self._stale = None
        self._quota_stats.clear()
        self.quota.clear()
        self._setup_quota()
        self.digest_log.clear()
        if not self.digest_enabled:
            self._digest = 0
        else:
            self._digest = digest if digest is not None else tree_digest(self.nodes)

    def _parent_crc(self, path, node) -> int:
        """The CRC of a parent's path and data, kept for the last parent asked
        about: children are often made one after another under one parent,
        whose data (maybe large) does not change meanwhile (setData forgets
        it).  The parent's whole digest, its "before", is the node's own
        (ZNode.digest)."""
        crc = _crc32(path.encode()) if path != "/" else 0
        data = node.data
        if data:
            crc = _crc32(data, crc)
        self._pcrc_node = node
        self._pcrc = crc
        return crc

    def _settle(self) -> None:
        """Add to the digest the change of the parent create_node left stale.

        Children are often made one after another under one parent, each
        changing the parent's Stat (its cversion and pzxid): the parent's
        part of the digest is taken afresh once, when something else needs
        it, not at every create.  Until then the parent's ZNode.digest is
        still the part the digest holds for it, which is what a setData or a
        delete of it subtracts; every other change to the tree, and every
        reader of the digest, settles first (a call that finds nothing stale
        does nothing)."""
        p = self._stale
        if p is None:
            return
        self._stale = None
        after = _crc32(_pack(p.czxid, p.mzxid, p.pzxid, p.ctime, p.mtime, p.version,
                             p.creates, p.aversion, p.owner), self._pcrc)
        self._digest += after - p.digest
        p.digest = after

    def _log_digest(self, zxid) -> None:
        """The digest after txn zxid into the digest log (every
        DIGEST_LOG_INTERVAL txns)."""
        self._settle()
        self.digest_log.add(zxid, self._digest)

    @staticmethod
    def _forget_digest(node) -> None:
        """node's Stat changes on a cold path: the digest it keeps is stale
        (the next change computes it afresh)."""
        node.digest = None

    def _node_digest_change(self, path, node, before) -> None:
        """Cold paths: the digest after node (whose digest was `before`) changed."""
        self._digest += node_digest(path, node) - before

    # --- helpers -----------------------------------------------------------------

    def intern_acl(self, acl) -> tuple:
        """One shared tuple per distinct ACL (many nodes share a few ACLs).
        An ACL entry is a NamedTuple, equal to the plain tuple of its values
        and hashed alike: the lists a decoded txn carries are looked up as
        tuples, without making ACL objects that are then thrown away."""
        try:
            hit = self._acl_cache.get(acl if type(acl) is tuple else tuple(map(tuple, acl)))
        except TypeError:    # a tuple of lists
            hit = None
        if hit is not None:
            return hit
        key = tuple(ACL(*a) for a in acl)
        return self._acl_cache.setdefault(key, key)

    def _new_node(self, data, acl, zxid, time, owner) -> ZNode:
        return ZNode(data, self.intern_acl(acl), zxid, time, owner)

    def _add_system_node(self, path, acl) -> ZNode:
        parent, name = split_path(path)
        node = self._new_node(b"", acl, 0, 0, 0)
        self.nodes[path] = node
        self.nodes[parent].add_child(path)
        return node

    def node_count(self) -> int:
        return len(self.nodes)

    def paths(self):
        """Every real path (the "" alias of the root left out)."""
        return (p for p in self.nodes if p)

    def count_descendants(self, path) -> int:
        if path == "/":
            return len(self.nodes) - 2
        if path == "":
            # ZooKeeper counts the paths starting with path + "/": for the ""
            # alias of the root that is every node but "" itself, "/" included.
            return len(self.nodes) - 1
        total = 0
        stack = [path]
        nodes = self.nodes
        while stack:
            p = stack.pop()
            node = nodes.get(p)
            if node is None:
                continue
            total += len(node.children)
            stack.extend(node.children)
        return total

    def approximate_data_size(self) -> int:
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items() if p)

    def ephemeral_count(self) -> int:
        return sum(len(s) for s in self.ephemerals.values())

    # --- apply ---------------------------------------------------------------------

    def apply(self, txn: Txn, replay: bool = False):
        """Apply txn; returns (result, events).

        replay=True is for recovery over a fuzzy snapshot, which may already
        hold some effects of the txns replayed after it: a create of a node that
        exists, or a change to a node that no longer exists, is then skipped
        (every txn carries absolute values, so the rest converges)."""
        t = txn.type
        if replay:
            result = self._replay(txn)
        elif t != Op.MULTI:
            # _apply_txn's usual case, written out: a call less per txn.
            events = []
            result = self._apply_op(txn, t, txn.body, events), events
            if txn.zxid > self.last_zxid:
                self.last_zxid = txn.zxid
        else:
            result = self._apply_txn(txn)
        if not txn.zxid & _DIGEST_LOG_MASK:
            # DataTree.logZxidDigest: also for replayed txns (as ZooKeeper does
            # when its snapshot holds no digest: zkpy's never do), and with the
            # digest off (its value is then 0, as in ZooKeeper).
            self._log_digest(txn.zxid)
        return result

    def _replay(self, txn: Txn):
        if txn.type == Op.MULTI:
            # Op by op (as ZooKeeper's processTxn): a snapshot taken while
            # the loop was inside a multi holds its first ops but not the rest.
            for op_type, body in txn.body[0]:
                try:
                    self._apply_op(txn, op_type, body, [])
                except (KeyError, KeeperError):
                    pass
            if txn.zxid > self.last_zxid:
                self.last_zxid = txn.zxid
            return None, []
        if txn.type == Op.CLOSE_SESSION:
            # A path the close names may hold a node created after it (the
            # path was used again before the snapshot took it): delete it, as
            # a delete's replay would; its create, replayed later, restores it.
            for path in txn.body[0]:
                node = self.nodes.get(path)
                if node is not None and node.czxid > txn.zxid:
                    try:
                        self.delete_node(txn.zxid, path, [])
                    except KeyError:
                        pass
        try:
            return self._apply_txn(txn)
        except (KeyError, KeeperError):
            if txn.zxid > self.last_zxid:
                self.last_zxid = txn.zxid
            return None, []

    def _apply_txn(self, txn: Txn):
        events = []
        t = txn.type
        if t == Op.MULTI:
            result = [self._apply_op(txn, op_type, body, events) for op_type, body in txn.body[0]]
        else:
            result = self._apply_op(txn, t, txn.body, events)
        if txn.zxid > self.last_zxid:
            self.last_zxid = txn.zxid
        return result, events

    def _apply_op(self, txn, t, body, events):
        if t in CREATE_OPS:
            return self.create_node(txn.zxid, txn.time, body, events)
        if t == Op.DELETE or t == Op.DELETE_CONTAINER:
            return self.delete_node(txn.zxid, body[0], events)
        if t == Op.SET_DATA or t == Op.RECONFIG:   # a reconfig sets /zookeeper/config
            path, data, version = body
            old = self.nodes[path].data if self._quota_roots else None
            node = self.set_data(txn.zxid, txn.time, path, data, version)
            stat = node.stat()
            if self._quota_roots:
                # After the Stat is taken, as in ZooKeeper's DataTree.setData.
                self._quota_set_data(path, old, data)
            events.append((_CHANGED, path, node.acl))
            return stat
        if t == Op.SET_ACL:
            self._settle()
            path, acl, aversion = body
            node = self.nodes[path]
            digest = self.digest_enabled and not path.startswith(EXCLUDED_PREFIX)
            if digest:
                before = node_digest(path, node)
            self._forget_digest(node)
            node.acl = self.intern_acl(acl)
            node.aversion = aversion
            if digest:
                self._node_digest_change(path, node, before)
            return node.stat()
        if t == Op.CHECK:
            return None
        if t == Op.ERROR:
            return ErrorResult(body[0])
        if t == Op.CREATE_SESSION:
            self.sessions[txn.session_id] = body[0]
            return None
        if t == Op.CLOSE_SESSION:
            # Delete what the txn names, plus anything the session still owns
            # (a replayed log may hold creates the close did not list).
            paths = set(body[0]) | self.ephemerals.get(txn.session_id, set())
            for path in sorted(paths, reverse=True):
                node = self.nodes.get(path)
                if node is not None and node.owner == txn.session_id and not node.children:
                    self.delete_node(txn.zxid, path, events)
            self.ephemerals.pop(txn.session_id, None)
            self.sessions.pop(txn.session_id, None)
            return None
        raise ValueError(f"unknown txn type {t}")

    def link(self, path, node, parent) -> None:
        """Put node into the tree under parent, filed by its kind (used by
        create and by the snapshot loaders)."""
        self.nodes[path] = node
        children = parent.children
        if children:
            children.add(path)
        else:
            parent.children = {path}  # its first child (see znode.NO_CHILDREN)
        if node.owner:
            self.file_by_owner(path, node.owner)

    def file_by_owner(self, path, owner) -> None:
        """File a node whose ephemeralOwner is set: ephemeral, container or TTL."""
        kind = owner_kind(owner)
        if kind == "ephemeral":
            self.ephemerals.setdefault(owner, set()).add(path)
        elif kind == "container":
            self.containers.add(path)
        else:
            self.ttls.add(path)

    def apply_set_data(self, txn: Txn) -> ZNode:
        """apply(txn) for a setData txn of a node outside /zookeeper/,
        without its event and its Stat: the fast path's (fast_path.py),
        which takes them from the node returned.  (Outside /zookeeper/ the
        quota figures never live in the node itself, so they may change
        before its Stat is taken.)"""
        path, data, version = txn.body
        zxid = txn.zxid
        old = self.nodes[path].data if self._quota_roots else None
        node = self.set_data(zxid, txn.time, path, data, version)
        if self._quota_roots:
            self._quota_set_data(path, old, data)
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if not zxid & _DIGEST_LOG_MASK:
            self._log_digest(zxid)
        return node

    def apply_create(self, txn: Txn, events) -> tuple:
        """apply(txn) for a create txn that is not replayed: the fast
        path's (fast_path.py), without apply's choosing between cases.
        Its events go to the list events, or nowhere if it is None."""
        zxid = txn.zxid
        result = self.create_node(zxid, txn.time, txn.body, events)
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if not zxid & _DIGEST_LOG_MASK:
            self._log_digest(zxid)
        return result

    def set_data(self, zxid, time, path, data, version) -> ZNode:
        """A setData txn's change to the node at path (which exists): its
        data, version, mzxid and mtime, and the digest.  Returns the node;
        the caller takes its Stat, then updates the quota figures (when
        there are quota roots) and makes the event."""
        node = self.nodes[path]
        old = node.data
        digest = self.digest_enabled and not path.startswith(EXCLUDED_PREFIX)
        if node is self._pcrc_node:
            self._pcrc_node = None
        if digest:
            n = node
            pcrc = _crc32(path.encode()) if path != "/" else 0
            czxid = n.czxid
            pzxid = n.pzxid
            ctime = n.ctime
            creates = n.creates
            aversion = n.aversion
            owner = n.owner
            before = n.digest   # (what the last change to it left, if known: see ZNode)
            if before is None:
                before = _crc32(_pack(czxid, n.mzxid, pzxid, ctime, n.mtime, n.version,
                                      creates, aversion, owner), _crc32(old, pcrc) if old else pcrc)
        node.data = data
        node.version = version
        node.mzxid = zxid
        if time == self._time:
            time = self._time   # see create_node
        else:
            self._time = time
        node.mtime = time
        if digest:
            # Of the Stat only mzxid, mtime and version change.
            after = node.digest = _crc32(
                _pack(czxid, zxid, pzxid, ctime, time, version, creates, aversion, owner),
                _crc32(data, pcrc) if data else pcrc)
            self._digest += after - before
            if node is self._stale:
                self._stale = None   # (its part of the digest is its own again)
        return node

    def create_node(self, zxid, time, body, events):
        path, data, acl, owner, parent_creates = body
        # (parent_of, link, _new_node and ZNode.stat written out below: the
        # create every client write of a new znode comes through)
        i = path.rfind("/")
        parent_path = path[:i] if i > 0 else "/"   # (the name is seldom needed: see the quota)
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None or path in nodes:
            # Only a replay over a fuzzy snapshot meets this; the node is in it.
            self._settle()
            if parent is not None:
                before = node_digest(parent_path, parent) if self.digest_enabled else 0
                self._forget_digest(parent)
                parent.creates = parent_creates
                parent.pzxid = max(parent.pzxid, zxid)
                if self.digest_enabled:
                    self._node_digest_change(parent_path, parent, before)
                if path in self.nodes:
                    # Its parent may have been deleted and re-created by the
                    # replay: link the node to the parent it has now.
                    parent.add_child(path)
            raise KeeperError(Err.NODE_EXISTS if parent else Err.NO_NODE)
        # Znodes made in the same millisecond share one int for their ctime
        # and mtime (32 bytes each otherwise; a busy server makes dozens a ms).
        if time == self._time:
            time = self._time
        else:
            self._time = time
        if acl is not self._last_acl:   # (the ACL of the create before, most of the time)
            self._last_acl = acl
            self._last_interned = self.intern_acl(acl)
        node = ZNode(data, self._last_interned, zxid, time, owner)
        digest = self.digest_enabled
        if digest:
            # Inline (the hot path): the parent's path and data stay, so one
            # CRC of them serves its Stat before and after.
            p = parent
            if p is not self._stale and not parent_path.startswith(EXCLUDED_PREFIX):
                # The parent's part of the digest is taken before this
                # change and settled later (_settle), once for the children
                # made under it one after another.
                self._settle()
                pcrc = self._pcrc if p is self._pcrc_node else self._parent_crc(parent_path, p)
                if p.digest is None:
                    p.digest = _crc32(_pack(p.czxid, p.mzxid, p.pzxid, p.ctime, p.mtime,
                                            p.version, p.creates, p.aversion, p.owner), pcrc)
                self._stale = p
        nodes[path] = node
        children = parent.children
        if children:
            children.add(path)
        else:
            parent.children = {path}  # its first child (see znode.NO_CHILDREN)
        if owner:
            self.file_by_owner(path, owner)
        parent.creates = parent_creates
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        if digest:
            if path.startswith(EXCLUDED_PREFIX):
                change = 0
            else:
                crc = _crc32(path.encode())
                if data:
                    crc = _crc32(data, crc)
                # (not kept in the new node: an int per znode, 32 bytes, for
                # the few a setData changes later; see ZNode.digest)
                change = _crc32(_pack(zxid, zxid, zxid, time, time, 0, 0, 0, owner), crc)
            self._digest += change
        # ZNode.stat() of a new node: containers and TTL nodes show
        # ephemeralOwner 0, no children, cversion 0.
        stat = (zxid, zxid, time, time, 0, 0, 0,
                owner if not owner or owner_kind(owner) == "ephemeral" else 0,
                len(data) if data is not None else 0, 0, zxid)
        if self._quota_roots or parent_path.startswith(_QUOTA_ZOOKEEPER):
            self._quota_created(parent_path, split_path(path)[1], path, data)
        if events is not None:
            events.append((_CREATED, path, node.acl))
            events.append((_CHILDREN, parent_path, parent.acl))
        return path, stat

    def delete_node(self, zxid, path, events):
        self._settle()
        node = self.nodes.pop(path, None)
        parent_path, name = split_path(path)
        if node is None:
            # Only a replay over a fuzzy snapshot meets this: the node is gone
            # already, but the parent's pzxid may have been taken before.
            parent = self.nodes.get(parent_path)
            if parent is not None and zxid > parent.pzxid:
                before = node_digest(parent_path, parent) if self.digest_enabled else 0
                self._forget_digest(parent)
                parent.pzxid = zxid
                if self.digest_enabled:
                    self._node_digest_change(parent_path, parent, before)
            raise KeyError(path)
        parent = self.nodes[parent_path]
        parent.remove_child(path)
        if self.digest_enabled:
            change = 0
            if zxid > parent.pzxid and not parent_path.startswith(EXCLUDED_PREFIX):
                # Of the parent's Stat only pzxid changes (cversion counts creates).
                p = parent
                pcrc = self._pcrc if p is self._pcrc_node else self._parent_crc(parent_path, p)
                before = p.digest
                if before is None:
                    before = _crc32(_pack(p.czxid, p.mzxid, p.pzxid, p.ctime, p.mtime,
                                          p.version, p.creates, p.aversion, p.owner), pcrc)
                after = p.digest = _crc32(_pack(p.czxid, p.mzxid, zxid, p.ctime, p.mtime,
                                                p.version, p.creates, p.aversion, p.owner), pcrc)
                change = after - before
            if not path.startswith(EXCLUDED_PREFIX):
                n = node
                gone = n.digest
                if gone is None:
                    crc = _crc32(path.encode())
                    data = n.data
                    if data:
                        crc = _crc32(data, crc)
                    gone = _crc32(_pack(n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version,
                                        n.creates, n.aversion, n.owner), crc)
                change -= gone
            self._digest += change
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        owner = node.owner
        if owner:
            kind = owner_kind(owner)
            if kind == "ephemeral":
                paths = self.ephemerals.get(owner)
                if paths is not None:
                    paths.discard(path)
                    if not paths:
                        del self.ephemerals[owner]
            elif kind == "container":
                self.containers.discard(path)
            else:
                self.ttls.discard(path)
        if self._quota_roots or parent_path.startswith(_PROC_ZOOKEEPER):
            self._quota_deleted(parent_path, name, path, node.data)
        events.append((_DELETED, path, node.acl))
        events.append((_CHILDREN, parent_path, parent.acl))
        return None

    # --- quotas (DataTree.createNode/deleteNode/setData, updateQuotaStat) ----------

    def _quota_created(self, parent_path, name, path, data) -> None:
        if parent_path.startswith(_QUOTA_ZOOKEEPER):
            if name == _LIMIT_NODE:
                # ZooKeeper throws (and stops) on the root's own limits node,
                # /zookeeper/quota/zookeeper_limits; zkpy ignores it.
                self.quota.add(_quota.trim_quota_path(parent_path))
            if name == _STAT_NODE:
                self._update_quota_for_path(_quota.trim_quota_path(parent_path))
        prefix = self.quota.max_prefix(path)
        if prefix is not None:
            self._update_quota_stat(prefix, len(data) if data else 0, 1)

    def _quota_deleted(self, parent_path, name, path, data) -> None:
        if name == _LIMIT_NODE and parent_path.startswith(_PROC_ZOOKEEPER) \
                and len(parent_path) > len(_QUOTA_ZOOKEEPER):
            # ZooKeeper tests for "/zookeeper" and cuts 16 characters, what
            # ever they are (and throws where there are not 16).
            self.quota.remove(_quota.trim_quota_path(parent_path))
        prefix = self.quota.max_prefix(path)
        if prefix is not None:
            self._update_quota_stat(prefix, -len(data) if data else 0, -1)

    def _quota_set_data(self, path, old, data) -> None:
        prefix = self.quota.max_prefix(path)
        if prefix is not None:
            diff = (len(data) if data else 0) - (len(old) if old else 0)
            self._update_quota_stat(prefix, diff, 0)

    def _update_quota_stat(self, prefix, bytes_diff, count_diff) -> None:
        """updateQuotaStat: add to the counts in prefix's zookeeper_stats."""
        path = _quota.stat_path(prefix)
        node = self.nodes.get(path)
        if node is None:
            log.error("Missing node for stat %s", path)
            return
        data = node.data
        cached = self._quota_stats.get(path)
        if cached is not None and cached[0] is data:
            stats = cached[1]       # the text this tree wrote last: no need to parse it
        else:
            try:
                stats = _quota.parse_stats(data)
            except _quota.StatsParseError as e:
                # ZooKeeper's apply throws here (and its server stops).
                log.error("Cannot update quota stat %s: %s", path, e)
                return
        stats[_quota.COUNT] = stats.get(_quota.COUNT, -1) + count_diff
        stats[_quota.BYTES] = stats.get(_quota.BYTES, -1) + bytes_diff
        node.data = data = _quota.format_stats(stats)
        self._quota_stats[path] = (data, stats)

    def _update_quota_for_path(self, path) -> None:
        """updateQuotaForPath: the stats node of quota root path gets the
        subtree's count and bytes, counted afresh."""
        count, size = _quota.subtree_counts(self.nodes, path)
        spath = _quota.stat_path(path)
        node = self.nodes.get(spath)
        if node is None:
            log.warning("Missing quota stat node %s", spath)
            return
        before = node_digest(spath, node) if self.digest_enabled else 0
        node.data = f"count={count},bytes={size}".encode()
        if self.digest_enabled:
            self._node_digest_change(spath, node, before)   # 0: under /zookeeper/

    def _setup_quota(self) -> None:
        """setupQuota/traverseNode: every leaf under /zookeeper/quota whose path
        ends in /zookeeper_limits names a quota root (the text between the
        quota prefix and the first "/zookeeper_limits")."""
        nodes = self.nodes
        if _QUOTA_ZOOKEEPER not in nodes:
            return
        end = "/" + _LIMIT_NODE
        stack = [_QUOTA_ZOOKEEPER]
        while stack:
            path = stack.pop()
            node = nodes.get(path)
            if node is None:
                continue
            if node.children:
                stack.extend(node.children)
            elif path.endswith(end):
                real = path[len(_QUOTA_ZOOKEEPER):path.index(end)]
                self._update_quota_for_path(real)
                self.quota.add(real)
