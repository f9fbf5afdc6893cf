"""Read-only mode with real processes: a 3-peer ensemble with
readonlymode.enabled=true loses two peers (kill -9 or SIGSTOP); the one left
serves read-only clients, then rejoins when the others come back.

As Apache ZooKeeper 3.8 does (checked against a 3-peer ensemble of it, run
with -Dreadonlymode.enabled=true, localSessionsEnabled=true and
localSessionsUpgradingEnabled=true, with the same kazoo and raw clients): a
kazoo client with read_only=True connects (CONNECTED_RO), reads, and gets
NotReadOnlyCallError on writes; a client that does not ask for read-only,
or resumes a session made while the ensemble was whole, sees its connection
closed; `isro` says ro; the session made there is local to the peer, so
when the peer rejoins a quorum the connection is closed and the client, with
a new session, ends up on a read-write server.  Without readonlymode a
cut-off peer serves nobody.  One deliberate difference is pinned here too
(a peer restarted alone, see docs/compatibility.md).

Nothing here asserts on timing: waits only bound a failure."""

import signal
import subprocess
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KazooState, KeeperState

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, CreateRequest, PathWatchRequest, SetDataRequest,
)
from zkpy.rawclient import ConnectionClosed, RawClient

from zkpy.testing.apache import CLI_MT, ZKCLI, require_apache

from zkpy.testing.ensemble import Cluster, make_whole, running, wait_until


@pytest.fixture(scope="module")
def cluster():
    with running(Cluster(3, tick_time=300, init_limit=10, sync_limit=5,
                         extra={"readonlymode.enabled": "true"})) as c:
        yield c


@pytest.fixture
def ensemble(cluster, request):
    """The module's cluster, whole and synced before and after the test."""
    cluster.wait_ready()
    yield cluster
    report = getattr(request.node, "rep_call", None)
    make_whole(cluster, report is not None and report.failed)


def kazoo(hosts, **kwargs):
    states = []
    c = KazooClient(hosts=hosts, timeout=6.0,
                    connection_retry=dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
                    **kwargs)
    c.add_listener(states.append)
    c.start(timeout=30)
    return c, states


def close(c):
    try:
        c.stop()
        c.close()
    except Exception:
        pass


def raw(cluster, i):
    return RawClient("127.0.0.1", cluster.peers[i].client_port)


def cut_off(cluster, survivor, how):
    """Take the other two peers away: kill -9 or SIGSTOP."""
    for i in cluster.peers:
        if i != survivor:
            if how == "kill":
                cluster.kill(i)
            else:
                cluster.pause(i)


def bring_back(cluster, how):
    for i, p in cluster.peers.items():
        if how == "kill" and not p.running:
            cluster.restart(i)
        elif how == "pause" and p.paused:
            cluster.resume(i)


@pytest.mark.parametrize("who,how", [("follower", "kill"), ("leader", "pause")])
def test_a_cut_off_peer_serves_read_only_clients_until_it_rejoins(ensemble, who, how):
    leader = ensemble.wait_ready()
    survivor = leader if who == "leader" else ensemble.followers()[0]
    peer = ensemble.peers[survivor]
    writer, _ = kazoo(ensemble.host(survivor))
    writer.create("/ro", b"before the cut")
    writer.create("/ro/child")
    close(writer)
    # A session of the whole ensemble, left open.  (It makes an ephemeral:
    # with ZooKeeper's localSessionsEnabled that is what makes a session
    # global; zkpy's sessions are global from the start.)
    before = raw(ensemble, survivor)
    before.connect(timeout_ms=6000)
    hdr, _ = before.request(Op.CREATE, CreateRequest("/ro-owner", b"", OPEN_ACL_UNSAFE, 1))
    assert hdr.err == 0
    session_before = (before.session_id, before.passwd)
    assert peer.four_letter("isro") == "rw"

    cut_off(ensemble, survivor, how)
    wait_until(lambda: peer.four_letter("isro") == "ro", 60, what="the peer to go read-only")
    srvr = peer.srvr()
    assert srvr["Mode"] == "read-only"
    mntr = peer.mntr()
    assert mntr["zk_server_state"] == "read-only"
    assert "zk_peer_state" not in mntr

    ro, states = kazoo(ensemble.host(survivor), read_only=True)
    try:
        assert ro.client_state == KeeperState.CONNECTED_RO
        assert ro.get("/ro")[0] == b"before the cut"
        assert ro.get_children("/ro") == ["child"]
        assert ro.exists("/nothing") is None
        with pytest.raises(NotReadOnlyCallError):
            ro.create("/ro/new")
        with pytest.raises(NotReadOnlyCallError):
            ro.set("/ro", b"changed")
        with pytest.raises(NotReadOnlyCallError):
            ro.delete("/ro/child")
        with pytest.raises(NotReadOnlyCallError):
            ro.sync("/ro")
        ro_session = ro.client_id[0]
        assert ro_session >> 56 == survivor        # a session of this peer only

        # Not asking for read-only: refused, the connection closed.
        rw = raw(ensemble, survivor)
        with pytest.raises(ConnectionClosed):
            rw.connect(read_only=False, timeout_ms=6000)
        rw.close()
        # A session of the whole ensemble cannot be resumed here either.
        old = raw(ensemble, survivor)
        with pytest.raises(ConnectionClosed):
            old.connect(*session_before, timeout_ms=6000, read_only=True)
        old.close()
        # A raw read-only connection: reads answered with the peer's last
        # zxid, writes NotReadOnly.
        r = raw(ensemble, survivor)
        resp = r.connect(read_only=True, timeout_ms=6000)
        assert resp.read_only is True
        hdr, (data, stat) = r.request(Op.GET_DATA, PathWatchRequest("/ro", False))
        assert data == b"before the cut" and hdr.zxid == peer.zxid()
        hdr, _ = r.request(Op.SET_DATA, SetDataRequest("/ro", b"x", -1))
        assert (hdr.err, hdr.zxid) == (Err.NOT_READ_ONLY, peer.zxid())
        assert peer.mntr()["zk_local_sessions"] == "2"

        # The others come back: the peer rejoins, its read-only connections
        # are closed, and the kazoo client ends up on a read-write server
        # with a new session (its read-only one is unknown there: LOST).
        bring_back(ensemble, how)
        assert r.is_closed_by_server(60)
        wait_until(lambda: ro.client_state == KeeperState.CONNECTED, 60,
                   what="the kazoo client to reach a read-write server")
        assert ro.client_id[0] != ro_session
        assert KazooState.LOST in states
        ro.create("/ro/after")
        wait_until(lambda: peer.four_letter("isro") == "rw", 60, what="the peer to rejoin")
        # Its read-only session died with read-only mode.
        again = raw(ensemble, survivor)
        resp = again.connect(r.session_id, r.passwd, timeout_ms=6000, read_only=True)
        assert (resp.timeout, resp.session_id, resp.read_only) == (0, 0, False)
        again.close()
    finally:
        close(ro)
        before.close()
    # The session made before the cut lives on in the ensemble: close it.
    ensemble.wait_ready()
    before = raw(ensemble, survivor)
    before.connect(*session_before, timeout_ms=6000)
    before.close_session()
    cleanup, _ = kazoo(ensemble.hosts)
    cleanup.delete("/ro", recursive=True)
    assert cleanup.exists("/ro-owner") is None
    close(cleanup)


def test_a_read_only_client_with_every_host_moves_to_a_read_write_server(ensemble):
    """kazoo's own read-write server search (isro on the other hosts while it
    is connected read-only) or the closed connection: either way the client
    that knows every host ends up read-write once a quorum is back."""
    leader = ensemble.wait_ready()
    survivor = ensemble.followers()[0]
    peer = ensemble.peers[survivor]
    cut_off(ensemble, survivor, "kill")
    wait_until(lambda: peer.four_letter("isro") == "ro", 60, what="the peer to go read-only")
    ro, states = kazoo(ensemble.hosts, read_only=True)
    try:
        assert ro.client_state == KeeperState.CONNECTED_RO
        with pytest.raises(NotReadOnlyCallError):
            ro.create("/ro-all")
        bring_back(ensemble, "kill")
        wait_until(lambda: ro.client_state == KeeperState.CONNECTED, 60,
                   what="the kazoo client to reach a read-write server")
        ro.create("/ro-all")
        ro.delete("/ro-all")
    finally:
        close(ro)


def test_the_java_and_c_clients_in_read_only_mode(ensemble):
    """zkCli.sh -r and cli_mt -r (Debian's ZooKeeper 3.8.0 clients) on a
    read-only peer: connected read-only, reads answered, writes refused with
    NotReadOnly; cli_mt without -r is refused (connection loss)."""
    require_apache()
    ensemble.wait_ready()
    survivor = ensemble.followers()[0]
    peer = ensemble.peers[survivor]
    writer, _ = kazoo(ensemble.host(survivor))
    writer.create("/ro-cli", b"hello")
    close(writer)
    cut_off(ensemble, survivor, "kill")
    wait_until(lambda: peer.four_letter("isro") == "ro", 60, what="the peer to go read-only")
    host = ensemble.host(survivor)

    def run(*argv):
        return subprocess.run([*argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120).stdout

    out = run(str(ZKCLI), "-server", host, "-r", "get", "/ro-cli")
    assert "state:ConnectedReadOnly" in out and "hello" in out
    out = run(str(ZKCLI), "-server", host, "-r", "create", "/ro-cli/x")
    assert "Not a read-only call: /ro-cli/x" in out
    out = run(str(CLI_MT), "-r", "-c", "get /ro-cli", host)
    assert "state = READONLY_STATE" in out and "/ro-cli: rc = 0" in out and "hello" in out
    out = run(str(CLI_MT), "-r", "-c", "create /ro-cli/x", host)
    assert "[/ro-cli/x]: rc = -119" in out
    out = run(str(CLI_MT), "-c", "get /ro-cli", host)
    assert "/ro-cli: rc = -4" in out                  # ConnectionLoss
    bring_back(ensemble, "kill")
    ensemble.wait_ready()
    cleanup, _ = kazoo(ensemble.hosts)
    cleanup.delete("/ro-cli")
    close(cleanup)


def test_a_peer_restarted_alone_serves_what_it_knows_to_be_committed(ensemble):
    """A deliberate difference (docs/compatibility.md): a peer restarted with
    no quorum to sync with holds its logged txns back until a leader
    confirms them, so read-only it serves its last snapshot (here: none).
    ZooKeeper replays its whole log, committed or not, and would serve them."""
    ensemble.wait_ready()
    writer, _ = kazoo(ensemble.hosts)
    writer.create("/ro-restart", b"logged")
    writer.sync("/ro-restart")
    close(writer)
    ensemble.wait_caught_up()
    for i in ensemble.peers:
        ensemble.kill(i)
    ensemble.restart(1)
    peer = ensemble.peers[1]
    wait_until(lambda: peer.four_letter("isro") == "ro", 60, what="the peer to go read-only")
    ro, _ = kazoo(ensemble.host(1), read_only=True)
    try:
        assert ro.exists("/ro-restart") is None
    finally:
        close(ro)
    for i in (2, 3):
        ensemble.restart(i)
    ensemble.wait_ready()
    rw, _ = kazoo(ensemble.host(1))
    try:
        rw.sync("/ro-restart")
        assert rw.get("/ro-restart")[0] == b"logged"
        rw.delete("/ro-restart")
    finally:
        close(rw)


def test_without_readonlymode_a_cut_off_peer_serves_nobody():
    with running(Cluster(3, tick_time=300)) as c:
        c.wait_ready()
        survivor = c.followers()[0]
        peer = c.peers[survivor]
        for i in c.peers:
            if i != survivor:
                c.kill(i, signal.SIGKILL)
        wait_until(lambda: peer.four_letter("isro") == "null", 60,
                   what="the peer to stop serving")
        # Give a read-only server every chance to start (its grace period
        # is 2 s from LOOKING, which began before this point).
        time.sleep(3)
        assert peer.four_letter("isro") == "null"
        assert peer.four_letter("srvr").startswith("This ZooKeeper instance")
        for read_only in (True, False):
            r = raw(c, survivor)
            with pytest.raises(ConnectionClosed):
                r.connect(read_only=read_only, timeout_ms=6000)
            r.close()
        assert "read-only server started" not in peer.log_text()
