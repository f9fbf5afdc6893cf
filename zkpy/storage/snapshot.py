"""Snapshots: files `snapshot.<zxid in hex>` in <dataDir>/version-2.

    file    = MAGIC (8) + FORMAT (i32) + reserved (i32) + zxid (i64)
              + body + trailer
    body    = msgpack stream: sessions {id: timeout}, the ACL table (list),
              node count, then one entry per node
    trailer = MAGIC_END (8) + crc32 of everything before it (u32)

Snapshots are fuzzy, like ZooKeeper's: written by a background thread while the
tree keeps changing, they hold every txn up to `zxid` and maybe some after;
replaying the log from zxid + 1 makes the tree exact."""

import io
import os
import struct
import zlib

import msgpack

from ..datatree.tree import DataTree
from ..datatree.znode import ZNode
from ..datatree.paths import split_path
from .txnlog import fsync_dir, list_by_zxid

MAGIC = b"ZKPYSNAP"
MAGIC_END = b"ZKPYSEND"
FORMAT = 1
HEADER = struct.Struct(">8siiq")
TRAILER = struct.Struct(">8sI")
SNAP_PREFIX = "snapshot."


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
        self.crc = zlib.crc32(b, self.crc)
        self.f.write(b)


def write_snapshot(tree: DataTree, zxid: int, snap_dir: str) -> str:
    """Write a snapshot of tree holding at least every txn up to zxid.  Safe to
    call from a thread while the event loop changes the tree: each step takes
    what it reads in one piece (dict.copy() is atomic under the GIL)."""
    os.makedirs(snap_dir, exist_ok=True)
    final = os.path.join(snap_dir, snapshot_file_name(zxid))
    tmp = final + ".tmp"
    with open(tmp, "wb", buffering=1 << 20) as f:
        dump_snapshot(tree, zxid, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(snap_dir)
    return final


def write_snapshot_bytes(blob, zxid: int, snap_dir: str) -> str:
    """Write a snapshot that is already serialised (what snapshot_bytes made,
    say on the leader that sent it) as the snapshot file for zxid."""
    os.makedirs(snap_dir, exist_ok=True)
    final = os.path.join(snap_dir, snapshot_file_name(zxid))
    tmp = final + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(snap_dir)
    return final


def snapshot_bytes(tree: DataTree, zxid: int) -> bytes:
    """A snapshot as bytes (what a leader sends a follower it syncs by SNAP)."""
    f = io.BytesIO()
    dump_snapshot(tree, zxid, f)
    return f.getvalue()


def dump_snapshot(tree: DataTree, zxid: int, f) -> None:
    # dict.copy() takes a dict in one step (list(d.items()) does not: it
    # allocates as it goes, and a garbage collection may switch threads).
    sessions = tree.sessions.copy()
    items = tree.nodes.copy().items()
    acl_index: dict = {}
    packer = msgpack.Packer(use_bin_type=True)
    w = _CrcWriter(f)
    w.write(HEADER.pack(MAGIC, FORMAT, 0, zxid))
    w.write(packer.pack(sessions))
    entries = []
    for path, node in items:
        if not path:
            continue  # the "" alias of the root
        acl = node.acl
        idx = acl_index.get(acl)
        if idx is None:
            idx = acl_index[acl] = len(acl_index)
        entries.append((path, node.data, idx, node.czxid, node.mzxid, node.ctime,
                        node.mtime, node.version, node.creates, node.aversion,
                        node.owner, node.pzxid))
    w.write(packer.pack([[list(a) for a in acl] for acl in acl_index]))
    w.write(packer.pack(len(entries)))
    for e in entries:
        w.write(packer.pack(e))
    f.write(TRAILER.pack(MAGIC_END, w.crc))


def read_snapshot(path: str) -> DataTree:
    with open(path, "rb") as f:
        buf = f.read()
    return parse_snapshot(buf, path)


def parse_snapshot(buf, path: str = "snapshot") -> DataTree:
    if len(buf) < HEADER.size + TRAILER.size:
        raise CorruptSnapshotError(f"{path}: truncated")
    magic, fmt, _, zxid = HEADER.unpack_from(buf, 0)
    if magic != MAGIC or fmt != FORMAT:
        raise CorruptSnapshotError(f"{path}: not a zkpy snapshot")
    end_magic, crc = TRAILER.unpack_from(buf, len(buf) - TRAILER.size)
    body_end = len(buf) - TRAILER.size
    if end_magic != MAGIC_END or zlib.crc32(memoryview(buf)[:body_end]) != crc:
        raise CorruptSnapshotError(f"{path}: checksum mismatch")
    unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=False,
                                max_buffer_size=len(buf))
    unpacker.feed(memoryview(buf)[HEADER.size:body_end])
    tree = DataTree()
    tree.sessions = {int(k): v for k, v in unpacker.unpack().items()}
    acls = [tree.intern_acl(a) for a in unpacker.unpack()]
    count = unpacker.unpack()
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
        parent_path, name = split_path(path)
        parent = tree.nodes.get(parent_path)
        if parent is None:
            continue
        tree.link(path, nodes[path], parent, name)
    tree.last_zxid = zxid
    return tree
