"""A 3-peer zkpy ensemble as real processes on loopback, with kazoo clients.

Faults: kill -9 of the leader under write load, followers restarted slightly
behind (DIFF) and far behind (SNAP), the leader stopped (SIGSTOP) past
syncLimit and resumed, one peer cut off from the others (a proxy on every peer
link) and let back in (the leader, whose stranded proposals must vanish by
TRUNC; a follower, with the held traffic delivered late), every peer killed at
once.  Throughout, writers on clients that know every host keep creating
znodes; every write they got an answer for is recorded, and after each fault
every peer must hold all of them (read after `sync`), the writers must make
progress again and keep their sessions, and one session lives through it all.

Also: sessions are global (an ephemeral made through one follower vanishes
everywhere when its session expires; a session moves to another peer), sync
makes a follower's reads current, a client reads its own writes, watches fire
on followers, the four-letter words tell leader from follower, and an
observer serves and follows a new leader.

The cluster helper is zkpy/testing/ensemble.py; ZKPY_KEEP_ENSEMBLE=1 keeps
the peers' directories (zoo.cfg, data, server.log) for a look afterwards.

Nothing here asserts on timing: waits are generous and only bound a failure."""

import collections
import os
import signal
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.protocol.states import EventType

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest
from zkpy.rawclient import RawClient

from zkpy.testing.ensemble import Cluster, make_whole, running, wait_until

SESSION_TIMEOUT = 6.0     # seconds (the cluster's maxSessionTimeout is 20 ticks = 6 s)


def make_client(hosts, timeout=SESSION_TIMEOUT, **kwargs):
    c = KazooClient(hosts=hosts, timeout=timeout,
                    connection_retry=dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5,
                                          max_jitter=0.1),
                    **kwargs)
    c.start(timeout=30)
    return c


def close_client(c):
    try:
        c.stop()
        c.close()
    except Exception:
        pass


@pytest.fixture(scope="module")
def cluster():
    with running(Cluster(3, tick_time=300, init_limit=10, sync_limit=5, force_sync=True,
                         snap_count=200, proxy=True)) as c:
        yield c


class Sentinel:
    """A session that lives through every test of the module, with an
    ephemeral: it must never be lost, whatever peer it was on and whichever
    peer became leader (a new leader must not expire sessions it knew only
    as a follower, where it saw none of their pings)."""

    def __init__(self, hosts):
        self.states = []
        self.client = make_client(hosts)
        self.client.add_listener(self.states.append)
        self.session_id = self.client.client_id[0]
        self.client.create("/sentinel", ephemeral=True)


@pytest.fixture(scope="module")
def sentinel(cluster):
    s = Sentinel(cluster.hosts)
    yield s
    close_client(s.client)


@pytest.fixture
def ensemble(cluster, sentinel, request):
    """The module's cluster, whole and synced before and after the test."""
    cluster.wait_ready()
    yield cluster
    report = getattr(request.node, "rep_call", None)
    make_whole(cluster, report is not None and report.failed)


@pytest.fixture
def clients():
    made = []

    def make(hosts, **kwargs):
        c = make_client(hosts, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        close_client(c)


# --- writers under load and the check of what they were told ---------------------------

class Writers:
    """Threads that each create base/w<k>-<n> through their own kazoo client
    (every host), one request at a time, and record each create that was
    answered OK.  Every few writes a writer reads its write back at once
    (read-your-writes, across fail-overs too)."""

    def __init__(self, hosts, base, count=2):
        self.base = base
        self.acked = set()
        self.anomalies = []
        self.errors = collections.Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.clients = [make_client(hosts) for _ in range(count)]
        self.client_ids = [c.client_id for c in self.clients]
        self.final_ids = None
        self.clients[0].ensure_path(base)
        self.threads = [threading.Thread(target=self._run, args=(k, c), daemon=True)
                        for k, c in enumerate(self.clients)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        if self.final_ids is None:
            self.final_ids = [c.client_id for c in self.clients]
        for c in self.clients:
            close_client(c)

    def _run(self, k, client):
        n = 0
        while not self.stopping.is_set():
            path = f"{self.base}/w{k}-{n:06d}"
            n += 1
            try:
                client.create(path, path.encode())
            except NodeExistsError:
                # Each path is tried once: an answer of NodeExists means the
                # create was applied twice or another writer's went astray.
                self.anomalies.append(f"{path}: NodeExists on the first try")
                continue
            except KazooException as e:
                # Not acknowledged: it may or may not have happened.
                self.errors[type(e).__name__] += 1
                time.sleep(0.05)
                continue
            with self.lock:
                self.acked.add(path)
            if n % 7 == 0:
                try:
                    if client.exists(path) is None:
                        self.anomalies.append(f"{path}: acknowledged but not visible to its writer")
                except KazooException:
                    pass

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def snapshot(self) -> set:
        with self.lock:
            return set(self.acked)

    def wait_progress(self, n=20, timeout=60.0):
        """Wait until n more writes are acknowledged (writes resume)."""
        start = self.count()
        wait_until(lambda: self.count() >= start + n, timeout,
                   what=f"{n} more acknowledged writes (errors so far {dict(self.errors)})")

    def check_sessions_kept(self):
        """A client that fails over to another peer keeps its session."""
        assert self.final_ids == self.client_ids


def restart_under_load(cluster, peer, base, sessions_kept=False):
    """Restart peer while writers load the ensemble under base: no writer
    sees an anomaly (nor, with sessions_kept, loses its session), and every
    peer ends with every acknowledged write."""
    with Writers(cluster.hosts, base) as w:
        cluster.restart(peer)
        cluster.wait_ready()
        w.wait_progress(30)
        w.stop()
        assert not w.anomalies, w.anomalies
        if sessions_kept:
            w.check_sessions_kept()
        check_peers(cluster, w.base, w.snapshot())


def check_peers(cluster, base, acked, peers=None, same=True):
    """Every peer (read on that peer alone, after sync) holds every
    acknowledged write, and (once writes have stopped: same=True) all of them
    hold the same children."""
    seen = {}
    for i in (peers or cluster.live()):
        c = make_client(cluster.host(i))
        try:
            c.sync(base)
            children = {f"{base}/{name}" for name in c.get_children(base)}
        finally:
            close_client(c)
        lost = acked - children
        assert not lost, f"peer {i} lost {len(lost)} acknowledged writes, e.g. {sorted(lost)[:5]}"
        seen[i] = children
    assert not same or len({frozenset(s) for s in seen.values()}) == 1, \
        f"peers disagree: sizes {({i: len(s) for i, s in seen.items()})}"


def new_log(cluster, i, mark):
    return cluster.peers[i].log_text()[mark:]


# --- the quiet checks ----------------------------------------------------------------------

def test_four_letter_words_tell_roles(ensemble):
    leader = ensemble.wait_ready()
    modes = ensemble.modes()
    assert modes[leader] == "leader"
    assert sorted(m for i, m in modes.items() if i != leader) == ["follower", "follower"]
    srvr = ensemble.peers[leader].four_letter("srvr")
    assert "Mode: leader\n" in srvr and "Proposal sizes last/min/max: " in srvr
    m = ensemble.peers[leader].mntr()
    assert m["zk_server_state"] == "leader"
    assert m["zk_peer_state"] == "leading - broadcast"
    assert m["zk_synced_followers"] == "2" and m["zk_followers"] == "2"
    assert m["zk_pending_syncs"] == "0" and m["zk_quorum_size"] == "3"
    f = next(i for i, mode in modes.items() if mode == "follower")
    fm = ensemble.peers[f].mntr()
    assert fm["zk_server_state"] == "follower"
    assert "zk_synced_followers" not in fm
    assert "Proposal sizes" not in ensemble.peers[f].four_letter("srvr")


def test_sync_read_your_writes_and_watches_on_followers(ensemble, clients):
    leader = ensemble.wait_ready()
    f1, f2 = ensemble.followers()
    writer = clients(ensemble.host(f1))      # writes go through a follower
    reader = clients(ensemble.host(f2))
    on_leader = clients(ensemble.host(leader))
    writer.ensure_path("/rw")
    fired = []
    reader.ensure_path("/rw/watched")
    reader.get("/rw/watched", watch=lambda ev: fired.append(ev))
    reader.get_children("/rw", watch=lambda ev: fired.append(ev))
    for n in range(30):
        path = f"/rw/n{n}"
        writer.create(path, b"%d" % n)
        # Read-your-writes on the writer's own peer, with no sync.
        assert writer.get(path)[0] == b"%d" % n
        # Another follower after sync sees it; so does the leader.
        reader.sync("/rw")
        assert reader.get(path)[0] == b"%d" % n
        on_leader.sync("/rw")
        assert on_leader.exists(path) is not None
    writer.set("/rw/watched", b"new")
    wait_until(lambda: len(fired) >= 2, 20, what="watches to fire on a follower")
    kinds = {(ev.type, ev.path) for ev in fired}
    assert (EventType.CHANGED, "/rw/watched") in kinds
    assert (EventType.CHILD, "/rw") in kinds
    # A watch set on the leader fires for a write through a follower as well.
    got = threading.Event()
    on_leader.exists("/rw/later", watch=lambda ev: got.set())
    writer.create("/rw/later")
    assert got.wait(20)


def test_sessions_are_global(ensemble, clients):
    leader = ensemble.wait_ready()
    f1, f2 = ensemble.followers()
    watcher = clients(ensemble.host(f2))
    watcher.ensure_path("/sess")
    # A session made on follower f1 with an ephemeral; then the client goes
    # silent (no closeSession): the leader expires it, the ephemeral goes
    # everywhere, and a watch on another follower fires.
    port = ensemble.peers[f1].client_port
    raw = RawClient("127.0.0.1", port)
    raw.connect(timeout_ms=1500)
    hdr, _ = raw.request(Op.CREATE, CreateRequest("/sess/eph", b"", OPEN_ACL_UNSAFE, 1))
    assert hdr.err == 0
    watcher.sync("/sess")
    gone = threading.Event()
    stat = watcher.exists("/sess/eph", watch=lambda ev: gone.set())
    assert stat is not None and stat.ephemeralOwner == raw.session_id
    raw.close()
    assert gone.wait(30), "the ephemeral of an expired session did not vanish on another follower"
    for i in ensemble.live():
        c = clients(ensemble.host(i))
        c.sync("/sess")
        assert c.exists("/sess/eph") is None, f"peer {i} still has the ephemeral"

    # A session moves: made on f1, resumed on f2 (and then on the leader)
    # with its id and password; its ephemeral stays, and it can still write.
    raw = RawClient("127.0.0.1", port)
    raw.connect(timeout_ms=6000)
    hdr, _ = raw.request(Op.CREATE, CreateRequest("/sess/eph2", b"", OPEN_ACL_UNSAFE, 1))
    assert hdr.err == 0
    sid, passwd = raw.session_id, raw.passwd
    raw.close()
    moved = None
    for host in (ensemble.host(f2), ensemble.host(leader)):
        moved = clients(host, client_id=(sid, passwd))
        assert moved.client_id[0] == sid
        moved.sync("/sess")      # this kazoo object never saw the create's zxid
        assert moved.exists("/sess/eph2").ephemeralOwner == sid
        moved.create(f"/sess/by-{host.split(':')[1]}", ephemeral=True)
    moved.stop()                 # closeSession: its ephemerals go everywhere
    for i in ensemble.live():
        c = clients(ensemble.host(i))
        c.sync("/sess")
        assert c.get_children("/sess") == [], f"peer {i} keeps a closed session's ephemerals"


# --- faults under write load -----------------------------------------------------------

def test_kill_leader_under_write_load(ensemble):
    leader = ensemble.wait_ready()
    with Writers(ensemble.hosts, "/load-kill") as w:
        w.wait_progress(50)
        ensemble.kill(leader, signal.SIGKILL)
        new = ensemble.wait_ready()
        assert new != leader
        w.wait_progress(50)
        check_peers(ensemble, w.base, w.snapshot(), same=False)
        ensemble.restart(leader)
        ensemble.wait_ready()
        w.wait_progress(30)
        w.stop()
        assert not w.anomalies, w.anomalies
        w.check_sessions_kept()
        check_peers(ensemble, w.base, w.snapshot())


def test_follower_slightly_behind_catches_up_by_diff(ensemble):
    ensemble.wait_ready()
    f = ensemble.followers()[0]
    with Writers(ensemble.hosts, "/load-diff") as w:
        w.wait_progress(20)
        ensemble.kill(f, signal.SIGKILL)
        w.wait_progress(40)
        mark = len(ensemble.peers[f].log_text())
        ensemble.restart(f)
        ensemble.wait_ready()
        w.wait_progress(20)
        w.stop()
        assert not w.anomalies, w.anomalies
        w.check_sessions_kept()
        check_peers(ensemble, w.base, w.snapshot())
    log = new_log(ensemble, f, mark)
    assert "FOLLOWING" in log and "by SNAP" not in log


def test_follower_far_behind_catches_up_by_snap(ensemble, clients):
    leader = ensemble.wait_ready()
    f = ensemble.followers()[0]
    ensemble.stop(f)
    # More txns than the leader keeps for DIFFs (1000): only a SNAP will do.
    c = clients(ensemble.host(leader))
    c.ensure_path("/bulk")
    acked = set()
    results = []
    for n in range(1300):
        path = f"/bulk/n{n:05d}"
        results.append((path, c.create_async(path, b"x" * 20)))
    for path, r in results:
        r.get(timeout=60)
        acked.add(path)
    mark = len(ensemble.peers[f].log_text())
    restart_under_load(ensemble, f, "/load-snap", sessions_kept=True)
    check_peers(ensemble, "/bulk", acked)
    assert "by SNAP" in new_log(ensemble, f, mark)
    # And the follower restarts from what the SNAP left on its disk.
    ensemble.kill(f, signal.SIGKILL)
    ensemble.restart(f)
    ensemble.wait_ready()
    check_peers(ensemble, "/bulk", acked)


def test_leader_stopped_past_sync_limit_and_resumed(ensemble):
    leader = ensemble.wait_ready()
    with Writers(ensemble.hosts, "/load-stop") as w:
        w.wait_progress(30)
        ensemble.pause(leader)
        new = ensemble.wait_ready([i for i in ensemble.peers if i != leader])
        assert new != leader
        w.wait_progress(30)
        ensemble.resume(leader)
        ensemble.wait_ready()
        w.wait_progress(30)
        w.stop()
        assert not w.anomalies, w.anomalies
        w.check_sessions_kept()
        check_peers(ensemble, w.base, w.snapshot())
    assert ensemble.peers[leader].mode() in ("follower", "leader")


@pytest.mark.parametrize("who,reset", [("leader", True), ("follower", False)])
def test_one_peer_cut_off(ensemble, who, reset):
    leader = ensemble.wait_ready()
    victim = leader if who == "leader" else ensemble.followers()[0]
    lone = make_client(ensemble.host(victim))     # knows no other peer
    try:
        with Writers(ensemble.hosts, f"/load-cut-{who}") as w:
            w.wait_progress(30)
            mark = len(ensemble.peers[victim].log_text())
            ensemble.cut(victim)
            stranded = []
            if who == "leader":
                # Writes the cut-off leader proposes and logs but nobody else
                # ever sees: never acknowledged, they must vanish (TRUNC).
                stranded = [f"{w.base}/stranded-{n}" for n in range(5)]
                results = [lone.create_async(p) for p in stranded]
            new = ensemble.wait_ready()          # the two that can still talk
            assert new != victim
            w.wait_progress(30)
            # Cut off, the peer stops serving (it cannot know what is committed).
            wait_until(lambda: ensemble.peers[victim].mode() is None, 30,
                       what="the cut-off peer to stop serving")
            for r in results if stranded else ():
                with pytest.raises(KazooException):
                    r.get(timeout=30)
            ensemble.heal(victim, reset=reset)
            ensemble.wait_ready()
            w.wait_progress(30)
            w.stop()
            assert not w.anomalies, w.anomalies
            w.check_sessions_kept()
            check_peers(ensemble, w.base, w.snapshot())
        for i in ensemble.live():
            c = make_client(ensemble.host(i))
            try:
                c.sync(w.base)
                assert all(c.exists(p) is None for p in stranded), f"peer {i}"
            finally:
                close_client(c)
        if stranded:
            assert "by TRUNC" in new_log(ensemble, victim, mark)
    finally:
        close_client(lone)


def test_whole_ensemble_killed_and_restarted(ensemble):
    """kill -9 of every peer at once (forceSync=yes): what was acknowledged
    is on a quorum's disks and comes back."""
    ensemble.wait_ready()
    with Writers(ensemble.hosts, "/load-all") as w:
        w.wait_progress(50)
        for i in ensemble.peers:
            ensemble.kill(i, signal.SIGKILL)
        acked = w.snapshot()
        for i in ensemble.peers:
            ensemble.restart(i)
        ensemble.wait_ready()
        w.wait_progress(30)
        w.stop()
        assert not w.anomalies, w.anomalies
        assert w.snapshot() >= acked
        check_peers(ensemble, w.base, w.snapshot())


def test_a_session_outlives_every_fault(ensemble, sentinel):
    """Runs last: the sentinel's session survived all the faults above."""
    from kazoo.protocol.states import KazooState
    assert KazooState.LOST not in sentinel.states
    assert sentinel.client.client_id[0] == sentinel.session_id
    for i in ensemble.live():
        c = make_client(ensemble.host(i))
        try:
            c.sync("/")
            stat = c.exists("/sentinel")
            assert stat is not None and stat.ephemeralOwner == sentinel.session_id, f"peer {i}"
        finally:
            close_client(c)


def test_an_observer_serves_and_follows_a_new_leader():
    """3 voters and an observer: the observer forwards writes, answers reads
    after sync, fires watches, and follows the next leader after a kill -9."""
    with running(Cluster(4, tick_time=300, force_sync=False, observers=1)) as c:
        leader = c.wait_ready()
        assert c.modes()[4] == "observer"
        m = c.peers[leader].mntr()
        assert m["zk_synced_observers"] == "1" and m["zk_synced_followers"] == "2"
        assert m["zk_quorum_size"] == "3"
        obs = make_client(c.host(4))
        fol = make_client(c.host(c.followers()[0]))
        try:
            obs.create("/o", b"from-observer")
            assert obs.get("/o")[0] == b"from-observer"      # its own write
            fired = threading.Event()
            obs.get("/o", watch=lambda ev: fired.set())
            fol.set("/o", b"from-follower")
            assert fired.wait(20)
            obs.sync("/o")
            assert obs.get("/o")[0] == b"from-follower"
            with Writers(c.hosts, "/load-obs") as w:
                w.wait_progress(30)
                c.kill(leader, signal.SIGKILL)
                assert c.wait_ready() != leader
                w.wait_progress(30)
                w.stop()
                assert not w.anomalies, w.anomalies
                check_peers(c, w.base, w.snapshot())
            assert c.modes()[4] == "observer"
        finally:
            close_client(obs)
            close_client(fol)


def test_a_long_diff_is_made_off_the_event_loop():
    """A follower more than FORK_SYNC_TXNS txns behind (but within the
    history kept for DIFFs) gets its DIFF encoded by a forked child of the
    leader; writes sent after it wait for it on the link, so the follower
    misses none and takes none out of order."""
    from zkpy.server.quorum import FORK_SYNC_TXNS
    with running(Cluster(3, tick_time=300, force_sync=False, snap_count=4 * FORK_SYNC_TXNS)) as c:
        leader = c.wait_ready()
        f = c.followers()[0]
        c.stop(f)
        bulk = make_client(c.host(leader))
        try:
            bulk.ensure_path("/long")
            acked = set()
            for start in range(0, FORK_SYNC_TXNS + 500, 1000):
                batch = [(f"/long/n{n:06d}", bulk.create_async(f"/long/n{n:06d}"))
                         for n in range(start, start + 1000)]
                for path, r in batch:
                    r.get(timeout=60)
                    acked.add(path)
        finally:
            close_client(bulk)
        mark = len(c.peers[leader].log_text())
        restart_under_load(c, f, "/load-long")
        check_peers(c, "/long", acked)
        log = new_log(c, leader, mark)
        assert f"syncing peer {f} by DIFF with" in log, log[-3000:]
        assert "by SNAP" not in new_log(c, f, 0)


def test_a_follower_whose_tree_diverges_notices_and_syncs_again():
    """A follower's log is altered while it is down (a znode's data changed in
    the txn that created it, with a valid checksum): back in the ensemble its
    tree differs from the leader's.  The leader's digest on the next commit
    tells it so; it says so, counts it, syncs again by SNAP, and serves the
    leader's data."""
    from zkpy.storage.snapshot import list_snapshots
    from zkpy.storage.txnlog import LogFile, encode_txn, list_logs, read_log

    with running(Cluster(3, tick_time=300, force_sync=True)) as c:
        leader = c.wait_ready()
        f = c.followers()[0]
        client = make_client(c.host(leader))
        try:
            client.create("/d", b"right")
            client.create("/other", b"0")
            c.wait_caught_up()
            c.stop(f)
            log_dir = snap_dir = os.path.join(c.peers[f].data_dir, "version-2")
            altered = False
            for _, path in list_logs(log_dir):
                txns = read_log(path, True)[0]
                for t in txns:
                    if t.type == Op.CREATE and t.body[0] == "/d":
                        t.body = ("/d", b"wrong") + tuple(t.body[2:])
                        t._packed = None
                        altered = t.zxid
                if altered:
                    os.remove(path)
                    out = LogFile(path, 64 * 1024)
                    out.write(b"".join(encode_txn(t) for t in txns))
                    out.sync()
                    out.close()
                    break
            assert altered, "the create of /d is not in the follower's log"
            assert all(z < altered for z, _ in list_snapshots(snap_dir)), \
                "a snapshot already holds /d: the altered txn would not be replayed"
            mark = len(c.peers[f].log_text())
            c.restart(f)
            c.wait_ready()
            client.set("/other", b"1")      # a commit, with the leader's digest
            wait_until(lambda: "Digests are not matching" in new_log(c, f, mark), 60,
                       what="the follower to notice")
            c.wait_ready()
            log = new_log(c, f, mark)
            assert "by SNAP" in log.split("Digests are not matching", 1)[1]
            assert int(c.peers[f].mntr()["zk_digest_mismatches_count"]) >= 1
            reader = make_client(c.host(f))
            try:
                reader.sync("/d")
                assert reader.get("/d")[0] == b"right"
            finally:
                close_client(reader)
        finally:
            close_client(client)
