"""Sequential names, container nodes (opcode 19) and TTL nodes (opcode 21),
including their reaping by the container manager."""

import time

import pytest

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import CreateMode, Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
)
from zkpy.protocol.opcodes import EventType

from zkpy.rawclient import RawClient

OPEN = list(OPEN_ACL_UNSAFE)
REAP_CONFIG = {"znode.container.checkIntervalMs": 100}


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# --- sequential -----------------------------------------------------------------------

def test_sequential_suffix_is_ten_digits_from_zero(zk, base):
    assert zk.create(base + "/s-", sequence=True) == base + "/s-0000000000"
    assert zk.create(base + "/s-", sequence=True) == base + "/s-0000000001"
    assert zk.create(base + "/other-", sequence=True) == base + "/other-0000000002"


def test_sequential_counter_counts_plain_creates_and_never_reuses(zk, base):
    zk.create(base + "/plain")
    zk.create(base + "/x")
    assert zk.create(base + "/q", sequence=True) == base + "/q0000000002"
    zk.delete(base + "/q0000000002")
    zk.delete(base + "/plain")
    assert zk.create(base + "/q", sequence=True) == base + "/q0000000003"


def test_ephemeral_sequential(zk, base):
    path = zk.create(base + "/lock-", ephemeral=True, sequence=True)
    assert path == base + "/lock-0000000000"
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_sequential_with_trailing_slash(hosts, base):
    """create("/p/", SEQUENTIAL) names the child by the number alone; a
    non-sequential "/p/" is an invalid path."""
    with RawClient.open(hosts) as c:
        hdr, path = c.request(
            Op.CREATE, CreateRequest(base + "/", b"", OPEN, CreateMode.PERSISTENT_SEQUENTIAL))
        assert hdr.err == 0
        assert path == base + "/0000000000"
        assert c.request(
            Op.CREATE, CreateRequest(base + "/", b"", OPEN, 0))[0].err == Err.BAD_ARGUMENTS


def test_sequential_creates_in_one_multi_are_consecutive(hosts, base):
    with RawClient.open(hosts) as c:
        ops = [(Op.CREATE, CreateRequest(base + "/m-", b"", OPEN, CreateMode.PERSISTENT_SEQUENTIAL))
               for _ in range(3)]
        hdr, res = c.request(Op.MULTI, MultiRequest(ops))
        assert hdr.err == 0
        assert [body for _, _, body in res] == [
            f"{base}/m-000000000{i}" for i in range(3)]


def test_sequential_name_appears_in_children(zk, base):
    names = {zk.create(base + "/n-", sequence=True).rsplit("/", 1)[1] for _ in range(12)}
    assert set(zk.get_children(base)) == names
    assert f"n-{11:010d}" in names


# --- containers -----------------------------------------------------------------------

def test_container_is_created_with_opcode_19(hosts, base):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(
            Op.CREATE_CONTAINER, CreateRequest(base + "/c", b"d", OPEN, CreateMode.CONTAINER))
        assert hdr.err == 0
        path, stat = body
        assert path == base + "/c"
        assert stat.ephemeralOwner == 0
        assert stat.czxid == hdr.zxid
        # Containers may have children, even ephemeral ones.
        assert c.request(
            Op.CREATE, CreateRequest(base + "/c/e", b"", OPEN, CreateMode.EPHEMERAL))[0].err == 0


@pytest.fixture(scope="module")
def reaping_server():
    from tests.conftest import run_server
    with run_server({**REAP_CONFIG, "extendedTypesEnabled": "true"}) as srv:
        yield srv


def test_empty_container_is_reaped_after_its_last_child_goes(reaping_server, make_client):
    zk = make_client(reaping_server.hosts)
    with RawClient.open(reaping_server.hosts) as c:
        req = CreateRequest("/cont", b"", OPEN, CreateMode.CONTAINER)
        assert c.request(Op.CREATE_CONTAINER, req)[0].err == 0
        assert c.request(Op.CREATE, CreateRequest("/cont/child", b"", OPEN, 0))[0].err == 0
        # A data watch on the container sees the reaper's delete.
        assert c.request(Op.EXISTS, PathWatchRequest("/cont", True))[0].err == 0
        assert c.request(Op.GET_CHILDREN, PathWatchRequest("/", True))[0].err == 0
        time.sleep(0.3)  # several reaper rounds: a container with a child stays
        assert zk.exists("/cont") is not None
        assert c.request(Op.DELETE, DeleteRequest("/cont/child", -1))[0].err == 0
        assert wait_until(lambda: zk.exists("/cont") is None)
        ev = c.next_event().event
        assert (ev.type, ev.path) == (EventType.NODE_DELETED, "/cont")
        ev = c.next_event().event
        assert (ev.type, ev.path) == (EventType.NODE_CHILDREN_CHANGED, "/")


def test_never_used_container_is_kept(reaping_server, make_client):
    zk = make_client(reaping_server.hosts)
    with RawClient.open(reaping_server.hosts) as c:
        req = CreateRequest("/unused", b"", OPEN, CreateMode.CONTAINER)
        assert c.request(Op.CREATE_CONTAINER, req)[0].err == 0
    time.sleep(0.5)
    assert zk.exists("/unused") is not None


@pytest.mark.zkpy_only  # 3.8.0 reads the path from the raw packet: always BadArguments
def test_delete_container_opcode_refuses_ordinary_nodes(reaping_server):
    """deleteContainer (20) from a client, decoded as DeleteContainerRequest
    as ZooKeeper 3.9+ does."""
    with RawClient.open(reaping_server.hosts) as c:
        assert c.request(Op.CREATE, CreateRequest("/plainnode", b"", OPEN, 0))[0].err == 0
        assert c.request(Op.DELETE_CONTAINER, PathRequest("/plainnode"))[0].err == Err.BAD_VERSION
        assert c.request(
            Op.CREATE_CONTAINER, CreateRequest("/c2", b"", OPEN, CreateMode.CONTAINER))[0].err == 0
        assert c.request(Op.CREATE, CreateRequest("/c2/x", b"", OPEN, 0))[0].err == 0
        assert c.request(Op.DELETE_CONTAINER, PathRequest("/c2"))[0].err == Err.NOT_EMPTY
        assert c.request(Op.DELETE_CONTAINER, PathRequest("/nonexistent"))[0].err == Err.NO_NODE
        assert c.request(Op.DELETE, DeleteRequest("/c2/x", -1))[0].err == 0
        assert c.request(
            Op.DELETE_CONTAINER, PathRequest("/c2"))[0].err in (0, Err.NO_NODE)  # reaper may win
        assert c.request(Op.EXISTS, PathWatchRequest("/c2", False))[0].err == Err.NO_NODE


# --- TTL ------------------------------------------------------------------------------

def ttl_create(path, ttl, flags=CreateMode.PERSISTENT_WITH_TTL, data=b""):
    return CreateRequest(path, data, OPEN, flags, ttl)


def test_ttl_needs_extended_types(hosts, base):
    with RawClient.open(hosts) as c:
        assert c.request(Op.CREATE_TTL, ttl_create(base + "/t", 1000))[0].err == Err.UNIMPLEMENTED
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/t", False))[0].err == Err.NO_NODE
        # The connection stays usable.
        assert c.ping()[0].err == 0


@pytest.mark.parametrize("ttl", [0, -5, 0xFFFFFFFFFF + 1])
def test_invalid_ttl_is_bad_arguments(reaping_server, ttl):
    with RawClient.open(reaping_server.hosts) as c:
        assert c.request(Op.CREATE_TTL, ttl_create("/badttl", ttl))[0].err == Err.BAD_ARGUMENTS


def test_ttl_with_non_ttl_mode_is_bad_arguments(reaping_server):
    with RawClient.open(reaping_server.hosts) as c:
        assert c.request(
            Op.CREATE_TTL, ttl_create("/ttlmode", 1000, flags=0))[0].err == Err.BAD_ARGUMENTS


def test_ttl_node_stat_and_sequential(reaping_server):
    with RawClient.open(reaping_server.hosts) as c:
        hdr, body = c.request(Op.CREATE_TTL, ttl_create("/ttlnode", 3_600_000, data=b"abc"))
        assert hdr.err == 0
        path, stat = body
        assert path == "/ttlnode"
        assert stat.ephemeralOwner == 0 and stat.dataLength == 3
        hdr, body = c.request(Op.CREATE_TTL, ttl_create(
            "/ttlnode/s-", 3_600_000, flags=CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL))
        assert hdr.err == 0
        path, _ = body
        assert path == "/ttlnode/s-0000000000"
        # A TTL node may have children, and one that does is not reaped.
        time.sleep(0.3)
        assert c.request(Op.EXISTS, PathWatchRequest("/ttlnode", False))[0].err == 0


def test_ttl_node_is_reaped_when_expired_and_childless(reaping_server, make_client):
    zk = make_client(reaping_server.hosts)
    with RawClient.open(reaping_server.hosts) as c:
        assert c.request(Op.CREATE_TTL, ttl_create("/shortttl", 200))[0].err == 0
        assert c.request(Op.EXISTS, PathWatchRequest("/shortttl", True))[0].err == 0
        assert wait_until(lambda: zk.exists("/shortttl") is None)
        ev = c.next_event().event
        assert (ev.type, ev.path) == (EventType.NODE_DELETED, "/shortttl")


def test_ttl_in_multi(reaping_server, make_client):
    zk = make_client(reaping_server.hosts)
    with RawClient.open(reaping_server.hosts) as c:
        ops = [(Op.CREATE_TTL, ttl_create("/multittl", 3_600_000))]
        hdr, res = c.request(Op.MULTI, MultiRequest(ops))
        assert hdr.err == 0
        [(rtype, err, body)] = res
        assert (rtype, err) == (Op.CREATE2, 0)
        assert body[0] == "/multittl" and body[1].ephemeralOwner == 0
    assert zk.exists("/multittl") is not None


def test_set_data_refreshes_ttl(reaping_server, make_client):
    """A TTL counts from the last modification: a node written to again and
    again outlives its TTL."""
    zk = make_client(reaping_server.hosts)
    with RawClient.open(reaping_server.hosts) as c:
        assert c.request(Op.CREATE_TTL, ttl_create("/busyttl", 1500))[0].err == 0
        start = time.monotonic()
        while time.monotonic() - start < 2.0:
            assert c.request(Op.SET_DATA, SetDataRequest("/busyttl", b"x", -1))[0].err == 0
            time.sleep(0.1)
        assert zk.exists("/busyttl") is not None
        assert wait_until(lambda: zk.exists("/busyttl") is None)
