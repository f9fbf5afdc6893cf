"""Znodes and Stat bookkeeping: create/get/set/delete/exists/getChildren over
kazoo and raw requests, the initial tree, cversion/pzxid/zxid rules, null data."""

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE,
    CreateRequest,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
)

from zkpy.rawclient import RawClient


def test_create_returns_path_and_node_reads_back(zk, base):
    path = zk.create(base + "/a", b"hello")
    assert path == base + "/a"
    data, stat = zk.get(base + "/a")
    assert data == b"hello"
    assert stat.dataLength == 5
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid > 0
    assert stat.ctime == stat.mtime > 0


def test_create2_returns_the_new_stat(zk, base):
    path, stat = zk.create(base + "/a", b"xyz", include_data=True)
    assert path == base + "/a"
    assert stat == zk.exists(base + "/a")
    assert stat.dataLength == 3 and stat.version == 0
    assert stat.czxid == stat.mzxid == stat.pzxid


def test_set_data_bumps_version_mzxid_mtime(zk, base):
    p = base + "/a"
    _, s0 = zk.create(p, b"1", include_data=True)
    s1 = zk.set(p, b"22")
    assert s1.version == 1
    assert s1.mzxid > s0.mzxid
    assert s1.czxid == s0.czxid and s1.ctime == s0.ctime
    assert s1.mtime >= s0.mtime
    assert s1.dataLength == 2
    assert s1.pzxid == s0.pzxid  # only children move pzxid
    # Identical data is still a change.
    s2 = zk.set(p, b"22")
    assert s2.version == 2 and s2.mzxid > s1.mzxid
    assert zk.get(p) == (b"22", s2)


def test_versions_are_checked(zk, base):
    p = base + "/a"
    zk.create(p, b"x")
    with pytest.raises(BadVersionError):
        zk.set(p, b"y", version=5)
    assert zk.set(p, b"y", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.delete(p, version=0)
    zk.delete(p, version=1)
    assert zk.exists(p) is None


def test_errors_of_plain_operations(zk, base):
    p = base + "/a"
    zk.create(p)
    with pytest.raises(NodeExistsError):
        zk.create(p)
    with pytest.raises(NoNodeError):
        zk.create(base + "/missing/child")
    with pytest.raises(NoNodeError):
        zk.get(base + "/missing")
    with pytest.raises(NoNodeError):
        zk.set(base + "/missing", b"")
    with pytest.raises(NoNodeError):
        zk.delete(base + "/missing")
    with pytest.raises(NoNodeError):
        zk.get_children(base + "/missing")
    assert zk.exists(base + "/missing") is None
    zk.create(p + "/child")
    with pytest.raises(NotEmptyError):
        zk.delete(p)


def test_delete_reports_no_node_before_bad_version(zk, base):
    with pytest.raises(NoNodeError):
        zk.delete(base + "/missing", version=7)


def test_children_and_get_children2(zk, base):
    names = ["b", "a", "c", "d-1", "ü"]
    for n in names:
        zk.create(f"{base}/{n}")
    assert sorted(zk.get_children(base)) == sorted(names)
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == sorted(names)
    assert stat == zk.exists(base)  # the parent's Stat
    assert stat.numChildren == len(names)


def test_cversion_and_pzxid_follow_child_creates_and_deletes(zk, base):
    s0 = zk.exists(base)
    _, ca = zk.create(base + "/a", include_data=True)
    s1 = zk.exists(base)
    assert s1.cversion == s0.cversion + 1
    assert s1.numChildren == 1
    assert s1.pzxid == ca.czxid
    # The parent's own data fields do not move.
    assert (s1.version, s1.mzxid, s1.mtime) == (s0.version, s0.mzxid, s0.mtime)
    zk.create(base + "/b")
    zk.delete(base + "/a")
    s2 = zk.exists(base)
    assert s2.cversion == s0.cversion + 3
    assert s2.numChildren == 1
    assert s2.pzxid > s1.pzxid
    # A child's setData does not touch the parent.
    zk.set(base + "/b", b"new")
    assert zk.exists(base) == s2


def test_cversion_is_twice_creates_minus_children(zk, base):
    for i in range(5):
        zk.create(f"{base}/n{i}")
    for i in range(3):
        zk.delete(f"{base}/n{i}")
    s = zk.exists(base)
    assert s.numChildren == 2
    assert s.cversion == 2 * 5 - 2


def test_ephemeral_owner_and_no_children_for_ephemerals(zk, base):
    p = base + "/e"
    _, stat = zk.create(p, ephemeral=True, include_data=True)
    assert stat.ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(p + "/child")


def test_ephemeral_of_another_session_is_visible(zk, zk2, base):
    zk.create(base + "/e", ephemeral=True)
    stat = zk2.exists(base + "/e")
    assert stat.ephemeralOwner == zk.client_id[0] != zk2.client_id[0]


def test_empty_data_and_large_data(zk, base):
    zk.create(base + "/empty", b"")
    data, stat = zk.get(base + "/empty")
    assert data == b"" and stat.dataLength == 0
    big = bytes(range(256)) * 4000  # 1,024,000 bytes: below jute.maxbuffer
    zk.create(base + "/big", big)
    data, stat = zk.get(base + "/big")
    assert data == big and stat.dataLength == len(big)


def test_null_data_is_kept_null(hosts, base):
    """Data sent as a -1 buffer is stored as null: getData answers -1 and the
    Stat's dataLength is 0."""
    with RawClient.open(hosts) as c:
        hdr, body = c.request(
            Op.CREATE2, CreateRequest(base + "/n", None, list(OPEN_ACL_UNSAFE), 0))
        assert hdr.err == 0
        path, stat = body
        assert path == base + "/n"
        assert stat.dataLength == 0
        hdr, body = c.request(Op.GET_DATA, PathWatchRequest(base + "/n", False))
        assert hdr.err == 0
        data, stat = body
        assert data is None  # a -1 length
        assert stat.dataLength == 0
        # setData back to null keeps it null as well.
        c.request(Op.SET_DATA, SetDataRequest(base + "/n", b"x", -1))
        hdr, _ = c.request(Op.SET_DATA, SetDataRequest(base + "/n", None, -1))
        assert hdr.err == 0
        hdr, (data, _) = c.request(Op.GET_DATA, PathWatchRequest(base + "/n", False))
        assert data is None  # a -1 length


def test_create_reply_carries_path_only_and_create2_the_stat(hosts, base):
    with RawClient.open(hosts) as c:
        # (request() decodes the body whole: bytes left over fail it.)
        hdr, path = c.request(Op.CREATE, CreateRequest(base + "/a", b"d", list(OPEN_ACL_UNSAFE), 0))
        assert hdr.err == 0
        assert path == base + "/a"
        hdr, (path, stat) = c.request(
            Op.CREATE2, CreateRequest(base + "/b", b"d", list(OPEN_ACL_UNSAFE), 0))
        assert path == base + "/b"
        assert stat.czxid == stat.mzxid == stat.pzxid == hdr.zxid


def test_error_reply_is_a_bare_header(hosts, base):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(Op.GET_DATA, PathWatchRequest(base + "/missing", False))
        assert hdr.err == Err.NO_NODE
        assert body is None


def test_zxids_of_writes_reads_and_failed_writes(hosts, base):
    """Each write takes the next zxid, a failed write also consumes one (an
    error txn, as in ZooKeeper), reads and pings take none; replies carry the
    last processed zxid."""
    with RawClient.open(hosts) as c:
        h1, _ = c.request(Op.CREATE, CreateRequest(base + "/a", b"", list(OPEN_ACL_UNSAFE), 0))
        h2, _ = c.request(Op.GET_DATA, PathWatchRequest(base + "/a", False))
        assert h2.zxid == h1.zxid
        h3, _ = c.request(Op.CREATE, CreateRequest(base + "/a", b"", list(OPEN_ACL_UNSAFE), 0))
        assert h3.err == Err.NODE_EXISTS
        assert h3.zxid == h1.zxid + 1
        h4, _ = c.request(Op.SET_DATA, SetDataRequest(base + "/a", b"x", -1))
        assert h4.err == 0 and h4.zxid == h1.zxid + 2
        ping, _ = c.ping()
        assert ping.xid == -2 and ping.zxid == h4.zxid and ping.err == 0


def test_exists_reply_is_the_stat(hosts, base):
    with RawClient.open(hosts) as c:
        hdr, stat = c.request(Op.EXISTS, PathWatchRequest(base, False))  # (nothing left over)
        assert hdr.err == 0
        assert stat.numChildren == 0
        hdr, body = c.request(Op.EXISTS, PathWatchRequest(base + "/none", False))
        assert hdr.err == Err.NO_NODE and body is None


def test_system_nodes_cannot_be_deleted(zk):
    for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            zk.delete(path)


def test_delete_root_is_bad_arguments(hosts):
    with RawClient.open(hosts) as c:
        assert c.request(Op.DELETE, DeleteRequest("/", -1))[0].err == Err.BAD_ARGUMENTS


def test_children_may_be_created_under_zookeeper(zk, base):
    name = "/zookeeper/" + base.rsplit("/", 1)[1]
    zk.create(name, b"x")
    assert zk.get(name)[0] == b"x"
    zk.delete(name)
    with pytest.raises(Exception):
        zk.create("/zookeeper/config/child")


def test_initial_tree_of_a_fresh_server(make_server, make_client):
    srv = make_server()
    zk = make_client(srv.hosts)
    assert sorted(zk.get_children("/")) == ["zookeeper"]
    root = zk.exists("/")
    assert (root.czxid, root.mzxid, root.ctime, root.mtime) == (0, 0, 0, 0)
    assert root.numChildren == 1 and root.cversion == -1 and root.pzxid == 0
    zkn = zk.exists("/zookeeper")
    assert zkn.numChildren == 2 and zkn.cversion == -2
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    data, conf = zk.get("/zookeeper/config")
    assert data == b""
    assert conf.aversion == -1
    acl, _ = zk.get_acls("/zookeeper/config")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone")]
    acl, _ = zk.get_acls("/")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(31, "world", "anyone")]
    # The first child created under / gets cversion 0 -> 1 past -1.
    zk.create("/first")
    assert zk.exists("/").cversion == 0
    assert zk.get_children("/first") == []


def test_root_data_is_empty_not_null(make_server):
    srv = make_server()
    with RawClient.open(srv.hosts) as c:
        hdr, body = c.request(Op.GET_DATA, PathWatchRequest("/", False))
        assert hdr.err == 0
        data, _ = body
        assert data == b""  # a 0 length, not -1 (None)


def test_get_acl_of_new_node(zk, base):
    acl, stat = zk.get_acls(base)
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(31, "world", "anyone")]
    assert stat == zk.exists(base)


def test_get_acl_raw_reply(hosts, base):
    with RawClient.open(hosts) as c:
        hdr, body = c.request(Op.GET_ACL, PathRequest(base))  # (nothing left over)
        assert hdr.err == 0
        acl, _ = body
        assert [tuple(a) for a in acl] == [(31, "world", "anyone")]
        assert c.request(Op.GET_ACL, PathRequest(base + "/x"))[0].err == Err.NO_NODE


def test_unicode_and_deep_paths(zk, base):
    p = base + "/ünï/çødé/日本"
    zk.ensure_path(p)
    zk.set(p, "värde".encode())
    assert zk.get(p)[0].decode() == "värde"
    assert zk.get_children(base + "/ünï") == ["çødé"]
    deep = base + "".join(f"/{i}" for i in range(50))
    zk.ensure_path(deep)
    assert zk.exists(deep) is not None


def test_create_with_container_flag_on_plain_create_opcode(hosts, base):
    """Flag 4 on opcode 1: Java's prep takes it as a container, but the tree
    decides from the opcode; either way clients see ephemeralOwner 0."""
    with RawClient.open(hosts) as c:
        hdr, body = c.request(Op.CREATE2, CreateRequest(base + "/c", b"", list(OPEN_ACL_UNSAFE), 4))
        assert hdr.err == 0
        _, stat = body
        assert stat.ephemeralOwner == 0


@pytest.mark.parametrize("flags", [-1, 7, 100])
def test_invalid_create_flags(hosts, base, flags):
    with RawClient.open(hosts) as c:
        for op in (Op.CREATE, Op.CREATE2):
            req = CreateRequest(base + "/f", b"", list(OPEN_ACL_UNSAFE), flags)
            assert c.request(op, req)[0].err == Err.BAD_ARGUMENTS
        assert c.request(Op.EXISTS, PathWatchRequest(base + "/f", False))[0].err == Err.NO_NODE


def test_version_minus_one_means_any(hosts, base):
    """-1 means "don't check" for setData and delete; other values must match."""
    with RawClient.open(hosts) as c:
        c.request(Op.CREATE, CreateRequest(base + "/v", b"", list(OPEN_ACL_UNSAFE), 0))
        hdr, stat = c.request(Op.SET_DATA, SetDataRequest(base + "/v", b"1", -1))
        assert stat.version == 1
        assert c.request(
            Op.SET_DATA, SetDataRequest(base + "/v", b"1", -2))[0].err == Err.BAD_VERSION
        assert c.request(Op.DELETE, DeleteRequest(base + "/v", -1))[0].err == 0
