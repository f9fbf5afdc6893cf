"""What every role offers the pipeline.  A server plays one role at a time
(ZooKeeperServer.role); the connection and the server ask it, never a flag,
how to treat a client, a write, a sync or a session.  Roles do no I/O: they
work through the server (prep, log, apply, sessions) and, in an ensemble,
through the peer's port (zkpy.zab.port): application messages to and from
the leader.

The defaults below are those of a server that serves nobody: a peer that
is looking for a leader, or syncing with one (LookingRole)."""

import logging

from ...protocol.errors import Err, KeeperError

log = logging.getLogger("zkpy.server")


class Role:
    mode = "looking"        # srvr's Mode:, mntr's zk_server_state
    serving = False         # takes clients and four-letter words that need a server
    read_only = False       # the readOnly flag of ConnectResponse; isro's "ro"

    def __init__(self, server):
        self.server = server

    # --- life ------------------------------------------------------------------------------

    def enter(self):
        """Become the server's role."""

    def exit(self):
        """Another role takes over."""

    def tick(self, now_ms):
        """Called every few tens of milliseconds by the driver."""

    # --- clients ----------------------------------------------------------------------------

    def admits_client(self, wants_read_only, address) -> bool:
        """May a client that asks (or not) for a read-only session connect?"""
        return True

    def may_resume(self, sid, address) -> bool:
        """May a client resume session sid here at all (before its password
        is checked)?"""
        return True

    def create_session(self, conn, timeout):
        """A new session for conn; answer with conn.handshake_done(sid)."""
        conn.close()

    def resume_session(self, conn, sid, timeout):
        """conn resumes sid (password checked): handshake_done or session_expired."""
        conn.close()

    def touch_session(self, sid, now_ms, timeout=None) -> bool:
        """A client of this server showed signs of life; False if its session is gone."""
        return self.server.sessions.touch(sid, now_ms, timeout)

    # Whether a usual setData or create may take the fast path (fast_path.py): only
    # where the general path would prep, log and apply it here and now.
    takes_fast_path = False

    # Whether refuses_read can ever say yes: dispatch asks it of every read
    # only where it can.
    checks_reads = False

    def refuses_read(self, conn) -> bool:
        """Must conn be closed instead of answered (its session moved away)?"""
        return False

    # --- requests ---------------------------------------------------------------------------

    def submit_write(self, request):
        """A client's write (request.pending): its reply comes through the
        pipeline (ZooKeeperServer.apply -> conn.txn_applied) or is set here."""
        request.conn.close()

    def submit_sync(self, request):
        """A client's sync (request.pending)."""
        request.conn.close()

    def submit_unknown(self, request) -> bool:
        """An opcode without a record of its own; False: Unimplemented."""
        return False

    def prep_reconfig(self, request, check_owner):
        """The txn body of a reconfig request, or KeeperError: only an
        ensemble's leader can reconfigure (a standalone server answers
        Unimplemented, as ZooKeeper's does)."""
        raise KeeperError(Err.UNIMPLEMENTED)

    def applied(self, txn):
        """The server applied txn (after its reply and watch events)."""

    def local_session_elsewhere(self, sid) -> bool:
        """Prep of a write whose session this server does not track: may it
        go on as the local session of another server?  (Only a leader with
        local sessions says yes.)"""
        return False

    def check_global_session(self, sid, op):
        """Prep of an ephemeral create: raise KeeperError unless sid is a
        global session (with local sessions off, every valid one is)."""

    def reply_error(self, request, code) -> int:
        """The error code to answer request with, its txn having failed with
        code (a learner may know better why, as ZooKeeper's request exception)."""
        return code

    # --- the server's own work -------------------------------------------------------------

    def expire_sessions(self, now_ms):
        """Close sessions whose time is up (only where sessions are decided)."""

    def reap_containers(self, now_wall_ms) -> int:
        """Delete empty containers and expired TTL nodes; how many."""
        return 0

    # --- ensemble ---------------------------------------------------------------------------

    def on_app(self, frm, msg):
        """An application message (zkpy.zab.messages) from peer frm."""
        log.debug("%s ignores %r from peer %s", self.mode, msg, frm)

    # --- reports ----------------------------------------------------------------------------

    def version_lines(self) -> list:
        """Lines srvr and stat print after the version."""
        return []

    def srvr_lines(self) -> list:
        """Lines srvr and stat print at the end."""
        return []

    def monitor_values(self) -> list:
        """mntr's (key, value) pairs of this role, after the common ones."""
        return []

    def session_counts(self) -> tuple:
        """mntr's (global_sessions, local_sessions)."""
        return len(self.server.sessions.sessions), 0

    def conf_membership(self) -> bool:
        """Does conf end with the ensemble's membership?"""
        return True

    def dump_sessions(self, lines, dump_tracker, dump_global):
        """dump's SessionTracker part: dump_tracker(lines, tracker) lists a
        tracker's expiry buckets, dump_global(lines) the tree's sessions."""
        dump_global(lines)

