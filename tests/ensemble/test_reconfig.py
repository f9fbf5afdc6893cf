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
from kazoo.exceptions import ConnectionLoss, KazooException
from kazoo.retry import KazooRetry

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


def attempt(fn, zk=None):
    """The outcome of a reconfig: its new membership, or its error's name.

    A reconfig that changes the leader of the follower the client talks to
    makes that follower look for it: Apache ZooKeeper's closes the client's
    connection at once (ConnectionLoss, whether or not the reconfig went
    through), zkpy's answers first (docs/compatibility.md).  With zk given,
    ConnectionLoss is followed by reading /zookeeper/config, so that both
    show the membership the reconfig left."""
    try:
        data, stat = fn()
    except ConnectionLoss:
        if zk is None:
            return ("error", "ConnectionLoss")
        data, stat = KazooRetry(max_tries=-1, max_delay=0.5, deadline=60)(
            zk.get, "/zookeeper/config")
    except KazooException as e:
        return ("error", type(e).__name__)
    return ("ok", data.decode(), hex(stat.mzxid), stat.version)


def settled(cluster, observers=(), initial=None):
    """The peers' modes once they have taken the new membership: the
    observers observe, every other peer leads or follows.  initial: who led
    at first; once another leads, which voter took over is a race in both
    servers (the first of the new voters to ack the reconfig that made the
    leader leave)."""
    def ready():
        modes = cluster.modes()
        return all((m == "observer") == (i in observers) and m in ("leader", "follower",
                                                                   "observer")
                   for i, m in modes.items()) and cluster.leader() is not None
    wait_until(ready, 60, what=f"modes to settle (now {cluster.modes()})")
    cluster.wait_ready(timeout=60)
    modes = cluster.modes()
    leader = cluster.leader()
    if leader == initial:
        return sorted(modes.items())
    # Who leads is a race: only that one peer leads, a voter, and every
    # other peer follows or observes as its place in the membership says.
    c = KazooClient(hosts=cluster.host(leader), timeout=10)
    c.start(timeout=30)
    try:
        data, _ = c.get("/zookeeper/config")
    finally:
        c.stop()
    voters = {int(line[len("server."):line.index("=")]) for line in data.decode().splitlines()
              if line.startswith("server.") and ":observer" not in line}
    return [("a voter leads", leader in voters)] + sorted(
        (i, "leads or follows" if m in ("leader", "follower") else m) for i, m in modes.items())


def transcript(cluster) -> list:
    out = []
    zk = admin(cluster)
    plain = client(cluster)
    try:
        initial = cluster.leader()
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
            result = attempt(fn, zk)
            out.append((name,) + tuple(normal(cluster, str(r)) for r in result))
        out.append(("modes after removing 3", settled(cluster, initial=initial)))
        later = [
            ("add 3 back", lambda: zk.reconfig(joining=spec(cluster, 3), leaving=None,
                                               new_members=None), (), "modes after adding 3"),
            ("3 observes", lambda: zk.reconfig(joining=spec(cluster, 3, "observer"),
                                               leaving=None, new_members=None),
             {3}, "modes with 3 observing"),
            ("3 participates again, non-incremental",
             lambda: zk.reconfig(joining=None, leaving=None, new_members=",".join(
                 spec(cluster, i) for i in cluster.peers)), (), "modes after that"),
        ]
        for name, fn, observers, label in later:
            result = attempt(fn, zk)
            out.append((name,) + tuple(normal(cluster, str(r)) for r in result))
            out.append((label, settled(cluster, observers, initial=initial)))
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


def start_in_order(cluster):
    """A bare quorum of the lowest ids first, so that the highest of them
    leads (the larger id wins between equal logs) in both ensembles; then
    the others join it."""
    first = list(cluster.peers)[:len(cluster.peers) // 2 + 1]
    for i in first:
        cluster.restart(i)
    assert cluster.wait_ready(peers=first) == first[-1]
    for i in cluster.peers:
        if i not in first:
            cluster.restart(i)
    cluster.wait_ready()


def run_transcript(cluster) -> list:
    """The client talks to peer 1; in three peers 2 leads and 3 follows, in
    five 3 leads: removing it hands over."""
    try:
        start_in_order(cluster)
        return transcript(cluster)
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()


@pytest.fixture(scope="module", params=[3, 5], ids=["3 peers", "5 peers"])
def both(request):
    require_apache()
    n = request.param
    return run_transcript(Cluster(n, extra=EXTRA)), run_transcript(ApacheCluster(n, extra=EXTRA))


def test_the_same_reconfigurations_give_the_same_outcomes(both):
    mine, reference = both
    for a, b in zip(mine, reference):
        assert a == b
    assert len(mine) == len(reference)


# --- the leader leaves, clients keep writing ------------------------------------------------------

class Writers:
    """Clients that write to fresh znodes back to back; every acknowledged
    write is recorded."""

    def __init__(self, cluster, base, n=3):
        self.acked = set()
        self.stopping = threading.Event()
        self.clients = [KazooClient(hosts=cluster.hosts, timeout=10,
                                    connection_retry=dict(max_tries=-1, delay=0.05,
                                                          max_delay=0.5))
                        for _ in range(n)]
        for c in self.clients:
            c.start(timeout=30)
        self.clients[0].ensure_path(base)
        self.base = base
        self.threads = [threading.Thread(target=self._run, args=(c, k), daemon=True)
                        for k, c in enumerate(self.clients)]
        for t in self.threads:
            t.start()

    def _run(self, c, k):
        n = 0
        while not self.stopping.is_set():
            path = f"{self.base}/w{k}-{n:06d}"
            n += 1        # a path is tried once: after an error its outcome is unknown
            try:
                c.create(path)
                self.acked.add(path)
            except KazooException:
                pass

    def wait_progress(self, count, timeout=60):
        start = len(self.acked)
        wait_until(lambda: len(self.acked) >= start + count, timeout, what="writes to go on")

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        for c in self.clients:
            c.stop()
            c.close()


def test_the_leader_removed_hands_over_and_nothing_acknowledged_is_lost():
    with running(Cluster(3, extra=EXTRA)) as c:
        leader = c.wait_ready()
        w = Writers(c, "/handover")
        try:
            w.wait_progress(50)
            zk = client(c)
            zk.add_auth("digest", "super:test")
            data, _ = zk.reconfig(joining=None, leaving=str(leader), new_members=None)
            assert f"server.{leader}=" not in data.decode()
            zk.stop()
            new_leader = c.wait_ready(peers=[i for i in c.peers if i != leader], timeout=60)
            assert new_leader != leader
            w.wait_progress(50)
        finally:
            w.stop()
        reader = client(c)
        try:
            reader.sync(w.base)
            have = {f"{w.base}/{name}" for name in reader.get_children(w.base)}
        finally:
            reader.stop()
        assert w.acked <= have, sorted(w.acked - have)[:5]
        # A participant without a vote, following the new leader.
        wait_until(lambda: c.modes().get(leader) == "follower", 30,
                   what=f"the old leader {leader} to follow")
        assert c.peers[new_leader].mntr()["zk_synced_non_voting_followers"] == "1"


def everything_acknowledged_is_everywhere(cluster, w):
    for i in cluster.peers:
        r = KazooClient(hosts=cluster.host(i), timeout=10)
        r.start(timeout=30)
        try:
            r.sync(w.base)
            have = {f"{w.base}/{name}" for name in r.get_children(w.base)}
        finally:
            r.stop()
        assert w.acked <= have, (i, sorted(w.acked - have)[:5])


def test_participants_observe_and_participate_again_under_load():
    """A follower, then the leader, turns observer and back while clients
    write: the leader hands over when it becomes an observer."""
    c = Cluster(3, extra=EXTRA)
    w = zk = None
    try:
        start_in_order(c)           # 2 leads, 3 follows; the admin talks to 1
        w = Writers(c, "/switch")
        zk = admin(c)
        w.wait_progress(50)
        for i in (3, 2):
            zk.reconfig(joining=spec(c, i, "observer"), leaving=None, new_members=None)
            settled(c, observers={i})
            w.wait_progress(50)
            data, _ = zk.get("/zookeeper/config")
            assert spec(c, i, "observer") in data.decode().splitlines()
            zk.reconfig(joining=spec(c, i), leaving=None, new_members=None)
            settled(c)
            w.wait_progress(50)
        zk.stop()
        w.stop()
        everything_acknowledged_is_everywhere(c, w)
    except BaseException:
        for x in (zk, w):
            if x is not None:
                x.stop()
        print(c.dump_logs())
        raise
    finally:
        c.close()


def test_a_peer_restarted_after_a_reconfiguration_comes_back_with_it():
    with running(Cluster(3, extra=EXTRA)) as c:
        c.wait_ready()
        zk = admin(c)
        try:
            zk.reconfig(joining=spec(c, 3, "observer"), leaving=None, new_members=None)
            c.wait_ready()
            assert c.modes()[3] == "observer"
            c.stop(3)
            c.stop(1)
            c.restart(1)
            c.restart(3)
            c.wait_ready()
            assert c.modes()[3] == "observer"
            data, _ = zk.get("/zookeeper/config")
            assert ":observer;" in data.decode()
        finally:
            zk.stop()


def test_a_new_client_port_is_listened_on():
    with running(Cluster(3, extra=EXTRA)) as c:
        c.wait_ready()
        from zkpy.testing import free_port
        port = free_port()
        zk = admin(c)
        try:
            zk.reconfig(joining=spec(c, 2, client_port=port), leaving=None, new_members=None)
        finally:
            zk.stop()
        moved = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        wait_until(lambda: _connects(moved), 30, what="the new client port to answer")
        moved.stop()


def _connects(c) -> bool:
    try:
        c.start(timeout=2)
        return True
    except Exception:
        return False


# --- zkCli's config and reconfig, side by side ------------------------------------------------------

def zkcli_transcript(cluster) -> list:
    from tests.clients.test_zkcli import run_zkcli
    try:
        start_in_order(cluster)
        p3 = cluster.peers[3]
        joiner = f"server.3=127.0.0.1:{p3.quorum_port}:{p3.election_port}:participant;" \
                 f"127.0.0.1:{p3.client_port}"
        members = ",".join(spec(cluster, i) for i in (1, 2, 3))
        steps = [
            ("config", "config"),
            ("reconfig without auth", "reconfig -remove 3"),
            ("auth", "addauth digest super:test"),
            ("wrong version", "reconfig -remove 3 -v 5"),
            ("remove", "reconfig -remove 3"),
            ("config after remove", "config"),
            ("add", f"reconfig -add {joiner}"),
            ("members", f"reconfig -members {members}"),
            ("config -s", "config -s"),
            ("bad", "reconfig -add nonsense"),
        ]
        t = run_zkcli(cluster.host(1), steps)
        out = []
        for key, _ in steps:
            r = t[key]
            lines = [normal(cluster, line) for line in r.out + r.err
                     if not re.match(r"^(ctime|mtime) = ", line)]
            out.append((key, lines))
        return out
    finally:
        cluster.close()


def test_zkcli_config_and_reconfig_print_what_they_print_against_zookeeper():
    require_apache()
    mine = zkcli_transcript(Cluster(3, extra=EXTRA))
    reference = zkcli_transcript(ApacheCluster(3, extra=EXTRA))
    for a, b in zip(mine, reference):
        assert a == b
    assert len(mine) == len(reference)


# --- growing an ensemble from one peer, and shrinking it back ---------------------------------------

def test_grow_from_one_to_three_to_five_and_back_under_load():
    """standaloneEnabled=false: a single peer is an ensemble of one and can
    grow.  Each new peer starts knowing the members and itself, follows
    without a vote until a reconfig adds it; then the ensemble shrinks back.
    Writers keep going all along; every write they got an answer for is
    there in the end, on every peer."""
    extra = dict(EXTRA, standaloneEnabled="false")
    members = {1: [1], 2: [1, 2], 3: [1, 3], 4: [1, 2, 3, 4], 5: [1, 2, 3, 5]}
    c = Cluster(5, extra=extra, members=members)
    w = None
    try:
        c.restart(1)
        c.wait_ready(peers=[1])
        w = Writers(c, "/grow")
        w.wait_progress(30)
        zk = KazooClient(hosts=c.host(1), timeout=10, auth_data=[("digest", "super:test")])
        zk.start(timeout=30)

        def members_now():
            data, _ = zk.get("/zookeeper/config")
            return sorted(int(line[len("server."):line.index("=")])
                          for line in data.decode().splitlines() if line.startswith("server."))

        for new in ((2, 3), (4, 5)):
            for i in new:
                c.restart(i)
            c.wait_ready(peers=[1, *[i for i in c.peers if c.peers[i].running]])
            zk.reconfig(joining=",".join(spec(c, i) for i in new), leaving=None,
                        new_members=None)
            w.wait_progress(30)
        assert members_now() == [1, 2, 3, 4, 5]
        c.wait_ready()
        for gone in ("4,5", "2,3"):
            zk.reconfig(joining=None, leaving=gone, new_members=None)
            w.wait_progress(30)
        assert members_now() == [1]
        zk.stop()
        w.stop()
        reader = KazooClient(hosts=c.host(1), timeout=10)
        reader.start(timeout=30)
        reader.sync(w.base)
        have = {f"{w.base}/{name}" for name in reader.get_children(w.base)}
        reader.stop()
        assert w.acked <= have, sorted(w.acked - have)[:5]
        # The peers left out follow without a vote and hold the same data.
        for i in (2, 3, 4, 5):
            r = KazooClient(hosts=c.host(i), timeout=10)
            r.start(timeout=30)
            r.sync(w.base)
            assert {f"{w.base}/{name}" for name in r.get_children(w.base)} >= w.acked
            r.stop()
    except BaseException:
        if w is not None:
            w.stop()
        print(c.dump_logs())
        raise
    finally:
        c.close()


# --- kazoo's own reconfig cases (kazoo/tests/test_client.py, TestReconfig) ---------------------

def kazoo_cases(cluster) -> list:
    """What kazoo's TestReconfig does: a reconfig without the super user, an
    observer that never runs added and removed again (0.0.0.0 addresses), a
    joiner that does not parse, and fromConfig one ahead of the version."""
    from zkpy.testing import free_port
    out = []
    try:
        cluster.start()
        cluster.wait_ready()
        zk = admin(cluster)
        plain = client(cluster)
        try:
            out.append(attempt(lambda: plain.reconfig(
                joining="server.999=0.0.0.0:1234:2345:observer;3456", leaving=None,
                new_members=None)))
            ports = [free_port() for _ in range(3)]
            joining = "server.100=0.0.0.0:%d:%d:observer;0.0.0.0:%d" % tuple(ports)
            data, _ = zk.reconfig(joining=joining, leaving=None, new_members=None)
            out.append(("added", joining in data.decode()))
            data, _ = zk.reconfig(joining=None, leaving="100", new_members=None)
            out.append(("removed", joining not in data.decode()))
            version = int(data.decode().split("\n")[-1].split("=")[1], 16)
            out.append(attempt(lambda: plain.reconfig(joining=joining, leaving=None,
                                                      new_members=None,
                                                      from_config=version + 1)))
            out.append(attempt(lambda: zk.reconfig(joining=joining, leaving=None,
                                                   new_members=None, from_config=version + 1)))
            out.append(attempt(lambda: zk.reconfig(joining="some thing", leaving=None,
                                                   new_members=None)))
        finally:
            zk.stop()
            plain.stop()
        return out
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()


def test_kazoos_own_reconfig_cases_pass_as_against_zookeeper():
    require_apache()
    mine = kazoo_cases(Cluster(3, extra=EXTRA))
    assert mine == kazoo_cases(ApacheCluster(3, extra=EXTRA))
    # (fromConfig is checked before the ACL: BadVersion even without auth.)
    assert mine == [("error", "NoAuthError"), ("added", True), ("removed", True),
                    ("error", "BadVersionError"), ("error", "BadVersionError"),
                    ("error", "BadArgumentsError")]
