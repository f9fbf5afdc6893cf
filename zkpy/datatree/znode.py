"""A znode and its Stat bookkeeping (DataNode + StatPersisted in ZooKeeper)."""

from .txn import owner_kind

# The children of a leaf: one shared empty set, replaced by a set of its own
# when the first child comes (most znodes are leaves, and an empty set costs
# 200 bytes).  Only the tree changes children, through add_child/remove_child.
#
# A node's children are kept by their full paths, the very string objects
# that key DataTree.nodes: a name of their own would cost each znode another
# string (about 60 bytes).  child_names gives the names a reply lists.
NO_CHILDREN = frozenset()


def child_names(path: str, children) -> list:
    """The names of the children of the node at path, in order (sorting
    paths that share the prefix path + "/" sorts their names)."""
    k = 1 if path == "/" else len(path) + 1
    return [c[k:] for c in sorted(children)]


class ZNode:
    __slots__ = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version",
                 "creates", "aversion", "owner", "pzxid", "children", "digest")

    def __init__(self, data, acl, czxid, time, owner):
        self.data = data              # bytes, or None when created with null data
        self.acl = acl                # tuple of ACL
        self.czxid = czxid
        self.mzxid = czxid
        self.ctime = time
        self.mtime = time
        self.version = 0
        # Children ever created under this node: the sequential counter and,
        # with numChildren, the visible cversion (2*creates - numChildren).
        self.creates = 0
        self.aversion = 0
        self.owner = owner            # ephemeralOwner as stored (markers included)
        self.pzxid = czxid
        self.children = NO_CHILDREN   # paths of the children
        # Its CRC in the tree digest (digest.py) as the last setData, or the
        # last create or delete of a child, left it; None where unknown (a
        # new node's is not kept: 32 bytes each), and the tree computes it
        # afresh then.  Kept, as ZooKeeper's DataNode keeps its digest, so
        # that the next such change needs only the CRC after it (a setData:
        # 0.3 us less); any other change resets it (DataTree._forget_digest).
        self.digest = None

    def add_child(self, path) -> None:
        children = self.children
        if children:
            children.add(path)
        else:
            self.children = {path}

    def remove_child(self, path) -> None:
        children = self.children
        if path in children:
            if len(children) == 1:
                self.children = NO_CHILDREN
            else:
                children.remove(path)

    def stat(self) -> tuple:
        owner = self.owner
        if owner and owner_kind(owner) != "ephemeral":
            owner = 0  # containers and TTL nodes show ephemeralOwner 0
        n = len(self.children)
        data = self.data
        return (self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                2 * self.creates - n, self.aversion, owner,
                len(data) if data is not None else 0, n, self.pzxid)

    @property
    def num_children(self) -> int:
        return len(self.children)

    @property
    def cversion(self) -> int:
        return 2 * self.creates - len(self.children)
