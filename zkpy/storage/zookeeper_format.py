"""Readers of Apache ZooKeeper's on-disk format (the files in a ZooKeeper
3.5 to 3.9 `version-2` directory), and the import of such a directory into a
zkpy DataTree.  Read-only: nothing here writes in ZooKeeper's format.

Snapshot `snapshot.<zxid hex>` (FileSnap; `.gz` / `.snappy` when
zookeeper.snapshot.compression.method is set), one jute stream:

    FileHeader   magic "ZKSN" (i32), version 2 (i32), dbid (i64)
    sessions     count (i32), then count x (session id i64, timeout i32)
    ACL cache    count (i32), then count x (ref i64, vector<ACL>)
    nodes        (path ustring, DataNode) until the path "/"; the root is ""
                 DataNode = data (buffer), acl ref (i64; -1 = OPEN_ACL_UNSAFE),
                            StatPersisted (czxid mzxid ctime mtime i64,
                            version cversion aversion i32,
                            ephemeralOwner pzxid i64)
    seal         Adler32 of every byte before it (i64), then the string "/"
    3.6+:        ZxidDigest (zxid i64, digestVersion i32, digest i64 -- or a
                 hex ustring when digestVersion < 2), then another seal
    3.9+:        lastProcessedZxid (i64), then another seal

StatPersisted.cversion counts child creates; a client sees
2 * cversion - numChildren.  zkpy's ZNode.creates is that same counter.

Transaction log `log.<first zxid hex>` (FileTxnLog):

    FileHeader   magic "ZKLG", version 2, dbid
    entries      Adler32 of the bytes (i64), length (i32), bytes, 'B' (0x42)
                 bytes = TxnHeader (clientId i64, cxid i32, zxid i64, time i64,
                         type i32) + the txn record of that type
                         [+ TxnDigest (version i32, treeDigest i64), 3.6+]
    padding      zeros: files are preallocated in blocks of preAllocSize
                 (64 MiB by default), so a zero length ends the data

As in ZooKeeper's FileTxnIterator, a zero length, a record running past the
end of the file or a missing 'B' ends that file's data (a torn tail); an entry
whose checksum does not match is corruption."""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import zlib
from dataclasses import dataclass, field

from ..datatree.paths import parent_of, split_path
from ..datatree.tree import DataTree
from ..datatree.txn import CONTAINER_OWNER, Txn, ttl_owner
from ..datatree.znode import ZNode
from ..protocol.errors import Err, MarshallingError
from ..protocol.jute import Reader
from .txnlog import list_by_zxid
from ..protocol.opcodes import CREATE_OPS, Op
from ..protocol.records import ACL, OPEN_ACL_UNSAFE

SNAP_MAGIC = b"ZKSN"
LOG_MAGIC = b"ZKLG"
FILE_VERSION = 2
FILE_HEADER = struct.Struct(">4siq")
TXN_HEADER = struct.Struct(">qiqqi")
STAT_PERSISTED = struct.Struct(">qqqqiiiqq")
LOG_ENTRY = struct.Struct(">qi")   # checksum, length
EOR = 0x42                         # 'B', ends every log entry
OPEN_UNSAFE_ACL_REF = -1
SNAP_PREFIX = "snapshot."
LOG_PREFIX = "log."
VERSION_DIR = "version-2"


class ZooKeeperFormatError(Exception):
    """A ZooKeeper file that cannot be read, or a directory that cannot be
    imported without losing data."""


# --- records ---------------------------------------------------------------------------

@dataclass
class ZkNode:
    path: str
    data: bytes | None
    acl: tuple          # of ACL
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int       # creates of children, as persisted
    aversion: int
    ephemeral_owner: int
    pzxid: int


@dataclass
class ZkSnapshot:
    path: str
    zxid: int                         # from the file name, as ZooKeeper takes it
    dbid: int
    sessions: dict                    # session id -> timeout (ms)
    acls: dict                        # acl ref -> tuple of ACL
    nodes: list                       # of ZkNode, in file order ("" is the root)
    digest: tuple | None = None       # (zxid, digest version, digest)
    last_processed_zxid: int | None = None


@dataclass
class ZkTxn:
    """One log entry: TxnHeader fields, the decoded record and the rest."""
    session_id: int
    cxid: int
    zxid: int
    time: int
    type: int
    record: object          # one of the records below, or None
    digest: tuple | None = None   # (version, tree digest) when logged
    offset: int = 0


@dataclass
class CreateTxn:
    path: str
    data: bytes | None
    acl: tuple
    ephemeral: bool
    parent_cversion: int    # -1 in a pre-3.3 "V0" create: the parent's + 1


@dataclass
class CreateTTLTxn:
    path: str
    data: bytes | None
    acl: tuple
    parent_cversion: int
    ttl: int


@dataclass
class CreateContainerTxn:
    path: str
    data: bytes | None
    acl: tuple
    parent_cversion: int


@dataclass
class DeleteTxn:
    path: str


@dataclass
class SetDataTxn:
    path: str
    data: bytes | None
    version: int            # the new version


@dataclass
class CheckVersionTxn:
    path: str
    version: int


@dataclass
class SetACLTxn:
    path: str
    acl: tuple
    version: int            # the new aversion


@dataclass
class CreateSessionTxn:
    timeout: int


@dataclass
class CloseSessionTxn:
    paths: list | None      # None: a 3.5 log (or closeSessionTxn.enabled=false)


@dataclass
class ErrorTxn:
    err: int


@dataclass
class MultiTxn:
    txns: list = field(default_factory=list)   # of (type, record)


# --- jute helpers --------------------------------------------------------------------------

def _reader(buf) -> Reader:
    return Reader(buf, 0, max_field=max(len(buf), 1))


def _acl_list(r: Reader, what: str) -> tuple:
    n = r.int()
    if n < 0:
        raise MarshallingError(f"missing {what}")
    if n > r.remaining():
        raise MarshallingError(f"{what}: vector longer than its record")
    out = []
    for _ in range(n):
        perms = r.int()
        scheme = r.ustring()
        ident = r.ustring()
        out.append(ACL(perms, scheme, ident))
    return tuple(out)


def _acl_or_none(r: Reader) -> tuple:
    n = r.int()
    if n == -1:
        return ()
    r.pos -= 4
    return _acl_list(r, "acl")


def _zxid_of_name(name: str, prefix: str) -> int | None:
    """ZooKeeper's Util.getZxidFromName: the part after the first '.'."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] + "." != prefix:
        return None
    try:
        return int(parts[1], 16)
    except ValueError:
        return None


def version_dir(path: str) -> str:
    """`path/version-2` if it exists, else path itself if it is one."""
    sub = os.path.join(path, VERSION_DIR)
    if os.path.isdir(sub):
        return sub
    if os.path.basename(os.path.normpath(path)) == VERSION_DIR and os.path.isdir(path):
        return path
    raise ZooKeeperFormatError(f"{path}: no {VERSION_DIR} directory (not a ZooKeeper dataDir?)")


def list_zk_snapshots(snap_dir: str) -> list[tuple[int, str]]:
    """(zxid, path) of every snapshot file, oldest first."""
    out = []
    try:
        names = os.listdir(snap_dir)
    except FileNotFoundError:
        return []
    for name in names:
        z = _zxid_of_name(name, SNAP_PREFIX)
        if z is not None and not name.endswith(".tmp"):
            out.append((z, os.path.join(snap_dir, name)))
    out.sort()
    return out


def list_zk_logs(log_dir: str) -> list[tuple[int, str]]:
    return list_by_zxid(log_dir, LOG_PREFIX, _zxid_of_name)


def file_magic(path: str) -> bytes:
    """The first 4 bytes of a file (b"ZKSN", b"ZKLG", b"ZKPY"...), after
    decompressing a .gz/.snappy snapshot."""
    if path.endswith(".gz") or path.endswith(".snappy"):
        return _snapshot_bytes(path)[:4]
    with open(path, "rb") as f:
        return f.read(4)


# --- snapshots ----------------------------------------------------------------------------

def _snapshot_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if path.endswith(".gz"):
            return gzip.decompress(raw)
        if path.endswith(".snappy"):
            return snappy_stream_decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise ZooKeeperFormatError(f"{path}: cannot decompress: {e}") from None
    return raw


def _check_seal(buf, r: Reader, path: str, what: str) -> None:
    expected = zlib.adler32(memoryview(buf)[:r.pos])
    value = r.long()
    r.ustring()  # the "/" written after the checksum
    if value != expected:
        raise ZooKeeperFormatError(f"{path}: {what}: Adler32 checksum mismatch "
                                   f"(stored {value:#x}, computed {expected:#x})")


def read_zk_snapshot(path: str) -> ZkSnapshot:
    """Parse one ZooKeeper snapshot, verifying its checksums."""
    name_zxid = _zxid_of_name(os.path.basename(path), SNAP_PREFIX)
    buf = _snapshot_bytes(path)
    r = _reader(buf)
    try:
        if len(buf) < FILE_HEADER.size:
            raise ZooKeeperFormatError(f"{path}: truncated file header")
        magic, version, dbid = FILE_HEADER.unpack_from(buf, 0)
        if magic != SNAP_MAGIC:
            raise ZooKeeperFormatError(f"{path}: not a ZooKeeper snapshot (magic {magic!r})")
        if version != FILE_VERSION:
            raise ZooKeeperFormatError(f"{path}: unsupported snapshot version {version}")
        r.pos = FILE_HEADER.size
        sessions = {}
        count = r.int()
        for _ in range(max(count, 0)):
            sid = r.long()
            sessions[sid] = r.int()
        acls = {}
        count = r.int()
        for _ in range(max(count, 0)):
            ref = r.long()
            acls[ref] = _acl_list(r, "acls")
        nodes = []
        while True:
            node_path = r.ustring()
            if node_path == "/":
                break
            if node_path is None:
                raise ZooKeeperFormatError(f"{path}: offset {r.pos}: null node path")
            data = r.buffer()
            ref = r.long()
            pos = r.pos
            if pos + STAT_PERSISTED.size > r.end:
                raise MarshallingError("truncated StatPersisted")
            st = STAT_PERSISTED.unpack_from(buf, pos)
            r.pos = pos + STAT_PERSISTED.size
            if ref == OPEN_UNSAFE_ACL_REF:
                acl = OPEN_ACL_UNSAFE
            else:
                acl = acls.get(ref)
                if acl is None:
                    raise ZooKeeperFormatError(f"{path}: {node_path!r} names ACL {ref}, "
                                               f"which is not in the ACL cache")
            nodes.append(ZkNode(node_path, data, acl, *st))
        _check_seal(buf, r, path, "data tree")
        snap = ZkSnapshot(path, name_zxid if name_zxid is not None else 0, dbid,
                          sessions, acls, nodes)
        _read_trailers(buf, r, snap)
        return snap
    except MarshallingError as e:
        raise ZooKeeperFormatError(f"{path}: offset {r.pos}: truncated or malformed "
                                   f"({e})") from None


def _read_trailers(buf, r: Reader, snap: ZkSnapshot) -> None:
    """The optional sections after the tree, each followed by a seal; which
    ones are there depends on the version and on zookeeper.digest.enabled and
    zookeeper.serializeLastProcessedZxid.enabled, so each is recognised by its
    seal."""
    if r.remaining() > 0:
        start = r.pos
        try:
            zxid, dver = r.long(), r.int()
            digest = r.long() if dver >= 2 else int(r.ustring() or "0", 16)
            _check_seal(buf, r, snap.path, "digest")
            snap.digest = (zxid, dver, digest)
        except (MarshallingError, ZooKeeperFormatError, ValueError):
            r.pos = start
    if r.remaining() > 0:
        start = r.pos
        try:
            last = r.long()
            _check_seal(buf, r, snap.path, "last processed zxid")
            snap.last_processed_zxid = last
        except (MarshallingError, ZooKeeperFormatError):
            r.pos = start


def snappy_stream_decompress(raw: bytes) -> bytes:
    """snappy-java's SnappyOutputStream framing: a 16-byte header
    (0x82 "SNAPPY" 0x00, version i32, compatible version i32), then blocks
    of (compressed length i32, raw snappy block)."""
    magic = b"\x82SNAPPY\x00"
    if raw[:8] != magic:
        raise ValueError("not a snappy-java stream")
    pos = 16
    out = bytearray()
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated snappy block length")
        (n,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        if n < 0 or pos + n > len(raw):
            raise ValueError("truncated snappy block")
        out += snappy_uncompress(raw[pos:pos + n])
        pos += n
    return bytes(out)


def snappy_uncompress(block: bytes) -> bytes:
    """Decode one raw snappy block (the format of google/snappy's
    format_description.txt): a varint length, then literals and copies."""
    pos = 0
    length = 0
    shift = 0
    while True:
        b = block[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    out = bytearray()
    end = len(block)
    while pos < end:
        tag = block[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(block[pos:pos + extra], "little")
                pos += extra
            n += 1
            if pos + n > end:
                raise ValueError("snappy literal runs past the block")
            out += block[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | block[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(block[pos:pos + 2], "little")
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(block[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError("snappy copy before the start of the output")
        start = len(out) - offset
        if offset >= n:
            out += out[start:start + n]
        else:  # overlapping copy: repeats the last `offset` bytes
            for i in range(n):
                out.append(out[start + i])
    if len(out) != length:
        raise ValueError(f"snappy block decodes to {len(out)} bytes, not {length}")
    return bytes(out)


# --- transaction logs ---------------------------------------------------------------------

def _read_create(r: Reader, t: int):
    if t == Op.CREATE_TTL:
        return CreateTTLTxn(r.ustring(), r.buffer(), _acl_or_none(r), r.int(), r.long())
    if t == Op.CREATE_CONTAINER:
        return CreateContainerTxn(r.ustring(), r.buffer(), _acl_or_none(r), r.int())
    path, data, acl, eph = r.ustring(), r.buffer(), _acl_or_none(r), r.bool()
    try:
        parent_cversion = r.int()
    except MarshallingError:
        parent_cversion = -1  # CreateTxnV0, before parentCVersion was logged
    return CreateTxn(path, data, acl, eph, parent_cversion)


def _read_record(r: Reader, t: int, in_multi: bool = False):
    if t in CREATE_OPS:
        return _read_create(r, t)
    if t in (Op.DELETE, Op.DELETE_CONTAINER):
        return DeleteTxn(r.ustring())
    if t in (Op.SET_DATA, Op.RECONFIG):
        return SetDataTxn(r.ustring(), r.buffer(), r.int())
    if t == Op.SET_ACL:
        return SetACLTxn(r.ustring(), _acl_or_none(r), r.int())
    if t == Op.CHECK:
        return CheckVersionTxn(r.ustring(), r.int())
    if t == Op.ERROR:
        return ErrorTxn(r.int())
    if t == Op.CREATE_SESSION:
        return CreateSessionTxn(r.int())
    if t == Op.CLOSE_SESSION:
        return _read_close_session(r)
    if t == Op.MULTI and not in_multi:
        n = r.int()
        if n < 0 or n > r.remaining():
            raise MarshallingError("bad multi length")
        txns = []
        for _ in range(n):
            sub_type = r.int()
            data = r.buffer() or b""
            sr = _reader(data)
            txns.append((sub_type, _read_record(sr, sub_type, in_multi=True)))
        return MultiTxn(txns)
    raise ZooKeeperFormatError(f"unsupported txn type {t}")


def _read_close_session(r: Reader):
    """CloseSessionTxn (3.6+) when its bytes are there.  What follows the
    header may also be a TxnDigest alone (closeSessionTxn.enabled=false), so
    accept the paths only if they leave nothing or exactly a digest behind."""
    start = r.pos
    if r.remaining() == 0:
        return CloseSessionTxn(None)
    try:
        paths = r.strings()
        if paths is not None and r.remaining() in (0, 12):
            return CloseSessionTxn(paths)
    except MarshallingError:
        pass
    r.pos = start
    return CloseSessionTxn(None)


def decode_zk_txn(payload, offset: int = 0) -> ZkTxn:
    """A log entry's bytes: TxnHeader + record [+ TxnDigest]."""
    if len(payload) < TXN_HEADER.size:
        raise MarshallingError("truncated TxnHeader")
    sid, cxid, zxid, time, t = TXN_HEADER.unpack_from(payload, 0)
    r = _reader(payload)
    r.pos = TXN_HEADER.size
    record = _read_record(r, t)
    digest = None
    if r.remaining() >= 12:
        digest = (r.int(), r.long())
    return ZkTxn(sid, cxid, zxid, time, t, record, digest, offset)


def read_zk_log(path: str, is_last: bool = False) -> tuple[list[ZkTxn], int, int]:
    """(txns, end offset of the data, dbid).  The data ends at a zero length,
    a truncated entry or a missing 'B', as for ZooKeeper; a checksum mismatch
    raises ZooKeeperFormatError.  The newest file (is_last) may also be empty
    or all zeros: created just before a crash, its header never written."""
    txns = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < FILE_HEADER.size:
            if is_last and not f.read().strip(b"\x00"):
                return [], 0, 0
            raise ZooKeeperFormatError(f"{path}: truncated file header")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        magic, version, dbid = FILE_HEADER.unpack_from(buf, 0)
        if is_last and magic == b"\x00" * 4 and not buf[:].strip(b"\x00"):
            return [], 0, 0
        if magic != LOG_MAGIC:
            raise ZooKeeperFormatError(f"{path}: not a ZooKeeper transaction log (magic {magic!r})")
        if version != FILE_VERSION:
            raise ZooKeeperFormatError(f"{path}: unsupported log version {version}")
        pos = FILE_HEADER.size
        while pos + LOG_ENTRY.size <= size:
            crc, length = LOG_ENTRY.unpack_from(buf, pos)
            start = pos + LOG_ENTRY.size
            if length <= 0 or start + length + 1 > size or buf[start + length] != EOR:
                break  # preallocated zeros, or a write that never completed
            payload = buf[start:start + length]
            if zlib.adler32(payload) != crc:
                raise ZooKeeperFormatError(f"{path}: offset {pos}: entry fails its Adler32 "
                                           f"checksum (CRC check failed)")
            try:
                txns.append(decode_zk_txn(payload, pos))
            except MarshallingError as e:
                raise ZooKeeperFormatError(f"{path}: offset {pos}: undecodable entry ({e})") from None
            except ZooKeeperFormatError as e:
                raise ZooKeeperFormatError(f"{path}: offset {pos}: {e}") from None
            pos = start + length + 1
        return txns, pos, dbid
    finally:
        buf.close()


# --- conversion to zkpy ---------------------------------------------------------------------

def _acl_body(acl) -> list:
    return [tuple(a) for a in acl]


def _owner_of(t: int, record, session_id: int) -> int:
    if t == Op.CREATE_CONTAINER:
        return CONTAINER_OWNER
    if t == Op.CREATE_TTL:
        return ttl_owner(record.ttl)
    return session_id if record.ephemeral else 0


def _op_body(t: int, record, session_id: int, tree: DataTree | None):
    """(zkpy type, body) of one ZooKeeper op."""
    if t in CREATE_OPS:
        creates = record.parent_cversion
        if creates == -1 and tree is not None:
            parent = tree.nodes.get(split_path(record.path)[0])
            creates = parent.creates + 1 if parent is not None else 0
        return t, (record.path, record.data, _acl_body(record.acl),
                   _owner_of(t, record, session_id), creates)
    if t in (Op.DELETE, Op.DELETE_CONTAINER):
        return t, (record.path,)
    if t in (Op.SET_DATA, Op.RECONFIG):
        return Op.SET_DATA, (record.path, record.data, record.version)
    if t == Op.SET_ACL:
        return t, (record.path, _acl_body(record.acl), record.version)
    if t == Op.CHECK:
        return t, (record.path, record.version)
    if t == Op.ERROR:
        return t, (record.err,)
    if t == Op.CREATE_SESSION:
        return t, (record.timeout,)
    if t == Op.CLOSE_SESSION:
        return t, (list(record.paths or ()),)
    raise ZooKeeperFormatError(f"unsupported txn type {t}")


def to_zkpy_txn(ztxn: ZkTxn, tree: DataTree | None = None) -> Txn:
    """The zkpy Txn with the same effect as a ZooKeeper log entry.  `tree`
    (the tree the txn applies to) is needed only for pre-3.3 creates that
    did not log the parent's cversion."""
    t, rec, sid = ztxn.type, ztxn.record, ztxn.session_id
    if t == Op.MULTI:
        subs = rec.txns
        # DataTree.processTxn: once one op failed, every op is an error
        # (RUNTIMEINCONSISTENCY after the failing one, OK before it).
        failed = any(st == Op.ERROR for st, _ in subs)
        ops = []
        after = False
        for st, srec in subs:
            if st == Op.ERROR:
                after = True
                ops.append((Op.ERROR, (srec.err,)))
            elif failed:
                ops.append((Op.ERROR, (Err.RUNTIME_INCONSISTENCY if after else Err.OK,)))
            else:
                ops.append(_op_body(st, srec, sid, tree))
        body = (ops,)
    else:
        t, body = _op_body(t, rec, sid, tree)
    return Txn(sid, ztxn.cxid, ztxn.zxid, ztxn.time, t, body)


def snapshot_to_tree(snap: ZkSnapshot) -> DataTree:
    """A DataTree holding exactly the snapshot's nodes and sessions."""
    tree = DataTree()
    tree.sessions = dict(snap.sessions)
    nodes = {}
    root = None
    for zn in snap.nodes:
        node = ZNode(zn.data, tree.intern_acl(zn.acl), zn.czxid, zn.ctime, zn.ephemeral_owner)
        node.mzxid, node.mtime, node.version = zn.mzxid, zn.mtime, zn.version
        node.creates, node.aversion, node.pzxid = zn.cversion, zn.aversion, zn.pzxid
        if zn.path == "":
            root = node
        else:
            nodes[zn.path] = node
    if root is None:
        raise ZooKeeperFormatError(f"{snap.path}: the snapshot has no root node")
    tree.nodes = {"/": root, "": root}
    tree.ephemerals = {}
    tree.containers = set()
    tree.ttls = set()
    for zn in snap.nodes:  # parents always come before their children
        path = zn.path
        if path == "":
            continue
        parent_path = parent_of(path)
        parent = tree.nodes.get(parent_path)
        if parent is None:
            raise ZooKeeperFormatError(f"{snap.path}: invalid data tree: no parent "
                                       f"{parent_path} for {path}")
        tree.link(path, nodes[path], parent)
    tree.last_zxid = snap.zxid
    tree.loaded()   # quota roots and stats (DataTree.setupQuota), the digest
    return tree


def apply_zk_txn(tree: DataTree, ztxn: ZkTxn) -> None:
    """Apply a ZooKeeper txn to tree as recovery does (replay=True: over a
    fuzzy snapshot a create may find its node there already).  The ops of a
    multi are replayed one by one, as ZooKeeper's processTxn does, so that
    one op meeting the fuzzy snapshot does not stop the others."""
    txn = to_zkpy_txn(ztxn, tree)
    if txn.type == Op.MULTI:
        for op_type, body in txn.body[0]:
            tree.apply(Txn(txn.session_id, txn.cxid, txn.zxid, txn.time, op_type, body),
                       replay=True)
    else:
        tree.apply(txn, replay=True)


def _gap(last: int, zxid: int) -> bool:
    """Whether txns are missing between zxid `last` and the next one logged:
    zxids count up by one within an epoch, and a new epoch starts at 1."""
    if (zxid >> 32) == (last >> 32):
        return zxid != last + 1
    return (zxid & 0xFFFFFFFF) != 1


@dataclass
class ImportResult:
    tree: DataTree
    snapshot: str | None          # the ZooKeeper snapshot used
    snapshot_zxid: int
    logs: list                    # the log files read
    txns_applied: int
    skipped_snapshots: list       # (path, why) of newer snapshots that failed


def load_zookeeper(snap_dir: str, log_dir: str | None = None) -> ImportResult:
    """ZooKeeper's recovery (FileTxnSnapLog.restore) on a version-2
    directory: the newest valid snapshot, then every logged txn after it."""
    log_dir = log_dir or snap_dir
    tree = None
    used = None
    skipped = []
    for zxid, path in reversed(list_zk_snapshots(snap_dir)):
        try:
            snap = read_zk_snapshot(path)
            tree = snapshot_to_tree(snap)
            used = path
            break
        except ZooKeeperFormatError as e:
            skipped.append((path, str(e)))
    if tree is None:
        if skipped:
            raise ZooKeeperFormatError("no valid snapshot: " + "; ".join(w for _, w in skipped))
        tree = DataTree()   # a server that never took a snapshot: the log has it all
    snap_zxid = tree.last_zxid
    logs = list_zk_logs(log_dir)
    # FileTxnLog.getLogFiles: the newest log starting at or before the
    # snapshot's zxid, and every later one.
    start = 0
    for i, (first, _) in enumerate(logs):
        if first <= snap_zxid:
            start = i
    needed = logs[start:]
    if needed and needed[0][0] > snap_zxid and _gap(snap_zxid, needed[0][0]):
        raise ZooKeeperFormatError(
            f"{needed[0][1]}: the log starts at zxid 0x{needed[0][0]:x} but the snapshot "
            f"ends at 0x{snap_zxid:x}: a log file is missing")
    applied = 0
    for i, (first, path) in enumerate(needed):
        txns, _, _ = read_zk_log(path, is_last=i == len(needed) - 1)
        for zt in txns:
            last = tree.last_zxid
            if zt.zxid <= last:
                continue
            if _gap(last, zt.zxid):
                raise ZooKeeperFormatError(
                    f"{path}: txn 0x{zt.zxid:x} follows 0x{last:x}: txns are missing "
                    f"(a log file was lost or truncated?)")
            apply_zk_txn(tree, zt)
            if tree.last_zxid < zt.zxid:
                tree.last_zxid = zt.zxid
            applied += 1
    return ImportResult(tree, used, snap_zxid, [p for _, p in needed], applied, skipped)
