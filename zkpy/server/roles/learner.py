"""A follower or an observer: reads are answered here, from this server's
tree, once the session's earlier requests are done; writes, syncs and
session changes go to the leader (application messages through the port),
and a write is answered when the leader's commit of its txn is applied
here.

A learner cannot tell from its own tree whether a session lives (it may not
have applied its createSession yet, or the leader may have expired it): it
asks the leader before letting a client resume one, as ZooKeeper's Learner
revalidates.  The sessions of its clients are kept alive at the leader by a
Touch every half tick.

With localSessionsEnabled its clients' sessions are local to it, made,
kept, resumed, closed and expired here; one is upgraded to a global session
(a CreateSession to the leader ahead of the write) when it creates an
ephemeral (local_sessions.py)."""

from ...protocol.errors import Err
from ...protocol.opcodes import Op
from ...zab.messages import (
    CreateSession, ForwardRequest, Revalidate, Revalidated, SyncRequest, Synced, Touch,
)
from .. import eager_acl
from ..request import Request
from .ensemble import EnsembleRole
from .local_sessions import needs_global_session


class FollowerRole(EnsembleRole):
    mode = "follower"
    peer_state = "following - broadcast"

    def __init__(self, server, port):
        super().__init__(server, port)
        self.touched = set()        # sessions seen alive since the last Touch
        self.last_touch = 0
        self.revalidating = {}      # token -> (connection, session id, timeout)
        self.revalidations = 0
        # Writes whose local session could not be upgraded (upgrading is
        # off): their error txn is answered EphemeralOnLocalSession.
        self.refused_upgrades = set()

    # --- clients ---------------------------------------------------------------------------

    def create_session(self, conn, timeout):
        if self.local_sessions:
            self.create_local_session(conn, timeout)
            return
        server = self.server
        sid = server.sessions.new_session_id()
        # Answered when the leader's createSession txn is applied here.
        server.expect_reply((sid, 0), Request(conn, 0, Op.CREATE_SESSION, None,
                                              server.clock.now_ms()))
        self.port.to_leader(CreateSession(sid, timeout))

    def resume_session(self, conn, sid, timeout):
        if self.local_sessions and self.server.sessions.is_local(sid):
            self.server.resume_session_here(conn, sid, timeout)
            return
        self.revalidations += 1
        token = self.revalidations
        self.revalidating[token] = (conn, sid, timeout)
        self.port.to_leader(Revalidate(sid, timeout, token))

    def touch_session(self, sid, now_ms, timeout=None) -> bool:
        ok = self.server.sessions.touch(sid, now_ms, timeout)
        if ok:
            self.touched.add(sid)
        return ok

    def submit_write(self, request):
        # The leader preps it; we answer when its commit arrives.
        conn = request.conn
        sid = conn.session_id
        if self.local_sessions and self.server.sessions.is_local(sid):
            if request.op == Op.CLOSE_SESSION:
                self.close_local_session(request)
                return
            if needs_global_session(request):
                self._upgrade(request)
        # FollowerRequestProcessor: the session upgrade, then the eager ACL check.
        if self.server.config.enable_eager_acl_check and eager_acl.refused(self.server, request):
            self.refused_upgrades.discard(request)
            return
        self.server.expect_reply((sid, request.xid), request)
        self.port.forward(ForwardRequest(sid, request.xid, request.op, request.payload,
                                         list(conn.auth_ids)))

    def _upgrade(self, request):
        """Our local session creates an ephemeral: with upgrading on, it
        becomes global (its CreateSession goes to the leader ahead of the
        request); with it off, the request goes on anyway -- the leader
        fails it, the session being unknown there -- and is answered
        EphemeralOnLocalSession (FollowerRequestProcessor)."""
        sid = request.conn.session_id
        if not self.upgrading:
            if request.op != Op.MULTI:     # a multi answers with the leader's results
                self.refused_upgrades.add(request)
            return
        timeout = self.upgrade_session(sid)
        if timeout is not None:
            self.touched.add(sid)
            self.port.to_leader(CreateSession(sid, timeout))

    def reply_error(self, request, code) -> int:
        if self.refused_upgrades and request in self.refused_upgrades:
            self.refused_upgrades.discard(request)
            return Err.EPHEMERAL_ON_LOCAL_SESSION
        return code

    def expire_sessions(self, now_ms):
        if self.local_sessions:
            self.expire_local_sessions(now_ms)

    def submit_sync(self, request):
        sid = request.conn.session_id
        self.server.expect_reply(("sync", sid, request.xid), request)
        self.port.to_leader(SyncRequest(sid, request.xid))

    # --- the leader's answers ----------------------------------------------------------------

    def on_app(self, frm, msg):
        server = self.server
        kind = msg.__class__
        if kind is Synced:
            request = server.take_waiter(("sync", msg.session_id, msg.cxid))
            if request is not None:
                self.answer_sync_after(msg.zxid, request)
        elif kind is Revalidated:
            waiting = self.revalidating.pop(msg.token, None)
            if waiting is None:
                return
            conn, sid, timeout = waiting
            if msg.valid:
                # Known from now on, even before its createSession is applied here.
                server.sessions.add(sid, timeout, server.clock.now_ms())
                self.touched.add(sid)
                conn.handshake_done(sid)
            else:
                conn.session_expired()
        else:
            super().on_app(frm, msg)

    # --- time --------------------------------------------------------------------------------

    def tick(self, now_ms):
        """Every half tick: tell the leader which sessions are alive here."""
        if now_ms - self.last_touch >= self.server.config.tick_time // 2:
            self.last_touch = now_ms
            if self.touched:
                touched = self.touched
                if self.local_sessions:
                    # Local sessions live here alone; the leader keeps
                    # only global ones alive.
                    is_local = self.server.sessions.is_local
                    touched = [sid for sid in touched if not is_local(sid)]
                if touched:
                    self.port.to_leader(Touch(sorted(touched)))
                self.touched.clear()


class ObserverRole(FollowerRole):
    """Serves as a follower does; its peer does not vote (zkpy.zab.peer)."""
    mode = "observer"
    peer_state = "observing - broadcast"
