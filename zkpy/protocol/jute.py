"""The jute binary archive: big-endian ints and longs, length-prefixed buffers,
strings and vectors, with -1 meaning null.  No I/O: readers take bytes, writers
append to a bytearray."""

import struct

from .errors import MarshallingError

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
INT_INT = struct.Struct(">ii")
# A ReplyHeader: xid, zxid, err.
REPLY_HEADER = struct.Struct(">iqi")
# A Stat: czxid mzxid ctime mtime version cversion aversion ephemeralOwner
# dataLength numChildren pzxid.
STAT = struct.Struct(">qqqqiiiqiiq")

_unpack_int = INT.unpack_from
_unpack_long = LONG.unpack_from
_pack_int = INT.pack


class Reader:
    """Reads jute fields from a bytes-like payload; any overrun is a
    MarshallingError so a truncated record can never be half-read silently."""

    __slots__ = ("buf", "pos", "end", "max_field")

    def __init__(self, buf, pos: int = 0, max_field: int = 0xFFFFF * 2):
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        # ZooKeeper accepts a field up to jute.maxbuffer + extrasize.
        self.max_field = max_field

    def remaining(self) -> int:
        return self.end - self.pos

    def int(self) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise MarshallingError("truncated int")
        self.pos = pos + 4
        return _unpack_int(self.buf, pos)[0]

    def long(self) -> int:
        pos = self.pos
        if pos + 8 > self.end:
            raise MarshallingError("truncated long")
        self.pos = pos + 8
        return _unpack_long(self.buf, pos)[0]

    def bool(self) -> bool:
        pos = self.pos
        if pos >= self.end:
            raise MarshallingError("truncated boolean")
        self.pos = pos + 1
        return self.buf[pos] != 0

    def buffer(self):
        """bytes, or None for a -1 length."""
        # The length is read here rather than by self.int(): every request
        # has a path or data field, and a call is a good part of its cost.
        pos = self.pos + 4
        end = self.end
        if pos > end:
            raise MarshallingError("truncated int")
        n = _unpack_int(self.buf, pos - 4)[0]
        if n < 0:
            self.pos = pos
            if n == -1:
                return None
            raise MarshallingError("negative buffer length")
        if n > self.max_field:
            raise MarshallingError("Unreasonable length")
        stop = pos + n
        if stop > end:
            raise MarshallingError("truncated buffer")
        self.pos = stop
        return bytes(self.buf[pos:stop])

    def ustring(self):
        """str, or None for a -1 length.  Decoded leniently: the Java client
        sends non-BMP characters as CESU-8 surrogate pairs."""
        b = self.buffer()
        if b is None:
            return None
        try:
            return b.decode()
        except UnicodeDecodeError:
            return b.decode("utf-8", "surrogatepass") if _is_cesu(b) else b.decode("utf-8", "replace")

    def vector(self, read_item):
        n = self.int()
        if n < 0:
            # -1 is null; any other negative count is an empty vector, as in
            # jute's BinaryInputArchive (unlike buffer and string lengths).
            return None if n == -1 else []
        if n > self.remaining():
            raise MarshallingError("vector longer than its record")
        return [read_item(self) for _ in range(n)]

    def strings(self):
        return self.vector(Reader.ustring)


def _is_cesu(b: bytes) -> bool:
    try:
        b.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


class Writer:
    """Appends jute fields to a bytearray."""

    __slots__ = ("out",)

    def __init__(self, out: bytearray | None = None):
        self.out = bytearray() if out is None else out

    def int(self, v: int) -> None:
        self.out += _pack_int(v)

    def long(self, v: int) -> None:
        self.out += LONG.pack(v)

    def bool(self, v: bool) -> None:
        self.out.append(1 if v else 0)

    def buffer(self, b) -> None:
        if b is None:
            self.out += b"\xff\xff\xff\xff"
        else:
            self.out += _pack_int(len(b))
            self.out += b

    def ustring(self, s) -> None:
        if s is None:
            self.out += b"\xff\xff\xff\xff"
        else:
            b = s.encode("utf-8", "surrogatepass")
            self.out += _pack_int(len(b))
            self.out += b

    def strings(self, items) -> None:
        if items is None:
            self.out += b"\xff\xff\xff\xff"
            return
        self.out += _pack_int(len(items))
        for s in items:
            self.ustring(s)

    def stat(self, stat) -> None:
        self.out += STAT.pack(*stat)
