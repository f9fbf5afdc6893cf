"""The large-request limit with requests in process at once, over real TCP:
a large frame that arrives while other large requests hold the bytes closes
its connection, and the bytes come back once those are answered or their
connection is gone.  (tests/differential/test_large_requests.py compares the
one-at-a-time cases with Apache ZooKeeper.)"""

import time

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest, PathWatchRequest, \
    encode_request
from zkpy.rawclient import ConnectionClosed, RawClient
from zkpy.testing import ZkpyServer

OPEN = list(OPEN_ACL_UNSAFE)
# A create of D bytes under /lr/pN: a frame of D + 52 bytes, a body of D + 44.
CONFIG = {"largeRequestThreshold": "1000", "largeRequestMaxBytes": "5000"}


def rejected(srv) -> int:
    for line in srv.four_letter("mntr").splitlines():
        if line.startswith("zk_large_requests_rejected\t"):
            return int(line.split("\t")[1])
    raise AssertionError("no zk_large_requests_rejected in mntr")


def frames(client, *sizes) -> bytes:
    """Creates of /lr/p<i> with the given data sizes, as one run of bytes."""
    return b"".join(encode_request(client.next_xid(), Op.CREATE,
                                   CreateRequest(f"/lr/p{i}", b"x" * size, OPEN, 0))
                    for i, size in enumerate(sizes))


def children(srv) -> list:
    c = RawClient.open(srv.hosts)
    try:
        return sorted(c.request(Op.GET_CHILDREN, PathWatchRequest("/lr", False))[1])
    finally:
        c.close()


def test_a_large_frame_over_what_is_in_process_closes_the_connection():
    with ZkpyServer(config=CONFIG) as srv:
        c = RawClient.open(srv.hosts)
        c.request(Op.CREATE, CreateRequest("/lr", b"", OPEN, 0))
        # Sent together: the first write (body 3044) is still on its way
        # through the log when the second frame (3052) is read: 6096 > 5000.
        c.send_raw(frames(c, 3000, 3000))
        assert c.is_closed_by_server()
        c.close()
        assert rejected(srv) == 1
        # The first write goes on without its connection; the second never ran.
        assert children(srv) == ["p0"]
        # Its bytes came back: a request of 4948 body bytes fits again.
        c = RawClient.open(srv.hosts)
        hdr, _ = c.request(Op.CREATE, CreateRequest("/lr/q", b"x" * 4900, OPEN, 0))
        assert hdr.err == 0
        c.close()
        assert rejected(srv) == 1


def test_answered_large_requests_give_their_bytes_back():
    # Far more large bytes than the maximum, one request in process at a time.
    with ZkpyServer(config=CONFIG) as srv:
        c = RawClient.open(srv.hosts)
        c.request(Op.CREATE, CreateRequest("/lr", b"", OPEN, 0))
        for i in range(20):
            hdr, _ = c.request(Op.CREATE, CreateRequest(f"/lr/n{i}", b"x" * 4000, OPEN, 0))
            assert hdr.err == 0
            hdr, _ = c.request(Op.GET_CHILDREN, PathWatchRequest("/lr", False))
            assert hdr.err == 0
        c.close()
        assert rejected(srv) == 0
        assert srv.call(lambda server: server.large_requests.in_process) == 0


def test_small_requests_pass_beside_large_ones():
    with ZkpyServer(config=CONFIG) as srv:
        c = RawClient.open(srv.hosts)
        c.request(Op.CREATE, CreateRequest("/lr", b"", OPEN, 0))
        # A large write holds 4044 bytes; small ones behind it are not counted.
        c.send_raw(frames(c, 4000, 10, 10, 10))
        for _ in range(4):
            hdr, _ = c.read_reply(Op.CREATE)
            assert hdr.err == 0
        c.close()
        assert children(srv) == ["p0", "p1", "p2", "p3"]
        assert rejected(srv) == 0


def test_a_connection_closed_mid_request_gives_its_bytes_back():
    with ZkpyServer(config=CONFIG) as srv:
        c = RawClient.open(srv.hosts)
        c.request(Op.CREATE, CreateRequest("/lr", b"", OPEN, 0))
        c.send_raw(frames(c, 4000))
        c.close()   # before the reply, most likely
        deadline = time.monotonic() + 10
        while srv.call(lambda server: server.large_requests.in_process) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.call(lambda server: server.large_requests.in_process) == 0
        assert children(srv) == ["p0"]
