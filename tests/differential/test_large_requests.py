"""The large-request limit (largeRequestThreshold, largeRequestMaxBytes in
zoo.cfg) on Apache ZooKeeper 3.8 and on zkpy started with the same keys: which
requests close their connection, that the session lives on, and the
large_requests_rejected counter.

A create of D data bytes under the path /lr/x (5 characters, the open ACL)
has a body of D + 44 bytes and a frame of D + 52: the frame is checked
against the maximum first, then the body."""

import pytest

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest, PathWatchRequest
from zkpy.rawclient import ConnectionClosed, RawClient
from zkpy.testing.apache import require_apache

from .conftest import server_pair

OPEN = list(OPEN_ACL_UNSAFE)
CONFIG = {"largeRequestThreshold": 1000, "largeRequestMaxBytes": 5000}


def mntr(srv) -> dict:
    text = srv.four_letter_word("mntr") if hasattr(srv, "four_letter_word") \
        else srv.four_letter("mntr")   # Apache ZooKeeper, zkpy
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def create(client, name, size):
    """'ok', an error name, or 'closed' if the server closed the connection."""
    try:
        hdr, _ = client.request(Op.CREATE, CreateRequest(f"/lr/{name}", b"x" * size, OPEN, 0))
    except ConnectionClosed:
        return "closed"
    return "ok" if hdr.err == 0 else str(hdr.err)


def run(srv) -> list:
    seen = []
    c = RawClient.open(srv.hosts)
    sid, passwd = c.session_id, c.passwd
    seen.append(create(c, "a", 10))          # not large: frame 62
    seen.append(create(c, "b", 3000))        # large, well under the maximum
    seen.append(create(c, "c", 4940))        # frame 4992, body 4984: fits
    seen.append(create(c, "d", 4952))        # frame 5004 over the maximum, body 4996 not
    c.close()
    # The session outlived its connection: resume it.
    c = RawClient.open(srv.hosts, session_id=sid, passwd=passwd)
    seen.append("expired" if c.expired else "resumed")
    seen.append(create(c, "e", 6000))        # over the maximum whatever is in process
    c.close()
    c = RawClient.open(srv.hosts, session_id=sid, passwd=passwd)
    hdr, children = c.request(Op.GET_CHILDREN, PathWatchRequest("/lr", False))
    seen.append(sorted(children) if hdr.err == 0 else str(hdr.err))
    c.close()
    seen.append(int(mntr(srv)["zk_large_requests_rejected"]))
    return seen


def test_large_requests_over_the_maximum_close_their_connection():
    require_apache()
    with server_pair(CONFIG) as (apache, zkpy):
        results = {}
        for name, srv in (("apache", apache), ("zkpy", zkpy)):
            c = RawClient.open(srv.hosts)
            assert c.request(Op.CREATE, CreateRequest("/lr", b"", OPEN, 0))[0].err == 0
            c.close()
            results[name] = run(srv)
        assert results["zkpy"] == results["apache"]
        assert results["zkpy"] == ["ok", "ok", "ok", "closed", "resumed", "closed",
                                   ["a", "b", "c"], 2]


@pytest.mark.parametrize("threshold", ["-1", "0", "-5"])
def test_without_a_threshold_nothing_is_large(threshold):
    # -1 is the default; 0 and anything below -1 are taken as -1 (with a warning).
    require_apache()
    with server_pair({"largeRequestThreshold": threshold, "largeRequestMaxBytes": 100}) \
            as (apache, zkpy):
        for srv in (apache, zkpy):
            c = RawClient.open(srv.hosts)
            hdr, _ = c.request(Op.CREATE, CreateRequest("/big", b"x" * 50000, OPEN, 0))
            assert hdr.err == 0
            c.close()
            assert int(mntr(srv)["zk_large_requests_rejected"]) == 0
