"""Storage without a server: the transaction log, the group-commit syncer,
fuzzy snapshots, recovery and purge, on a simulated disk.

Txns come from driving the real Prep + DataTree (as the server does with its
in-memory log), are written through the real file code (LogFile, or the
TxnLogSyncer / DurableLog on a real asyncio loop), and the disk failures are
simulated by editing the files: the unsynced tail lost, a torn last record, a
flipped byte, a missing log file, a corrupt snapshot.  Each ends in the
recovery result the issue specifies: the tree of exactly the txns that are
intact, or DataDirError naming the file and the offset."""

import asyncio
import ctypes
import logging
import mmap
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkpy.datatree.digest import tree_digest
from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn, owner_kind
from zkpy.protocol.errors import KeeperError
from zkpy.protocol.opcodes import CreateMode, Op
from zkpy.protocol.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    SetACLRequest,
    SetDataRequest,
)
from zkpy.server.config import ServerConfig
from zkpy.server.prep import Prep
from zkpy.storage import database, forked, snapshot, txnlog
from zkpy.storage.database import DataDirError, DurableLog, dirs, purge, restore
from zkpy.storage.snapshot import (
    CorruptSnapshotError,
    list_snapshots,
    read_snapshot,
    snapshot_bytes,
    write_snapshot,
    write_snapshot_bytes,
)
from zkpy.storage.files import write_atomically
from zkpy.storage.fsyncer import FsyncHelper
from zkpy.storage.syncer import TxnLogSyncer
from zkpy.storage.txnlog import (
    HEADER,
    LogFile,
    encode_txn,
    list_logs,
    log_file_name,
    read_log,
)

SETTINGS = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
WORLD = ACL(31, "world", "anyone")


# --- producing txns the way the server does ------------------------------------------


class Driver:
    """Prep + DataTree with an in-memory log: every write is prepped into a
    txn and applied at once, as ZooKeeperServer does with MemoryLog."""

    def __init__(self):
        self.tree = DataTree()
        self.prep = Prep(self.tree, extended_types_enabled=True)
        self.txns: list[Txn] = []
        self.zxid = 0
        self.time = 1_700_000_000_000
        self.next_sid = 0x0100_0000_0000_0001

    def submit(self, sid, build, cxid=1):
        self.zxid += 1
        self.time += 7
        try:
            t, body, overlay = build()
        except KeeperError as e:
            t, body, overlay = Op.ERROR, (e.code,), None
        if overlay:
            self.prep.commit_overlay(overlay, self.zxid)
        txn = Txn(sid, cxid, self.zxid, self.time, t, body)
        self.tree.apply(txn)
        self.prep.applied(txn.zxid)
        self.txns.append(txn)
        return txn

    def op(self, sid, op, rec):
        def build():
            overlay = {}
            return op, self.prep.prep_op(op, rec, sid, (), overlay), overlay
        return self.submit(sid, build)

    def create(self, sid, path, data=b"", flags=0, ttl=-1):
        op = Op.CREATE_TTL if flags in CreateMode.TTL_MODES else \
            Op.CREATE_CONTAINER if flags == CreateMode.CONTAINER else Op.CREATE
        return self.op(sid, op, CreateRequest(path, data, [WORLD], flags, ttl))

    def set_data(self, sid, path, data, version=-1):
        return self.op(sid, Op.SET_DATA, SetDataRequest(path, data, version))

    def delete(self, sid, path, version=-1):
        return self.op(sid, Op.DELETE, DeleteRequest(path, version))

    def set_acl(self, sid, path, acl, version=-1):
        return self.op(sid, Op.SET_ACL, SetACLRequest(path, acl, version))

    def multi(self, sid, ops):
        def build():
            body, overlay = self.prep.prep_multi(ops, sid, ())
            return Op.MULTI, body, overlay
        return self.submit(sid, build)

    def create_session(self, timeout=6000):
        sid = self.next_sid
        self.next_sid += 1
        self.submit(sid, lambda: (Op.CREATE_SESSION, (timeout,), None), cxid=0)
        return sid

    def close_session(self, sid):
        return self.submit(sid, lambda: (Op.CLOSE_SESSION,
                                         (self.prep.close_session_paths(sid),), None), cxid=0)


NAMES = ["a", "b", "c", "d"]


def random_workload(rng: random.Random, n: int, d: Driver | None = None) -> Driver:
    """n txns of every kind: sessions opened and closed, persistent, ephemeral,
    sequential, container and TTL creates, setData, setACL, deletes, multis
    that succeed and multis that fail, and plain errors (they consume a zxid)."""
    d = d or Driver()
    tree = d.tree
    for _ in range(n):
        live = list(tree.sessions)
        nodes = [p for p in tree.paths() if not p.startswith("/zookeeper")]
        parents = [p for p in nodes if p.count("/") < 3
                   and owner_kind(tree.nodes[p].owner) != "ephemeral"]
        sid = rng.choice(live) if live else 0
        r = rng.random()
        if not live or r < 0.04:
            d.create_session(rng.choice([4000, 6000, 30000]))
            continue
        if r < 0.07:
            d.close_session(sid)
            continue
        parent = rng.choice(parents)
        child = (parent.rstrip("/") + "/" + rng.choice(NAMES))
        target = rng.choice(nodes)
        data = rng.choice([None, b"", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))])
        k = rng.random()
        if k < 0.30:
            flags = rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 5])
            d.create(sid, child, data, flags, ttl=rng.randrange(1, 10**6) if flags == 5 else -1)
        elif k < 0.55:
            d.set_data(sid, target, data, rng.choice([-1, -1, 0, 1]))
        elif k < 0.70:
            d.delete(sid, target, rng.choice([-1, -1, 0]))
        elif k < 0.75:
            d.set_acl(sid, target, [ACL(rng.choice([31, 31, 15]), "world", "anyone")])
        else:
            ops = []
            for _ in range(rng.randrange(1, 4)):
                c = rng.random()
                if c < 0.4:
                    p = parent.rstrip("/") + "/" + rng.choice(NAMES + ["m%d" % rng.randrange(99)])
                    ops.append((Op.CREATE, CreateRequest(p, data, [WORLD], rng.choice([0, 1]), -1)))
                elif c < 0.7:
                    ops.append((Op.SET_DATA, SetDataRequest(rng.choice(nodes), data, -1)))
                elif c < 0.85:
                    ops.append((Op.DELETE, DeleteRequest(rng.choice(nodes), -1)))
                else:
                    ops.append((Op.CHECK, CheckVersionRequest(rng.choice(nodes), rng.choice([-1, 0]))))
            d.multi(sid, ops)
    return d


def replayed(txns, tree=None, replay=False) -> DataTree:
    tree = tree or DataTree()
    for t in txns:
        tree.apply(t, replay=replay)
    return tree


def state(tree: DataTree) -> dict:
    """Everything recovery must bring back: every node's stat, data, acl,
    children and owner, the ephemerals by session, containers, TTL nodes,
    live sessions and the last zxid."""
    assert tree.nodes[""] is tree.nodes["/"]
    nodes = {}
    for path, n in tree.nodes.items():
        if not path:
            continue
        nodes[path] = (n.stat(), n.data, tuple(tuple(a) for a in n.acl),
                       sorted(n.children), n.creates, n.owner)
        if path != "/":
            parent = path.rsplit("/", 1)[0]
            assert path in tree.nodes[parent or "/"].children, f"{path} is not linked"
    for path, n in tree.nodes.items():
        for c in n.children:
            assert c.rsplit("/", 1)[0] == path.rstrip("/") and c in tree.nodes, \
                f"dangling child {c} of {path}"
    return {
        "nodes": nodes,
        "ephemerals": {k: sorted(v) for k, v in tree.ephemerals.items() if v},
        "containers": sorted(tree.containers),
        "ttls": sorted(tree.ttls),
        "sessions": dict(tree.sessions),
        "last_zxid": tree.last_zxid,
    }


# --- writing logs through the real file code --------------------------------------------


def write_log_files(log_dir, txns, starts=(0,), prealloc=16 * 1024):
    """Write txns into log files, a new file at each index in starts; every
    batch is synced as the syncer does.  Returns [(path, [(offset, length)])]."""
    os.makedirs(log_dir, exist_ok=True)
    bounds = list(starts) + [len(txns)]
    files = []
    for a, b in zip(bounds, bounds[1:]):
        path = os.path.join(log_dir, log_file_name(txns[a].zxid))
        f = LogFile(path, prealloc)
        records = []
        for t in txns[a:b]:
            rec = encode_txn(t)
            records.append((f.pos, len(rec)))
            f.write(rec)
        f.sync()
        f.close()
        files.append((path, records))
    return files


def dirs_in(root):
    snap = os.path.join(root, "snap", "version-2")
    log = os.path.join(root, "log", "version-2")
    return snap, log


def flip(path, offset, mask=0x40):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --- the log format ---------------------------------------------------------------------


def test_log_round_trip_and_preallocation(tmp_path):
    d = random_workload(random.Random(1), 300)
    files = write_log_files(tmp_path, d.txns, prealloc=4096)
    (path, records), = files
    txns, end = read_log(path, is_last=True)
    assert [t.to_list() for t in txns] == \
        [txnlog.decode_txn(encode_txn(t)[8:]).to_list() for t in d.txns]
    assert end == records[-1][0] + records[-1][1]
    size = os.path.getsize(path)
    assert size > end and (size - HEADER.size) % 4096 == 0, "preallocated in whole blocks"
    assert not file_bytes(path)[end:].strip(b"\0")
    assert state(replayed(txns)) == state(d.tree)
    assert list_logs(tmp_path) == [(1, path)]


@pytest.mark.parametrize("sparse", [True, False])
def test_preallocated_tail_sparse_or_written(tmp_path, sparse):
    """A big preallocated tail reads the same whether it is a hole or written
    zeros, and a byte far out in it is still found (damage: a zero record
    before the end of the data)."""
    d = random_workload(random.Random(15), 60)
    (path, records), = write_log_files(tmp_path, d.txns, prealloc=1 << 20)
    size = os.path.getsize(path)
    end = records[-1][0] + records[-1][1]
    if not sparse:
        with open(path, "r+b") as f:
            f.seek(end)
            f.write(bytes(size - end))
    txns, got = read_log(path, is_last=True)
    assert got == end and len(txns) == len(d.txns)
    assert txnlog.scan_log(path, is_last=True)[2] is False
    far = size - 5000
    with open(path, "r+b") as f:
        f.seek(far)
        f.write(b"\x01")
    for is_last in (True, False):
        with pytest.raises(txnlog.CorruptLogError, match=f"offset {end}: zero record"):
            read_log(path, is_last)


def test_every_txn_kind_survives_msgpack(tmp_path):
    d = random_workload(random.Random(7), 600)
    kinds = {t.type for t in d.txns}
    assert {Op.CREATE, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.SET_DATA, Op.SET_ACL,
            Op.DELETE, Op.MULTI, Op.ERROR, Op.CREATE_SESSION, Op.CLOSE_SESSION} <= kinds
    assert d.tree.ephemerals and d.tree.containers and d.tree.ttls
    write_log_files(tmp_path / "version-2", d.txns, starts=(0, 200, 450))
    tree = restore(str(tmp_path / "nosnap"), str(tmp_path / "version-2"))
    assert state(tree) == state(d.tree)


# --- the syncer on a real event loop ------------------------------------------------


def run_syncer(log_dir, txns, roll_at=(), force_sync=True, warn_ms=1000, current=None,
               per_iteration=50, pause=0.001):
    """Append txns through a TxnLogSyncer on a real asyncio loop, per_iteration
    of them at a time with a sleep of pause seconds between; return the zxids in the order their
    on_logged callbacks ran, and the syncer."""
    async def main():
        loop = asyncio.get_running_loop()
        s = TxnLogSyncer(str(log_dir), loop, force_sync=force_sync, prealloc_kb=4,
                         warn_ms=warn_ms, current=current)
        done = []
        all_done = loop.create_future()

        def on_logged(txn):
            done.append(txn.zxid)
            if len(done) == len(txns):
                all_done.set_result(None)

        for i, t in enumerate(txns):
            if i in roll_at:
                s.roll()
            s.append(t, on_logged)
            if i % per_iteration == per_iteration - 1:
                await asyncio.sleep(pause)
        if txns:
            await asyncio.wait_for(all_done, 10)
        s.close()
        return done, s
    return asyncio.run(main())


def test_syncer_group_commit_in_order_and_recoverable(tmp_path):
    d = random_workload(random.Random(2), 400)
    done, s = run_syncer(tmp_path, d.txns, roll_at=(150, 300))
    assert done == [t.zxid for t in d.txns], "acknowledged in zxid order"
    assert 1 <= s.fsync_count < len(d.txns), "fsyncs are shared by many txns"
    logs = list_logs(tmp_path)
    assert len(logs) >= 2, "roll() starts a new log file"
    for first, path in logs:
        txns, _ = read_log(path, is_last=False)
        assert txns and txns[0].zxid == first, "a log file is named by its first zxid"
    assert state(restore(str(tmp_path / "none"), str(tmp_path))) == state(d.tree)


def test_slow_fsync_is_logged(tmp_path, caplog):
    d = random_workload(random.Random(3), 5)
    with caplog.at_level(logging.WARNING, logger="zkpy.storage"):
        run_syncer(tmp_path, d.txns, warn_ms=-1)
    assert "fsync-ing the write ahead log" in caplog.text


def _helper_writes(chunks) -> list:
    """Hand chunks to a FsyncHelper one batch each, without waiting; the
    answers (error, batches covered, ms) once every batch is answered."""
    async def main():
        loop = asyncio.get_running_loop()
        answers = []
        done = loop.create_future()

        def on_done(error, n, ms):
            answers.append((error, n, ms))
            if sum(a[1] for a in answers) >= len(chunks):
                done.set_result(None)
        helper = FsyncHelper(loop, on_done)
        for chunk in chunks:
            helper.request([chunk])
        await asyncio.wait_for(done, 30)
        helper.close()
        return answers
    return asyncio.run(main())


def test_fsync_helper_answers_batches_handed_over_while_it_syncs(tmp_path):
    """Batches handed to the helper back to back, without waiting for an
    answer, are all written at their offsets and answered: each sync's
    answer covers the oldest batches not answered yet."""
    path = tmp_path / "log"
    path.write_bytes(bytes(64 * 1024))
    chunks = [(str(path), i * 1000, bytes([i + 1]) * (500 + i)) for i in range(40)]
    answers = _helper_writes(chunks)
    assert [e for e, _, _ in answers] == [None] * len(answers)
    assert sum(n for _, n, _ in answers) == len(chunks)
    assert all(n >= 1 and ms >= 0 for _, n, ms in answers)
    data = path.read_bytes()
    for _, offset, chunk in chunks:
        assert data[offset:offset + len(chunk)] == chunk


def test_fsync_helper_writes_zeros_ahead_of_the_records(tmp_path):
    """The blocks just past the last record are written (zeros), so the
    next syncs need not allocate them; what lies before the first record
    the helper wrote is left as it was, and the rest of the preallocated
    size stays a hole."""
    path = tmp_path / "log"
    size = 1 << 20
    with open(path, "wb") as f:
        f.write(b"H" * 16)
        f.truncate(size)
    with open(path, "rb") as f:
        if os.lseek(f.fileno(), 0, os.SEEK_HOLE) >= size:
            pytest.skip("this file system does not report holes")
    chunks, offset = [], 16
    for i in range(30):
        data = bytes([i + 1]) * (700 + 37 * i)
        chunks.append((str(path), offset, data))
        offset += len(data)
    assert all(e is None for e, _, _ in _helper_writes(chunks))
    end = offset
    step = 1 << 16
    with open(path, "rb") as f:
        fd = f.fileno()
        hole = os.lseek(fd, 0, os.SEEK_HOLE)
        assert hole >= (end // step + 1) * step, \
            "zeros written up to the next step past the records"
        assert hole < size, "the rest of the preallocation is still a hole"
        data = os.pread(fd, size + 1, 0)
    assert len(data) == size
    assert data[:16] == b"H" * 16
    for _, offset, chunk in chunks:
        assert data[offset:offset + len(chunk)] == chunk
    assert not any(data[end:]), "zeros after the records"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


def _cached_pages(path, start, end) -> list:
    """The offsets of the pages of path[start:end] that are in the page
    cache: mincore(2) of those pages mapped, which reads nothing.  (A read
    that may not wait for the disk, RWF_NOWAIT, is no probe: its miss
    starts a read of the page, and about one probe in 400 found that read
    already done when it looked again, and the page "cached".)"""
    page = mmap.PAGESIZE
    first = start & -page
    length = end - first
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, first)
        if addr is None or addr == _MAP_FAILED:
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            resident = ctypes.create_string_buffer((length + page - 1) // page)
            if _libc.mincore(addr, length, resident) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            return [first + i * page for i, b in enumerate(resident.raw) if b & 1]
        finally:
            _libc.munmap(addr, length)
    finally:
        os.close(fd)


def _cached(path, offset) -> bool:
    """Whether the page at offset is in the page cache."""
    return bool(_cached_pages(path, offset, offset + 1))


def test_fsync_helper_drops_synced_records_from_the_page_cache(tmp_path):
    """Once synced, the pages of whole MiBs of records leave the page cache;
    the page the next record goes to stays, and the records read back."""
    path = tmp_path / "log"
    size = 4 << 20
    with open(path, "wb") as f:
        f.truncate(size)
    data = random.Random(5).randbytes(60000)
    chunks = [(str(path), i * len(data), data) for i in range(50)]   # 3,000,000 bytes
    assert all(e is None for e, _, _ in _helper_writes(chunks))
    end = 50 * len(data)
    assert _cached(path, end - 1), "the page the next record goes to"
    assert _cached_pages(path, 0, 2 << 20) == [], "the first two MiBs are dropped"
    assert path.read_bytes()[:end] == data * 50


def test_a_snapshot_written_leaves_the_page_cache_with_the_one_before(tmp_path):
    """A snapshot goes out of the page cache as it is written, and takes
    the one before it along: that one may have been written whole, as a
    follower writes the snapshot its leader sent."""
    d = random_workload(random.Random(6), 60)
    zxid = d.txns[29].zxid
    first = write_snapshot_bytes(snapshot_bytes(replayed(d.txns[:30]), zxid), zxid,
                                 str(tmp_path))
    assert _cached_pages(first, 0, os.path.getsize(first)) != []
    second = write_snapshot(replayed(d.txns), d.txns[-1].zxid, str(tmp_path))
    assert _cached_pages(first, 0, os.path.getsize(first)) == []
    assert _cached_pages(second, 0, os.path.getsize(second)) == []
    assert state(read_snapshot(first)) == state(replayed(d.txns[:30]))
    assert state(read_snapshot(second)) == state(replayed(d.txns))


def test_a_large_file_goes_to_disk_and_out_of_the_page_cache_as_it_is_written(tmp_path):
    """With sync_step, what is written is synced and dropped from the page
    cache every step while the writer goes on; the rest once it is done;
    the file reads back whole."""
    path = str(tmp_path / "big")
    data = random.Random(7).randbytes(3_500_000)
    seen = []

    def write(f):
        for k in range(0, len(data), 50_000):
            f.write(data[k:k + 50_000])
            if k >= 2 << 20 and not seen:   # past the second step
                seen.append(_cached_pages(path + ".tmp", 0, 1 << 20))

    write_atomically(path, write, sync_step=1 << 20)
    assert seen == [[]], "the first MiB is synced and dropped while writing"
    assert _cached_pages(path, 0, len(data)) == []
    with open(path, "rb") as f:
        assert f.read() == data


def test_fsync_helper_zeros_stop_at_the_preallocated_size(tmp_path):
    """Zeros never grow the file: the size is the log's preallocation."""
    path = tmp_path / "log"
    path.write_bytes(bytes(5000))
    answers = _helper_writes([(str(path), 0, b"a" * 3000), (str(path), 3000, b"b" * 3000)])
    assert all(e is None for e, _, _ in answers)
    assert path.read_bytes() == b"a" * 3000 + b"b" * 3000


def test_large_batches_wait_for_room_and_keep_their_order(tmp_path):
    """Records past what may wait in the helper's pipe are held back until
    an answer comes, then handed over: every txn is acknowledged in zxid
    order and the log reads back whole."""
    big = b"z" * 20000
    txns = [Txn(1, i, i, 1000 + i, Op.SET_DATA, ["/n", big + bytes([i % 256]), i])
            for i in range(1, 41)]
    done, s = run_syncer(tmp_path, txns, roll_at=(25,), per_iteration=1,
                         pause=0)
    assert done == [t.zxid for t in txns]
    got = []
    for _, path in list_logs(tmp_path):
        got += read_log(path, is_last=False)[0]
    assert got == txns


def test_failing_disk_acknowledges_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")

    async def main():
        loop = asyncio.get_running_loop()
        s = TxnLogSyncer(str(blocker / "version-2"), loop, prealloc_kb=4)
        acked = []
        d = random_workload(random.Random(4), 3)
        s.append(d.txns[0], acked.append)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if s.failed is not None:
                break
        assert s.failed is not None
        with pytest.raises(OSError):
            s.append(d.txns[1], acked.append)
        await asyncio.sleep(0.05)
        s.close()
        return acked
    assert asyncio.run(main()) == []


# --- recovery from a simulated disk -------------------------------------------------


def _prefix_state(d, k):
    return state(replayed(d.txns[:k]))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), cut=st.floats(0, 1), zero_fill=st.booleans())
def test_unsynced_tail_lost(seed, cut, zero_fill):
    """The disk lost everything after some byte of the newest file (truncated,
    or the preallocated zeros never overwritten): recovery gives exactly the
    txns whose records are whole, repairs the file, and appends after it."""
    rng = random.Random(seed)
    d = random_workload(rng, 120)
    with tempfile.TemporaryDirectory() as root:
        snap_dir, log_dir = dirs_in(root)
        files = write_log_files(log_dir, d.txns, starts=(0, 60))
        path, records = files[-1]
        end = records[-1][0] + records[-1][1]
        offset = HEADER.size + int(cut * (end - HEADER.size))
        if zero_fill:
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(offset)
                f.truncate(size)
        else:
            os.truncate(path, offset)
        whole = sum(1 for off, n in records if off + n <= offset)
        k = 60 + whole
        tree = restore(snap_dir, log_dir)
        assert state(tree) == _prefix_state(d, k)
        if whole == 0:
            # Nothing whole in it: the file may go, but must not block the next write.
            assert not os.path.exists(path) or not file_bytes(path)[HEADER.size:].strip(b"\0")
        else:
            tail = records[whole][0] if whole < len(records) else end
            assert not file_bytes(path)[tail:].strip(b"\0"), "the torn bytes are zeroed"

        # The next server appends after the repaired tail; everything reads back.
        more = random_workload(rng, 30, _driver_at(d, k)).txns[k:]
        done, _ = run_syncer(log_dir, more)
        assert done == [t.zxid for t in more]
        assert state(restore(snap_dir, log_dir)) == state(replayed(d.txns[:k] + more))


def _driver_at(d, k):
    """A Driver whose tree holds d.txns[:k], to produce the txns that follow."""
    nd = Driver()
    nd.next_sid = d.next_sid + 1000
    for t in d.txns[:k]:
        nd.tree.apply(t)
        nd.txns.append(t)
    nd.zxid = d.txns[k - 1].zxid if k else 0
    nd.time = d.time
    return nd


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(0, 0.999))
def test_torn_last_record_is_truncated_with_a_warning(seed, frac):
    rng = random.Random(seed)
    d = random_workload(rng, 80)
    with tempfile.TemporaryDirectory() as root:
        snap_dir, log_dir = dirs_in(root)
        (path, records), = write_log_files(log_dir, d.txns)
        off, n = records[-1]
        buf = bytearray(file_bytes(path))
        # Tear it before its last non-zero byte: zeroing only bytes that are
        # zero already would leave the record whole.
        last_nonzero = len(buf[off:off + n].rstrip(b"\0")) - 1
        keep = min(int(frac * n), last_nonzero)
        torn = bool(buf[off:off + keep].strip(b"\0"))
        buf[off + keep:off + n] = bytes(n - keep)
        with open(path, "wb") as f:
            f.write(buf)
        logger = logging.getLogger("zkpy.storage")
        seen = []
        handler = logging.Handler()
        handler.emit = lambda r: seen.append(r.getMessage())
        logger.addHandler(handler)
        try:
            tree = restore(snap_dir, log_dir)
        finally:
            logger.removeHandler(handler)
        assert state(tree) == _prefix_state(d, len(d.txns) - 1)
        if torn:
            assert any("torn record at offset %d" % off in m for m in seen), seen
        assert not file_bytes(path)[off:].strip(b"\0"), "the torn bytes are zeroed"
        assert state(restore(snap_dir, log_dir)) == state(tree)


def _record_at(records, pos):
    for off, n in records:
        if off <= pos < off + n:
            return off
    raise AssertionError(pos)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), where=st.floats(0, 1), bit=st.integers(0, 7),
       in_last_file=st.booleans())
def test_flipped_byte_mid_file_refuses_to_start(seed, where, bit, in_last_file):
    """A flipped bit anywhere before the last record of the newest file (or
    anywhere in an older file) is corruption: DataDirError naming the file and
    the offset of the damaged record, never a silent loss."""
    d = random_workload(random.Random(seed), 90)
    with tempfile.TemporaryDirectory() as root:
        snap_dir, log_dir = dirs_in(root)
        files = write_log_files(log_dir, d.txns, starts=(0, 45))
        path, records = files[-1] if in_last_file else files[0]
        limit = records[-1][0] if in_last_file else records[-1][0] + records[-1][1]
        pos = HEADER.size + int(where * (limit - HEADER.size - 1))
        flip(path, pos, 1 << bit)
        with pytest.raises(DataDirError) as e:
            restore(snap_dir, log_dir)
        msg = str(e.value)
        assert path in msg
        assert f"offset {_record_at(records, pos)}:" in msg, msg


def test_damaged_file_header_refuses_to_start(tmp_path):
    d = random_workload(random.Random(5), 20)
    snap_dir, log_dir = dirs_in(tmp_path)
    (path, _), = write_log_files(log_dir, d.txns)
    flip(path, 3)
    with pytest.raises(DataDirError, match=re.escape(path) + ".*offset 0"):
        restore(snap_dir, log_dir)


def test_missing_log_file_refuses_to_start(tmp_path):
    d = random_workload(random.Random(6), 90)
    snap_dir, log_dir = dirs_in(tmp_path)
    files = write_log_files(log_dir, d.txns, starts=(0, 30, 60))
    # The middle file: the txns after it do not follow on.
    os.rename(files[1][0], files[1][0] + ".gone")
    with pytest.raises(DataDirError, match="missing"):
        restore(snap_dir, log_dir)
    os.rename(files[1][0] + ".gone", files[1][0])
    # The first file, with no snapshot to stand in for it.
    os.remove(files[0][0])
    with pytest.raises(DataDirError, match=re.escape(files[1][0]) + ".*missing"):
        restore(snap_dir, log_dir)
    # A snapshot that covers what the missing file held makes it unneeded.
    write_snapshot(replayed(d.txns[:30]), d.txns[29].zxid, snap_dir)
    assert state(restore(snap_dir, log_dir)) == state(d.tree)
    # But not a snapshot that ends before the gap.
    os.remove(list_snapshots(snap_dir)[0][1])
    write_snapshot(replayed(d.txns[:20]), d.txns[19].zxid, snap_dir)
    with pytest.raises(DataDirError, match="missing"):
        restore(snap_dir, log_dir)


def test_empty_newest_log_file_does_not_block_the_next_write(tmp_path):
    """A crash right after a new log file was created (header only, or its
    first record torn): recovery must leave the next server able to write
    the txn with that file's zxid."""
    d = random_workload(random.Random(8), 40)
    snap_dir, log_dir = dirs_in(tmp_path)
    write_log_files(log_dir, d.txns[:30])
    nxt = d.txns[30]
    # Header only.
    LogFile(os.path.join(log_dir, log_file_name(nxt.zxid)), 4096).close()
    tree = restore(snap_dir, log_dir)
    assert tree.last_zxid == d.txns[29].zxid
    done, _ = run_syncer(log_dir, d.txns[30:35])
    assert done == [t.zxid for t in d.txns[30:35]]
    assert state(restore(snap_dir, log_dir)) == _prefix_state(d, 35)
    # First record torn in a new file.
    path = os.path.join(log_dir, log_file_name(d.txns[35].zxid))
    f = LogFile(path, 4096)
    f.write(encode_txn(d.txns[35])[:9])
    f.close()
    assert state(restore(snap_dir, log_dir)) == _prefix_state(d, 35)
    # A new file whose header never reached the disk, though its size did (or not).
    for size in (HEADER.size, 0):
        with open(os.path.join(log_dir, log_file_name(d.txns[35].zxid)), "wb") as f:
            f.write(bytes(size))
        assert state(restore(snap_dir, log_dir)) == _prefix_state(d, 35)
    done, _ = run_syncer(log_dir, d.txns[35:])
    assert done == [t.zxid for t in d.txns[35:]]
    assert state(restore(snap_dir, log_dir)) == state(d.tree)


# --- snapshots ---------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path):
    d = random_workload(random.Random(9), 500)
    path = write_snapshot(d.tree, d.tree.last_zxid, str(tmp_path))
    assert os.path.basename(path) == "snapshot.%x" % d.tree.last_zxid
    assert state(read_snapshot(path)) == state(d.tree)


def test_snapshot_of_an_empty_tree_and_of_a_wide_one(tmp_path):
    empty = DataTree()
    assert state(read_snapshot(write_snapshot(empty, 0, str(tmp_path / "a")))) == state(empty)
    # More children under one parent than a group holds, some of them changed
    # since their create (the long entry form), one ephemeral and one container.
    d = Driver()
    sid = d.create_session()
    d.create(sid, "/wide")
    for i in range(snapshot.GROUP_SIZE * 2 + 3):
        d.create(sid, f"/wide/n{i}", b"%d" % i)
    d.set_data(sid, "/wide/n5", b"changed")
    d.create(sid, "/wide/n7/e", b"", CreateMode.EPHEMERAL)
    d.create(sid, "/wide/c", b"", CreateMode.CONTAINER)
    d.create(sid, "/wide/c/x")
    tree = read_snapshot(write_snapshot(d.tree, d.tree.last_zxid, str(tmp_path / "b")))
    assert state(tree) == state(d.tree)


def test_snapshot_groups_of_large_znodes_are_split(tmp_path, monkeypatch):
    import msgpack
    monkeypatch.setattr(snapshot, "GROUP_BYTES", 10_000)
    d = Driver()
    sid = d.create_session()
    d.create(sid, "/big")
    for i in range(40):
        d.create(sid, f"/big/n{i}", bytes([i]) * 3000)
        if i % 3 == 0:
            d.set_data(sid, f"/big/n{i}", bytes([i]) * 4000)  # a full entry
    d.create(sid, "/big/n0/huge", bytes(25_000))  # alone over the limit
    path = write_snapshot(d.tree, d.tree.last_zxid, str(tmp_path))
    assert state(read_snapshot(path)) == state(d.tree)
    with open(path, "rb") as f:
        body = f.read()[snapshot.HEADER.size:-snapshot.TRAILER.size]
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    u.feed(body)
    objs = list(u)
    groups = [g for g in objs[4:] if g[0] in ("/big", "/big/n0")]
    assert len(groups) > 10
    for g in groups:
        n = len(g[1]) + len(g[2])
        assert n == 1 or len(msgpack.packb(g, use_bin_type=True)) <= 10_000


@pytest.mark.parametrize("stable", [True, False])
@pytest.mark.parametrize("order", ["created", "shuffled"])
def test_snapshot_groups_are_written_as_they_fill_parents_first(tmp_path, monkeypatch,
                                                                 order, stable):
    """A group is written as soon as it is full (two entries here), after
    what is left of the groups above it; a tree whose node table is not in
    creation order (as one loaded from a FORMAT 1 snapshot) has its groups
    written at the end, parents first.  Either way nothing is left out."""
    monkeypatch.setattr(snapshot, "GROUP_SIZE", 2)
    d = random_workload(random.Random(23), 600)
    expected = state(d.tree)
    if order == "shuffled":
        items = list(d.tree.nodes.items())
        random.Random(5).shuffle(items)
        d.tree.nodes = dict(items)
    path = write_snapshot(d.tree, d.tree.last_zxid, str(tmp_path), stable=stable)
    assert state(read_snapshot(path)) == expected


def _write_format_1(tree, zxid, path):
    """A snapshot in the first format: [path, 11 values] per node, any order."""
    import msgpack
    import zlib
    acls = {}
    entries = []
    for p, n in tree.nodes.items():
        if p:
            idx = acls.setdefault(n.acl, len(acls))
            entries.append((p, n.data, idx, n.czxid, n.mzxid, n.ctime, n.mtime, n.version,
                            n.creates, n.aversion, n.owner, n.pzxid))
    random.Random(1).shuffle(entries)
    pk = msgpack.Packer(use_bin_type=True)
    body = (snapshot.HEADER.pack(snapshot.MAGIC, 1, 0, zxid) + pk.pack(tree.sessions)
            + pk.pack([[list(a) for a in acl] for acl in acls]) + pk.pack(len(entries))
            + b"".join(pk.pack(e) for e in entries))
    with open(path, "wb") as f:
        f.write(body + snapshot.TRAILER.pack(snapshot.MAGIC_END, zlib.crc32(body)))


def test_format_1_snapshots_are_still_read(tmp_path):
    d = random_workload(random.Random(16), 400)
    path = str(tmp_path / ("snapshot.%x" % d.tree.last_zxid))
    _write_format_1(d.tree, d.tree.last_zxid, path)
    assert state(read_snapshot(path)) == state(d.tree)
    assert state(restore(str(tmp_path), str(tmp_path / "nolog"))) == state(d.tree)


def test_snapshot_drops_nodes_under_a_missing_parent(tmp_path):
    """A node table taken while the tree was between two states can hold a
    node without its parent: it is left out, with everything below it."""
    d = Driver()
    sid = d.create_session()
    for p in ("/a", "/a/b", "/a/b/c", "/a/b/c/d", "/k"):
        d.create(sid, p)
    live = replayed(d.txns)
    del live.nodes["/a/b"]
    tree = read_snapshot(write_snapshot(live, live.last_zxid, str(tmp_path)))
    assert sorted(tree.paths()) == ["/", "/a", "/k", "/zookeeper", "/zookeeper/config",
                                    "/zookeeper/quota"]
    assert not tree.nodes["/a"].children


def test_invalid_contents_with_a_good_checksum_is_a_corrupt_snapshot(tmp_path):
    import zlib
    path = str(tmp_path / "snapshot.5")
    body = snapshot.HEADER.pack(snapshot.MAGIC, snapshot.FORMAT, 0, 5) + b"\x80\x90\x07"
    with open(path, "wb") as f:
        f.write(body + snapshot.TRAILER.pack(snapshot.MAGIC_END, zlib.crc32(body)))
    with pytest.raises(CorruptSnapshotError, match="invalid contents"):
        read_snapshot(path)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), where=st.floats(0, 1), truncate=st.booleans())
def test_corrupt_newest_snapshot_falls_back_to_the_previous(seed, where, truncate):
    d = random_workload(random.Random(seed), 150)
    with tempfile.TemporaryDirectory() as root:
        snap_dir, log_dir = dirs_in(root)
        write_log_files(log_dir, d.txns, starts=(0, 50, 100))
        write_snapshot(replayed(d.txns[:49]), d.txns[48].zxid, snap_dir)
        newest = write_snapshot(replayed(d.txns[:120]), d.txns[119].zxid, snap_dir)
        size = os.path.getsize(newest)
        if truncate:
            os.truncate(newest, int(where * (size - 1)))
        else:
            flip(newest, int(where * (size - 1)))
        with pytest.raises(CorruptSnapshotError):
            read_snapshot(newest)
        assert state(restore(snap_dir, log_dir)) == state(d.tree)
        # With no valid snapshot left the whole log is replayed.
        flip(list_snapshots(snap_dir)[0][1], 20)
        assert state(restore(snap_dir, log_dir)) == state(d.tree)


def test_leftover_snapshot_tmp_file_is_ignored(tmp_path):
    d = random_workload(random.Random(10), 60)
    snap_dir, log_dir = dirs_in(tmp_path)
    write_log_files(log_dir, d.txns)
    write_snapshot(replayed(d.txns[:30]), d.txns[29].zxid, snap_dir)
    with open(os.path.join(snap_dir, "snapshot.%x.tmp" % d.txns[50].zxid), "wb") as f:
        f.write(b"ZKPYSNAP half written")
    assert state(restore(snap_dir, log_dir)) == state(d.tree)


class _HookDict(dict):
    """A dict that runs hook() when write_snapshot copies it: the event loop
    applying txns between the snapshot's zxid and the moment each part of
    the tree is taken."""

    def __init__(self, data, hook):
        super().__init__(data)
        self.hook = hook

    def __iter__(self):
        return super().__iter__()

    def keys(self):
        self.hook()
        return super().keys()

    def items(self):
        self.hook()
        return super().items()


def _split_multi(txn, k):
    """The first k ops of a multi and the rest, as two txns with its zxid: the
    tree as a thread sees it when the loop is preempted inside apply()."""
    ops = list(txn.body[0])
    return (Txn(txn.session_id, txn.cxid, txn.zxid, txn.time, Op.MULTI, (ops[:k],)),
            Txn(txn.session_id, txn.cxid, txn.zxid, txn.time, Op.MULTI, (ops[k:],)))


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 200), a=st.integers(0, 40),
       b=st.integers(0, 40), after=st.integers(0, 60), mid_multi=st.booleans())
def test_fuzzy_snapshot_plus_replay_is_exact(seed, n, a, b, after, mid_multi):
    """A snapshot labelled zxid Z whose sessions were taken a txns later and
    whose nodes b txns after that (possibly in the middle of a multi), then
    more txns; replaying every txn after Z over it gives the same tree as
    applying them all: every stat, data, acl, child list, ephemeral, session."""
    rng = random.Random(seed)
    d = random_workload(rng, n + a + b + after)
    txns = d.txns
    live = replayed(txns[:n])
    z = live.last_zxid
    pending = list(txns[n:])
    if mid_multi:
        # Take the node table between two ops of the first multi after the sessions.
        i = next((j for j in range(a, len(pending)) if pending[j].type == Op.MULTI
                  and len(pending[j].body[0]) > 1 and pending[j].body[0][0][0] != Op.ERROR), None)
        if i is not None:
            first, rest = _split_multi(pending[i], rng.randrange(1, len(pending[i].body[0])))
            pending[i:i + 1] = [first, rest]
            b = i + 1 - a

    def take(k):
        def hook():
            for _ in range(min(k, len(pending))):
                live.apply(pending.pop(0))
        return hook

    live.sessions = _HookDict(live.sessions, take(a))
    live.nodes = _HookDict(live.nodes, take(b))
    with tempfile.TemporaryDirectory() as root:
        path = write_snapshot(live, z, root)
        snap = read_snapshot(path)
    assert snap.last_zxid == z
    for t in pending:
        live.apply(t)
    for t in txns[n:]:
        snap.apply(t, replay=True)
    assert state(snap) == state(d.tree)


def test_fuzzy_snapshot_mid_multi_partial_replay():
    """The snapshot thread can take the node table while the loop is inside a
    multi: its first op is in the snapshot, the rest is not.  Replay must
    still apply the rest of the multi."""
    d = Driver()
    sid = d.create_session()
    d.create(sid, "/p", b"")
    z = d.tree.last_zxid
    m = d.multi(sid, [(Op.CREATE, CreateRequest("/p/x", b"1", [WORLD], 0, -1)),
                      (Op.CREATE, CreateRequest("/p/y", b"2", [WORLD], 0, -1)),
                      (Op.SET_DATA, SetDataRequest("/p", b"3", -1))])
    first, _ = _split_multi(m, 1)
    live = replayed(d.txns[:-1])
    live.apply(first)
    snap = read_snapshot(write_snapshot(live, z, tempfile.mkdtemp()))
    snap.apply(m, replay=True)
    assert state(snap) == state(d.tree)


def test_fuzzy_snapshot_recreated_parent_keeps_its_children():
    """Between the snapshot zxid and the node table being taken: /a deleted,
    re-created, and given a child.  Replay deletes and re-creates /a; the
    child that the snapshot already holds must be linked to it again."""
    d = Driver()
    sid = d.create_session()
    d.create(sid, "/a", b"old")
    z = d.tree.last_zxid
    live = replayed(d.txns)
    d.delete(sid, "/a")
    d.create(sid, "/a", b"new")
    d.create(sid, "/a/b", b"child")
    replayed(d.txns[-3:], live)
    snap = read_snapshot(write_snapshot(live, z, tempfile.mkdtemp()))
    replayed(d.txns[-3:], snap, replay=True)
    assert state(snap) == state(d.tree)


def test_fuzzy_snapshot_path_reused_after_close_session():
    """After the snapshot zxid: a session's ephemeral is changed, the session
    closes (deleting it), and another session creates a node at the same
    path, all before the node table is taken.  Replaying the setData touches
    the newer node; the close must then delete it so that its create,
    replayed next, brings it back exactly."""
    d = Driver()
    s1, s2 = d.create_session(), d.create_session()
    d.create(s1, "/e", b"first", CreateMode.EPHEMERAL)
    z = d.tree.last_zxid
    live = replayed(d.txns)
    d.set_data(s1, "/e", b"changed")
    d.close_session(s1)
    d.create(s2, "/e", b"second", CreateMode.CONTAINER)
    replayed(d.txns[-3:], live)
    snap = read_snapshot(write_snapshot(live, z, tempfile.mkdtemp()))
    replayed(d.txns[-3:], snap, replay=True)
    assert state(snap) == state(d.tree)
    assert snap.nodes["/e"].data == b"second"


def test_fuzzy_snapshot_taken_inside_a_delete():
    """delete_node removes the node from the table before it updates the
    parent's pzxid; a snapshot thread preempted in between sees the node gone
    and the parent's old pzxid.  Replaying that delete must still set pzxid."""
    d = Driver()
    sid = d.create_session()
    d.create(sid, "/a", b"")
    d.create(sid, "/a/b", b"")
    z = d.tree.last_zxid
    d.delete(sid, "/a/b")
    live = replayed(d.txns[:-1])
    node = live.nodes.pop("/a/b")   # the first step of delete_node
    snap = read_snapshot(write_snapshot(live, z, tempfile.mkdtemp()))
    live.nodes["/a/b"] = node
    live.apply(d.txns[-1])
    assert state(live) == state(d.tree)
    snap.apply(d.txns[-1], replay=True)
    assert state(snap) == state(d.tree)


def test_fuzzy_snapshot_written_by_a_thread_while_txns_apply():
    """The real thing: write_snapshot on a thread while this thread keeps
    applying txns, with the GIL switching as often as it can."""
    rng = random.Random(11)
    d = random_workload(rng, 2500)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for n in (1500, 1800, 2100):
            live = replayed(d.txns[:n])
            z = live.last_zxid
            with tempfile.TemporaryDirectory() as root:
                t = threading.Thread(target=write_snapshot, args=(live, z, root))
                t.start()
                for txn in d.txns[n:]:
                    live.apply(txn)
                t.join()
                snap = read_snapshot(os.path.join(root, "snapshot.%x" % z))
            replayed(d.txns[n:], snap, replay=True)
            assert state(snap) == state(d.tree)
    finally:
        sys.setswitchinterval(old)


# --- DurableLog, snapshots in the background, purge ---------------------------------


def run_durable(config, txns, tree=None):
    """Feed txns to a DurableLog on a real loop in bursts, applying each to the
    live tree when it is logged (as ZooKeeperServer.apply does), so that the
    background snapshots are fuzzy; returns the tree."""
    snap_dir, log_dir = dirs(config)
    tree = tree if tree is not None else restore(snap_dir, log_dir)
    rng = random.Random(len(txns))

    async def main():
        loop = asyncio.get_running_loop()
        dl = DurableLog(config, loop, tree)
        count = [0]
        wake = asyncio.Event()

        def on_logged(txn):
            tree.apply(txn)
            count[0] += 1
            wake.set()

        i = 0
        while i < len(txns):
            burst = txns[i:i + rng.randrange(1, 40)]
            for t in burst:
                dl.append(t, on_logged)
            i += len(burst)
            while count[0] < i - rng.randrange(0, 5):
                wake.clear()
                await asyncio.wait_for(wake.wait(), 10)
            # Let a snapshot under way finish (the next one would wait for
            # it and take in the txns of both): the number of snapshots then
            # depends on the txns alone, not on how fast this machine is.
            while dl.snapshot_scheduled or dl.snapshot_wanted or (
                    dl.snapshot_thread is not None and dl.snapshot_thread.is_alive()):
                await asyncio.sleep(0.001)
        while count[0] < len(txns):
            wake.clear()
            await asyncio.wait_for(wake.wait(), 10)
        await asyncio.sleep(0)
        dl.close()
        return tree
    return asyncio.run(main())


def _log_ten(config, tree, d):
    """A DurableLog (snapCount=10, on the running loop) given d's first ten
    txns, each applied to tree once logged; and the zxids logged so far."""
    dl = DurableLog(config, asyncio.get_running_loop(), tree)
    logged = []
    for t in d.txns[:10]:
        dl.append(t, lambda txn: (tree.apply(txn), logged.append(txn.zxid)))
    return dl, logged


async def _until(done):
    while not done():
        await asyncio.sleep(0.001)


def test_a_snapshot_due_while_one_is_written_is_taken_when_it_is_done(tmp_path):
    """Not skipped (as ZooKeeper would): taken, of the tree as it is then,
    once the writer of the last one is done."""
    d = random_workload(random.Random(21), 40)
    config = ServerConfig(data_dir=tmp_path / "data", snap_count=10, pre_alloc_size_kb=8)
    snap_dir, log_dir = dirs(config)
    tree = restore(snap_dir, log_dir)

    async def main():
        dl, logged = _log_ten(config, tree, d)
        # The writer of an earlier snapshot, still at work until released.
        # Its thread outlives its report that it is done (as any thread
        # does for a moment), until the next snapshot is under way.
        release, linger = threading.Event(), threading.Event()
        writer = threading.Thread(
            target=lambda: (dl._then_next(release.wait, ()), linger.wait(10)))
        writer.start()
        dl.snapshot_thread = writer
        dl.snapshot_writing = True

        await asyncio.wait_for(_until(lambda: len(logged) == 10 and not dl.snapshot_scheduled), 10)
        assert dl.snapshot_wanted and list_snapshots(snap_dir) == []
        release.set()
        await asyncio.wait_for(_until(lambda: dl.snapshot_thread is not writer
                                      and not dl.snapshot_thread.is_alive()), 10)
        linger.set()
        dl.close()
    asyncio.run(main())
    assert [z for z, _ in list_snapshots(snap_dir)] == [d.txns[9].zxid]
    assert state(restore(snap_dir, log_dir)) == _prefix_state(d, 10)


@pytest.mark.skipif(not forked.CAN_IDLE, reason="no pidfd or SCHED_IDLE (not Linux 5.3+)")
@pytest.mark.parametrize("busy", [False, True])
def test_a_snapshot_writer_starved_at_sched_idle_is_replaced_by_one_at_nice_10(
        tmp_path, monkeypatch, caplog, busy):
    """The writer runs at SCHED_IDLE.  Here it computes for a second before
    it writes.  Given a core, it is left to it however long it takes; with
    its only core busy (another process on it at the usual priority), it is
    killed once it has waited STARVED_AFTER seconds for the core, what it
    wrote is removed, and the snapshot is taken again by a writer at nice
    10 (the one after that is idle again)."""
    d = random_workload(random.Random(22), 40)
    config = ServerConfig(data_dir=tmp_path / "data", snap_count=10, pre_alloc_size_kb=8)
    snap_dir, log_dir = dirs(config)
    tree = restore(snap_dir, log_dir)
    write = database.write_snapshot

    def writer(tree, zxid, snap_dir, stable):   # runs in the forked writer
        if os.sched_getscheduler(0) == os.SCHED_IDLE:
            with open(os.path.join(snap_dir, "snapshot.%x.tmp" % zxid), "wb") as f:
                f.write(b"ZKPYSNAP")
            end = time.process_time() + 1
            while time.process_time() < end:
                pass
        else:
            assert os.getpriority(os.PRIO_PROCESS, 0) == 10
        return write(tree, zxid, snap_dir, stable)
    monkeypatch.setattr(database, "write_snapshot", writer)
    monkeypatch.setattr(forked, "STARVED_AFTER", 0.3)
    monkeypatch.setattr(forked, "_LOOK_EVERY", 0.05)

    async def main():
        dl, logged = _log_ten(config, tree, d)
        await asyncio.wait_for(_until(lambda: list_snapshots(snap_dir)
                                      and not dl.snapshot_writing), 30)
        assert dl.idle_writer   # the next one is idle (again)
        dl.close()
    cores = os.sched_getaffinity(0)
    hog = None
    if busy:   # this thread, the writers it forks and hog on one core
        core = min(cores)
        os.sched_setaffinity(0, {core})
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(hog.pid, {core})
    try:
        with caplog.at_level(logging.WARNING, logger="zkpy.storage"):
            asyncio.run(main())
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        os.sched_setaffinity(0, cores)
    # The first writer's snapshot is of the tree before the txns were
    # applied (the log calls for it as it takes the tenth); a second one's,
    # of the tree after all ten.
    zxid = d.txns[9].zxid if busy else 0
    assert [z for z, _ in list_snapshots(snap_dir)] == [zxid]
    assert [n for n in os.listdir(snap_dir) if n.startswith("snapshot.")] == \
        ["snapshot.%x" % zxid]   # (what a killed writer wrote is gone)
    assert ("for a core at SCHED_IDLE" in caplog.text) == busy
    assert state(restore(snap_dir, log_dir)) == _prefix_state(d, 10)


def _snapshot_digest(path):
    import msgpack
    with open(path, "rb") as f:
        body = f.read()[snapshot.HEADER.size:-snapshot.TRAILER.size]
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    u.feed(body)
    return [u.unpack() for _ in range(4)][3]


def test_durable_log_snapshots_rolls_and_recovers(tmp_path):
    d = random_workload(random.Random(12), 1200)
    config = ServerConfig(data_dir=tmp_path / "data", data_log_dir=tmp_path / "txlog",
                          snap_count=100, pre_alloc_size_kb=8)
    run_durable(config, d.txns[:700])
    snap_dir, log_dir = dirs(config)
    assert len(list_snapshots(snap_dir)) >= 3 and len(list_logs(log_dir)) >= 3
    # Written by forked children, each holds the digest of what it holds,
    # which a restart takes instead of counting it again.
    for _, path in list_snapshots(snap_dir):
        loaded = read_snapshot(path)
        assert _snapshot_digest(path) == loaded.digest_sum() == tree_digest(loaded.nodes)
    # A restart: the next server continues the same log.
    tree = restore(snap_dir, log_dir)
    assert state(tree) == _prefix_state(d, 700)
    run_durable(config, d.txns[700:], tree)
    assert state(restore(snap_dir, log_dir)) == state(d.tree)


def test_purge_keeps_what_recovery_needs(tmp_path):
    d = random_workload(random.Random(13), 1500)
    config = ServerConfig(data_dir=tmp_path / "data", snap_count=60, pre_alloc_size_kb=8)
    snap_dir, log_dir = dirs(config)
    run_durable(config, d.txns)
    snaps, logs = list_snapshots(snap_dir), list_logs(log_dir)
    assert len(snaps) > 5
    deleted = purge(snap_dir, log_dir, 3)
    kept_snaps = list_snapshots(snap_dir)
    assert len(kept_snaps) == 3 and kept_snaps == snaps[-3:]
    assert set(deleted) >= {p for _, p in snaps[:-3]}
    assert any(p.endswith(os.path.basename(logs[0][1])) for p in deleted), "old logs go too"
    assert state(restore(snap_dir, log_dir)) == state(d.tree)
    # Every retained snapshot can still be recovered from, the oldest too.
    for _, p in kept_snaps[1:]:
        flip(p, 30)
    assert state(restore(snap_dir, log_dir)) == state(d.tree)
    assert purge(snap_dir, log_dir, 3) == []


def test_zxid_never_goes_backwards_across_restarts(tmp_path):
    d = random_workload(random.Random(14), 300)
    config = ServerConfig(data_dir=tmp_path, snap_count=40, pre_alloc_size_kb=8)
    snap_dir, log_dir = dirs(config)
    last = 0
    for a, b in ((0, 100), (100, 101), (101, 101), (101, 300)):
        tree = restore(snap_dir, log_dir)
        assert tree.last_zxid >= last
        assert tree.last_zxid == (d.txns[a - 1].zxid if a else 0)
        run_durable(config, d.txns[a:b], tree)
        last = tree.last_zxid
    assert restore(snap_dir, log_dir).last_zxid == d.txns[-1].zxid
