"""The Prometheus exporter (metricsProvider.className=...PrometheusMetricsProvider):
scrapes parsed with prometheus-client's parser; the names, types and labels
ZooKeeper 3.8's exporter writes; every metric the Grafana dashboard in docs/
uses is there and moves under load."""

import json
import re
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from zkpy.server.config import PROMETHEUS_METRICS_PROVIDER
from zkpy.testing import ZkpyServer, free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-zookeeper.json"

# What a standalone server does not have: ZooKeeper registers these on an
# ensemble member (quorum_size) or a leader only.
ENSEMBLE_ONLY = {"quorum_size", "learners", "synced_followers", "synced_observers",
                 "pending_syncs"}


def dashboard_names() -> set:
    dash = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            names.update(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", target["expr"]))
    return names


def scrape(port) -> tuple:
    """(raw text, {sample name: {labels tuple: value}}, {family name: type})."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
            if family.type == "counter" and s.name == family.name + "_total":
                # The parser names every counter sample the OpenMetrics way;
                # on the wire ZooKeeper's carry the family's name.
                samples.setdefault(family.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return text, samples, types


def value(samples, name, **labels):
    return samples[name][tuple(sorted(labels.items()))]


def prometheus_config(port, **more):
    return {"metricsProvider.className": PROMETHEUS_METRICS_PROVIDER,
            "metricsProvider.httpHost": "127.0.0.1", "metricsProvider.httpPort": port, **more}


def load(hosts, n=200):
    zk = KazooClient(hosts=hosts, timeout=30.0)
    zk.start(timeout=15)
    try:
        zk.ensure_path("/load")
        for i in range(n):
            zk.create(f"/load/n{i}", b"x" * 100)
            zk.get(f"/load/n{i}", watch=lambda e: None)
            zk.set(f"/load/n{i}", b"y" * 100)
            zk.get_children("/load")
    finally:
        zk.stop()
        zk.close()


@pytest.fixture(scope="module")
def scrapes():
    port = free_port()
    cfg = prometheus_config(port, forceSync="yes", snapCount=100)
    with ZkpyServer(config=cfg) as srv:
        before = scrape(port)
        load(srv.hosts)
        zk = KazooClient(hosts=srv.hosts, timeout=30.0)
        zk.start(timeout=15)
        try:
            after = scrape(port)
            mntr = srv.four_letter("mntr")
        finally:
            zk.stop()
            zk.close()
    return before, after, mntr


def test_zookeeper_types_and_labels(scrapes):
    _, (text, samples, types), _ = scrapes
    for gauge in ("znode_count", "watch_count", "ephemerals_count", "num_alive_connections",
                  "outstanding_requests", "packets_received", "avg_latency", "uptime"):
        assert types[gauge] == "gauge", gauge
    # ADVANCED summaries: quantiles 0.5, 0.9, 0.99; BASIC ones 0.5 only.
    for name, quantiles in (("readlatency", ("0.5", "0.9", "0.99")),
                            ("updatelatency", ("0.5", "0.9", "0.99")),
                            ("proposal_latency", ("0.5", "0.9", "0.99")),
                            ("fsynctime", ("0.5",)), ("election_time", ("0.5",))):
        assert types[name] == "summary"
        assert sorted(dict(k)["quantile"] for k in samples[name]) == sorted(quantiles)
        assert f"{name}_count" in samples and f"{name}_sum" in samples
    # Counters are written as ZooKeeper's simpleclient 0.9 writes them: the
    # sample named as the metric, no _total.
    assert types["commit_count"] == "counter"
    assert re.search(r"^# TYPE commit_count counter\ncommit_count \d", text, re.M)
    assert re.search(r'^readlatency\{quantile="0.5",\} ', text, re.M)
    # exportJvmInfo: the process metrics.
    assert "process_resident_memory_bytes" in samples and "process_cpu_seconds_total" in samples


def test_dashboard_metrics_present_and_moving(scrapes):
    (_, before, _), (_, after, _), _ = scrapes
    names = dashboard_names()
    assert {"znode_count", "watch_count", "ephemerals_count", "num_alive_connections",
            "outstanding_requests", "readlatency", "updatelatency", "fsynctime_sum",
            "proposal_latency", "election_time_sum", "quorum_size", "learners",
            "synced_followers"} <= names
    for name in names - ENSEMBLE_ONLY:
        assert name in after, name
    for name in ENSEMBLE_ONLY:
        assert name not in after, name
    moving = ("znode_count", "approximate_data_size", "readlatency_count", "updatelatency_count",
              "packets_received", "packets_sent", "fsynctime_count", "snapshottime_count",
              "process_cpu_seconds_total", "uptime")
    for name in moving:
        assert name in names or name in ("packets_sent",), name
        assert sum(after[name].values()) > sum(before[name].values()), name
    assert value(after, "num_alive_connections") == 1
    assert value(after, "znode_count") == 5 + 1 + 200
    assert value(after, "readlatency", quantile="0.99") >= value(after, "readlatency",
                                                                 quantile="0.5")


def test_mntr_prints_the_providers_samples(scrapes):
    """With the Prometheus provider, ZooKeeper's mntr prints the provider's
    dump: every sample by its Prometheus name and labels."""
    _, _, mntr = scrapes
    keys = dict(line.split("\t", 1) for line in mntr.splitlines())
    assert keys["zk_server_state"] == "standalone"
    assert 'zk_readlatency{quantile="0.5"}' in keys
    assert float(keys["zk_readlatency_count"]) > 0
    assert float(keys["zk_znode_count"]) == 206.0


def test_export_jvm_info_false():
    port = free_port()
    with ZkpyServer(config=prometheus_config(port, **{"metricsProvider.exportJvmInfo": "false"})):
        _, samples, _ = scrape(port)
    assert "znode_count" in samples
    assert not [n for n in samples if n.startswith(("process_", "python_"))]


def test_no_exporter_by_default():
    """DefaultMetricsProvider (the default): no /metrics, mntr's own keys."""
    with ZkpyServer() as srv:
        assert srv.runner.endpoints.prometheus is None
        mntr = srv.four_letter("mntr")
    assert "zk_cnt_readlatency\t" in mntr and "{" not in mntr
