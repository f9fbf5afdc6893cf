"""Jute records of the client protocol, one small class per record, each able to
read and write itself (both directions are needed: the server decodes requests,
the raw client, the benchmark and the tests decode replies)."""

from dataclasses import dataclass
from struct import error as _StructError
from typing import NamedTuple

from .errors import MarshallingError
from .jute import INT, REPLY_HEADER, STAT, Reader, Writer
from .opcodes import CREATE_OPS, Op


class ACL(NamedTuple):
    perms: int
    scheme: str
    id: str


OPEN_ACL_UNSAFE = (ACL(31, "world", "anyone"),)
READ_ACL_UNSAFE = (ACL(1, "world", "anyone"),)
CREATOR_ALL_ACL = (ACL(31, "auth", ""),)


def read_acl(r: Reader) -> ACL:
    perms = r.int()
    return ACL(perms, r.ustring(), r.ustring())


# Decoded ACL lists by their encoding: clients send the same few lists with
# every create.  The cached lists are shared, so no consumer may change them.
_ACLS: dict = {}
_ACLS_MAX = 1024
_last_acls = None   # (encoding, vector) of the last vector read_acls decoded or found
_unpack_int = INT.unpack_from


def read_acls(r: Reader):
    """A vector of ACL (None for a null vector), decoded once per distinct encoding."""
    global _last_acls
    buf, start = r.buf, r.pos
    # Most creates carry the ACL the one before carried: its encoding is
    # compared in place first (a whole encoded vector delimits itself, so
    # bytes that match it are that vector).
    last = _last_acls
    if last is not None:
        key, acls = last
        end = start + len(key)
        if buf[start:end] == key:
            r.pos = end
            return acls
    end = _acls_end(buf, start, r.end)
    if end < 0:
        return r.vector(read_acl)  # unusual: let the reader report what is wrong
    key = bytes(buf[start:end])
    acls = _ACLS.get(key)
    if acls is None:
        acls = r.vector(read_acl)
        if len(_ACLS) < _ACLS_MAX:
            _ACLS[key] = acls
    else:
        r.pos = end
    _last_acls = (key, acls)
    return acls


def _acls_end(buf, pos: int, end: int) -> int:
    """Where a well-formed, non-null ACL vector at pos ends, or -1."""
    if pos + 4 > end:
        return -1
    n = _unpack_int(buf, pos)[0]
    if not 0 < n <= 16:
        return -1
    pos += 4
    for _ in range(n):
        pos += 4  # perms
        for _ in range(2):  # scheme, id
            if pos + 4 > end:
                return -1
            k = _unpack_int(buf, pos)[0]
            if k < 0:
                return -1
            pos += 4 + k
    return pos if pos <= end else -1


def write_acls(w: Writer, acls) -> None:
    if acls is None:
        w.int(-1)
        return
    w.int(len(acls))
    for a in acls:
        w.int(a.perms)
        w.ustring(a.scheme)
        w.ustring(a.id)


class Stat(NamedTuple):
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int

    @classmethod
    def read(cls, r: Reader) -> "Stat":
        pos = r.pos
        if pos + STAT.size > r.end:
            raise MarshallingError("truncated stat")
        r.pos = pos + STAT.size
        return cls._make(STAT.unpack_from(r.buf, pos))


def _required(path):
    """A null (-1) path where ZooKeeper dereferences it: its request fails
    with MarshallingError.  (setData and setACL validate it instead, giving
    BadArguments; sync, getEphemerals and addWatch accept it.)"""
    if path is None:
        raise MarshallingError("null path")
    return path


# --- handshake -------------------------------------------------------------

@dataclass(slots=True)
class ConnectRequest:
    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None  # None: the client did not send the byte

    @classmethod
    def read(cls, r: Reader) -> "ConnectRequest":
        pv, lz, to, sid = r.int(), r.long(), r.int(), r.long()
        passwd = r.buffer() or b""
        ro = r.bool() if r.remaining() > 0 else None
        return cls(pv, lz, to, sid, passwd, ro)

    def write(self, w: Writer) -> None:
        w.int(self.protocol_version)
        w.long(self.last_zxid_seen)
        w.int(self.timeout)
        w.long(self.session_id)
        w.buffer(self.passwd)
        if self.read_only is not None:
            w.bool(self.read_only)


@dataclass(slots=True)
class ConnectResponse:
    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None

    @classmethod
    def read(cls, r: Reader) -> "ConnectResponse":
        pv, to, sid = r.int(), r.int(), r.long()
        passwd = r.buffer() or b""
        ro = r.bool() if r.remaining() > 0 else None
        return cls(pv, to, sid, passwd, ro)

    def write(self, w: Writer) -> None:
        w.int(self.protocol_version)
        w.int(self.timeout)
        w.long(self.session_id)
        w.buffer(self.passwd)
        if self.read_only is not None:
            w.bool(self.read_only)


# --- requests ----------------------------------------------------------------

@dataclass(slots=True)
class CreateRequest:
    path: str
    data: bytes | None
    acl: list
    flags: int
    ttl: int = -1  # only createTTL carries it on the wire

    @classmethod
    def read(cls, r: Reader, with_ttl: bool = False) -> "CreateRequest":
        path, data, acl, flags = r.ustring(), r.buffer(), read_acls(r), r.int()
        ttl = r.long() if with_ttl else -1
        return cls(_required(path), data, acl, flags, ttl)

    def write(self, w: Writer, with_ttl: bool = False) -> None:
        w.ustring(self.path)
        w.buffer(self.data)
        write_acls(w, self.acl)
        w.int(self.flags)
        if with_ttl:
            w.long(self.ttl)


@dataclass(slots=True)
class DeleteRequest:
    path: str
    version: int

    @classmethod
    def read(cls, r):
        return cls(_required(r.ustring()), r.int())

    def write(self, w):
        w.ustring(self.path)
        w.int(self.version)


@dataclass(slots=True)
class PathWatchRequest:
    """exists, getData, getChildren, getChildren2."""
    path: str
    watch: bool

    @classmethod
    def read(cls, r):
        return cls(_required(r.ustring()), r.bool())

    def write(self, w):
        w.ustring(self.path)
        w.bool(self.watch)


@dataclass(slots=True)
class PathRequest:
    """getACL, sync, getEphemerals, getAllChildrenNumber, deleteContainer."""
    path: str

    @classmethod
    def read(cls, r):
        return cls(r.ustring())

    def write(self, w):
        w.ustring(self.path)


@dataclass(slots=True)
class SetDataRequest:
    path: str
    data: bytes | None
    version: int

    @classmethod
    def read(cls, r):
        return cls(r.ustring(), r.buffer(), r.int())

    def write(self, w):
        w.ustring(self.path)
        w.buffer(self.data)
        w.int(self.version)


@dataclass(slots=True)
class SetACLRequest:
    path: str
    acl: list
    version: int

    @classmethod
    def read(cls, r):
        return cls(r.ustring(), read_acls(r), r.int())

    def write(self, w):
        w.ustring(self.path)
        write_acls(w, self.acl)
        w.int(self.version)


@dataclass(slots=True)
class CheckVersionRequest:
    path: str
    version: int

    @classmethod
    def read(cls, r):
        return cls(_required(r.ustring()), r.int())

    def write(self, w):
        w.ustring(self.path)
        w.int(self.version)


@dataclass(slots=True)
class ReconfigRequest:
    joining: str | None
    leaving: str | None
    new_members: str | None
    cur_config_id: int

    @classmethod
    def read(cls, r):
        return cls(r.ustring(), r.ustring(), r.ustring(), r.long())

    def write(self, w):
        w.ustring(self.joining)
        w.ustring(self.leaving)
        w.ustring(self.new_members)
        w.long(self.cur_config_id)


@dataclass(slots=True)
class WatchTypeRequest:
    """checkWatches and removeWatches."""
    path: str
    type: int

    @classmethod
    def read(cls, r):
        return cls(_required(r.ustring()), r.int())

    def write(self, w):
        w.ustring(self.path)
        w.int(self.type)


@dataclass(slots=True)
class AddWatchRequest:
    path: str
    mode: int

    @classmethod
    def read(cls, r):
        return cls(r.ustring(), r.int())

    def write(self, w):
        w.ustring(self.path)
        w.int(self.mode)


@dataclass(slots=True)
class AuthPacket:
    type: int
    scheme: str
    auth: bytes | None

    @classmethod
    def read(cls, r):
        return cls(r.int(), r.ustring(), r.buffer())

    def write(self, w):
        w.int(self.type)
        w.ustring(self.scheme)
        w.buffer(self.auth)


@dataclass(slots=True)
class SASLRequest:
    token: bytes | None

    @classmethod
    def read(cls, r):
        return cls(r.buffer())

    def write(self, w):
        w.buffer(self.token)


@dataclass(slots=True)
class SetWatches:
    """setWatches (101) and, with the two persistent lists, setWatches2 (105)."""
    relative_zxid: int
    data: list
    exist: list
    child: list
    persistent: list | None = None
    persistent_recursive: list | None = None

    @classmethod
    def read(cls, r, v2: bool = False):
        rz = r.long()
        d, e, c = r.strings(), r.strings(), r.strings()
        # ZooKeeper iterates every list and looks each path up: a null list
        # or a null path in the first three fails with MarshallingError.
        if d is None or e is None or c is None or None in d or None in e or None in c:
            raise MarshallingError("null list or path in setWatches")
        if v2:
            p, pr = r.strings(), r.strings()
            if p is None or pr is None:
                raise MarshallingError("null list in setWatches2")
            return cls(rz, d, e, c, p, pr)
        return cls(rz, d, e, c)

    def write(self, w, v2: bool = False):
        w.long(self.relative_zxid)
        w.strings(self.data)
        w.strings(self.exist)
        w.strings(self.child)
        if v2:
            w.strings(self.persistent or [])
            w.strings(self.persistent_recursive or [])


MULTI_WRITE_OPS = CREATE_OPS | {Op.DELETE, Op.SET_DATA, Op.CHECK}
MULTI_READ_OPS = frozenset({Op.GET_CHILDREN, Op.GET_DATA})


@dataclass(slots=True)
class MultiRequest:
    """A list of (opcode, request record).  Reading enforces that the ops are
    all writes (multi) or all reads (multiRead): mixing is a MarshallingError."""
    ops: list

    @classmethod
    def read(cls, r, read_only: bool = False):
        allowed = MULTI_READ_OPS if read_only else MULTI_WRITE_OPS
        ops = []
        while True:
            op_type, done, _err = r.int(), r.bool(), r.int()
            if done:
                break
            if op_type not in allowed:
                raise MarshallingError(f"op {op_type} not allowed in multi")
            ops.append((op_type, _read_multi_op(op_type, r)))
        if any(req.path is None for _, req in ops):
            raise MarshallingError("null path in multi")  # setData's too
        return cls(ops)

    def write(self, w):
        for op_type, req in self.ops:
            w.int(op_type)
            w.bool(False)
            w.int(-1)
            if op_type == Op.CREATE_TTL:
                req.write(w, with_ttl=True)
            else:
                req.write(w)
        w.int(-1)
        w.bool(True)
        w.int(-1)


def _read_multi_op(op_type: int, r: Reader):
    if op_type in CREATE_OPS:
        return CreateRequest.read(r, with_ttl=op_type == Op.CREATE_TTL)
    if op_type == Op.DELETE:
        return DeleteRequest.read(r)
    if op_type == Op.SET_DATA:
        return SetDataRequest.read(r)
    if op_type == Op.CHECK:
        return CheckVersionRequest.read(r)
    return PathWatchRequest.read(r)  # getData / getChildren in multiRead


def _no_body(r):
    return None


# opcode -> decoder of its request record (after the RequestHeader).
REQUEST_DECODERS = {
    Op.CREATE: CreateRequest.read,
    Op.CREATE2: CreateRequest.read,
    Op.CREATE_CONTAINER: CreateRequest.read,
    Op.CREATE_TTL: lambda r: CreateRequest.read(r, with_ttl=True),
    Op.DELETE: DeleteRequest.read,
    Op.DELETE_CONTAINER: PathRequest.read,
    Op.EXISTS: PathWatchRequest.read,
    Op.GET_DATA: PathWatchRequest.read,
    Op.SET_DATA: SetDataRequest.read,
    Op.GET_ACL: lambda r: PathRequest(_required(r.ustring())),
    Op.SET_ACL: SetACLRequest.read,
    Op.GET_CHILDREN: PathWatchRequest.read,
    Op.GET_CHILDREN2: PathWatchRequest.read,
    Op.SYNC: PathRequest.read,
    Op.PING: _no_body,
    Op.MULTI: MultiRequest.read,
    Op.MULTI_READ: lambda r: MultiRequest.read(r, read_only=True),
    Op.RECONFIG: ReconfigRequest.read,
    Op.CHECK_WATCHES: WatchTypeRequest.read,
    Op.REMOVE_WATCHES: WatchTypeRequest.read,
    Op.AUTH: AuthPacket.read,
    Op.SET_WATCHES: SetWatches.read,
    Op.SET_WATCHES2: lambda r: SetWatches.read(r, v2=True),
    Op.SASL: SASLRequest.read,
    Op.GET_EPHEMERALS: PathRequest.read,
    Op.GET_ALL_CHILDREN_NUMBER: lambda r: PathRequest(_required(r.ustring())),
    Op.ADD_WATCH: AddWatchRequest.read,
    Op.WHO_AM_I: _no_body,
    Op.CLOSE_SESSION: _no_body,
}


# --- whole frames: what the server calls per request ----------------------------
#
# FRAME_DECODERS[op](payload, max_field) is REQUEST_DECODERS[op] applied to a
# request frame (its 8-byte RequestHeader first), fields up to max_field
# bytes.  The records of the most frequent requests (getData, exists,
# getChildren, setData, create) are read in place with a few struct calls
# when every field is plain -- non-null, within max_field, strict UTF-8, the
# ACL vector the last create carried -- which takes half the time of the
# Reader and its calls.  Anything else goes to the Reader, which decodes it
# or reports what is wrong; both give the same record for the same frame.

def _via_reader(read):
    def decode(payload, max_field):
        return read(Reader(payload, 8, max_field))
    return decode


def _frame_path_watch(payload, max_field):
    try:
        n = _unpack_int(payload, 8)[0]
        if 0 <= n <= max_field and 12 + n < len(payload):
            return PathWatchRequest(payload[12:12 + n].decode(), payload[12 + n] != 0)
    except (UnicodeDecodeError, _StructError):
        pass
    return PathWatchRequest.read(Reader(payload, 8, max_field))


def set_data_fields(payload, max_field):
    """(path, data, version) of a SetDataRequest frame with a path and
    non-null data of at most max_field bytes each, None for any other
    (which SetDataRequest.read decodes, or refuses)."""
    try:
        n = _unpack_int(payload, 8)[0]
        if 0 <= n <= max_field:
            at = 12 + n
            m = _unpack_int(payload, at)[0]
            if 0 <= m <= max_field:
                end = at + 4 + m
                if end + 4 <= len(payload):
                    return (payload[12:at].decode(), payload[at + 4:end],
                            _unpack_int(payload, end)[0])
    except (UnicodeDecodeError, _StructError):
        pass
    return None


def _frame_set_data(payload, max_field):
    fields = set_data_fields(payload, max_field)
    if fields is not None:
        return SetDataRequest(*fields)
    return SetDataRequest.read(Reader(payload, 8, max_field))


def create_fields(payload, max_field):
    """(path, data, acl, flags) of a CreateRequest frame with a path and
    non-null data of at most max_field bytes each, and the ACL vector the
    create before carried (read_acls), None for any other (which
    CreateRequest.read decodes, or refuses)."""
    try:
        n = _unpack_int(payload, 8)[0]
        last = _last_acls
        if 0 <= n <= max_field and last is not None:
            at = 12 + n
            m = _unpack_int(payload, at)[0]
            if 0 <= m <= max_field:
                end = at + 4 + m
                key, acls = last
                acl_end = end + len(key)
                if payload[end:acl_end] == key and acl_end + 4 <= len(payload):
                    return (payload[12:at].decode(), payload[at + 4:end], acls,
                            _unpack_int(payload, acl_end)[0])
    except (UnicodeDecodeError, _StructError):
        pass
    return None


def _frame_create(payload, max_field):
    fields = create_fields(payload, max_field)
    if fields is not None:
        return CreateRequest(*fields)
    return CreateRequest.read(Reader(payload, 8, max_field))


FRAME_DECODERS = {op: _via_reader(read) for op, read in REQUEST_DECODERS.items()}
FRAME_DECODERS.update({
    Op.GET_DATA: _frame_path_watch,
    Op.EXISTS: _frame_path_watch,
    Op.GET_CHILDREN: _frame_path_watch,
    Op.GET_CHILDREN2: _frame_path_watch,
    Op.SET_DATA: _frame_set_data,
    Op.CREATE: _frame_create,
    Op.CREATE2: _frame_create,
    Op.CREATE_CONTAINER: _frame_create,
})


def encode_request(xid: int, op: int, req=None) -> bytes:
    """A whole request frame (length prefix included), for clients."""
    w = Writer()
    w.int(0)  # length placeholder
    w.int(xid)
    w.int(op)
    if req is not None:
        if op == Op.CREATE_TTL:
            req.write(w, with_ttl=True)
        elif op == Op.SET_WATCHES2:
            req.write(w, v2=True)
        else:
            req.write(w)
    out = w.out
    out[0:4] = INT.pack(len(out) - 4)
    return bytes(out)


class ReplyHeader(NamedTuple):
    xid: int
    zxid: int
    err: int

    @classmethod
    def read(cls, r: Reader) -> "ReplyHeader":
        pos = r.pos
        if pos + 16 > r.end:
            raise MarshallingError("truncated reply header")
        r.pos = pos + 16
        return cls._make(REPLY_HEADER.unpack_from(r.buf, pos))


class WatcherEvent(NamedTuple):
    type: int
    state: int
    path: str

    @classmethod
    def read(cls, r):
        return cls(r.int(), r.int(), r.ustring())
