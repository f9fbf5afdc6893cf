"""multi (14) and multiRead (22): atomicity, per-op results, one zxid for the
batch, validation against the intermediate state, watches, malformed batches."""

import struct

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)

from zkpy.protocol.errors import Err
from zkpy.protocol.jute import Writer
from zkpy.protocol.opcodes import EventType, Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    PathWatchRequest,
    SetDataRequest,
)

from zkpy.rawclient import MultiResult, RawClient

OPEN = list(OPEN_ACL_UNSAFE)


def test_transaction_applies_everything_with_one_zxid(zk, base):
    zk.create(base + "/old", b"o")
    zk.create(base + "/gone")
    t = zk.transaction()
    t.create(base + "/a", b"1")
    t.create(base + "/a/b", b"2")  # sees the create before it
    t.set_data(base + "/old", b"new", version=0)
    t.check(base + "/old", 1)     # sees the setData before it
    t.delete(base + "/gone")
    results = t.commit()
    assert results == [base + "/a", base + "/a/b", zk.exists(base + "/old"), True, True]
    a, b, old = zk.exists(base + "/a"), zk.exists(base + "/a/b"), zk.exists(base + "/old")
    assert a.czxid == b.czxid == old.mzxid
    assert zk.get(base + "/old")[0] == b"new"
    assert zk.exists(base + "/gone") is None
    assert zk.exists(base).pzxid == a.czxid


def test_failed_transaction_changes_nothing(zk, base):
    zk.create(base + "/x", b"x")
    before = zk.exists(base)
    t = zk.transaction()
    t.create(base + "/new")
    t.set_data(base + "/x", b"y", version=3)   # fails: BadVersion
    t.delete(base + "/x")
    t.create(base + "/new2")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, BadVersionError,
                                          RuntimeInconsistency, RuntimeInconsistency]
    assert zk.exists(base + "/new") is None
    assert zk.get(base + "/x")[0] == b"x"
    after = zk.exists(base)
    assert after == before


@pytest.mark.parametrize("op, error", [
    ("create_existing", NodeExistsError),
    ("create_no_parent", NoNodeError),
    ("delete_missing", NoNodeError),
    ("delete_not_empty", NotEmptyError),
    ("check_version", BadVersionError),
    ("check_missing", NoNodeError),
])
def test_each_failure_is_reported_in_place(zk, base, op, error):
    zk.create(base + "/p")
    zk.create(base + "/p/c")
    t = zk.transaction()
    t.create(base + "/first")
    {
        "create_existing": lambda: t.create(base + "/p"),
        "create_no_parent": lambda: t.create(base + "/nope/x"),
        "delete_missing": lambda: t.delete(base + "/nope"),
        "delete_not_empty": lambda: t.delete(base + "/p"),
        "check_version": lambda: t.check(base + "/p", 9),
        "check_missing": lambda: t.check(base + "/nope", 0),
    }[op]()
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], error)
    assert zk.exists(base + "/first") is None


def test_multi_reply_bytes(hosts, base):
    """Header err 0, per-op MultiHeaders, error code both in header and body,
    terminator (-1, true, -1) -- the failed multi of the reference's A.7."""
    with RawClient.open(hosts) as c:
        ops = [(Op.CREATE, CreateRequest(base + "/x", b"", OPEN, 0)),
               (Op.SET_DATA, SetDataRequest(base + "/y", b"", 5))]
        hdr, body = c.request(Op.MULTI, MultiRequest(ops), raw=True)
        assert hdr.err == 0
        assert body == (struct.pack(">i?i", -1, False, 0) + struct.pack(">i", 0)
                        + struct.pack(">i?i", -1, False, Err.NO_NODE)
                        + struct.pack(">i", Err.NO_NODE)
                        + struct.pack(">i?i", -1, True, -1))


def test_multi_success_result_types(hosts, base):
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/d", b"", OPEN, 0))
        ops = [(Op.CREATE, CreateRequest(base + "/c1", b"a", OPEN, 0)),
               (Op.CREATE_CONTAINER, CreateRequest(base + "/c3", b"", OPEN, 4)),
               (Op.SET_DATA, SetDataRequest(base + "/c1", b"zzz", 0)),
               (Op.CHECK, CheckVersionRequest(base + "/c1", 1)),
               (Op.DELETE, DeleteRequest(base + "/d", -1))]
        hdr, res = c.request(Op.MULTI, MultiRequest(ops))
        assert hdr.err == 0
        assert [(t, e) for t, e, _ in res] == [
            (Op.CREATE, 0), (Op.CREATE2, 0), (Op.SET_DATA, 0), (Op.CHECK, 0), (Op.DELETE, 0)]
        assert res[0][2] == base + "/c1"
        path3, stat3 = res[1][2]
        assert path3 == base + "/c3" and stat3.czxid == hdr.zxid and stat3.ephemeralOwner == 0
        assert res[2][2].version == 1 and res[2][2].dataLength == 3
        assert res[2][2].mzxid == hdr.zxid


def test_create_ops_in_multi_go_by_their_flags(hosts, base):
    """ZooKeeper 3.8.0 rebuilds each create of a multi from its flags: a
    create2 answers like a create (path only), flags 4 make a container
    (answered with the Stat)."""
    with RawClient.open(hosts) as c:
        hdr, res = c.request(Op.MULTI, MultiRequest(
            [(Op.CREATE2, CreateRequest(base + "/c2", b"bb", OPEN, 0)),
             (Op.CREATE, CreateRequest(base + "/c4", b"", OPEN, 4))]))
        assert hdr.err == 0
        assert res[0] == (Op.CREATE, 0, base + "/c2")
        assert res[1][0:2] == (Op.CREATE2, 0)
        path, stat = res[1][2]
        assert path == base + "/c4" and stat.czxid == hdr.zxid


def test_failed_multi_consumes_a_zxid(hosts, base):
    with RawClient.open(hosts) as c:
        h0, _ = c.ping()
        ops = [(Op.DELETE, DeleteRequest(base + "/none", -1))]
        hdr, res = c.request(Op.MULTI, MultiRequest(ops))
        # (An error result's body must repeat its err: the decoder checks it.)
        assert res == [MultiResult(Op.ERROR, Err.NO_NODE)]
        assert hdr.zxid == h0.zxid + 1


def test_empty_multi(hosts):
    with RawClient.open(hosts) as c:
        hdr, res = c.request(Op.MULTI, MultiRequest([]))
        assert hdr.err == 0
        assert res == []


def test_multi_fires_watches_after_apply(hosts, base, zk):
    zk.create(base + "/w", b"")
    with RawClient.open(hosts) as watcher, RawClient.open(hosts) as writer:
        assert watcher.request(Op.GET_DATA, PathWatchRequest(base + "/w", True))[0].err == 0
        assert watcher.request(Op.GET_CHILDREN, PathWatchRequest(base, True))[0].err == 0
        ops = [(Op.SET_DATA, SetDataRequest(base + "/w", b"1", -1)),
               (Op.CREATE, CreateRequest(base + "/n", b"", OPEN, 0))]
        hdr, _ = writer.request(Op.MULTI, MultiRequest(ops))
        assert hdr.err == 0
        got = {(e.type, e.path) for e in [watcher.next_event().event for _ in range(2)]}
        assert got == {(EventType.NODE_DATA_CHANGED, base + "/w"),
                       (EventType.NODE_CHILDREN_CHANGED, base)}


def test_failed_multi_fires_no_watches(hosts, base):
    with RawClient.open(hosts) as watcher, RawClient.open(hosts) as writer:
        assert watcher.request(Op.GET_CHILDREN, PathWatchRequest(base, True))[0].err == 0
        ops = [(Op.CREATE, CreateRequest(base + "/n", b"", OPEN, 0)),
               (Op.CHECK, CheckVersionRequest(base, 42))]
        writer.request(Op.MULTI, MultiRequest(ops))
        assert watcher.no_more_events()


def test_multi_with_invalid_create_flag(hosts, base):
    """ZooKeeper 3.8.0 fails the op with BadArguments (3.8.1+ and 3.9 fail the
    whole multi with MarshallingError instead)."""
    with RawClient.open(hosts) as c:
        ops = [(Op.CREATE, CreateRequest(base + "/ok", b"", OPEN, 0)),
               (Op.CREATE, CreateRequest(base + "/bad", b"", OPEN, 9))]
        hdr, res = c.request(Op.MULTI, MultiRequest(ops))
        assert hdr.err == 0
        # (An error result's body must repeat its err: the decoder checks it.)
        assert res == [MultiResult(Op.ERROR, 0), MultiResult(Op.ERROR, Err.BAD_ARGUMENTS)]
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/ok", False))[0].err == Err.NO_NODE


def _multi_payload(op_types_and_bodies, read=False):
    w = Writer()
    for op, rec in op_types_and_bodies:
        w.int(op)
        w.bool(False)
        w.int(-1)
        rec.write(w)
    w.int(-1)
    w.bool(True)
    w.int(-1)
    return bytes(w.out)


def test_mixing_reads_into_multi_is_marshalling_error(hosts, base):
    with RawClient.open(hosts) as c:
        body = _multi_payload([(Op.CREATE, CreateRequest(base + "/m", b"", OPEN, 0)),
                               (Op.GET_DATA, PathWatchRequest(base, False))])
        hdr, reply = c.request(Op.MULTI, body)
        assert hdr.err == Err.MARSHALLING_ERROR and reply is None
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/m", False))[0].err == Err.NO_NODE
        # The connection stays usable.
        assert c.ping()[0].err == 0


def test_writes_in_multi_read_are_marshalling_error(hosts, base):
    with RawClient.open(hosts) as c:
        body = _multi_payload([(Op.GET_DATA, PathWatchRequest(base, False)),
                               (Op.CREATE, CreateRequest(base + "/m", b"", OPEN, 0))])
        hdr, _ = c.request(Op.MULTI_READ, body)
        assert hdr.err == Err.MARSHALLING_ERROR
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/m", False))[0].err == Err.NO_NODE


def test_multi_read_results_are_independent(hosts, base, zk):
    zk.create(base + "/a", b"data-a")
    zk.create(base + "/a/k1")
    zk.create(base + "/a/k2")
    with RawClient.open(hosts) as c:
        ops = [(Op.GET_DATA, PathWatchRequest(base + "/a", True)),
               (Op.GET_CHILDREN, PathWatchRequest(base + "/missing", True)),
               (Op.GET_CHILDREN, PathWatchRequest(base + "/a", True))]
        hdr, res = c.request(Op.MULTI_READ, MultiRequest(ops))
        assert hdr.err == 0
        assert res[0][0:2] == (Op.GET_DATA, 0)
        assert res[0][2][0] == b"data-a"
        assert res[0][2][1] == zk.exists(base + "/a")
        assert res[1] == MultiResult(Op.ERROR, Err.NO_NODE)  # (the decoder checks the body)
        assert res[2][0:2] == (Op.GET_CHILDREN, 0) and sorted(res[2][2]) == ["k1", "k2"]
        # multiRead sets no watches, whatever the requests say.
        zk.set(base + "/a", b"changed")
        zk.create(base + "/a/k3")
        assert c.no_more_events()


def test_multi_read_consumes_no_zxid(hosts, base):
    with RawClient.open(hosts) as c:
        h0, _ = c.ping()
        hdr, _ = c.request(
            Op.MULTI_READ, MultiRequest([(Op.GET_DATA, PathWatchRequest(base, False))]))
        assert hdr.zxid == h0.zxid
        assert c.ping()[0].zxid == h0.zxid


def test_multi_create_then_delete_same_node(zk, base):
    t = zk.transaction()
    t.create(base + "/tmp")
    t.delete(base + "/tmp")
    t.create(base + "/tmp", b"again")
    results = t.commit()
    assert results == [base + "/tmp", True, base + "/tmp"]
    assert zk.get(base + "/tmp")[0] == b"again"
    # cversion moved by 3 (two creates, one delete).
    assert zk.exists(base).cversion == 3


def test_later_request_sees_multi(zk, zk2, base):
    t = zk.transaction()
    t.create(base + "/q1")
    t.create(base + "/q2")
    t.commit()
    assert sorted(zk2.get_children(base)) == ["q1", "q2"]
