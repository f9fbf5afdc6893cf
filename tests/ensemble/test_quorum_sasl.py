"""Quorum SASL (quorum.auth.*, DIGEST-MD5) on a 3-peer ensemble of real
processes, each peer with its own JAAS file holding the QuorumServer and
QuorumLearner sections, as a ZooKeeper ensemble is set up.

With SASL required the ensemble forms and replicates; a peer whose quorum
password is wrong, or that does not authenticate, is refused (the other two
form a quorum without it, it never serves, and the refusal is logged);
with enableSasl but nothing required, a peer without any quorum SASL
configuration still joins; a JAAS section that is not there stops the
server with one line naming the key (exit status 2).

The scenarios that decide who may join run on an Apache ZooKeeper 3.8
ensemble too, given the same keys and JAAS files (for Apache the JAAS file
is the java.security.auth.login.config JVM property): the same peers join,
the same are refused."""

import os
import subprocess
import sys

import pytest
from kazoo.client import KazooClient

from tests.support import pki
from zkpy.testing.apache import ApacheCluster, require_apache
from zkpy.testing.ensemble import Cluster, wait_until

JAAS_KEY = "java.security.auth.login.config"
REQUIRED = {
    "quorum.auth.enableSasl": "true",
    "quorum.auth.learnerRequireSasl": "true",
    "quorum.auth.serverRequireSasl": "true",
}
KINDS = ["zkpy", "apache"]


def jaas_file(path, password="quorumsecret", *, server="QuorumServer", learner="QuorumLearner"):
    path.write_text(f"""
{server} {{
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_zk="{password}";
}};
{learner} {{
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="zk"
    password="{password}";
}};
""")
    return str(path)


def ensemble(kind, *, extra=None, per_peer=None):
    """A 3-peer ensemble of zkpy or of Apache ZooKeeper with these keys."""
    if kind == "zkpy":
        return Cluster(3, extra=extra, per_peer=per_peer)
    require_apache()

    def split(keys):
        keys = dict(keys)
        jaas = keys.pop(JAAS_KEY, None)
        return keys, [f"-D{JAAS_KEY}={jaas}"] if jaas else []

    extra, jvm = split(extra or {})
    cfg, jvms = {}, {}
    for pid, keys in (per_peer or {}).items():
        cfg[pid], jvms[pid] = split(keys)
    return ApacheCluster(3, extra=extra, per_peer=cfg, jvm_args=jvm, per_peer_jvm_args=jvms)


def _client(cluster, pid):
    c = KazooClient(hosts=cluster.host(pid), timeout=6)
    c.start(timeout=30)
    return c


def _replicates(cluster, writer, reader, path):
    a, b = _client(cluster, writer), _client(cluster, reader)
    try:
        a.create(path, b"replicated")
        b.sync(path)
        assert b.get(path)[0] == b"replicated"
    finally:
        a.stop()
        b.stop()


def _all_logs(cluster) -> str:
    return "".join(cluster.peers[i].log_text() for i in cluster.peers)


def _serving(cluster, pids, timeout=60):
    wait_until(lambda: all(cluster.peers[i].mode() in ("leader", "follower") for i in pids),
               timeout=timeout, what=f"peers {pids} to serve")


def _check_refused(cluster, kind, bad: int, *log_words: str):
    good = [i for i in cluster.peers if i != bad]
    _serving(cluster, good)
    _replicates(cluster, good[0], good[1], "/without-the-refused-peer")
    assert cluster.peers[bad].mode() not in ("leader", "follower")
    assert cluster.peers[bad].running
    if kind != "zkpy":
        return
    logs = _all_logs(cluster)
    for words in log_words:
        assert words in logs, words
    # Refused again and again (it keeps dialling), but warned about once
    # per address at each end.
    for pid in cluster.peers:
        warnings = [line for line in cluster.peers[pid].log_text().splitlines()
                    if "WARNING" in line and "quorum SASL: link with" in line]
        assert len(warnings) <= 2, warnings


@pytest.mark.parametrize("kind", KINDS)
def test_ensemble_with_quorum_sasl_required_replicates(tmp_path, kind):
    jaas = jaas_file(tmp_path / "jaas.conf")
    with ensemble(kind, extra={**REQUIRED, JAAS_KEY: jaas}) as cluster:
        _serving(cluster, [1, 2, 3])
        leader = cluster.leader()
        follower = cluster.followers()[0]
        _replicates(cluster, leader, follower, "/sasl")
        if kind == "zkpy":
            # Each peer checked each other peer: three links, both directions.
            logs = _all_logs(cluster)
            assert logs.count("authenticated as zk") >= 6, logs[-3000:]
            assert "refused" not in logs


@pytest.mark.parametrize("kind,bad", [("zkpy", 1), ("zkpy", 3), ("apache", 1), ("apache", 3)])
def test_peer_with_a_wrong_quorum_password_is_refused(tmp_path, kind, bad):
    # bad=1: the others dial it (the smallest id); bad=3: it dials them.
    per_peer = {i: {JAAS_KEY: jaas_file(
        tmp_path / f"jaas{i}.conf", "not-the-password" if i == bad else "quorumsecret")}
        for i in (1, 2, 3)}
    with ensemble(kind, extra=REQUIRED, per_peer=per_peer) as cluster:
        _check_refused(cluster, kind, bad, "quorum SASL: link with peer",
                       "failed to authenticate using SASL")


@pytest.mark.parametrize("kind", KINDS)
def test_peer_that_does_not_authenticate_is_refused_where_sasl_is_required(tmp_path, kind):
    # Peer 2 has quorum SASL enabled but does not authenticate
    # (learnerRequireSasl=false): peers that require it refuse it.
    jaas = jaas_file(tmp_path / "jaas.conf")
    per_peer = {2: {"quorum.auth.learnerRequireSasl": "false",
                    "quorum.auth.serverRequireSasl": "false"}}
    with ensemble(kind, extra={**REQUIRED, JAAS_KEY: jaas}, per_peer=per_peer) as cluster:
        _check_refused(cluster, kind, 2, "learner not trying to authenticate and "
                                         "authentication is required")


@pytest.mark.parametrize("kind", KINDS)
def test_enable_sasl_without_require_accepts_a_peer_without_credentials(tmp_path, kind):
    # Peers 1 and 2 have quorum SASL enabled, peer 3 has no quorum SASL at
    # all (no JAAS file): nothing requires it, so it joins.
    jaas = jaas_file(tmp_path / "jaas.conf")
    enabled = {"quorum.auth.enableSasl": "true", JAAS_KEY: jaas}
    with ensemble(kind, per_peer={1: enabled, 2: enabled}) as cluster:
        _serving(cluster, [1, 2, 3])
        _replicates(cluster, 1, 3, "/a")
        _replicates(cluster, 3, 2, "/b")
        if kind == "zkpy":
            assert "refused" not in _all_logs(cluster)


@pytest.mark.parametrize("kind", KINDS)
def test_learners_authenticate_to_peers_that_do_not_require_it(tmp_path, kind):
    # The second step of turning it on (learnerRequireSasl, peer by peer):
    # peers 1 and 2 authenticate, peer 3 only has it enabled and checks them.
    jaas = jaas_file(tmp_path / "jaas.conf")
    learner = {"quorum.auth.learnerRequireSasl": "true"}
    with ensemble(kind, extra={"quorum.auth.enableSasl": "true", JAAS_KEY: jaas},
                  per_peer={1: learner, 2: learner}) as cluster:
        _serving(cluster, [1, 2, 3])
        _replicates(cluster, 3, 1, "/d")
        if kind == "zkpy":
            assert "refused" not in _all_logs(cluster)
            # 1 and 2 authenticated to 3 (and to each other); 3 to nobody.
            assert cluster.peers[3].log_text().count("authenticated as zk") >= 2
            assert "peer 3 at 127.0.0.1" not in "".join(
                line for i in (1, 2) for line in cluster.peers[i].log_text().splitlines()
                if "authenticated as" in line)


def test_enable_sasl_only_nobody_authenticates(tmp_path):
    # The first step of turning it on: enableSasl everywhere, nothing required.
    jaas = jaas_file(tmp_path / "jaas.conf")
    with Cluster(3, extra={"quorum.auth.enableSasl": "true", JAAS_KEY: jaas}) as cluster:
        cluster.wait_ready(timeout=60)
        _replicates(cluster, cluster.leader(), cluster.followers()[0], "/c")
        assert "authenticated as" not in _all_logs(cluster)


# --- Kerberos between peers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    """A KDC on loopback; the peers (child processes) find it through
    KRB5_CONFIG, Apache ZooKeeper's through java.security.krb5.conf."""
    from tests.support.kdc import KDC

    directory = tmp_path_factory.mktemp("kdc")
    k = KDC(directory)
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(k.krb5_conf)
    k.keytabs = {p: k.add_principal(p, directory / f"{p.replace('/', '_')}.keytab")
                 for p in ("zkquorum/127.0.0.1", "zkquorum/elsewhere.example")}
    yield k
    k.stop()
    if saved is None:
        os.environ.pop("KRB5_CONFIG", None)
    else:
        os.environ["KRB5_CONFIG"] = saved


def kerberos_jaas(path, kdc, principal):
    """Both sections log in as the peer's principal (its keytab), as a peer
    of a Kerberos ensemble usually does."""
    from tests.support.kdc import REALM

    module = (f'com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true '
              f'keyTab="{kdc.keytabs[principal]}" storeKey=true useTicketCache=false '
              f'principal="{principal}@{REALM}";')
    path.write_text(f"QuorumServer {{ {module} }};\nQuorumLearner {{ {module} }};\n")
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_kerberos_between_peers(kdc, tmp_path, kind):
    # Peers 1 and 2 are zkquorum/127.0.0.1, the host of every server.N line;
    # peer 3 logs in as zkquorum/elsewhere.example: a valid principal of the
    # realm, but not of a host of the ensemble, so it is refused.
    per_peer = {i: {JAAS_KEY: kerberos_jaas(
        tmp_path / f"jaas{i}.conf", kdc,
        "zkquorum/elsewhere.example" if i == 3 else "zkquorum/127.0.0.1")} for i in (1, 2, 3)}
    extra = {**REQUIRED, "quorum.auth.kerberos.servicePrincipal": "zkquorum/_HOST"}
    cluster = ensemble(kind, extra=extra, per_peer=per_peer)
    if kind == "apache":
        cluster.jvm_args.append(f"-Djava.security.krb5.conf={kdc.krb5_conf}")
    with cluster:
        _check_refused(cluster, kind, 3, "elsewhere.example is not authorized to connect")
        if kind == "zkpy":
            from tests.support.kdc import REALM

            assert f"authenticated as zkquorum/127.0.0.1@{REALM}" in _all_logs(cluster)


def test_quorum_sasl_inside_quorum_tls(tmp_path):
    ca = pki.CA()
    keys = {}
    for pid in (1, 2, 3):
        issued = ca.issue(f"zk{pid}", ips=("127.0.0.1",), dns=())
        keys[pid] = {
            "ssl.quorum.keyStore.location": pki.write_pem_key_store(
                tmp_path / f"zk{pid}.pem", issued, ca),
            "ssl.quorum.trustStore.location": pki.write_pem_trust_store(
                tmp_path / f"trust{pid}.pem", ca),
            JAAS_KEY: jaas_file(
                tmp_path / f"jaas{pid}.conf", "wrong" if pid == 3 else "quorumsecret"),
        }
    with Cluster(3, extra={**REQUIRED, "sslQuorum": "true"}, per_peer=keys) as cluster:
        _check_refused(cluster, "zkpy", 3, "failed to authenticate using SASL")
        assert "authenticated as zk" in cluster.peers[1].log_text()


@pytest.mark.parametrize("key,value", [
    ("quorum.auth.server.saslLoginContext", "NoSuchSection"),
    ("quorum.auth.learner.saslLoginContext", "NoSuchSection"),
])
def test_a_missing_jaas_section_stops_the_server(tmp_path, key, value):
    jaas = jaas_file(tmp_path / "jaas.conf")
    cluster = Cluster(3, extra={**REQUIRED, JAAS_KEY: jaas,
                                key: value})
    try:
        peer = cluster.peers[1]
        proc = subprocess.run([sys.executable, "-m", "zkpy.server.main", peer.cfg_path],
                              capture_output=True, text=True, timeout=60, cwd=peer.dir)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert key in lines[0] and value in lines[0]
    finally:
        cluster.close()
