"""ZAB as a sans-I/O state machine: leader election in the manner of
FastLeaderElection, discovery (a new epoch), synchronisation (DIFF, TRUNC or
SNAP) and broadcast (proposal, ack, commit).

The peer never touches sockets, files or clocks.  Its inputs are method calls
(a message from a peer, a link going down, a tick with the time, the log
reporting what is durable, the server proposing a txn); its outputs are
effects (zkpy.zab.messages: Send, Log, Truncate, InstallSnapshot, Apply,
Epochs, RoleChanged, Serving, Deliver) appended to `self.out`, which the
driver (the asyncio shell or the simulation) carries out in order.

Links between peers are reliable FIFO connections (TCP); what a network does
to them (loss, delay, partitions) shows up as delay, or as the link going
down, which the driver reports with link_down(peer).  A message that is lost
is never silently skipped: the link breaks and both ends start over.
"""

import bisect
from collections import deque

from .messages import (
    DIFF, SNAP, TRUNC, Ack, AckEpoch, App, Apply, CheckDigest, Commit, Deliver, Epochs,
    FollowerInfo, Inform, Informs, Reconfigured,
    InstallSnapshot, LeaderInfo, Log, NewLeader, Ping, Proposal, Proposals, RoleChanged, Send,
    Serving, Sync, Truncate, UpToDate, Vote,
)
from ..protocol.opcodes import Op
from .quorum import QuorumConfig, epoch_of, make_zxid

def _no_config(text):
    return None


LOOKING = "LOOKING"
FOLLOWING = "FOLLOWING"
LEADING = "LEADING"
OBSERVING = "OBSERVING"

# Leader phases.
DISCOVERY, EPOCH_ACK, SYNCING, ESTABLISHED = range(4)


class Learner:
    """What the leader knows of one follower or observer."""
    __slots__ = ("id", "accepted_epoch", "last_zxid", "last_heard", "phase", "observer",
                 "attempt")

    def __init__(self, pid, accepted_epoch, last_zxid, now, observer):
        self.id = pid
        self.accepted_epoch = accepted_epoch
        self.last_zxid = last_zxid
        self.last_heard = now
        self.phase = DISCOVERY     # DISCOVERY -> EPOCH_ACK (acked) -> SYNCING -> ESTABLISHED
        self.observer = observer


class ZabPeer:
    def __init__(self, my_id: int, quorum: QuorumConfig, *, accepted_epoch=0, current_epoch=0,
                 history=(), base_zxid=0, now=0, tick_ms=2000, init_limit=10, sync_limit=5,
                 finalize_ms=200, history_limit=100000, read_config=None, config_text=b"",
                 reconfig_enabled=False, connect_limit=0):
        """quorum: the membership in force (config_text: its text, which
        read_config(text) turns into a QuorumConfig; a reconfiguration txn's
        data is such a text, and read_config(txn) gives its QuorumConfig or
        None for any other txn)."""
        self.id = my_id
        self.quorum = quorum
        self.config_text = config_text
        self.read_config = read_config or _no_config
        self.reconfig_enabled = reconfig_enabled
        # A reconfiguration proposed (or logged) and not committed yet:
        # ZooKeeper's last seen quorum verifier.  While it is pending, an
        # election, a leader's establishment and every proposal from it on
        # need a quorum of both configurations.
        self.next_quorum = None
        self.next_text = None
        # The learner type this peer's own configuration gives it.
        self.observer = my_id in quorum.observers
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        # Logged txns in zxid order (the source of DIFFs); txns before
        # history_base are only in the snapshot.
        self.history = list(history)
        self.history_zxids = [t.zxid for t in self.history]
        self.history_base = base_zxid
        self.history_limit = history_limit
        self.last_logged = self.history_zxids[-1] if self.history else base_zxid
        self.durable = self.last_logged
        # The tree starts at base_zxid (its snapshot); logged txns after it are
        # applied only once known to be committed: by a leader when it takes
        # over (its log becomes the new epoch's history), by a follower when
        # the leader's sync has confirmed or truncated them.
        self.last_applied = base_zxid
        self.commit_point = base_zxid
        self.now = now
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        # connectToLearnerMasterLimit: ticks a learner gives its leader to
        # answer its FOLLOWERINFO (our links are up already: that answer is
        # the connection ZooKeeper's learner makes); 0: initLimit.
        self.connect_limit = connect_limit if connect_limit > 0 else init_limit
        self.finalize_ms = finalize_ms
        self.out = []
        self.role = LOOKING
        self.leader_id = None
        self.serving = False
        self.round = 0
        self.vote = None
        self.recv = {}
        self.out_of_election = {}
        self.early_info = {}        # FOLLOWERINFO that came while we were still LOOKING
        self.decide_at = None
        # Peers whose link went down and that have not been heard from since:
        # an election need not wait for their votes.
        self.silent = set()
        # Follower state.
        self.follow_phase = None
        self.follow_attempt = 0
        self.follow_sent = 0
        self.leader_heard = 0
        self.after_logged = deque()  # (zxid, msg to the leader, epoch) sent once durable
        self.digest_checks = deque()  # (zxid, leader's digest) to compare once zxid is applied
        # The tree has diverged from the leader's: the next sync must be a
        # SNAP, so FOLLOWERINFO and ACKEPOCH claim nothing (last zxid -1).
        self.want_snap = False
        # Leader state.
        self.phase = None
        self.learners: dict[int, Learner] = {}
        self.new_epoch = None
        self.connecting = {}
        self.epoch_acks = set()
        self.newleader_acks = set()
        self.phase_deadline = 0
        self.proposals = {}         # zxid -> set of voter ids that logged it
        self.last_proposed = 0
        self.after_commit = []      # (zxid, peer, payload) app messages held for commits
        self.last_chatter = 0       # when votes or pings were last sent (every tick_ms/2)
        # After committing a reconfiguration that makes another peer leader,
        # this leader commits nothing more (ZooKeeper's allowedToCommit).
        self.allowed_to_commit = True
        for txn in self.history:
            if txn.zxid > quorum.version:
                self._saw_config(txn)

    # --- driver helpers -------------------------------------------------------------

    def take(self) -> list:
        out, self.out = self.out, []
        return out

    def _send(self, to, msg):
        self.out.append(Send(to, msg))

    def start(self):
        self._look()

    # --- membership --------------------------------------------------------------------

    def _voters(self) -> frozenset:
        """Who votes now: the members in force, and those of a pending
        reconfiguration."""
        if self.next_quorum is None:
            return self.quorum.voters
        return self.quorum.voters | self.next_quorum.voters

    def _members(self) -> frozenset:
        if self.next_quorum is None:
            return self.quorum.members
        return self.quorum.members | self.next_quorum.members

    def _has_quorum(self, ids) -> bool:
        """A quorum of the membership in force, and of a pending one."""
        return self.quorum.is_quorum(ids) and \
            (self.next_quorum is None or self.next_quorum.is_quorum(ids))

    @property
    def voting(self) -> bool:
        return self.id in self._voters()

    def _saw_config(self, txn) -> bool:
        """A reconfiguration txn is proposed or logged: it is pending."""
        if txn.type != Op.RECONFIG:
            return False
        cfg = self.read_config(txn.body[1])
        if cfg is None:
            return False
        self.next_quorum = cfg
        self.next_text = txn.body[1]
        self.out.append(Reconfigured(self.next_text, False))
        return True

    def _adopt(self, cfg, text):
        """cfg is in force from now on (it was committed).  True if this
        peer's learner type changed: it became an observer, or stopped being
        one (a participant that is left out of the membership stays a
        participant, without a vote, and goes on following, as ZooKeeper's
        "non-voting participant")."""
        was = self.observer
        self.quorum = cfg
        self.config_text = text
        if self.next_quorum is not None and self.next_quorum.version <= cfg.version:
            self.next_quorum = None
            self.next_text = None
        self.observer = self.id in cfg.observers
        self.out.append(Reconfigured(text, True))
        return was != self.observer

    def _version_initial_config(self):
        """A configuration from a static zoo.cfg has version 0.  With
        reconfigEnabled, a new leader gives it the new epoch's first zxid as
        its version, through NEWLEADER (as a pending reconfiguration that the
        establishment commits), so that it outranks the partial views of
        servers that are yet to join (ZooKeeper's ZOOKEEPER-1783)."""
        if not (self.reconfig_enabled and self.quorum.version == 0 and self.next_quorum is None
                and self.config_text):
            return
        version = make_zxid(self.new_epoch, 0)
        lines = self.config_text.split(b"\n")
        if lines and lines[-1].startswith(b"version="):
            lines = lines[:-1]
        text = b"\n".join(lines + [b"version=%x" % version])
        cfg = self.read_config(text)
        if cfg is not None:
            self.next_quorum = cfg
            self.next_text = text
            self.out.append(Reconfigured(text, False))

    def _activate_pending(self, upto) -> bool:
        """The pending reconfiguration is committed if its zxid is: put it
        in force.  True if this peer's part changed."""
        nq = self.next_quorum
        if nq is None or nq.version > upto:
            return False
        return self._adopt(nq, self.next_text)

    # --- election ---------------------------------------------------------------------

    def _my_vote(self):
        return (self.current_epoch, self.last_logged, self.id)

    def _look(self, preset=None):
        """Start an election.  preset: the vote to start with (the leader a
        committed reconfiguration designated), instead of our own."""
        if self.serving:
            self.serving = False
            self.out.append(Serving(False))
        self.role = LOOKING
        self.leader_id = None
        self.phase = None
        self.follow_phase = None
        self.learners.clear()
        self.proposals.clear()
        self.allowed_to_commit = True   # (a leader that handed over may lead again)
        self.after_commit.clear()
        self.after_logged.clear()
        self.digest_checks.clear()
        self.round += 1
        self.recv = {}
        self.out_of_election = {}
        self.early_info = {}        # FOLLOWERINFO that came while we were still LOOKING
        self.decide_at = None
        if not self.voting:
            self.vote = None
        else:
            self.vote = preset if preset is not None else self._my_vote()
            self.recv[self.id] = self.vote
        self.out.append(RoleChanged(LOOKING, None, self.current_epoch))
        self._broadcast_vote()
        # Our own vote may be a quorum already (an ensemble of one).
        self._check_election()

    def _vote_msg(self, state):
        v = self.vote or (-1, -1, -1)
        if state != LOOKING:
            v = (self.current_epoch if self.role != LOOKING else v[0], v[1], self.leader_id)
        return Vote(v[0], v[1], v[2], self.round, state, self.config_text or None)

    def _broadcast_vote(self):
        msg = self._vote_msg(LOOKING)
        for pid in self._members():
            if pid != self.id:
                self._send(pid, msg)

    def _on_vote(self, frm, msg):
        if msg.config and self._newer_config(msg.config):
            return
        epoch, zxid, leader, rnd, state = msg.epoch, msg.zxid, msg.leader, msg.round, msg.state
        v = (epoch, zxid, leader)
        if self.role != LOOKING:
            if state == LOOKING:
                self._send(frm, self._vote_msg(self.role))
            elif frm == self.leader_id and state != LEADING and self.follow_phase == DISCOVERY:
                # The peer we decided to follow follows another (it answered
                # our FOLLOWERINFO so): it will never lead us; look again
                # rather than wait out initLimit.
                self._look()
            return
        if state == LOOKING:
            if frm not in self._voters() or leader < 0:
                return  # an observer looking for the leader; it learns from others
            if rnd > self.round:
                self.round = rnd
                self.recv = {}
                if self.voting:
                    mine = self._my_vote()
                    self.vote = max(v, mine)
                    self.recv[self.id] = self.vote
                self._broadcast_vote()
            elif rnd < self.round:
                self._send(frm, self._vote_msg(LOOKING))
                return
            elif self.voting and v > self.vote:
                self.vote = v
                self.recv[self.id] = v
                self._broadcast_vote()
            elif self.voting and v < self.vote:
                # The sender has not seen our better vote: it may have been
                # following still when we broadcast it (and then answered
                # with its old leader).  Tell it now, rather than leave it to
                # wait for the next re-broadcast; it takes the vote and says so.
                self._send(frm, self._vote_msg(LOOKING))
            self.recv[frm] = v
            self._check_election()
        else:
            # A peer already following or leading: join the established leader
            # once a quorum says who it is and that peer says it leads.
            self.out_of_election[frm] = (leader, state)
            supporters = [p for p, (l, _) in self.out_of_election.items() if l == leader]
            lead = self.out_of_election.get(leader)
            if leader == self.id:
                return
            if self._has_quorum(supporters + ([self.id] if self.voting else [])) \
                    and lead is not None and lead[1] == LEADING:
                self._follow(leader, epoch)

    def _newer_config(self, text) -> bool:
        """A peer's committed membership, newer than ours: take it and look
        again (FastLeaderElection restarts in the new configuration).  True
        if it was newer."""
        cfg = self.read_config(text)
        if cfg is None or cfg.version <= self.quorum.version:
            return False
        self._adopt(cfg, text)
        self._look()
        return True

    def _check_election(self):
        if not self.voting or self.vote is None:
            return
        vote = self.vote
        recv = self.recv
        agree = [p for p, v in recv.items() if v == vote]
        if self._has_quorum(agree):
            if all(recv.get(p) == vote for p in self._voters() if p not in self.silent):
                # Every voter that can be heard has voted, and for this: no
                # better vote can come (a voter whose link is down comes back
                # to an elected leader), so waiting is no use.
                self._decide()
            elif self.decide_at is None:
                # Wait a moment for a better vote, as FastLeaderElection's finalizeWait.
                self.decide_at = self.now + self.finalize_ms
        else:
            self.decide_at = None

    def _decide(self):
        self.decide_at = None
        leader = self.vote[2]
        if leader == self.id:
            self._lead()
        else:
            self._follow(leader, self.vote[0])

    # --- follower / observer ---------------------------------------------------------

    def _follow(self, leader, epoch):
        self.role = OBSERVING if self.observer else FOLLOWING
        self.leader_id = leader
        self.follow_phase = DISCOVERY
        self.leader_heard = self.now
        self.out.append(RoleChanged(self.role, leader, epoch))
        self.follow_attempt += 1
        self.follow_sent = self.now
        self._send_follower_info()

    def _send_follower_info(self):
        # Resent until the leader answers (it may still be deciding to lead and
        # ignoring us); the attempt number tells its answers apart.
        self._send(self.leader_id, FollowerInfo(self.accepted_epoch, self._claimed_zxid(),
                                                self.observer, self.follow_attempt))

    def _claimed_zxid(self) -> int:
        """The last zxid this learner tells its leader it holds."""
        return -1 if self.want_snap else self.last_logged

    def _on_leader_msg(self, msg):
        kind = msg.__class__
        if self.follow_phase == DISCOVERY and kind is not LeaderInfo and kind is not Ping:
            # Until the leader answers this FOLLOWERINFO, whatever else comes
            # on the link is left over from an earlier time we followed it
            # (say a partition held it while we were LOOKING and dropped
            # its predecessors): taking it would leave a gap in our log.
            return
        self.leader_heard = self.now
        if kind is Proposal or kind is Proposals:
            txns = self._log_new([msg.txn] if kind is Proposal else msg.txns)
            if not txns:
                return
            if self.follow_phase == ESTABLISHED:
                z = txns[-1].zxid
                self.after_logged.append((z, Ack(z), None))
                self._flush_after_logged()
        elif kind is Commit:
            if msg.zxid > self.commit_point:
                self.commit_point = msg.zxid
                if msg.digest is not None:
                    self.digest_checks.append((msg.zxid, msg.digest))
            self._apply_committed()
            if self.next_quorum is not None:
                self._committed_config(msg.leader)
        elif kind is App:
            self.out.append(Deliver(self.leader_id, msg.payload))
        elif kind is Ping:
            self._send(self.leader_id, Ping())
        elif kind is Inform or kind is Informs:
            txns = [msg.txn] if kind is Inform else msg.txns
            self._log_new(txns)
            z = txns[-1].zxid
            if z > self.commit_point:
                self.commit_point = z
                if msg.digest is not None:
                    self.digest_checks.append((z, msg.digest))
            self._apply_committed()
            if self.next_quorum is not None:
                self._committed_config(msg.leader)
        elif kind is LeaderInfo:
            if self.follow_phase != DISCOVERY or msg.attempt != self.follow_attempt:
                return  # an answer to an earlier FOLLOWERINFO
            e = msg.new_epoch
            if e < self.accepted_epoch:
                self._look()
                return
            if e > self.accepted_epoch:
                self.accepted_epoch = e
                self.out.append(Epochs(self.accepted_epoch, self.current_epoch))
            self.follow_phase = EPOCH_ACK
            self._send(self.leader_id, AckEpoch(self.current_epoch, self._claimed_zxid()))
        elif kind is Sync:
            self._on_sync(msg.kind, msg.zxid, msg.txns, msg.settled)
        elif kind is NewLeader:
            zxid = msg.zxid
            if msg.config:
                self._leaders_config(msg.config)
            self.follow_phase = SYNCING
            # Once everything the sync brought is durable: take the new epoch
            # as current (never before, or a crash could leave a disk that
            # claims the epoch without its history), then ack.
            self.after_logged.append((self.last_logged, Ack(zxid), epoch_of(zxid)))
            self._flush_after_logged()
        elif kind is UpToDate:
            self.follow_phase = ESTABLISHED
            # Everything synced is committed in this epoch.
            self.commit_point = max(self.commit_point, self._synced_point)
            self._apply_committed()
            if self.next_quorum is not None and \
                    self._committed_config(None, make_zxid(self.current_epoch, 0)):
                return
            # Proposals logged during the sync are acked now.
            for z in self.history_zxids:
                if z > self._synced_point:
                    self.after_logged.append((z, Ack(z), None))
            self._flush_after_logged()
            if not self.serving:
                self.serving = True
                self.out.append(Serving(True))

    _synced_point = 0

    def _leaders_config(self, text):
        """NEWLEADER's membership: the leader's latest, pending or not.
        Ours to take as pending, in place of any other (as ZooKeeper's
        learner takes the leader's as its last seen); UPTODATE says it is
        committed."""
        cfg = self.read_config(text)
        if cfg is None:
            return
        if cfg.version > self.quorum.version:
            if self.next_quorum is None or self.next_quorum.version != cfg.version:
                self.next_quorum = cfg
                self.next_text = text
                self.out.append(Reconfigured(text, False))
        elif self.next_quorum is not None:
            # What we took as pending never reached the leader, who has every
            # committed txn: the sync truncated it; it will never commit.
            self.next_quorum = None
            self.next_text = None
            self.out.append(Reconfigured(text, False))

    def _committed_config(self, leader, upto=0) -> bool:
        """The pending reconfiguration may now be committed: put it in force.
        A learner whose part changed, or whose leader does not lead the new
        configuration, looks again (starting with a vote for the leader the
        commit named, if any).  True if it looks."""
        nq = self.next_quorum
        if nq is None or nq.version > max(self.commit_point, upto):
            return False
        z = nq.version
        changed = self._adopt(nq, self.next_text)
        if leader is None:
            leader = self.leader_id if self.leader_id in nq.voters else None
        if changed or leader != self.leader_id:
            self._look(preset=(self.current_epoch, z, leader) if leader is not None else None)
            return True
        return False

    def _on_sync(self, kind, zxid, txns, settled):
        if kind == SNAP:
            self.want_snap = False
            self.out.append(InstallSnapshot(zxid))
            self.history = []
            self.history_zxids = []
            self.history_base = zxid
            self.last_logged = self.durable = self.last_applied = self.commit_point = zxid
        elif kind == TRUNC:
            i = bisect.bisect_right(self.history_zxids, zxid)
            del self.history[i:]
            del self.history_zxids[i:]
            self.last_logged = zxid
            self.durable = min(self.durable, zxid)
            self.commit_point = min(self.commit_point, zxid)
            if self.last_applied > zxid:
                self.last_applied = zxid
            if self.next_quorum is not None and self.next_quorum.version > zxid:
                self.next_quorum = self.next_text = None    # its proposal is gone
            self.out.append(Truncate(zxid))
        if txns:
            txns = [t for t in txns if t.zxid > self.last_logged]
            self._append_history(txns)
            self.out.append(Log(txns))
            for t in txns:
                self._saw_config(t)
        # Up to `settled` the leader's history is committed once the leader is
        # established (UPTODATE says so); what we hold after it are proposals.
        self._synced_point = settled

    def _log_new(self, txns) -> list:
        """Log, as one batch, those of txns (in zxid order, from the leader)
        that are not logged here yet; they are returned."""
        last = self.last_logged
        if txns[0].zxid <= last:
            txns = [t for t in txns if t.zxid > last]
            if not txns:
                return txns
        self._append_history(txns)
        self.out.append(Log(txns))
        for txn in txns:
            self._saw_config(txn)
        return txns

    def _append_history(self, txns):
        self.history.extend(txns)
        self.history_zxids.extend(t.zxid for t in txns)
        self.last_logged = self.history_zxids[-1]
        excess = len(self.history) - self.history_limit
        if excess > self.history_limit // 8:
            # Keep a bounded history (older txns are reachable by SNAP only),
            # trimmed in chunks: deleting from the front of a list moves the
            # whole rest of it, which per txn would cost more than the txn.
            over = min(excess, bisect.bisect_right(self.history_zxids, self.last_applied))
            if over > 0:
                self.history_base = self.history_zxids[over - 1]
                del self.history[:over]
                del self.history_zxids[:over]

    def _flush_after_logged(self):
        """Send, in order, what waited for the log to be durable up to its
        zxid.  The entries are in zxid order, so this stops at the first that
        is not durable yet: a follower whose disk is slow while proposals pour
        in must not rescan all it waits for on each one.  Of a run of proposal
        ACKs only the last is sent: the leader takes an ACK for every proposal
        up to its zxid."""
        q = self.after_logged
        durable = self.durable
        ack = None
        while q and q[0][0] <= durable:
            _, msg, epoch = q.popleft()
            if epoch is None and msg.__class__ is Ack:
                ack = msg
                continue
            if ack is not None:
                self._send(self.leader_id, ack)
                ack = None
            if epoch is not None and epoch != self.current_epoch:
                self.current_epoch = epoch
                self.out.append(Epochs(self.accepted_epoch, self.current_epoch))
            self._send(self.leader_id, msg)
        if ack is not None:
            self._send(self.leader_id, ack)

    def _apply_committed(self):
        """Apply, in order, what is both committed and durable here."""
        limit = min(self.commit_point, self.durable)
        if limit > self.last_applied:
            self._apply_through(limit)

    # --- leader -----------------------------------------------------------------------

    def _lead(self):
        self.role = LEADING
        self.leader_id = self.id
        self.phase = DISCOVERY
        self.learners = {}
        self.connecting = {self.id: self.accepted_epoch}
        self.epoch_acks = {self.id}
        self.newleader_acks = {self.id}
        self.phase_deadline = self.now + self.init_limit * self.tick_ms
        self.out.append(RoleChanged(LEADING, self.id, self.current_epoch))
        self._maybe_new_epoch()
        early, self.early_info = self.early_info, {}
        for frm, msg in early.items():
            self._on_learner_msg(frm, msg)

    def _maybe_new_epoch(self):
        if self.phase == DISCOVERY and self._has_quorum(self.connecting):
            self.new_epoch = max(self.connecting.values()) + 1
            self.accepted_epoch = self.new_epoch
            self._version_initial_config()
            self.out.append(Epochs(self.accepted_epoch, self.current_epoch))
            self.phase = EPOCH_ACK
            for learner in self.learners.values():
                self._send(learner.id, LeaderInfo(self.new_epoch, learner.attempt))
            self._epoch_acked()

    def _epoch_acked(self):
        """A quorum accepted the new epoch (our own acceptance may be one, in
        an ensemble of one): it is ours; sync the learners."""
        if self.phase != EPOCH_ACK or not self._has_quorum(self.epoch_acks):
            return
        self.current_epoch = self.new_epoch
        self.out.append(Epochs(self.accepted_epoch, self.current_epoch))
        self.phase = SYNCING
        self.phase_deadline = self.now + self.init_limit * self.tick_ms
        for other in self.learners.values():
            if other.phase == EPOCH_ACK:
                self._sync_learner(other)
        if self._has_quorum(self.newleader_acks):
            self._establish()

    def _on_learner_msg(self, frm, msg):
        kind = msg.__class__
        learner = self.learners.get(frm)
        if kind is FollowerInfo:
            accepted, observer, attempt = msg.accepted_epoch, msg.observer, msg.attempt
            learner = self.learners[frm] = Learner(frm, accepted, msg.last_zxid, self.now,
                                                   observer)
            learner.attempt = attempt
            if self.phase == DISCOVERY:
                if frm in self._voters():
                    self.connecting[frm] = accepted
                self._maybe_new_epoch()
            else:
                self._send(frm, LeaderInfo(self.new_epoch, attempt))
            return
        if learner is None:
            return
        learner.last_heard = self.now
        if kind is Ack:
            zxid = msg.zxid
            if zxid == make_zxid(self.current_epoch, 0) and learner.phase == SYNCING:
                learner.phase = ESTABLISHED
                if not learner.observer:
                    self.newleader_acks.add(frm)
                if self.phase == ESTABLISHED:
                    self._send(frm, UpToDate())
                elif self._has_quorum(self.newleader_acks):
                    self._establish()
            elif not learner.observer:
                # An ack covers every proposal up to its zxid (a follower logs
                # them in order and acks once they are durable).
                for z, acks in self.proposals.items():
                    if z > zxid:
                        break
                    acks.add(frm)
                self._try_commit()
        elif kind is App:
            self.out.append(Deliver(frm, msg.payload))
        elif kind is AckEpoch:
            cur_epoch, last_zxid = msg.current_epoch, msg.last_zxid
            learner.last_zxid = last_zxid
            if (cur_epoch, last_zxid) > (self.current_epoch, self.last_logged) and \
                    self.phase != ESTABLISHED:
                # A follower knows more than we do: we must not lead.
                self._look()
                return
            learner.phase = EPOCH_ACK
            if self.phase == EPOCH_ACK:
                if not learner.observer:
                    self.epoch_acks.add(frm)
                self._epoch_acked()
            elif self.phase in (SYNCING, ESTABLISHED):
                self._sync_learner(learner)
        # A Ping only shows the learner is alive (last_heard, above).

    def _sync_learner(self, learner):
        """Bring a learner to our committed history, then queue our outstanding
        proposals, then NEWLEADER; from here on it gets every broadcast."""
        f = learner.last_zxid
        # Up to c the learner gets our history as settled; after it, as
        # proposals.  Before we are established our whole log is settled.
        c = self.last_applied if self.phase == ESTABLISHED else self.last_logged
        if f == c:
            self._send(learner.id, Sync(DIFF, c, [], c))
        elif f < self.history_base:
            # The tree as applied here, then the settled txns after it.
            a = self.last_applied
            i = bisect.bisect_right(self.history_zxids, a)
            j = bisect.bisect_right(self.history_zxids, c)
            self._send(learner.id, Sync(SNAP, a, self.history[i:j], c))
        else:
            i = bisect.bisect_right(self.history_zxids, f)
            common = self.history_zxids[i - 1] if i > 0 else self.history_base
            j = bisect.bisect_right(self.history_zxids, c)
            txns = self.history[i:j]
            if common == f and f <= c:
                self._send(learner.id, Sync(DIFF, c, txns, c))
            else:
                self._send(learner.id, Sync(TRUNC, common, txns, c))
        j = bisect.bisect_right(self.history_zxids, c)
        for txn in self.history[j:]:
            self._send(learner.id, Proposal(txn))
        learner.phase = SYNCING
        self._send(learner.id, NewLeader(make_zxid(self.current_epoch, 0),
                                         self.next_text or self.config_text or None))

    def _establish(self):
        """A quorum holds our history: all of it is committed in the new epoch."""
        self.phase = ESTABLISHED
        self.commit_point = self.last_logged
        self._apply_committed()
        # A reconfiguration this leader proposed (or logged) before is
        # committed now: a quorum of both configurations acked NEWLEADER.
        self._activate_pending(max(self.commit_point, make_zxid(self.current_epoch, 0)))
        # The last txn really proposed (a sync waits for it to commit); the new
        # epoch's first zxid comes from next_zxid().
        self.last_proposed = self.last_logged
        for learner in self.learners.values():
            if learner.phase == ESTABLISHED:
                self._send(learner.id, UpToDate())
        if not self.voting:
            # The configuration in force has no vote for us: the followers
            # leave us (they see it at UPTODATE); so do we.
            self._look()
            return
        self.serving = True
        self.out.append(Serving(True))

    def next_zxid(self) -> int:
        """The zxid the next proposal must carry (leader only)."""
        return max(self.last_proposed + 1, make_zxid(self.current_epoch, 1))

    def propose_all(self, txns):
        """Broadcast txns made by the leader's prep, consecutive from
        next_zxid(), as one message to each follower (a PROPOSAL for one,
        Proposals for more): they log them as one batch and ACK its last."""
        assert self.role == LEADING and self.phase == ESTABLISHED, "not an established leader"
        assert txns[0].zxid == self.next_zxid(), "proposals must be in zxid order"
        self.last_proposed = txns[-1].zxid
        self._append_history(txns)
        self.out.append(Log(txns))
        proposals = self.proposals
        for txn in txns:
            proposals[txn.zxid] = set()
            self._saw_config(txn)
        # One message object for every follower: the driver encodes it once.
        msg = Proposal(txns[0]) if len(txns) == 1 else Proposals(tuple(txns))
        for learner in self.learners.values():
            if learner.phase in (SYNCING, ESTABLISHED) and not learner.observer:
                self._send(learner.id, msg)

    def _try_commit(self):
        """Commit, in order, the outstanding proposals a quorum has logged.

        Followers get one COMMIT for the last of them (a commit covers every
        proposal before it), observers an INFORM for each.  The leader applies
        a txn before the commit or inform that names it goes out, so that the
        driver can stamp it with the leader's tree digest (Commit.digest).
        An application message held for a commit (a learner's sync) goes to
        its learner right after the commit of the zxid it waited for, as
        ZooKeeper's leader sends a SYNC: the learner then answers it having
        applied exactly that far, before any later txn (a later write of the
        same session must not be visible to a read queued behind the sync)."""
        proposals = self.proposals
        first = None
        activate = None
        while proposals and self.allowed_to_commit:
            z = next(iter(proposals))   # the oldest: proposals are made in zxid order
            acks = proposals[z] | {self.id}
            if z > self.durable or not self.quorum.is_quorum(acks):
                break
            nq = self.next_quorum
            if nq is not None and z >= nq.version and not nq.is_quorum(acks):
                break       # proposed while a reconfiguration is pending: both quorums
            del proposals[z]
            self.commit_point = z
            if first is None:
                first = z
            if nq is not None and z == nq.version:
                activate = (z, acks)
                break       # what follows is committed under the new configuration
        if first is None:
            return
        if activate is not None:
            self._commit_reconfig(*activate)
            if self.role == LEADING and self.allowed_to_commit:
                self._try_commit()
            return
        self._send_commits(self.commit_point)

    def _commit_reconfig(self, z, acks):
        """Commit up to the reconfiguration z and put it in force.  Its commit
        names the new configuration's leader: this one if it votes in it,
        else the most up-to-date new voter that acked it (ZooKeeper's
        designated leader), to which this leader hands over."""
        leader = self._designated_leader(z, acks)
        self._send_commits(z, leader)
        self._adopt(self.next_quorum, self.next_text)
        if leader != self.id:
            self.allowed_to_commit = False
            self._look(preset=(self.current_epoch, z, leader))

    def _designated_leader(self, z, acks) -> int:
        new = self.next_quorum
        if self.id in new.voters:
            return self.id
        candidates = {p for p in acks if p in new.voters and p != self.id}
        best = min(candidates) if candidates else min(new.voters)
        # The candidate that acked the most of what was proposed after z.
        for later in sorted(self.proposals):
            if later <= z:
                continue
            left = candidates & self.proposals[later]
            if not left:
                break
            candidates = left
            best = min(candidates)
        return best

    def _send_commits(self, cp, leader=None):
        """Apply up to cp, and tell the learners (with held messages in place)."""
        held = self._take_held(cp)
        learners = [lr for lr in self.learners.values() if lr.phase in (SYNCING, ESTABLISHED)]
        followers = [lr.id for lr in learners if not lr.observer]
        observers = [lr.id for lr in learners if lr.observer]
        # The zxids a follower needs a commit of: its held messages', and cp.
        cuts = sorted({z for to, msgs in held.items() if to not in observers
                       for z, _ in msgs if z < cp})
        for z in cuts + [cp]:
            self._apply_through(z, observers, held, leader if z == cp else None)
            commit = Commit(z, leader=leader if z == cp else None)
            for f in followers:
                mine = held.get(f)
                if z == cp:
                    self._send(f, commit)
                elif not (mine and mine[0][0] == z):
                    continue
                else:
                    self._send(f, commit)
                while mine and mine[0][0] == z:
                    self._send(f, App(mine.pop(0)[1]))
        for to, rest in held.items():   # a learner that is not synced (any more)
            for _, payload in rest:
                self._send(to, App(payload))

    def _apply_through(self, zxid, observers=(), held=None, leader=None):
        """Apply the committed txns up to zxid; a leader informs its observers
        of them (once applied: one message for the run of txns up to zxid,
        or up to a message held for an observer, which follows the inform
        of its zxid) and sends them what was held (leader: the new
        configuration's, for the inform that ends at the txn zxid)."""
        hz = self.history_zxids
        i = bisect.bisect_right(hz, self.last_applied)
        checks = self.digest_checks
        run = []     # applied, not yet told to the observers
        z = None
        while i < len(hz) and hz[i] <= zxid:
            z = hz[i]
            txn = self.history[i]
            self.out.append(Apply(txn))
            self.last_applied = z
            i += 1
            if checks and checks[0][0] <= z:
                zc, digest = checks.popleft()
                if zc == z:
                    self.out.append(CheckDigest(z, digest))
            if observers:
                run.append(txn)
                if held and any(held.get(o) and held[o][0][0] <= z for o in observers):
                    self._inform(observers, run, held, z, leader if z == zxid else None)
                    run = []
        if run:
            self._inform(observers, run, held, z, leader if z == zxid else None)

    def _inform(self, observers, txns, held, z, leader):
        """Tell the observers of txns (applied, up to z), then send each what
        was held for it up to z."""
        msg = Inform(txns[0], leader=leader) if len(txns) == 1 else \
            Informs(tuple(txns), leader=leader)
        for o in observers:
            self._send(o, msg)
            mine = held.get(o)
            while mine and mine[0][0] <= z:
                self._send(o, App(mine.pop(0)[1]))

    def _take_held(self, zxid) -> dict:
        """The held application messages due once zxid is committed, by
        destination, in zxid order."""
        due = {}
        if self.after_commit:
            keep = []
            for z, to, payload in self.after_commit:
                if z <= zxid:
                    due.setdefault(to, []).append((z, payload))
                else:
                    keep.append((z, to, payload))
            self.after_commit = keep
        return due

    def send_app(self, to, payload):
        self._send(to, App(payload))

    def send_app_after_commits(self, to, payload):
        """Send payload to `to` once everything proposed so far is committed
        (how the leader answers a follower's sync)."""
        if self.last_applied >= self.last_proposed:
            self._send(to, App(payload))
        else:
            self.after_commit.append((self.last_proposed, to, payload))

    def synced_followers(self) -> set:
        """A leader's followers (not observers) that are synced with it."""
        return {lr.id for lr in self.learners.values()
                if lr.phase == ESTABLISHED and not lr.observer}

    def held_app_messages(self) -> int:
        """Application messages held until the proposals before them commit."""
        return len(self.after_commit)

    def learner_counts(self) -> dict:
        """A leader's learners by state (mntr's learners, synced_followers, ...)."""
        if self.role != LEADING:
            return {}
        learners = list(self.learners.values())
        synced = [lr for lr in learners if lr.phase == ESTABLISHED]
        voters = self._voters()
        return {
            "learners": len(learners),
            "synced_followers": sum(1 for lr in synced if not lr.observer and lr.id in voters),
            "synced_non_voting_followers":
                sum(1 for lr in synced if not lr.observer and lr.id not in voters),
            "synced_observers": sum(1 for lr in synced if lr.observer),
        }

    # --- inputs ------------------------------------------------------------------------

    def receive(self, frm, msg):
        self.silent.discard(frm)
        kind = msg.__class__
        if kind is Vote:
            self._on_vote(frm, msg)
        elif self.role == LEADING:
            self._on_learner_msg(frm, msg)
        elif self.role in (FOLLOWING, OBSERVING) and frm == self.leader_id:
            self._on_leader_msg(msg)
        elif self.role == LOOKING and kind is FollowerInfo:
            # A peer that decided before we did: keep its request for when we
            # lead (else it waits for its resend).
            self.early_info[frm] = msg
        elif kind is FollowerInfo:
            # We follow another peer: say so (see _on_vote).
            self._send(frm, self._vote_msg(self.role))

    def resync(self):
        """This learner's tree has diverged from its leader's (a digest did not
        match): stop serving and sync again, by SNAP."""
        if self.role in (FOLLOWING, OBSERVING):
            self.want_snap = True
            self._look()

    def logged(self, zxid):
        """The driver's log made every txn up to zxid durable."""
        if zxid > self.durable:
            self.durable = zxid
        if self.role == LEADING:
            self._try_commit()
        else:
            self._flush_after_logged()
        self._apply_committed()

    def link_down(self, peer):
        self.silent.add(peer)
        if self.role == LOOKING:
            self._check_election()
        elif self.role in (FOLLOWING, OBSERVING) and peer == self.leader_id:
            self._look()
        elif self.role == LEADING and peer in self.learners:
            del self.learners[peer]
            self.connecting.pop(peer, None)
            self._check_leader_quorum()

    def tick(self, now):
        """Call often (every few tens of ms); timeouts count in tickTime."""
        self.now = now
        chatter = now - self.last_chatter >= self.tick_ms // 2
        if chatter:
            self.last_chatter = now
        if self.role == LOOKING:
            if self.decide_at is not None and now >= self.decide_at:
                self._decide()
            elif chatter:
                self._broadcast_vote()
        elif self.role == LEADING:
            sync_ms, init_ms = self.sync_limit * self.tick_ms, self.init_limit * self.tick_ms
            ping = Ping()
            for learner in list(self.learners.values()):
                # A learner still syncing (loading a SNAP, truncating its log)
                # gets initLimit, as ZooKeeper's LearnerHandler does; once
                # synced with an established leader, syncLimit.
                synced = self.phase == ESTABLISHED and learner.phase == ESTABLISHED
                if now - learner.last_heard > (sync_ms if synced else init_ms):
                    del self.learners[learner.id]
                    self.connecting.pop(learner.id, None)
                elif chatter:
                    self._send(learner.id, ping)
            if self.phase != ESTABLISHED and now > self.phase_deadline:
                self._look()
                return
            self._check_leader_quorum()
        else:
            phase = self.follow_phase
            limit = (self.sync_limit if phase == ESTABLISHED else
                     self.connect_limit if phase == DISCOVERY else self.init_limit)
            if now - self.leader_heard > limit * self.tick_ms:
                self._look()
            elif self.follow_phase == DISCOVERY and \
                    now - self.follow_sent >= min(self.tick_ms // 2, 100):
                self.follow_sent = now
                self._send_follower_info()

    def _check_leader_quorum(self):
        if self.phase != ESTABLISHED:
            return
        synced = [p for p, l in self.learners.items() if l.phase == ESTABLISHED and not l.observer]
        if not self._has_quorum(synced + [self.id]):
            self._look()
