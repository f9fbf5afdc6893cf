"""Durable storage of one server (ZooKeeper's FileTxnSnapLog + ZKDatabase):
recovery on start, the log the pipeline appends to, periodic fuzzy snapshots,
and purging of old files."""

import gc
import logging
import math
import os
import random
import threading
import time

from ..datatree.tree import DataTree
from . import forked
from .snapshot import (CorruptSnapshotError, list_snapshots, read_snapshot, snapshot_file_name,
                       write_snapshot)
from .syncer import TxnLogSyncer
from .files import fsync_dir, tmp_path
from .txnlog import CorruptLogError, list_logs, scan_log, truncate_at

log = logging.getLogger("zkpy.storage")

VERSION_DIR = "version-2"


class DataDirError(Exception):
    """The data directory cannot be recovered without losing data."""


def dirs(config) -> tuple[str, str]:
    snap_dir = os.path.join(str(config.data_dir), VERSION_DIR)
    log_dir = os.path.join(str(config.data_log_dir or config.data_dir), VERSION_DIR)
    return snap_dir, log_dir


def restore(snap_dir: str, log_dir: str, repair: bool = True,
            timings: dict | None = None) -> DataTree:
    """The newest valid snapshot plus every logged txn after it.  timings, if
    given, gets ZooKeeper's startup figures: snap_load_ms, txns_loaded,
    txns_load_ms."""
    start = time.monotonic()
    tree = load_snapshot(snap_dir)
    loaded = time.monotonic()
    applied = 0
    for txn in logged_txns(log_dir, tree.last_zxid, repair):
        tree.apply(txn, replay=True)
        applied += 1
    if applied:
        log.info("Replayed %d txns from the log; last zxid 0x%x", applied, tree.last_zxid)
    if timings is not None:
        timings.update(snap_load_ms=(loaded - start) * 1000, txns_loaded=applied,
                       txns_load_ms=(time.monotonic() - loaded) * 1000)
    return tree


def load_snapshot(snap_dir: str) -> DataTree:
    """The tree of the newest valid snapshot (an empty tree if there is none)."""
    for zxid, path in reversed(list_snapshots(snap_dir)):
        try:
            tree = read_snapshot(path)
            log.info("Loaded snapshot %s (zxid 0x%x, %d znodes)", path, zxid, tree.node_count())
            return tree
        except CorruptSnapshotError as e:
            log.warning("Skipping invalid snapshot: %s", e)
    return DataTree()


def logged_txns(log_dir: str, after: int, repair: bool = True) -> list:
    """Every logged txn after zxid `after`, in order; a torn tail is cut off
    (with a warning), any other damage raises DataDirError."""
    logs = list_logs(log_dir)
    start = 0
    for i, (first, _) in enumerate(logs):
        if first <= after + 1:
            start = i
    needed = logs[start:]
    # A log that starts in a later epoch than the snapshot is no gap: a quorum
    # peer's first txn of an epoch is (epoch << 32) | 1 (and a peer with no
    # snapshot yet starts from the empty tree, zxid 0).
    if needed and needed[0][0] > after + 1 and (needed[0][0] >> 32) == (after >> 32):
        raise DataDirError(
            f"{needed[0][1]}: the log starts at zxid 0x{needed[0][0]:x} but the newest snapshot "
            f"ends at 0x{after:x}: a log file is missing")
    out = []
    last = after
    for i, (first, path) in enumerate(needed):
        is_last = i == len(needed) - 1
        try:
            txns, end, torn = scan_log(path, is_last)
        except CorruptLogError as e:
            raise DataDirError(str(e)) from None
        for txn in txns:
            if txn.zxid <= last:
                continue
            _check_continuity(path, last, txn.zxid)
            out.append(txn)
            last = txn.zxid
        if is_last and torn:
            log.warning("%s: torn record at offset %d after the last complete txn; "
                        "truncating it", path, end)
            if repair:
                truncate_at(path, end)
        if is_last and not txns and repair:
            # Nothing whole in it (a crash right after it was created): it holds
            # no data, and left in place it would stop the next server from
            # creating the log file for its first txn, which has this name.
            log.warning("%s: no complete txn in the newest log file; removing it", path)
            os.remove(path)
            fsync_dir(log_dir)
    return out


def _check_continuity(path, last, zxid):
    if last and (zxid >> 32) == (last >> 32) and zxid != last + 1:
        raise DataDirError(f"{path}: txn 0x{zxid:x} follows 0x{last:x}: txns are missing "
                           f"(a log file was lost?)")


class DurableLog:
    """The log the server's pipeline appends to: group-committed, fsynced
    (unless forceSync=no), with a snapshot every snapCount txns or so, or
    sooner once snapSizeLimitInKb or so of txns have been logged since the
    last one (SyncRequestProcessor.shouldSnapshot)."""

    def __init__(self, config, loop, tree, on_batch=None):
        """on_batch: see TxnLogSyncer."""
        self.config = config
        self.tree = tree
        self.loop = loop
        self.snap_dir, self.log_dir = dirs(config)
        os.makedirs(self.snap_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.syncer = TxnLogSyncer(self.log_dir, loop, config.force_sync,
                                   config.pre_alloc_size_kb, config.fsync_warning_threshold_ms,
                                   on_batch=on_batch,
                                   size_limit=max(0, config.txn_log_size_limit_kb) * 1024)
        self.since_snapshot = 0
        self.snapshot_at = self._next_snapshot_point()
        self.bytes_since_snapshot = 0
        self.snapshot_bytes_at = self._next_snapshot_size()
        self.snapshot_thread = None
        self.snapshot_writing = False   # from a snapshot's start to the loop hearing it is done
        self.snapshot_scheduled = False
        self.snapshot_wanted = False
        self.idle_writer = forked.CAN_IDLE   # the next writer at SCHED_IDLE (forked.py)
        self.starved = False   # set by the snapshot thread: its idle writer was killed
        self.closing = False
        self.snapshot_time = None   # a Summary of snapshot write times (ms), if observed

    def observe(self, metrics, stats=None):
        """Report fsync times, batch sizes and snapshot times to a
        ServerMetrics (and fsyncs over fsync.warningthresholdms to
        ServerStats)."""
        fsynctime = metrics.summary("fsynctime")
        batch = metrics.summary("sync_processor_batch_size")
        threshold = self.config.fsync_warning_threshold_ms

        def fsynced(ms):
            fsynctime.add_value(ms)
            if stats is not None and ms > threshold:
                stats.fsync_threshold_exceeded += 1
        self.syncer.on_fsync = fsynced
        self.syncer.on_flush = batch.add
        self.snapshot_time = metrics.summary("snapshottime")

    def _next_snapshot_point(self) -> int:
        # Randomised as in ZooKeeper so that peers don't all snapshot at once.
        n = self.config.snap_count
        return random.randint(n // 2 + 1, n) if n > 2 else n

    def _next_snapshot_size(self) -> float:
        # Past half the limit plus a random part of the other half, as in
        # ZooKeeper; infinite when snapSizeLimitInKb is not positive.
        limit = self.config.snap_size_limit_kb * 1024
        if limit <= 0:
            return math.inf
        return limit // 2 + random.randrange(max(1, limit // 2))

    def append(self, txn, on_logged=None):
        self.bytes_since_snapshot += self.syncer.append(txn, on_logged)
        self.since_snapshot += 1
        if (self.since_snapshot >= self.snapshot_at
                or self.bytes_since_snapshot > self.snapshot_bytes_at) \
                and not self.snapshot_scheduled:
            self.snapshot_scheduled = True
            self.loop.call_soon(self._snapshot)

    def _snapshot(self):
        # The tree's objects are long-lived and hold no cycles: move them out
        # of the garbage collector's way, or full collections over a growing
        # tree stall the event loop for tens of milliseconds.
        gc.freeze()
        self.since_snapshot = 0
        self.snapshot_at = self._next_snapshot_point()
        self.bytes_since_snapshot = 0
        self.snapshot_bytes_at = self._next_snapshot_size()
        self.snapshot_scheduled = False
        if self.snapshot_writing:
            # Still writing the last one: take this one as soon as it is done.
            # (ZooKeeper skips it.  Under a write load that outpaces the
            # snapshots of a large tree, skipping lets the log tail that a
            # restart replays grow by snapCount txns at each skip.)
            self.snapshot_wanted = True
            return
        self.snapshot_wanted = False
        self.snapshot_writing = True
        self.syncer.roll()
        zxid = self.tree.last_zxid
        idle, self.idle_writer = self.idle_writer, forked.CAN_IDLE
        pid = self._fork_snapshot(zxid, idle)
        if pid:
            target, args = self._reap_snapshot, (pid, zxid, idle)
        else:
            target, args = self._write_snapshot, (zxid,)
        self.snapshot_thread = threading.Thread(
            target=self._then_next, args=(target, args), name="zkpy-snapshot", daemon=True)
        self.snapshot_thread.start()

    def _then_next(self, target, args):
        """The snapshot thread: target(*args) writes (or waits for the
        forked writer of) a snapshot; the loop then hears it is done.  Told
        on the loop, not judged from this thread being alive, which it still
        is while the loop already runs what it scheduled."""
        target(*args)
        try:
            self.loop.call_soon_threadsafe(self._snapshot_written)
        except RuntimeError:  # the loop is gone: we are shutting down
            pass

    def _snapshot_written(self):
        self.snapshot_writing = False
        if self.starved:   # taken again now, by a writer at nice 10
            self.starved = False
            self.idle_writer = False
            self.snapshot_wanted = True
        if self.snapshot_wanted and not self.closing:
            self._snapshot()

    def _fork_snapshot(self, zxid, idle=False) -> int:
        """Write the snapshot from a forked child: it sees the tree exactly as
        it is now (copy-on-write) and serialises it without taking the GIL
        from the event loop; at SCHED_IDLE if idle, else at nice 10.  0 if
        fork is not available."""
        if not hasattr(os, "fork"):
            return 0
        try:
            pid = os.fork()
        except OSError:
            return 0
        if pid == 0:  # the child: write, and leave without running any cleanup
            code = 1
            try:
                forked.enter_child()
                # Background work: the fsync helper and the clients come
                # first when the cores are busy (a commit waits on the
                # helper; the snapshot only has to be done by the next one).
                forked.enter_background(idle)
                write_snapshot(self.tree, zxid, self.snap_dir, stable=True)
                code = 0
            finally:
                os._exit(code)
        return pid

    def _reap_snapshot(self, pid, zxid, idle=False):
        start = time.monotonic()
        if not idle:
            _, status = os.waitpid(pid, 0)
        else:
            status = forked.wait_unless_starved(pid)
            if status is None:
                try:   # what it had written
                    os.unlink(tmp_path(os.path.join(self.snap_dir, snapshot_file_name(zxid))))
                except FileNotFoundError:
                    pass
                log.warning("Snapshot at zxid 0x%x: its writer waited %.0f s for a core at "
                            "SCHED_IDLE (every core busy); taken again at nice 10",
                            zxid, forked.STARVED_AFTER)
                self.starved = True
                return
        if self.snapshot_time is not None:
            self.snapshot_time.add_value((time.monotonic() - start) * 1000)
        if os.waitstatus_to_exitcode(status) == 0:
            log.info("Snapshot at zxid 0x%x written", zxid)
        else:
            log.error("Snapshot at zxid 0x%x failed (writer exited with status %s); "
                      "the log still holds every txn", zxid, status)

    def _write_snapshot(self, zxid):
        try:
            start = time.monotonic()
            path = write_snapshot(self.tree, zxid, self.snap_dir)
            if self.snapshot_time is not None:
                self.snapshot_time.add_value((time.monotonic() - start) * 1000)
            log.info("Snapshot %s written", path)
        except Exception:
            log.exception("Snapshot at zxid 0x%x failed", zxid)

    def take_snapshot(self) -> str:
        """A snapshot now, on the calling thread (for tools and tests)."""
        self.syncer.roll()
        return write_snapshot(self.tree, self.tree.last_zxid, self.snap_dir)

    def purge(self, retain: int | None = None) -> list:
        return purge(self.snap_dir, self.log_dir, retain or self.config.autopurge_snap_retain_count)

    def close(self):
        self.closing = True
        self.syncer.close()
        t = self.snapshot_thread
        if t is not None:
            t.join(60)


def purge(snap_dir, log_dir, retain: int) -> list:
    """Delete all but the newest `retain` snapshots and the logs only they
    needed (PurgeTxnLog).  Returns the deleted paths."""
    retain = max(3, retain)
    snaps = list_snapshots(snap_dir)
    if len(snaps) <= retain:
        return []
    oldest_kept = snaps[-retain][0]
    deleted = [p for _, p in snaps[:-retain]]
    logs = list_logs(log_dir)
    # Keep the newest log that starts at or before the oldest kept snapshot.
    keep_from = 0
    for i, (first, _) in enumerate(logs):
        if first <= oldest_kept + 1:
            keep_from = i
    deleted += [p for _, p in logs[:keep_from]]
    for p in deleted:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
    return deleted
