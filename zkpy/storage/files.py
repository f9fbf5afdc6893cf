"""Files that are replaced whole (snapshots, the epoch files): written beside
their final name, fsynced, renamed over it, and the directory fsynced, so
that after a crash the name holds either the old contents or the new ones,
never a mix or nothing."""

import mmap
import os


def fsync_dir(path: str) -> None:
    """Make the directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cached(path: str) -> None:
    """Drop the file's pages from the page cache (written and synced: only
    memory is given back), so that the next large file written reuses them
    instead of taking memory the kernel has to find anew: in a virtual
    machine whose memory is backed on first touch, that made writing 50 MiB
    take 250 ms instead of 9 ms."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:   # purged meanwhile
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def tmp_path(path: str) -> str:
    """Where write_atomically writes the file at path until it is whole."""
    return path + ".tmp"


def write_atomically(path: str, write, buffering: int = -1, sync_step: int = 0) -> str:
    """Replace the file at path with what write(f) writes into a binary file.
    sync_step: if set, f writes the file out every sync_step bytes and drops
    what it wrote from the page cache (WrittenOut): for large files written
    while the server works."""
    tmp = tmp_path(path)
    with open(tmp, "wb", buffering=buffering) as f:
        out = WrittenOut(f, sync_step) if sync_step else f
        write(out)
        f.flush()
        os.fsync(f.fileno())
        if sync_step:
            out.all_synced()
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
    return path


class WrittenOut:
    """A file being written that goes to disk, and out of the page cache,
    every `step` bytes: fdatasync, then POSIX_FADV_DONTNEED on what it
    synced.

    For a snapshot written while fsynced writes go on (scripts/bench
    --force-sync, creates: a 60 MiB snapshot every second or so).  Written
    whole and fsynced at the end, its pages took fresh memory (see
    drop_cached) and its writeback came in one burst that the log's
    fdatasyncs queued behind.  A step of 1 MiB, the same pages reused again
    and again, took the server from 65.7-68.5k to 71.6-74.2k creates/s
    (interleaved runs; a step of 4 MiB gave 70-72k, 16 MiB 68-70k, 256 KiB
    no more than 1 MiB).  The file is not left in the page cache: whoever
    reads it (a restart) reads it from the disk."""

    def __init__(self, f, step: int):
        self.f = f
        self.fd = f.fileno()
        self.step = step
        self.written = 0     # bytes handed to write()
        self.synced = 0      # of which are on disk, and out of the page cache

    def write(self, b) -> int:
        n = self.f.write(b)
        self.written += n
        if self.written - self.synced >= self.step:
            self.f.flush()
            os.fdatasync(self.fd)
            self._synced_to(self.written)
        return n

    def all_synced(self) -> None:
        """The whole file is synced (by its writer): drop the rest."""
        self._synced_to(self.written)

    def _synced_to(self, end) -> None:
        """Everything up to end is on disk: drop what was not dropped yet.
        Whole pages go, and the file's last page; the page an earlier sync
        ended in goes with the next."""
        if hasattr(os, "posix_fadvise"):
            start = self.synced & ~(mmap.PAGESIZE - 1)
            os.posix_fadvise(self.fd, start, end - start, os.POSIX_FADV_DONTNEED)
        self.synced = end
