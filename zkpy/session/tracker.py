"""Session ids, passwords, timeouts and expiry buckets (SessionTrackerImpl).

Sans-I/O: every method that depends on time takes `now` in milliseconds from a
monotonic clock.  Expiry is bucketed by tickTime, as in ZooKeeper: a session
expires at the first tick boundary after now + timeout, so a silent session
dies between timeout and timeout + tickTime after its last packet."""

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
    __slots__ = ("id", "timeout", "expire_at", "closing", "owner")

    def __init__(self, sid, timeout):
        self.id = sid
        self.timeout = timeout
        self.expire_at = 0
        self.closing = False
        # Which server the session's client talks through, as an ensemble's
        # leader sees it (None: not known yet; a standalone server never sets it).
        self.owner = None


class SessionTracker:
    def __init__(self, server_id: int, tick_time: int, now_ms: int, wall_ms: int):
        self.tick_time = tick_time
        self.next_id = initial_session_id(server_id, wall_ms)
        self.sessions: dict[int, Session] = {}
        self.buckets: dict[int, set] = {}    # expiry tick -> session ids
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

    def add(self, sid: int, timeout: int, now: int) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = Session(sid, timeout)
        s.timeout = timeout
        self._reschedule(s, now)
        return s

    def _reschedule(self, s: Session, now: int) -> None:
        expire_at = self._round_up(now + s.timeout)
        if expire_at == s.expire_at:
            return
        if s.expire_at:
            b = self.buckets.get(s.expire_at)
            if b is not None:
                b.discard(s.id)
                if not b:
                    del self.buckets[s.expire_at]
        s.expire_at = expire_at
        self.buckets.setdefault(expire_at, set()).add(s.id)

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
        if s is not None and s.expire_at:
            b = self.buckets.get(s.expire_at)
            if b is not None:
                b.discard(sid)
                if not b:
                    del self.buckets[s.expire_at]

    def expired(self, now: int) -> list:
        """Sessions whose bucket has passed; they are marked closing."""
        out = []
        for at in sorted(t for t in self.buckets if t <= now):
            for sid in self.buckets.pop(at):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    s.expire_at = 0
                    out.append(sid)
        return out
