"""snapSizeLimitInKb and txnLogSizeLimitInKb on a real server: the snapshots
and log files it writes while a client creates znodes."""

import os

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest
from zkpy.rawclient import RawClient
from zkpy.testing import ZkpyServer

OPEN = list(OPEN_ACL_UNSAFE)


def files(srv, prefix) -> list:
    d = os.path.join(srv.data_dir, "version-2")
    return sorted(f for f in os.listdir(d) if f.startswith(prefix))


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
        logs, snaps = files(srv, "log."), files(srv, "snapshot.")
        assert len(logs) >= 200 * 1000 // (16 * 1024)
        # (Snapshots are written in the background: the last may be on its way.)
        assert 1 <= len(snaps) <= 200 * 1100 // (32 * 1024)


def test_without_the_limits_one_log_file_and_no_snapshot():
    config = {"snapCount": "1000000", "snapSizeLimitInKb": "-1", "preAllocSize": "16"}
    with ZkpyServer(config=config) as srv:
        write(srv, 200, 1000)
        assert len(files(srv, "log.")) == 1
        assert files(srv, "snapshot.") == []
