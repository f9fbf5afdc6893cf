"""snapSizeLimitInKb and txnLogSizeLimitInKb on the storage: a snapshot once
enough txn bytes have been logged since the last one, whatever snapCount
says; a log file closed once a commit takes it past the size limit.  Real
files, a real asyncio loop (the helpers of test_storage.py)."""

import asyncio
import random

import pytest

from tests.unit.test_storage import random_workload, run_durable, state
from zkpy.server.config import ServerConfig
from zkpy.storage.database import dirs, restore
from zkpy.storage.snapshot import list_snapshots
from zkpy.storage.syncer import TxnLogSyncer
from zkpy.storage.txnlog import encode_txn, list_logs, read_log


def record_bytes(txns) -> int:
    return sum(len(encode_txn(t)) for t in txns)


def test_log_files_roll_past_the_size_limit(tmp_path):
    d = random_workload(random.Random(7), 600)
    limit = 4096
    done, _ = run_syncer_with_limit(tmp_path, d.txns, limit)
    assert done == [t.zxid for t in d.txns]
    logs = list_logs(str(tmp_path))
    total = record_bytes(d.txns)
    assert len(logs) > total // (2 * limit)
    for i, (_, path) in enumerate(logs):
        txns, _ = read_log(path, is_last=i == len(logs) - 1)
        size = record_bytes(txns)
        if i < len(logs) - 1:
            # Closed by the commit that took it past the limit, not before.
            assert size > limit
    # Every txn is there, in order, across the files.
    zxids = [t.zxid for i, (_, p) in enumerate(logs)
             for t in read_log(p, is_last=i == len(logs) - 1)[0]]
    assert zxids == [t.zxid for t in d.txns]


def test_without_a_size_limit_one_log_file(tmp_path):
    d = random_workload(random.Random(7), 600)
    run_syncer_with_limit(tmp_path, d.txns, 0)
    assert len(list_logs(str(tmp_path))) == 1


def run_syncer_with_limit(log_dir, txns, limit):
    """Append txns through a TxnLogSyncer with size_limit, a few at a time
    (a batch each); the zxids in the order they were logged, and the syncer."""
    async def main():
        loop = asyncio.get_running_loop()
        s = TxnLogSyncer(str(log_dir), loop, force_sync=False, prealloc_kb=4, size_limit=limit)
        done = []
        for i, t in enumerate(txns):
            s.append(t, lambda txn: done.append(txn.zxid))
            if i % 7 == 6:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        s.close()
        return done, s
    return asyncio.run(main())


def _run_with_snap_size_limit(tmp_path, limit_kb):
    """A workload through a DurableLog with snapSizeLimitInKb=limit_kb and a
    snapCount far beyond the run: every snapshot is the size limit's.
    (workload, snapshot dir, log dir)."""
    d = random_workload(random.Random(3), 900)
    config = ServerConfig(data_dir=tmp_path / "data", snap_count=1_000_000,
                          snap_size_limit_kb=limit_kb, pre_alloc_size_kb=8)
    run_durable(config, d.txns)
    return (d, *dirs(config))


@pytest.mark.parametrize("limit_kb", [8, 32])
def test_snapshots_by_logged_bytes(tmp_path, limit_kb):
    d, snap_dir, log_dir = _run_with_snap_size_limit(tmp_path, limit_kb)
    total = record_bytes(d.txns)
    limit = limit_kb * 1024
    snaps = len(list_snapshots(snap_dir))
    # One after every limit/2 .. limit bytes, give or take the rest of the
    # burst of appends in which the limit was passed (up to 40 txns: the
    # snapshot starts once the loop gets to it).
    burst = 40 * max(len(encode_txn(t)) for t in d.txns)
    assert total // (limit + burst) <= snaps <= total // (limit // 2)
    assert state(restore(snap_dir, log_dir)) == state(d.tree)


@pytest.mark.parametrize("limit_kb", [0, -1])
def test_no_snapshots_by_size_when_the_limit_is_off(tmp_path, limit_kb):
    _, snap_dir, _ = _run_with_snap_size_limit(tmp_path, limit_kb)
    assert list_snapshots(snap_dir) == []


def test_txn_log_size_limit_through_the_durable_log(tmp_path):
    d = random_workload(random.Random(5), 600)
    config = ServerConfig(data_dir=tmp_path / "data", snap_count=1_000_000,
                          snap_size_limit_kb=0, txn_log_size_limit_kb=2,
                          pre_alloc_size_kb=8)
    run_durable(config, d.txns)
    snap_dir, log_dir = dirs(config)
    assert len(list_logs(log_dir)) > record_bytes(d.txns) // (2 * 2048)
    assert state(restore(snap_dir, log_dir)) == state(d.tree)
