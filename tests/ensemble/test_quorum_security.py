"""sslQuorum (and quorum SASL) on a 3-peer zkpy ensemble of real processes.

Each peer has its own key store signed by the ensemble's CA, with its
address (127.0.0.1) in the certificate, as ZooKeeper's hostname
verification wants.  The ensemble forms and replicates over TLS; a peer
whose certificate comes from another CA, or whose certificate does not name
its address, or whose quorum SASL password is wrong, is refused: the other
two form a quorum without it, it never serves, and the refusal is logged."""

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support import pki
from zkpy.testing.ensemble import Cluster, wait_until


def _append(cluster, pid, keys: dict):
    with open(cluster.peers[pid].cfg_path, "a") as f:
        f.write("".join(f"{k}={v}\n" for k, v in keys.items()))


def _tls_keys(d: Path, pid: int, ca, trust_ca, *, ips=("127.0.0.1",)) -> dict:
    issued = ca.issue(f"zk{pid}", ips=ips, dns=())
    ks = pki.write_pem_key_store(d / f"zk{pid}.pem", issued, ca)
    ts = pki.write_pem_trust_store(d / f"trust{pid}.pem", trust_ca)
    return {"ssl.quorum.keyStore.location": ks, "ssl.quorum.trustStore.location": ts}


def _client(cluster, pid):
    c = KazooClient(hosts=cluster.host(pid), timeout=6)
    c.start(timeout=30)
    return c


def _check_two_serve_third_refused(cluster, bad: int, log_words: str):
    good = [i for i in cluster.peers if i != bad]
    wait_until(lambda: all(cluster.peers[i].mode() in ("leader", "follower") for i in good),
               timeout=60, what="the two good peers form a quorum")
    a, b = (_client(cluster, i) for i in good)
    try:
        a.create("/over-tls", b"replicated")
        b.sync("/over-tls")
        assert b.get("/over-tls")[0] == b"replicated"
    finally:
        a.stop()
        b.stop()
    assert cluster.peers[bad].mode() not in ("leader", "follower")
    logs = "".join(cluster.peers[i].log_text() for i in cluster.peers)
    assert log_words in logs


def test_ensemble_over_tls_replicates(tmp_path):
    ca = pki.CA()
    cluster = Cluster(3, extra={"sslQuorum": "true"})
    for pid in cluster.peers:
        _append(cluster, pid, _tls_keys(tmp_path, pid, ca, ca))
    with cluster:
        cluster.wait_ready(timeout=60)
        leader = cluster.leader()
        follower = cluster.followers()[0]
        a, b = _client(cluster, leader), _client(cluster, follower)
        try:
            a.create("/tls", b"x")
            b.sync("/tls")
            assert b.get("/tls")[0] == b"x"
        finally:
            a.stop()
            b.stop()


@pytest.mark.parametrize("bad", [1, 3])
def test_untrusted_peer_is_refused(tmp_path, bad):
    # bad=1: the others dial it (it is the smallest id); bad=3: it dials them.
    ca, rogue = pki.CA(), pki.CA("rogue CA")
    cluster = Cluster(3, extra={"sslQuorum": "true"})
    for pid in cluster.peers:
        _append(cluster, pid, _tls_keys(tmp_path, pid, rogue if pid == bad else ca, ca))
    with cluster:
        _check_two_serve_third_refused(cluster, bad, "quorum TLS with 127.0.0.1")


def test_peer_whose_certificate_names_another_address_is_refused(tmp_path):
    ca = pki.CA()
    cluster = Cluster(3, extra={"sslQuorum": "true"})
    for pid in cluster.peers:
        ips = ("127.0.0.9",) if pid == 2 else ("127.0.0.1",)
        _append(cluster, pid, _tls_keys(tmp_path, pid, ca, ca, ips=ips))
    with cluster:
        _check_two_serve_third_refused(cluster, 2, "doesn't match")
