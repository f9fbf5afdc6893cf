"""Local sessions (localSessionsEnabled) on an ensemble's leader and
learners, as Apache ZooKeeper 3.8 keeps them (LocalSessionTracker,
UpgradeableSessionTracker, QuorumZooKeeperServer.checkUpgradeSession):

- every session a client opens on a serving member, the leader included, is
  local to that server: no createSession txn (the zxid does not move),
  nobody else knows of it; its id is made as a global session's, with this
  server's id in the top byte;
- its client keeps it alive here and it expires here, without a txn; its
  closeSession makes no txn either, and is answered here in its turn;
- it resumes only on this server: elsewhere the leader does not know it, and
  the client is told its session expired;
- its reads are answered here, its writes go through the leader as anyone's:
  the leader lets a session it does not know through when another server's
  id is in its top byte (it may be that server's local session);
- it cannot own an ephemeral.  A create or create2 of an ephemeral, or a
  multi with one, first upgrades it to a global session of the same id and
  timeout (a createSession txn ahead of the request) when
  localSessionsUpgradingEnabled is on; from then on it is a global session
  like any other: kept alive through the leader, expired by the leader's
  closeSession txn (its ephemerals deleted), free to move to another
  server.  It stays global even if the request that upgraded it fails.
  Without upgrading, the request gets EphemeralOnLocalSession (-120); its
  txn is still an error txn at the leader, which uses up a zxid.

The session tracker holds both kinds (zkpy.session.tracker: Session.local)."""

import logging

from ...protocol.opcodes import CreateMode, Op

log = logging.getLogger("zkpy.server")

_EPHEMERAL = CreateMode.EPHEMERAL_MODES
# The requests whose ephemeral creates upgrade a local session (a top-level
# createContainer or createTTL with an ephemeral mode does not: it fails at
# the leader as a session that is not global).
UPGRADING_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.MULTI})
_CREATES_IN_MULTI = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER})


def needs_global_session(request) -> bool:
    """Does this write create an ephemeral, which a local session cannot own
    (checkUpgradeSession)?  A request that could not be decoded does not:
    the leader answers it MarshallingError."""
    op = request.op
    record = request.record
    if op not in UPGRADING_OPS or record is None:
        return False
    if op == Op.MULTI:
        # A multi rebuilds each create from its flags: any create-like op
        # with an ephemeral mode is an ephemeral create.
        return any(sub in _CREATES_IN_MULTI and getattr(req, "flags", None) in _EPHEMERAL
                   for sub, req in record.ops)
    return record.flags in _EPHEMERAL


class _Upgrade:
    """Stands in a session's queue of awaited txns for the createSession
    txn of its upgrade, which no client request waits for: txns of a
    session are matched to their requests in order, and a client request
    with xid 0 must not take this one's place."""
    op = Op.CREATE_SESSION
    record = None

    @property
    def conn(self):
        return self

    def txn_applied(self, request, txn, result):
        pass


UPGRADE = _Upgrade()


class LocalSessions:
    """The part of an ensemble member's role that deals with local sessions
    (a mixin of EnsembleRole; its host has `server`)."""

    def init_local_sessions(self, config):
        self.local_sessions = config.local_sessions_enabled
        self.upgrading = config.local_sessions_upgrading_enabled

    def create_local_session(self, conn, timeout):
        """A new local session: granted at once, no txn."""
        server = self.server
        sid = server.sessions.new_session_id()
        server.sessions.add(sid, timeout, server.clock.now_ms(), local=True)
        conn.session_created(sid, conn.last_recv, False)

    def close_local_session(self, request):
        """The client closes its local session: answered in its turn, no txn
        (zkpy.server.reads.close_local_session)."""
        request.pending = False
        request.conn.drain()

    def upgrade_session(self, sid):
        """Make local session sid global; returns its timeout for the
        createSession txn the caller has made, or None if it is not local."""
        server = self.server
        timeout = server.sessions.upgrade(sid, server.clock.now_ms())
        if timeout is not None:
            log.info("Upgrading session 0x%x", sid & 0xFFFFFFFFFFFFFFFF)
            server.expect_reply((sid, 0), UPGRADE)
        return timeout

    def expire_local_sessions(self, now_ms):
        """Local sessions die here, without a txn; their connections close."""
        server = self.server
        sessions = server.sessions
        for sid in sessions.expired_local(now_ms):
            s = sessions.sessions.get(sid)
            log.info("Expiring session 0x%x, timeout of %dms exceeded",
                     sid & 0xFFFFFFFFFFFFFFFF, s.timeout if s is not None else 0)
            sessions.remove(sid)
            conn = server.conn_by_session.get(sid)
            if conn is not None:
                conn.close()

    def session_counts(self) -> tuple:
        # zk_global_sessions counts the sessions of the tree (committed),
        # zk_local_sessions this server's local ones.
        local = self.server.sessions.local_count() if self.local_sessions else 0
        return len(self.server.tree.sessions), local
