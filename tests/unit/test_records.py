"""Request records: the ACL vector of a create, decoded through its caches
(the last vector read, then the table of known encodings), must give what a
plain decode gives, whatever came before it."""

import pytest

from zkpy.protocol.errors import MarshallingError
from zkpy.protocol.jute import Reader, Writer
from zkpy.protocol.records import ACL, CreateRequest, read_acl, read_acls

OPEN = [ACL(31, "world", "anyone")]
READ = [ACL(1, "world", "anyone")]
TWO = [ACL(31, "digest", "u:x"), ACL(1, "world", "anyone")]


def create_bytes(path, acl, flags=0) -> bytes:
    w = Writer()
    CreateRequest(path, b"data", acl, flags).write(w)
    return bytes(w.out)


def plain(payload):
    """The record decoded field by field, no cache."""
    r = Reader(payload)
    return r.ustring(), r.buffer(), r.vector(read_acl), r.int()


@pytest.mark.parametrize("order", [
    [OPEN, OPEN, READ, OPEN, TWO, TWO, READ],
    [TWO, OPEN, None, OPEN, None, None, READ],
    [READ, [], OPEN, [], []],
])
def test_the_same_as_a_plain_decode_in_any_order(order):
    for i, acl in enumerate(order):
        payload = create_bytes(f"/n{i}", acl, flags=i % 3)
        rec = CreateRequest.read(Reader(payload))
        assert (rec.path, rec.data, rec.acl, rec.flags) == plain(payload), (i, acl)


def test_a_prefix_of_the_last_vector_is_not_taken_for_it():
    payload = create_bytes("/a", OPEN)
    CreateRequest.read(Reader(payload))
    # The same ACL bytes, cut short: a truncated record, not the cached vector.
    acl_at = 4 + len("/a") + 4 + len(b"data")
    cut = payload[:acl_at + 10]
    with pytest.raises(MarshallingError):
        read_acls(Reader(cut, acl_at))
    with pytest.raises(MarshallingError):
        CreateRequest.read(Reader(cut))


def test_the_reader_ends_after_the_vector():
    for acl in (OPEN, OPEN, TWO):
        payload = create_bytes("/p", acl) + b"tail"
        r = Reader(payload, 4 + 2 + 4 + 4)
        assert read_acls(r) == acl
        assert payload[r.pos:r.pos + 4] == (0).to_bytes(4, "big")
