"""The `zkpy` housekeeping command: import-zookeeper on a data directory that
Debian's Apache ZooKeeper 3.8 writes during the test, and dump-log,
dump-snapshot and check on zkpy's own data directories.

The import is checked against what ZooKeeper itself reported before it
stopped: every znode's data, ACL and full Stat, the last zxid, the sequential
counters and the live sessions with their ephemerals."""

import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections import namedtuple

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.serialization import Create2
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from zkpy.protocol.opcodes import Op
from zkpy.storage import zookeeper_format as zkf
from zkpy.storage.snapshot import read_snapshot
from zkpy.testing import ZkpyServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTH = ("digest", "admin:secret")


def zkpy_cli(*args, expect=0):
    """Run `zkpy ARGS...` (as `python -m zkpy.tools.cli`, which is what the
    console script calls) and return the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "zkpy.tools.cli", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    if expect is not None:
        assert proc.returncode == expect, (
            f"zkpy {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


# --- kazoo has no container or TTL create: send those requests raw -------------------

class _CreateContainer(Create2):
    type = 19


class _CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = Create2(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(struct.pack(">q", self.ttl))
        return b

    deserialize = Create2.deserialize


def _raw(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=10)


def create_container(client, path, data=b""):
    return _raw(client, _CreateContainer(path, data, OPEN_ACL_UNSAFE, 4))


def create_ttl(client, path, data, ttl_ms):
    return _raw(client, _CreateTTL(path, data, OPEN_ACL_UNSAFE, 5, ttl_ms))


def create_null_data(client, path):
    return _raw(client, Create2(path, None, OPEN_ACL_UNSAFE, 0))


# --- a varied tree -----------------------------------------------------------------------

def write_varied_tree(c, other_hosts, rounds=6):
    """Writes through many snapCount=20 intervals: nested and unicode paths,
    binary, empty, null and large data, create and create2, ACLs (world,
    digest, auth, ip), setACL, ephemerals (of a closed session), sequential
    nodes with deletes in between, containers (one reaped by ZooKeeper), a TTL
    node, multis that commit and that fail, error txns, and deletes."""
    c.create("/app/config/db", b"postgres://db:5432", makepath=True)
    c.create("/app/bin", bytes(range(256)) * 3)
    c.create("/app/empty", b"")
    c.create("/app/create2", b"c2", include_data=True)
    create_null_data(c, "/app/null")
    c.create("/app/big", os.urandom(200_000))
    c.create("/app/\u00fcnic\u00f6de-\u540d\u524d", "värde".encode())
    c.create("/acl", b"")
    digest = make_digest_acl("admin", "secret", all=True)
    c.create("/acl/digest-only", b"secret", acl=[digest])
    c.create("/acl/world-read", b"r", acl=[make_acl("world", "anyone", read=True), digest])
    c.create("/acl/ip", b"ip", acl=[make_acl("ip", "127.0.0.1", all=True), digest])
    c.create("/acl/creator", b"auth", acl=[make_acl("auth", "", all=True)])
    c.create("/acl/changed", b"x")
    c.set_acls("/acl/changed", [make_acl("world", "anyone", read=True, write=True), digest])
    c.set_acls("/acl/changed", [make_acl("world", "anyone", read=True, admin=True), digest])
    c.create("/seq")
    c.create("/locks")
    create_container(c, "/cont", b"container")
    c.create("/cont/child", b"")
    create_container(c, "/cont2")
    c.create("/cont2/a")
    create_ttl(c, "/ttl", b"lives an hour", 3_600_000)
    for i in range(rounds):
        c.create("/seq/item-", f"item {i}".encode(), sequence=True)
        c.create("/seq/item-", b"", sequence=True)
        victim = c.create("/seq/gone-", b"", sequence=True)
        c.delete(victim)
        c.set("/app/config/db", f"postgres://db:{5432 + i}".encode())
        c.create(f"/app/config/n{i}/deep/deeper", str(i).encode(), makepath=True)
        c.create("/locks/lock-", b"", ephemeral=True, sequence=True)
        with pytest.raises(NodeExistsError):
            c.create("/app/config/db")          # an error txn
        t = c.transaction()
        t.create(f"/app/multi-{i}", b"m")
        t.set_data("/app/bin", bytes([i]) * 10)
        t.check("/seq", -1)
        t.commit()
        t = c.transaction()
        t.create(f"/app/never-{i}", b"")
        t.delete("/does/not/exist")
        t.commit()                              # fails: logged as a multi of errors
        c.delete(f"/app/config/n{i}/deep/deeper")
    # A session that closes: its ephemerals are deleted by closeSession.
    other = KazooClient(hosts=other_hosts, timeout=10)
    other.start(timeout=15)
    other.create("/app/eph-of-closed", b"", ephemeral=True)
    other.create("/locks/lock-", b"", ephemeral=True, sequence=True)
    other.stop()
    other.close()
    # The emptied container is reaped by ZooKeeper's ContainerManager: a
    # deleteContainer txn.
    c.delete("/cont2/a")
    deadline = time.monotonic() + 20
    while c.exists("/cont2") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.exists("/cont2") is None


def collect_tree(c):
    """{path: (data, Stat, ACLs)} of every znode, by a depth-first walk."""
    out = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = c.get(path)
        acls, acl_stat = c.get_acls(path)
        assert acl_stat == stat
        out[path] = (data, tuple(stat), sorted((a.perms, a.id.scheme, a.id.id) for a in acls))
        for child in c.get_children(path):
            stack.append(("" if path == "/" else path) + "/" + child)
    return out


def srvr_zxid(text: str) -> int:
    m = re.search(r"Zxid: 0x([0-9a-f]+)", text)
    assert m, text
    return int(m.group(1), 16)


def diff_trees(expected, actual):
    problems = []
    for path in sorted(set(expected) | set(actual)):
        e, a = expected.get(path), actual.get(path)
        if e != a:
            problems.append(f"{path}:\n  zookeeper {e}\n  zkpy      {a}")
    return problems


# --- Apache ZooKeeper's data directory ---------------------------------------------------

def run_zookeeper(tmp_dir, *, jvm_args=(), data_log_dir=None):
    """Start Apache ZooKeeper 3.8 with snapCount=20, write the varied tree,
    record what it reports, stop it with a session still open, and return
    (dataDir copy, dataLogDir copy or None, notes)."""
    from zkpy.testing.apache import ApacheZooKeeper, require_apache

    require_apache()
    cfg = {"snapCount": "20", "preAllocSize": "1024"}
    if data_log_dir is not None:
        cfg["dataLogDir"] = data_log_dir
    zk = ApacheZooKeeper(extra_cfg=cfg, keep_dir=True,
                         jvm_args=["-Dzookeeper.extendedTypesEnabled=true",
                                   "-Dznode.container.checkIntervalMs=200", *jvm_args])
    clients = []
    try:
        zk.start()
        c = KazooClient(hosts=zk.hosts, timeout=10, auth_data=[AUTH])
        c.start(timeout=15)
        clients.append(c)
        write_varied_tree(c, zk.hosts)
        # A session still open when ZooKeeper stops, owning two ephemerals.
        live = KazooClient(hosts=zk.hosts, timeout=6)
        live.start(timeout=15)
        clients.append(live)
        live.create("/app/live-eph", b"still here", ephemeral=True)
        live.create("/locks/lock-", b"", ephemeral=True, sequence=True)
        live_sid = live.client_id[0]
        expected = collect_tree(c)
        zxid = srvr_zxid(zk.four_letter_word("srvr"))
        zk.stop()   # SIGTERM: ZooKeeper does not close sessions on shutdown
        data = os.path.join(tmp_dir, "zk-data")
        shutil.copytree(zk.data_dir, data)
        logs = None
        if data_log_dir is not None:
            logs = os.path.join(tmp_dir, "zk-logs")
            shutil.copytree(data_log_dir, logs)
        return data, logs, {"tree": expected, "zxid": zxid, "live_sid": live_sid}
    finally:
        zk.stop()
        for cl in clients:
            try:
                cl.stop()
                cl.close()
            except Exception:
                pass
        if zk.base_dir is not None:
            shutil.rmtree(zk.base_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def zookeeper_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zk-import")
    return run_zookeeper(str(tmp))


def check_imported(dest, notes, expiry=True, subprocess=False):
    """Start zkpy on the imported dataDir (in this process, or as the
    zkpy-server command) and compare it with ZooKeeper."""
    expected = notes["tree"]
    # No reaping while comparing (an emptied container may be in the tree).
    config = {"znode.container.checkIntervalMs": "600000"}
    with ZkpyServer(data_dir=dest, subprocess=subprocess, config=config) as srv:
        assert srvr_zxid(srv.four_letter("srvr")) == notes["zxid"]
        c = KazooClient(hosts=srv.hosts, timeout=10, auth_data=[AUTH])
        c.start(timeout=15)
        try:
            actual = collect_tree(c)
            problems = diff_trees(expected, actual)
            assert not problems, "imported tree differs:\n" + "\n".join(problems)

            # The session that was open when ZooKeeper stopped is open in zkpy.
            live_sid = notes["live_sid"]
            assert expected["/app/live-eph"][1][7] == live_sid
            assert actual["/app/live-eph"][1][7] == live_sid
            if not subprocess:
                assert live_sid in srv.call(lambda s: dict(s.tree.sessions))

            # zkpy carries on from ZooKeeper's zxid and sequential counters.
            _, seq_stat, _ = expected["/seq"]
            counter = (seq_stat[5] + seq_stat[9]) // 2   # the persisted cversion
            path, stat = c.create("/seq/item-", b"next", sequence=True, include_data=True)
            assert path == f"/seq/item-{counter:010d}"
            # (zxid + 1 went to this client's createSession)
            assert stat.czxid == notes["zxid"] + 2

            if not expiry:
                return
            # Nobody resumes the live session: zkpy expires it (6 s timeout)
            # and deletes its ephemerals, as ZooKeeper would after a restart.
            deadline = time.monotonic() + 30
            while c.exists("/app/live-eph") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.exists("/app/live-eph") is None
            assert not [p for p in c.get_children("/locks")
                        if expected[f"/locks/{p}"][1][7] == live_sid]
        finally:
            c.stop()
            c.close()


def test_import_zookeeper_matches_what_zookeeper_served(zookeeper_dir, tmp_path):
    data, _, notes = zookeeper_dir
    vdir = os.path.join(data, "version-2")
    snaps = zkf.list_zk_snapshots(vdir)
    logs = zkf.list_zk_logs(vdir)
    # snapCount=20: ZooKeeper rolled its log and snapshotted several times.
    assert len(snaps) >= 3 and len(logs) >= 3, os.listdir(vdir)
    dest = str(tmp_path / "zkpy-data")
    proc = zkpy_cli("import-zookeeper", data, dest)
    assert f"last zxid 0x{notes['zxid']:x}" in proc.stdout
    assert os.listdir(os.path.join(dest, "version-2")) == [f"snapshot.{notes['zxid']:x}"]
    check = zkpy_cli("check", dest)
    assert f"last zxid: 0x{notes['zxid']:x}" in check.stdout
    assert f"znodes: {len(notes['tree'])}" in check.stdout
    check_imported(dest, notes)


def tree_state(tree):
    """Everything of a DataTree that a snapshot keeps, comparable with ==."""
    nodes = {p: (tree.nodes[p].data, tree.nodes[p].acl, tree.nodes[p].stat())
             for p in tree.paths()}
    return nodes, dict(tree.sessions), tree.last_zxid


def test_import_each_zookeeper_snapshot_plus_logs_gives_the_same_tree(zookeeper_dir):
    """Recovery from any of ZooKeeper's snapshots (fuzzy ones included) plus
    the logs after it ends in the same tree."""
    data, _, notes = zookeeper_dir
    vdir = os.path.join(data, "version-2")
    full = zkf.load_zookeeper(vdir)
    assert full.tree.last_zxid == notes["zxid"]
    expected = tree_state(full.tree)
    logs = zkf.list_zk_logs(vdir)
    loaded = 0
    for zxid, path in zkf.list_zk_snapshots(vdir):
        snap = zk_loadable(path)
        if snap is None:
            continue  # ZooKeeper itself refuses it and recovers from an older one
        loaded += 1
        tree = zkf.snapshot_to_tree(snap)
        start = max([i for i, (first, _) in enumerate(logs) if first <= zxid] or [0])
        for _, log in logs[start:]:
            for zt in zkf.read_zk_log(log)[0]:
                if zt.zxid > tree.last_zxid:
                    zkf.apply_zk_txn(tree, zt)
        assert tree_state(tree) == expected, path
    assert loaded >= 2


def zk_loadable(path):
    """A ZooKeeper snapshot, or None for one that ZooKeeper itself cannot
    load: written while a node with a new ACL was created, it names an ACL
    that its ACL cache (written first) lacks (ReferenceCountedACLCache.
    convertLong throws, and recovery moves on to an older snapshot)."""
    try:
        return zkf.read_zk_snapshot(path)
    except zkf.ZooKeeperFormatError as e:
        if "not in the ACL cache" in str(e):
            return None
        raise


# --- the same files as ZooKeeper 3.5 and 3.9 lay them out ------------------------------------

def _log_entries(path):
    """(file header, [(entry bytes, ZkTxn)]) of a ZooKeeper log."""
    txns, _, _ = zkf.read_zk_log(path)
    with open(path, "rb") as f:
        buf = f.read()
    out = []
    for t in txns:
        (length,) = struct.unpack_from(">i", buf, t.offset + 8)
        out.append((buf[t.offset + 12:t.offset + 12 + length], t))
    return buf[:16], out


def as_zookeeper_35(src, dst):
    """Rewrite a 3.8 version-2 dir as ZooKeeper 3.5 wrote it: no ZxidDigest
    after the snapshot's tree, no TxnDigest after a txn, no CloseSessionTxn."""
    os.makedirs(dst)
    for name in os.listdir(src):
        path = os.path.join(src, name)
        with open(path, "rb") as f:
            raw = f.read()
        if name.startswith("snapshot."):
            snap = zk_loadable(path)
            if snap is None:
                continue
            digest = snap.digest
            assert digest is not None and digest[1] >= 2
            raw = raw[:-33]   # ZxidDigest (8 + 4 + 8 bytes) and its seal (8 + 4 + 1)
        elif name.startswith("log."):
            header, entries = _log_entries(path)
            raw = bytearray(header)
            for payload, t in entries:
                if t.type == Op.CLOSE_SESSION:
                    payload = payload[:32]      # the TxnHeader alone
                elif t.digest is not None:
                    payload = payload[:-12]
                raw += struct.pack(">qi", zlib.adler32(payload), len(payload)) + payload + b"B"
            raw += bytes(4096)                  # preallocated zeros
        with open(os.path.join(dst, name), "wb") as f:
            f.write(raw)


def as_zookeeper_39(src, dst):
    """Add what 3.9 writes after the digest: lastProcessedZxid and a seal."""
    shutil.copytree(src, dst)
    for zxid, path in zkf.list_zk_snapshots(dst):
        if zk_loadable(path) is None:
            os.remove(path)
            continue
        with open(path, "rb") as f:
            raw = f.read()
        raw += struct.pack(">q", zxid)
        raw += struct.pack(">q", zlib.adler32(raw)) + struct.pack(">i", 1) + b"/"
        with open(path, "wb") as f:
            f.write(raw)


@pytest.mark.parametrize("layout", ["3.5", "3.9"])
def test_import_zookeeper_35_and_39_file_layouts(zookeeper_dir, tmp_path, layout):
    data, _, notes = zookeeper_dir
    src = os.path.join(data, "version-2")
    dst = str(tmp_path / "zk" / "version-2")
    (as_zookeeper_35 if layout == "3.5" else as_zookeeper_39)(src, dst)
    snap = zkf.read_zk_snapshot(zkf.list_zk_snapshots(dst)[-1][1])
    closes = [t for _, log in zkf.list_zk_logs(dst) for t in zkf.read_zk_log(log)[0]
              if t.type == Op.CLOSE_SESSION]
    assert closes
    if layout == "3.5":
        assert snap.digest is None and snap.last_processed_zxid is None
        assert all(t.record.paths is None and t.digest is None for t in closes)
    else:
        assert snap.digest is not None and snap.last_processed_zxid == snap.zxid
    dest = str(tmp_path / "zkpy")
    zkpy_cli("import-zookeeper", str(tmp_path / "zk"), dest)
    got = read_snapshot(os.path.join(dest, "version-2", f"snapshot.{notes['zxid']:x}"))
    assert tree_state(got) == tree_state(zkf.load_zookeeper(src).tree)


@pytest.mark.parametrize("variant", ["gz snapshots, separate dataLogDir", "snappy snapshots"])
def test_import_zookeeper_compressed_snapshots_and_data_log_dir(variant, tmp_path):
    if variant.startswith("gz"):
        log_dir = str(tmp_path / "zk-datalog")
        os.makedirs(log_dir)
        data, logs, notes = run_zookeeper(
            str(tmp_path), jvm_args=["-Dzookeeper.snapshot.compression.method=gz"],
            data_log_dir=log_dir)
        suffix = ".gz"
    else:
        data, logs, notes = run_zookeeper(
            str(tmp_path), jvm_args=["-Dzookeeper.snapshot.compression.method=snappy"])
        suffix = ".snappy"
    names = os.listdir(os.path.join(data, "version-2"))
    assert any(n.endswith(suffix) for n in names), names
    dest = str(tmp_path / "zkpy-data")
    args = ["import-zookeeper", data, dest]
    if logs:
        assert not any(n.startswith("log.") for n in names)
        args += ["--src-log-dir", logs]
    zkpy_cli(*args)
    check_imported(dest, notes, expiry=False, subprocess=True)


def test_import_refuses_damaged_or_incomplete_zookeeper_dirs(zookeeper_dir, tmp_path):
    data, _, notes = zookeeper_dir

    # A flipped byte inside a logged txn: ZooKeeper's CRC check fails.
    bad = str(tmp_path / "crc")
    shutil.copytree(data, bad)
    vdir = os.path.join(bad, "version-2")
    last_log = zkf.list_zk_logs(vdir)[-1][1]
    txns, _, _ = zkf.read_zk_log(last_log)
    with open(last_log, "r+b") as f:
        f.seek(txns[0].offset + 12 + 20)   # inside the first entry's TxnHeader
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    dest = str(tmp_path / "dest-crc")
    proc = zkpy_cli("import-zookeeper", bad, dest, expect=1)
    assert "checksum" in proc.stderr and os.path.basename(last_log) in proc.stderr
    assert not os.path.exists(os.path.join(dest, "version-2")) or \
        not os.listdir(os.path.join(dest, "version-2"))

    # Only the first snapshot left, and a log missing from the middle.
    gap = str(tmp_path / "gap")
    shutil.copytree(data, gap)
    vdir = os.path.join(gap, "version-2")
    for zxid, path in zkf.list_zk_snapshots(vdir)[1:]:
        os.remove(path)
    logs = zkf.list_zk_logs(vdir)
    os.remove(logs[1][1])
    proc = zkpy_cli("import-zookeeper", gap, str(tmp_path / "dest-gap"), expect=1)
    assert "missing" in proc.stderr

    # Every snapshot damaged: nothing to start from.
    snaps = str(tmp_path / "snaps")
    shutil.copytree(data, snaps)
    vdir = os.path.join(snaps, "version-2")
    for _, path in zkf.list_zk_snapshots(vdir):
        with open(path, "r+b") as f:
            f.seek(40)
            f.write(b"\xde\xad\xbe\xef")
    proc = zkpy_cli("import-zookeeper", snaps, str(tmp_path / "dest-snaps"), expect=1)
    assert "no valid snapshot" in proc.stderr

    # Never over existing zkpy data.
    dest = str(tmp_path / "dest")
    zkpy_cli("import-zookeeper", data, dest)
    proc = zkpy_cli("import-zookeeper", data, dest, expect=1)
    assert "already holds zkpy data" in proc.stderr


def test_dump_zookeeper_files(zookeeper_dir):
    data, _, notes = zookeeper_dir
    vdir = os.path.join(data, "version-2")
    zxid, snap = zkf.list_zk_snapshots(vdir)[-1]
    out = zkpy_cli("dump-snapshot", snap).stdout
    assert f"zxid: 0x{zxid:x}" in out
    assert re.search(r"^/acl/digest-only .*acl=\[digest:admin:[^:]+:cdrwa\] data=6B b'secret'",
                     out, re.M), out
    lines = []
    for _, log in zkf.list_zk_logs(vdir):
        lines += zkpy_cli("dump-log", log).stdout.splitlines()[1:]
    assert len(lines) == notes["zxid"]   # standalone: zxids 1, 2, ... all logged
    assert re.search(r"^0x\w+ \S+Z session 0x\w+ cxid \d+ createContainer /cont data=9B", "\n".join(lines), re.M)
    assert any(" multi 3 ops: create /app/multi-0 " in ln for ln in lines)
    assert any(" createTtl /ttl " in ln and "ttl 3600000ms" in ln for ln in lines)
    assert any(ln.endswith(" deleteContainer /cont2") for ln in lines)
    assert any(" create2 /app/create2 data=2B b'c2'" in ln for ln in lines)
    # `check` is for zkpy's dirs, and says what to do with ZooKeeper's.
    proc = zkpy_cli("check", data, expect=1)
    assert "use `zkpy import-zookeeper`" in proc.stderr


# --- zkpy's own data directories -----------------------------------------------------------

@pytest.fixture
def zkpy_datadir(tmp_path):
    """A zkpy dataDir written by a real (in-process) server: first with
    snapCount=10 (several snapshots and logs), then after a restart with the
    default snapCount, so that the newest log surely holds several txns.
    Returns (dataDir, notes)."""
    data = str(tmp_path / "zkpy-data")
    os.makedirs(data)
    with ZkpyServer(data_dir=data, subprocess=False, config={"snapCount": "10"}) as srv:
        c = KazooClient(hosts=srv.hosts, timeout=10)
        c.start(timeout=15)
        c.create("/tools/a", b"alpha", makepath=True)
        c.create("/tools/bin", b"\x00\x01\xfe\xff")
        for i in range(25):
            c.create("/tools/s-", str(i).encode(), sequence=True)
            _snapshots_done(srv)
        c.stop()
        c.close()
    with ZkpyServer(data_dir=data, subprocess=False) as srv:
        c = KazooClient(hosts=srv.hosts, timeout=10)
        c.start(timeout=15)
        try:
            c.set("/tools/a", b"beta")
            c.delete("/tools/s-0000000003")
            c.create("/tools/eph", b"e", ephemeral=True)
            t = c.transaction()
            t.create("/tools/m")
            t.set_data("/tools/a", b"gamma")
            t.commit()
            sid = c.client_id[0]
        finally:
            c.stop()   # closes the session: its ephemeral goes
            c.close()
        last_zxid = srv.call(lambda s: s.tree.last_zxid)
        paths = srv.call(lambda s: sorted(s.tree.paths()))
    return data, {"last_zxid": last_zxid, "paths": paths, "sid": sid}


def _snapshots_done(srv, timeout=30.0):
    """Wait until no snapshot is being written or waits its turn: snapshots
    due while one is written are taken as one when it is done, so without
    this a slow fsync (a busy disk) could leave a single snapshot."""
    def busy(server):
        dl = server.log
        t = dl.snapshot_thread
        return dl.snapshot_scheduled or dl.snapshot_wanted or (t is not None and t.is_alive())
    deadline = time.monotonic() + timeout
    while srv.call(busy):
        assert time.monotonic() < deadline, "a snapshot is still being written"
        time.sleep(0.005)


def _zkpy_files(data):
    from zkpy.storage.snapshot import list_snapshots
    from zkpy.storage.txnlog import list_logs
    vdir = os.path.join(data, "version-2")
    return list_snapshots(vdir), list_logs(vdir)


def test_check_summarises_a_zkpy_datadir(zkpy_datadir):
    data, notes = zkpy_datadir
    snaps, logs = _zkpy_files(data)
    assert len(snaps) >= 2 and len(logs) >= 2
    out = zkpy_cli("check", data).stdout
    assert f"snapshots: {len(snaps)}" in out
    assert f"logs: {len(logs)}" in out
    assert f"last zxid: 0x{notes['last_zxid']:x}" in out
    assert f"znodes: {len(notes['paths'])}" in out
    assert "sessions: 0" in out
    assert "ok (recovery starts here)" in out
    assert out.rstrip().endswith("ok: recovery succeeds")


def test_dump_log_prints_every_txn(zkpy_datadir):
    data, notes = zkpy_datadir
    _, logs = _zkpy_files(data)
    lines = []
    for _, path in logs:
        out = zkpy_cli("dump-log", path).stdout.splitlines()
        assert out[0].startswith("# zkpy transaction log")
        lines += out[1:]
    zxids = [int(ln.split()[0], 16) for ln in lines]
    assert zxids == sorted(zxids) and zxids[-1] == notes["last_zxid"]
    text = "\n".join(lines)
    sid = f"0x{notes['sid']:x}"
    assert re.search(r"^0x\w+ \d{4}-\d\d-\d\dT[\d:.]+Z session 0x[0-9a-f]+ cxid \d+ create "
                     r"/tools/a data=5B b'alpha' acl=\[world:anyone:cdrwa\] persistent", text, re.M)
    assert re.search(r" setData /tools/a data=4B b'beta' version=1$", text, re.M)
    assert re.search(r" delete /tools/s-0000000003$", text, re.M)
    assert re.search(r" multi 2 ops: create /tools/m .* \| setData /tools/a data=5B b'gamma'", text)
    assert re.search(rf" session {sid} cxid \d+ closeSession ephemerals=\[/tools/eph\]$", text, re.M)
    assert re.search(rf" session {sid} cxid \d+ createSession timeout=\d+$", text, re.M)


def test_dump_snapshot_prints_sessions_and_znodes(zkpy_datadir):
    data, notes = zkpy_datadir
    snaps, _ = _zkpy_files(data)
    zxid, path = snaps[-1]
    out = zkpy_cli("dump-snapshot", path).stdout
    lines = out.splitlines()
    assert lines[0] == f"# zkpy snapshot {path}"
    assert lines[1] == f"zxid: 0x{zxid:x}"
    assert lines[2].startswith("sessions: ")
    listed = [ln.split(" ", 1)[0] for ln in lines if ln.startswith("/")]
    assert listed == sorted(listed) and "/zookeeper/config" in listed
    assert re.search(r"^/tools/bin czxid=0x\w+ mzxid=0x\w+ pzxid=0x\w+ ctime=\S+ mtime=\S+ "
                     r"version=0 cversion=0 aversion=0 ephemeralOwner=0x0 dataLength=4 "
                     r"numChildren=0 acl=\[world:anyone:cdrwa\] data=4B b'\\x00\\x01\\xfe\\xff'$",
                     out, re.M), out


def test_check_fails_clearly_on_corruption_and_is_read_only(zkpy_datadir):
    data, notes = zkpy_datadir
    _, logs = _zkpy_files(data)
    from zkpy.storage.txnlog import read_log
    last_log = logs[-1][1]
    txns, end = read_log(last_log, is_last=True)
    assert len(txns) >= 3   # written after the restart (see zkpy_datadir)

    # A torn tail (a write cut short) is what a crash leaves: recovery copes,
    # and check warns without repairing anything.
    with open(last_log, "r+b") as f:
        f.seek(end)
        f.write(b"\x00\x00\x01\x00\xaa\xbb")   # a record header with no record
    before = open(last_log, "rb").read()
    out = zkpy_cli("check", data).stdout
    assert "warning:" in out and "torn record" in out
    assert "ok: recovery succeeds" in out
    assert open(last_log, "rb").read() == before

    # Damage in the middle of the log is corruption: non-zero exit, the file
    # and offset named, nothing changed.
    with open(last_log, "r+b") as f:
        f.seek(16 + 8 + 3)    # inside the first record's payload
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x55]))
    before = open(last_log, "rb").read()
    proc = zkpy_cli("check", data, expect=1)
    assert proc.stderr.startswith("zkpy check: recovery fails: ")
    assert f"{last_log}: offset 16: record fails its checksum" in proc.stderr
    assert open(last_log, "rb").read() == before

    proc = zkpy_cli("check", os.path.join(data, "nope"), expect=1)
    assert "no such directory" in proc.stderr
    proc = zkpy_cli("dump-log", os.path.join(data, "zoo.cfg"), expect=1)
    assert "not a zkpy or ZooKeeper transaction log" in proc.stderr


def test_check_with_separate_log_dir(tmp_path):
    data, logs = str(tmp_path / "data"), str(tmp_path / "logs")
    os.makedirs(data)
    os.makedirs(logs)
    with ZkpyServer(data_dir=data, config={"dataLogDir": logs, "snapCount": "10"}) as srv:
        c = KazooClient(hosts=srv.hosts, timeout=10)
        c.start(timeout=15)
        for i in range(15):
            c.create(f"/n{i}", b"")
        c.stop()
        c.close()
        last = srv.call(lambda s: s.tree.last_zxid)
    assert not [n for n in os.listdir(os.path.join(data, "version-2")) if n.startswith("log.")]
    out = zkpy_cli("check", data, "--log-dir", logs).stdout
    assert f"last zxid: 0x{last:x}" in out
    # Without the log dir the logged txns are not there to replay.
    out = zkpy_cli("check", data).stdout
    assert "logs: 0" in out
