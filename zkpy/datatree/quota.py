"""Quotas as ZooKeeper 3.8 keeps them (Quotas, StatsTrack, PathTrie and the
quota parts of DataTree).

A quota on /a/b lives in two znodes that clients write (zkCli's setquota):
    /zookeeper/quota/a/b/zookeeper_limits   the limits, StatsTrack text
    /zookeeper/quota/a/b/zookeeper_stats    the usage, StatsTrack text
The server's share, done in apply so that every peer computes the same:
  * creating a zookeeper_limits node under /zookeeper/quota makes its parent's
    path (less the /zookeeper/quota prefix) a quota root; deleting one
    removes it again;
  * creating a zookeeper_stats node there overwrites its data with the
    current count and bytes of the subtree (the node itself included);
  * every create, delete and setData under a quota root adds its count and
    bytes to that root's zookeeper_stats (the innermost root only: nested
    roots do not add up);
  * loading a snapshot finds the quota roots again and recounts their stats.
The stats node's data changes in place: no version, no mzxid, no watch.

Limits are checked in prep, and only with enforceQuota=true (see
zkpy.server.quota)."""

import logging
import re

log = logging.getLogger("zkpy.datatree.quota")

QUOTA_ZOOKEEPER = "/zookeeper/quota"
PROC_ZOOKEEPER = "/zookeeper"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_QUOTA_PREFIX_LEN = len(QUOTA_ZOOKEEPER)

# Java's String.trim(): every char <= U+0020.
_JAVA_TRIM = "".join(chr(c) for c in range(0x21))
_LOW = re.compile("[\x00-\x20]|//")


def quota_path(path: str) -> str:
    return QUOTA_ZOOKEEPER + path


def limit_path(path: str) -> str:
    return QUOTA_ZOOKEEPER + path + "/" + LIMIT_NODE


def stat_path(path: str) -> str:
    return QUOTA_ZOOKEEPER + path + "/" + STAT_NODE


def trim_quota_path(path: str) -> str:
    """Quotas.trimQuotaPath: the text after the 16 characters of
    "/zookeeper/quota" (whatever they are)."""
    return path[_QUOTA_PREFIX_LEN:]


# --- StatsTrack ------------------------------------------------------------------------

class StatsParseError(ValueError):
    """Text that ZooKeeper's StatsTrack constructor throws on."""


_PAIRS = re.compile(r"[,;]+")
_LONG = re.compile(r"[+-]?[0-9]+")
COUNT, BYTES = "count", "bytes"
COUNT_HARD, BYTES_HARD = "countHardLimit", "byteHardLimit"


def _java_split(text: str, pattern) -> list:
    """String.split: trailing empty strings dropped ([""] for "")."""
    if not text:
        return [""]
    parts = pattern.split(text) if not isinstance(pattern, str) else text.split(pattern)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _parse_long(text: str) -> int:
    if not _LONG.fullmatch(text):
        raise StatsParseError(f"not a number: {text!r}")
    v = int(text)
    if not -(1 << 63) <= v < (1 << 63):
        raise StatsParseError(f"out of range: {text!r}")
    return v


def parse_stats(data) -> dict:
    """StatsTrack(byte[]): "k=v" pairs separated by ',' or ';' into a dict
    (insertion order kept; a missing key reads as -1).  Raises
    StatsParseError where the Java constructor throws."""
    if data is None:
        raise StatsParseError("null data")
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    stats = {}
    if not text:
        return stats
    for pair in _java_split(text, _PAIRS):
        kv = _java_split(pair, "=")
        if len(kv) < 2:
            raise StatsParseError(f"no value in {pair!r}")
        stats[kv[0]] = -1 if kv[1] == "" else _parse_long(kv[1])
    return stats


def format_stats(stats: dict) -> bytes:
    """StatsTrack.toString(): count and bytes first (-1 when absent); any
    other keys after a "=" and sorted, each after a ';' -- the form that
    3.4 parsers still read:  count=4,bytes=5=;byteHardLimit=10;countHardLimit=-1"""
    text = f"count={stats.get(COUNT, -1)},bytes={stats.get(BYTES, -1)}"
    if len(stats) <= 2 and (len(stats) < 2 or COUNT in stats and BYTES in stats):
        return text.encode()    # the usual stats node: nothing else in it
    rest = sorted(k for k in stats if k != COUNT and k != BYTES)
    if rest:
        text += "=" + "".join(f";{k}={stats[k]}" for k in rest)
    return text.encode()


# --- quota roots (PathTrie) -----------------------------------------------------------

def _components(path: str) -> list:
    """PathTrie.split: the names between '/', blank ones (after trim) left out."""
    return [c for c in path.split("/") if c.strip(_JAVA_TRIM)]


class QuotaRoots:
    """ZooKeeper's PathTrie of quota roots, as the set of their paths made
    of non-blank components ("/a/ /b" is the root "/a/b", as in Java).
    Falsy while empty, so that the tree does no quota work at all then."""

    __slots__ = ("roots",)

    def __init__(self):
        self.roots = set()

    def __bool__(self):
        return bool(self.roots)

    def __len__(self):
        return len(self.roots)

    def __iter__(self):
        return iter(sorted(self.roots))

    def add(self, path: str) -> None:
        """PathTrie.addPath.  Java throws on ""; a path of blank names marks
        the trie's root, which findMaxPrefix never reports: both no-ops."""
        comps = _components(path)
        if comps:
            self.roots.add("/" + "/".join(comps))

    def remove(self, path: str) -> None:
        comps = _components(path)
        if comps:
            self.roots.discard("/" + "/".join(comps))

    def clear(self) -> None:
        self.roots.clear()

    def max_prefix(self, path: str):
        """DataTree.getMaxPrefixWithQuota: the innermost quota root at or above
        path, None if there is none (a root of "/" never counts)."""
        roots = self.roots
        if not roots:
            return None
        if _LOW.search(path) is None:
            # No blank names possible: path and its ancestors are their own
            # normal form ("/a/b", "/a").
            p = path
            while p:
                if p in roots:
                    return p
                p = p[:p.rfind("/")]
            return None
        comps = _components(path)
        for i in range(len(comps), 0, -1):
            p = "/" + "/".join(comps[:i])
            if p in roots:
                return p
        return None


def subtree_counts(nodes, path: str) -> tuple:
    """DataTree.getCounts: (znodes, data bytes) of path and everything below
    it (the root's children are "/a", ...: "" walks the whole tree)."""
    count = 0
    size = 0
    stack = [path]
    pop = stack.pop
    get = nodes.get
    while stack:
        p = pop()
        node = get(p)
        if node is None:
            continue
        count += 1
        data = node.data
        if data:
            size += len(data)
        children = node.children
        if children:
            stack.extend(children)
    return count, size
