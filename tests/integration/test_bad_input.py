"""Bad input: frame lengths out of range, truncated and garbage records,
garbage handshakes, invalid paths, oversized data, and a seeded fuzz.  After
each, the server must still serve everyone else (principle 5 of DESIGN.md)."""

import contextlib
import logging
import random
import struct
import time

import pytest

from zkpy.protocol.errors import ERROR_NAMES, Err
from zkpy.protocol.opcodes import Op, Xid
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CreateRequest,
    PathWatchRequest,
    SetDataRequest,
    encode_request,
)

from zkpy.rawclient import ConnectionClosed, RawClient, encode_connect

OPEN = list(OPEN_ACL_UNSAFE)
MAXBUFFER = 0xFFFFF
BAD_ARGS, NO_NODE = Err.BAD_ARGUMENTS, Err.NO_NODE


@pytest.fixture
def witness(hosts, base):
    """A session that must keep working whatever the others send."""
    c = RawClient.open(hosts)
    c.request(Op.CREATE, CreateRequest(base + "/witness", b"alive", OPEN, 0))
    yield c
    hdr, body = c.request(Op.GET_DATA, PathWatchRequest(base + "/witness", False))
    assert hdr.err == 0 and body[0] == b"alive"
    with RawClient.open(hosts) as fresh:
        assert fresh.ping()[0].err == 0
    c.close()


# --- frame lengths -------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [-1, -2**31, MAXBUFFER + 1, 0x7FFFFFFF])
def test_bad_frame_length_after_handshake_closes_the_connection(hosts, witness, length):
    with RawClient.open(hosts) as c:
        c.send_raw(struct.pack(">i", length) + b"\0" * 64)
        assert c.is_closed_by_server()
        assert not c.received  # no reply at all


@pytest.mark.parametrize("length", [-1, MAXBUFFER + 1, 0x47455420])
def test_bad_frame_length_before_handshake_closes_the_connection(hosts, witness, length):
    c = RawClient(hosts)
    with c:
        c.send_raw(struct.pack(">i", length) + b"\0" * 64)
        assert c.is_closed_by_server()


def test_http_request_on_the_client_port_is_dropped(hosts, witness):
    with RawClient(hosts) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: zk\r\n\r\n")
        assert c.is_closed_by_server()
        assert c.bytes_received == 0


def test_frame_of_exactly_maxbuffer_is_accepted(hosts, base, witness):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/big", b"", OPEN, 0))
        overhead = len(encode_request(1, Op.SET_DATA, SetDataRequest(base + "/big", b"", -1))) - 4
        data = b"x" * (MAXBUFFER - overhead)
        req = encode_request(c.xid + 1, Op.SET_DATA, SetDataRequest(base + "/big", data, -1))
        assert struct.unpack(">i", req[:4])[0] == MAXBUFFER
        hdr, stat = c.request(Op.SET_DATA, SetDataRequest(base + "/big", data, -1))
        assert hdr.err == 0
        assert stat.dataLength == len(data)


def test_oversized_data_closes_only_that_connection(hosts, base, witness):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/huge", b"", OPEN, 0))
        c.received.clear()
        with contextlib.suppress(ConnectionClosed):  # it may close while we still send
            c.send(Op.SET_DATA, SetDataRequest(base + "/huge", b"y" * (MAXBUFFER + 1), -1))
        assert c.is_closed_by_server()
        assert not c.received
    with RawClient.open(hosts) as c:
        hdr, (data, _) = c.request(Op.GET_DATA, PathWatchRequest(base + "/huge", False))
        assert data == b""  # nothing half-applied
        with contextlib.suppress(ConnectionClosed):
            c.send(Op.CREATE, CreateRequest(base + "/huge2", b"z" * (2 * MAXBUFFER), OPEN, 0))
        assert c.is_closed_by_server()
    with RawClient.open(hosts) as c:
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/huge2", False))[0].err == NO_NODE


def test_kazoo_create_with_oversized_value_fails(make_client, hosts, base, witness):
    from kazoo.exceptions import ConnectionLoss, ZookeeperError
    from kazoo.retry import KazooRetry

    zk = make_client(hosts, connection_retry=KazooRetry(max_tries=1), command_retry=None)
    with pytest.raises((ConnectionLoss, ZookeeperError)):
        zk.create(base + "/k-huge", b"q" * (MAXBUFFER + 100))


# --- truncated and garbage records --------------------------------------------------------------

TRUNCATED_PATH = struct.pack(">i", 100) + b"/a"


@pytest.mark.parametrize("op", [
    Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.EXISTS, Op.GET_DATA,
    Op.SET_DATA, Op.GET_ACL, Op.SET_ACL, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.SYNC, Op.MULTI,
    Op.MULTI_READ, Op.RECONFIG, Op.CHECK_WATCHES, Op.REMOVE_WATCHES, Op.SET_WATCHES,
    Op.SET_WATCHES2, Op.GET_EPHEMERALS, Op.GET_ALL_CHILDREN_NUMBER, Op.ADD_WATCH])
def test_truncated_record_is_marshalling_error(hosts, witness, op):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(op, TRUNCATED_PATH)
        assert hdr.err == Err.MARSHALLING_ERROR
        assert body is None
        assert c.ping()[0].err == 0  # the connection stays up


@pytest.mark.parametrize("body", [
    b"",                                                                   # nothing at all
    struct.pack(">i", -5),                                                 # negative length
    struct.pack(">i", 0x7FFFFFF0) + b"/q",                                 # absurd length
    struct.pack(">i", 2) + b"/q",                                          # watch flag missing
], ids=["empty", "negative-length", "absurd-length", "missing-field"])
def test_garbage_get_data_is_marshalling_error(hosts, witness, body):
    with RawClient.open(hosts) as c:
        assert c.request(Op.GET_DATA, body)[0].err == Err.MARSHALLING_ERROR
        assert c.ping()[0].err == 0


@pytest.mark.parametrize("count", [0x7FFFFFFF, -5, 1000])
def test_bad_acl_vector_count_is_marshalling_error(hosts, base, witness, count):
    body = struct.pack(">i", 2) + b"/q" + struct.pack(">i", 0) + struct.pack(">i", count)
    with RawClient.open(hosts) as c:
        assert c.request(Op.CREATE, body)[0].err == Err.MARSHALLING_ERROR
        assert c.ping()[0].err == 0


def test_trailing_bytes_are_ignored(hosts, witness):
    body = struct.pack(">i", 2) + b"/q" + b"\x01" + b"trailing junk"
    with RawClient.open(hosts) as c:
        assert c.request(Op.GET_DATA, body)[0].err == NO_NODE


def test_undecodable_utf8_path_is_just_not_found(hosts, witness):
    with RawClient.open(hosts) as c:
        assert c.request(Op.GET_DATA, struct.pack(">i", 2) + b"\xff\xfe\x00")[0].err == NO_NODE


def test_garbage_auth_packet_closes_the_connection(hosts, witness):
    with RawClient.open(hosts) as c:
        c.send(Op.AUTH, TRUNCATED_PATH, xid=-4)
        assert c.is_closed_by_server()


@pytest.mark.parametrize("payload", [b"", b"\0\0\0\1", b"\0\0\0\1\0\0"])
def test_request_shorter_than_its_header_closes_the_connection(hosts, witness, payload):
    with RawClient.open(hosts) as c:
        c.send_frame(payload)
        assert c.is_closed_by_server()
        assert not c.received


@pytest.mark.parametrize("payload", [
    b"", b"\0" * 10, b"\0" * 20, b"\0" * 24 + struct.pack(">i", 100)])
def test_garbage_connect_request_closes_without_reply(hosts, witness, payload):
    with RawClient(hosts) as c:
        c.send_frame(payload)
        assert c.is_closed_by_server()
        assert c.bytes_received == 0


def test_connect_request_with_null_password_and_trailing_bytes(hosts, witness):
    """A null (-1) password is a new session's empty password; bytes after the
    readOnly flag are ignored."""
    body = struct.pack(">iqiqi", 0, 0, 30000, 0, -1)
    with RawClient(hosts) as c:
        c.send_frame(body + b"\x00extra")
        resp = c.recv_connect()
        assert resp.session_id != 0 and resp.read_only is False
        assert c.ping()[0].err == 0


def test_requests_before_the_connect_response_are_processed_in_order(hosts, base):
    """Pipelined behind the ConnectRequest, as the Java Netty client does."""
    with RawClient(hosts) as c:
        c.send_raw(encode_connect()
                   + encode_request(1, Op.CREATE, CreateRequest(base + "/early", b"e", OPEN, 0))
                   + encode_request(2, Op.GET_DATA, PathWatchRequest(base + "/early", False)))
        assert c.recv_connect().session_id != 0
        hdr, _ = c.read_reply(Op.CREATE)
        assert (hdr.xid, hdr.err) == (1, 0)
        hdr, body = c.read_reply(Op.GET_DATA)
        assert (hdr.xid, hdr.err) == (2, 0) and body[0] == b"e"


def test_half_sent_frame_then_disconnect(hosts, witness):
    with RawClient.open(hosts) as c:
        c.send_raw(struct.pack(">i", 1000) + b"\0" * 100)
    with RawClient(hosts) as c:
        c.send_raw(struct.pack(">i", 45) + b"\0" * 10)


# --- invalid paths ------------------------------------------------------------------------------

# What ZooKeeper 3.8.0 answers, in the order create, setData, delete, exists,
# getData, setACL (checked against the reference server).
PATH_ERRORS = {
    "a":             (BAD_ARGS, BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, BAD_ARGS),
    "/x/":           (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "//x":           (NO_NODE, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/x//y":         (NO_NODE, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/x/./y":        (NO_NODE, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/.":            (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/..":           (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/x/.":          (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/x\x00y":       (BAD_ARGS, BAD_ARGS, BAD_ARGS, BAD_ARGS, NO_NODE, BAD_ARGS),
    "/\x01":         (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/x\x1f":        (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\x7f":         (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\x9f":         (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\ud800":       (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\U0001F600":   (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\ufff5":       (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    "/\ue000":       (BAD_ARGS, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
    " /x":           (NO_NODE, BAD_ARGS, NO_NODE, NO_NODE, NO_NODE, BAD_ARGS),
}
# Odd but valid names: created fine.
VALID_NAMES = ["/.x", "/x..", "/\uf900", "/\ufeff", "/\uffef", "/ x", "/x ", "/\u00a0", "/日本"]


def _path_request(op, path, ok_acl=True):
    pb = path.encode("utf-8", "surrogatepass")
    s = struct.pack(">i", len(pb)) + pb
    acl = struct.pack(">ii", 1, 31) + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"
    return {
        Op.CREATE: s + struct.pack(">i", 0) + acl + struct.pack(">i", 0),
        Op.SET_DATA: s + struct.pack(">ii", 0, -1),
        Op.DELETE: s + struct.pack(">i", -1),
        Op.EXISTS: s + b"\0",
        Op.GET_DATA: s + b"\0",
        Op.SET_ACL: s + acl + struct.pack(">i", -1),
    }[op]


@pytest.mark.parametrize("suffix", list(PATH_ERRORS), ids=[repr(p) for p in PATH_ERRORS])
def test_invalid_paths(hosts, base, witness, suffix):
    # Relative to the test's node where the path is absolute, so that
    # "/x//y" means "<base>/x//y" (whose parent "<base>/x/" does not exist).
    path = suffix if not suffix.startswith("/") else base + suffix
    ops = (Op.CREATE, Op.SET_DATA, Op.DELETE, Op.EXISTS, Op.GET_DATA, Op.SET_ACL)
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/x", b"", OPEN, 0))
        got = tuple(c.request(op, _path_request(op, path))[0].err for op in ops)
        expected = PATH_ERRORS[suffix]
        assert got == expected, [ERROR_NAMES[e] for e in got]


def test_odd_but_valid_names(hosts, base, witness):
    with RawClient.open(hosts) as c:
        for name in VALID_NAMES:
            path = base + name
            assert c.request(Op.CREATE, _path_request(Op.CREATE, path))[0].err == 0, repr(name)
            assert c.request(Op.EXISTS, _path_request(Op.EXISTS, path))[0].err == 0
        hdr, children = c.request(Op.GET_CHILDREN, PathWatchRequest(base, False))
        assert sorted(set(children) - {"witness"}) == sorted(n[1:] for n in VALID_NAMES)


def test_empty_path_reads_the_root(hosts):
    with RawClient.open(hosts) as c:
        assert c.request(Op.GET_DATA, _path_request(Op.GET_DATA, ""))[0].err == 0
        assert c.request(Op.CREATE, _path_request(Op.CREATE, ""))[0].err == BAD_ARGS


def test_invalid_path_with_kazoo(zk, base):
    from kazoo.exceptions import BadArgumentsError
    with pytest.raises(BadArgumentsError):
        zk.create(base + "/a\x01b")
    with pytest.raises(BadArgumentsError):
        zk.set(base + "/a\x01b", b"")


# --- seeded fuzz ----------------------------------------------------------------------------------

FUZZ_OPS = [Op.CREATE, Op.DELETE, Op.EXISTS, Op.GET_DATA, Op.SET_DATA, Op.GET_ACL, Op.SET_ACL,
            Op.GET_CHILDREN, Op.SYNC, Op.PING, Op.GET_CHILDREN2, Op.CHECK, Op.MULTI, Op.CREATE2,
            Op.RECONFIG, Op.CHECK_WATCHES, Op.REMOVE_WATCHES, Op.CREATE_CONTAINER,
            Op.DELETE_CONTAINER, Op.CREATE_TTL, Op.MULTI_READ, Op.AUTH, Op.SET_WATCHES, Op.SASL,
            Op.GET_EPHEMERALS, Op.GET_ALL_CHILDREN_NUMBER, Op.SET_WATCHES2, Op.ADD_WATCH,
            Op.WHO_AM_I, Op.CLOSE_SESSION, 0, 10, 55]
# (-10 is left out: ZooKeeper 3.8.0 answers some createSession bodies with a
# ConnectResponse-shaped frame.)


def _fuzz_body(rng, base):
    kind = rng.random()
    if kind < 0.3:
        return rng.randbytes(rng.randrange(0, 48))
    # Something that starts like a record: a plausible path, then noise.
    path = (base + "/f" + str(rng.randrange(5))).encode()
    if rng.random() < 0.3:
        path = rng.choice([b"", b"/", b"\0", path + b"/", b"//"])
    head = struct.pack(">i", rng.choice([len(path), len(path), -1, 0, len(path) + 3])) + path
    return head + rng.randbytes(rng.randrange(0, 24))


def test_seeded_fuzz_never_hangs_or_hurts_others(hosts, base, witness, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(20240611)
    known = set(ERROR_NAMES) - {0}
    c = RawClient.open(hosts)
    outcomes = {"reply": 0, "closed": 0}
    try:
        for i in range(400):
            op = rng.choice(FUZZ_OPS)
            if op == Op.CHECK and not rng.random() < 0.5:
                continue  # a successful top-level check never gets an answer from 3.8.0
            xid = rng.choice([i + 1, i + 1, -4, -8, -2])
            try:
                c.send(op, _fuzz_body(rng, base), xid=xid)
                hdr, _ = c.read_reply(op, timeout=10, raw=True)  # notifications skipped
                assert hdr.xid == (Xid.PING if op == Op.PING else xid), (op, hdr)
                assert hdr.err == 0 or hdr.err in known, (op, hdr)
                outcomes["reply"] += 1
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
                outcomes["closed"] += 1
                c.close()
                c = RawClient.open(hosts)
            # TimeoutError (neither a reply nor a close) fails the test.
    finally:
        c.close()
    assert outcomes["reply"] > 100 and outcomes["closed"] > 5, outcomes
    crashes = [r for r in caplog.records
               if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("zkpy", "asyncio")]
    assert not crashes, [r.getMessage() for r in crashes]


def test_pipelined_writes_with_the_same_xid_are_all_answered(hosts, base, witness):
    """Clients are trusted to number requests, not required to: replies go
    back in request order whatever the xids."""
    with RawClient.open(hosts) as c:
        xids = [7, 7, 0, 0, 7, -5]
        for i, x in enumerate(xids):
            c.send(Op.CREATE, CreateRequest(f"{base}/dup{i}", b"", OPEN, 0), xid=x)
        got = [c.read_reply(Op.CREATE)[0] for _ in xids]
        assert not c.events  # those were the very next frames
        assert [(h.xid, h.err) for h in got] == [(x, 0) for x in xids]
        zxids = [h.zxid for h in got]
        assert zxids == sorted(zxids) and len(set(zxids)) == len(xids)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frames_cut_anywhere_across_reads(hosts, base, witness, seed):
    """Requests whose bytes arrive in pieces cut at any point (inside the
    length, the header, the record; several frames and a part of the next
    in one piece) are answered as if each had come whole."""
    rng = random.Random(seed)
    with RawClient.open(hosts) as c:
        frames, expect = [], []
        for i in range(30):
            xid = 100 + i
            path = f"{base}/cut{seed}-{i // 2}"
            if i % 2 == 0:
                frames.append(encode_request(xid, Op.CREATE,
                                             CreateRequest(path, b"v%d" % i, OPEN, 0)))
                expect.append((xid, Op.CREATE, path))
            else:
                frames.append(encode_request(xid, Op.GET_DATA, PathWatchRequest(path, False)))
                expect.append((xid, Op.GET_DATA, b"v%d" % (i - 1)))
        data = b"".join(frames)
        cuts = sorted(rng.sample(range(1, len(data)), 40))
        for a, b in zip([0] + cuts, cuts + [len(data)]):
            c.send_raw(data[a:b])
            time.sleep(0.003)   # (so that the pieces arrive in separate reads)
        for xid, op, want in expect:
            hdr, body = c.read_reply(op)
            assert (hdr.xid, hdr.err) == (xid, 0)
            assert (body if op == Op.CREATE else body[0]) == want


# --- null (-1) paths ------------------------------------------------------------------------------

def _null_path_requests():
    from zkpy.protocol.records import (
        AddWatchRequest, CheckVersionRequest, DeleteRequest, MultiRequest, PathRequest,
        SetACLRequest, SetWatches, WatchTypeRequest)
    M, B = Err.MARSHALLING_ERROR, BAD_ARGS
    return [
        ("create", Op.CREATE, CreateRequest(None, b"", OPEN, 0), M),
        ("create2", Op.CREATE2, CreateRequest(None, b"", OPEN, 0), M),
        ("delete", Op.DELETE, DeleteRequest(None, -1), M),
        ("exists", Op.EXISTS, PathWatchRequest(None, True), M),
        ("getData", Op.GET_DATA, PathWatchRequest(None, True), M),
        ("getChildren", Op.GET_CHILDREN, PathWatchRequest(None, True), M),
        ("getChildren2", Op.GET_CHILDREN2, PathWatchRequest(None, False), M),
        ("getACL", Op.GET_ACL, PathRequest(None), M),
        ("getAllChildrenNumber", Op.GET_ALL_CHILDREN_NUMBER, PathRequest(None), M),
        ("checkWatches", Op.CHECK_WATCHES, WatchTypeRequest(None, 3), M),
        # (removeWatches: MarshallingError or NoWatcher in 3.8.0, by the connection's state)
        ("setData", Op.SET_DATA, SetDataRequest(None, b"", -1), B),
        ("setACL", Op.SET_ACL, SetACLRequest(None, OPEN, -1), B),
        ("multi-check", Op.MULTI, MultiRequest([(Op.CHECK, CheckVersionRequest(None, -1))]), M),
        ("multi-setData", Op.MULTI, MultiRequest(
            [(Op.CREATE, CreateRequest("/never-created", b"", OPEN, 0)),
             (Op.SET_DATA, SetDataRequest(None, b"", -1))]), M),
        ("multiRead", Op.MULTI_READ, MultiRequest([(Op.GET_DATA, PathWatchRequest(None, False))]), M),
        ("setWatches", Op.SET_WATCHES, SetWatches(0, [], [None], []), M),
        ("setWatches2-persistent", Op.SET_WATCHES2, SetWatches(0, [], [], [], [None], []), 0),
        ("addWatch", Op.ADD_WATCH, AddWatchRequest(None, 0), 0),
        ("getEphemerals", Op.GET_EPHEMERALS, PathRequest(None), 0),
        ("sync", Op.SYNC, PathRequest(None), 0),
    ]


@pytest.mark.parametrize("name, op, req, err", _null_path_requests(),
                         ids=[t[0] for t in _null_path_requests()])
def test_null_path(hosts, witness, name, op, req, err):
    """Where ZooKeeper dereferences a null path it answers MarshallingError;
    setData and setACL validate it (BadArguments); a few accept it."""
    with RawClient.open(hosts) as c:
        hdr, _ = c.request(op, req)
        assert hdr.err == err
        assert c.ping()[0].err == 0
        assert c.request(Op.EXISTS, PathWatchRequest("/never-created", False))[0].err == NO_NODE


# --- idle and surplus connections -----------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_server():
    from tests.conftest import run_server
    with run_server({"zookeeper.nio.sessionlessCnxnTimeout": 300, "maxClientCnxns": 4}) as srv:
        yield srv


def test_connection_that_never_says_hello_is_closed(strict_server):
    with RawClient(strict_server.hosts) as silent, RawClient(strict_server.hosts) as half:
        half.send_raw(struct.pack(">i", 45) + b"\0" * 10)  # half a ConnectRequest
        assert silent.is_closed_by_server(timeout=15)
        assert half.is_closed_by_server(timeout=15)
    with RawClient.open(strict_server.hosts) as c:
        assert c.ping()[0].err == 0


def test_connections_beyond_max_client_cnxns_are_closed(strict_server):
    conns = [RawClient.open(strict_server.hosts) for _ in range(4)]
    try:
        try:
            with RawClient(strict_server.hosts) as extra:
                extra.connect()
        except TimeoutError:
            pytest.fail("the surplus connection was neither served nor closed")
        except (ConnectionClosed, OSError):
            pass  # closed at once (ZooKeeper may even refuse the connect)
        else:
            pytest.fail("the surplus connection got a session")
        for c in conns:
            assert c.ping()[0].err == 0
    finally:
        for c in conns:
            c.close()
    # Once they are gone, new connections are welcome again.
    import time
    deadline = time.monotonic() + 10
    while True:
        try:
            with RawClient.open(strict_server.hosts) as c:
                assert c.ping()[0].err == 0
            break
        except (ConnectionClosed, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.05)
