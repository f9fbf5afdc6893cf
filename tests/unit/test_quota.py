"""Quotas as ZooKeeper 3.8 keeps them: the StatsTrack text, the quota roots
(PathTrie), the stats the tree updates in apply, their recount when a
snapshot is loaded, and the limits prep checks with enforceQuota.  The same
behaviour is compared with Apache ZooKeeper through zkCli in
tests/clients/test_zkcli_quota.py and tests/differential/test_operations.py."""

import logging

import pytest

from zkpy.datatree import quota
from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.errors import Err, KeeperError, MarshallingError
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import CreateRequest, DeleteRequest, SetDataRequest
from zkpy.server.prep import Prep
from zkpy.server.quota import QuotaChecker, RateLogger
from zkpy.storage.snapshot import parse_snapshot, snapshot_bytes

ACL = [(31, "world", "anyone")]
AUTH = [("ip", "127.0.0.1")]


class TestStatsTrack:
    @pytest.mark.parametrize("text,stats", [
        (b"", {}),
        (b"count=3,bytes=-1", {"count": 3, "bytes": -1}),
        (b"count=3,bytes=10=;byteHardLimit=40;countHardLimit=6",
         {"count": 3, "bytes": 10, "byteHardLimit": 40, "countHardLimit": 6}),
        (b"count==5,bytes=5", {"count": -1, "bytes": 5}),      # an empty value is -1
        (b"count=+4;;bytes=5,,", {"count": 4, "bytes": 5}),
        (b"=5", {"": 5}),
        (b",,,", {}),
    ])
    def test_parse(self, text, stats):
        assert quota.parse_stats(text) == stats

    @pytest.mark.parametrize("text", [None, b"count", b"count=", b",count=1", b"count=abc",
                                      b"count=1.5", b"count=99999999999999999999"])
    def test_what_java_throws_on(self, text):
        with pytest.raises(quota.StatsParseError):
            quota.parse_stats(text)

    @pytest.mark.parametrize("stats,text", [
        ({}, b"count=-1,bytes=-1"),
        ({"bytes": 5, "count": 2}, b"count=2,bytes=5"),
        ({"count": 3, "bytes": -1, "countHardLimit": -1, "byteHardLimit": -1},
         b"count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"),
    ])
    def test_format(self, stats, text):
        assert quota.format_stats(stats) == text


class TestQuotaRoots:
    def test_innermost_root(self):
        roots = quota.QuotaRoots()
        assert not roots and roots.max_prefix("/a") is None
        roots.add("/a")
        roots.add("/a/b/c")
        assert roots
        assert roots.max_prefix("/a") == "/a"
        assert roots.max_prefix("/a/b") == "/a"
        assert roots.max_prefix("/a/b/c/d") == "/a/b/c"
        assert roots.max_prefix("/ab") is None
        roots.remove("/a/b/c")
        assert roots.max_prefix("/a/b/c/d") == "/a"

    def test_blank_names_are_left_out_as_in_java(self):
        roots = quota.QuotaRoots()
        roots.add("/a/ /b")
        assert roots.max_prefix("/a/b/x") == "/a/b"
        roots.add("")          # Java throws; the trie's own root never counts
        roots.add("/ ")
        assert roots.max_prefix("/x") is None


class Driver:
    def __init__(self):
        self.tree = DataTree()
        self.zxid = 0

    def apply(self, t, body):
        self.zxid += 1
        return self.tree.apply(Txn(1, self.zxid, self.zxid, 1000 + self.zxid, t, body))

    def create(self, path, data=b""):
        parent = path.rsplit("/", 1)[0] or "/"
        return self.apply(Op.CREATE, (path, data, ACL, 0, self.tree.nodes[parent].creates + 1))

    def set(self, path, data):
        return self.apply(Op.SET_DATA, (path, data, self.tree.nodes[path].version + 1))

    def delete(self, path):
        return self.apply(Op.DELETE, (path,))

    def setquota(self, path, limits=b"count=3,bytes=-1", stats=b"count=0,bytes=0"):
        """What zkCli's setquota writes."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/zookeeper/quota/" + "/".join(parts[:i])
            if p not in self.tree.nodes:
                self.create(p, None)
        self.create(quota.limit_path(path), limits)
        self.create(quota.stat_path(path), stats)

    def stats(self, path):
        return self.tree.nodes[quota.stat_path(path)].data


def test_stats_follow_creates_deletes_and_sets():
    d = Driver()
    d.create("/q", b"12")
    d.create("/q/a", b"345")
    d.setquota("/q")
    assert d.tree.quota.roots == {"/q"}
    assert d.stats("/q") == b"count=2,bytes=5"          # the server counted them
    d.create("/q/b", b"x")
    assert d.stats("/q") == b"count=3,bytes=6"
    d.set("/q/a", b"")
    assert d.stats("/q") == b"count=3,bytes=3"
    d.delete("/q/b")
    d.create("/other", b"zzz")                          # not under the root
    assert d.stats("/q") == b"count=2,bytes=2"
    d.delete("/q/a")
    d.delete("/q")
    assert d.stats("/q") == b"count=0,bytes=0"
    d.create("/q", b"1")
    assert d.stats("/q") == b"count=1,bytes=1"


def test_the_stats_node_changes_in_place():
    d = Driver()
    d.create("/q")
    d.setquota("/q")
    node = d.tree.nodes[quota.stat_path("/q")]
    before = node.stat()
    _, events = d.create("/q/a", b"xy")
    assert node.stat()[:5] == before[:5]                  # no new mzxid, mtime, version
    assert [p for _, p, _ in events] == ["/q/a", "/q"]   # and no watch event


def test_removing_the_limits_node_ends_the_quota():
    d = Driver()
    d.create("/q")
    d.setquota("/q")
    d.delete(quota.limit_path("/q"))
    assert not d.tree.quota
    d.create("/q/a", b"x")
    assert d.stats("/q") == b"count=1,bytes=0"


def test_nested_roots_count_in_the_innermost_only():
    d = Driver()
    d.create("/a")
    d.create("/a/b")
    d.setquota("/a/b")
    d.setquota("/a")            # zkCli refuses this; a client can still write it
    assert d.stats("/a") == b"count=2,bytes=0"
    d.create("/a/b/c", b"123")
    assert d.stats("/a/b") == b"count=2,bytes=3"
    assert d.stats("/a") == b"count=2,bytes=0"
    # ZooKeeper's recount on loading a snapshot counts the whole subtree
    copy = parse_snapshot(snapshot_bytes(d.tree, d.tree.last_zxid))
    assert copy.nodes[quota.stat_path("/a")].data == b"count=3,bytes=3"
    assert copy.nodes[quota.stat_path("/a/b")].data == b"count=2,bytes=3"
    assert copy.quota.roots == {"/a", "/a/b"}


def test_a_snapshot_recounts_the_stats():
    d = Driver()
    d.create("/q", b"1")
    d.setquota("/q")
    d.create("/q/a", b"22")
    d.tree.nodes[quota.stat_path("/q")].data = b"count=100,bytes=100"   # out of step
    copy = parse_snapshot(snapshot_bytes(d.tree, d.tree.last_zxid))
    assert copy.quota.roots == {"/q"}
    assert copy.nodes[quota.stat_path("/q")].data == b"count=2,bytes=3"
    # then the log replayed on top goes on counting
    copy.apply(Txn(1, 99, d.zxid + 1, 5, Op.CREATE, ("/q/b", b"333", ACL, 0, 2)), replay=True)
    assert copy.nodes[quota.stat_path("/q")].data == b"count=3,bytes=6"


def test_the_stats_node_keeps_its_extra_keys_and_tolerates_garbage(caplog):
    d = Driver()
    d.create("/q")
    d.setquota("/q")
    d.set(quota.stat_path("/q"), b"bytes=1;zz=4;count=1")
    d.create("/q/a", b"x")
    assert d.stats("/q") == b"count=2,bytes=2=;zz=4"
    d.set(quota.stat_path("/q"), b"count=oops")
    with caplog.at_level(logging.ERROR, "zkpy.datatree"):
        d.create("/q/b", b"x")          # ZooKeeper stops here; zkpy logs and goes on
    assert d.stats("/q") == b"count=oops"
    assert "/zookeeper/quota/q/zookeeper_stats" in caplog.text


def test_a_stats_node_for_the_root_alias_counts_everything():
    # /zookeeper/quota/zookeeper_stats: ZooKeeper recounts from "", the root.
    d = Driver()
    d.create("/x", b"abc")
    d.create("/zookeeper/quota/zookeeper_stats", b"")
    assert d.stats("") == b"count=6,bytes=3"


class PrepDriver(Driver):
    def __init__(self):
        super().__init__()
        self.prep = Prep(self.tree, enforce_quota=True)

    def prep_create(self, path, data=b""):
        return self.prep.prep_op(Op.CREATE, CreateRequest(path, data, ACL, 0), 1, AUTH, {})

    def prep_set(self, path, data, version=-1):
        return self.prep.prep_op(Op.SET_DATA, SetDataRequest(path, data, version), 1, AUTH, {})


def limits(count=-1, bytes_=-1, count_hard=-1, bytes_hard=-1) -> bytes:
    return quota.format_stats({"count": count, "bytes": bytes_, "countHardLimit": count_hard,
                               "byteHardLimit": bytes_hard})


def exceeded(fn, *args):
    with pytest.raises(KeeperError) as e:
        fn(*args)
    return e.value.code


def test_hard_count_limit():
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count_hard=2))
    d.prep_create("/q/a")                   # 2 <= 2
    d.create("/q/a")
    assert exceeded(d.prep_create, "/q/b") == Err.QUOTA_EXCEEDED
    assert d.prep.quota.exceeded == {"q": 1}      # by the path's top name
    d.prep_set("/q/a", b"anything")         # setData adds no node


def test_hard_byte_limit_and_set_data_difference():
    d = PrepDriver()
    d.create("/q", b"12345")
    d.setquota("/q", limits(bytes_hard=8))
    assert exceeded(d.prep_create, "/q/a", b"1234") == Err.QUOTA_EXCEEDED
    d.prep_create("/q/a", b"123")
    d.prep_create("/q/a")                   # no bytes: no byte check
    d.prep_set("/q", b"12345678")
    assert exceeded(d.prep_set, "/q", b"123456789") == Err.QUOTA_EXCEEDED


def test_quota_comes_before_the_version_check_and_after_acl():
    d = PrepDriver()
    d.create("/q", b"1")
    d.setquota("/q", limits(bytes_hard=1))
    assert exceeded(d.prep_set, "/q", b"123", 7) == Err.QUOTA_EXCEEDED
    assert exceeded(d.prep_set, "/q", b"1", 7) == Err.BAD_VERSION
    d.tree.nodes["/q"].acl = d.tree.intern_acl([(1, "world", "anyone")])
    assert exceeded(d.prep_set, "/q", b"123", 7) == Err.NO_AUTH


def test_create_checks_after_node_exists():
    d = PrepDriver()
    d.create("/q")
    d.create("/q/a")
    d.setquota("/q", limits(count_hard=1))
    assert exceeded(d.prep_create, "/q/a") == Err.NODE_EXISTS
    assert exceeded(d.prep_create, "/q/b") == Err.QUOTA_EXCEEDED


def test_soft_limits_only_log(caplog):
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count=1, bytes_=1))
    with caplog.at_level(logging.WARNING, "zkpy.server.quota"):
        d.prep_create("/q/a", b"12")
    assert caplog.messages == [
        "Message:Quota exceeded: /q [current count=2, softCountLimit=1] Value:None",
        "Message:Quota exceeded: /q [current bytes=2, softByteLimit=1] Value:None",
    ]


def test_a_hard_limit_takes_over_the_soft_one():
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count=1, count_hard=5))
    d.prep_create("/q/a")


def test_limits_are_read_from_the_applied_tree():
    # As ZooKeeper: creates still in the pipeline do not count yet.
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count_hard=2))
    overlay = {}
    d.prep.prep_op(Op.CREATE, CreateRequest("/q/a", b"", ACL, 0), 1, AUTH, overlay)
    d.prep.commit_overlay(overlay, 100)
    d.prep_create("/q/b")


def test_set_data_counts_from_the_pending_data():
    d = PrepDriver()
    d.create("/q", b"")
    d.setquota("/q", limits(bytes_hard=4))
    overlay = {}
    d.prep.prep_op(Op.SET_DATA, SetDataRequest("/q", b"1234", -1), 1, AUTH, overlay)
    d.prep.commit_overlay(overlay, 100)
    # ZooKeeper's lastData is the pending data: 8 - 4 bytes more, not 8 - 0
    d.prep_set("/q", b"12345678")
    assert exceeded(d.prep_set, "/q", b"123456789") == Err.QUOTA_EXCEEDED


def test_without_enforce_nothing_is_checked():
    d = Driver()
    prep = Prep(d.tree)
    d.create("/q")
    d.setquota("/q", limits(count_hard=1))
    prep.prep_op(Op.CREATE, CreateRequest("/q/a", b"", ACL, 0), 1, AUTH, {})
    assert prep.quota is None


def test_unreadable_limits_fail_the_request_as_marshalling_error():
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", b"count=nope")
    with pytest.raises(MarshallingError):
        d.prep_create("/q/a")
    # in a multi the whole request fails, not one op
    ops = [(Op.CREATE, CreateRequest("/x", b"", ACL, 0)),
           (Op.CREATE, CreateRequest("/q/a", b"", ACL, 0))]
    with pytest.raises(MarshallingError):
        d.prep.prep_multi(ops, 1, AUTH)


def test_quota_exceeded_in_a_multi_fails_that_op():
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count_hard=1))
    ops = [(Op.CREATE, CreateRequest("/x", b"", ACL, 0)),
           (Op.CREATE, CreateRequest("/q/a", b"", ACL, 0)),
           (Op.DELETE, DeleteRequest("/x", -1))]
    (body,), overlay = d.prep.prep_multi(ops, 1, AUTH)
    assert body == [(Op.ERROR, (0,)), (Op.ERROR, (Err.QUOTA_EXCEEDED,)),
                    (Op.ERROR, (Err.RUNTIME_INCONSISTENCY,))]
    assert overlay == {}


def test_missing_quota_nodes_are_logged_not_fatal(caplog):
    d = PrepDriver()
    d.create("/q")
    d.setquota("/q", limits(count_hard=1))
    d.delete(quota.stat_path("/q"))
    with caplog.at_level(logging.ERROR):
        d.prep_create("/q/a")
        d.create("/q/a")
    assert "Missing node for stat /zookeeper/quota/q/zookeeper_stats" in caplog.text


class TestRateLogger:
    def test_repeats_are_counted(self, caplog):
        now = [0.0]
        rl = RateLogger(logging.getLogger("t"), interval=0.1, clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, "t"):
            rl.log("a")
            rl.log("a")
            rl.log("a")
            now[0] = 0.2
            rl.log("a")          # interval passed: the count is written
            rl.log("b")
        assert caplog.messages == ["Message:a Value:None", "[3 times] Message: a",
                                   "Message:b Value:None"]


def test_checker_counts_refusals():
    counted = {}
    c = QuotaChecker(exceeded_per_namespace=counted)
    assert c.exceeded is counted and counted == {}


def test_limits_nodes_zookeeper_stops_on():
    # ZooKeeper's apply throws on these (and the server stops); zkpy applies
    # them and leaves the quota roots as they are.
    d = Driver()
    d.create("/q")
    d.setquota("/q")
    d.create("/zookeeper/quota/zookeeper_limits", b"count=1")
    d.create("/zookeeper/zookeeper_limits", b"count=1")
    d.delete("/zookeeper/zookeeper_limits")
    d.delete("/zookeeper/quota/zookeeper_limits")
    assert d.tree.quota.roots == {"/q"}
    d.create("/q/a")
    assert d.stats("/q") == b"count=2,bytes=0"
