"""Local sessions (localSessionsEnabled) with real processes, compared with
Apache ZooKeeper 3.8: every scenario runs against a 3-peer zkpy ensemble
and a 3-peer Apache ZooKeeper ensemble with the same zoo.cfg keys and the
same clients (kazoo, and a raw client where a reply header's zxid or error
code is the point), and what each observes must be the same.  Observations
are what a client can see: error codes, whether the zxid moved and by how
much, which peers know a session, mntr's session counts, dump's and cons'
lines -- never absolute zxids (a new Apache leader reports its epoch's
first zxid before any txn, zkpy its last txn's) or times.

What both do (localSessionsEnabled=true):
  - a session made on any serving peer, the leader included, is local to
    it: no txn (the zxid does not move), the peer's id in its top byte,
    counted as zk_local_sessions there only, listed under dump's "Local
    Session" sets; reads and writes on it work, writes through the leader;
  - closing it makes no txn; it cannot resume on another peer (expired);
  - it expires on its peer without a txn, its connection closed;
  - an ephemeral (a create, or a multi with one) first upgrades it with a
    createSession txn when localSessionsUpgradingEnabled=true: a global
    session from then on (counted and listed as global everywhere, free to
    move, kept alive through the leader, expired by a closeSession txn that
    deletes its ephemerals) -- even when the create itself fails;
  - with upgrading off the create fails with EphemeralOnLocalSession (-120)
    and uses up a zxid; in a multi, the failing op is -120 on the leader
    and SessionExpired (-112) on a follower.

Nothing asserts on timing: waits only bound a failure."""

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import EphemeralOnLocalSessionError

from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, CreateRequest, DeleteRequest, MultiRequest, PathWatchRequest,
)
from zkpy.rawclient import RawClient
from zkpy.testing import ZkpyServer
from zkpy.testing.apache import ApacheCluster, ApacheZooKeeper, four_letter_word, require_apache
from zkpy.testing.ensemble import Cluster, running, wait_until

TICK = 300
TIMEOUT = 2000          # what the tests' clients ask for (between 2 and 20 ticks)


def keys(upgrading):
    return {"localSessionsEnabled": "true",
            "localSessionsUpgradingEnabled": "true" if upgrading else "false"}


def started(kind, upgrading):
    if kind is ApacheCluster:
        require_apache()
    return running(kind(3, tick_time=TICK, init_limit=10, sync_limit=5,
                        extra=keys(upgrading)))


class Ensemble:
    """One running ensemble, as the scenarios use it."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.clients = []
        self.paths = 0

    def ready(self):
        self.leader = self.cluster.wait_ready()
        self.followers = sorted(i for i in self.cluster.peers if i != self.leader)
        # A client of the leader's for the scenario's own checks; and a txn,
        # so that every peer reports the same zxid (those of a fresh Apache
        # ensemble do not until its first txn).
        self.watcher = self.raw(self.leader)
        self.watcher.request(Op.CREATE, create("/local-sessions", 0))
        self.cluster.wait_caught_up()

    def exists(self, path) -> bool:
        return self.watcher.request(Op.EXISTS, PathWatchRequest(path, False))[0].err == 0

    def delete(self, path):
        self.watcher.request(Op.DELETE, DeleteRequest(path, -1))

    def peer(self, role):
        """'leader', 'follower' (the first) or 'other' (the second follower)."""
        return {"leader": self.leader, "follower": self.followers[0],
                "other": self.followers[1]}[role]

    def raw(self, peer, session_id=0, passwd=bytes(16), timeout=TIMEOUT):
        c = RawClient("127.0.0.1", self.cluster.peers[peer].client_port)
        c.connect(session_id, passwd, timeout_ms=timeout)
        self.clients.append(c)
        return c

    def kazoo(self, peer, **kw):
        states = []
        c = KazooClient(hosts=self.cluster.host(peer), timeout=TIMEOUT / 1000,
                        connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5), **kw)
        c.add_listener(states.append)
        c.start(timeout=30)
        self.clients.append(c)
        return c, states

    def zxid(self) -> int:
        """The ensemble's last zxid: every peer has applied it."""
        self.cluster.wait_caught_up()
        return self.cluster.peers[self.leader].zxid()

    def counts(self) -> dict:
        """mntr's (global, local) session counts by role, once every peer
        has applied the same txns."""
        self.cluster.wait_caught_up()
        out = {}
        for role in ("leader", "follower", "other"):
            m = self.cluster.peers[self.peer(role)].mntr()
            out[role] = (int(m["zk_global_sessions"]), int(m["zk_local_sessions"]))
        return out

    def path(self, stem):
        self.paths += 1
        return f"/{stem}-{self.paths}"

    def close(self):
        for c in self.clients:
            try:
                if isinstance(c, KazooClient):
                    c.stop()
                    c.close()
                elif not c.closed:
                    c.close_session()
            except Exception:
                pass
        self.clients = []


def delta(before: dict, after: dict) -> dict:
    return {r: (after[r][0] - before[r][0], after[r][1] - before[r][1]) for r in before}


def session_gone(ens, peer, sid):
    """Wait until peer no longer lists sid in dump (it expired there)."""
    wait_until(lambda: f"0x{sid:x}" not in ens.cluster.peers[peer].four_letter("dump"),
               30, what=f"session 0x{sid:x} to expire on peer {peer}")


def expired(ens, peer, client) -> bool:
    """Does resuming client's session on peer say it expired?"""
    c = RawClient("127.0.0.1", ens.cluster.peers[peer].client_port)
    try:
        resp = c.connect(client.session_id, client.passwd, timeout_ms=TIMEOUT)
        return (resp.timeout, resp.session_id) == (0, 0)
    finally:
        c.close()


def create(path, flags):
    return CreateRequest(path, b"", OPEN_ACL_UNSAFE, flags)


# --- the ensembles -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zkpy_upgrading():
    with started(Cluster, True) as c:
        yield c


@pytest.fixture(scope="module")
def apache_upgrading():
    with started(ApacheCluster, True) as c:
        yield c


@pytest.fixture(scope="module")
def zkpy_no_upgrading():
    with started(Cluster, False) as c:
        yield c


@pytest.fixture(scope="module")
def apache_no_upgrading():
    with started(ApacheCluster, False) as c:
        yield c


def compare(scenario, zkpy_cluster, apache_cluster, *args):
    """Run scenario on both ensembles; what zkpy shows must be what
    ZooKeeper shows.  Returns it."""
    seen = {}
    for name, cluster in (("apache", apache_cluster), ("zkpy", zkpy_cluster)):
        ens = Ensemble(cluster, name)
        ens.ready()
        try:
            seen[name] = scenario(ens, *args)
        except BaseException:
            print(cluster.dump_logs())
            raise
        finally:
            ens.close()
    assert seen["zkpy"] == seen["apache"]
    return seen["zkpy"]


@pytest.fixture
def upgrading(zkpy_upgrading, apache_upgrading):
    return lambda scenario, *args: compare(scenario, zkpy_upgrading, apache_upgrading, *args)


@pytest.fixture
def no_upgrading(zkpy_no_upgrading, apache_no_upgrading):
    return lambda scenario, *args: compare(scenario, zkpy_no_upgrading, apache_no_upgrading,
                                           *args)


ROLES = ["leader", "follower"]


# --- scenarios -----------------------------------------------------------------------------

def new_session(ens, role):
    """A new session: no txn, local to its peer."""
    peer = ens.peer(role)
    z0, n0 = ens.zxid(), ens.counts()
    c = ens.raw(peer)
    seen = {"sid_top_byte_is_peer": c.session_id >> 56 == peer,
            "timeout": c.negotiated_timeout, "zxid_moved": ens.zxid() - z0,
            "counts": delta(n0, ens.counts())}
    dump = ens.cluster.peers[peer].four_letter("dump").splitlines()
    local = [i for i, line in enumerate(dump) if line.startswith("Local Session Sets")]
    glob = [i for i, line in enumerate(dump) if line.startswith("Global Session")]
    at = dump.index(f"\t0x{c.session_id:x}") if f"\t0x{c.session_id:x}" in dump else -1
    seen["dump_lists_it_as_local"] = bool(local and glob and local[0] < at < glob[0])
    seen["dump_sections"] = [line.split("(")[0].strip() for line in dump
                             if line.startswith(("Local", "Global"))]
    cons = ens.cluster.peers[peer].four_letter("cons")
    seen["cons_lists_it"] = f"sid=0x{c.session_id:x}" in cons
    hdr, _ = c.request(Op.EXISTS, PathWatchRequest("/", False))
    seen["exists"] = hdr.err
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_a_new_session_is_local_and_makes_no_txn(upgrading, role):
    seen = upgrading(new_session, role)
    assert seen["sid_top_byte_is_peer"] and seen["zxid_moved"] == 0
    assert seen["counts"] == {"leader": (0, 1 if role == "leader" else 0),
                              "follower": (0, 1 if role == "follower" else 0),
                              "other": (0, 0)}
    assert seen["dump_lists_it_as_local"] and seen["cons_lists_it"]
    assert seen["dump_sections"] == (["Local Session Sets", "Global Session Sets"]
                                     if role == "leader" else
                                     ["Local Session Sets", "Global Sessions"])


def reads_and_writes(ens, role):
    """A kazoo client on a local session: every read and write works, and
    only writes move the zxid."""
    peer = ens.peer(role)
    zk, states = ens.kazoo(peer)
    sid = zk.client_id[0]
    path = ens.path("rw")
    z0 = ens.zxid()
    zk.create(path, b"a")
    zk.set(path, b"b")
    zk.create(path + "/child", b"", sequence=True)
    tx = zk.transaction()
    tx.create(path + "/m", b"m")
    tx.set_data(path, b"c")
    results = [r if isinstance(r, str) else r.version for r in tx.commit()]
    data, stat = zk.get(path)
    zk.sync(path)
    children = zk.get_children(path)
    zk.delete(path, recursive=True)
    return {"local": sid >> 56 == peer, "data": data, "version": stat.version,
            "children": sorted(c[:5] for c in children), "multi": results,
            "zxid_moved": ens.zxid() - z0, "states": [str(s) for s in states]}


@pytest.mark.parametrize("role", ROLES)
def test_a_local_session_reads_and_writes(upgrading, role):
    seen = upgrading(reads_and_writes, role)
    # create, set, create, multi, delete of the two children and the node.
    assert seen["zxid_moved"] == 7 and seen["local"] and seen["data"] == b"c"


def upgrade(ens, role, how):
    """An ephemeral upgrades the session: a createSession txn, then the
    create; a global session from then on, which moves, outlives its
    connection and expires with its ephemeral."""
    peer = ens.peer(role)
    c = ens.raw(peer)
    path = ens.path("eph")
    z0, n0 = ens.zxid(), ens.counts()
    if how == "create":
        hdr, result = c.request(Op.CREATE, create(path, 1))
        result = [result]
    else:
        hdr, result = c.request(Op.MULTI, MultiRequest([(Op.CREATE, create(path + "p", 0)),
                                                        (Op.CREATE, create(path, 1))]))
        result = [(r.err, r.value) for r in result]
    seen = {"err": hdr.err, "result": result, "reply_zxid": hdr.zxid - z0,
            "zxid_moved": ens.zxid() - z0, "counts": delta(n0, ens.counts())}
    # Another ephemeral: the session is global already, one txn.
    z1 = ens.zxid()
    hdr, _ = c.request(Op.CREATE, create(path + "-2", 1))
    seen["second"] = (hdr.err, ens.zxid() - z1)
    # The connection goes (no closeSession); the session moves to another peer.
    c.close()
    elsewhere = ens.raw(ens.peer("other"), c.session_id, c.passwd)
    seen["moved"] = (elsewhere.session_id == c.session_id
                     and elsewhere.negotiated_timeout == TIMEOUT)
    seen["ephemeral_outlives_its_connection"] = ens.exists(path)
    # Silent: the leader expires it by a closeSession txn with its ephemerals.
    elsewhere.close()
    z2 = ens.zxid()
    wait_until(lambda: not ens.exists(path), 30, what=f"{path} to go with its session")
    seen["expiry"] = {"zxid_moved": ens.zxid() - z2, "second_gone": not ens.exists(path + "-2"),
                      "counts": delta(n0, ens.counts())}
    if how == "multi":
        ens.delete(path + "p")
    return seen


@pytest.mark.parametrize("how", ["create", "multi"])
@pytest.mark.parametrize("role", ROLES)
def test_an_ephemeral_upgrades_the_session(upgrading, role, how):
    seen = upgrading(upgrade, role, how)
    assert seen["err"] == 0 and seen["zxid_moved"] == 2 and seen["reply_zxid"] == 2
    # Global on every peer, local no more on its own.
    assert seen["counts"] == {"leader": (1, -1 if role == "leader" else 0),
                              "follower": (1, -1 if role == "follower" else 0),
                              "other": (1, 0)}
    assert seen["second"] == (0, 1)
    assert seen["moved"] and seen["ephemeral_outlives_its_connection"]
    assert seen["expiry"]["zxid_moved"] == 1 and seen["expiry"]["second_gone"]
    assert seen["expiry"]["counts"] == {"leader": (0, -1 if role == "leader" else 0),
                                        "follower": (0, -1 if role == "follower" else 0),
                                        "other": (0, 0)}


def failed_upgrade(ens, role):
    """The create that asked for the upgrade fails (no parent): the session
    is global all the same."""
    peer = ens.peer(role)
    c = ens.raw(peer)
    z0, n0 = ens.zxid(), ens.counts()
    hdr, _ = c.request(Op.CREATE, create(ens.path("nope") + "/eph", 1))
    seen = {"err": hdr.err, "zxid_moved": ens.zxid() - z0,
            "global": delta(n0, ens.counts())["other"][0]}
    seen["resumes_elsewhere"] = not expired(ens, ens.peer("other"), c)
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_an_upgrade_stays_when_its_create_fails(upgrading, role):
    seen = upgrading(failed_upgrade, role)
    assert seen == {"err": Err.NO_NODE, "zxid_moved": 2, "global": 1, "resumes_elsewhere": True}


def kazoo_ephemeral(ens, role):
    """kazoo's ephemeral on a local session: upgraded, or refused."""
    zk, states = ens.kazoo(ens.peer(role))
    path = ens.path("keph")
    z0 = ens.zxid()
    try:
        zk.create(path, b"", ephemeral=True)
        outcome = "created"
    except EphemeralOnLocalSessionError:
        outcome = "EphemeralOnLocalSession"
    return {"outcome": outcome, "zxid_moved": ens.zxid() - z0,
            "exists": zk.exists(path) is not None, "states": [str(s) for s in states]}


@pytest.mark.parametrize("role", ROLES)
def test_kazoo_ephemeral_with_upgrading(upgrading, role):
    assert upgrading(kazoo_ephemeral, role) == {
        "outcome": "created", "zxid_moved": 2, "exists": True, "states": ["CONNECTED"]}


@pytest.mark.parametrize("role", ROLES)
def test_kazoo_ephemeral_without_upgrading(no_upgrading, role):
    assert no_upgrading(kazoo_ephemeral, role) == {
        "outcome": "EphemeralOnLocalSession", "zxid_moved": 1, "exists": False,
        "states": ["CONNECTED"]}


def refused(ens, role):
    """Upgrading off: no ephemeral on a local session; each try is an error
    txn at the leader; the session stays local."""
    peer = ens.peer(role)
    c = ens.raw(peer)
    path = ens.path("refused")
    z0, n0 = ens.zxid(), ens.counts()
    hdr, _ = c.request(Op.CREATE, create(path, 1))
    seen = {"create": (hdr.err, hdr.zxid - z0, ens.zxid() - z0)}
    hdr, _ = c.request(Op.CREATE2, create(path, 3))
    seen["create2_sequential"] = hdr.err
    z1 = ens.zxid()
    hdr, results = c.request(Op.MULTI, MultiRequest([(Op.CREATE, create(path + "p", 0)),
                                                     (Op.CREATE, create(path, 1))]))
    seen["multi"] = (hdr.err, [r.err for r in results], ens.zxid() - z1)
    hdr, _ = c.request(Op.CREATE_CONTAINER, create(path + "c", 1))
    seen["container_with_ephemeral_mode"] = hdr.err
    hdr, _ = c.request(Op.CREATE, create(path + "/under-nothing", 1))
    seen["no_parent"] = hdr.err
    hdr, _ = c.request(Op.CREATE, create(path + "p", 0))
    seen["persistent"] = hdr.err
    c.request(Op.DELETE, DeleteRequest(path + "p", -1))
    seen["counts"] = delta(n0, ens.counts())
    seen["still_local"] = expired(ens, ens.peer("other"), c)
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_without_upgrading_an_ephemeral_is_refused(no_upgrading, role):
    seen = no_upgrading(refused, role)
    assert seen["create"] == (Err.EPHEMERAL_ON_LOCAL_SESSION, 1, 1)
    assert seen["create2_sequential"] == Err.EPHEMERAL_ON_LOCAL_SESSION
    # In a multi the leader's own check says so; a follower's request
    # carries the leader's verdict on a session it does not know.
    failing = Err.EPHEMERAL_ON_LOCAL_SESSION if role == "leader" else Err.SESSION_EXPIRED
    assert seen["multi"] == (0, [0, failing], 1)
    assert seen["container_with_ephemeral_mode"] == Err.SESSION_EXPIRED
    assert seen["no_parent"] == Err.EPHEMERAL_ON_LOCAL_SESSION
    assert seen["persistent"] == 0
    assert seen["counts"] == {r: (0, 0) for r in ("leader", "follower", "other")}
    assert seen["still_local"]


def close_and_move(ens, role):
    """Closing a local session makes no txn; it cannot resume anywhere
    else, and after its close not even here."""
    peer = ens.peer(role)
    c = ens.raw(peer)
    seen = {}
    seen["elsewhere"] = [expired(ens, ens.peer(r), c)
                         for r in ("leader", "follower", "other") if r != role]
    hdr, _ = c.request(Op.EXISTS, PathWatchRequest("/", False))
    seen["still_works_here"] = hdr.err
    z0, n0 = ens.zxid(), ens.counts()
    # A write, then closeSession right behind it: the close is answered
    # after the write, with its zxid.
    path = ens.path("close")
    x1 = c.send(Op.CREATE, create(path, 0))
    x2 = c.send(Op.CLOSE_SESSION)
    h1, _ = c.read_reply(Op.CREATE)
    h2, _ = c.read_reply(Op.CLOSE_SESSION)
    seen["close"] = ((h1.xid, h1.err), (h2.xid, h2.err), h2.zxid == h1.zxid)
    assert (x1, x2) == (h1.xid, h2.xid)
    seen["connection_closed"] = c.is_closed_by_server(10)
    seen["zxid_moved"] = ens.zxid() - z0          # the create only
    seen["counts"] = delta(n0, ens.counts())
    seen["resumes_here_after_close"] = not expired(ens, peer, c)
    ens.delete(path)
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_close_and_resume_elsewhere(upgrading, role):
    seen = upgrading(close_and_move, role)
    assert seen["elsewhere"] == [True, True] and seen["still_works_here"] == 0
    assert seen["close"][1][1] == 0 and seen["close"][2]
    assert seen["connection_closed"] and seen["zxid_moved"] == 1
    assert seen["counts"] == {r: (0, -1 if r == role else 0)
                              for r in ("leader", "follower", "other")}
    assert not seen["resumes_here_after_close"]


def kazoo_moves(ens, role):
    """A kazoo client resumes a local session on another peer: it finds it
    expired and quietly starts a new session there (a kazoo client that
    never connected with that session sees no LOST); the session's own
    connection is not disturbed."""
    zk, _ = ens.kazoo(ens.peer(role))
    sid, passwd = zk.client_id
    other, states = ens.kazoo(ens.peer("other"), client_id=(sid, passwd))
    return {"states": [str(s) for s in states], "new_session": other.client_id[0] != sid,
            "new_session_is_the_new_peers": other.client_id[0] >> 56 == ens.peer("other"),
            "old_connection_works": zk.exists("/") is not None}


@pytest.mark.parametrize("role", ROLES)
def test_kazoo_resuming_a_local_session_elsewhere_gets_a_new_one(upgrading, role):
    assert upgrading(kazoo_moves, role) == {
        "states": ["CONNECTED"], "new_session": True, "new_session_is_the_new_peers": True,
        "old_connection_works": True}


def expiry(ens, role):
    """A silent local session expires on its peer: its connection closed,
    no txn, gone from mntr; resuming it says expired."""
    peer = ens.peer(role)
    n0 = ens.counts()
    c = ens.raw(peer, timeout=1)        # the minimum: two ticks
    seen = {"timeout": c.negotiated_timeout}
    z0 = ens.zxid()
    seen["connection_closed"] = c.is_closed_by_server(30)
    session_gone(ens, peer, c.session_id)
    seen["zxid_moved"] = ens.zxid() - z0
    seen["counts"] = delta(n0, ens.counts())
    seen["resume"] = expired(ens, peer, c)
    c.close()
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_a_local_session_expires_on_its_peer(upgrading, role):
    assert upgrading(expiry, role) == {
        "timeout": 2 * TICK, "connection_closed": True, "zxid_moved": 0,
        "counts": {r: (0, 0) for r in ("leader", "follower", "other")}, "resume": True}


# --- a standalone server ------------------------------------------------------------------------

def standalone(host, port):
    first = RawClient(host, port)
    first.connect()
    z0 = first.request(Op.EXISTS, PathWatchRequest("/", False))[0].zxid
    c = RawClient(host, port)
    c.connect()
    z1 = c.request(Op.EXISTS, PathWatchRequest("/", False))[0].zxid
    hdr, _ = c.request(Op.CREATE, create("/eph", 1))
    mntr = dict(line.split("\t") for line in four_letter_word(host, port, "mntr").splitlines()
                if "\t" in line)
    for client in (first, c):
        client.close_session()
    return {"zxid_moved": z1 - z0, "ephemeral": hdr.err,
            "sessions": (mntr["zk_global_sessions"], mntr["zk_local_sessions"])}


def test_a_standalone_server_has_no_local_sessions():
    """ZooKeeper's standalone server reads neither key: every session is
    made by a txn and may own ephemerals."""
    require_apache()
    keys_ = keys(upgrading=False)
    seen = {}
    with ApacheZooKeeper(extra_cfg=keys_) as zk:
        host, port = zk.hosts.split(":")
        seen["apache"] = standalone(host, int(port))
    with ZkpyServer(config=keys_) as zk:
        host, port = zk.hosts.split(":")
        seen["zkpy"] = standalone(host, int(port))
    assert seen["zkpy"] == seen["apache"] == {"zxid_moved": 1, "ephemeral": 0,
                                              "sessions": ("2", "0")}
