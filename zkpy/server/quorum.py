"""A member of a replicated ensemble: the ZAB state machine (zkpy.zab.peer)
wired to the peer links, the durable log, the epoch files and the same client
pipeline a standalone server runs.

    leader    prep -> txn -> ZabPeer.propose -> quorum of acks -> apply -> reply
    follower  forwards writes (and syncs, and session activity) to the leader;
              answers reads locally once the session's earlier requests are
              applied; replies to its own clients' writes when the leader's
              commit reaches it.

Sessions are global: created and closed by txns through the leader, expired
by the leader's tracker, which followers keep alive with TOUCH messages.
The leader also knows which peer each session's client talks through (its
owner, set when the session is created or resumed there): a request that
comes through another peer finds the session moved, and its connection is
closed (see ZooKeeperServer.write_reply).

Read-only mode (readonlymode.enabled): a peer that has been LOOKING for
max(2 s, tickTime) -- cut off from its quorum -- serves the clients that ask
for read-only sessions, as ZooKeeper's ReadOnlyZooKeeperServer does: reads
from its own tree, NotReadOnly for every write and sync, sessions local to
the peer (ZooKeeper with localSessionsEnabled).  It stops, closing those
connections, as soon as the peer has a leader again."""

import asyncio
import gc
import logging
import os

from ..protocol.errors import Err, MarshallingError
from ..protocol.jute import Reader
from ..protocol.opcodes import Op
from ..protocol.records import REQUEST_DECODERS
from ..session.tracker import SessionTracker
from ..storage.database import DurableLog, dirs, load_snapshot, logged_txns
from ..storage.forked import fork_bytes
from ..storage.snapshot import parse_snapshot, snapshot_bytes, write_snapshot_bytes
from ..storage.epochs import read_epochs, write_epochs
from ..storage.txnlog import list_logs, truncate_logs
from ..zab.peer import ESTABLISHED, FOLLOWING, LEADING, LOOKING, OBSERVING, ZabPeer
from ..zab.quorum import QuorumConfig
from ..zab.transport import PeerTransport, encode
from . import replies
from .listener import ServerRunner
from .request import Request
from .zkserver import ZooKeeperServer, monotonic_ms, wall_ms

log = logging.getLogger("zkpy.quorum")

_MODES = {LEADING: "leader", FOLLOWING: "follower", OBSERVING: "observer"}

# A SYNC carrying more txns than this is encoded by a forked child (about
# 1 us a txn on the loop, against a few ms to fork), as a SNAP always is.
FORK_SYNC_TXNS = 10000


class RemoteOrigin:
    """Stands for a follower's client connection in the leader's prep."""
    __slots__ = ("session_id", "auth_ids")

    def __init__(self, session_id, auth_ids):
        self.session_id = session_id
        self.auth_ids = [tuple(a) for a in auth_ids]


class QuorumZooKeeperServer(ZooKeeperServer):
    """The client pipeline of an ensemble member; the peer decides its role."""

    def __init__(self, config, peer, tree):
        super().__init__(config, txn_log=peer, tree=tree, mode="looking",
                         server_id=config.my_id)
        self.peer = peer
        self.serving = False
        self.touched = set()
        self.pending_syncs = []   # (zxid, request) waiting for the follower to apply zxid
        self.proposal_sizes = [-1, -1, -1]   # last, min, max (ZooKeeper's BufferStats)
        self.revalidating = {}    # token -> (connection, session id, timeout) asked of the leader
        self.revalidations = 0
        self.leader_since = 0
        self.global_tracker = None   # the usual tracker, put aside while read-only

    @property
    def is_leader(self) -> bool:
        return self.peer.core.role == LEADING

    def submit_request(self, request, reply=True, owner=None):
        if self.read_only:
            self._read_only_write(request)
            return
        if self.is_leader:
            super().submit_request(request, reply, self.owner if owner is None else owner)
            return
        # A follower: the leader preps it; we answer when its commit arrives.
        sid = request.conn.session_id
        self.expect_reply((sid, request.xid), request)
        self.peer.to_leader(("REQ", sid, request.xid, request.op, request.payload,
                             [list(a) for a in request.conn.auth_ids]))

    def submit_sync(self, request):
        if self.read_only:
            self._read_only_write(request)
            return
        if self.is_leader:
            # Answer once everything proposed so far is applied here.
            zxid = self.peer.core.last_proposed
            if self.tree.last_zxid >= zxid:
                self._answer_sync(request)
            else:
                self.pending_syncs.append((zxid, request))
            return
        sid = request.conn.session_id
        self.expect_reply(("sync", sid, request.xid), request)
        self.peer.to_leader(("SYNC", sid, request.xid))

    def create_session(self, conn, timeout):
        if self.read_only:
            # A local session: no txn, nobody else knows of it.
            sid = self.sessions.new_session_id()
            self.sessions.add(sid, timeout, monotonic_ms())
            conn._handshake_done(sid)
            return sid
        if self.is_leader:
            sid = super().create_session(conn, timeout)
            self.sessions.set_owner(sid, self.owner)
            return sid
        sid = self.sessions.new_session_id()
        self.expect_reply((sid, 0), Request(conn, 0, Op.CREATE_SESSION, None, monotonic_ms()))
        self.peer.to_leader(("SESS", sid, timeout))
        return sid

    def resume_session(self, conn, sid, timeout):
        """A follower cannot tell from its own tree whether a session lives (it
        may not have applied its createSession yet, or the leader may have
        expired it): it asks the leader, as ZooKeeper's Learner revalidates."""
        if self.is_leader or self.read_only:
            if self.touch_session(sid, monotonic_ms(), timeout):
                self.sessions.set_owner(sid, self.owner)   # it is ours now
                conn._handshake_done(sid)
            else:
                conn.session_expired()
            return
        self.revalidations += 1
        token = self.revalidations
        self.revalidating[token] = (conn, sid, timeout)
        self.peer.to_leader(("REVAL", sid, timeout, token))

    def touch_session(self, sid, now, timeout=None) -> bool:
        ok = self.sessions.touch(sid, now, timeout)
        if ok and not self.is_leader and not self.read_only:
            self.touched.add(sid)
        return ok

    def validate_session(self, sid) -> bool:
        """A read-only peer refuses to resume a global session (one its tree
        knows): its client must find a peer with a quorum."""
        return not (self.read_only and sid in self.tree.sessions)

    def expire_sessions(self, now_ms):
        if self.read_only:
            # Local sessions expire here, without a txn.
            for sid in self.sessions.expired(now_ms):
                log.info("Expiring read-only session 0x%x", sid & 0xFFFFFFFFFFFFFFFF)
                self.sessions.remove(sid)
                conn = self.conn_by_session.get(sid)
                if conn is not None:
                    conn.close()
            return
        # Only an established leader: one still in discovery or sync can
        # propose nothing, and its tracker is not yet refreshed (as a follower
        # it saw no pings for sessions connected elsewhere).
        if self.is_leader and self.serving:
            super().expire_sessions(now_ms)

    def reap_containers(self, now_wall_ms) -> int:
        return super().reap_containers(now_wall_ms) if self.is_leader and self.serving else 0

    def apply(self, txn):
        super().apply(txn)
        if self.pending_syncs:
            done = [p for p in self.pending_syncs if p[0] <= txn.zxid]
            if done:
                self.pending_syncs = [p for p in self.pending_syncs if p[0] > txn.zxid]
                for _, req in done:
                    self._answer_sync(req)

    def _answer_sync(self, req):
        req.reply = replies.with_body(req.xid, self.tree.last_zxid,
                                      replies.encode_string(req.record.path))
        req.conn.drain()

    # --- messages from the other end of the peer link --------------------------------

    def on_app(self, frm, msg):
        kind = msg[0]
        if kind == "REQ":          # leader: a follower's client write
            _, sid, cxid, op, payload, auth_ids = msg
            self._submit_forwarded(frm, sid, cxid, op, payload, auth_ids)
        elif kind == "SESS":       # leader: a follower's new session
            _, sid, timeout = msg
            self.sessions.add(sid, timeout, monotonic_ms())
            self.sessions.set_owner(sid, frm)
            self.submit(sid, 0, Op.CREATE_SESSION, lambda: (Op.CREATE_SESSION, (timeout,), None))
        elif kind == "REVAL":      # leader: may a follower's client resume this session?
            _, sid, timeout, token = msg
            ok = self.sessions.touch(sid, monotonic_ms(), timeout)
            if ok:
                self.sessions.set_owner(sid, frm)     # the session moves there
            self.peer.core.send_app(frm, ("REVALED", token, ok))
        elif kind == "REVALED":    # follower: the leader's answer
            _, token, ok = msg
            waiting = self.revalidating.pop(token, None)
            if waiting is None:
                return
            conn, sid, timeout = waiting
            if ok:
                # Known from now on, even before its createSession is applied here.
                self.sessions.add(sid, timeout, monotonic_ms())
                self.touched.add(sid)
                conn._handshake_done(sid)
            else:
                conn.session_expired()
        elif kind == "TOUCH":      # leader: sessions alive on a follower
            now = monotonic_ms()
            for sid in msg[1]:
                self.sessions.touch(sid, now)
        elif kind == "SYNC":       # leader: answer once everything proposed is committed
            _, sid, cxid = msg
            self.peer.core.send_app_after_commits(
                frm, ("SYNCED", sid, cxid, self.peer.core.last_proposed))
        elif kind == "SYNCED":     # follower: the leader's answer to a sync
            _, sid, cxid, zxid = msg
            req = self.take_waiter(("sync", sid, cxid))
            if req is None:
                return
            if self.tree.last_zxid >= zxid:
                self._answer_sync(req)
            else:
                self.pending_syncs.append((zxid, req))

    def _submit_forwarded(self, frm, sid, cxid, op, payload, auth_ids):
        origin = RemoteOrigin(sid, auth_ids)
        record, error = None, None
        decoder = REQUEST_DECODERS.get(op)
        try:
            if decoder is None or payload is None:
                raise MarshallingError("unknown forwarded request")
            record = decoder(Reader(payload, 8, self.config.jute_maxbuffer * 2))
        except MarshallingError as e:
            error = e
        req = Request(origin, cxid, op, record, monotonic_ms(), error)
        super().submit_request(req, reply=False, owner=frm)

    # --- read-only mode ----------------------------------------------------------------------

    def _read_only_write(self, request):
        """ReadOnlyRequestProcessor: every state-changing request (and sync)
        is answered NotReadOnly, whatever its body; closeSession closes the
        local session here."""
        conn = request.conn
        zxid = self.tree.last_zxid
        if request.op == Op.CLOSE_SESSION:
            self.sessions.remove(conn.session_id)
            request.reply = replies.header_only(request.xid, zxid, 0)
            conn.close_after_flush = True
        else:
            request.reply = replies.header_only(request.xid, zxid, Err.NOT_READ_ONLY)
        conn.drain()

    def start_read_only(self):
        """Serve read-only clients (the peer is LOOKING, cut off from its quorum)."""
        if self.read_only or self.serving:
            return
        self.read_only = True
        self.serving = True
        self.mode = "read-only"
        self.global_tracker = self.sessions
        self.sessions = SessionTracker(self.config.my_id, self.config.tick_time,
                                       monotonic_ms(), wall_ms())
        log.info("peer %d: read-only server started at zxid 0x%x", self.config.my_id,
                 self.tree.last_zxid)

    def stop_read_only(self):
        """The peer has a leader again: close every read-only connection (their
        clients go and find a read-write server) and forget the local sessions."""
        if not self.read_only:
            return
        self.read_only = False
        self.serving = False
        self.mode = "looking"
        self.sessions = self.global_tracker
        self.global_tracker = None
        for conn in list(self.connections):
            conn.close()
        log.info("peer %d: read-only server stopped", self.config.my_id)

    # --- role changes -------------------------------------------------------------------------

    def set_serving(self, serving: bool):
        self.stop_read_only()
        self.serving = serving
        core = self.peer.core
        self.mode = _MODES.get(core.role, "looking") if serving else "looking"
        if serving:
            # The synced tree says which sessions live.  Rebuild the tracker
            # from it: a session marked closing in an earlier term whose
            # closeSession was never committed lives on, and every one gets a
            # full timeout so none dies of the election (a leader's sessions
            # are kept alive by their peers' TOUCHes from now on).
            now = monotonic_ms()
            self.sessions.sessions.clear()
            self.sessions.buckets.clear()
            for sid, timeout in self.tree.sessions.items():
                self.sessions.add(sid, timeout, now)
        # Our own clients' sessions are owned by our id (a follower's by its).
        self.owner = self.peer.my_id if serving and core.role == LEADING else None
        if serving and core.role == LEADING:
            self.next_zxid = core.next_zxid()
            self.leader_since = monotonic_ms()
            self.proposal_sizes = [-1, -1, -1]
            # Nothing is prepped in this term yet: forget an earlier term's
            # outstanding changes (their txns may have been truncated away).
            self.prep.reset()
        if not serving:
            for conn in list(self.connections):
                conn.close()
            self.waiting.clear()
            self.pending_syncs.clear()
            self.revalidating.clear()

    def install_tree(self, tree):
        """A SNAP from the leader replaced our state."""
        self.tree = tree
        self.prep.tree = tree
        self.prep.reset()
        self.sessions.sessions.clear()
        self.sessions.buckets.clear()
        now = monotonic_ms()
        for sid, timeout in tree.sessions.items():
            self.sessions.add(sid, timeout, now)

    def flush_touches(self):
        if self.touched and self.serving and not self.is_leader:
            self.peer.to_leader(("TOUCH", sorted(self.touched)))
            self.touched.clear()

    # --- four-letter words ----------------------------------------------------------------

    def note_proposal_size(self, size: int):
        """BufferStats of the leader's proposals (srvr, mntr)."""
        last, lo, hi = self.proposal_sizes
        self.proposal_sizes = [size, size if lo < 0 else min(lo, size), max(hi, size)]

    def extra_monitor_values(self) -> list:
        """mntr's leader-only keys (Leader's metrics in ZooKeeper 3.8, plus
        zk_followers as 3.4 printed it); nothing on a follower."""
        core = self.peer.core
        if not (self.serving and core.role == LEADING):
            return []
        learners = list(core.learners.values())
        synced = [l for l in learners if l.phase == ESTABLISHED]
        voters = core.quorum.voters
        last, lo, hi = self.proposal_sizes
        return [
            ("learners", len(learners)),
            ("followers", len(learners)),
            ("synced_followers", sum(1 for l in synced if not l.observer and l.id in voters)),
            ("synced_non_voting_followers",
             sum(1 for l in synced if not l.observer and l.id not in voters)),
            ("synced_observers", sum(1 for l in synced if l.observer)),
            ("pending_syncs", len(core.after_commit) + len(self.pending_syncs)),
            ("leader_uptime", max(0, monotonic_ms() - self.leader_since)),
            ("last_proposal_size", last),
            ("max_proposal_size", hi),
            ("min_proposal_size", lo),
        ]

    def extra_srvr_lines(self) -> list:
        """A leader's srvr/stat add its proposal sizes (BufferStats: -1 until one)."""
        if not (self.serving and self.peer.core.role == LEADING):
            return []
        last, lo, hi = self.proposal_sizes
        return [f"Proposal sizes last/min/max: {last}/{lo}/{hi}"]


class QuorumPeer:
    """Drives a ZabPeer: carries out its effects and feeds it the network,
    the disk and the clock."""

    def __init__(self, config):
        self.config = config
        self.my_id = config.my_id
        self.snap_dir, self.log_dir = dirs(config)
        specs = config.servers
        self.quorum = QuorumConfig.of(
            [i for i, s in specs.items() if not s.is_observer],
            [i for i, s in specs.items() if s.is_observer])
        self.core = None
        self.server = None
        self.durable = None
        self.transport = None
        self.runner = None
        self.loop = None
        self.stash = {}
        self.log_generation = 0
        self.tasks = []
        self.read_only_timer = None
        # The last message encoded and its frame: the core hands the same
        # message object (a proposal, a commit, a ping) to every follower.
        self.last_msg = None
        self.last_frame = b""

    # --- start and stop ------------------------------------------------------------------

    async def start(self):
        self.loop = loop = asyncio.get_running_loop()
        c = self.config
        os.makedirs(self.snap_dir, exist_ok=True)
        gc.disable()  # see ServerRunner.start: no collections while the tree is built
        try:
            tree = await loop.run_in_executor(None, load_snapshot, self.snap_dir)
            history = await loop.run_in_executor(None, logged_txns, self.log_dir,
                                                 tree.last_zxid)
        finally:
            gc.enable()
        gc.freeze()
        accepted, current = read_epochs(str(c.data_dir))
        self.core = ZabPeer(self.my_id, self.quorum, accepted_epoch=accepted,
                            current_epoch=current, history=history, base_zxid=tree.last_zxid,
                            now=monotonic_ms(), tick_ms=c.tick_time, init_limit=c.init_limit,
                            sync_limit=c.sync_limit, history_limit=max(1000, c.snap_count))
        self.server = QuorumZooKeeperServer(c, self, tree)
        self.server.replay_until = self.core.last_logged
        self.server.defer_sync = True
        self.durable = self._durable_log(tree)
        addresses = {i: (s.host, s.quorum_port) for i, s in c.servers.items()}
        me = c.servers[self.my_id]
        self.transport = PeerTransport(self.my_id, addresses, self._on_message, self._on_link_down)
        await self.transport.start([me.quorum_port])
        self.runner = await ServerRunner(c, self.server).start()
        self.core.start()
        self._process()
        self.tasks.append(loop.create_task(self._ticker()))
        log.info("zkpy peer %d serving clients on %s:%s, peers on %s:%s", self.my_id,
                 self.runner.host, self.runner.port, me.host, me.quorum_port)
        return self

    async def stop(self):
        if self.read_only_timer is not None:
            self.read_only_timer.cancel()
        for t in self.tasks:
            t.cancel()
        if self.runner is not None:
            await self.runner.stop()   # closes the server and its log
        if self.transport is not None:
            await self.transport.stop()

    async def _ticker(self):
        touch_every = self.config.tick_time / 2000
        last_touch = 0
        while True:
            await asyncio.sleep(0.05)
            now = monotonic_ms()
            try:
                self.core.tick(now)
                self._process()
                if now - last_touch >= touch_every * 1000:
                    last_touch = now
                    self.server.flush_touches()
            except Exception:
                # A dead ticker is a peer that never times out: say so, go on.
                log.exception("peer %d: tick failed", self.my_id)

    # --- inputs to the state machine -------------------------------------------------------

    def _on_message(self, frm, msg):
        if msg[0] == "SYNC" and msg[1] == "SNAP" and len(msg) > 5:
            self.stash[msg[2]] = msg[5]
            msg = msg[:5]
        self.core.receive(frm, msg)
        self._process()

    def _on_link_down(self, peer):
        self.core.link_down(peer)
        self._process()

    def _durable_log(self, tree):
        """A log that reports each group commit once, with its last zxid."""
        gen = self.log_generation
        return DurableLog(self.config, self.loop, tree,
                          on_batch=lambda zxid: self._on_logged(gen, zxid))

    def _on_logged(self, generation, zxid):
        if generation == self.log_generation:
            self.core.logged(zxid)
            self._process()

    # --- the server's log: the leader's writes become proposals -----------------------------

    def append(self, txn, on_logged):
        self.core.propose(txn)
        self._process()

    def to_leader(self, msg):
        core = self.core
        if core.leader_id is not None and core.role in (FOLLOWING, OBSERVING):
            core.send_app(core.leader_id, msg)
            self._process()

    def close(self):
        if self.durable is not None:
            self.durable.close()

    def purge(self):
        return self.durable.purge()

    # --- effects ------------------------------------------------------------------------------

    def _process(self):
        core = self.core
        while core.out:
            for eff in core.take():
                self._effect(eff)

    def _effect(self, eff):
        kind = eff[0]
        if kind == "send":
            _, to, msg = eff
            if msg is not self.last_msg:
                if msg[0] == "SYNC" and (msg[1] == "SNAP" or len(msg[3]) > FORK_SYNC_TXNS):
                    self._send_sync_forked(to, msg)
                    return
                self.last_msg = msg
                self.last_frame = encode(msg)
                if msg[0] == "PROPOSAL":
                    self.server.note_proposal_size(len(self.last_frame) - 4)
            self.transport.send_frame(to, self.last_frame)
        elif kind == "log":
            append = self.durable.append
            for txn in eff[1]:
                append(txn)
        elif kind == "apply":
            self.server.apply(eff[1])
        elif kind == "epochs":
            write_epochs(str(self.config.data_dir), eff[1], eff[2])
        elif kind == "truncate":
            log.info("peer %d: sync from the leader by TRUNC to zxid 0x%x", self.my_id, eff[1])
            self._restart_log(lambda: truncate_logs(self.log_dir, eff[1]))
        elif kind == "snapshot":
            log.info("peer %d: sync from the leader by SNAP at zxid 0x%x", self.my_id, eff[1])
            blob = self.stash.pop(eff[1])
            tree = parse_snapshot(blob)

            def replace():
                # The leader's bytes are the snapshot file (parse_snapshot
                # checked them): no need to serialise the tree again.
                write_snapshot_bytes(blob, tree.last_zxid, self.snap_dir)
                for _, path in list_logs(self.log_dir):
                    os.remove(path)
            self._restart_log(replace, tree)
            self.server.install_tree(tree)
        elif kind == "role":
            log.info("peer %d: %s (leader %s, epoch %s)", self.my_id, eff[1], eff[2], eff[3])
            if eff[1] == LOOKING:
                self.server.set_serving(False)
                self._arm_read_only()
            else:
                self._disarm_read_only()
        elif kind == "serving":
            self.server.set_serving(eff[1])
            if eff[1]:
                log.info("peer %d: serving as %s", self.my_id, self.server.mode)
        elif kind == "app":
            self.server.on_app(eff[1], eff[2])

    # --- read-only mode --------------------------------------------------------------------

    def _arm_read_only(self):
        """LOOKING: with readonlymode.enabled, serve read-only clients if no
        leader is found within a grace period (QuorumPeer's roZkMgr thread:
        max(2000 ms, tickTime))."""
        if not self.config.readonly_mode_enabled:
            return
        if self.read_only_timer is not None:
            self.read_only_timer.cancel()
        delay = max(2000, self.config.tick_time) / 1000
        self.read_only_timer = self.loop.call_later(delay, self._read_only_due)

    def _read_only_due(self):
        self.read_only_timer = None
        if self.core.role == LOOKING:
            self.server.start_read_only()

    def _disarm_read_only(self):
        """A leader was found: no read-only server from now on."""
        if self.read_only_timer is not None:
            self.read_only_timer.cancel()
            self.read_only_timer = None
        self.server.stop_read_only()

    def _restart_log(self, change, tree=None):
        """Stop the log, change the files, start a new log file."""
        self.durable.close()
        self.log_generation += 1
        change()
        self.durable = self._durable_log(tree if tree is not None else self.server.tree)
        self.server.log = self

    def _send_sync_forked(self, to, msg):
        """A SYNC by SNAP (the whole tree) or with many txns, encoded by a
        forked child: it sees the tree as it is now while this loop goes on
        serving.  The frame's place on the link is held meanwhile: what
        follows it (proposals, NEWLEADER) waits for it, so the follower gets
        everything in the order the core sent it."""
        place = self.transport.reserve(to)
        if place is None:
            return
        tree = self.server.tree
        zxid = tree.last_zxid
        if msg[1] == "SNAP":
            log.info("peer %d: syncing peer %d by SNAP at zxid 0x%x (%d znodes)", self.my_id,
                     to, zxid, tree.node_count())

            def make():
                return encode(msg + (snapshot_bytes(tree, zxid),))
        else:
            log.info("peer %d: syncing peer %d by %s with %d txns", self.my_id, to, msg[1],
                     len(msg[3]))

            def make():
                return encode(msg)

        def done(frame):
            if frame is None:
                log.warning("peer %d: the sync for peer %d failed; dropping its link",
                            self.my_id, to)
                self.transport.drop(place)
            else:
                self.transport.fill(place, frame)

        if not fork_bytes(make, self.loop, done):
            done(make())


async def run_peer(config, stop_event: asyncio.Event):
    peer = await QuorumPeer(config).start()
    try:
        await stop_event.wait()
    finally:
        await peer.stop()
