"""The AdminServer's snapshot and restore commands (ZooKeeper 3.9): a
snapshot of the tree as it is now, written to dataDir and handed out whole;
a restore that replaces the tree with one from such a snapshot.

snapshot: the tree is serialised by a forked child (storage.forked), which
sees it exactly as it is at the fork while the loop goes on serving, as the
periodic snapshots do; the bytes are written to dataDir/version-2 as a
snapshot file, then streamed to the caller.

restore: atomic.  The new tree is built completely from the uploaded
snapshot (its checksum checked) while the server serves from the old one;
then the server holds new writes, lets every write already in the pipeline
finish, writes the new tree as the newest snapshot (fsynced), and only then
swaps it in, as a follower's SNAP
install does (ZooKeeperServer.install_tree).  A failure at any step before
the swap leaves the old tree serving; the held writes then go on against
whichever tree is in place.

A restore is refused on an ensemble member: ZooKeeper 3.9 replaces the
in-memory tree of the one server it is sent to, which its peers never hear
of (docs/compatibility.md)."""

import asyncio
import logging
import time

from ..storage.files import fsync_dir
from ..storage.forked import fork_bytes
from ..storage.snapshot import (
    CorruptSnapshotError, parse_snapshot, snapshot_bytes, write_snapshot_bytes,
)
from . import figures

log = logging.getLogger("zkpy.server.admin")


class BackupError(Exception):
    """A snapshot or restore that could not be done (HTTP status, message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class RateLimiter:
    """ZooKeeper's RateLimiter(1, interval): one call per interval, the first at once."""

    def __init__(self, interval_s: float, clock=time.monotonic):
        self.interval = interval_s
        self.clock = clock
        self.last = None

    def allow(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return False
        self.last = now
        return True


async def take_snapshot(server) -> tuple:
    """(zxid, bytes) of a snapshot of server's tree now, also written to
    dataDir as a snapshot file."""
    loop = asyncio.get_running_loop()
    tree = server.tree
    zxid = tree.last_zxid
    done = loop.create_future()

    def make():
        return snapshot_bytes(tree, zxid, stable=True)

    def finished(blob):
        if not done.done():
            done.set_result(blob)

    if not fork_bytes(make, loop, finished):
        # No fork here: serialise on the loop (it must not change meanwhile).
        finished(make())
    blob = await done
    if blob is None:
        raise BackupError(500, "the snapshot could not be written")
    snap_dir = figures.snap_dir(server)
    await loop.run_in_executor(None, write_snapshot_bytes, blob, zxid, snap_dir)
    log.info("Snapshot at zxid 0x%x taken for the admin snapshot command (%d bytes)",
             zxid, len(blob))
    return zxid, blob


async def restore(server, blob: bytes, drain_timeout_s: float = 30.0) -> int:
    """Replace server's tree with the snapshot in blob; the zxid the restored
    tree stands at."""
    loop = asyncio.get_running_loop()
    try:
        tree = await loop.run_in_executor(None, parse_snapshot, blob, "the uploaded snapshot")
    except CorruptSnapshotError as e:
        raise BackupError(500, f"not a valid snapshot: {e}") from None
    except Exception as e:   # msgpack errors on a body that passed the checksum
        raise BackupError(500, f"not a valid snapshot: {e}") from None
    log.info("Restoring a snapshot at zxid 0x%x (%d znodes) over zxid 0x%x (%d znodes)",
             tree.last_zxid, tree.node_count(), server.tree.last_zxid, server.tree.node_count())
    server.hold_writes()
    try:
        await _drained(server, drain_timeout_s)
        # The restore takes a zxid of its own, after everything logged so
        # far: its snapshot is newer than any of the old tree (a periodic
        # one still being written included), recovery starts from it and
        # replays nothing logged before it.
        zxid = max(server.next_zxid, tree.last_zxid)
        tree.last_zxid = zxid
        snap_dir = figures.snap_dir(server)

        def persist():
            path = write_snapshot_bytes(snapshot_bytes(tree, zxid, stable=True), zxid, snap_dir)
            fsync_dir(snap_dir)
            return path
        path = await loop.run_in_executor(None, persist)
        server.next_zxid = zxid + 1
        server.install_tree(tree)
        # A standalone server's log takes its periodic snapshots of the tree.
        if getattr(server.log, "tree", None) is not None:
            server.log.tree = tree
        # Sessions the restored tree does not know are gone: their clients
        # find out now, not at their next request.
        for conn in list(server.connections):
            if conn.session_id and not server.sessions.is_valid(conn.session_id):
                conn.close()
        log.info("Restored: %s is the newest snapshot, zxid 0x%x", path, zxid)
        return zxid
    finally:
        server.release_writes()


async def _drained(server, timeout_s: float) -> None:
    """Wait until every txn prepped so far is applied."""
    deadline = time.monotonic() + timeout_s
    while server.tree.last_zxid < server.next_zxid - 1:
        if time.monotonic() > deadline:
            raise BackupError(500, "writes in progress did not finish")
        await asyncio.sleep(0.001)
