"""A deterministic simulation of a zkpy ensemble: the real ZAB state machine
(zkpy.zab.peer.ZabPeer) and the real DataTree on every peer, a seeded
simulated network and disk, and invariants checked after every step.

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
  - peers that applied the same prefix hold identical trees.

Client sessions (Simulation(seed, clients=4)) are modelled on the real server
(zkpy/server/quorum.py).  Each session connects to a serving peer over its own
FIFO connection and pipelines a few requests: setData and getData on the
registers (REGISTERS), and sync followed by getData.  A follower forwards a
write to the leader as an APP message; the leader makes it a txn and proposes
it; the session's peer answers when it applies that txn (matched by session
id and cxid).  A read is answered from the peer's tree once the session's
earlier requests are done.  A sync goes to the leader, which answers with
send_app_after_commits carrying last_proposed; the follower answers once it
has applied that far.  When its peer stops serving (or crashes, or a request
waits longer than client_timeout) a session loses its requests in flight
(their outcome is unknown) and reconnects to another serving peer; a peer that
has applied less than the session's last seen zxid refuses it, as ZooKeeper
does.  Every session keeps a history (invoke/complete, value, the zxid its
peer had applied when it answered).  Checked:
  - as each reply arrives: replies in request order (FIFO); zxids a session
    sees never go back, across moves too; an acknowledged write is committed
    with its value; a read returns what committed history holds at the zxid
    its peer reported; read-your-writes (a read after the session's
    acknowledged write sees it or a later write); a session's view of a
    register never goes back;
  - once the faults stop (settle(), or faults=False): every request is
    answered, or its connection closes, within client_timeout;
  - at settle(): the history of writes and sync-preceded reads is
    linearizable, register by register (tests/ensemble/linearizability.py).
Not modelled: session create/close/expiry txns and the leader's revalidation
of a session that moves (sessions here are just ids); clients reach every
peer (partitions cut only the links between peers).  Scenario tests script
sessions with add_session(), attach(), invoke() and run_until().

A failure raises SimulationError with the seed, the trace tail (and for
client runs the history tail), enough to replay it: the message gives the
exact call, e.g. Simulation(seed).run(steps).settle()."""

import bisect
import copy
import heapq
import inspect
import random
from collections import deque

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.zab.peer import ESTABLISHED, LEADING, LOOKING, ZabPeer
from zkpy.zab.quorum import QuorumConfig

from .linearizability import Operation, Undecided, check, minimal_failing_prefix, register

REGISTERS = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"]


class SimulationError(AssertionError):
    pass


class Disk:
    def __init__(self):
        self.snapshot = (DataTree(), 0)   # (tree, zxid)
        self.log = []                     # durable txns after the snapshot
        self.unsynced = []
        self.epochs = (0, 0)
        self.sync_pending = False


class Node:
    def __init__(self, sim, nid):
        self.sim = sim
        self.id = nid
        self.disk = Disk()
        self.alive = False
        self.stash = {}    # SNAP blobs received, by zxid
        self.conns = {}           # client connections: id -> Conn
        self.waiting = {}         # (sid, cxid) or ("sync", sid, cxid) -> (conn, op)
        self.pending_syncs = []   # (zxid, conn, op): answer once applied up to zxid

    def boot(self):
        sim = self.sim
        tree, zxid = self.disk.snapshot
        self.tree = copy.deepcopy(tree)
        self.prev_applied = zxid
        self.alive = True
        acc, cur = self.disk.epochs
        self.peer = ZabPeer(self.id, sim.quorum, accepted_epoch=acc, current_epoch=cur,
                            history=list(self.disk.log), base_zxid=zxid, now=sim.now,
                            tick_ms=sim.tick_ms, init_limit=sim.init_limit,
                            sync_limit=sim.sync_limit, finalize_ms=sim.finalize_ms,
                            history_limit=sim.history_limit)
        self.peer.start()
        self.process()

    def crash(self):
        self.alive = False
        self.sim.drop_conns(self)
        d = self.disk
        # The unsynced tail is lost, maybe only part of it.
        keep = self.sim.rng.randint(0, len(d.unsynced)) if self.sim.partial_tail else 0
        d.log.extend(d.unsynced[:keep])
        d.unsynced = []
        d.sync_pending = False
        self.stash.clear()

    def process(self):
        # Effects of what handling an effect does (a proposal made for an APP
        # message) come after the batch in hand, as in QuorumPeer._process.
        while self.peer.out:
            for eff in self.peer.take():
                self.sim.handle(self, eff)


class ClientOp:
    """One request of a client session, as its history records it."""
    __slots__ = ("session", "index", "kind", "path", "value", "cxid", "invoke", "t_invoke",
                 "complete", "t_complete", "status", "zxid", "txn_zxid", "peer", "after_sync",
                 "srv_done", "srv_txn")

    def __init__(self, session, index, kind, path, value, cxid, invoke, t_invoke, peer):
        self.session = session
        self.index = index        # position in the session's order
        self.kind = kind          # "write", "read" or "sync"
        self.path = path
        self.value = value        # written value, or the value read
        self.cxid = cxid
        self.invoke = invoke      # history order (a global counter: real-time order)
        self.t_invoke = t_invoke  # sim time
        self.complete = None
        self.t_complete = None
        self.status = None        # None (in flight), "ok" or "unknown"
        self.zxid = None          # the zxid the peer had applied when it answered
        self.txn_zxid = None      # a write's own zxid
        self.peer = peer
        self.after_sync = None    # the sync this read follows
        # The serving peer's side.
        self.srv_done = False
        self.srv_txn = None

    def __repr__(self):
        what = {"write": f"set {self.path}={self.value}",
                "read": f"get {self.path}" + ("" if self.status != "ok" else f" -> {self.value}"),
                "sync": f"sync {self.path}"}[self.kind]
        if self.after_sync is not None:
            what += f" (after sync #{self.after_sync.index})"
        end = ("in flight" if self.status is None else
               "UNKNOWN" if self.status == "unknown" else f"ok @{self.t_complete} [{self.complete}]")
        z = "" if self.zxid is None else f" applied={self.zxid:x}"
        if self.txn_zxid is not None:
            z += f" txn={self.txn_zxid:x}"
        return (f"session {self.session} #{self.index} cxid={self.cxid} {what} peer {self.peer} "
                f"@{self.t_invoke} [{self.invoke}] -> {end}{z}")


class Session:
    def __init__(self, idx, depth, ops):
        self.idx = idx
        self.sid = 0x100 + idx
        self.depth = depth        # requests in flight at most (a sync+get pair may go over)
        self.mix = ops            # shares of (write, read, sync+read)
        self.ops = []
        self.inflight = deque()   # sent on the current connection, not answered
        self.conn = None
        self.cxid = 0
        self.last_zxid = 0        # ZooKeeper's lastZxidSeen
        self.last_peer = None
        self.acked = {}           # path -> zxid of the session's newest acknowledged write
        self.seen = {}            # path -> zxid of the newest write whose value it has seen
        self.moves = 0


class Conn:
    """A client's TCP connection to a peer; both ends keep their own view."""
    __slots__ = ("id", "session", "node", "last_zxid", "server_open", "client_open", "queue",
                 "last_up", "last_down")

    def __init__(self, cid, session, node, last_zxid):
        self.id = cid
        self.session = session
        self.node = node
        self.last_zxid = last_zxid     # what the ConnectRequest carries
        self.server_open = False
        self.client_open = False
        self.queue = deque()           # the peer's view: requests not answered yet, in order
        self.last_up = 0
        self.last_down = 0


class Simulation:
    def __init__(self, seed, n=3, observers=0, tick_ms=100, init_limit=10, sync_limit=5,
                 finalize_ms=20, history_limit=50, partial_tail=True, faults=True,
                 clients=0, client_timeout=3000, client_ops=None):
        self.seed = seed
        self.args = dict(n=n, observers=observers, tick_ms=tick_ms, init_limit=init_limit,
                         sync_limit=sync_limit, finalize_ms=finalize_ms,
                         history_limit=history_limit, partial_tail=partial_tail, faults=faults,
                         clients=clients, client_timeout=client_timeout, client_ops=client_ops)
        self.calls = []             # how this run was driven, for the replay line
        self.rng = random.Random(seed)
        ids = list(range(1, n + observers + 1))
        self.quorum = QuorumConfig.of(ids[:n], ids[n:])
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.finalize_ms = finalize_ms
        self.history_limit = history_limit
        self.partial_tail = partial_tail
        self.faults = faults
        self.now = 0
        self.events = []
        self.seq = 0
        self.nodes = {i: Node(self, i) for i in ids}
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
        # (write, read, sync+read) shares for every session; None: each session
        # draws its own, some of them read-only.
        self.client_ops = client_ops
        self.sessions = []
        self.history = []           # ClientOps in invocation order
        self.hseq = 0               # history clock: invocations and completions in order
        self.conn_seq = 0
        self.values = 0
        self.registers = {p: ([0], [0]) for p in REGISTERS}   # committed (zxids, values)
        self.value_zxid = {0: 0}    # value -> zxid of the committed write of it
        self.stats = dict(ok=0, unknown=0, refused=0, moves=0, timeouts=0, dropped_reqs=0)
        # Since when there are no faults: from then on every request must be
        # answered (or its connection close).
        self.calm_since = 0 if not faults else float("inf")

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

    # --- effects ------------------------------------------------------------------------

    def handle(self, node, eff):
        kind = eff[0]
        if kind == "send":
            _, to, msg = eff
            blob = None
            if msg[0] == "SYNC" and msg[1] == "SNAP":
                blob = (copy.deepcopy(node.tree), node.prev_applied)
                if blob[1] != msg[2]:
                    self.fail(f"peer {node.id} sends SNAP at {msg[2]:x} with tree at {blob[1]:x}")
            self.send(node.id, to, msg, blob)
        elif kind == "log":
            node.disk.unsynced.extend(eff[1])
            if not node.disk.sync_pending:
                node.disk.sync_pending = True
                self.at(self.now + self.rng.randint(1, 8), "synced", node.id)
        elif kind == "epochs":
            node.disk.epochs = (eff[1], eff[2])
        elif kind == "truncate":
            z = eff[1]
            if node.prev_applied > z:
                self.fail(f"peer {node.id} told to truncate to {z:x} below applied "
                          f"{node.prev_applied:x}")
            d = node.disk
            d.log = [t for t in d.log if t.zxid <= z]
            d.unsynced = [t for t in d.unsynced if t.zxid <= z]
        elif kind == "snapshot":
            z = eff[1]
            blob = node.stash.pop(z, None)
            if blob is None:
                self.fail(f"peer {node.id} has no SNAP blob for {z:x}")
            tree, zxid = blob
            d = node.disk
            d.snapshot = (copy.deepcopy(tree), zxid)
            d.log = []
            d.unsynced = []
            node.tree = tree
            node.prev_applied = zxid
            if zxid and zxid not in self.G_index:
                self.fail(f"peer {node.id} installed a snapshot at uncommitted {zxid:x}")
        elif kind == "apply":
            self.check_apply(node, eff[1])
            node.tree.apply(eff[1])
            node.prev_applied = eff[1].zxid
            if node.waiting or node.pending_syncs:
                self.applied_for_clients(node, eff[1])
        elif kind == "role":
            self.log(f"peer {node.id} -> {eff[1]} leader={eff[2]} epoch={eff[3]}")
            if eff[1] == LOOKING:
                self.drop_conns(node)
        elif kind == "app":
            self.on_app(node, eff[1], eff[2])
        elif kind == "serving":
            if not eff[1]:
                self.drop_conns(node)
            if eff[1] and node.peer.role == LEADING:
                e = node.peer.current_epoch
                other = self.leaders.setdefault(e, node.id)
                if other != node.id:
                    self.fail(f"two leaders in epoch {e}: {other} and {node.id}")
                self.log(f"peer {node.id} leads epoch {e}")

    def check_apply(self, node, txn):
        idx = self.G_index.get(txn.zxid)
        if idx is not None:
            if self.G[idx] != txn:
                self.fail(f"peer {node.id} applies a different txn at {txn.zxid:x}")
            prev = self.G[idx - 1].zxid if idx else 0
            if node.prev_applied != prev:
                self.fail(f"peer {node.id} applies {txn.zxid:x} after {node.prev_applied:x}, "
                          f"committed order has {prev:x} before it")
            return
        last = self.G[-1].zxid if self.G else 0
        if node.peer.role != LEADING:
            self.fail(f"follower {node.id} applies {txn.zxid:x} that no leader committed")
        if node.prev_applied != last:
            self.fail(f"leader {node.id} commits {txn.zxid:x} after {node.prev_applied:x}, "
                      f"but the last committed txn is {last:x} (a committed txn was lost)")
        if txn.zxid <= last:
            self.fail(f"leader {node.id} commits {txn.zxid:x} not after {last:x}")
        self.G_index[txn.zxid] = len(self.G)
        self.G.append(txn)
        if self.clients and txn.type == Op.SET_DATA and txn.body[0] in self.registers:
            zs, vs = self.registers[txn.body[0]]
            v = int(txn.body[1])
            zs.append(txn.zxid)
            vs.append(v)
            self.value_zxid[v] = txn.zxid

    def send(self, frm, to, msg, blob):
        if self.down_pending.get((min(frm, to), max(frm, to))):
            return
        if not self.reachable(frm, to):
            self.break_link(frm, to)
            return
        lid = self.link(frm, to)
        delay = self.rng.randint(0, 20)
        t = max(self.now + delay, self.last_delivery.get((frm, to), 0))
        self.last_delivery[(frm, to)] = t
        self.at(t, "deliver", frm, to, msg, blob, lid)

    # --- events ----------------------------------------------------------------------

    def step(self):
        t, _, event = heapq.heappop(self.events)
        self.now = max(self.now, t)
        kind = event[0]
        if kind == "deliver":
            _, frm, to, msg, blob, lid = event
            node = self.nodes[to]
            if not node.alive or lid != self.link(frm, to) or not self.nodes[frm].alive:
                return
            if blob is not None:
                node.stash[msg[2]] = blob
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
            self.at(self.now + self.rng.randint(10, 30), "tick", event[1])
        elif kind == "workload":
            self.workload()
            self.at(self.now + self.rng.randint(1, 15), "workload")
        elif kind == "fault":
            if self.faults:
                self.fault()
            self.at(self.now + self.rng.randint(50, 800), "fault")
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
        if self.quiet:
            return
        for node in self.nodes.values():
            p = node.peer if node.alive else None
            if p is not None and p.role == LEADING and p.serving:
                zxid = p.next_zxid()
                path = self.rng.choice(REGISTERS)
                self.writes += 1
                txn = Txn(1, self.writes, zxid, self.now, Op.SET_DATA,
                          (path, b"v%d" % self.writes, zxid & 0x7FFFFFFF))
                p.propose(txn)
                self.proposed += 1
                node.process()

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
        # else: a quiet spell

    def run(self, steps=4000):
        self.calls.append(f".run({steps})")
        for nid, node in self.nodes.items():
            node.boot()
            self.at(self.rng.randint(0, 30), "tick", nid)
        if self.clients:
            self.start_clients()
        else:
            self.at(50, "workload")
        self.at(300, "fault")
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
            if not node.alive:
                node.boot()
        end = self.now + ms
        while self.events and self.now < end:
            self.step()
        self.check_trees()
        if self.clients:
            for sess in self.sessions:
                for op in sess.inflight:
                    if op.t_invoke >= self.calm_since and \
                            self.now - op.t_invoke >= ms - clients_ms:
                        self.fail(f"session {sess.idx}: a request made after the faults stopped "
                                  f"has had no answer for {self.now - op.t_invoke} ms", [op])
            self.check_history()
        return self

    def check_trees(self):
        by_zxid = {}
        for node in self.nodes.values():
            if not node.alive:
                continue
            state = {p: (n.data, n.version, n.mzxid) for p, n in node.tree.nodes.items()}
            other = by_zxid.setdefault(node.prev_applied, (node.id, state))
            if other[1] != state:
                self.fail(f"peers {other[0]} and {node.id} applied up to "
                          f"{node.prev_applied:x} but their trees differ")

    # --- scenarios: scripted sessions ------------------------------------------------------

    def run_until(self, cond, max_steps=20000):
        for _ in range(max_steps):
            if cond():
                return self
            self.step()
        self.fail(f"run_until: still not true after {max_steps} steps")

    def add_session(self, depth=4):
        """A session that issues only what the scenario invokes (sim.invoke);
        run with clients=1 and quiet=True so that nothing else writes."""
        s = Session(len(self.sessions), depth, (0, 0, 0))
        self.sessions.append(s)
        return s

    def attach(self, s, node_id):
        """Connect s to a peer now, without the network's delays."""
        if s.conn is not None and s.conn.client_open:
            self.client_lost(s, "moved by the scenario")
        self.conn_seq += 1
        s.conn = Conn(self.conn_seq, s, node_id, s.last_zxid)
        self.server_connect(s.conn)
        if not s.conn.server_open:
            self.fail(f"session {s.idx} refused by peer {node_id}")
        s.conn.client_open = True

    # --- client sessions: the client side -------------------------------------------------

    CLIENT_EVENTS = {
        "c-tick": "client_tick", "c-connect": "client_connect", "c-connreq": "server_connect",
        "c-connected": "client_connected", "c-refused": "client_refused", "c-req": "server_request",
        "c-reply": "client_reply", "c-closed": "client_closed", "c-quiet": "clients_quiet",
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
            self.sessions.append(s)
            self.at(self.now + self.rng.randint(0, 100), "c-connect", s)
            self.at(self.now + self.rng.randint(0, 50), "c-tick", s)

    def to_server(self, conn, *event):
        t = max(self.now + self.rng.randint(0, 5), conn.last_up)
        conn.last_up = t
        self.at(t, *event)

    def to_client(self, conn, *event):
        t = max(self.now + self.rng.randint(0, 5), conn.last_down)
        conn.last_down = t
        self.at(t, *event)

    def client_connect(self, s):
        if s.conn is not None:
            return
        serving = [n for n in self.nodes.values() if n.alive and n.peer.serving]
        if not serving:
            self.at(self.now + self.rng.randint(20, 100), "c-connect", s)
            return
        # Another peer than the one just left, if there is one.
        node = self.rng.choice([n for n in serving if n.id != s.last_peer] or serving)
        self.conn_seq += 1
        s.conn = Conn(self.conn_seq, s, node.id, s.last_zxid)
        self.to_server(s.conn, "c-connreq", s.conn)

    def client_connected(self, conn):
        s = conn.session
        if s.conn is not conn:
            return
        conn.client_open = True
        if s.last_peer is not None:
            s.moves += 1
            self.stats["moves"] += 1
        self.log(f"session {s.idx} connected to peer {conn.node} (last zxid {s.last_zxid:x})")

    def client_refused(self, conn, why):
        s = conn.session
        if s.conn is not conn:
            return
        self.stats["refused"] += 1
        self.log(f"session {s.idx} refused by peer {conn.node}: {why}")
        s.conn = None
        s.last_peer = conn.node
        self.at(self.now + self.rng.randint(5, 50), "c-connect", s)

    def client_closed(self, conn):
        if conn.client_open:
            self.client_lost(conn.session, f"peer {conn.node} closed the connection")
        elif conn.session.conn is conn:
            # Closed before the client learnt it was open.
            self.client_refused(conn, "closed")

    def client_lost(self, s, why):
        conn = s.conn
        conn.client_open = False
        if conn.server_open:
            self.server_forget(conn)
        for op in s.inflight:
            op.status = "unknown"
            self.stats["unknown"] += 1
        self.log(f"session {s.idx} lost peer {conn.node} ({why}); "
                 f"{len(s.inflight)} requests with unknown outcome")
        s.inflight.clear()
        s.conn = None
        s.last_peer = conn.node
        self.at(self.now + self.rng.randint(1, 50), "c-connect", s)

    def client_tick(self, s):
        rng = self.rng
        self.at(self.now + rng.randint(2, 20), "c-tick", s)
        conn = s.conn
        if conn is None or not conn.client_open:
            return
        if s.inflight and self.now - s.inflight[0].t_invoke > self.client_timeout:
            if s.inflight[0].t_invoke >= self.calm_since:
                self.fail(f"session {s.idx}: a request made after the faults stopped has had no "
                          f"answer for {self.now - s.inflight[0].t_invoke} ms",
                          [s.inflight[0]])
            self.stats["timeouts"] += 1
            self.client_lost(s, f"no answer for {self.client_timeout} ms")
            return
        if self.quiet:
            return
        while len(s.inflight) < s.depth and rng.random() < 0.6:
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

    def invoke(self, s, kind, path, value=None):
        s.cxid += 1
        self.hseq += 1
        op = ClientOp(s.idx, len(s.ops), kind, path, value, s.cxid, self.hseq, self.now,
                      s.conn.node)
        s.ops.append(op)
        self.history.append(op)
        s.inflight.append(op)
        self.to_server(s.conn, "c-req", s.conn, op)
        return op

    def client_reply(self, conn, op, value, zxid, txn_zxid):
        s = conn.session
        if not conn.client_open:
            return
        if not s.inflight or s.inflight[0] is not op:
            self.fail(f"session {s.idx}: a reply out of request order (FIFO broken): "
                      f"got #{op.index}, oldest in flight is "
                      f"{s.inflight[0].index if s.inflight else None}",
                      [op] + list(s.inflight))
        s.inflight.popleft()
        self.hseq += 1
        op.status = "ok"
        op.complete = self.hseq
        op.t_complete = self.now
        op.zxid = zxid
        if op.kind == "read":
            op.value = value
        elif op.kind == "write":
            op.txn_zxid = txn_zxid
        self.stats["ok"] += 1
        self.check_reply(s, op)

    # --- client sessions: the peer's side (as zkpy/server/quorum.py) -----------------------

    def server_connect(self, conn):
        node = self.nodes[conn.node]
        if conn.session.conn is not conn:
            return
        if not (node.alive and node.peer.serving):
            self.to_client(conn, "c-refused", conn, "not serving")
        elif node.prev_applied < conn.last_zxid:
            # ZooKeeper: "Refusing session request for client as it has seen
            # zxid ... our last zxid is ..."
            self.to_client(conn, "c-refused", conn,
                           f"it has seen zxid {conn.last_zxid:x}, "
                           f"peer applied {node.prev_applied:x}")
        else:
            conn.server_open = True
            node.conns[conn.id] = conn
            self.to_client(conn, "c-connected", conn)

    def drop_conns(self, node):
        """The peer stops serving: it closes its client connections and
        forgets what they were waiting for."""
        for conn in node.conns.values():
            conn.server_open = False
            self.to_client(conn, "c-closed", conn)
        node.conns.clear()
        node.waiting.clear()
        node.pending_syncs.clear()

    def server_forget(self, conn):
        """The client closed the connection."""
        conn.server_open = False
        node = self.nodes[conn.node]
        node.conns.pop(conn.id, None)
        for key in [k for k, (c, _) in node.waiting.items() if c is conn]:
            del node.waiting[key]
        node.pending_syncs = [p for p in node.pending_syncs if p[1] is not conn]

    def server_request(self, conn, op):
        if not conn.server_open:
            return
        node = self.nodes[conn.node]
        p = node.peer
        sid = conn.session.sid
        conn.queue.append(op)
        if op.kind == "write":
            node.waiting[(sid, op.cxid)] = (conn, op)
            if p.role == LEADING:
                self.leader_write(node, sid, op.cxid, op.path, op.value)
            else:
                p.send_app(p.leader_id, ("REQ", sid, op.cxid, op.path, op.value))
        elif op.kind == "sync":
            if p.role == LEADING:
                z = p.last_proposed
                if node.prev_applied >= z:
                    op.srv_done = True
                else:
                    node.pending_syncs.append((z, conn, op))
            else:
                node.waiting[("sync", sid, op.cxid)] = (conn, op)
                p.send_app(p.leader_id, ("SYNC", sid, op.cxid))
        node.process()
        if conn.server_open:
            self.answer(node, conn)

    def leader_write(self, node, sid, cxid, path, value):
        p = node.peer
        if p.role != LEADING or p.phase != ESTABLISHED:
            self.stats["dropped_reqs"] += 1
            self.log(f"peer {node.id} drops write cxid={cxid} of session {sid:x}: not leading")
            return
        zxid = p.next_zxid()
        p.propose(Txn(sid, cxid, zxid, self.now, Op.SET_DATA,
                      (path, b"%d" % value, zxid & 0x7FFFFFFF)))

    def on_app(self, node, frm, msg):
        kind = msg[0]
        p = node.peer
        if kind == "REQ":           # leader: a follower's client write
            _, sid, cxid, path, value = msg
            self.leader_write(node, sid, cxid, path, value)
        elif kind == "SYNC":        # leader: answer once everything proposed is committed
            _, sid, cxid = msg
            p.send_app_after_commits(frm, ("SYNCED", sid, cxid, p.last_proposed))
        elif kind == "SYNCED":      # follower: the leader's answer to a sync
            _, sid, cxid, zxid = msg
            w = node.waiting.pop(("sync", sid, cxid), None)
            if w is None:
                return
            conn, op = w
            if node.prev_applied >= zxid:
                op.srv_done = True
                self.answer(node, conn)
            else:
                node.pending_syncs.append((zxid, conn, op))
        else:
            self.fail(f"peer {node.id} got an unknown APP message {msg!r}")

    def applied_for_clients(self, node, txn):
        w = node.waiting.pop((txn.session_id, txn.cxid), None)
        if w is not None:
            conn, op = w
            if op.kind != "write" or txn.body[0] != op.path or txn.body[1] != b"%d" % op.value:
                self.fail(f"peer {node.id} applies {txn} for request {op!r}", [op])
            op.srv_done = True
            op.srv_txn = txn.zxid
            self.answer(node, conn)
        if node.pending_syncs:
            done = [x for x in node.pending_syncs if x[0] <= node.prev_applied]
            if done:
                node.pending_syncs = [x for x in node.pending_syncs if x[0] > node.prev_applied]
                for _, conn, op in done:
                    op.srv_done = True
                    self.answer(node, conn)

    def answer(self, node, conn):
        """Reply, in order, to what is done at the head of the connection's queue;
        a read is answered from the tree once everything before it is."""
        q = conn.queue
        while q:
            op = q[0]
            if op.kind == "read":
                data = node.tree.nodes[op.path].data
                reply = (int(data) if data else 0, node.prev_applied, None)
            elif op.srv_done:
                reply = (None, node.prev_applied, op.srv_txn)
            else:
                return
            q.popleft()
            self.to_client(conn, "c-reply", conn, op, *reply)

    # --- client checks ----------------------------------------------------------------------

    def register_at(self, path, zxid):
        zs, vs = self.registers[path]
        return vs[bisect.bisect_right(zs, zxid) - 1]

    def check_reply(self, s, op):
        z = op.zxid
        if z < s.last_zxid:
            self.fail(f"session {s.idx}: zxid went back from {s.last_zxid:x} to {z:x} "
                      f"(answer from peer {op.peer})", s.ops[-8:])
        s.last_zxid = z
        if op.kind == "write":
            idx = self.G_index.get(op.txn_zxid)
            txn = self.G[idx] if idx is not None else None
            if txn is None or (txn.session_id, txn.cxid, txn.body[0], txn.body[1]) != \
                    (s.sid, op.cxid, op.path, b"%d" % op.value):
                self.fail(f"session {s.idx}: write acknowledged as {op.txn_zxid:x} "
                          f"but committed history has {txn!r} there", [op])
            if op.txn_zxid > z:
                self.fail(f"session {s.idx}: write {op.txn_zxid:x} acknowledged by a peer "
                          f"that applied only {z:x}", [op])
            s.acked[op.path] = max(s.acked.get(op.path, 0), op.txn_zxid)
            s.seen[op.path] = max(s.seen.get(op.path, 0), op.txn_zxid)
        elif op.kind == "read":
            expect = self.register_at(op.path, z)
            if op.value != expect:
                self.fail(f"session {s.idx}: read {op.path} -> {op.value} from peer {op.peer} "
                          f"at applied zxid {z:x}, but committed history has {expect} there",
                          [op])
            wz = self.value_zxid[op.value]
            if wz < s.acked.get(op.path, 0):
                self.fail(f"session {s.idx}: read-your-writes broken: read {op.path} -> "
                          f"{op.value} (written at {wz:x}) after its own write acknowledged "
                          f"at {s.acked[op.path]:x}", s.ops[-8:])
            if wz < s.seen.get(op.path, 0):
                self.fail(f"session {s.idx}: view went back: read {op.path} -> {op.value} "
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
                elif op.value in observed:
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
