"""Request counters and latency figures, server-wide and per connection, as the
four-letter words (srvr, stat, cons, mntr) report them."""

from ..protocol.opcodes import WRITE_OPS
from .metrics import ServerMetrics


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
        self.add_many(ms, 1)

    def add_many(self, ms: int, times: int) -> None:
        """The same sample, times times."""
        if self.count == 0 or ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        self.count += times
        self.total += ms * times

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class CombinedLatency:
    """ServerStats' request latency: reads and writes together, read from
    the readlatency and updatelatency summaries (each reply updates one)."""
    __slots__ = ("count", "total", "min", "max")

    def __init__(self, *parts):
        parts = [p for p in parts if p.count]
        self.count = sum(p.count for p in parts)
        self.total = sum(p.total for p in parts)
        self.min = min((p.min for p in parts), default=0)
        self.max = max((p.max for p in parts), default=0)

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class ServerStats:
    __slots__ = ("packets_received", "packets_sent", "auth_failed", "digest_mismatches",
                 "last_response_size", "min_response_size", "max_response_size",
                 "metrics", "read_latency", "update_latency", "response_bytes",
                 "bytes_received", "fsync_threshold_exceeded")

    def __init__(self, metrics: ServerMetrics | None = None):
        # ServerMetrics' figures that the pipeline updates inline live
        # here, next to ServerStats' own; the metrics read them from here.
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.read_latency = self.metrics.summary("readlatency")
        self.update_latency = self.metrics.summary("updatelatency")
        self.metrics.sources["response_bytes"] = lambda: self.response_bytes
        self.metrics.sources["bytes_received_count"] = lambda: self.bytes_received
        self.metrics.sources["digest_mismatches_count"] = lambda: self.digest_mismatches
        self.reset()

    def reset(self):
        self.packets_received = 0
        self.packets_sent = 0
        self.auth_failed = 0
        self.digest_mismatches = 0   # learner trees found to differ from the leader's
        self.last_response_size = -1
        self.min_response_size = -1
        self.max_response_size = -1
        self.response_bytes = 0
        self.bytes_received = 0
        self.fsync_threshold_exceeded = 0
        self.metrics.reset()   # ServerStats.reset resets ServerMetrics too

    @property
    def latency(self) -> CombinedLatency:
        """Request latency, min/avg/max (srvr, mntr's avg_latency ...)."""
        return CombinedLatency(self.read_latency, self.update_latency)

    def replied(self, conn_stats, answered, now: int) -> None:
        """The replies to the requests `answered` (each with its frame in
        .reply), in order, went out on one connection at monotonic ms now.

        Taken a batch at a time, where ZooKeeper takes them one by one:
        every figure ends the same, and a reply costs a few operations in
        this loop instead of three calls that update a dozen fields.  The
        requests of one socket read share their arrival time, so their
        latencies come in runs, and each run is added to the summaries at
        once.  ZooKeeper counts a reply without its length; a txn's latency
        is updatelatency, any other request's readlatency."""
        update = self.update_latency
        read = self.read_latency
        per_conn = conn_stats.latency
        smallest = self.min_response_size
        largest = self.max_response_size
        total = 0
        run_latency = run_write = run = 0
        for req in answered:
            size = len(req.reply) - 4
            total += size
            if size > largest:
                largest = size
            if smallest < 0 or size < smallest:
                smallest = size
            latency = now - req.received
            write = req.op in WRITE_OPS
            if latency == run_latency and write == run_write:
                run += 1
                continue
            if run:
                (update if run_write else read).add_many(run_latency, run)
                per_conn.add_many(run_latency, run)
            run_latency, run_write, run = latency, write, 1
        (update if run_write else read).add_many(run_latency, run)
        per_conn.add_many(run_latency, run)
        self.packets_sent += len(answered)
        self.response_bytes += total
        self.last_response_size = size
        self.max_response_size = largest
        self.min_response_size = smallest
        conn_stats.replied(answered, now)
