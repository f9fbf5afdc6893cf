"""Encoding of reply frames: a ReplyHeader and, on success, the response record.
Hot path: precompiled structs, one bytes object per frame."""

import struct

from ..datatree.txn import owner_kind
from ..protocol.jute import INT, REPLY_HEADER, STAT, Writer
from ..protocol.opcodes import KeeperState, Op, Xid
from ..protocol.records import write_acls

_pack_int = INT.pack
_pack_header = REPLY_HEADER.pack
_pack_stat = STAT.pack
# A whole frame whose body is a Stat (setData, setACL): length, ReplyHeader
# and Stat in one pack, the reply of every setData.
_STAT_REPLY = struct.Struct(">i" + REPLY_HEADER.format.lstrip(">") + STAT.format.lstrip(">"))
_STAT_REPLY_LENGTH = REPLY_HEADER.size + STAT.size
_pack_stat_reply = _STAT_REPLY.pack
# A getData reply up to its data: length, ReplyHeader, data length.
_GET_DATA_HEAD = struct.Struct(">i" + REPLY_HEADER.format.lstrip(">") + "i")
_GET_DATA_LENGTH = REPLY_HEADER.size + 4 + STAT.size   # and the data's
_pack_get_data_head = _GET_DATA_HEAD.pack
# A create reply up to its path: length, ReplyHeader, path length.
_CREATE_HEAD = _GET_DATA_HEAD
_CREATE_LENGTH = REPLY_HEADER.size + 4     # and the path's (and a Stat's)
_pack_create_head = _CREATE_HEAD.pack

NOTIFICATION_ZXID = -1  # ZooKeeper 3.8 sends -1 in the header of a watch event


class _Close:
    __slots__ = ()

    def __repr__(self):
        return "CLOSE"


# In place of a reply: close the connection once the replies before it are sent.
CLOSE = _Close()


def header_only(xid: int, zxid: int, err: int) -> bytes:
    return b"\x00\x00\x00\x10" + _pack_header(xid, zxid, err)


def with_body(xid: int, zxid: int, body) -> bytes:
    return _pack_int(16 + len(body)) + _pack_header(xid, zxid, 0) + body


def encode_string(s) -> bytes:
    if s is None:
        return b"\xff\xff\xff\xff"
    b = s.encode("utf-8", "surrogatepass")
    return _pack_int(len(b)) + b


def encode_strings(items) -> bytes:
    parts = [_pack_int(len(items))]
    for s in items:
        b = s.encode("utf-8", "surrogatepass")
        parts.append(_pack_int(len(b)))
        parts.append(b)
    return b"".join(parts)


def stat_body(stat) -> bytes:
    return _pack_stat(*stat)


def stat_reply(xid: int, zxid: int, stat) -> bytes:
    """with_body(xid, zxid, stat_body(stat)), packed at once."""
    return _pack_stat_reply(_STAT_REPLY_LENGTH, xid, zxid, 0, *stat)


def node_stat_reply(xid: int, zxid: int, node) -> bytes:
    """stat_reply(xid, zxid, node.stat()), packed from the node's fields
    (no Stat tuple made): the reply of a setData on the fast path."""
    owner = node.owner
    if owner and owner_kind(owner) != "ephemeral":
        owner = 0  # containers and TTL nodes show ephemeralOwner 0
    n = len(node.children)
    data = node.data
    return _pack_stat_reply(_STAT_REPLY_LENGTH, xid, zxid, 0, node.czxid, node.mzxid,
                            node.ctime, node.mtime, node.version, 2 * node.creates - n,
                            node.aversion, owner, len(data) if data is not None else 0, n,
                            node.pzxid)


def get_data_reply(xid: int, zxid: int, data, stat) -> bytes:
    """with_body(xid, zxid, get_data_body(data, stat)) in two packs: the
    reply to the most frequent request."""
    if data is None:
        return _pack_get_data_head(_GET_DATA_LENGTH, xid, zxid, 0, -1) + _pack_stat(*stat)
    return (_pack_get_data_head(_GET_DATA_LENGTH + len(data), xid, zxid, 0, len(data))
            + data + _pack_stat(*stat))


def get_data_body(data, stat) -> bytes:
    if data is None:
        return b"\xff\xff\xff\xff" + _pack_stat(*stat)
    return _pack_int(len(data)) + data + _pack_stat(*stat)


def acl_body(acl, stat) -> bytes:
    w = Writer()
    write_acls(w, acl)
    w.stat(stat)
    return bytes(w.out)


def notification(event_type: int, path: str) -> bytes:
    body = _pack_int(event_type) + _pack_int(KeeperState.SYNC_CONNECTED) + encode_string(path)
    return _pack_int(16 + len(body)) + _pack_header(Xid.NOTIFICATION, NOTIFICATION_ZXID, 0) + body


def create_body(op: int, path: str, stat) -> bytes:
    """create answers the path; create2, createContainer and createTTL add the Stat."""
    if op == Op.CREATE:
        return encode_string(path)
    return encode_string(path) + _pack_stat(*stat)


def create_reply(xid: int, zxid: int, op: int, path: str, stat) -> bytes:
    """with_body(xid, zxid, create_body(op, path, stat)), with one pack up to
    the path: the reply to every create."""
    b = path.encode("utf-8", "surrogatepass")
    n = len(b)
    if op == Op.CREATE:
        return _pack_create_head(_CREATE_LENGTH + n, xid, zxid, 0, n) + b
    return _pack_create_head(_CREATE_LENGTH + STAT.size + n, xid, zxid, 0, n) + b \
        + _pack_stat(*stat)


def multi_header(op_type: int, done: bool, err: int) -> bytes:
    return _pack_int(op_type) + (b"\x01" if done else b"\x00") + _pack_int(err)


MULTI_END = multi_header(-1, True, -1)
