"""Reply frames packed at once (getData's, a Stat's, a create's) are byte for byte the
frame that the header and body encoders make."""

import pytest

from zkpy.protocol.opcodes import Op
from zkpy.server import replies

STAT = (0x100000005, 0x100000009, 1_700_000_000_000, 1_700_000_000_123, 7, 3, 1,
        0x1234567890ABCDEF, 100, 2, 0x10000000A)


@pytest.mark.parametrize("data", [None, b"", b"x", bytes(range(256)) * 5])
def test_get_data_reply(data):
    for xid, zxid in ((1, 0), (-5, 0x7FFFFFFFFFFFFFFF), (2**31 - 1, -1)):
        assert replies.get_data_reply(xid, zxid, data, STAT) == \
            replies.with_body(xid, zxid, replies.get_data_body(data, STAT))


def test_stat_reply():
    for xid, zxid in ((1, 0), (-5, 0x7FFFFFFFFFFFFFFF), (2**31 - 1, -1)):
        assert replies.stat_reply(xid, zxid, STAT) == \
            replies.with_body(xid, zxid, replies.stat_body(STAT))


@pytest.mark.parametrize("op", [Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL])
@pytest.mark.parametrize("path", ["/", "/a", "/n/seq-0000000012", "/\u00fc\u4e2d/x" * 40])
def test_create_reply(op, path):
    for xid, zxid in ((1, 0), (-5, 0x7FFFFFFFFFFFFFFF), (2**31 - 1, -1)):
        assert replies.create_reply(xid, zxid, op, path, STAT) == \
            replies.with_body(xid, zxid, replies.create_body(op, path, STAT))
