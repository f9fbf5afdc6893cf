"""The server's one clock.  Everything that measures time in the server asks
its Clock: monotonic milliseconds for timeouts, expiry and latency figures;
wall-clock milliseconds for txn times (a znode's ctime and mtime) and the
first session id.  The simulation gives the server a clock of its own, so a
run is the same every time."""

import time


class Clock:
    """Real time."""
    __slots__ = ()

    @staticmethod
    def now_ms() -> int:
        """Monotonic milliseconds (never goes back; unrelated to the date)."""
        return time.monotonic_ns() // 1_000_000   # (an int throughout: cheaper than a float)

    @staticmethod
    def wall_ms() -> int:
        """Milliseconds since the epoch, as System.currentTimeMillis()."""
        return time.time_ns() // 1_000_000


REAL_CLOCK = Clock()
