"""An ensemble's leader: its own clients' writes and those its learners
forward are prepped here and proposed (the server's log is the ZAB peer);
a txn is applied, and answered, once a quorum has logged it.  Sessions are
decided here: created and closed by txns, kept alive by this server's own
clients and by its learners' touches, expired by this server's tracker.

The leader also knows which server each session's client talks through (its
owner, set when the session is created or resumed there): a request that
comes through another server finds the session moved, and its connection is
closed (ZooKeeperServer.write_reply).

With localSessionsEnabled its own clients' sessions are local, and it lets
through the writes of sessions it does not know that may be other servers'
local sessions (local_sessions.py)."""

import logging

from ...protocol.errors import Err, KeeperError, MarshallingError
from ...protocol.opcodes import Op
from ...protocol.records import FRAME_DECODERS
from ...zab.messages import (
    CreateSession, ForwardRequest, ForwardRequests, Revalidate, Revalidated, SyncRequest, Synced,
    Touch,
)
from .. import eager_acl
from ..membership import Membership
from ..reconfig import CONFIG_NODE, prep_reconfig
from ..request import Request
from .ensemble import EnsembleRole
from .local_sessions import UPGRADING_OPS, needs_global_session

log = logging.getLogger("zkpy.server")


class RemoteOrigin:
    """Stands for a learner's client connection in the leader's prep."""
    __slots__ = ("session_id", "auth_ids")

    def __init__(self, session_id, auth_ids):
        self.session_id = session_id
        self.auth_ids = [tuple(a) for a in auth_ids]


class LeaderRole(EnsembleRole):
    mode = "leader"
    peer_state = "leading - broadcast"

    def __init__(self, server, port):
        super().__init__(server, port)
        self.my_id = port.my_id
        self.since = 0

    def enter(self):
        super().enter()
        server = self.server
        server.next_zxid = self.port.next_zxid()
        self.since = server.clock.now_ms()
        self.port.reset_proposal_sizes()
        # Nothing is prepped in this term yet: forget an earlier term's
        # outstanding changes (their txns may have been truncated away).
        server.prep.reset()

    # --- clients ---------------------------------------------------------------------------

    def create_session(self, conn, timeout):
        if self.local_sessions:
            self.create_local_session(conn, timeout)
            return
        sid = self.server.new_session(conn, timeout)
        self.server.sessions.set_owner(sid, self.my_id)

    def resume_session(self, conn, sid, timeout):
        if self.server.resume_session_here(conn, sid, timeout):
            self.server.sessions.set_owner(sid, self.my_id)   # it is ours now

    checks_reads = True

    def refuses_read(self, conn) -> bool:
        # Writes are checked in prep; every other request here.
        return not self.server.sessions.check_owner(conn.session_id, self.my_id)

    def submit_write(self, request):
        # LeaderRequestProcessor: the eager ACL check, then the session upgrade.
        if self.server.config.enable_eager_acl_check and eager_acl.refused(self.server, request):
            return
        if self.local_sessions and self.server.sessions.is_local(request.conn.session_id):
            if request.op == Op.CLOSE_SESSION:
                self.close_local_session(request)
                return
            if self.upgrading and needs_global_session(request):
                self._upgrade(request.conn.session_id)
        self.server.prep_and_log(request, True, self.my_id)

    def _upgrade(self, sid):
        """One of our local sessions becomes global: its createSession txn
        goes ahead of the request that needs it (LeaderRequestProcessor)."""
        timeout = self.upgrade_session(sid)
        if timeout is not None:
            self.server.sessions.set_owner(sid, self.my_id)
            self.server.submit(sid, 0, Op.CREATE_SESSION,
                               lambda: (Op.CREATE_SESSION, (timeout,), None))

    # --- prep's session checks (LeaderSessionTracker) ---------------------------------------

    def local_session_elsewhere(self, sid) -> bool:
        # checkSession: a session that is neither ours nor global may be
        # another server's local session, unless our id is in its top byte.
        return (self.local_sessions and sid not in self.server.sessions.sessions
                and (sid >> 56) != self.my_id)

    def check_global_session(self, sid, op):
        if not self.local_sessions:
            return
        s = self.server.sessions.sessions.get(sid)
        if s is None or s.local:
            # Our own local session, not upgraded (upgrading is off): the
            # request carries the upgrade's refusal.  Otherwise, as
            # checkGlobalSession, a session the leader does not know as
            # global has expired.
            if s is not None and op in UPGRADING_OPS:
                raise KeeperError(Err.EPHEMERAL_ON_LOCAL_SESSION)
            raise KeeperError(Err.SESSION_EXPIRED)

    def submit_sync(self, request):
        # Answer once everything proposed so far is applied here.
        self.answer_sync_after(self.port.last_proposed, request)

    def prep_reconfig(self, request, check_owner):
        if check_owner is not None:
            check_owner()
        server = self.server
        port = self.port
        current = Membership.parse(port.config_text) if port.config_text \
            else Membership.of_config(server.config)
        text = prep_reconfig(server, request, current, port.reconfig_pending(),
                             port.synced_voters(), server.next_zxid)
        return (CONFIG_NODE, text, -1)

    def expire_sessions(self, now_ms):
        self.server.expire_sessions_now(now_ms)
        if self.local_sessions:
            self.expire_local_sessions(now_ms)

    def reap_containers(self, now_wall_ms) -> int:
        return self.server.reap_containers_now(now_wall_ms)

    # --- learners ----------------------------------------------------------------------------

    def on_app(self, frm, msg):
        server = self.server
        kind = msg.__class__
        if kind is ForwardRequest:
            self._submit_forwarded(frm, msg)
        elif kind is ForwardRequests:
            for request in msg.requests:
                self._submit_forwarded(frm, request)
        elif kind is Touch:
            now = server.clock.now_ms()
            for sid in msg.session_ids:
                server.sessions.touch(sid, now)
        elif kind is CreateSession:
            sid, timeout = msg.session_id, msg.timeout
            server.sessions.add(sid, timeout, server.clock.now_ms())
            server.sessions.set_owner(sid, frm)
            server.submit(sid, 0, Op.CREATE_SESSION,
                          lambda: (Op.CREATE_SESSION, (timeout,), None))
        elif kind is Revalidate:
            # checkIfValidGlobalSession: a local session of ours stays here.
            ok = not (self.local_sessions and server.sessions.is_local(msg.session_id)) and \
                server.sessions.touch(msg.session_id, server.clock.now_ms(), msg.timeout)
            if ok:
                server.sessions.set_owner(msg.session_id, frm)   # the session moves there
            self.port.send_app(frm, Revalidated(msg.token, ok))
        elif kind is SyncRequest:
            self.port.send_app_after_commits(
                frm, Synced(msg.session_id, msg.cxid, self.port.last_proposed))
        else:
            super().on_app(frm, msg)

    def _submit_forwarded(self, frm, msg):
        origin = RemoteOrigin(msg.session_id, msg.auth_ids)
        record, error = None, None
        decoder = FRAME_DECODERS.get(msg.op)
        try:
            if decoder is None or msg.payload is None:
                raise MarshallingError("unknown forwarded request")
            record = decoder(msg.payload, self.server.config.jute_maxbuffer * 2)
        except MarshallingError as e:
            error = e
        request = Request(origin, msg.cxid, msg.op, record, self.server.clock.now_ms(), error)
        self.server.prep_and_log(request, reply=False, owner=frm)

    # --- reports -----------------------------------------------------------------------------

    def srvr_lines(self) -> list:
        last, lo, hi = self.port.proposal_sizes
        return [f"Proposal sizes last/min/max: {last}/{lo}/{hi}"]

    def monitor_values(self) -> list:
        """mntr's leader-only keys (Leader's metrics in ZooKeeper 3.8, plus
        zk_followers as 3.4 printed it)."""
        counts = self.port.learner_counts()
        last, lo, hi = self.port.proposal_sizes
        return super().monitor_values() + [
            ("learners", counts.get("learners", 0)),
            ("followers", counts.get("learners", 0)),
            ("synced_followers", counts.get("synced_followers", 0)),
            ("synced_non_voting_followers", counts.get("synced_non_voting_followers", 0)),
            ("synced_observers", counts.get("synced_observers", 0)),
            ("pending_syncs", self.port.held_app_messages() + len(self.pending_syncs)),
            ("leader_uptime", max(0, self.server.clock.now_ms() - self.since)),
            ("last_proposal_size", last),
            ("max_proposal_size", hi),
            ("min_proposal_size", lo),
        ]

    def dump_sessions(self, lines, dump_tracker, dump_global):
        # SessionTrackerImpl: every session in its expiry bucket; with local
        # sessions, LeaderSessionTracker's local tracker first.
        if self.local_sessions:
            lines.append("Local Session ")
            dump_tracker(lines, self.server.sessions.local)
            lines.append("Global Session ")
        else:
            lines.append("Session ")
        dump_tracker(lines, self.server.sessions)
