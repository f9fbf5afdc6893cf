"""A session that moves to another peer, as Apache ZooKeeper 3.8 handles it.

The leader knows which peer each session's client talks through (the owner
of SessionTrackerImpl's session): the peer where it was created, then the
last one where it was resumed.  When a client resumes its session on another
peer, its old connection (which the old peer knows nothing about) lives on
until it sends a request the leader checks:

  * on a follower, only writes reach the leader: the write becomes an error
    txn (it uses up a zxid), and when its commit reaches the follower the
    connection is closed without a reply (FinalRequestProcessor turns
    SessionMovedException into a closed connection); reads, pings and sync
    are answered as before;
  * on the leader, every request of its own clients is checked (reads and
    pings too): the first one closes the connection;
  * closeSession is never checked: it closes the session wherever it comes from.

Each case was run against a 3-peer Apache ZooKeeper 3.8.0 ensemble with the
same raw client; the results (which requests are answered, which close the
connection, which use a zxid) are the ones asserted here.  Nothing asserts
on timing."""

import socket

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, CreateRequest, DeleteRequest, MultiRequest, PathRequest, PathWatchRequest,
)
from zkpy.rawclient import ConnectionClosed, RawClient

from zkpy.testing.ensemble import Cluster, running, wait_until


@pytest.fixture(scope="module")
def cluster():
    with running(Cluster(3, tick_time=300, init_limit=10, sync_limit=5)) as c:
        yield c


@pytest.fixture
def ensemble(cluster, request):
    leader = cluster.wait_ready()
    yield cluster, leader, cluster.followers()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(cluster.dump_logs())


class Pair:
    """One session on two connections: `old` where it was made, `new` where
    it was resumed afterwards (with its id and password)."""

    def __init__(self, cluster, old_peer, new_peer):
        self.old = RawClient("127.0.0.1", cluster.peers[old_peer].client_port)
        self.old.connect(timeout_ms=6000)
        self.new = RawClient("127.0.0.1", cluster.peers[new_peer].client_port)
        resp = self.new.connect(self.old.session_id, self.old.passwd, timeout_ms=6000)
        assert resp.session_id == self.old.session_id

    def last_zxid(self) -> int:
        """The new peer's last zxid, once it has everything committed so far."""
        hdr, _ = self.new.request(Op.SYNC, PathRequest("/"))
        assert hdr.err == 0
        hdr, _ = self.new.request(Op.EXISTS, PathWatchRequest("/", False))
        return hdr.zxid

    def close(self):
        self.new.close_session()
        self.old.close()


@pytest.fixture
def pair(ensemble):
    made = []

    def make(old_peer, new_peer):
        p = Pair(ensemble[0], old_peer, new_peer)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def create(path):
    return Op.CREATE, CreateRequest(path, b"", OPEN_ACL_UNSAFE, 0)


def closed_without_reply(client, op, record=None) -> bool:
    """Send one request: True if the server closes the connection instead of
    answering it (a reply raises)."""
    try:
        hdr, _ = client.request(op, record)
    except ConnectionClosed:
        return True
    raise AssertionError(f"answered: {hdr}")


def test_old_connection_on_a_follower_answers_reads_and_is_closed_by_a_write(ensemble, pair):
    cluster, leader, (a, b) = ensemble
    p = pair(a, b)
    # Reads, pings and sync never reach the leader's owner check.
    hdr, _ = p.old.request(Op.GET_DATA, PathWatchRequest("/zookeeper", False))
    assert hdr.err == 0
    assert p.old.ping()[0].err == 0
    hdr, path = p.old.request(Op.SYNC, PathRequest("/"))
    assert (hdr.err, path) == (0, "/")
    # A write: an error txn at the leader (one zxid), then the connection is
    # closed, unanswered.
    before = p.last_zxid()
    assert closed_without_reply(p.old, *create("/moved-f"))
    assert p.last_zxid() == before + 1
    hdr, _ = p.new.request(Op.EXISTS, PathWatchRequest("/moved-f", False))
    assert hdr.err == Err.NO_NODE
    # The session itself is fine where it lives now.
    hdr, _ = p.new.request(*create("/moved-f"))
    assert hdr.err == 0
    p.new.request(Op.DELETE, DeleteRequest("/moved-f", -1))


def test_a_multi_on_the_old_connection_closes_it(ensemble, pair):
    cluster, leader, (a, b) = ensemble
    p = pair(a, leader)
    before = p.last_zxid()
    assert closed_without_reply(p.old, Op.MULTI, MultiRequest([create("/moved-m")]))
    assert p.last_zxid() == before + 1
    hdr, _ = p.new.request(Op.EXISTS, PathWatchRequest("/moved-m", False))
    assert hdr.err == Err.NO_NODE


@pytest.mark.parametrize("op,record", [
    (Op.PING, None),
    (Op.GET_DATA, PathWatchRequest("/zookeeper", False)),
    (Op.SYNC, PathRequest("/")),
], ids=["ping", "getData", "sync"])
def test_old_connection_on_the_leader_is_closed_by_any_request(ensemble, pair, op, record):
    cluster, leader, (a, b) = ensemble
    p = pair(leader, a)
    before = p.last_zxid()
    assert closed_without_reply(p.old, op, record)
    assert p.last_zxid() == before           # no txn for a read


def test_requests_answered_before_the_moved_one_still_get_their_replies(ensemble, pair):
    """exists, create, exists in a row on the old follower connection: the
    first is answered, the create never is, the connection ends.  (Apache
    ZooKeeper's commit processor sometimes answers the last exists before it
    closes the connection, sometimes not; zkpy answers in order, so never.)"""
    cluster, leader, (a, b) = ensemble
    p = pair(a, b)
    first = p.old.send(Op.EXISTS, PathWatchRequest("/", False))
    moved = p.old.send(*create("/moved-q"))
    p.old.send(Op.EXISTS, PathWatchRequest("/", False))
    assert p.old.is_closed_by_server(20)
    replies = [hdr for kind, hdr in p.old.received if kind == "reply"]
    assert (replies[0].xid, replies[0].err) == (first, 0)
    assert moved not in [hdr.xid for hdr in replies]


def test_close_session_from_the_old_connection_closes_the_session(ensemble):
    cluster, leader, (a, b) = ensemble
    old = RawClient("127.0.0.1", cluster.peers[a].client_port)
    old.connect(timeout_ms=6000)
    new = RawClient("127.0.0.1", cluster.peers[b].client_port)
    new.connect(old.session_id, old.passwd, timeout_ms=6000)
    try:
        hdr, _ = old.request(Op.CLOSE_SESSION)
        assert hdr.err == 0
        # The session is gone everywhere: the new connection is closed too.
        assert new.is_closed_by_server(20)
        again = RawClient("127.0.0.1", cluster.peers[b].client_port)
        resp = again.connect(old.session_id, old.passwd, timeout_ms=6000)
        assert (resp.timeout, resp.session_id) == (0, 0)     # expired
        again.close()
    finally:
        old.close()
        new.close()


def test_a_kazoo_client_whose_session_moved_reconnects_and_takes_it_back(ensemble):
    """kazoo on follower a; a raw client takes its session on follower b.
    kazoo's next write loses its connection; kazoo reconnects to a with the
    same session (which moves back), and the raw client's next write is the
    one that gets its connection closed."""
    cluster, leader, (a, b) = ensemble
    states = []
    zk = KazooClient(hosts=cluster.host(a), timeout=6.0,
                     connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5))
    zk.add_listener(states.append)
    zk.start(timeout=30)
    raw = None
    try:
        sid, passwd = zk.client_id
        raw = RawClient("127.0.0.1", cluster.peers[b].client_port)
        raw.connect(sid, passwd, timeout_ms=6000)
        with pytest.raises(ConnectionLoss):
            zk.create("/moved-k", b"")
        wait_until(lambda: zk.connected, 30, what="kazoo to reconnect")
        assert zk.client_id[0] == sid
        zk.create("/moved-k", b"")
        assert closed_without_reply(raw, *create("/moved-k2"))
        assert zk.exists("/moved-k2") is None
        zk.delete("/moved-k")
        assert "LOST" not in states
    finally:
        if raw is not None:
            raw.close()
        zk.stop()
        zk.close()


def test_a_session_moved_on_the_same_peer_closes_the_older_connection(ensemble):
    """Resuming a session on the peer that already has a connection for it
    closes that connection at once (ServerCnxnFactory.closeSession)."""
    cluster, leader, (a, b) = ensemble
    for peer in (a, leader):
        one = RawClient("127.0.0.1", cluster.peers[peer].client_port)
        one.connect(timeout_ms=6000)
        two = RawClient("127.0.0.1", cluster.peers[peer].client_port)
        two.connect(one.session_id, one.passwd, timeout_ms=6000)
        try:
            assert one.is_closed_by_server(10)
            assert two.ping()[0].err == 0
        finally:
            two.close_session()
            one.close()


def test_nothing_is_sent_on_a_closed_moved_connection(ensemble, pair):
    """No SessionMoved (-118) reply ever reaches the client: the socket just ends."""
    cluster, leader, (a, b) = ensemble
    p = pair(leader, b)
    p.old.send(*create("/moved-n"))
    p.old.sock.settimeout(10)
    data = b""
    try:
        while True:
            chunk = p.old.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pytest.fail("the connection stayed open")
    assert data == b""
