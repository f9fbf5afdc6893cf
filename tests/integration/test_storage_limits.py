"""snapSizeLimitInKb and txnLogSizeLimitInKb on a real server: the snapshots
and log files it writes while a client creates znodes."""

import os
import time

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest
from zkpy.rawclient import RawClient
from zkpy.testing import ZkpyServer

OPEN = list(OPEN_ACL_UNSAFE)


def files(srv, prefix) -> list:
    d = os.path.join(srv.data_dir, "version-2")
    return sorted(f for f in os.listdir(d) if f.startswith(prefix))


def snapshots_done(srv):
    """Wait until no snapshot is being written (they are, in the background)."""
    def idle(server):
        log = server.log
        t = log.snapshot_thread
        return not (log.snapshot_scheduled or log.snapshot_wanted or
                    (t is not None and t.is_alive()))
    deadline = time.monotonic() + 30
    while not srv.call(idle):
        assert time.monotonic() < deadline, "a snapshot never finished"
        time.sleep(0.01)


def write(srv, n, size):
    c = RawClient.open(srv.hosts)
    try:
        for i in range(n):
            hdr, _ = c.request(Op.CREATE, CreateRequest(f"/n{i}", b"x" * size, OPEN, 0))
            assert hdr.err == 0
    finally:
        c.close()


def test_log_files_and_snapshots_by_size():
    # 200 creates of ~1 KB: ~200 KB of txns.  snapCount alone would take no
    # snapshot; a 64 KB size limit takes one every 32..64 KB; 16 KB log
    # files roll a dozen times or so.
    config = {"snapCount": "1000000", "snapSizeLimitInKb": "64",
              "txnLogSizeLimitInKb": "16", "preAllocSize": "16"}
    with ZkpyServer(config=config) as srv:
        write(srv, 200, 1000)
        snapshots_done(srv)
        logs, snaps = files(srv, "log."), files(srv, "snapshot.")
        assert len(logs) >= 200 * 1000 // (16 * 1024)
        # At least one (snapCount alone would take none); no more than one per
        # 32 KB (one asked for while another is being written joins the next).
        assert 1 <= len(snaps) <= 200 * 1100 // (32 * 1024)


def test_without_the_limits_one_log_file_and_no_snapshot():
    config = {"snapCount": "1000000", "snapSizeLimitInKb": "-1", "preAllocSize": "16"}
    with ZkpyServer(config=config) as srv:
        write(srv, 200, 1000)
        snapshots_done(srv)
        assert len(files(srv, "log.")) == 1
        assert files(srv, "snapshot.") == []
