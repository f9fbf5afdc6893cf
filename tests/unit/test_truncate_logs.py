"""A follower told TRUNC drops its logged txns after the leader's point
(zkpy.server.quorum.truncate_logs), touching only the log file that straddles
it: reading every (preallocated) file once blocked a follower's event loop for
seconds, long enough for the leader to give up on it mid-sync."""

import os

from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.server import quorum
from zkpy.storage import txnlog
from zkpy.storage.txnlog import LogFile, encode_txn, list_logs, log_file_name, read_log


def _txn(zxid):
    return Txn(1, zxid & 0xFFFF, zxid, 0, Op.ERROR, (-101,))


def _write_log(log_dir, zxids, prealloc=64 * 1024):
    f = LogFile(os.path.join(log_dir, log_file_name(zxids[0])), prealloc)
    f.write(b"".join(encode_txn(_txn(z)) for z in zxids))
    f.sync()
    f.close()


def _all(log_dir):
    logs = list_logs(log_dir)
    out = []
    for i, (_, path) in enumerate(logs):
        out += [t.zxid for t in read_log(path, i == len(logs) - 1)[0]]
    return out


def test_truncates_the_straddling_file_and_drops_later_ones(tmp_path, monkeypatch):
    e1, e2 = 1 << 32, 2 << 32
    files = [[e1 + i for i in range(1, 6)], [e1 + i for i in range(6, 11)],
             [e1 + i for i in range(11, 14)] + [e2 + 1, e2 + 2], [e2 + 3, e2 + 4]]
    for zxids in files:
        _write_log(str(tmp_path), zxids)
    reads = []
    real = txnlog.read_log
    monkeypatch.setattr(txnlog, "read_log", lambda path, last: reads.append(path) or real(path, last))

    quorum.truncate_logs(str(tmp_path), e1 + 12)

    assert reads == [os.path.join(str(tmp_path), log_file_name(e1 + 11))]
    assert [first for first, _ in list_logs(str(tmp_path))] == [e1 + 1, e1 + 6, e1 + 11]
    assert _all(str(tmp_path)) == list(range(e1 + 1, e1 + 13))
    # A new log can start right after the truncation point.
    _write_log(str(tmp_path), [e2 + 1])
    assert _all(str(tmp_path))[-2:] == [e1 + 12, e2 + 1]


def test_truncating_at_a_file_boundary_and_before_everything(tmp_path):
    e1 = 1 << 32
    _write_log(str(tmp_path), [e1 + 1, e1 + 2])
    _write_log(str(tmp_path), [e1 + 3, e1 + 4])
    quorum.truncate_logs(str(tmp_path), e1 + 2)
    assert _all(str(tmp_path)) == [e1 + 1, e1 + 2]
    quorum.truncate_logs(str(tmp_path), 0)
    assert list_logs(str(tmp_path)) == []
