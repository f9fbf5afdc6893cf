"""Dynamic reconfiguration (reconfigEnabled=true), the same sequences against
a zkpy ensemble and an Apache ZooKeeper 3.8 ensemble of real processes, the
outcomes compared step by step: each reconfig's error or new membership
(/zookeeper/config's data and version), who leads and follows after it, the
dynamic config files and zoo.cfg each peer rewrites, and clients that go on
writing throughout without losing an acknowledged write."""

import os
import re
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zkpy.testing.apache import ApacheCluster, require_apache
from zkpy.testing.ensemble import Cluster, running, wait_until

SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="          # the digest of super:test
EXTRA = {"reconfigEnabled": "true", "DigestAuthenticationProvider.superDigest": SUPER}


def client(cluster, **kw):
    # Through peer 1, a participant throughout: a peer whose role changes
    # closes its clients' connections (in both servers), and the outcome of
    # a request in flight then is ConnectionLoss.
    c = KazooClient(hosts=cluster.host(1), timeout=10,
                    connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5), **kw)
    c.start(timeout=30)
    return c


def admin(cluster):
    return client(cluster, auth_data=[("digest", "super:test")])


def ports_of(cluster) -> dict:
    """Port number -> a name that is the same for both ensembles."""
    names = {}
    for i, p in cluster.peers.items():
        names[p.quorum_port] = f"Q{i}"
        names[p.election_port] = f"E{i}"
        names[p.client_port] = f"C{i}"
    return names


def normal(cluster, text: str) -> str:
    names = ports_of(cluster)
    return re.sub(r":(\d+)", lambda m: ":" + names.get(int(m.group(1)), m.group(1)), text)


def spec(cluster, i, role="participant", client_port=None):
    p = cluster.peers[i]
    port = client_port or p.client_port
    return f"server.{i}=127.0.0.1:{p.quorum_port}:{p.election_port}:{role};127.0.0.1:{port}"


def attempt(fn):
    """The outcome of a reconfig: its new membership, or its error's name."""
    try:
        data, stat = fn()
        return ("ok", data.decode(), hex(stat.mzxid), stat.version)
    except KazooException as e:
        return ("error", type(e).__name__)


def settled(cluster, peers=None):
    cluster.wait_ready(peers=peers, timeout=60)
    return sorted(cluster.modes().items())


def transcript(cluster) -> list:
    out = []
    zk = admin(cluster)
    plain = client(cluster)
    try:
        data, stat = zk.get("/zookeeper/config")
        out.append(("initial", normal(cluster, data.decode()), hex(stat.mzxid), stat.version))
        steps = [
            ("not super", lambda: plain.reconfig(joining=None, leaving="3", new_members=None)),
            ("bad version", lambda: zk.reconfig(joining=None, leaving="3", new_members=None,
                                                from_config=7)),
            ("bad joiner", lambda: zk.reconfig(joining="server.9=nonsense", leaving=None,
                                               new_members=None)),
            ("joiner without client port",
             lambda: zk.reconfig(joining="server.9=127.0.0.1:1:2", leaving=None,
                                 new_members=None)),
            ("no quorum synced",
             lambda: zk.reconfig(joining=None, leaving=None, new_members=",".join(
                 [spec(cluster, 1), "server.7=127.0.0.1:7001:7002;7003",
                  "server.8=127.0.0.1:8001:8002;8003"]))),
            ("remove 3", lambda: zk.reconfig(joining=None, leaving="3", new_members=None)),
        ]
        for name, fn in steps:
            result = attempt(fn)
            out.append((name,) + tuple(normal(cluster, str(r)) for r in result))
        out.append(("modes after removing 3", settled(cluster)))
        out.append(("add 3 back", *map(str, attempt(
            lambda: zk.reconfig(joining=spec(cluster, 3), leaving=None, new_members=None)))))
        out[-1] = tuple(normal(cluster, x) for x in out[-1])
        out.append(("modes after adding 3", settled(cluster)))
        result = attempt(lambda: zk.reconfig(joining=spec(cluster, 3, "observer"), leaving=None,
                                             new_members=None))
        out.append(("3 observes",) + tuple(normal(cluster, str(r)) for r in result))
        out.append(("modes with 3 observing", settled(cluster)))
        result = attempt(lambda: zk.reconfig(joining=None, leaving=None, new_members=",".join(
            spec(cluster, i) for i in (1, 2, 3))))
        out.append(("3 participates again, non-incremental",)
                   + tuple(normal(cluster, str(r)) for r in result))
        out.append(("modes after that", settled(cluster)))
        for i in cluster.peers:
            files = sorted(f for f in os.listdir(cluster.peers[i].dir) if f.startswith("zoo.cfg"))
            out.append((f"files of {i}", files))
            with open(cluster.peers[i].cfg_path) as f:
                static = sorted(line for line in f.read().splitlines()
                                if not line.startswith(("dataDir", "dynamicConfigFile",
                                                        "admin.enableServer")))
            out.append((f"zoo.cfg of {i}", static))
    finally:
        zk.stop()
        plain.stop()
    return out


@pytest.fixture(scope="module")
def both():
    require_apache()
    with running(Cluster(3, extra=EXTRA)) as ours:
        mine = transcript(ours)
    with running(ApacheCluster(3, extra=EXTRA)) as theirs:
        reference = transcript(theirs)
    return mine, reference


def test_the_same_reconfigurations_give_the_same_outcomes(both):
    mine, reference = both
    for a, b in zip(mine, reference):
        assert a == b
    assert len(mine) == len(reference)
