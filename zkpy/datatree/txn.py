"""Txns: the deterministic result of prep, the unit of logging, replication and
replay.  A txn is plain data (ints, strings, bytes, lists) so that msgpack can
carry it; apply() turns it into the same tree on every peer.

Bodies by type (the type is the opcode of the change):
  CREATE / CREATE2 / CREATE_CONTAINER / CREATE_TTL:
                     (path, data, acl, owner, parent_creates)
  DELETE / DELETE_CONTAINER: (path,)
  SET_DATA:          (path, data, version)     version is the new version
  SET_ACL:           (path, acl, aversion)     aversion is the new aversion
  CHECK:             (path, version)
  MULTI:             (list of (type, body),)
  ERROR:             (err,)
  CREATE_SESSION:    (timeout,)
  CLOSE_SESSION:     (ephemeral paths to delete,)
ACLs travel as lists of (perms, scheme, id).  `owner` is the ephemeralOwner
field as the tree stores it: a session id, the container marker or a TTL mark.
"""

import msgpack



# One packer (packb makes one per call).  A txn is plain data: packing it
# never calls back into Python, so the GIL is held throughout.
_pack = msgpack.Packer(use_bin_type=True).pack


class Txn:
    """A txn is never changed once made, so its msgpack encoding is made once
    (packed()) and shared by the log record and every peer message that
    carries it."""
    __slots__ = ("session_id", "cxid", "zxid", "time", "type", "body", "_packed")

    def __init__(self, session_id, cxid, zxid, time, type, body, packed=None):
        self.session_id = session_id
        self.cxid = cxid
        self.zxid = zxid
        self.time = time
        self.type = type
        self.body = body
        self._packed = packed

    def to_list(self) -> list:
        return [self.session_id, self.cxid, self.zxid, self.time, self.type, self.body]

    def packed(self) -> bytes:
        """msgpack of to_list(), made on first use and kept."""
        p = self._packed
        if p is None:
            # to_list()'s values as a tuple (cheaper to make; packed the same)
            p = self._packed = _pack((self.session_id, self.cxid, self.zxid, self.time,
                                      self.type, self.body))
        return p

    @classmethod
    def unpack(cls, payload) -> "Txn":
        """The txn whose packed() is payload (which it keeps)."""
        payload = bytes(payload)
        return cls(*msgpack.unpackb(payload, raw=False, use_list=True), payload)

    @classmethod
    def from_list(cls, items) -> "Txn":
        return cls(*items)

    def __repr__(self):
        return (f"Txn(sid=0x{self.session_id & 0xFFFFFFFFFFFFFFFF:x}, cxid={self.cxid}, "
                f"zxid=0x{self.zxid:x}, type={self.type}, body={self.body!r})")

    def __eq__(self, other):
        return isinstance(other, Txn) and self.to_list() == other.to_list()


# ephemeralOwner markers (EphemeralType in ZooKeeper).
CONTAINER_OWNER = -(1 << 63)
TTL_TOP = 0xFF
MAX_TTL = 0xFFFFFFFFFF


def ttl_owner(ttl: int) -> int:
    v = (TTL_TOP << 56) | ttl
    return v - (1 << 64)


def owner_kind(owner: int) -> str:
    """'persistent', 'ephemeral', 'container' or 'ttl'."""
    if owner == 0:
        return "persistent"
    if owner == CONTAINER_OWNER:
        return "container"
    if (owner >> 56) & 0xFF == TTL_TOP:
        return "ttl"
    return "ephemeral"


def ttl_of(owner: int) -> int:
    return owner & MAX_TTL

