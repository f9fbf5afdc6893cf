"""Request counters and latency figures, server-wide and per connection, as the
four-letter words (srvr, stat, cons, mntr) report them."""


class LatencyStats:
    __slots__ = ("count", "total", "min", "max")

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def add(self, ms: int) -> None:
        if self.count == 0 or ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        self.count += 1
        self.total += ms

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class ServerStats:
    __slots__ = ("packets_received", "packets_sent", "latency", "auth_failed", "digest_mismatches",
                 "last_response_size", "min_response_size", "max_response_size")

    def __init__(self):
        self.reset()

    def reset(self):
        self.packets_received = 0
        self.packets_sent = 0
        self.latency = LatencyStats()
        self.auth_failed = 0
        self.digest_mismatches = 0   # learner trees found to differ from the leader's
        self.last_response_size = -1
        self.min_response_size = -1
        self.max_response_size = -1

    def replied(self, latency: int, size: int) -> None:
        """A reply of size bytes went out, latency ms after its request came in."""
        self.latency.add(latency)
        self.packets_sent += 1
        self.last_response_size = size
        if self.max_response_size < size:
            self.max_response_size = size
        if self.min_response_size < 0 or size < self.min_response_size:
            self.min_response_size = size
