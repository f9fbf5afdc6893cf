"""The data-tree digest of ZooKeeper 3.6+ (`digest.enabled`, on by default).

ZooKeeper's DigestCalculator gives every znode a CRC32 over its path, its
data and nine Stat fields; NodeHashMapImpl keeps the tree digest as the sum
of those (AdHash: a 64-bit sum, so a change is "minus the old, plus the
new").  zkpy computes the same numbers, so that for the same tree, with the
same zxids, times and session ids, the value is ZooKeeper's:

    crc32( path as UTF-8           ("" for the root, which "/" aliases)
           data                     (nothing when null or empty)
           czxid mzxid pzxid ctime mtime    (8 bytes each, big-endian)
           version cversion aversion        (4 bytes each; cversion as
                                              stored: the creates count)
           ephemeralOwner )                 (8 bytes, markers included)

Nodes under "/zookeeper/" count for nothing (quota stats change them
outside any txn); "/zookeeper" itself counts.

The tree keeps the digest incrementally (DataTree.apply); this module has the
per-node arithmetic, the full computation (after a snapshot is loaded) and
the digest history that the `hash` four-letter word prints.

ZooKeeper computes the path's bytes with Java's platform charset: UTF-8 on
any current Linux, which is what zkpy uses."""

import collections
import struct

from ..crc import crc32

# DigestCalculator.DIGEST_VERSION: what a peer sends with a digest.
DIGEST_VERSION = 2
# DataTree.DIGEST_LOG_INTERVAL and DIGEST_LOG_LIMIT (constants in ZooKeeper
# 3.6 to 3.9, not configuration keys): a digest is kept for every zxid that
# is a multiple of 128, the newest 1024 of them.
DIGEST_LOG_INTERVAL = 128
DIGEST_LOG_LIMIT = 1024

EXCLUDED_PREFIX = "/zookeeper/"   # ZooDefs.ZOOKEEPER_NODE_SUBTREE

_STAT = struct.Struct(">qqqqqiiiq")
STAT_PACK = _pack = _STAT.pack
_crc32 = crc32
_U64 = 1 << 64
_I64 = 1 << 63


def to_long(value: int) -> int:
    """A digest sum as the signed 64-bit long ZooKeeper prints."""
    return ((value + _I64) % _U64) - _I64


def node_digest(path: str, node) -> int:
    """DigestCalculator.calculateDigest: 0 for a node under /zookeeper/."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    crc = _crc32(path.encode()) if path != "/" else 0
    data = node.data
    if data:
        crc = _crc32(data, crc)
    return _crc32(_pack(node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
                        node.version, node.creates, node.aversion, node.owner), crc)


def tree_digest(nodes) -> int:
    """The digest of a whole tree (its nodes dict, with the "" alias of the
    root), as a non-negative sum (to_long gives the printed value)."""
    total = 0
    pack = _pack
    crc32 = _crc32
    prefix = EXCLUDED_PREFIX
    for path, n in nodes.items():
        if path == "/" or path.startswith(prefix):
            continue    # "/" is the root's alias: counted once, as ""
        crc = crc32(path.encode())
        data = n.data
        if data:
            crc = crc32(data, crc)
        total += crc32(pack(n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime,
                            n.version, n.creates, n.aversion, n.owner), crc)
    return total


class DigestLog:
    """The digests ZooKeeper keeps for its `hash` four-letter word: the tree
    digest after every txn whose zxid is a multiple of DIGEST_LOG_INTERVAL,
    the newest DIGEST_LOG_LIMIT of them.  In memory only, as in ZooKeeper
    (a restart begins a new history with the txns it replays)."""

    __slots__ = ("entries",)

    def __init__(self):
        self.entries = collections.deque(maxlen=DIGEST_LOG_LIMIT)

    def add(self, zxid: int, digest: int) -> None:
        entries = self.entries
        if entries and entries[-1][0] == zxid:
            entries[-1] = (zxid, digest)   # the ops of one multi, replayed one by one
        else:
            entries.append((zxid, digest))

    def clear(self) -> None:
        self.entries.clear()

    def text(self) -> str:
        """DigestCommand's reply: "<zxid in hex>: <digest>" lines, oldest first."""
        return "".join(f"{zxid & 0xFFFFFFFFFFFFFFFF:x}: {to_long(d)}\n"
                       for zxid, d in self.entries)
