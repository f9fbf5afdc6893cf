"""Group commit (ZooKeeper's SyncRequestProcessor): txns appended on the event
loop are written and fsynced by one background thread, many at a time, and
handed back to the loop, in order, once they are on disk.

fsync releases the GIL, so the event loop keeps serving reads while the disk
works; every write that arrives during an fsync shares the next one.

With forceSync=no there is nothing to wait for, so no thread: the txns of one
event-loop iteration are written together at its end and handed back at once.

With forceSync=yes the loop hands each batch's records to a helper process
that writes and fdatasyncs them (fsyncer.py), so that no thread has to win
the GIL back from a busy loop before a commit is acknowledged, and no write(2)
stalls the loop behind a journal commit.  Each loop iteration's batch goes to
the helper at once; the helper syncs together every batch that waited for its
last sync to end.  The thread remains the fallback."""

import collections
import logging
import os
import threading
import time

from .fsyncer import FsyncHelper
from .files import fsync_dir
from .txnlog import RECORD, LogFile, encode_records, log_file_name

log = logging.getLogger("zkpy.storage")

# Bytes of log records handed to the fsync helper and not answered yet, past
# which the loop holds further batches back: well under a pipe's 64 KiB, so
# handing one over never blocks while the helper syncs.
_PIPE_BUDGET = 32 * 1024


class TxnLogSyncer:
    def __init__(self, log_dir, loop, force_sync=True, prealloc_kb=65536,
                 warn_ms=1000, current=None, on_batch=None, size_limit=0):
        """current: (path, end offset) of a log file to keep appending to.
        size_limit: bytes of records past which a log file is closed and
        the next batch starts a new one (txnLogSizeLimitInKb); 0: no limit.
        on_batch(zxid), if given, runs on the loop after each batch's txns
        are logged (and their on_logged callbacks ran), with the batch's last
        zxid: one call where a whole group commit can be handled at once."""
        self.log_dir = log_dir
        self.loop = loop
        self.on_batch = on_batch
        self.force_sync = force_sync
        self.prealloc = prealloc_kb * 1024
        self.warn_ms = warn_ms
        self.size_limit = size_limit
        self.file = None
        if current is not None:
            path, end = current
            self.file = LogFile(path, self.prealloc, new=False, end=end)
        # Batches are lists of (txn payload, txn, on_logged).
        self.pending = []       # handed to the syncer thread (under cv)
        self.gathering = []     # appended during this loop iteration (loop only)
        self.roll_requested = False
        self.cv = threading.Condition()
        self.stopping = False
        self.failed = None
        self.fsync_count = 0
        # Figures for ServerMetrics, set by the server: on_fsync(ms) after
        # each fsync, on_flush(txns) after each batch is logged.
        self.on_fsync = None
        self.on_flush = None
        self.thread = None
        self.helper = None
        self.flush_scheduled = False
        self.unsynced = []      # not yet handed to the helper (helper mode)
        self.unsent = []        # their (path, offset, data) chunks
        # (batch, bytes) handed to the helper and not answered yet, oldest
        # first, and their bytes in all (see _request_sync).
        self.in_flight = collections.deque()
        self.in_flight_bytes = 0
        if force_sync:
            try:
                self.helper = FsyncHelper(loop, self._synced)
            except OSError as e:
                log.warning("no fsync helper process (%s); fsyncing from a thread", e)
                self.thread = threading.Thread(target=self._run, name="zkpy-syncer",
                                               daemon=True)
                self.thread.start()

    # --- event loop side --------------------------------------------------------------

    def append(self, txn, on_logged=None) -> int:
        """Queue a txn; on_logged(txn) (if given) runs on the loop once it is
        written (and fsynced, with forceSync).  The txns of one loop iteration
        travel together: one hand-over to the syncer thread, one write.
        Returns the size of its record."""
        if self.failed is not None:
            raise self.failed
        # Only the payload: the records' headers are packed a batch at
        # a time when the batch is written (encode_records), which saves a
        # call and a copy of the payload per txn.
        payload = txn.packed()
        self.gathering.append((payload, txn, on_logged))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._hand_over if self.thread is not None else
                                self._flush_helper if self.helper is not None else
                                self._flush_inline)
        return RECORD.size + len(payload)

    def _hand_over(self):
        self.flush_scheduled = False
        batch, self.gathering = self.gathering, []
        if batch:
            with self.cv:
                self.pending.extend(batch)
                self.cv.notify()

    def roll(self):
        """Start a new log file at the next txn (after a snapshot point)."""
        with self.cv:
            self.roll_requested = True

    def _logged(self, batch):
        if self.on_flush is not None:
            self.on_flush(len(batch))
        for _, txn, on_logged in batch:
            if on_logged is not None:
                on_logged(txn)
        if self.on_batch is not None:
            self.on_batch(batch[-1][1].zxid)

    def _flush_inline(self):
        self.flush_scheduled = False
        batch, self.gathering = self.gathering, []
        roll, self.roll_requested = self.roll_requested, False
        if not batch:
            return
        try:
            self._write(batch, roll)
        except Exception as e:
            log.critical("transaction log write failed: %s; no further writes "
                         "will be acknowledged", e)
            self.failed = e
            return
        self._logged(batch)

    def _flush_helper(self):
        self.flush_scheduled = False
        batch, self.gathering = self.gathering, []
        roll, self.roll_requested = self.roll_requested, False
        if not batch or self.failed is not None:
            return
        try:
            offset, data = self._place(batch, roll)
        except Exception as e:
            self._fail(e)
            return
        self.unsynced.extend(batch)
        self.unsent.append((self.file.path, offset, data))
        self._request_sync()

    def _request_sync(self):
        """Hand what is gathered to the helper at once, even while it syncs
        earlier batches (it takes them all into its next sync) -- unless
        that would leave more than _PIPE_BUDGET bytes on their way: a
        write(2) to a full pipe would block the loop until the helper's
        sync is done.  What is held back goes when an answer comes."""
        if not self.unsynced:
            return
        size = sum(len(data) for _, _, data in self.unsent)
        if self.in_flight and self.in_flight_bytes + size > _PIPE_BUDGET:
            return
        self.in_flight.append((self.unsynced, size))
        self.in_flight_bytes += size
        self.unsynced = []
        chunks, self.unsent = self.unsent, []
        try:
            self.helper.request(chunks)
        except OSError as e:
            self._fail(e)

    def _synced(self, error, n, ms):
        """The helper's sync of the n oldest batches in flight is done."""
        if error is not None:
            if self.failed is None:
                self._fail(error)
            return
        # The batches of one sync are handed back as one: one on_batch (a
        # follower's one ack), one set of figures.
        batch = []
        for _ in range(min(n, len(self.in_flight))):
            done, size = self.in_flight.popleft()
            self.in_flight_bytes -= size
            batch += done
        self.fsync_count += 1
        self._took(ms)
        self._request_sync()
        if batch:
            self._logged(batch)

    def _fail(self, e):
        log.critical("transaction log write failed: %s; no further writes "
                     "will be acknowledged", e)
        self.failed = e

    def _warn_if_slow(self, start):
        self._took((time.monotonic() - start) * 1000)

    def _took(self, took):
        """A write and sync of the log took `took` ms."""
        if self.on_fsync is not None:
            self.on_fsync(took)
        if took > self.warn_ms:
            log.warning("fsync-ing the write ahead log took %dms which will adversely "
                        "effect operation latency. File size is %d bytes. "
                        "See the ZooKeeper troubleshooting guide",
                        took, self.file.size if self.file is not None else 0)

    def close(self):
        if self.helper is not None:
            self._flush_helper()
            self.helper.close()
            self.helper = None
            self._write_unsent()
        elif self.thread is None:
            self._flush_inline()
        else:
            self._hand_over()
            with self.cv:
                self.stopping = True
                self.cv.notify()
            self.thread.join(30)
        if self.file is not None:
            self.file.close()
            self.file = None

    # --- syncer thread -------------------------------------------------------------------

    def _run(self):
        while True:
            with self.cv:
                while not self.pending and not self.stopping:
                    self.cv.wait()
                if not self.pending and self.stopping:
                    return
                batch = self.pending
                self.pending = []
                roll = self.roll_requested
                self.roll_requested = False
            try:
                self._write(batch, roll)
            except Exception as e:  # a failing disk: stop acknowledging anything
                log.critical("transaction log write failed: %s; no further writes "
                             "will be acknowledged", e)
                with self.cv:
                    self.failed = e
                return
            self.loop.call_soon_threadsafe(self._logged, batch)

    def _open(self, batch, roll, sync):
        # FileTxnLog rolls once a commit has taken the file past the limit.
        if self.file is not None and (roll or 0 < self.size_limit < self.file.pos):
            self.file.close()
            self.file = None
        if self.file is None:
            first = batch[0][1].zxid
            os.makedirs(self.log_dir, exist_ok=True)
            self.file = LogFile(os.path.join(self.log_dir, log_file_name(first)), self.prealloc)
            if self.force_sync and sync:  # (the helper syncs a new file's directory)
                self.file.sync()
                fsync_dir(self.log_dir)

    def _place(self, batch, roll):
        """(offset, data): where the helper is to write the batch's records."""
        self._open(batch, roll, sync=False)
        data = encode_records(batch)
        return self.file.reserve(len(data)), data

    def _write_unsent(self):
        """At shutdown: what the helper was never handed goes to the page cache."""
        chunks, self.unsent = self.unsent, []
        for path, offset, data in chunks:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, offset)
            finally:
                os.close(fd)

    def _write(self, batch, roll, sync=True):
        self._open(batch, roll, sync)
        self.file.write(encode_records(batch))
        if self.force_sync and sync:
            start = time.monotonic()
            self.file.sync()
            self.fsync_count += 1
            self._warn_if_slow(start)
