"""A peer cut off from its quorum that serves read-only clients
(readonlymode.enabled), as ZooKeeper's ReadOnlyZooKeeperServer does: reads
from its own tree as it last knew it, NotReadOnly for every write and sync,
sessions local to this peer (no txn, nobody else knows of them).  It takes
only clients that ask for a read-only session, and refuses to resume a
global session (its client must find a peer with a quorum).  It ends, its
connections closed, as soon as the peer finds a leader again."""

import logging

from ...protocol.errors import Err
from ...protocol.opcodes import Op
from ...session.tracker import SessionTracker
from .. import replies
from .base import Role

log = logging.getLogger("zkpy.server")


class ReadOnlyRole(Role):
    mode = "read-only"
    serving = True
    read_only = True

    def __init__(self, server):
        super().__init__(server)
        self.global_tracker = None

    def enter(self):
        server = self.server
        clock = server.clock
        # The global sessions are put aside; local ones are tracked here.
        self.global_tracker = server.sessions
        server.sessions = SessionTracker(server.server_id, server.config.tick_time,
                                         clock.now_ms(), clock.wall_ms())
        log.info("peer %d: read-only server started at zxid 0x%x", server.server_id,
                 server.tree.last_zxid)

    def exit(self):
        """The peer has a leader again: close every read-only connection (their
        clients go and find a read-write server) and forget the local sessions."""
        server = self.server
        server.sessions = self.global_tracker
        server.close_connections()
        log.info("peer %d: read-only server stopped", server.server_id)

    # --- clients ---------------------------------------------------------------------------

    def admits_client(self, wants_read_only, address) -> bool:
        # An old client without the readOnly byte is not a read-only client.
        if not wants_read_only:
            log.info("Refusing session request for not-read-only client %s", address)
            return False
        return True

    def may_resume(self, sid, address) -> bool:
        if sid in self.server.tree.sessions:
            log.info("Refusing global session reconnection in RO mode %s", address)
            return False
        return True

    def create_session(self, conn, timeout):
        server = self.server
        sid = server.sessions.new_session_id()
        server.sessions.add(sid, timeout, server.clock.now_ms())
        conn.session_created(sid, conn.last_recv, False)

    def resume_session(self, conn, sid, timeout):
        self.server.resume_session_here(conn, sid, timeout)

    # --- requests: ReadOnlyRequestProcessor ---------------------------------------------------

    def submit_write(self, request):
        """Every state-changing request is answered NotReadOnly, whatever its
        body; closeSession closes the local session here."""
        conn = request.conn
        zxid = self.server.tree.last_zxid
        if request.op == Op.CLOSE_SESSION:
            self.server.sessions.remove(conn.session_id)
            request.reply = replies.header_only(request.xid, zxid, 0)
            conn.close_after_flush = True
        else:
            request.reply = replies.header_only(request.xid, zxid, Err.NOT_READ_ONLY)
        request.pending = False
        conn.drain()

    submit_sync = submit_write

    def submit_unknown(self, request) -> bool:
        # A top-level check is refused before anything looks at it.
        if request.op != Op.CHECK:
            return False
        self.submit_write(request)
        return True

    def expire_sessions(self, now_ms):
        # Local sessions expire here, without a txn.
        server = self.server
        for sid in server.sessions.expired(now_ms):
            log.info("Expiring read-only session 0x%x", sid & 0xFFFFFFFFFFFFFFFF)
            server.sessions.remove(sid)
            conn = server.conn_by_session.get(sid)
            if conn is not None:
                conn.close()

    # --- reports -----------------------------------------------------------------------------

    def version_lines(self) -> list:
        return ["READ-ONLY mode; serving only read-only clients"]

    def conf_membership(self) -> bool:
        # ReadOnlyZooKeeperServer.dumpConf stops before the membership.
        return False

    def session_counts(self) -> tuple:
        # Its own sessions are local; its tree's are global.
        return len(self.server.tree.sessions), len(self.server.sessions.sessions)

    def dump_sessions(self, lines, dump_tracker, dump_global):
        lines.append("Local Session ")
        dump_tracker(lines, self.server.sessions)
        dump_global(lines)
