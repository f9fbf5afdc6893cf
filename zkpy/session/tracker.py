"""Session ids, passwords, timeouts and expiry buckets (SessionTrackerImpl).

Sans-I/O: every method that depends on time takes `now` in milliseconds from a
monotonic clock.  Expiry is bucketed by tickTime, as in ZooKeeper: a session
expires at the first tick boundary after now + timeout, so a silent session
dies between timeout and timeout + tickTime after its last packet.

An ensemble member with localSessionsEnabled also tracks local sessions
(ZooKeeper's LocalSessionTracker beside the global tracker): sessions of
this server alone, made without a txn.  They live in the same table, so
that a request's session check costs the same for both kinds, but expire
from buckets of their own (`local`): a server expires its local sessions
itself, while only the leader expires global ones.  A local session is
upgraded to a global one (its createSession txn on its way) when it needs
to own an ephemeral."""

CONTAINER_MARKER = 0x8000000000000000


def initial_session_id(server_id: int, now_ms: int) -> int:
    """(serverId << 56) | ((now << 24) >>> 8), as a signed 64-bit value."""
    v = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
    v |= (server_id & 0xFF) << 56
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def session_password(session_id: int) -> bytes:
    """The 16 bytes java.util.Random(sessionId ^ 0xB3415C00).nextBytes gives."""
    seed = ((session_id ^ 0xB3415C00) ^ 0x5DEECE66D) & ((1 << 48) - 1)
    out = bytearray()
    while len(out) < 16:
        seed = (seed * 0x5DEECE66D + 0xB) & ((1 << 48) - 1)
        r = seed >> 16
        for _ in range(4):
            if len(out) == 16:
                break
            out.append(r & 0xFF)
            r >>= 8
    return bytes(out)


class Session:
    __slots__ = ("id", "timeout", "expire_at", "closing", "owner", "local")

    def __init__(self, sid, timeout, local=False):
        self.id = sid
        self.timeout = timeout
        self.expire_at = 0
        self.closing = False
        # Which server the session's client talks through, as an ensemble's
        # leader sees it (None: not known yet; a standalone server never sets it).
        self.owner = None
        self.local = local     # a local session of this server (no txn made it)


class ExpiryBuckets:
    """The expiry buckets of one kind of session (ZooKeeper's ExpiryQueue):
    expiry tick -> session ids."""
    __slots__ = ("buckets",)

    def __init__(self):
        self.buckets: dict[int, set] = {}


class SessionTracker:
    def __init__(self, server_id: int, tick_time: int, now_ms: int, wall_ms: int):
        self.tick_time = tick_time
        self.next_id = initial_session_id(server_id, wall_ms)
        self.sessions: dict[int, Session] = {}
        self.buckets: dict[int, set] = {}    # expiry tick -> global session ids
        self.local = ExpiryBuckets()         # the local sessions' buckets
        self.next_expiration = self._round_up(now_ms)

    def _round_up(self, t: int) -> int:
        tick = self.tick_time
        return (t // tick + 1) * tick

    def new_session_id(self) -> int:
        sid = self.next_id
        self.next_id += 1
        if self.next_id == CONTAINER_MARKER - (1 << 64):
            self.next_id += 1
        return sid

    def add(self, sid: int, timeout: int, now: int, local: bool = False) -> Session:
        """Track sid (a global session unless `local`).  A session committed
        by its createSession txn is global from then on, whatever it was."""
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = Session(sid, timeout, local)
        elif s.local != local:
            self._unschedule(s)
            s.local = local
        s.timeout = timeout
        self._reschedule(s, now)
        return s

    def upgrade(self, sid: int, now: int) -> int | None:
        """A local session becomes global (UpgradeableSessionTracker.upgradeSession):
        its timeout, for the createSession txn the caller makes; None if sid
        is not a local session (already upgraded, or gone)."""
        s = self.sessions.get(sid)
        if s is None or not s.local or s.closing:
            return None
        self._unschedule(s)
        s.local = False
        self._reschedule(s, now)
        return s.timeout

    def is_local(self, sid: int) -> bool:
        s = self.sessions.get(sid)
        return s is not None and s.local

    def local_count(self) -> int:
        """mntr's zk_local_sessions: local sessions not yet removed."""
        return sum(1 for s in self.sessions.values() if s.local)

    def _unschedule(self, s: Session) -> None:
        if s.expire_at:
            buckets = self.local.buckets if s.local else self.buckets
            b = buckets.get(s.expire_at)
            if b is not None:
                b.discard(s.id)
                if not b:
                    del buckets[s.expire_at]
            s.expire_at = 0

    def _reschedule(self, s: Session, now: int) -> None:
        expire_at = self._round_up(now + s.timeout)
        if expire_at == s.expire_at:
            return
        buckets = self.local.buckets if s.local else self.buckets
        if s.expire_at:
            b = buckets.get(s.expire_at)
            if b is not None:
                b.discard(s.id)
                if not b:
                    del buckets[s.expire_at]
        s.expire_at = expire_at
        buckets.setdefault(expire_at, set()).add(s.id)

    def touch(self, sid: int, now: int, timeout: int | None = None) -> bool:
        s = self.sessions.get(sid)
        if s is None or s.closing:
            return False
        if timeout is not None:
            s.timeout = timeout
        self._reschedule(s, now)
        return True

    def is_valid(self, sid: int) -> bool:
        s = self.sessions.get(sid)
        return s is not None and not s.closing

    def set_owner(self, sid: int, owner) -> None:
        """The session's client now talks through `owner` (it connected or
        reconnected there)."""
        s = self.sessions.get(sid)
        if s is not None:
            s.owner = owner

    def check_owner(self, sid: int, owner) -> bool:
        """Whether a request that came through `owner` may use the session
        (SessionTrackerImpl.checkSession): the first owner to use a session
        of unknown owner claims it; any other finds the session moved."""
        s = self.sessions.get(sid)
        if s is None:
            return True          # validity is checked on its own
        if s.owner is None:
            s.owner = owner
            return True
        return s.owner == owner

    def set_closing(self, sid: int) -> None:
        s = self.sessions.get(sid)
        if s is not None:
            s.closing = True

    def remove(self, sid: int) -> None:
        s = self.sessions.pop(sid, None)
        if s is not None:
            self._unschedule(s)

    def clear(self) -> None:
        """Forget every session, local and global."""
        self.sessions.clear()
        self.buckets.clear()
        self.local.buckets.clear()

    def expired(self, now: int) -> list:
        """Global sessions whose bucket has passed; they are marked closing."""
        return self._expired(self.buckets, now)

    def expired_local(self, now: int) -> list:
        """Local sessions whose bucket has passed; they are marked closing."""
        return self._expired(self.local.buckets, now)

    def _expired(self, buckets: dict, now: int) -> list:
        out = []
        for at in sorted(t for t in buckets if t <= now):
            for sid in buckets.pop(at):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    s.expire_at = 0
                    out.append(sid)
        return out
