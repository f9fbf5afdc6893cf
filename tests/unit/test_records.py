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


# --- whole request frames ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from zkpy.protocol.opcodes import Op  # noqa: E402
from zkpy.protocol.records import (  # noqa: E402
    FRAME_DECODERS, REQUEST_DECODERS, PathWatchRequest, SetDataRequest, encode_request)

FAST_OPS = [Op.GET_DATA, Op.EXISTS, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.SET_DATA,
            Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER]


def through_reader(op, payload, max_field):
    try:
        return REQUEST_DECODERS[op](Reader(payload, 8, max_field))
    except MarshallingError:
        return MarshallingError


def in_place(op, payload, max_field):
    try:
        return FRAME_DECODERS[op](payload, max_field)
    except MarshallingError:
        return MarshallingError


def frame(op, path, data, acl):
    if op == Op.SET_DATA:
        rec = SetDataRequest(path, data, 7)
    elif op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER):
        rec = CreateRequest(path, data, acl, 1)
    else:
        rec = PathWatchRequest(path, True)
    return encode_request(5, op, rec)[4:]   # as dispatch gets it: no length prefix


def test_every_op_has_a_frame_decoder():
    assert FRAME_DECODERS.keys() == REQUEST_DECODERS.keys()


@pytest.mark.parametrize("op", FAST_OPS)
def test_a_plain_frame_is_read_in_place_as_the_reader_reads_it(op):
    for acl in (OPEN, TWO, OPEN):   # the last vector, another one, then the first again
        payload = frame(op, "/a/b\u00e9", b"\x00\x01data", acl)
        assert in_place(op, payload, 100) == through_reader(op, payload, 100)


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(FAST_OPS),
       path=st.one_of(st.none(), st.text(max_size=12)),
       data=st.one_of(st.none(), st.binary(max_size=12)),
       acl=st.sampled_from([OPEN, READ, TWO, [], None]),
       cut=st.integers(min_value=0, max_value=80),
       flip=st.lists(st.tuples(st.integers(min_value=0, max_value=80),
                               st.integers(min_value=0, max_value=255)), max_size=3),
       max_field=st.sampled_from([4, 20, 1000]))
def test_any_frame_decodes_as_through_the_reader(op, path, data, acl, cut, flip, max_field):
    """Truncated, corrupted, null fields, non-UTF-8, fields over the limit:
    the same record or the same MarshallingError either way."""
    w = Writer()
    if op == Op.SET_DATA:
        w.ustring(path)
        w.buffer(data)
        w.int(-1)
    elif op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER):
        w.ustring(path)
        w.buffer(data)
        if acl is None:
            w.int(-1)
        else:
            w.int(len(acl))
            for a in acl:
                w.int(a.perms)
                w.ustring(a.scheme)
                w.ustring(a.id)
        w.int(0)
    else:
        w.ustring(path)
        w.bool(True)
    payload = bytearray(b"\x00\x00\x00\x05" + op.to_bytes(4, "big") + bytes(w.out))
    for at, value in flip:
        if at < len(payload):
            payload[at] = value
    payload = bytes(payload[:max(8, len(payload) - cut)])
    # Twice: the second time the create's ACL vector is the last one read.
    for _ in range(2):
        assert in_place(op, payload, max_field) == through_reader(op, payload, max_field)
