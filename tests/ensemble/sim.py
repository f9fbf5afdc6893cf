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
A failure raises SimulationError with the seed and the trace tail, enough to
replay it: Simulation(seed).run(steps)."""

import copy
import heapq
import random

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import Op
from zkpy.zab.peer import LEADING, ZabPeer
from zkpy.zab.quorum import QuorumConfig

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
        d = self.disk
        # The unsynced tail is lost, maybe only part of it.
        keep = self.sim.rng.randint(0, len(d.unsynced)) if self.sim.partial_tail else 0
        d.log.extend(d.unsynced[:keep])
        d.unsynced = []
        d.sync_pending = False
        self.stash.clear()

    def process(self):
        for eff in self.peer.take():
            self.sim.handle(self, eff)


class Simulation:
    def __init__(self, seed, n=3, observers=0, tick_ms=100, init_limit=10, sync_limit=5,
                 finalize_ms=20, history_limit=50, partial_tail=True, faults=True):
        self.seed = seed
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

    # --- plumbing ---------------------------------------------------------------------

    def at(self, t, *event):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, event))

    def log(self, text):
        self.trace.append(f"{self.now:>7} {text}")
        if len(self.trace) > 4000:
            del self.trace[:1000]

    def fail(self, why):
        tail = "\n".join(self.trace[-3000:])
        raise SimulationError(f"seed {self.seed}: {why}\n--- last events ---\n{tail}")

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
        elif kind == "role":
            self.log(f"peer {node.id} -> {eff[1]} leader={eff[2]} epoch={eff[3]}")
        elif kind == "serving":
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
        for nid, node in self.nodes.items():
            node.boot()
            self.at(self.rng.randint(0, 30), "tick", nid)
        self.at(50, "workload")
        self.at(300, "fault")
        for _ in range(steps):
            if not self.events:
                break
            self.step()
        self.check_trees()
        return self

    def settle(self, ms=5000):
        """Heal everything, restart the dead, and run on so the ensemble
        converges; then every live peer must hold all of G."""
        self.faults = False
        self.quiet = True
        self.cut = set()
        for node in self.nodes.values():
            if not node.alive:
                node.boot()
        end = self.now + ms
        while self.events and self.now < end:
            self.step()
        self.check_trees()
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
