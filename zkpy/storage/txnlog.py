"""The transaction log on disk: files `log.<first zxid in hex>` in
<dataLogDir>/version-2, each a header then records.

    file   = MAGIC (8 bytes) + FORMAT (i32) + reserved (i32) + record* + zeros
    record = length (u32) + crc32 of payload (u32) + payload (msgpack of the txn)

A length of 0 ends the data: files are preallocated with zeros in blocks of
preAllocSize so that an fsync rarely has to change the file's size.  A record
that fails its length or checksum is a torn tail if nothing but zeros follows
it (a crash in the middle of a write) and corruption otherwise."""

import errno
import os
import struct

import msgpack

from ..crc import crc32
from ..datatree.txn import Txn
from .files import fsync_dir

MAGIC = b"ZKPYTXNL"
FORMAT = 1
HEADER = struct.Struct(">8sii")
RECORD = struct.Struct(">II")
LOG_PREFIX = "log."


class CorruptLogError(Exception):
    """Damage before the tail of the log: refusing to guess what was lost."""


def log_file_name(zxid: int) -> str:
    return f"{LOG_PREFIX}{zxid:x}"


def zxid_of_name(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix):
        return None
    try:
        return int(name[len(prefix):], 16)
    except ValueError:
        return None


def encode_txn(txn: Txn) -> bytes:
    payload = txn.packed()
    return RECORD.pack(len(payload), crc32(payload)) + payload


def encode_records(batch) -> bytes:
    """The records of a batch of (payload, txn, on_logged) tuples (a
    TxnLogSyncer's batch), one after the other: encode_txn's records, made
    in one loop."""
    parts = []
    add = parts.append
    pack = RECORD.pack
    for payload, _, _ in batch:
        add(pack(len(payload), crc32(payload)))
        add(payload)
    return b"".join(parts)


def decode_txn(payload: bytes) -> Txn:
    return Txn.from_list(msgpack.unpackb(payload, raw=False, use_list=True))


def list_by_zxid(directory, prefix, zxid_of=None) -> list[tuple[int, str]]:
    """(zxid, path) of every file named <prefix><hex zxid>, oldest first."""
    zxid_of = zxid_of or zxid_of_name
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        z = zxid_of(name, prefix)
        if z is not None:
            out.append((z, os.path.join(directory, name)))
    out.sort()
    return out


def list_logs(log_dir) -> list[tuple[int, str]]:
    """(first zxid, path) of every log file, oldest first."""
    return list_by_zxid(log_dir, LOG_PREFIX)


def _all_zero(buf, start: int) -> bool:
    n = len(buf) - start
    return n <= 0 or buf.count(0, start) == n


_CHUNK = 1 << 20


def _read_data(path: str) -> bytes:
    """The file's bytes up to the end of its records, and all of them if
    anything but zeros follows (then the parse decides what it is).

    The records are followed by a preallocated tail of zeros (64 MiB by
    default) that holds nothing: it is not read when the file system reports
    it as a hole (preallocation extends the file with ftruncate, so it is
    sparse), and read once to check it otherwise.  The records themselves are
    always read, whatever the file system says of holes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        buf = bytearray()

        def ensure(n):
            n = min(n, size)
            while len(buf) < n:
                chunk = os.pread(fd, max(n - len(buf), _CHUNK), len(buf))
                if not chunk:
                    break  # the file shrank while it was read
                buf.extend(chunk)

        # Follow the record lengths to the first zero header (or the end).
        pos = HEADER.size
        unpack = RECORD.unpack_from
        while pos + RECORD.size <= size:
            ensure(pos + RECORD.size)
            length, crc = unpack(buf, pos)
            if length == 0 and crc == 0:
                break
            pos += RECORD.size + length
            ensure(pos)
        ensure(pos)
        if len(buf) < size and not _zeros_after(fd, len(buf), size):
            ensure(size)
        return bytes(buf)
    finally:
        os.close(fd)


def _zeros_after(fd: int, pos: int, size: int) -> bool:
    """Whether the file holds only zeros from pos on: its holes are zeros, and
    its data extents there (SEEK_DATA / SEEK_HOLE) are read and checked."""
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return True  # a hole to the end
            start = pos  # holes not reported: read the rest
            stop = size
        except AttributeError:
            start, stop = pos, size
        else:
            try:
                stop = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            except OSError:
                stop = size
        while start < stop:
            chunk = os.pread(fd, min(stop - start, _CHUNK), start)
            if not chunk:
                return True  # the file shrank: what is gone holds nothing
            if not _all_zero(chunk, 0):
                return False
            start += len(chunk)
        pos = stop
    return True


_TXN_START = 0x96  # msgpack's fixarray of 6: every payload starts so (Txn.to_list)


def _whole_record_after(buf, pos: int) -> bool:
    """Whether a complete record with a good checksum starts after offset pos.
    A torn write leaves only zeros after the part that reached the disk, so a
    bad record followed by a whole one is damage, not a torn tail (a flipped
    bit in a length field can make a record seem to run past the end)."""
    end = len(buf)
    view = memoryview(buf)
    i = buf.find(_TXN_START, pos + 1 + RECORD.size)
    while i != -1:
        length, crc = RECORD.unpack_from(buf, i - RECORD.size)
        if 0 < length <= end - i and crc32(view[i:i + length]) == crc:
            return True
        i = buf.find(_TXN_START, i + 1)
    return False


def read_log(path: str, is_last: bool) -> tuple[list, int]:
    """(txns, offset where the good data ends).  A bad record ends the data
    if it is the torn tail of the newest file; otherwise CorruptLogError."""
    txns, end, _ = scan_log(path, is_last)
    return txns, end


def scan_log(path: str, is_last: bool) -> tuple[list, int, bool]:
    """read_log's (txns, end), and whether anything but zeros follows end (a
    torn record, to be cut off)."""
    buf = _read_data(path)
    txns = []
    end = _scan(path, buf, is_last, txns)
    return txns, end, end >= 0 and not _all_zero(buf, end)


def _scan(path, buf, is_last, txns) -> int:
    if is_last and _all_zero(buf, 0):
        return -1  # a file whose header never reached the disk (its size may have)
    if len(buf) < HEADER.size:
        raise CorruptLogError(f"{path}: offset 0: truncated file header")
    magic, fmt, _ = HEADER.unpack_from(buf, 0)
    if magic != MAGIC or fmt != FORMAT:
        raise CorruptLogError(f"{path}: offset 0: not a zkpy transaction log")
    pos = HEADER.size
    end = len(buf)
    while pos + RECORD.size <= end:
        length, crc = RECORD.unpack_from(buf, pos)
        if length == 0 and crc == 0:
            if _all_zero(buf, pos):
                return pos
            raise CorruptLogError(f"{path}: offset {pos}: zero record before the end of the data")
        start = pos + RECORD.size
        stop = start + length
        payload = buf[start:stop]
        if stop > end or crc32(payload) != crc:
            if is_last and _all_zero(buf, min(stop, end)) and not _whole_record_after(buf, pos):
                return pos  # torn tail: a write that never completed
            raise CorruptLogError(f"{path}: offset {pos}: record fails its checksum")
        try:
            txn = decode_txn(payload)
        except Exception as e:
            raise CorruptLogError(f"{path}: offset {pos}: undecodable record ({e})") from None
        txns.append(txn)
        pos = stop
    if pos < end and not _all_zero(buf, pos):
        if is_last:
            return pos
        raise CorruptLogError(f"{path}: offset {pos}: truncated record")
    return pos


class LogFile:
    """An open log file being appended to."""

    def __init__(self, path: str, prealloc: int, new: bool = True, end: int | None = None):
        self.path = path
        self.prealloc = max(prealloc, 4096)
        if new:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, HEADER.pack(MAGIC, FORMAT, 0))
            self.pos = HEADER.size
            self.size = HEADER.size
        else:
            fd = os.open(path, os.O_RDWR)
            self.pos = end
            self.size = os.fstat(fd).st_size
        self.fd = fd

    def reserve(self, n: int) -> int:
        """The offset at which the next n bytes go (written by the caller)."""
        pos = self.pos
        need = pos + n
        if need > self.size:
            # Preallocate: grow in whole blocks so fdatasync seldom updates the size.
            blocks = (need - self.size) // self.prealloc + 1
            self.size += blocks * self.prealloc
            os.ftruncate(self.fd, self.size)
        self.pos = need
        return pos

    def write(self, data: bytes) -> None:
        os.pwrite(self.fd, data, self.reserve(len(data)))

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_INT_AT = {0xcc: struct.Struct(">B"), 0xcd: struct.Struct(">H"), 0xce: struct.Struct(">I"),
           0xcf: struct.Struct(">Q"), 0xd0: struct.Struct(">b"), 0xd1: struct.Struct(">h"),
           0xd2: struct.Struct(">i"), 0xd3: struct.Struct(">q")}


_pack_int = msgpack.Packer().pack


def _zxid_of_record(buf, start: int, length: int) -> int | None:
    """The zxid of the txn whose payload is buf[start:start + length], read
    without decoding the rest: the payload is the msgpack array
    [session id, cxid, zxid, ...] (Txn.to_list).  None if it is not so."""
    if length < 4 or buf[start] != _TXN_START:
        return None
    pos = start + 1
    for i in range(3):
        b = buf[pos]
        if b < 0x80:
            value, pos = b, pos + 1
        elif b >= 0xe0:
            value, pos = b - 0x100, pos + 1
        else:
            st = _INT_AT.get(b)
            if st is None:
                return None
            value = st.unpack_from(buf, pos + 1)[0]
            pos += 1 + st.size
    return value


def _find_record(buf, zxid: int) -> int | None:
    """The offset of the record of txn zxid, found by searching for the
    zxid's encoding and checking that a whole record (its checksum good)
    holding that zxid starts just before it; None if there is none."""
    needle = _pack_int(zxid)
    view = memoryview(buf)
    i = buf.find(needle, HEADER.size + RECORD.size)
    while i != -1:
        # The payload starts 1 + len(session id) + len(cxid) bytes before the
        # zxid: 3 to 19 bytes.
        for start in range(i - 3, max(HEADER.size + RECORD.size, i - 19) - 1, -1):
            if buf[start] != _TXN_START:
                continue
            length, crc = RECORD.unpack_from(buf, start - RECORD.size)
            if 0 < length <= len(buf) - start and \
                    _zxid_of_record(buf, start, length) == zxid and \
                    crc32(view[start:start + length]) == crc:
                return start - RECORD.size
        i = buf.find(needle, i + 1)
    return None


def cut_after(path: str, zxid: int) -> bool:
    """Drop the txns after zxid from a log file (whose txns ascend): the file
    is cut at the first record of a later txn, then grown back to its size
    with zeros (a preallocated tail).  Usually that is txn zxid + 1, found by
    a search; else each record's zxid is read in turn (never the whole txn).
    True if anything was cut."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = _find_record(buf, zxid + 1)
    if pos is not None:
        truncate_at(path, pos)
        return True
    pos = HEADER.size
    end = len(buf)
    while pos + RECORD.size <= end:
        length = RECORD.unpack_from(buf, pos)[0]
        start = pos + RECORD.size
        if length == 0 or start + length > end:
            break    # the end of the data (or a torn tail: nothing whole follows)
        z = _zxid_of_record(buf, start, length)
        if z is None:
            break
        if z > zxid:
            truncate_at(path, pos)
            return True
        pos = start + length
    return False


def truncate_at(path: str, offset: int) -> None:
    """Zero a torn tail so that later appends start clean."""
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.truncate(offset)
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def truncate_logs(log_dir: str, zxid: int) -> None:
    """Drop every logged txn after zxid (a follower told TRUNC by its leader)."""
    logs = list_logs(log_dir)
    # Files are named by their first zxid and hold ascending txns, so only the
    # newest file starting at or before zxid can straddle it; older ones are
    # left alone (reading every preallocated file would block the event loop
    # for seconds: a follower stuck in its sync).
    holder = None
    for first, path in logs:
        if first > zxid:
            os.remove(path)
        else:
            holder = path
    if holder is not None:
        # Cut in place at the first later record (decoding every txn of a full
        # file to rewrite it took most of a second).
        cut_after(holder, zxid)
    fsync_dir(log_dir)
