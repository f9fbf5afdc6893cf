"""ZooKeeper's ServerMetrics: the counters and summaries that mntr, the
AdminServer's monitor command and the Prometheus exporter print, under
ZooKeeper 3.8's names.

One ServerMetrics per server holds every figure once; the views (mntr, the
admin command, /metrics) read it.  The catalogue below is ZooKeeper 3.8's,
in the order its mntr prints them; a figure zkpy has no counterpart for
(the figures of ZooKeeper's commit processor, response cache, JVM pauses and
the like) stays at zero, so that every key a monitoring agent expects is
there.  docs/operations.md lists which figures zkpy measures.

Cost: the replies of one write to a client update readlatency or
updatelatency once per run of equal latencies (ServerStats.replied): a few
integer operations and one histogram slot.  Quantiles are computed only when
a view asks for them."""

import math
import time

COUNTER, BASIC, ADVANCED, BASIC_SET, ADVANCED_SET, COUNTER_SET = range(6)

# (name, kind) in the order ZooKeeper 3.8's mntr prints them.  BASIC
# summaries print avg/min/max/cnt/sum; ADVANCED ones add p50/p95/p99/p999
# (and have 0.5/0.9/0.99 quantiles in Prometheus, BASIC ones 0.5 only).
CATALOGUE = (
    ("proposal_count", COUNTER),
    ("watch_bytes", COUNTER),
    ("outstanding_changes_removed", COUNTER),
    ("throttled_ops", COUNTER),
    ("stale_requests_dropped", COUNTER),
    ("large_requests_rejected", COUNTER),
    ("insecure_admin_count", COUNTER),
    ("connection_rejected", COUNTER),
    ("cnxn_closed_without_zk_server_running", COUNTER),
    ("sessionless_connections_expired", COUNTER),
    ("looking_count", COUNTER),
    ("dead_watchers_queued", COUNTER),
    ("stale_requests", COUNTER),
    ("connection_drop_count", COUNTER),
    ("learner_proposal_received_count", COUNTER),
    ("digest_mismatches_count", COUNTER),
    ("dead_watchers_cleared", COUNTER),
    ("response_packet_cache_hits", COUNTER),
    ("bytes_received_count", COUNTER),
    ("add_dead_watcher_stall_time", COUNTER),
    ("request_throttle_wait_count", COUNTER),
    ("requests_not_forwarded_to_commit_processor", COUNTER),
    ("response_packet_cache_misses", COUNTER),
    ("ensemble_auth_success", COUNTER),
    ("prep_processor_request_queued", COUNTER),
    ("learner_commit_received_count", COUNTER),
    ("stale_replies", COUNTER),
    ("connection_request_count", COUNTER),
    ("response_bytes", COUNTER),
    ("ensemble_auth_fail", COUNTER),
    ("diff_count", COUNTER),
    ("response_packet_get_children_cache_misses", COUNTER),
    ("connection_revalidate_count", COUNTER),
    ("quit_leading_due_to_disloyal_voter", COUNTER),
    ("snap_count", COUNTER),
    ("unrecoverable_error_count", COUNTER),
    ("unsuccessful_handshake", COUNTER),
    ("commit_count", COUNTER),
    ("stale_sessions_expired", COUNTER),
    ("response_packet_get_children_cache_hits", COUNTER),
    ("sync_processor_request_queued", COUNTER),
    ("outstanding_changes_queued", COUNTER),
    ("request_commit_queued", COUNTER),
    ("ensemble_auth_skip", COUNTER),
    ("skip_learner_request_to_next_processor_count", COUNTER),
    ("tls_handshake_exceeded", COUNTER),
    ("revalidate_count", COUNTER),
    ("socket_closing_time", BASIC),
    ("proposal_process_time", BASIC),
    ("leader_unavailable_time", BASIC),
    ("node_created_watch_count", BASIC),
    ("session_queues_drained", BASIC),
    ("write_commit_proc_req_queued", BASIC),
    ("connection_token_deficit", BASIC),
    ("read_commit_proc_req_queued", BASIC),
    ("node_deleted_watch_count", BASIC),
    ("startup_txns_load_time", BASIC),
    ("sync_processor_queue_size", BASIC),
    ("follower_sync_time", BASIC),
    ("prep_processor_queue_size", BASIC),
    ("fsynctime", BASIC),
    ("inflight_snap_count", BASIC),
    ("reads_issued_from_session_queue", BASIC),
    ("learner_request_processor_queue_size", BASIC),
    ("snapshottime", BASIC),
    ("unavailable_time", BASIC),
    ("startup_txns_loaded", BASIC),
    ("reads_after_write_in_session_queue", BASIC),
    ("requests_in_session_queue", BASIC),
    ("write_commit_proc_issued", BASIC),
    ("prep_process_time", BASIC),
    ("pending_session_queue_size", BASIC),
    ("time_waiting_empty_pool_in_commit_processor_read_ms", BASIC),
    ("commit_process_time", BASIC),
    ("dbinittime", BASIC),
    ("inflight_diff_count", BASIC),
    ("netty_queued_buffer_capacity", BASIC),
    ("election_time", BASIC),
    ("commit_commit_proc_req_queued", BASIC),
    ("sync_processor_batch_size", BASIC),
    ("node_children_watch_count", BASIC),
    ("write_batch_time_in_commit_processor", BASIC),
    ("read_commit_proc_issued", BASIC),
    ("concurrent_request_processing_in_commit_processor", BASIC),
    ("observer_sync_time", BASIC),
    ("node_changed_watch_count", BASIC),
    ("sync_process_time", BASIC),
    ("startup_snap_load_time", BASIC),
    ("prep_processor_queue_time_ms", ADVANCED),
    ("jvm_pause_time_ms", ADVANCED),
    ("close_session_prep_time", ADVANCED),
    ("read_commitproc_time_ms", ADVANCED),
    ("updatelatency", ADVANCED),
    ("local_write_committed_time_ms", ADVANCED),
    ("request_throttle_queue_time_ms", ADVANCED),
    ("readlatency", ADVANCED),
    ("quorum_ack_latency", ADVANCED),
    ("om_commit_process_time_ms", ADVANCED),
    ("read_final_proc_time_ms", ADVANCED),
    ("commit_propagation_latency", ADVANCED),
    ("dead_watchers_cleaner_latency", ADVANCED),
    ("write_final_proc_time_ms", ADVANCED),
    ("proposal_ack_creation_latency", ADVANCED),
    ("proposal_latency", ADVANCED),
    ("om_proposal_process_time_ms", ADVANCED),
    ("sync_processor_queue_and_flush_time_ms", ADVANCED),
    ("propagation_latency", ADVANCED),
    ("server_write_committed_time_ms", ADVANCED),
    ("sync_processor_queue_time_ms", ADVANCED),
    ("sync_processor_queue_flush_time_ms", ADVANCED),
    ("write_commitproc_time_ms", ADVANCED),
    ("read_per_namespace", BASIC_SET),
    ("write_per_namespace", BASIC_SET),
    ("learner_handler_qp_size", BASIC_SET),
    ("learner_handler_qp_time_ms", ADVANCED_SET),
    ("ack_latency", ADVANCED_SET),
    ("quota_exceeded_error_per_namespace", COUNTER_SET),
)

ADMIN_COUNTERS = ("snapshot_rate_limited_count", "snapshot_error_count",
                  "restore_rate_limited_count", "restore_error_count", "restore_count")

# Values below this are counted exactly; larger ones in buckets of 1/16 of
# their power of two (a quantile read from them is within about 3%).
_EXACT = 1024
_SLOTS = _EXACT + 64 * 16

# Prometheus summaries (simpleclient's defaults, as ZooKeeper's exporter
# builds them): quantiles over the last 10 minutes, kept in 5 age buckets.
WINDOW_S = 600.0
_ROTATE_S = WINDOW_S / 5


def _slot(v: int) -> int:
    b = v.bit_length()
    return _EXACT + (b - 11) * 16 + ((v >> (b - 5)) & 15)


def _slot_value(i: int) -> float:
    if i < _EXACT:
        return float(i)
    b, sub = divmod(i - _EXACT, 16)
    shift = b + 11 - 5
    return float(((16 + sub) << shift) + (1 << shift) // 2)


def _java_round4(x: float) -> float:
    """Math.round(x * 10000) / 10000.0, as AvgMinMaxCounter rounds its average."""
    return math.floor(x * 10000 + 0.5) / 10000


class Summary:
    """AvgMinMaxCounter (BASIC) / AvgMinMaxPercentileCounter (ADVANCED):
    count, sum, min, max and a histogram for quantiles."""
    __slots__ = ("count", "total", "min", "max", "hist", "advanced", "window")

    def __init__(self, advanced: bool = False):
        self.advanced = advanced
        self.window = []        # (monotonic s, histogram copy) for Prometheus
        self.reset()

    def reset(self):
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self.hist = [0] * _SLOTS
        self.window = []

    def add(self, v: int) -> None:
        """One sample, a non-negative int."""
        self.add_many(v, 1)

    def add_many(self, v: int, times: int) -> None:
        """The same sample, times times."""
        n = self.count
        if n:
            if v < self.min:
                self.min = v
            elif v > self.max:
                self.max = v
        else:
            self.min = self.max = v
        self.count = n + times
        self.total += v * times
        self.hist[v if v < _EXACT else _slot(v)] += times

    def add_value(self, v) -> None:
        """A sample of any number (ms as a float, say): rounded, and dropped
        if negative (a clock step), as ZooKeeper drops them."""
        v = int(v + 0.5)
        if v >= 0:
            self.add(v)

    @property
    def avg(self) -> float:
        return _java_round4(self.total / self.count) if self.count else 0.0

    def quantiles(self, qs, hist=None) -> list:
        """The values at quantiles qs (ascending), from hist (default: all
        samples since the last reset).  0 when there is no sample."""
        h = hist if hist is not None else self.hist
        total = sum(h)
        if not total:
            return [0.0] * len(qs)
        out = []
        want = iter(qs)
        q = next(want)
        seen = 0
        for i, n in enumerate(h):
            if not n:
                continue
            seen += n
            while q is not None and seen >= q * total:
                v = _slot_value(i)
                out.append(min(max(v, float(self.min)), float(self.max)))
                q = next(want, None)
            if q is None:
                break
        while len(out) < len(qs):
            out.append(float(self.max))
        return out

    def window_quantiles(self, qs, now: float | None = None) -> list:
        """Quantiles of the samples of about the last WINDOW_S seconds, as a
        Prometheus summary reports them."""
        now = time.monotonic() if now is None else now
        if not self.count:
            return [0.0] * len(qs)      # nothing yet: no copies to keep
        window = self.window
        if not window or now - window[-1][0] >= _ROTATE_S:
            window.append((now, list(self.hist)))
        while len(window) > 1 and now - window[1][0] >= WINDOW_S:
            window.pop(0)
        base = window[0][1] if now - window[0][0] >= _ROTATE_S or len(window) > 1 else None
        h = self.hist
        if base is not None:
            h = [a - b for a, b in zip(h, base)]
        return self.quantiles(qs, h)

    def mntr(self, name: str, out: list) -> None:
        """ZooKeeper's keys for this summary: avg_, min_, max_, cnt_, sum_
        (and p50_, p95_, p99_, p999_ for an ADVANCED one)."""
        out.append(("avg_" + name, self.avg))
        out.append(("min_" + name, self.min))
        out.append(("max_" + name, self.max))
        out.append(("cnt_" + name, self.count))
        out.append(("sum_" + name, self.total))
        if self.advanced:
            p50, p95, p99, p999 = self.quantiles((0.5, 0.95, 0.99, 0.999))
            out.append(("p50_" + name, int(p50)))
            out.append(("p95_" + name, int(p95)))
            out.append(("p99_" + name, int(p99)))
            out.append(("p999_" + name, int(p999)))


class SummarySet:
    """A summary per key (AvgMinMaxCounterSet): mntr prints avg_<key>_<name>..."""
    __slots__ = ("advanced", "by_key")

    def __init__(self, advanced: bool = False):
        self.advanced = advanced
        self.by_key = {}

    def add(self, key: str, v) -> None:
        s = self.by_key.get(key)
        if s is None:
            s = self.by_key[key] = Summary(self.advanced)
        s.add_value(v)

    def reset(self):
        for s in self.by_key.values():
            s.reset()

    def mntr(self, name: str, out: list) -> None:
        for key, s in self.by_key.items():
            s.mntr(f"{key}_{name}", out)


class ServerMetrics:
    """Every figure of the catalogue for one server.  Counters are plain
    ints (count()); a figure that the server keeps elsewhere for its own
    purposes is read from there (sources), so it has one home."""

    def __init__(self):
        self.kinds = dict(CATALOGUE)
        self.counters = {}
        self.summaries = {}
        self.sets = {}
        for name, kind in CATALOGUE:
            if kind == COUNTER:
                self.counters[name] = 0
            elif kind in (BASIC, ADVANCED):
                self.summaries[name] = Summary(kind == ADVANCED)
            else:
                self.sets[name] = SummarySet(kind == ADVANCED_SET) if kind != COUNTER_SET \
                    else {}
        # name -> function() giving a counter's value kept elsewhere.
        self.sources = {}
        # ZooKeeper 3.9's counters of the admin snapshot and restore commands
        # (not in 3.8's mntr; exported to Prometheus).
        self.admin_counters = {name: 0 for name in ADMIN_COUNTERS}
        # With the Prometheus provider, mntr prints its samples (its dump).
        self.provider_dump = None

    def summary(self, name: str) -> Summary:
        return self.summaries[name]

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def count_admin(self, name: str) -> None:
        self.admin_counters[name] += 1

    def counter(self, name: str) -> int:
        source = self.sources.get(name)
        return source() if source is not None else self.counters[name]

    def count_in_set(self, name: str, key: str, n: int = 1) -> None:
        s = self.sets[name]
        s[key] = s.get(key, 0) + n

    def reset(self):
        """srst / stat_reset: ServerMetrics.resetAll."""
        for name in self.counters:
            self.counters[name] = 0
        for s in self.summaries.values():
            s.reset()
        for name, s in self.sets.items():
            if isinstance(s, dict):
                s.clear()
            else:
                s.reset()

    def mntr_values(self) -> list:
        """(key, value) pairs after mntr's always-present ones, in ZooKeeper's order."""
        out = []
        for name, kind in CATALOGUE:
            if kind == COUNTER:
                out.append((name, self.counter(name)))
            elif kind in (BASIC, ADVANCED):
                self.summaries[name].mntr(name, out)
            elif kind == COUNTER_SET:
                for key, n in self.sets[name].items():
                    out.append((f"{key}_{name}", n))
            else:
                self.sets[name].mntr(name, out)
        return out
