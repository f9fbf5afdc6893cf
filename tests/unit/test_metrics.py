"""ServerMetrics: ZooKeeper 3.8's catalogue, summaries and their quantiles,
mntr's key shapes, the Prometheus exposition."""

import random

from prometheus_client.parser import text_string_to_metric_families

from zkpy.protocol.opcodes import WRITE_OPS, Op, Xid
from zkpy.server import replies
from zkpy.server.connstats import ConnectionStats
from zkpy.server.metrics import (
    ADVANCED, BASIC, CATALOGUE, COUNTER, Summary, ServerMetrics, WINDOW_S,
)
from zkpy.server.request import Request
from zkpy.server.stats import LatencyStats, ServerStats


def test_catalogue_is_zookeepers():
    names = [n for n, _ in CATALOGUE]
    assert len(names) == len(set(names))
    kinds = dict(CATALOGUE)
    assert kinds["readlatency"] == kinds["updatelatency"] == kinds["proposal_latency"] == ADVANCED
    assert kinds["fsynctime"] == kinds["election_time"] == kinds["snapshottime"] == BASIC
    assert kinds["proposal_count"] == kinds["looking_count"] == COUNTER


def test_summary_figures_and_mntr_keys():
    s = Summary(advanced=True)
    for v in range(1, 101):
        s.add(v)
    out = []
    s.mntr("readlatency", out)
    d = dict(out)
    assert list(d) == ["avg_readlatency", "min_readlatency", "max_readlatency",
                       "cnt_readlatency", "sum_readlatency", "p50_readlatency",
                       "p95_readlatency", "p99_readlatency", "p999_readlatency"]
    assert (d["min_readlatency"], d["max_readlatency"], d["cnt_readlatency"]) == (1, 100, 100)
    assert d["avg_readlatency"] == 50.5 and d["sum_readlatency"] == 5050
    assert (d["p50_readlatency"], d["p95_readlatency"], d["p99_readlatency"]) == (50, 95, 99)
    basic = []
    Summary().mntr("fsynctime", basic)
    assert [k for k, _ in basic] == ["avg_fsynctime", "min_fsynctime", "max_fsynctime",
                                     "cnt_fsynctime", "sum_fsynctime"]
    assert dict(basic)["avg_fsynctime"] == 0.0


def test_average_rounds_as_java():
    s = Summary()
    for v in (0, 0, 1):
        s.add(v)
    assert s.avg == 0.3333


def test_large_values_keep_their_quantiles_close():
    s = Summary(advanced=True)
    for v in range(1000, 200001, 1000):
        s.add(v)
    p50, p99 = s.quantiles((0.5, 0.99))
    assert abs(p50 - 100000) / 100000 < 0.04
    assert abs(p99 - 198000) / 198000 < 0.04
    assert s.quantiles((1.0,)) == [200000.0]


def test_add_value_rounds_and_drops_negative():
    s = Summary()
    s.add_value(2.6)
    s.add_value(-5)
    assert (s.count, s.total) == (1, 3)


def test_window_quantiles_forget_old_samples():
    s = Summary(advanced=True)
    for _ in range(100):
        s.add(500)
    t0 = 1000.0
    assert s.window_quantiles((0.5,), now=t0) == [500.0]
    # 12 minutes later, only what came since counts.
    for step in range(1, 7):
        s.window_quantiles((0.5,), now=t0 + step * WINDOW_S / 5)
    for _ in range(10):
        s.add(7)
    assert s.window_quantiles((0.5,), now=t0 + 6 * WINDOW_S / 5 + 1) == [7.0]
    assert s.quantiles((0.5,)) == [500.0]     # mntr's: since the last reset


def test_reset_and_counters():
    m = ServerMetrics()
    m.count("looking_count")
    m.summary("readlatency").add(3)
    m.count_in_set("quota_exceeded_error_per_namespace", "app")
    values = dict(m.mntr_values())
    assert values["looking_count"] == 1 and values["cnt_readlatency"] == 1
    assert values["app_quota_exceeded_error_per_namespace"] == 1
    m.reset()
    values = dict(m.mntr_values())
    assert values["looking_count"] == 0 and values["cnt_readlatency"] == 0
    assert "app_quota_exceeded_error_per_namespace" not in values


def test_exposition_parses():
    from zkpy.server import prometheus

    m = ServerMetrics()
    m.summary("readlatency").add(4)
    m.count("proposal_count", 3)
    registry = prometheus.CollectorRegistry()

    class Only:
        def collect(self):
            c = prometheus.Metric("proposal_count", "proposal_count", "counter")
            c.add_sample("proposal_count", {}, 3.0)
            yield c
            s = prometheus.Metric("readlatency", "readlatency", "summary")
            prometheus._summary_samples(s, "readlatency", m.summary("readlatency"),
                                        (0.5, 0.9, 0.99), {})
            yield s
    registry.register(Only())
    text = prometheus.exposition(registry)
    assert "# TYPE proposal_count counter\nproposal_count 3.0\n" in text
    assert 'readlatency{quantile="0.99",} 4.0\n' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["readlatency"].type == "summary"
    assert families["proposal_count"].type == "counter"


def test_quota_gauge_sets():
    from zkpy.datatree.tree import DataTree
    from zkpy.datatree.txn import Txn
    from zkpy.protocol.opcodes import Op
    from zkpy.server.quotametrics import quota_gauge_sets

    tree = DataTree()
    zxid = 0

    def create(path, data):
        nonlocal zxid
        zxid += 1
        tree.apply(Txn(0, 0, zxid, 0, Op.CREATE, (path, data, (), False, 0)))
    create("/zookeeper/quota/app", b"")
    create("/zookeeper/quota/app/zookeeper_limits", b"count=10,bytes=-1=;byteHardLimit=500")
    create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")
    create("/app", b"12345")
    sets = quota_gauge_sets(tree)
    assert sets["quota_count_limit_per_namespace"] == {"app": 10}
    assert sets["quota_bytes_limit_per_namespace"] == {"app": 500}   # the hard limit wins
    assert sets["quota_count_usage_per_namespace"] == {"app": 1}
    assert sets["quota_bytes_usage_per_namespace"] == {"app": 5}


def _answered(rnd, n):
    """n answered requests: reads and writes, arrival times in a few runs,
    replies of various sizes, now and then a ping (xid -2)."""
    out = []
    received = 1000
    for i in range(n):
        if rnd.random() < 0.3:
            received = 1000 + rnd.randrange(6)
        kind = rnd.random()
        if kind < 0.1:
            req = Request(None, Xid.PING, Op.PING, None, received)
            req.reply = replies.header_only(Xid.PING, 50 + i, 0)
        else:
            op = Op.SET_DATA if kind < 0.5 else Op.GET_DATA
            req = Request(None, i + 1, op, None, received)
            req.reply = replies.with_body(i + 1, 50 + i, bytes(rnd.randrange(200)))
        out.append(req)
    return out


def test_a_batch_of_replies_ends_every_figure_as_replies_taken_one_by_one():
    """ServerStats.replied takes a connection's replies a write at a time,
    adding runs of equal latencies at once; ZooKeeper takes them one by one.
    Every figure must come out the same."""
    rnd = random.Random(5)
    stats, conn = ServerStats(), ConnectionStats()
    read, update, per_conn = Summary(True), Summary(True), LatencyStats()
    sent = size_total = 0
    smallest = largest = -1
    for batch in range(40):
        now = 1010 + batch
        answered = _answered(rnd, rnd.randrange(1, 30))
        stats.replied(conn, answered, now)
        for req in answered:   # the reference: one reply at a time
            latency = now - req.received
            (update if req.op in WRITE_OPS else read).add(latency)
            per_conn.add(latency)
            size = len(req.reply) - 4
            sent += 1
            size_total += size
            largest = max(largest, size)
            smallest = size if smallest < 0 else min(smallest, size)
        last = answered[-1]
        assert conn.last_op == last.op
        assert conn.last_latency == now - last.received
        assert conn.last_response == now
        assert conn.last_zxid == int.from_bytes(last.reply[8:16], "big", signed=True)
        cxids = [r.xid for r in answered if r.xid >= 0]   # not a ping's
        if cxids:
            assert conn.last_cxid == cxids[-1]
        assert stats.last_response_size == len(last.reply) - 4
    for got, want in ((stats.read_latency, read), (stats.update_latency, update)):
        assert (got.count, got.total, got.min, got.max, got.hist) == \
            (want.count, want.total, want.min, want.max, want.hist)
    lat = conn.latency
    assert (lat.count, lat.total, lat.min, lat.max) == \
        (per_conn.count, per_conn.total, per_conn.min, per_conn.max)
    assert stats.packets_sent == conn.packets_sent == sent
    assert stats.response_bytes == size_total
    assert (stats.min_response_size, stats.max_response_size) == (smallest, largest)
