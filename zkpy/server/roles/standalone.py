"""A standalone server: the whole pipeline is here.  Writes are prepped,
logged (fsynced) and applied in this process; sessions are created, kept
and expired by this server alone."""

from .base import Role


class StandaloneRole(Role):
    mode = "standalone"
    serving = True
    takes_fast_path = True

    def create_session(self, conn, timeout):
        self.server.new_session(conn, timeout)

    def resume_session(self, conn, sid, timeout):
        self.server.resume_session_here(conn, sid, timeout)

    def submit_write(self, request):
        self.server.prep_and_log(request)

    def submit_sync(self, request):
        # Everything is applied here: the sync is answered in its turn, as a read.
        request.pending = False
        request.conn.drain()

    def expire_sessions(self, now_ms):
        self.server.expire_sessions_now(now_ms)

    def reap_containers(self, now_wall_ms) -> int:
        return self.server.reap_containers_now(now_wall_ms)

    def dump_sessions(self, lines, dump_tracker, dump_global):
        # SessionTrackerImpl: every session in its expiry bucket.
        lines.append("Session ")
        dump_tracker(lines, self.server.sessions)
