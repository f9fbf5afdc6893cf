"""What a throttled client sees, on Apache ZooKeeper 3.8 and on zkpy started
with the same keys: Throttled (-127) answers from the RequestThrottler, the
requests it drops when their connection has gone, connections refused by the
token bucket.

Which requests get Throttled depends on how long each waited, so the two
servers are compared on what does not: the kinds of request that can be
throttled, the shape of a Throttled reply, that a throttled write changes
nothing, the counters."""

import collections
import socket

import pytest

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, CreateRequest, DeleteRequest, MultiRequest, PathRequest, PathWatchRequest,
    SetDataRequest, encode_request,
)
from zkpy.rawclient import ConnectionClosed, RawClient
from zkpy.testing.apache import client_handshake, require_apache

from .conftest import server_pair

OPEN = list(OPEN_ACL_UNSAFE)


def mntr(srv) -> dict:
    text = srv.four_letter_word("mntr") if hasattr(srv, "four_letter_word") \
        else srv.four_letter("mntr")   # Apache ZooKeeper, zkpy
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def counters(srv) -> dict:
    """The throttle counters mntr prints."""
    m = mntr(srv)
    return {n: int(m[f"zk_{n}"]) for n in ("throttled_ops", "stale_requests_dropped",
                                            "connection_rejected", "connection_request_count")}


def pipeline(client, requests):
    """Send every (op, record) at once; return [(op, xid, ReplyHeader)] in order."""
    sent, data = [], bytearray()
    for op, rec in requests:
        xid = -2 if op == Op.PING else client.next_xid()
        sent.append((op, xid))
        data += encode_request(xid, op, rec)
    client.send_raw(bytes(data))
    out = []
    for op, xid in sent:
        hdr, body = client.read_reply(op, raw=True)
        assert hdr.xid == xid, (hdr, xid)     # in order
        if hdr.err == Err.THROTTLED:
            assert body == b""                # a bare reply header
        out.append((op, xid, hdr))
    return out


def kinds(i):
    """The i-th round of requests: one of each kind."""
    return [
        (Op.CREATE, CreateRequest(f"/t/c{i}", b"", OPEN, 0)),
        (Op.GET_DATA, PathWatchRequest("/t", False)),
        (Op.EXISTS, PathWatchRequest("/t", False)),
        (Op.GET_CHILDREN2, PathWatchRequest("/t", False)),
        (Op.SYNC, PathRequest("/t")),
        (Op.SET_DATA, SetDataRequest("/t", b"%d" % i, -1)),
        (Op.DELETE, DeleteRequest("/t/none", -1)),
        (Op.MULTI, MultiRequest([(Op.CREATE, CreateRequest(f"/t/m{i}", b"", OPEN, 0))])),
        (Op.WHO_AM_I, None),
        (Op.PING, None),
    ]


def unthrottled(client, op, record):
    """A request asked again while it is answered Throttled (as a client
    should: it only waited too long behind others)."""
    while True:
        hdr, body = client.request(op, record)
        if hdr.err != Err.THROTTLED:
            assert hdr.err == 0, hdr
            return hdr, body


def throttled_run(srv, rounds=60):
    """Rounds of one request of each kind, all sent at once: the queue
    soon holds requests longer than throttled_op_wait_time."""
    with RawClient.open(srv.hosts) as setup:
        unthrottled(setup, Op.CREATE, CreateRequest("/t", b"v", OPEN, 0))
    before = counters(srv)["throttled_ops"]
    c = RawClient.open(srv.hosts)
    replies = pipeline(c, [r for i in range(rounds) for r in kinds(i)])
    close = c.close_session()
    counted = counters(srv)["throttled_ops"] - before
    with RawClient.open(srv.hosts) as check:
        _, children = unthrottled(check, Op.GET_CHILDREN, PathWatchRequest("/t", False))
        _, (data, _) = unthrottled(check, Op.GET_DATA, PathWatchRequest("/t", False))
        resumed = RawClient.open(srv.hosts, session_id=c.session_id, passwd=c.passwd)
        resumed.close()
    return replies, close, set(children), data, resumed.expired, counted


def test_requests_that_waited_too_long_are_throttled():
    # Which requests are throttled depends on timing; that every kind but the
    # ping can be, and what a throttled request does and does not do, does not.
    require_apache()
    config = {"request_throttle_max_requests": 1, "throttled_op_wait_time": 1}
    throttled_kinds = {}
    with server_pair(config) as (apache, zkpy):
        for name, srv in (("apache", apache), ("zkpy", zkpy)):
            replies, close, children, data, expired, counted = throttled_run(srv)
            errs = collections.Counter(hdr.err for _, _, hdr in replies)
            throttled_kinds[name] = {op for op, _, hdr in replies if hdr.err == Err.THROTTLED}
            for op, _, hdr in replies:
                allowed = {0, Err.THROTTLED} | ({Err.NO_NODE} if op == Op.DELETE else set())
                assert hdr.err in allowed, (name, op, hdr)
            # A throttled write changed nothing; the others all did.
            expected = {f"c{i}" for i, (_, _, hdr) in enumerate(replies[0::10])
                        if hdr.err == 0}
            expected |= {f"m{i}" for i, (_, _, hdr) in enumerate(replies[7::10])
                         if hdr.err == 0}
            assert children == expected, name
            last_set = [i for i, (_, _, hdr) in enumerate(replies[5::10]) if hdr.err == 0]
            assert data == (b"%d" % last_set[-1] if last_set else b"v"), name
            # A Throttled reply carries the zxid of the last write applied.
            last = 0
            for op, _, hdr in replies:
                if hdr.err == Err.THROTTLED:
                    assert hdr.zxid == last, (name, hdr)
                last = max(last, hdr.zxid)
            # closeSession is never throttled: the session is gone.
            assert close is not None and close.err == 0 and expired, name
            assert counted == errs[Err.THROTTLED], name
    every_kind_but_ping = {op for op, _ in kinds(0)} - {Op.PING}
    assert throttled_kinds["zkpy"] == throttled_kinds["apache"] == every_kind_but_ping


def flood_and_vanish(srv, n):
    """A client pipelines n creates and hangs up at once (a FIN after its
    requests: it reads no reply, and its socket stays open so that no reset
    overtakes them)."""
    with RawClient.open(srv.hosts) as setup:
        assert setup.request(Op.CREATE, CreateRequest("/v", b"", OPEN, 0))[0].err == 0
    c = RawClient.open(srv.hosts)
    c.send_raw(b"".join(encode_request(i + 1, Op.CREATE, CreateRequest(f"/v/n{i}", b"", OPEN, 0))
                        for i in range(n)))
    c.sock.shutdown(socket.SHUT_WR)
    with c, RawClient.open(srv.hosts) as check:
        check.request(Op.SYNC, PathRequest("/v"))
        while True:   # until the server is done with the vanished client's requests
            before = check.request(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/v"))[1]
            for _ in range(20):
                check.request(Op.SYNC, PathRequest("/v"))
            if check.request(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/v"))[1] == before:
                return before


@pytest.mark.parametrize("drop_stale", ["true", "false"])
def test_requests_of_a_vanished_client(drop_stale):
    # With request_throttle_drop_stale (the default) the throttler drops the
    # requests still waiting when their connection has gone; without it, it
    # runs them all: every create is applied.
    require_apache()
    n = 2000
    config = {"request_throttle_max_requests": 1, "request_throttle_drop_stale": drop_stale}
    with server_pair(config) as (apache, zkpy):
        for name, srv in (("apache", apache), ("zkpy", zkpy)):
            created = flood_and_vanish(srv, n)
            dropped = counters(srv)["stale_requests_dropped"]
            if drop_stale == "true":
                assert 0 < created < n and dropped == 1, (name, created, dropped)
            else:
                assert created == n and dropped == 0, (name, created, dropped)


def connect(srv, session_id=0, passwd=bytes(16)):
    """'ok' with the session granted, or 'closed, N bytes' if the server
    closed the connection instead (N bytes received before it did)."""
    c = RawClient(srv.hosts)
    try:
        c.connect(session_id, passwd)
    except ConnectionClosed:
        return f"closed, {c.bytes_received} bytes"
    finally:
        c.close()
    return "ok"


def test_connection_token_bucket():
    # Three tokens and no refill to speak of.  ZooKeeper's start-up check
    # opened one session; zkpy's did not, so one is opened on zkpy first.
    require_apache()
    config = {"connection_throttle_tokens": 3, "connection_throttle_fill_time": 3_600_000}
    with server_pair(config) as (apache, zkpy):
        client_handshake(zkpy.host, zkpy.port)
        seen = {}
        for name, srv in (("apache", apache), ("zkpy", zkpy)):
            keep = RawClient.open(srv.hosts)
            outcomes = [connect(srv) for _ in range(3)]
            outcomes.append(connect(srv, keep.session_id, keep.passwd))   # resuming costs too
            # Refused connections leave the sessions there are alone, and
            # four-letter words pass (they are not ConnectRequests).
            assert keep.request(Op.EXISTS, PathWatchRequest("/", False))[0].err == 0
            text = srv.four_letter_word("srvr") if name == "apache" else srv.four_letter("srvr")
            assert text.startswith("Zookeeper version")
            keep.close()
            seen[name] = outcomes, counters(srv)["connection_rejected"], \
                counters(srv)["connection_request_count"]
    assert seen["zkpy"] == seen["apache"]
    assert seen["apache"] == (["ok", "closed, 0 bytes", "closed, 0 bytes", "closed, 0 bytes"],
                              3, 3)


def test_weighted_connection_tokens():
    # With weights the bucket holds 3 tokens per configured one; a new
    # (global) session costs 3, resuming one costs 2.
    require_apache()
    config = {"connection_throttle_tokens": 3, "connection_throttle_fill_time": 3_600_000,
              "connection_throttle_weight_enabled": "true"}
    with server_pair(config) as (apache, zkpy):
        client_handshake(zkpy.host, zkpy.port)      # as ZooKeeper's start-up check did
        seen = {}
        for name, srv in (("apache", apache), ("zkpy", zkpy)):
            keep = RawClient.open(srv.hosts)        # 9 - 3 - 3 = 3 left
            outcomes = [connect(srv, keep.session_id, keep.passwd),   # 1 left
                        connect(srv, keep.session_id, keep.passwd),
                        connect(srv)]
            seen[name] = outcomes
    assert seen["zkpy"] == seen["apache"] == ["ok", "closed, 0 bytes", "closed, 0 bytes"]
