"""The AdminServer and the Prometheus exporter on a 3-peer ensemble of real
processes: the leader's and the followers' figures (election time, proposal
latency, learners, synced followers, what a learner receives), the ensemble
commands (leader, zabstate, voting_view, observers) with the keys ZooKeeper
3.8 answers, and a restore refused on an ensemble member."""

import json
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient

from zkpy.server.config import PROMETHEUS_METRICS_PROVIDER
from zkpy.testing import free_port
from zkpy.testing.ensemble import Cluster, wait_until

from ..integration.test_prometheus import dashboard_names, scrape


def _get(port, path, data=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def ensemble():
    admin = {i: free_port() for i in (1, 2, 3)}
    metrics = {i: free_port() for i in (1, 2, 3)}
    per_peer = {i: {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                    "admin.serverPort": admin[i],
                    "metricsProvider.className": PROMETHEUS_METRICS_PROVIDER,
                    "metricsProvider.httpHost": "127.0.0.1",
                    "metricsProvider.httpPort": metrics[i]} for i in (1, 2, 3)}
    with Cluster(3, per_peer=per_peer) as cluster:
        leader = cluster.wait_ready()
        zk = KazooClient(hosts=cluster.hosts, timeout=30.0)
        zk.start(timeout=30)
        try:
            for i in range(50):
                zk.create(f"/n{i}", b"x" * 50)
        finally:
            zk.stop()
            zk.close()
        cluster.wait_caught_up()
        yield cluster, leader, admin, metrics


def test_leader_figures(ensemble):
    cluster, leader, admin, metrics = ensemble
    _, samples, types = scrape(metrics[leader])
    one = lambda name: next(iter(samples[name].values()))
    assert one("quorum_size") == 3
    assert one("learners") == 2 and one("synced_followers") == 2
    assert one("proposal_count") >= 50 and one("commit_count") >= 50
    assert one("proposal_latency_count") >= 50
    assert one("election_time_count") >= 1
    assert types["proposal_latency"] == "summary"
    # The dashboard's ensemble panels have what they need on a leader.
    for name in dashboard_names():
        assert name in samples, name


def test_follower_figures(ensemble):
    cluster, leader, admin, metrics = ensemble
    follower = next(i for i in (1, 2, 3) if i != leader)
    _, samples, _ = scrape(metrics[follower])
    one = lambda name: next(iter(samples[name].values()))
    assert one("quorum_size") == 3
    assert "learners" not in samples
    assert one("learner_proposal_received_count") >= 50
    assert one("learner_commit_received_count") >= 1
    assert one("follower_sync_time_count") >= 1
    assert one("election_time_count") >= 1


def test_ensemble_commands(ensemble):
    cluster, leader, admin, metrics = ensemble
    for i in (1, 2, 3):
        _, lead = _get(admin[i], "/commands/leader")
        assert list(lead) == ["is_leader", "leader_id", "leader_ip", "command", "error"]
        assert lead["is_leader"] == (i == leader) and lead["leader_id"] == leader
        assert lead["leader_ip"] == "127.0.0.1"
        _, zab = _get(admin[i], "/commands/zabstate")
        assert list(zab) == ["myid", "is_leader", "quorum_address", "election_address",
                             "client_address", "voting", "last_zxid", "zab_epoch",
                             "zab_counter", "zabstate", "command", "error"]
        assert zab["myid"] == i and zab["voting"] is True and zab["zabstate"] == "broadcast"
        assert zab["quorum_address"] == f"127.0.0.1:{cluster.peers[i].quorum_port}"
        _, view = _get(admin[i], "/commands/voting_view")
        assert sorted(view["current_config"]) == ["1", "2", "3"]
        assert set(view["current_config"]["1"]) == {"server_addresses", "election_addresses",
                                                     "client_address", "learner_type"}
        _, obs = _get(admin[i], "/commands/observers")
        assert obs["synced_observers"] == 0 and obs["observers"] == []
    _, stats = _get(admin[leader], "/commands/server_stats")
    assert stats["server_stats"]["server_state"] == "leader"
    assert set(stats["proposal_stats"]) == {"last_buffer_size", "min_buffer_size",
                                            "max_buffer_size"}
    _, monitor = _get(admin[leader], "/commands/monitor")
    assert monitor["peer_state"] == "leading - broadcast"


def test_restore_is_refused_on_an_ensemble_member(ensemble):
    cluster, leader, admin, metrics = ensemble
    status, answer = _get(admin[leader], "/commands/restore", data=b"x",
                          headers={"Authorization": "ip"})
    assert status == 501 and "ensemble" in answer["error"]
    wait_until(lambda: cluster.peers[leader].mode() == "leader", 5, what="still leading")
