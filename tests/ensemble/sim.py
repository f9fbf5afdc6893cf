"""A deterministic simulation of a zkpy ensemble running the real code: on
every peer the real ZAB state machine (zkpy.zab.peer.ZabPeer), the real
server (zkpy.server.zkserver.ZooKeeperServer) playing its real roles
(zkpy.server.roles: leader, follower, observer, looking), and real client
connections (zkpy.server.connection.ClientConnection) that read and write
jute bytes.  Only the world around them is simulated: a seeded network and
disk, a clock, and the clients.  Invariants are checked after every step.

The simulated world does what the asyncio shell (zkpy.server.quorum,
zkpy.server.listener) does for a real peer: it carries out the peer's
effects, feeds it messages, log syncs and ticks, swaps the server's role
when the peer's state changes (roles.follow_peer), ticks the server's
session expiry, and sends a SNAP with the real snapshot bytes.

The network gives each pair of peers a FIFO link, as TCP does.  It delays
messages by random amounts, breaks links (everything in flight is lost and both
ends are told), and partitions peers (a message across the cut is lost, which
breaks its link).  Disks make a write durable only when its sync completes; a
crash loses the unsynced tail.  Peers crash and restart from their disk.

Invariants (checked as effects happen):
  - at most one established leader per epoch;
  - committed txns form one sequence G: every peer applies exactly G's txns,
    in G's order, with no gap, from wherever its disk left it;
  - a committed txn is never truncated away, lost or changed;
  - peers that applied the same prefix hold identical trees and sessions.

Client sessions (Simulation(seed, clients=4)): each simulated client speaks
the wire protocol to a real ClientConnection of a serving peer, over its own
FIFO connection: it connects (a new session, or its session resumed after a
move, which a follower has its leader revalidate; an expired session is
replaced by a new one), pings when idle, and pipelines a few requests:
setData and getData on the registers (REGISTERS), and sync followed by
getData.  Everything between the bytes is the real server: a follower
forwards a write to its leader, the leader preps it into a txn and proposes
it, and the client's peer answers when it applies that txn; a sync goes to
the leader and is answered once the peer has applied what the leader had
proposed; sessions are created, touched, revalidated and expired by txns and
the leader's tracker.  When its connection closes (or a request waits longer
than client_timeout) a client loses its requests in flight (their outcome is
unknown) and reconnects to another serving peer; a peer that has applied
less than the client's last seen zxid refuses it, as ZooKeeper does.  Every
client keeps a history (invoke/complete, value, the zxid of the reply).
Checked:
  - as each reply arrives: replies in request order (FIFO); zxids a client
    sees never go back, across moves too; an acknowledged write is committed
    with its value, its session and its xid; a read returns what committed
    history holds at the zxid of its reply; read-your-writes (a read after the
    client's acknowledged write sees it or a later write); a client's view of a
    register never goes back;
  - once the faults stop (settle(), or faults=False): every request is
    answered, or its connection closes, within client_timeout;
  - at settle(): the history of writes and sync-preceded reads is
    linearizable, register by register (tests/ensemble/linearizability.py).
Clients reach every peer (partitions cut only the links between peers).
Scenario tests script clients with add_session(), attach(), invoke() and
run_until().

Local sessions (Simulation(seed, clients=4, local_sessions=True), and
upgrading=False for localSessionsUpgradingEnabled=false): every session is
local to the peer its client connected to, so a client that moves finds it
expired and starts a new one.  Clients also create ephemerals now and then
(a create, or a multi with one) through the real path -- which upgrades the
session to a global one by a createSession txn, or fails with
EphemeralOnLocalSession -- and sometimes write and close their session in
one go.  Checked, on
top of the above:
  - an acknowledged ephemeral is committed at its reply's zxid, owned by
    the session, whose createSession txn committed before it; its failure
    is one ZooKeeper gives (session expired, or EphemeralOnLocalSession
    without upgrading);
  - only an upgrade makes a createSession txn (none without upgrading);
  - a local session resumes only on the peer that made it;
  - in every peer's tree each ephemeral's owner is a live global session.

A failure raises SimulationError with the seed, the trace tail (and for
client runs the history tail), enough to replay it: the message gives the
exact call, e.g. Simulation(seed).run(steps).settle()."""

import bisect
import dataclasses
import heapq
import inspect
import random
from collections import deque
from pathlib import Path

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.errors import Err
from zkpy.protocol.jute import INT, Reader, Writer
from zkpy.protocol.opcodes import CreateMode, Op, Xid
from zkpy.protocol.records import (
    OPEN_ACL_UNSAFE, AuthPacket, ConnectRequest, ConnectResponse, CreateRequest, MultiRequest,
    PathRequest, PathWatchRequest, ReconfigRequest, ReplyHeader, SetDataRequest, Stat,
    encode_request,
)
from zkpy.rawclient import decode_multi
from zkpy.server.config import ServerConfig, ServerSpec
from zkpy.server.membership import Membership, read_config, server_line
from zkpy.server.connection import ClientConnection
from zkpy.server.prep import Prep
from zkpy.server.roles import LookingRole, follow_peer
from zkpy.server.zkserver import ZooKeeperServer
from zkpy.storage.snapshot import parse_snapshot, snapshot_bytes
from zkpy.server import digests
from zkpy.zab.messages import (
    SNAP, Apply, CheckDigest, Commit, Deliver, Epochs, Inform, Informs, InstallSnapshot, Log,
    Reconfigured, RoleChanged, Send, Serving, Sync, Truncate,
)
from zkpy.zab.peer import LEADING, ZabPeer
from zkpy.zab.port import ZabPort
from zkpy.zab.quorum import QuorumConfig

from .linearizability import Operation, Undecided, check, minimal_failing_prefix, register

REGISTERS = ["/r0", "/r1", "/r2", "/r3"]
SESSION_TIMEOUT = 2000          # what clients ask for (maxSessionTimeout is 20 ticks)
CONFIG_NODE = "/zookeeper/config"
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="     # super:test, the admin's password
WALL_BASE = 1_700_000_000_000   # the simulated wall clock starts here


class SimulationError(AssertionError):
    pass


def initial_snapshot() -> tuple:
    """The snapshot every peer starts from: the registers, created by txns."""
    tree = DataTree()
    prep = Prep(tree)
    for zxid, path in enumerate(REGISTERS, 1):
        overlay = {}
        body = prep.prep_op(Op.CREATE, CreateRequest(path, b"", OPEN_ACL_UNSAFE, 0), 0, (),
                            overlay)
        prep.commit_overlay(overlay, zxid)
        tree.apply(Txn(0, 0, zxid, WALL_BASE, Op.CREATE, body))
        prep.applied(zxid)
    return snapshot_bytes(tree, tree.last_zxid), tree.last_zxid


class SimClock:
    """The server's clock (zkpy.server.clock) on simulated time."""

    def __init__(self, sim):
        self.sim = sim

    def now_ms(self) -> int:
        return self.sim.now

    def wall_ms(self) -> int:
        return WALL_BASE + self.sim.now


class SimLoop:
    """What a ClientConnection asks of its event loop: call_soon, as an event
    now, and call_later (the RequestThrottler's stall timer)."""

    def __init__(self, sim):
        self.sim = sim

    def call_soon(self, fn, *args):
        self.sim.at(self.sim.now, "call", fn, args)

    def call_later(self, delay, fn, *args):
        self.sim.at(self.sim.now + max(1, round(delay * 1000)), "call", fn, args)


class Disk:
    def __init__(self, snapshot, membership):
        self.snapshot = snapshot          # (snapshot bytes, zxid)
        # The membership in force (what zoo.cfg.dynamic.<version> holds).
        self.membership = membership
        self.log = []                     # durable txns after the snapshot
        self.unsynced = []
        self.epochs = (0, 0)
        self.sync_pending = False


class Node:
    """One peer: the real ZabPeer and ZooKeeperServer on a simulated disk."""

    def __init__(self, sim, nid):
        self.sim = sim
        self.id = nid
        self.disk = Disk(sim.snapshot0, sim.initial_membership(nid))
        self.alive = False
        self.incarnation = 0
        self.stash = {}    # SNAP bytes received, by zxid (as QuorumPeer keeps them)
        self.last_session_tick = 0

    def boot(self):
        sim = self.sim
        blob, zxid = self.disk.snapshot
        tree = parse_snapshot(blob)
        self.alive = True
        self.incarnation += 1
        # Its role as its effects so far tell it (the peer's own may be ahead:
        # a leader that hands over is looking when its last txns apply).
        self.role = None
        acc, cur = self.disk.epochs
        membership = self.disk.membership
        self.peer = ZabPeer(self.id, membership.quorum(), accepted_epoch=acc, current_epoch=cur,
                            history=list(self.disk.log), base_zxid=zxid, now=sim.now,
                            tick_ms=sim.tick_ms, init_limit=sim.init_limit,
                            sync_limit=sim.sync_limit, finalize_ms=sim.finalize_ms,
                            history_limit=sim.history_limit, read_config=read_config,
                            config_text=membership.text().encode(),
                            reconfig_enabled=sim.reconfigs)
        self.port = ZabPort(self.peer, self.process, self.call_soon)
        self.server = ZooKeeperServer(sim.config_of(self.id), txn_log=self, tree=tree,
                                      server_id=self.id, clock=sim.clock,
                                      replay_until=self.peer.last_logged)
        self.server.set_role(LookingRole(self.server))
        self.peer.start()
        self.process()

    @property
    def applied(self) -> int:
        return self.server.tree.last_zxid

    @property
    def serving(self) -> bool:
        return self.alive and self.server.serving

    def crash(self):
        self.alive = False
        self.sim.drop_wires(self)
        d = self.disk
        # The unsynced tail is lost, maybe only part of it.
        keep = self.sim.rng.randint(0, len(d.unsynced)) if self.sim.partial_tail else 0
        d.log.extend(d.unsynced[:keep])
        d.unsynced = []
        d.sync_pending = False
        self.stash.clear()

    def call_soon(self, fn):
        """fn at the end of this step, by this incarnation: a peer that
        crashed meanwhile runs nothing more, as a killed process would not."""
        incarnation = self.incarnation
        self.sim.loop.call_soon(self._if_same_incarnation, incarnation, fn)

    def _if_same_incarnation(self, incarnation, fn):
        if self.alive and self.incarnation == incarnation:
            fn()

    def process(self):
        # Effects of what handling an effect does (a proposal made for an
        # application message) come after the batch in hand, as in
        # QuorumPeer._process.
        while self.peer.out:
            for eff in self.peer.take():
                self.sim.handle(self, eff)

    # --- the server's log (QuorumPeer's part): a leader's txns become proposals ---------------

    def append(self, txn, on_logged):
        self.port.propose(txn)

    def close(self):
        pass


class ClientOp:
    """One request of a client, as its history records it."""
    __slots__ = ("session", "index", "kind", "path", "value", "cxid", "sid", "invoke",
                 "t_invoke", "complete", "t_complete", "status", "zxid", "txn_zxid", "peer",
                 "after_sync")

    def __init__(self, session, index, kind, path, value, cxid, sid, invoke, t_invoke, peer):
        self.session = session
        self.index = index        # position in the client's order
        self.kind = kind          # "write", "read", "sync", "ephemeral" or "close"
        self.path = path
        self.value = value        # written value, or the value read
        self.cxid = cxid          # the request's xid
        self.sid = sid            # the session it was sent on
        self.invoke = invoke      # history order (a global counter: real-time order)
        self.t_invoke = t_invoke  # sim time
        self.complete = None
        self.t_complete = None
        self.status = None        # None (in flight), "ok", "failed" or "unknown"
        self.zxid = None          # the zxid of its reply
        self.txn_zxid = None      # a write's own zxid
        self.peer = peer
        self.after_sync = None    # the sync this read follows

    def __repr__(self):
        what = {"reconfig": f"reconfig {self.value}",
                "write": f"set {self.path}={self.value}",
                "read": f"get {self.path}" + ("" if self.status != "ok" else f" -> {self.value}"),
                "sync": f"sync {self.path}",
                "ephemeral": f"create ephemeral {self.path} ({self.value})",
                "close": "closeSession"}[self.kind]
        if self.after_sync is not None:
            what += f" (after sync #{self.after_sync.index})"
        end = ("in flight" if self.status is None else
               "UNKNOWN" if self.status == "unknown" else
               f"{self.status} @{self.t_complete} [{self.complete}]")
        z = "" if self.zxid is None else f" reply zxid={self.zxid:x}"
        if self.txn_zxid is not None:
            z += f" txn={self.txn_zxid:x}"
        return (f"client {self.session} #{self.index} xid={self.cxid} session={self.sid:x} "
                f"{what} peer {self.peer} @{self.t_invoke} [{self.invoke}] -> {end}{z}")


class Session:
    """A simulated client: one ZooKeeper session at a time (a new one if its
    session expires), its requests in flight, and what it has seen."""

    def __init__(self, idx, depth, ops, admin=False):
        self.idx = idx
        self.admin = admin        # authenticates as the super user; sends reconfigs
        self.depth = depth        # requests in flight at most (a sync+get pair may go over)
        self.mix = ops            # shares of (write, read, sync+read)
        self.ops = []
        self.inflight = deque()   # sent on the current connection, not answered
        self.wire = None
        self.sid = 0              # the session, once granted
        self.passwd = bytes(16)
        self.xid = 0
        self.last_zxid = 0        # ZooKeeper's lastZxidSeen
        self.last_sent = 0
        self.last_peer = None
        self.acked = {}           # path -> zxid of the client's newest acknowledged write
        self.seen = {}            # path -> zxid of the newest write whose value it has seen
        self.moves = 0
        self.sessions = 0         # sessions it has had
        self.closing = False      # its closeSession is on its way: nothing more to send
        self.ephemeral_share = 0.0   # of its requests, with local sessions


class Wire:
    """A client's TCP connection to a peer: the client's end here, the
    server's end a real ClientConnection on a simulated transport."""
    __slots__ = ("id", "session", "node", "incarnation", "conn", "server_open", "client_open",
                 "handshaken", "inbuf", "last_up", "last_down")

    def __init__(self, wid, session, node):
        self.id = wid
        self.session = session
        self.node = node.id
        self.incarnation = node.incarnation
        self.conn = None               # the server's ClientConnection
        self.server_open = False
        self.client_open = True
        self.handshaken = False
        self.inbuf = bytearray()
        self.last_up = 0
        self.last_down = 0


class WireTransport:
    """The server end's transport: what the ClientConnection writes reaches
    the client after a delay, in order; closing reaches it after the data."""

    def __init__(self, sim, wire):
        self.sim = sim
        self.wire = wire
        self.closed = False

    def get_extra_info(self, name):
        # A distinct address per client (maxClientCnxns counts per address).
        return (f"10.0.0.{self.wire.session.idx + 1}", 30000 + self.wire.id) \
            if name == "peername" else None

    def write(self, data):
        if not self.closed:
            self.sim.to_client(self.wire, "c-recv", self.wire, bytes(data))

    def close(self):
        if self.closed:
            return
        self.closed = True
        wire = self.wire
        if wire.server_open:
            wire.server_open = False
            self.sim.at(self.sim.now, "call", wire.conn.connection_lost, (None,))
        self.sim.to_client(wire, "c-closed", wire)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class Simulation:
    def __init__(self, seed, n=3, observers=0, tick_ms=100, init_limit=10, sync_limit=5,
                 finalize_ms=20, history_limit=50, partial_tail=True, faults=True,
                 clients=0, client_timeout=3000, client_ops=None, local_sessions=False,
                 upgrading=True, reconfigs=False, spare=0):
        """reconfigs: reconfigEnabled, and an admin client that adds, removes
        and switches members among the faults; spare: peers that are not
        members at first (they start when a reconfiguration is to add them)."""
        self.seed = seed
        self.args = dict(n=n, observers=observers, tick_ms=tick_ms, init_limit=init_limit,
                         sync_limit=sync_limit, finalize_ms=finalize_ms,
                         history_limit=history_limit, partial_tail=partial_tail, faults=faults,
                         clients=clients, client_timeout=client_timeout, client_ops=client_ops,
                         local_sessions=local_sessions, upgrading=upgrading,
                         reconfigs=reconfigs, spare=spare)
        self.calls = []             # how this run was driven, for the replay line
        self.rng = random.Random(seed)
        ids = list(range(1, n + observers + spare + 1))
        members = ids[:n + observers]
        self.quorum = QuorumConfig.of(ids[:n], ids[n:n + observers])
        self.reconfigs = reconfigs
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.finalize_ms = finalize_ms
        self.history_limit = history_limit
        self.partial_tail = partial_tail
        self.faults = faults
        self.now = 0
        self.clock = SimClock(self)
        self.loop = SimLoop(self)
        self.events = []
        self.seq = 0
        self.snapshot0 = initial_snapshot()
        self.base_zxid = self.snapshot0[1]
        self.all_servers = {i: ServerSpec(i, "127.0.0.1", 2880 + i, 3880 + i,
                                          role="observer" if i in self.quorum.observers
                                          else "participant", client_host="127.0.0.1",
                                          client_port=2180 + i) for i in ids}
        self.static = Membership({i: self.all_servers[i] for i in members})
        self.spare = set(ids) - set(members)
        self.nodes = {i: Node(self, i) for i in ids}
        # The membership in force, as committed history has it.
        self.membership = self.static
        self.admin = None
        self.reconfig_ops = []
        self.link_ids = {}
        self.down_pending = {}      # link -> ends not yet told it broke
        self.last_delivery = {}
        self.cut = set()            # ids on the minority side of a partition
        self.G = []                 # committed txns, in order
        self.G_index = {}           # zxid -> index in G
        self.leaders = {}           # epoch -> leader id
        self.trace = []
        self.writes = 0
        self.proposed = 0
        self.quiet = False
        # Client sessions (clients > 0 replaces the leader's own write workload).
        self.clients = clients
        self.client_timeout = client_timeout
        # (write, read, sync+read) shares for every client; None: each client
        # draws its own, some of them read-only.
        self.client_ops = client_ops
        self.sessions = []
        self.history = []           # ClientOps in invocation order
        self.hseq = 0               # history clock: invocations and completions in order
        self.wire_seq = 0
        self.values = 0
        self.registers = {p: ([0], [0]) for p in REGISTERS}   # committed (zxids, values)
        self.value_zxid = {0: 0}    # value -> zxid of the committed write of it
        self.stats = dict(ok=0, failed=0, unknown=0, refused=0, moves=0, timeouts=0,
                          expired=0, dropped_reqs=0, ephemerals=0, closed=0, reconfigs=0)
        # localSessionsEnabled and localSessionsUpgradingEnabled on every peer.
        self.local_sessions = local_sessions
        self.upgrading = upgrading
        self.ephemerals = 0         # ephemeral paths made up so far (each used once)
        self.wants_ephemeral = set()   # sessions that asked for an ephemeral
        self.session_zxid = {}      # session id -> zxid of its committed createSession
        self.session_home = {}      # session id -> the peer that granted it
        # Sessions a leader proposed a createSession for (its tracker has
        # them as global from then on, as ZooKeeper's leader's prep does).
        self.session_proposed = set()
        # Since when there are no faults: from then on every request must be
        # answered (or its connection close).
        self.calm_since = 0 if not faults else float("inf")
        # A scenario that corrupts a tree on purpose expects the learner to
        # notice (a digest mismatch) and sync again; otherwise one fails the run.
        self.digest_mismatches_expected = False

    def initial_membership(self, nid) -> Membership:
        """A member starts with the static membership; a spare peer with the
        members and itself (as one starts a server to add it)."""
        if nid not in self.spare:
            return self.static
        servers = dict(self.static.servers)
        servers[nid] = self.all_servers[nid]
        return Membership(dict(sorted(servers.items())))

    def config_of(self, nid) -> ServerConfig:
        m = self.nodes[nid].disk.membership
        return ServerConfig(data_dir=Path("/nonexistent"), tick_time=self.tick_ms,
                            init_limit=self.init_limit, sync_limit=self.sync_limit,
                            servers=dict(m.servers), groups=dict(m.groups),
                            weights=dict(m.weights), config_version=m.version, my_id=nid,
                            max_client_cnxns=0, reconfig_enabled=self.reconfigs,
                            super_digest=SUPER_DIGEST,
                            local_sessions_enabled=self.local_sessions,
                            local_sessions_upgrading_enabled=self.upgrading)

    # --- plumbing ---------------------------------------------------------------------

    def at(self, t, *event):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, event))

    def log(self, text):
        self.trace.append(f"{self.now:>7} {text}")
        if len(self.trace) > 4000:
            del self.trace[:1000]

    def replay(self):
        defaults = inspect.signature(Simulation).parameters
        args = "".join(f", {k}={v!r}" for k, v in self.args.items() if defaults[k].default != v)
        return f"Simulation({self.seed}{args})" + "".join(self.calls)

    def fail(self, why, ops=None):
        tail = "\n".join(self.trace[-3000:])
        text = f"seed {self.seed}: {why}\nreplay: {self.replay()}\n--- last events ---\n{tail}"
        if self.clients:
            hist = "\n".join(map(repr, self.history[-60:]))
            text += f"\n--- client history (last 60 invocations) ---\n{hist}"
        if ops:
            text += "\n--- the ops in question ---\n" + "\n".join(map(repr, ops))
        text += f"\n--- {why}\nreplay: {self.replay()}"
        raise SimulationError(text)

    def link(self, a, b):
        key = (min(a, b), max(a, b))
        return self.link_ids.setdefault(key, 0)

    def break_link(self, a, b):
        """Both ends learn (after a while) that the connection died; until
        both know, anything sent on it is lost, as on a dead TCP connection."""
        key = (min(a, b), max(a, b))
        if self.down_pending.get(key):
            return
        self.link_ids[key] = self.link_ids.get(key, 0) + 1
        self.down_pending[key] = 2
        self.at(self.now + self.rng.randint(1, 3 * self.tick_ms), "down", a, b)
        self.at(self.now + self.rng.randint(1, 3 * self.tick_ms), "down", b, a)

    def reachable(self, a, b):
        return (a in self.cut) == (b in self.cut)

    # --- effects (what QuorumPeer does with them) ---------------------------------------------

    def handle(self, node, eff):
        kind = eff.__class__
        if kind is Send:
            msg = eff.msg
            if msg.__class__ in (Commit, Inform, Informs):
                digests.stamp(msg, node.server.tree)
            elif msg.__class__ is Sync and msg.kind == SNAP:
                # The leader's tree as applied now, as the real snapshot bytes.
                tree = node.server.tree
                if tree.last_zxid != msg.zxid:
                    self.fail(f"peer {node.id} sends SNAP at {msg.zxid:x} with tree at "
                              f"{tree.last_zxid:x}")
                msg = dataclasses.replace(msg, snapshot=snapshot_bytes(tree, tree.last_zxid))
            self.send(node.id, eff.to, msg)
        elif kind is Log:
            node.disk.unsynced.extend(eff.txns)
            if node.role == LEADING:
                for txn in eff.txns:
                    if txn.type == Op.CREATE_SESSION:
                        self.session_proposed.add(txn.session_id)
            if not node.disk.sync_pending:
                node.disk.sync_pending = True
                self.at(self.now + self.rng.randint(1, 8), "synced", node.id)
        elif kind is Apply:
            self.check_apply(node, eff.txn)
            node.server.apply(eff.txn)
        elif kind is Epochs:
            node.disk.epochs = (eff.accepted, eff.current)
        elif kind is Truncate:
            z = eff.zxid
            if node.applied > z:
                self.fail(f"peer {node.id} told to truncate to {z:x} below applied "
                          f"{node.applied:x}")
            d = node.disk
            d.log = [t for t in d.log if t.zxid <= z]
            d.unsynced = [t for t in d.unsynced if t.zxid <= z]
        elif kind is InstallSnapshot:
            z = eff.zxid
            blob = node.stash.pop(z, None)
            if blob is None:
                self.fail(f"peer {node.id} has no SNAP bytes for {z:x}")
            tree = parse_snapshot(blob)
            d = node.disk
            d.snapshot = (blob, z)
            d.log = []
            d.unsynced = []
            node.server.install_tree(tree)
            if z != self.base_zxid and z not in self.G_index:
                self.fail(f"peer {node.id} installed a snapshot at uncommitted {z:x}")
        elif kind is RoleChanged:
            self.log(f"peer {node.id} -> {eff.role} leader={eff.leader} epoch={eff.epoch}")
            node.role = eff.role
            follow_peer(node.server, node.port, eff)
        elif kind is Serving:
            if eff.serving and node.peer.role == LEADING:
                if node.id not in node.peer.quorum.voters:
                    self.fail(f"peer {node.id} leads without a vote in its configuration "
                              f"0x{node.peer.quorum.version:x}")
                e = node.peer.current_epoch
                other = self.leaders.setdefault(e, node.id)
                if other != node.id:
                    self.fail(f"two leaders in epoch {e}: {other} and {node.id}")
                self.log(f"peer {node.id} leads epoch {e}")
            follow_peer(node.server, node.port, eff)
        elif kind is Deliver:
            node.server.role.on_app(eff.frm, eff.payload)
        elif kind is Reconfigured:
            m = Membership.parse(eff.config)
            if eff.committed:
                self.check_membership(node, m)
                node.disk.membership = m
                c = node.server.config
                c.servers, c.groups, c.weights, c.config_version = \
                    dict(m.servers), dict(m.groups), dict(m.weights), m.version
                node.server.take_membership()
                self.log(f"peer {node.id}: membership 0x{m.version:x} in force: "
                         f"{sorted(m.voters)} voting")
        elif kind is CheckDigest:
            if not digests.check(node.server, node.peer, eff.zxid, eff.digest):
                if not self.digest_mismatches_expected:
                    self.fail(f"peer {node.id}: its tree's digest differs from the leader's "
                              f"after {eff.zxid:x}")
                self.log(f"peer {node.id}: digest mismatch after {eff.zxid:x}; resync")
        else:
            self.fail(f"peer {node.id}: unknown effect {eff!r}")

    def check_apply(self, node, txn):
        prev_applied = node.applied
        idx = self.G_index.get(txn.zxid)
        if idx is not None:
            if self.G[idx] != txn:
                self.fail(f"peer {node.id} applies a different txn at {txn.zxid:x}")
            prev = self.G[idx - 1].zxid if idx else self.base_zxid
            if prev_applied != prev:
                self.fail(f"peer {node.id} applies {txn.zxid:x} after {prev_applied:x}, "
                          f"committed order has {prev:x} before it")
            return
        last = self.G[-1].zxid if self.G else self.base_zxid
        if node.role != LEADING:
            self.fail(f"follower {node.id} applies {txn.zxid:x} that no leader committed")
        if prev_applied != last:
            self.fail(f"leader {node.id} commits {txn.zxid:x} after {prev_applied:x}, "
                      f"but the last committed txn is {last:x} (a committed txn was lost)")
        if txn.zxid <= last:
            self.fail(f"leader {node.id} commits {txn.zxid:x} not after {last:x}")
        self.G_index[txn.zxid] = len(self.G)
        self.G.append(txn)
        if txn.type == Op.RECONFIG:
            self.membership = Membership.parse(txn.body[1])
            self.log(f"committed: membership 0x{txn.zxid:x} {sorted(self.membership.voters)} "
                     "voting")
        if txn.type == Op.CREATE_SESSION:
            self.check_session_txn(txn)
        if txn.type == Op.SET_DATA and txn.body[0] in self.registers:
            zs, vs = self.registers[txn.body[0]]
            v = int(txn.body[1])
            zs.append(txn.zxid)
            vs.append(v)
            self.value_zxid[v] = txn.zxid

    def check_membership(self, node, m):
        """A membership a peer puts in force was committed: by a reconfig txn
        of committed history, or (its version the first zxid of an epoch) by a
        leader's establishment, from the static one; and a peer's never goes
        back to an older one."""
        if m.version & 0xFFFFFFFF:
            idx = self.G_index.get(m.version)
            if idx is None or self.G[idx].type != Op.RECONFIG or \
                    Membership.parse(self.G[idx].body[1]).servers != m.servers:
                self.fail(f"peer {node.id} puts in force membership 0x{m.version:x} that no "
                          "committed reconfig made")
        elif m.servers != self.static.servers and m.version:
            self.fail(f"peer {node.id}: membership 0x{m.version:x} is no static one")
        if m.version < node.disk.membership.version:
            self.fail(f"peer {node.id}: membership went back from "
                      f"0x{node.disk.membership.version:x} to 0x{m.version:x}")

    def send(self, frm, to, msg):
        if self.down_pending.get((min(frm, to), max(frm, to))):
            return
        if not self.reachable(frm, to):
            self.break_link(frm, to)
            return
        lid = self.link(frm, to)
        delay = self.rng.randint(0, 20)
        t = max(self.now + delay, self.last_delivery.get((frm, to), 0))
        self.last_delivery[(frm, to)] = t
        self.at(t, "deliver", frm, to, msg, lid)

    # --- events ----------------------------------------------------------------------

    def step(self):
        t, _, event = heapq.heappop(self.events)
        self.now = max(self.now, t)
        kind = event[0]
        if kind == "call":
            _, fn, args = event
            fn(*args)
        elif kind == "deliver":
            _, frm, to, msg, lid = event
            node = self.nodes[to]
            if not node.alive or lid != self.link(frm, to) or not self.nodes[frm].alive:
                return
            if msg.__class__ is Sync and msg.snapshot is not None:
                # As QuorumPeer._on_message: the bytes wait for InstallSnapshot.
                node.stash[msg.zxid] = msg.snapshot
                msg = dataclasses.replace(msg, snapshot=None)
            node.peer.receive(frm, msg)
            node.process()
        elif kind == "down":
            _, a, b = event
            key = (min(a, b), max(a, b))
            self.down_pending[key] = self.down_pending.get(key, 1) - 1
            node = self.nodes[a]
            if node.alive:
                node.peer.link_down(b)
                node.process()
        elif kind == "synced":
            node = self.nodes[event[1]]
            d = node.disk
            if not node.alive or not d.sync_pending:
                return
            d.sync_pending = False
            if d.unsynced:
                d.log.extend(d.unsynced)
                last = d.unsynced[-1].zxid
                d.unsynced = []
                node.peer.logged(last)
                node.process()
        elif kind == "tick":
            node = self.nodes[event[1]]
            if node.alive:
                node.peer.tick(self.now)
                node.process()
                node.server.role.tick(self.now)
                if self.now - node.last_session_tick >= self.tick_ms:
                    # ServerRunner's tick: session expiry, idle connections.
                    node.last_session_tick = self.now
                    node.server.tick(self.now)
            self.at(self.now + self.rng.randint(10, 30), "tick", event[1])
        elif kind == "workload":
            self.workload()
            self.at(self.now + self.rng.randint(1, 15), "workload")
        elif kind == "fault":
            if self.faults:
                self.fault()
            self.at(self.now + self.rng.randint(50, 800), "fault")
        elif kind == "reconfig":
            self.reconfigure()
            self.at(self.now + self.rng.randint(100, 1500), "reconfig")
        elif kind == "restart":
            node = self.nodes[event[1]]
            if not node.alive:
                self.log(f"peer {node.id} restarts")
                node.boot()
        elif kind == "heal":
            self.log("partition healed")
            self.cut = set()
        elif kind in self.CLIENT_EVENTS:
            getattr(self, self.CLIENT_EVENTS[kind])(*event[1:])

    def workload(self):
        """Without clients: the leader's server writes a register itself,
        through its real prep and log."""
        if self.quiet:
            return
        for node in self.nodes.values():
            if node.alive and node.peer.role == LEADING and node.serving:
                path = self.rng.choice(REGISTERS)
                self.writes += 1
                data = b"%d" % self.writes
                server = node.server

                def build(path=path, data=data, server=server):
                    overlay = {}
                    body = server.prep.prep_op(Op.SET_DATA, SetDataRequest(path, data, -1), 0,
                                               (), overlay)
                    return Op.SET_DATA, body, overlay
                server.submit(0, self.writes, Op.SET_DATA, build)
                self.proposed += 1

    def fault(self):
        rng = self.rng
        alive = [n for n in self.nodes.values() if n.alive]
        r = rng.random()
        if r < 0.3 and alive:
            node = rng.choice(alive)
            self.log(f"peer {node.id} crashes")
            node.crash()
            for other in self.nodes:
                if other != node.id:
                    self.break_link(other, node.id)
            self.at(self.now + rng.randint(50, 1500), "restart", node.id)
        elif r < 0.5:
            ids = list(self.nodes)
            self.cut = set(rng.sample(ids, rng.randint(1, max(1, len(ids) // 2))))
            self.log(f"partition {sorted(self.cut)} | rest")
            self.at(self.now + rng.randint(200, 3000), "heal")
        elif r < 0.8:
            ids = list(self.nodes)
            a, b = rng.sample(ids, 2)
            self.log(f"link {a}-{b} breaks")
            self.break_link(a, b)
        elif r < 0.9 and self.sessions:
            # A client goes away for a while (a paused process, a lost
            # network): long enough, and its session expires meanwhile.
            s = rng.choice(self.sessions)
            if s.wire is not None:
                away = rng.randint(SESSION_TIMEOUT // 4, 2 * SESSION_TIMEOUT)
                self.client_lost(s, f"client goes away for {away} ms", reconnect=False)
                self.at(self.now + away, "c-connect", s)
        # else: a quiet spell

    def reconfigure(self):
        """The admin adds a peer that is not a member (starting it if it never
        ran), removes a voter, or switches a member between participant and
        observer, through a reconfig request of its session."""
        s = self.admin
        if s is None or s.wire is None or not s.wire.handshaken or s.inflight or self.quiet:
            return
        rng = self.rng
        m = self.membership
        outside = [i for i in self.nodes if i not in m.servers]
        r = rng.random()
        if r < 0.35 and outside:
            i = rng.choice(outside)
            node = self.nodes[i]
            if not node.incarnation:
                self.log(f"peer {i} starts, to join")
                node.boot()
            line = f"server.{i}={server_line(self.all_servers[i])}"
            change = (line, None)
        elif r < 0.7 and len(m.voters) > 2:
            change = (None, str(rng.choice(m.voters)))
        else:
            i = rng.choice(list(m.servers))
            spec = dataclasses.replace(m.servers[i], role="participant"
                                       if m.servers[i].is_observer else "observer")
            change = (f"server.{i}={server_line(spec)}", None)
        self.log(f"admin: reconfig joining={change[0]} leaving={change[1]}")
        self.invoke(s, "reconfig", None, change)

    def run(self, steps=4000):
        self.calls.append(f".run({steps})")
        for nid, node in self.nodes.items():
            if nid not in self.spare:       # spare peers start when they are to join
                node.boot()
            self.at(self.rng.randint(0, 30), "tick", nid)
        if self.clients:
            self.start_clients()
        else:
            self.at(50, "workload")
        self.at(300, "fault")
        if self.reconfigs:
            self.at(400, "reconfig")
        for _ in range(steps):
            if not self.events:
                break
            self.step()
        self.check_trees()
        return self

    def settle(self, ms=5000, clients_ms=1500):
        """Heal everything, restart the dead, and run on so the ensemble
        converges; then every live peer must hold all of G.  Clients go on
        for clients_ms, then wait for their answers: a request made in this
        calm must be answered (or its connection closed), and in the end the
        client history must be linearizable."""
        self.calls.append(".settle()" if (ms, clients_ms) == (5000, 1500)
                          else f".settle({ms}, {clients_ms})")
        self.faults = False
        if self.clients:
            self.calm_since = self.now
            self.at(self.now + clients_ms, "c-quiet")
        else:
            self.quiet = True
        self.cut = set()
        for node in self.nodes.values():
            if not node.alive and node.incarnation:
                node.boot()
        end = self.now + ms
        while self.events and self.now < end:
            self.step()
        self.check_trees()
        self.check_in_process()
        if self.clients:
            for sess in self.sessions:
                for op in sess.inflight:
                    if op.t_invoke >= self.calm_since and \
                            self.now - op.t_invoke >= ms - clients_ms:
                        self.fail(f"client {sess.idx}: a request made after the faults stopped "
                                  f"has had no answer for {self.now - op.t_invoke} ms", [op])
            self.check_history()
        return self

    def check_trees(self):
        by_zxid = {}
        for node in self.nodes.values():
            if not node.alive:
                continue
            tree = node.server.tree
            for sid, paths in tree.ephemerals.items():
                if paths and sid not in tree.sessions:
                    self.fail(f"peer {node.id}: ephemerals {sorted(paths)} of session {sid:x}, "
                              f"which is not a live global session")
            # /zookeeper/config holds the membership in force at a serving
            # peer (one that joins has its own view until its sync, one in
            # the middle of a sync by snapshot the leader's): checked against
            # that, not against the others' trees.
            config = tree.nodes[CONFIG_NODE].data
            if node.peer.serving and config != node.disk.membership.text().encode():
                self.fail(f"peer {node.id}: {CONFIG_NODE} holds {config!r}, not its membership "
                          f"in force 0x{node.disk.membership.version:x}")
            state = ({p: (n.data, n.version, n.mzxid) for p, n in tree.nodes.items()
                      if p != CONFIG_NODE}, dict(tree.sessions))
            other = by_zxid.setdefault(node.applied, (node.id, state))
            if other[1] != state:
                self.fail(f"peers {other[0]} and {node.id} applied up to "
                          f"{node.applied:x} but their trees differ")

    def check_in_process(self):
        """A server's count of requests in process (what globalOutstandingLimit
        measures) is the number of requests its connections wait to answer."""
        for node in self.nodes.values():
            if node.alive:
                server = node.server
                queued = sum(len(c.queue) for c in server.connections)
                if server.in_process != queued:
                    self.fail(f"peer {node.id} counts {server.in_process} requests in "
                              f"process, its connections hold {queued}")

    # --- scenarios: scripted clients ----------------------------------------------------------

    def run_until(self, cond, max_steps=20000):
        for _ in range(max_steps):
            if cond():
                return self
            self.step()
        self.fail(f"run_until: still not true after {max_steps} steps")

    def add_session(self, depth=4):
        """A client that issues only what the scenario invokes (sim.invoke);
        run with clients=1 and quiet=True so that nothing else writes."""
        s = Session(len(self.sessions), depth, (0, 0, 0))
        self.sessions.append(s)
        self.at(self.now, "c-tick", s)
        return s

    def attach(self, s, node_id):
        """Connect s to a peer now (its session resumed there, or a new one),
        and run until the handshake is done."""
        if s.wire is not None:
            self.client_lost(s, "moved by the scenario", reconnect=False)
        self.open_wire(s, self.nodes[node_id])
        wire = s.wire
        self.run_until(lambda: wire.handshaken or s.wire is not wire)
        if s.wire is not wire:
            self.fail(f"client {s.idx} refused by peer {node_id}")

    # --- clients: the client's side ---------------------------------------------------------

    CLIENT_EVENTS = {
        "c-tick": "client_tick", "c-connect": "client_connect", "c-recv": "client_recv",
        "c-closed": "client_closed", "c-quiet": "clients_quiet",
        "s-data": "server_data", "s-eof": "server_eof",
    }

    def clients_quiet(self):
        self.quiet = True

    def start_clients(self):
        for i in range(self.clients):
            mix = self.client_ops
            if mix is None:
                w = self.rng.choice((0.0, 0.25, 0.5, 0.5))
                mix = (w, (1 - w) / 2, (1 - w) / 2)
            s = Session(i, self.rng.randint(1, 4), mix)
            if self.local_sessions:
                # Some clients never want an ephemeral (their sessions stay
                # local), the others now and then.
                s.ephemeral_share = self.rng.choice((0.0, 0.0, 0.005, 0.03))
            self.sessions.append(s)
            self.at(self.now + self.rng.randint(0, 100), "c-connect", s)
            self.at(self.now + self.rng.randint(0, 50), "c-tick", s)
        if self.reconfigs:
            self.admin = Session(len(self.sessions), 1, (0, 0, 0), admin=True)
            self.sessions.append(self.admin)
            self.at(self.now + self.rng.randint(0, 100), "c-connect", self.admin)
            self.at(self.now + self.rng.randint(0, 50), "c-tick", self.admin)

    def to_server(self, wire, *event):
        t = max(self.now + self.rng.randint(0, 5), wire.last_up)
        wire.last_up = t
        self.at(t, *event)

    def to_client(self, wire, *event):
        t = max(self.now + self.rng.randint(0, 5), wire.last_down)
        wire.last_down = t
        self.at(t, *event)

    def client_connect(self, s):
        if s.wire is not None:
            return
        serving = [n for n in self.nodes.values() if n.serving]
        if not serving:
            self.at(self.now + self.rng.randint(20, 100), "c-connect", s)
            return
        # Another peer than the one just left, if there is one.
        node = self.rng.choice([n for n in serving if n.id != s.last_peer] or serving)
        self.open_wire(s, node)

    def open_wire(self, s, node):
        """Open a TCP connection to node's client port and send the ConnectRequest."""
        self.wire_seq += 1
        wire = Wire(self.wire_seq, s, node)
        s.wire = wire
        conn = ClientConnection(node.server, self.loop)
        wire.conn = conn
        wire.server_open = True
        conn.connection_made(WireTransport(self, wire))
        w = Writer()
        ConnectRequest(0, s.last_zxid, SESSION_TIMEOUT, s.sid, s.passwd, False).write(w)
        self.to_server(wire, "s-data", wire, INT.pack(len(w.out)) + bytes(w.out))
        s.last_sent = self.now

    def client_recv(self, wire, data):
        s = wire.session
        if s.wire is not wire or not wire.client_open:
            return
        wire.inbuf += data
        buf = wire.inbuf
        while len(buf) >= 4:
            n = INT.unpack_from(buf, 0)[0]
            if len(buf) < 4 + n:
                break
            payload = bytes(buf[4:4 + n])
            del buf[:4 + n]
            if not wire.handshaken:
                self.client_connected(wire, ConnectResponse.read(Reader(payload)))
            else:
                r = Reader(payload)
                hdr = ReplyHeader.read(r)
                if hdr.xid == Xid.PING:
                    continue
                if hdr.xid == Xid.AUTH:
                    if hdr.err:
                        self.fail(f"client {s.idx}: the super user's auth failed ({hdr.err})")
                    continue
                if hdr.xid == Xid.NOTIFICATION:
                    self.fail(f"client {s.idx} got a watch event it never asked for")
                self.client_reply(wire, hdr, r)
            if s.wire is not wire:
                return

    def client_connected(self, wire, resp):
        s = wire.session
        if resp.timeout <= 0:
            # The session is gone: a new one, with what the client has seen.
            self.stats["expired"] += 1
            self.log(f"client {s.idx}: session {s.sid:x} expired (peer {wire.node})")
            s.sid, s.passwd = 0, bytes(16)
            self.client_lost(s, "session expired", delay=(1, 10))
            return
        wire.handshaken = True
        if s.sid != resp.session_id:
            s.sessions += 1
            self.session_home[resp.session_id] = wire.node
        elif s.last_peer is not None:
            s.moves += 1
            self.stats["moves"] += 1
            home = self.session_home.get(s.sid)
            if self.local_sessions and home != wire.node and s.sid not in self.session_zxid \
                    and s.sid not in self.session_proposed:
                self.fail(f"client {s.idx}: local session {s.sid:x} of peer {home} resumed "
                          f"on peer {wire.node}")
        s.sid, s.passwd = resp.session_id, resp.passwd
        self.log(f"client {s.idx} connected to peer {wire.node} with session {s.sid:x} "
                 f"(last zxid {s.last_zxid:x})")
        if s.admin:
            self.send_request(s, Xid.AUTH, Op.AUTH, AuthPacket(0, "digest", b"super:test"))

    def client_closed(self, wire):
        s = wire.session
        if s.wire is not wire or not wire.client_open:
            return
        if wire.handshaken:
            self.client_lost(s, f"peer {wire.node} closed the connection")
        else:
            self.stats["refused"] += 1
            self.client_lost(s, f"refused by peer {wire.node}", delay=(5, 50))

    def client_lost(self, s, why, reconnect=True, delay=(1, 50)):
        """The client's connection is gone (or given up): what was in flight
        has an unknown outcome; it closes its end and connects again."""
        wire = s.wire
        wire.client_open = False
        self.to_server(wire, "s-eof", wire)
        for op in s.inflight:
            op.status = "unknown"
            self.stats["unknown"] += 1
        self.log(f"client {s.idx} lost peer {wire.node} ({why}); "
                 f"{len(s.inflight)} requests with unknown outcome")
        s.inflight.clear()
        s.wire = None
        s.last_peer = wire.node
        if s.closing:
            # Its closeSession went out: whatever became of it, a new session.
            s.closing = False
            s.sid, s.passwd = 0, bytes(16)
        if reconnect:
            self.at(self.now + self.rng.randint(*delay), "c-connect", s)

    def client_tick(self, s):
        rng = self.rng
        self.at(self.now + rng.randint(2, 20), "c-tick", s)
        wire = s.wire
        if wire is None or not wire.handshaken:
            return
        if s.inflight and self.now - s.inflight[0].t_invoke > self.client_timeout:
            if s.inflight[0].t_invoke >= self.calm_since:
                self.fail(f"client {s.idx}: a request made after the faults stopped has had "
                          f"no answer for {self.now - s.inflight[0].t_invoke} ms",
                          [s.inflight[0]])
            self.stats["timeouts"] += 1
            self.client_lost(s, f"no answer for {self.client_timeout} ms")
            return
        if s.closing:
            return
        if self.now - s.last_sent >= SESSION_TIMEOUT // 3:
            self.send_request(s, Xid.PING, Op.PING, None)
        if self.quiet or not any(s.mix) or s.admin:
            return
        while len(s.inflight) < s.depth and rng.random() < 0.6:
            if self.local_sessions:
                r = rng.random()
                if r < s.ephemeral_share:
                    self.invoke_ephemeral(s, rng.random() < 0.5)
                    continue
                if r > 0.995:
                    # A last write, then closeSession right behind it.
                    self.values += 1
                    self.invoke(s, "write", rng.choice(REGISTERS), self.values)
                    self.invoke(s, "close", None)
                    s.closing = True
                    return
            path = rng.choice(REGISTERS)
            r = rng.random()
            if r < s.mix[0]:
                self.values += 1
                self.invoke(s, "write", path, self.values)
            elif r < s.mix[0] + s.mix[1]:
                self.invoke(s, "read", path)
            else:
                sync = self.invoke(s, "sync", path)
                self.invoke(s, "read", path).after_sync = sync

    def send_request(self, s, xid, op, record):
        s.last_sent = self.now
        self.to_server(s.wire, "s-data", s.wire, encode_request(xid, op, record))

    def invoke(self, s, kind, path, value=None):
        s.xid += 1
        self.hseq += 1
        op = ClientOp(s.idx, len(s.ops), kind, path, value, s.xid, s.sid, self.hseq, self.now,
                      s.wire.node)
        s.ops.append(op)
        self.history.append(op)
        s.inflight.append(op)
        if kind == "reconfig":
            joining, leaving = value
            self.send_request(s, s.xid, Op.RECONFIG, ReconfigRequest(joining, leaving, None, -1))
        elif kind == "write":
            self.send_request(s, s.xid, Op.SET_DATA, SetDataRequest(path, b"%d" % value, -1))
        elif kind == "read":
            self.send_request(s, s.xid, Op.GET_DATA, PathWatchRequest(path, False))
        elif kind == "sync":
            self.send_request(s, s.xid, Op.SYNC, PathRequest(path))
        elif kind == "ephemeral":
            create = CreateRequest(path, b"", OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL)
            if value == "multi":
                self.send_request(s, s.xid, Op.MULTI, MultiRequest([(Op.CREATE, create)]))
            else:
                self.send_request(s, s.xid, Op.CREATE, create)
        else:
            self.send_request(s, s.xid, Op.CLOSE_SESSION, None)
        return op

    def invoke_ephemeral(self, s, in_multi):
        """A create of an ephemeral of the client's own (a path never used
        before), alone or in a multi: a local session needs upgrading."""
        self.ephemerals += 1
        self.wants_ephemeral.add(s.sid)
        return self.invoke(s, "ephemeral", f"/e{s.idx}-{self.ephemerals}",
                           "multi" if in_multi else "create")

    def client_reply(self, wire, hdr, body):
        s = wire.session
        if not s.inflight or s.inflight[0].cxid != hdr.xid:
            self.fail(f"client {s.idx}: a reply out of request order (FIFO broken): "
                      f"got xid {hdr.xid}, oldest in flight is "
                      f"{s.inflight[0].cxid if s.inflight else None}", list(s.inflight))
        op = s.inflight.popleft()
        self.hseq += 1
        op.complete = self.hseq
        op.t_complete = self.now
        op.zxid = hdr.zxid
        if op.kind == "ephemeral":
            self.ephemeral_reply(s, op, hdr, body)
            return
        if op.kind == "close":
            if hdr.err != 0:
                self.fail(f"client {s.idx}: closeSession answered {hdr.err}", [op])
            op.status = "ok"
            self.stats["closed"] += 1
            self.check_zxid(s, op)
            # A new session when it connects again.
            s.sid, s.passwd = 0, bytes(16)
            return
        if hdr.err != 0:
            # A write the leader turned into an error txn: it did nothing.
            allowed = {Err.SESSION_EXPIRED}
            if op.kind == "reconfig":
                allowed |= {Err.RECONFIG_IN_PROGRESS, Err.NEW_CONFIG_NO_QUORUM,
                            Err.BAD_ARGUMENTS}
            if hdr.err not in allowed:
                self.fail(f"client {s.idx}: unexpected error {hdr.err}", [op])
            op.status = "failed"
            self.stats["failed"] += 1
            self.check_zxid(s, op)
            return
        op.status = "ok"
        if op.kind == "reconfig":
            data = body.buffer()
            Stat.read(body)
            idx = self.G_index.get(hdr.zxid)
            if idx is None or self.G[idx].type != Op.RECONFIG or self.G[idx].body[1] != data:
                self.fail(f"client {s.idx}: reconfig acknowledged as {hdr.zxid:x} but "
                          "committed history has no such reconfig there", [op])
            self.stats["reconfigs"] += 1
            self.check_zxid(s, op)
            return
        if op.kind == "read":
            data = body.buffer()
            Stat.read(body)
            op.value = int(data) if data else 0
        elif op.kind == "write":
            op.txn_zxid = hdr.zxid
        self.stats["ok"] += 1
        self.check_reply(s, op)

    def ephemeral_reply(self, s, op, hdr, body):
        """An ephemeral create answered: made by a global session, or
        refused as ZooKeeper refuses it."""
        self.check_zxid(s, op)
        err = hdr.err
        if err == 0 and op.value == "multi":
            results = decode_multi(body)
            err = next((r.err for r in results if r.err != 0), 0)
        allowed = {Err.SESSION_EXPIRED}
        if not self.upgrading:
            allowed.add(Err.EPHEMERAL_ON_LOCAL_SESSION)
        if err != 0:
            if err not in allowed:
                self.fail(f"client {s.idx}: ephemeral create failed with {err}", [op])
            op.status = "failed"
            self.stats["failed"] += 1
            return
        op.status = "ok"
        op.txn_zxid = hdr.zxid
        self.stats["ok"] += 1
        self.stats["ephemerals"] += 1
        idx = self.G_index.get(hdr.zxid)
        txn = self.G[idx] if idx is not None else None
        creates = []
        if txn is not None and txn.session_id == op.sid:
            if txn.type == Op.CREATE:
                creates = [txn.body]
            elif txn.type == Op.MULTI:
                creates = [b for t, b in txn.body[0] if t == Op.CREATE]
        if not any(b[0] == op.path and b[3] == op.sid for b in creates):
            self.fail(f"client {s.idx}: ephemeral {op.path} acknowledged at {hdr.zxid:x} but "
                      f"committed history has {txn!r} there", [op])
        made = self.session_zxid.get(op.sid)
        if made is None or made >= hdr.zxid:
            self.fail(f"client {s.idx}: ephemeral {op.path} owned by session {op.sid:x}, "
                      f"which no committed createSession made global before it", [op])

    def check_session_txn(self, txn):
        """A createSession committed: with local sessions, only an upgrade
        (a session that asked for an ephemeral) makes one."""
        sid = txn.session_id
        self.session_zxid.setdefault(sid, txn.zxid)
        if self.local_sessions and (not self.upgrading or sid not in self.wants_ephemeral):
            self.fail(f"a createSession txn for session {sid:x}, which "
                      + ("no upgrade may make (upgrading is off)" if not self.upgrading
                         else "never asked for an ephemeral"))

    # --- clients: the server's side (a simulated TCP connection) ------------------------------

    def server_data(self, wire, data):
        node = self.nodes[wire.node]
        if wire.server_open and node.alive and node.incarnation == wire.incarnation:
            wire.conn.data_received(data)

    def server_eof(self, wire):
        node = self.nodes[wire.node]
        if wire.server_open and node.alive and node.incarnation == wire.incarnation:
            wire.server_open = False
            wire.conn.transport.closed = True
            wire.conn.connection_lost(None)

    def drop_wires(self, node):
        """The peer crashed: its clients see their connections reset."""
        for s in self.sessions:
            wire = s.wire
            if wire is not None and wire.node == node.id and wire.client_open:
                wire.server_open = False
                self.to_client(wire, "c-closed", wire)

    # --- client checks ----------------------------------------------------------------------

    def register_at(self, path, zxid):
        zs, vs = self.registers[path]
        return vs[bisect.bisect_right(zs, zxid) - 1]

    def check_zxid(self, s, op):
        z = op.zxid
        if z < s.last_zxid:
            self.fail(f"client {s.idx}: zxid went back from {s.last_zxid:x} to {z:x} "
                      f"(answer from peer {op.peer})", s.ops[-8:])
        s.last_zxid = z

    def check_reply(self, s, op):
        self.check_zxid(s, op)
        z = op.zxid
        if op.kind == "write":
            idx = self.G_index.get(op.txn_zxid)
            txn = self.G[idx] if idx is not None else None
            if txn is None or (txn.session_id, txn.cxid, txn.body[0], txn.body[1]) != \
                    (op.sid, op.cxid, op.path, b"%d" % op.value):
                self.fail(f"client {s.idx}: write acknowledged as {op.txn_zxid:x} "
                          f"but committed history has {txn!r} there", [op])
            s.acked[op.path] = max(s.acked.get(op.path, 0), op.txn_zxid)
            s.seen[op.path] = max(s.seen.get(op.path, 0), op.txn_zxid)
        elif op.kind == "read":
            expect = self.register_at(op.path, z)
            if op.value != expect:
                self.fail(f"client {s.idx}: read {op.path} -> {op.value} from peer {op.peer} "
                          f"at zxid {z:x}, but committed history has {expect} there", [op])
            wz = self.value_zxid[op.value]
            if wz < s.acked.get(op.path, 0):
                self.fail(f"client {s.idx}: read-your-writes broken: read {op.path} -> "
                          f"{op.value} (written at {wz:x}) after its own write acknowledged "
                          f"at {s.acked[op.path]:x}", s.ops[-8:])
            if wz < s.seen.get(op.path, 0):
                self.fail(f"client {s.idx}: view went back: read {op.path} -> {op.value} "
                          f"(written at {wz:x}) after seeing the write at "
                          f"{s.seen[op.path]:x}", s.ops[-8:])
            s.seen[op.path] = wz

    def register_histories(self):
        """Per register: writes (acknowledged, or unknown but seen by a
        sync-read) and sync-preceded reads, as linearizability Operations."""
        hist = {p: [] for p in REGISTERS}
        observed = set()
        reads = []
        for op in self.history:
            if op.kind == "read" and op.status == "ok" and op.after_sync is not None \
                    and op.after_sync.status == "ok":
                observed.add(op.value)
                reads.append(op)
        for op in self.history:
            if op.kind == "write":
                if op.status == "ok":
                    hist[op.path].append(Operation(op.invoke, op.complete, ("w", op.value),
                                                   None, op))
                elif op.status == "unknown" and op.value in observed:
                    hist[op.path].append(Operation(op.invoke, None, ("w", op.value), None, op))
        for op in reads:
            hist[op.path].append(Operation(op.after_sync.invoke, op.complete, ("r", None),
                                           op.value, op))
        return hist

    def check_history(self):
        for s in self.sessions:
            for op in s.inflight:
                if op.status is None:
                    op.status = "unknown"
        for path, ops in self.register_histories().items():
            model = register(0)
            try:
                if check(ops, model).ok:
                    continue
            except Undecided as e:
                self.fail(f"the history of {path}: linearizability undecided: {e}")
            t, prefix = minimal_failing_prefix(ops, model)
            prefix.sort(key=lambda o: o.invoke)
            last = max(prefix, key=lambda o: -1 if o.complete is None else o.complete)
            self.fail(f"the history of {path} is not linearizable ({len(ops)} ops); the "
                      f"shortest failing prefix ends when this completes: {last.label!r}",
                      [o.label for o in prefix[-40:]])
