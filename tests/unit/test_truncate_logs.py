"""A follower told TRUNC drops its logged txns after the leader's point
(zkpy.storage.txnlog.truncate_logs), touching only the log file that straddles
it: reading every (preallocated) file once blocked a follower's event loop for
seconds, long enough for the leader to give up on it mid-sync."""

import os

from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
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
    real = txnlog.cut_after
    monkeypatch.setattr(txnlog, "cut_after", lambda path, z: reads.append(path) or real(path, z))

    txnlog.truncate_logs(str(tmp_path), e1 + 12)

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
    txnlog.truncate_logs(str(tmp_path), e1 + 2)
    assert _all(str(tmp_path)) == [e1 + 1, e1 + 2]
    txnlog.truncate_logs(str(tmp_path), 0)
    assert list_logs(str(tmp_path)) == []


def test_cut_after_finds_the_first_later_txn_whatever_its_encoding(tmp_path):
    """Session ids and cxids of every msgpack width, an epoch change in the
    middle of the file, and data that holds the very bytes of a later zxid:
    every cut point leaves exactly the txns up to it, readable, with zeros
    after them."""
    import msgpack
    e1, e2 = 7 << 32, 8 << 32
    zxids = [e1 + i for i in range(1, 40)] + [e2 + i for i in range(1, 20)]
    sids = [0, 1, 127, 128, -1, -33, 255, 70000, -70000, 1 << 40, -(1 << 50), 0x7FFFFFFFFFFFFFFF]
    cxids = [0, 5, 300, -2, 1 << 20]

    def txns():
        out = []
        for k, z in enumerate(zxids):
            # The data of each txn holds what looks like the start of the
            # next two txns (array, session id, cxid, zxid).
            data = b"".join(b"\x96\x00\x00" + msgpack.packb(z + n) for n in (1, 2))
            out.append(Txn(sids[k % len(sids)], cxids[k % len(cxids)], z, k, Op.SET_DATA,
                           ["/p", data, k]))
        return out

    cuts = [0, e1, e1 + 1, e1 + 2, e1 + 20, e1 + 38, e1 + 39, e1 + 1000, e2, e2 + 1, e2 + 10,
            e2 + 18, e2 + 19, e2 + 50]
    for cut in cuts:
        d = tmp_path / f"cut-{cut:x}"
        d.mkdir()
        path = os.path.join(str(d), log_file_name(zxids[0]))
        f = LogFile(path, 64 * 1024)
        f.write(b"".join(encode_txn(t) for t in txns()))
        f.sync()
        size = f.size
        f.close()
        want = [z for z in zxids if z <= cut]
        assert txnlog.cut_after(path, cut) == (len(want) < len(zxids))
        got, end = read_log(path, True)
        assert [t.zxid for t in got] == want, hex(cut)
        assert os.path.getsize(path) == size
        with open(path, "rb") as fh:
            assert not fh.read()[end:].strip(b"\x00")


def test_cut_after_leaves_a_torn_tail_before_the_cut_alone(tmp_path):
    e1 = 3 << 32
    path = os.path.join(str(tmp_path), log_file_name(e1 + 1))
    f = LogFile(path, 64 * 1024)
    recs = [encode_txn(_txn(e1 + i)) for i in range(1, 6)]
    f.write(b"".join(recs) + recs[0][:len(recs[0]) // 2])   # a torn write after e1 + 5
    f.sync()
    f.close()
    assert not txnlog.cut_after(path, e1 + 5)
    assert txnlog.cut_after(path, e1 + 3)
    assert [t.zxid for t in read_log(path, True)[0]] == [e1 + 1, e1 + 2, e1 + 3]
