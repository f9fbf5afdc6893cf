"""zkpy.crc.crc32 is zlib's CRC-32, value for value (the digest must match
ZooKeeper's, and logs and snapshots written with either must read back)."""

import zlib

from hypothesis import given
from hypothesis import strategies as st

from zkpy.crc import crc32


@given(data=st.binary(max_size=3000), start=st.integers(0, 2**32 - 1),
       cut=st.integers(0, 3000))
def test_same_values_as_zlib(data, start, cut):
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, start) == zlib.crc32(data, start)
    view = memoryview(bytearray(data))[:cut]
    assert crc32(view) == zlib.crc32(view)
    # chained, as the digest and the snapshot writer use it
    assert crc32(data[cut:], crc32(data[:cut])) == zlib.crc32(data)
