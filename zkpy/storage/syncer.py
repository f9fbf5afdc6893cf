"""Group commit (ZooKeeper's SyncRequestProcessor): txns appended on the event
loop are written and fsynced by one background thread, many at a time, and
handed back to the loop, in order, once they are on disk.

fsync releases the GIL, so the event loop keeps serving reads while the disk
works; every write that arrives during an fsync shares the next one.

With forceSync=no there is nothing to wait for, so no thread: the txns of one
event-loop iteration are written together at its end and handed back at once."""

import logging
import os
import threading
import time

from .txnlog import LogFile, encode_txn, fsync_dir, log_file_name

log = logging.getLogger("zkpy.storage")


class TxnLogSyncer:
    def __init__(self, log_dir, loop, force_sync=True, prealloc_kb=65536,
                 warn_ms=1000, current=None):
        """current: (path, end offset) of a log file to keep appending to."""
        self.log_dir = log_dir
        self.loop = loop
        self.force_sync = force_sync
        self.prealloc = prealloc_kb * 1024
        self.warn_ms = warn_ms
        self.file = None
        if current is not None:
            path, end = current
            self.file = LogFile(path, self.prealloc, new=False, end=end)
        self.pending = []       # handed to the syncer thread (under cv)
        self.gathering = []     # appended during this loop iteration (loop only)
        self.roll_requested = False
        self.cv = threading.Condition()
        self.stopping = False
        self.failed = None
        self.fsync_count = 0
        self.thread = None
        self.flush_scheduled = False
        if force_sync:
            self.thread = threading.Thread(target=self._run, name="zkpy-syncer", daemon=True)
            self.thread.start()

    # --- event loop side --------------------------------------------------------------

    def append(self, txn, on_logged):
        """Queue a txn; on_logged(txn) runs on the loop once it is written
        (and fsynced, with forceSync).  The txns of one loop iteration travel
        together: one hand-over to the syncer thread, one write."""
        if self.failed is not None:
            raise self.failed
        self.gathering.append((encode_txn(txn), txn, on_logged))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush_inline if self.thread is None else self._hand_over)

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
        for _, txn, on_logged in batch:
            on_logged(txn)

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

    def close(self):
        if self.thread is None:
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

    def _write(self, batch, roll):
        if roll and self.file is not None:
            self.file.close()
            self.file = None
        if self.file is None:
            first = batch[0][1].zxid
            os.makedirs(self.log_dir, exist_ok=True)
            self.file = LogFile(os.path.join(self.log_dir, log_file_name(first)), self.prealloc)
            if self.force_sync:  # forceSync=no promises nothing about the disk
                self.file.sync()
                fsync_dir(self.log_dir)
        self.file.write(b"".join(rec for rec, _, _ in batch))
        if self.force_sync:
            start = time.monotonic()
            self.file.sync()
            self.fsync_count += 1
            took = (time.monotonic() - start) * 1000
            if took > self.warn_ms:
                log.warning("fsync-ing the write ahead log in %s took %dms which will adversely "
                            "effect operation latency. File size is %d bytes. "
                            "See the ZooKeeper troubleshooting guide",
                            self.thread.name, took, self.file.size)
