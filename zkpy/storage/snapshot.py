"""Snapshots: files `snapshot.<zxid in hex>` in <dataDir>/version-2.

    file    = MAGIC (8) + FORMAT (i32) + reserved (i32) + zxid (i64)
              + body + trailer
    body    = msgpack stream: sessions {id: timeout}, the ACL table (list),
              node count, the tree digest (or nil), the root's entry, then
              the other nodes in groups
    group   = [parent path, [short entry, ...], [entry, ...]]: children of
              that parent (a parent may have several groups); every group of
              a node's children comes after the group that holds the node
    entry   = [name, data, acl index, czxid, mzxid, ctime, mtime, version,
               creates, aversion, owner, pzxid]
    short entry = [name, data, acl index, czxid, ctime]: the usual node,
              never changed since its create (mzxid = pzxid = czxid,
              mtime = ctime, version = creates = aversion = owner = 0)
    trailer = MAGIC_END (8) + crc32 of everything before it (u32)

The layout lets a restart build the tree in one pass: a group's parent is
looked up once, its children's paths are the parent's plus their names, and
the common node is five values.

The digest (digest.py) is the sum the tree kept while it changed, written
when the snapshot is known to hold the tree as it stood (a forked child's
copy, or a tree nothing changes meanwhile): a restart then takes it instead
of computing a CRC of every znode again, about a third of the load time.
A snapshot written while the tree changes has nil there, and the loader
computes it.  (FORMAT 2, without the digest, and FORMAT 1, one [path,
11 values] entry per node in any order, are still read.)

Snapshots are fuzzy, like ZooKeeper's: written by a background thread while the
tree keeps changing, they hold every txn up to `zxid` and maybe some after;
replaying the log from zxid + 1 makes the tree exact."""

import io
import mmap
import os
import struct
from itertools import groupby
from operator import attrgetter

import msgpack

from ..crc import crc32
from ..datatree.tree import DataTree
from ..datatree.znode import NO_CHILDREN, ZNode
from ..datatree.paths import parent_of
from .files import drop_cached, write_atomically
from .txnlog import list_by_zxid

MAGIC = b"ZKPYSNAP"
MAGIC_END = b"ZKPYSEND"
FORMAT = 3
HEADER = struct.Struct(">8siiq")
TRAILER = struct.Struct(">8sI")
SNAP_PREFIX = "snapshot."
GROUP_SIZE = 1024  # entries in a group at most: bounds what one unpack makes,
GROUP_BYTES = 4 << 20  # as does this (a group over it is split)
# A snapshot goes to disk (and out of the page cache) a MiB at a time as it
# is written: why in files.WrittenOut.
SYNC_STEP = 1 << 20
_ACL_OF = attrgetter("acl")


class CorruptSnapshotError(Exception):
    pass


def snapshot_file_name(zxid: int) -> str:
    return f"{SNAP_PREFIX}{zxid:x}"


def list_snapshots(snap_dir) -> list[tuple[int, str]]:
    return list_by_zxid(snap_dir, SNAP_PREFIX)


class _CrcWriter:
    def __init__(self, f):
        self.f = f
        self.crc = 0

    def write(self, b):
        self.crc = crc32(b, self.crc)
        self.f.write(b)


def write_snapshot(tree: DataTree, zxid: int, snap_dir: str, stable: bool = False) -> str:
    """Write a snapshot of tree holding at least every txn up to zxid.  Safe to
    call from a thread while the event loop changes the tree: each step takes
    what it reads in one piece (dict.copy() is atomic under the GIL).
    stable=True where nothing can change the tree while it is written (a
    forked child's copy, a tree no one else has): its digest is then the
    digest of what the snapshot holds, and goes in it."""
    os.makedirs(snap_dir, exist_ok=True)
    path = write_atomically(os.path.join(snap_dir, snapshot_file_name(zxid)),
                            lambda f: dump_snapshot(tree, zxid, f, stable),
                            buffering=1 << 20, sync_step=SYNC_STEP)
    # The snapshot before this one may still be in the page cache (one a
    # leader sent is written whole): only memory is given back.
    older = [p for z, p in list_snapshots(snap_dir) if z < zxid]
    if older:
        drop_cached(older[-1])
    return path


def write_snapshot_bytes(blob, zxid: int, snap_dir: str) -> str:
    """Write a snapshot that is already serialised (what snapshot_bytes made,
    say on the leader that sent it) as the snapshot file for zxid."""
    os.makedirs(snap_dir, exist_ok=True)
    return write_atomically(os.path.join(snap_dir, snapshot_file_name(zxid)),
                            lambda f: f.write(blob))


def snapshot_bytes(tree: DataTree, zxid: int, stable: bool = False) -> bytes:
    """A snapshot as bytes (what a leader sends a follower it syncs by SNAP);
    stable: see write_snapshot."""
    f = io.BytesIO()
    dump_snapshot(tree, zxid, f, stable)
    return f.getvalue()


def _entry(name, node, acl_index) -> tuple:
    idx = acl_index.get(node.acl, 0)   # (0: see dump_snapshot)
    czxid, ctime = node.czxid, node.ctime
    if (node.mzxid == czxid and node.pzxid == czxid and node.mtime == ctime
            and not node.version and not node.creates and not node.aversion
            and not node.owner):
        return (name, node.data, idx, czxid, ctime)
    return (name, node.data, idx, czxid, node.mzxid, ctime, node.mtime, node.version,
            node.creates, node.aversion, node.owner, node.pzxid)


def _depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def dump_snapshot(tree: DataTree, zxid: int, f, stable: bool = False) -> None:
    """stable: see write_snapshot.

    The nodes are written as they are read, a group at a time, not kept
    until the end: in a forked writer every object it keeps is a fresh page
    of memory to fault in, and each entry dropped once packed leaves its
    memory for the next (a writer of 400,000 znodes: 15% less CPU, a third
    fewer page faults, 198 MiB of memory at most, not 270).  That needs
    each node read before its children, so that the group holding a node
    can be written before any group of its children: the order the tree's
    dict keeps (a node is added after its parent and outlives none of its
    children), checked as it goes (a tree loaded from a FORMAT 1 snapshot
    may not keep it), and where it does not hold, the groups left are
    written at the end, parents first."""
    digest = tree.digest_sum() if stable else None
    # A tree nothing changes is read as it is.  Otherwise dict.copy() takes
    # it in one step (list(d.items()) does not: it allocates as it goes, and
    # a garbage collection may switch threads); the groups come from that
    # copy, not from the nodes' children sets, which the event loop may
    # change while a thread writes.
    nodes = tree.nodes if stable else tree.nodes.copy()
    sessions = tree.sessions.copy()
    root = nodes.get("/")
    if root is None:
        raise ValueError("the tree has no root")
    # The ACL table comes before the nodes: the ACLs they use, read first.
    # (A node a setACL changes while a thread writes may then name an ACL
    # the table lacks; its entry takes the table's first, and the log's
    # replay from zxid + 1 sets it again, as it does every later change.)
    acl_index: dict = {}
    for acl, _ in groupby(map(_ACL_OF, nodes.values())):
        if acl not in acl_index:
            acl_index[acl] = len(acl_index)
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    w = _CrcWriter(f)
    w.write(HEADER.pack(MAGIC, FORMAT, 0, zxid))
    w.write(pack(sessions))
    w.write(pack([[list(a) for a in acl] for acl in acl_index]))
    w.write(pack(len(nodes) - ("" in nodes)))   # "" is an alias of the root
    w.write(pack(digest))
    w.write(pack(_entry("/", root, acl_index)))
    groups: dict = {}   # parent -> (short entries, full entries) not yet written
    parents = {"/"}     # the paths read so far that have children
    in_order = True
    last_parent = short = full = last_acl = idx = None
    for path, node in nodes.items():
        if len(path) < 2:
            continue        # the root, or its alias
        if node.children:
            parents.add(path)
        i = path.rfind("/")
        parent = path[:i] or "/"
        if parent != last_parent:
            group = groups.get(parent)
            if group is None:
                group = groups[parent] = ([], [])
                if parent not in parents:
                    in_order = False
            short, full = group
            last_parent = parent
        # _entry, inline: this loop runs once per znode.
        acl = node.acl
        if acl is not last_acl:
            idx = acl_index.get(acl, 0)
            last_acl = acl
        czxid, ctime = node.czxid, node.ctime
        if (node.mzxid == czxid and node.pzxid == czxid and node.mtime == ctime
                and not node.version and not node.creates and not node.aversion
                and not node.owner):
            short.append((path[i + 1:], node.data, idx, czxid, ctime))
            if len(short) < GROUP_SIZE:
                continue
        else:
            full.append((path[i + 1:], node.data, idx, czxid, node.mzxid, ctime, node.mtime,
                         node.version, node.creates, node.aversion, node.owner, node.pzxid))
            if len(full) < GROUP_SIZE:
                continue
        if in_order:
            _flush_group(w, pack, groups, parent)
    for parent in sorted(groups, key=_depth):  # parents before their children
        short, full = groups[parent]
        for k in range(0, max(len(short), len(full)), GROUP_SIZE):
            _write_group(w, pack, parent, short[k:k + GROUP_SIZE], full[k:k + GROUP_SIZE])
    f.write(TRAILER.pack(MAGIC_END, w.crc))


def _flush_group(w, pack, groups, parent) -> None:
    """Write parent's group now, after what is left of the groups above it
    (one of which holds parent itself), and start each anew."""
    chain = [parent]
    while chain[-1] != "/":
        chain.append(parent_of(chain[-1]))
    for p in reversed(chain):
        short, full = groups[p]
        if short or full:
            _write_group(w, pack, p, short, full)
            short.clear()
            full.clear()


def _write_group(w, pack, parent, short, full) -> None:
    """One group, split in two (and so on) while it packs to more than
    GROUP_BYTES (znodes with large data), so that a reader unpacks a few MiB
    at a time."""
    b = pack([parent, short, full])
    if len(b) <= GROUP_BYTES or len(short) + len(full) < 2:
        w.write(b)
    elif len(short) >= len(full):
        half = (len(short) + 1) // 2
        _write_group(w, pack, parent, short[:half], [])
        _write_group(w, pack, parent, short[half:], full)
    else:
        half = (len(full) + 1) // 2
        _write_group(w, pack, parent, [], full[:half])
        _write_group(w, pack, parent, short, full[half:])


def read_snapshot(path: str) -> DataTree:
    with open(path, "rb") as f:
        try:
            # Mapped, not read: the bytes are checksummed and unpacked straight
            # from the page cache (a snapshot file never changes once renamed
            # into place).
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # empty, or a file that cannot be mapped
            buf = f.read()
        else:
            # It is read whole, from the start, and seldom in the page cache
            # (files.WrittenOut): all of it asked of the disk at once, not a
            # readahead window at a time.
            if hasattr(mmap, "MADV_WILLNEED"):
                buf.madvise(mmap.MADV_WILLNEED)
    try:
        return parse_snapshot(buf, path)
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


class _Reader:
    """A file-like view of buf[start:end] for msgpack's streaming Unpacker,
    which copies a little at a time (feed() would copy the whole body)."""

    def __init__(self, buf, start, end):
        self.view = memoryview(buf)
        self.pos = start
        self.end = end

    def read(self, n):
        pos = self.pos
        stop = min(self.end, pos + n)
        self.pos = stop
        return self.view[pos:stop].tobytes()

    def release(self):
        self.view.release()


def parse_snapshot(buf, path: str = "snapshot") -> DataTree:
    if len(buf) < HEADER.size + TRAILER.size:
        raise CorruptSnapshotError(f"{path}: truncated")
    magic, fmt, _, zxid = HEADER.unpack_from(buf, 0)
    if magic != MAGIC or fmt not in (1, 2, FORMAT):
        raise CorruptSnapshotError(f"{path}: not a zkpy snapshot")
    end_magic, crc = TRAILER.unpack_from(buf, len(buf) - TRAILER.size)
    body_end = len(buf) - TRAILER.size
    with memoryview(buf) as view:
        good = end_magic == MAGIC_END and crc32(view[:body_end]) == crc
    if not good:
        raise CorruptSnapshotError(f"{path}: checksum mismatch")
    reader = _Reader(buf, HEADER.size, body_end)
    try:
        return _parse_body(reader, fmt, zxid, len(buf), path)
    finally:
        reader.release()


def _parse_body(reader, fmt, zxid, size, path) -> DataTree:
    unpacker = msgpack.Unpacker(reader, read_size=min(size, 1 << 20), raw=False,
                                use_list=False, strict_map_key=False, max_buffer_size=size)
    tree = DataTree()
    try:
        tree.sessions = {int(k): v for k, v in unpacker.unpack().items()}
        acls = [tree.intern_acl(a) for a in unpacker.unpack()]
        count = unpacker.unpack()
        digest = unpacker.unpack() if fmt >= 3 else None
        if fmt == 1:
            _read_nodes_v1(tree, unpacker, acls, count)
        elif not _read_nodes(tree, unpacker, acls, count):
            digest = None   # nodes were left out: the sum no longer fits the tree
    except CorruptSnapshotError as e:
        raise CorruptSnapshotError(f"{path}: {e}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError,
            msgpack.UnpackException) as e:
        # The checksum matched: a writer's bug, not a disk's.
        raise CorruptSnapshotError(f"{path}: invalid contents ({e!r})") from None
    tree.last_zxid = zxid
    tree.loaded(digest)   # quota roots and stats, the digest
    return tree


def _read_nodes(tree, unpacker, acls, count) -> bool:
    """The nodes of a FORMAT 2 or 3 body into tree, in one pass: each node
    is made and filed under its parent as it is read.  A group whose parent
    is missing is dropped (a fuzzy snapshot can hold a node whose parent the
    loop deleted while it was written; the log replay deletes it anyway), and
    with it, group by group, everything below.  False if any was dropped."""
    new = ZNode.__new__
    empty = NO_CHILDREN
    root = _node(unpacker.unpack(), acls)
    nodes = tree.nodes = {"/": root, "": root}
    get = nodes.get
    read = 1
    last_time = 0
    whole = True
    unpack = unpacker.unpack
    while read < count:
        parent_path, short, full = unpack()
        read += len(short) + len(full)
        parent = get(parent_path)
        if parent is None:
            whole = False
            continue
        prefix = parent_path + "/" if parent_path != "/" else "/"
        children = parent.children
        if not children:
            children = parent.children = set()
        add = children.add   # a child is filed by its path: the dict's key object
        for name, data, ai, czxid, ctime in short:
            if ctime == last_time:
                ctime = last_time   # one int for nodes of the same ms (DataTree._time)
            else:
                last_time = ctime
            n = new(ZNode)
            n.data = data
            n.acl = acls[ai]
            n.czxid = n.mzxid = n.pzxid = czxid
            n.ctime = n.mtime = ctime
            n.version = n.creates = n.aversion = n.owner = 0
            n.children = empty
            n.digest = None
            path = prefix + name
            nodes[path] = n
            add(path)
        for e in full:
            n = new(ZNode)
            (name, n.data, ai, n.czxid, n.mzxid, n.ctime, n.mtime, n.version,
             n.creates, n.aversion, owner, n.pzxid) = e
            n.acl = acls[ai]
            n.owner = owner
            n.children = empty
            n.digest = None
            path = prefix + name
            nodes[path] = n
            add(path)
            if owner:
                tree.file_by_owner(path, owner)
    if read != count:
        raise CorruptSnapshotError(f"{read} nodes where the header says {count}")
    return whole


def _node(e, acls) -> ZNode:
    """A node from an entry of either form (the root's, which has no parent)."""
    if len(e) == 5:
        _, data, ai, czxid, ctime = e
        e = [_, data, ai, czxid, czxid, ctime, ctime, 0, 0, 0, 0, czxid]
    _, data, ai, czxid, mzxid, ctime, mtime, version, creates, aversion, owner, pzxid = e
    node = ZNode(data, acls[ai], czxid, ctime, owner)
    node.mzxid, node.mtime, node.version = mzxid, mtime, version
    node.creates, node.aversion, node.pzxid = creates, aversion, pzxid
    return node


def _read_nodes_v1(tree, unpacker, acls, count) -> None:
    """FORMAT 1: one [path, ...] entry per node, parents anywhere."""
    nodes = {}
    for _ in range(count):
        (path, data, idx, czxid, mzxid, ctime, mtime, version, creates, aversion,
         owner, pzxid) = unpacker.unpack()
        node = ZNode(data, acls[idx], czxid, ctime, owner)
        node.mzxid, node.mtime, node.version = mzxid, mtime, version
        node.creates, node.aversion, node.pzxid = creates, aversion, pzxid
        nodes[path] = node
    # Link children; drop nodes whose parent was deleted while the snapshot
    # was written (the log replay deletes them anyway).
    tree.nodes = {"/": nodes["/"], "": nodes["/"]}
    for path in sorted(nodes, key=lambda p: p.count("/")):
        if path == "/":
            continue
        parent_path = parent_of(path)
        parent = tree.nodes.get(parent_path)
        if parent is None:
            continue
        tree.link(path, nodes[path], parent)
