"""The DataTree: znodes by path, ephemerals by session, and apply(txn).

apply() is deterministic: the same txns in the same order give the same tree on
every peer and after every replay.  It trusts the txn (prep has validated it),
and returns the result for the reply and the watch events to fire, as
(event type, path, acl) in the order ZooKeeper fires them."""

from ..protocol.errors import Err, KeeperError
from ..protocol.opcodes import CREATE_OPS, EventType, Op
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from .paths import split_path
from .txn import Txn, owner_kind
from .znode import ZNode

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
    def __init__(self):
        self.nodes: dict[str, ZNode] = {}
        self.ephemerals: dict[int, set] = {}   # session id -> paths
        self.containers: set = set()
        self.ttls: set = set()
        self.sessions: dict[int, int] = {}     # live session id -> timeout (ms)
        self.last_zxid = 0
        self._acl_cache: dict = {}
        root = self._new_node(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        self.nodes["/"] = root
        # ZooKeeper also files the root under "" (and counts it in Node count).
        self.nodes[""] = root
        self._add_system_node("/zookeeper", OPEN_ACL_UNSAFE)
        self._add_system_node("/zookeeper/quota", OPEN_ACL_UNSAFE)
        config = self._add_system_node("/zookeeper/config", READ_ACL_UNSAFE)
        config.aversion = -1

    # --- helpers -----------------------------------------------------------------

    def intern_acl(self, acl) -> tuple:
        """One shared tuple per distinct ACL (many nodes share a few ACLs)."""
        if type(acl) is tuple:
            hit = self._acl_cache.get(acl)
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
        self.nodes[parent].add_child(name)
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
            base = p + "/"
            for c in node.children:
                total += 1
                stack.append(base + c)
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
        if replay:
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
                return self.apply(txn)
            except (KeyError, KeeperError):
                if txn.zxid > self.last_zxid:
                    self.last_zxid = txn.zxid
                return None, []
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
        if t == Op.SET_DATA:
            path, data, version = body
            node = self.nodes[path]
            node.data = data
            node.version = version
            node.mzxid = txn.zxid
            node.mtime = txn.time
            events.append((_CHANGED, path, node.acl))
            return node.stat()
        if t == Op.SET_ACL:
            path, acl, aversion = body
            node = self.nodes[path]
            node.acl = self.intern_acl(acl)
            node.aversion = aversion
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

    def link(self, path, node, parent, name) -> None:
        """Put node into the tree under parent, filed by its kind (used by
        create and by the snapshot loaders)."""
        self.nodes[path] = node
        children = parent.children
        if children:
            children.add(name)
        else:
            parent.children = {name}  # its first child (see znode.NO_CHILDREN)
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

    def create_node(self, zxid, time, body, events):
        path, data, acl, owner, parent_creates = body
        parent_path, name = split_path(path)
        parent = self.nodes.get(parent_path)
        if parent is None or path in self.nodes:
            # Only a replay over a fuzzy snapshot meets this; the node is in it.
            if parent is not None:
                parent.creates = parent_creates
                parent.pzxid = max(parent.pzxid, zxid)
                if path in self.nodes:
                    # Its parent may have been deleted and re-created by the
                    # replay: link the node to the parent it has now.
                    parent.add_child(name)
            raise KeeperError(Err.NODE_EXISTS if parent else Err.NO_NODE)
        node = self._new_node(data, acl, zxid, time, owner)
        self.link(path, node, parent, name)
        parent.creates = parent_creates
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        events.append((_CREATED, path, node.acl))
        events.append((_CHILDREN, parent_path, parent.acl))
        return path, node.stat()

    def delete_node(self, zxid, path, events):
        node = self.nodes.pop(path, None)
        parent_path, name = split_path(path)
        if node is None:
            # Only a replay over a fuzzy snapshot meets this: the node is gone
            # already, but the parent's pzxid may have been taken before.
            parent = self.nodes.get(parent_path)
            if parent is not None and zxid > parent.pzxid:
                parent.pzxid = zxid
            raise KeyError(path)
        parent = self.nodes[parent_path]
        parent.remove_child(name)
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
        events.append((_DELETED, path, node.acl))
        events.append((_CHILDREN, parent_path, parent.acl))
        return None
