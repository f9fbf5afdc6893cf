"""The `zkpy` command: look at and check data directories, and import Apache
ZooKeeper's.

    zkpy dump-log FILE              one line per txn
    zkpy dump-snapshot FILE         header, sessions, one line per znode
    zkpy check DATADIR [--log-dir DIR]
                                    recovery, read-only, and a summary
    zkpy import-zookeeper SRC_DATADIR DEST_DATADIR [--src-log-dir DIR]
                                    ZooKeeper 3.5-3.9 snapshot + logs -> a zkpy
                                    snapshot in DEST_DATADIR/version-2

dump-log and dump-snapshot read zkpy's files and ZooKeeper's alike (told apart
by their magic).  Exit status: 0 ok, 1 a damaged or unreadable file or
directory (the message says which and where), 2 bad usage."""

import argparse
import datetime
import logging
import os
import sys

from ..datatree.txn import owner_kind, ttl_of
from ..protocol.errors import ERROR_NAMES
from ..protocol.opcodes import CREATE_OPS, OP_SHORT_NAMES, Op
from ..storage import zookeeper_format as zkf
from ..storage.database import VERSION_DIR, DataDirError, restore
from ..storage.snapshot import (MAGIC as SNAP_MAGIC, CorruptSnapshotError, list_snapshots,
                                read_snapshot, write_snapshot)
from ..storage.txnlog import MAGIC as LOG_MAGIC, CorruptLogError, list_logs, scan_log

PREVIEW = 32


class ToolError(Exception):
    """Reported as `zkpy <command>: <message>` with exit status 1."""


# --- formatting ---------------------------------------------------------------------------

def _time(ms: int) -> str:
    try:
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _hex(v: int) -> str:
    return f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"


def _perms(p: int) -> str:
    return "".join(c for c, bit in zip("cdrwa", (4, 8, 1, 2, 16)) if p & bit) or "-"


def _acl(acl) -> str:
    if acl is None:
        return "[]"
    return "[" + ",".join(f"{a[1]}:{a[2]}:{_perms(a[0])}" for a in acl) + "]"


def _data(data) -> str:
    if data is None:
        return "null"
    s = repr(bytes(data[:PREVIEW]))
    return f"{len(data)}B {s}{'...' if len(data) > PREVIEW else ''}"


def _owner(owner: int) -> str:
    kind = owner_kind(owner)
    if kind == "ephemeral":
        return f"ephemeral {_hex(owner)}"
    if kind == "ttl":
        return f"ttl {ttl_of(owner)}ms"
    return kind


def _type_name(t: int) -> str:
    return OP_SHORT_NAMES.get(t, f"type{t}")


def _op_summary(t: int, body) -> str:
    if t in CREATE_OPS:
        path, data, acl, owner, creates = body
        return (f"{path} data={_data(data)} acl={_acl(acl)} {_owner(owner)} "
                f"parentCversion={creates}")
    if t in (Op.DELETE, Op.DELETE_CONTAINER):
        return body[0]
    if t == Op.SET_DATA:
        return f"{body[0]} data={_data(body[1])} version={body[2]}"
    if t == Op.SET_ACL:
        return f"{body[0]} acl={_acl(body[1])} aversion={body[2]}"
    if t == Op.CHECK:
        return f"{body[0]} version={body[1]}"
    if t == Op.ERROR:
        return f"{ERROR_NAMES.get(body[0], '')}({body[0]})"
    if t == Op.CREATE_SESSION:
        return f"timeout={body[0]}"
    if t == Op.CLOSE_SESSION:
        return "ephemerals=[" + ",".join(body[0]) + "]"
    if t == Op.MULTI:
        ops = body[0]
        return f"{len(ops)} ops: " + " | ".join(
            f"{_type_name(ot)} {_op_summary(ot, ob)}" for ot, ob in ops)
    return repr(body)


def format_txn(txn) -> str:
    return (f"{_hex(txn.zxid)} {_time(txn.time)} session {_hex(txn.session_id)} "
            f"cxid {txn.cxid} {_type_name(txn.type)} {_op_summary(txn.type, txn.body)}")


def format_znode(path: str, node) -> str:
    (czxid, mzxid, ctime, mtime, version, cversion, aversion, eph, length, n,
     pzxid) = node.stat()
    extra = ""
    if node.owner and owner_kind(node.owner) in ("container", "ttl"):
        extra = f" {_owner(node.owner)}"
    return (f"{path} czxid={_hex(czxid)} mzxid={_hex(mzxid)} pzxid={_hex(pzxid)} "
            f"ctime={_time(ctime)} mtime={_time(mtime)} version={version} "
            f"cversion={cversion} aversion={aversion} ephemeralOwner={_hex(eph)}{extra} "
            f"dataLength={length} numChildren={n} acl={_acl(node.acl)} data={_data(node.data)}")


# --- commands ---------------------------------------------------------------------------------

def _magic(path: str) -> bytes:
    """The file's first 8 bytes (ZooKeeper's magic is the first 4)."""
    try:
        if path.endswith((".gz", ".snappy")):
            return zkf.file_magic(path)
        with open(path, "rb") as f:
            return f.read(8)
    except (OSError, zkf.ZooKeeperFormatError) as e:
        raise ToolError(str(e)) from None


def cmd_dump_log(args, out) -> int:
    path = args.file
    magic = _magic(path)
    if magic.startswith(zkf.LOG_MAGIC):
        txns, end, dbid = zkf.read_zk_log(path)
        print(f"# Apache ZooKeeper transaction log {path}: dbid {dbid}, {len(txns)} txns, "
              f"data ends at offset {end}", file=out)
        for zt in txns:
            print(format_txn(zkf.to_zkpy_txn(zt)), file=out)
        return 0
    if magic != LOG_MAGIC:
        raise ToolError(f"{path}: not a zkpy or ZooKeeper transaction log (magic {magic!r})")
    try:
        txns, end, torn = scan_log(path, is_last=True)
    except CorruptLogError as e:
        raise ToolError(str(e)) from None
    tail = f" (torn record after offset {end})" if torn else ""
    print(f"# zkpy transaction log {path}: {len(txns)} txns, data ends at offset "
          f"{max(end, 0)}{tail}", file=out)
    for txn in txns:
        print(format_txn(txn), file=out)
    return 0


def _print_tree(tree, out) -> None:
    print(f"sessions: {len(tree.sessions)}", file=out)
    for sid, timeout in sorted(tree.sessions.items()):
        eph = sorted(tree.ephemerals.get(sid, ()))
        print(f"  session {_hex(sid)} timeout={timeout} ephemerals={len(eph)}", file=out)
    paths = sorted(tree.paths())
    print(f"znodes: {len(paths)}", file=out)
    for p in paths:
        print(format_znode(p, tree.nodes[p]), file=out)


def cmd_dump_snapshot(args, out) -> int:
    path = args.file
    magic = _magic(path)
    if magic.startswith(zkf.SNAP_MAGIC):
        snap = zkf.read_zk_snapshot(path)
        tree = zkf.snapshot_to_tree(snap)
        print(f"# Apache ZooKeeper snapshot {path}: dbid {snap.dbid}", file=out)
        print(f"zxid: {_hex(snap.zxid)}", file=out)
        if snap.digest is not None:
            z, ver, d = snap.digest
            print(f"digest: zxid {_hex(z)} version {ver} value {d}", file=out)
        if snap.last_processed_zxid is not None:
            print(f"lastProcessedZxid: {_hex(snap.last_processed_zxid)}", file=out)
        _print_tree(tree, out)
        return 0
    if magic != SNAP_MAGIC:
        raise ToolError(f"{path}: not a zkpy or ZooKeeper snapshot (magic {magic!r})")
    try:
        tree = read_snapshot(path)
    except CorruptSnapshotError as e:
        raise ToolError(str(e)) from None
    print(f"# zkpy snapshot {path}", file=out)
    print(f"zxid: {_hex(tree.last_zxid)}", file=out)
    _print_tree(tree, out)
    return 0


def _data_version_dir(path: str, what: str) -> str:
    sub = os.path.join(path, VERSION_DIR)
    if os.path.isdir(sub):
        return sub
    if os.path.basename(os.path.normpath(path)) == VERSION_DIR and os.path.isdir(path):
        return path
    if not os.path.isdir(path):
        raise ToolError(f"{path}: no such directory")
    raise ToolError(f"{path}: no {VERSION_DIR} directory in this {what}")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def cmd_check(args, out) -> int:
    snap_dir = _data_version_dir(args.datadir, "dataDir")
    log_dir = _data_version_dir(args.log_dir, "dataLogDir") if args.log_dir else snap_dir
    snaps = list_snapshots(snap_dir)
    logs = list_logs(log_dir)
    for _, path in (snaps[-1:] + logs[-1:]):
        if _magic(path)[:4] in (zkf.SNAP_MAGIC, zkf.LOG_MAGIC):
            raise ToolError(f"{path} is Apache ZooKeeper's, not zkpy's: "
                            f"use `zkpy import-zookeeper` to bring that data over")
    print(f"snapshot dir: {snap_dir}", file=out)
    print(f"log dir: {log_dir}", file=out)
    print(f"snapshots: {len(snaps)}", file=out)
    used = None
    for zxid, path in reversed(snaps):
        try:
            read_snapshot(path)
            state = "ok"
            if used is None:
                used = path
                state = "ok (recovery starts here)"
        except CorruptSnapshotError as e:
            state = f"INVALID: {e}"
        except OSError as e:
            state = f"UNREADABLE: {e}"
        print(f"  {os.path.basename(path)} zxid {_hex(zxid)} {os.path.getsize(path)} bytes: "
              f"{state}", file=out)
    print(f"logs: {len(logs)}", file=out)
    for first, path in logs:
        print(f"  {os.path.basename(path)} from zxid {_hex(first)} "
              f"{os.path.getsize(path)} bytes", file=out)
    collector = _Collect()
    storage_log = logging.getLogger("zkpy.storage")
    saved = storage_log.level, storage_log.propagate
    storage_log.addHandler(collector)
    storage_log.setLevel(logging.WARNING)
    storage_log.propagate = False
    try:
        tree = restore(snap_dir, log_dir, repair=False)
    except (DataDirError, CorruptLogError, CorruptSnapshotError) as e:
        raise ToolError(f"recovery fails: {e}") from None
    except OSError as e:
        raise ToolError(f"recovery fails: {e}") from None
    finally:
        storage_log.removeHandler(collector)
        storage_log.setLevel(saved[0])
        storage_log.propagate = saved[1]
    for m in collector.messages:
        print(f"warning: {m}", file=out)
    znodes = sum(1 for _ in tree.paths())
    print(f"last zxid: {_hex(tree.last_zxid)}", file=out)
    print(f"znodes: {znodes}", file=out)
    print(f"ephemerals: {tree.ephemeral_count()}", file=out)
    print(f"sessions: {len(tree.sessions)}", file=out)
    print("ok: recovery succeeds", file=out)
    return 0


def cmd_import_zookeeper(args, out) -> int:
    try:
        src_snap = zkf.version_dir(args.src)
        src_log = zkf.version_dir(args.src_log_dir) if args.src_log_dir else src_snap
    except zkf.ZooKeeperFormatError as e:
        raise ToolError(str(e)) from None
    dest_dir = os.path.join(args.dest, VERSION_DIR)
    existing = list_snapshots(dest_dir) + list_logs(dest_dir)
    if existing:
        raise ToolError(f"{dest_dir} already holds zkpy data ({os.path.basename(existing[0][1])}"
                        f"...): import into an empty directory")
    result = zkf.load_zookeeper(src_snap, src_log)
    tree = result.tree
    for path, why in result.skipped_snapshots:
        print(f"warning: skipped snapshot {path}: {why}", file=out)
    if result.snapshot:
        print(f"read ZooKeeper snapshot {result.snapshot} (zxid {_hex(result.snapshot_zxid)})",
              file=out)
    else:
        print("no ZooKeeper snapshot: replaying the logs from the start", file=out)
    print(f"replayed {result.txns_applied} txns from {len(result.logs)} log file(s)", file=out)
    os.makedirs(dest_dir, exist_ok=True)
    written = write_snapshot(tree, tree.last_zxid, dest_dir, stable=True)
    # Read it back the way zkpy-server will.
    check = restore(dest_dir, dest_dir, repair=False)
    if check.last_zxid != tree.last_zxid or check.node_count() != tree.node_count():
        raise ToolError(f"{written}: reads back differently (zxid {_hex(check.last_zxid)}, "
                        f"{check.node_count()} nodes)")
    znodes = sum(1 for _ in tree.paths())
    print(f"wrote {written}: last zxid {_hex(tree.last_zxid)}, {znodes} znodes, "
          f"{tree.ephemeral_count()} ephemerals, {len(tree.sessions)} sessions", file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zkpy", description="zkpy data directory tools.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("dump-log", help="print a transaction log, one txn a line")
    s.add_argument("file")
    s.set_defaults(run=cmd_dump_log)
    s = sub.add_parser("dump-snapshot", help="print a snapshot: zxid, sessions, znodes")
    s.add_argument("file")
    s.set_defaults(run=cmd_dump_snapshot)
    s = sub.add_parser("check", help="run recovery read-only on a data directory")
    s.add_argument("datadir", help="dataDir (holding version-2)")
    s.add_argument("--log-dir", help="dataLogDir, when it is not dataDir")
    s.set_defaults(run=cmd_check)
    s = sub.add_parser("import-zookeeper",
                       help="import an Apache ZooKeeper (3.5-3.9) dataDir into zkpy's format")
    s.add_argument("src", metavar="SRC_DATADIR", help="ZooKeeper's dataDir")
    s.add_argument("dest", metavar="DEST_DATADIR", help="zkpy's dataDir (empty)")
    s.add_argument("--src-log-dir", help="ZooKeeper's dataLogDir, when it is not dataDir")
    s.set_defaults(run=cmd_import_zookeeper)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    try:
        return args.run(args, out)
    except BrokenPipeError:  # `zkpy dump-log ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ToolError, zkf.ZooKeeperFormatError, OSError) as e:
        out.flush()
        print(f"zkpy {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
