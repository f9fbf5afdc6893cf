"""What the serving roles of an ensemble member share: global sessions are
created and closed by txns through the leader, so a member starting to
serve rebuilds its session tracker from its synced tree (the local sessions
of an earlier term are gone with their connections); local sessions, with
localSessionsEnabled (local_sessions.py); and mntr reports the member's
peer state and the quorum's size."""

from .base import Role
from .local_sessions import LocalSessions


class EnsembleRole(LocalSessions, Role):
    serving = True
    peer_state = ""          # mntr's zk_peer_state, e.g. "leading - broadcast"

    def __init__(self, server, port):
        super().__init__(server)
        self.port = port
        self.pending_syncs = []     # (zxid, request): answered once zxid is applied here
        self.init_local_sessions(server.config)

    def enter(self):
        # The synced tree says which sessions live: a session marked closing
        # in an earlier term whose closeSession was never committed lives
        # on, and every one gets a full timeout so none dies of the election
        # (a leader's sessions are kept alive by their peers' touches from
        # now on).
        self.server.track_sessions_of_tree()

    def answer_sync_after(self, zxid, request):
        """Answer a sync once this server has applied up to zxid."""
        if self.server.tree.last_zxid >= zxid:
            self.server.answer_sync(request)
        else:
            self.pending_syncs.append((zxid, request))

    def applied(self, txn):
        if self.pending_syncs:
            zxid = txn.zxid
            done = [p for p in self.pending_syncs if p[0] <= zxid]
            if done:
                self.pending_syncs = [p for p in self.pending_syncs if p[0] > zxid]
                for _, request in done:
                    self.server.answer_sync(request)

    def monitor_values(self) -> list:
        return [("peer_state", self.peer_state),
                ("quorum_size", len(self.server.config.participants))]

    def dump_sessions(self, lines, dump_tracker, dump_global):
        # A LearnerSessionTracker tracks no expiry of global sessions: their
        # timeouts, after its local sessions' buckets.
        if self.local_sessions:
            lines.append("Local Session ")
            dump_tracker(lines, self.server.sessions.local)
        dump_global(lines)
