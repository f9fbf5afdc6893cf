"""An ensemble member's ServerMetrics figures, kept as its driver
(quorum.QuorumPeer) carries the ZAB peer's effects out: how long elections
take, how long a learner takes to sync, how long a leader's proposals take
to commit, what a learner receives and a leader sends.  ZooKeeper's names:

    looking_count, election_time       QuorumPeer: each time the peer starts
                                       looking; looking -> a leader decided
    unavailable_time                   looking -> serving again
    follower_sync_time,                a learner: a leader decided -> serving
    observer_sync_time
    proposal_count, proposal_latency,  a leader: each proposal; proposed ->
    commit_count                       committed (applied) here
    learner_proposal_received_count,   a learner: proposals and commits that
    learner_commit_received_count      came from the leader
    snap_count, diff_count             a leader: learners synced by SNAP / DIFF

The driver calls these at most once per txn or peer message; everything
else about the peer stays in zkpy.zab."""

from ..zab.messages import SNAP
from ..zab.peer import LEADING, LOOKING, OBSERVING


class PeerFigures:
    def __init__(self, metrics, clock):
        self.metrics = metrics
        self.clock = clock
        self.looking_since = clock.now_ms()     # a peer starts by looking
        self.syncing_since = None
        self.proposed_at = {}                    # zxid -> ms, a leader's open proposals
        self.proposal_latency = metrics.summary("proposal_latency")
        self.counters = metrics.counters

    def role_changed(self, role):
        now = self.clock.now_ms()
        m = self.metrics
        if role == LOOKING:
            m.count("looking_count")
            if self.looking_since is None:
                self.looking_since = now
            self.syncing_since = None
            self.proposed_at.clear()
        else:
            if self.looking_since is not None:
                m.summary("election_time").add_value(now - self.looking_since)
            self.syncing_since = now

    def serving(self, serving: bool, role):
        now = self.clock.now_ms()
        if not serving:
            return
        if self.syncing_since is not None and role != LEADING:
            name = "observer_sync_time" if role == OBSERVING else "follower_sync_time"
            self.metrics.summary(name).add_value(now - self.syncing_since)
        if self.looking_since is not None:
            self.metrics.summary("unavailable_time").add_value(now - self.looking_since)
        self.looking_since = None
        self.syncing_since = None

    def proposed(self, zxid):
        self.proposed_at[zxid] = self.clock.now_ms()
        self.counters["proposal_count"] += 1

    def committed(self, zxid):
        at = self.proposed_at.pop(zxid, None)
        if at is not None:
            self.proposal_latency.add_value(self.clock.now_ms() - at)
            self.counters["commit_count"] += 1

    def received(self, proposal: bool, n: int = 1):
        name = "learner_proposal_received_count" if proposal else "learner_commit_received_count"
        self.counters[name] += n

    def synced_learner(self, kind):
        self.counters["snap_count" if kind == SNAP else "diff_count"] += 1
