"""ZooKeeper 3.8's throttles, without I/O: time comes in as monotonic
milliseconds, randomness from a Random handed in.

    RequestThrottler     request_throttle_max_requests (RequestThrottler):
                         while that many requests are in process, the next
                         ones wait, in one queue for the whole server; one
                         that waited longer than throttled_op_wait_time is
                         answered Throttled (-127) instead of being run, and
                         one whose connection has gone (or, with
                         request_stale_latency_check, that is older than its
                         session timeout) is dropped and its connection closed
                         (request_throttle_drop_stale)
    ConnectionThrottle   connection_throttle_* (BlueThrottle): a token bucket,
                         with an optional random drop that grows while the
                         bucket is empty, that every ConnectRequest must pass
                         or see its connection closed

globalOutstandingLimit needs no object: a connection that sends a request
while more than that many are in process stops being read until its own
requests are answered (ServerCnxn.disableRecv/enableRecv; see dispatch.py).

The counters are ZooKeeper's metrics, under their mntr names (without zk_):
each throttle counts in a mapping of name -> int, the server's ServerMetrics
counters (so that mntr prints them and srst resets them) or its own, and
adds to summaries it is given (anything with add())."""

import collections
import math
import random

from ..protocol.opcodes import Op
from .request import CLOSED
from .stats import LatencyStats

# What RequestThrottler.next() decided about the request at the head.
SUBMIT = "submit"          # on into the pipeline
THROTTLED = "throttled"    # answered Throttled (-127), in its turn, without being run
DROPPED = "dropped"        # stale: dropped, its connection closed

# Request.isThrottlable: these are never answered Throttled.
_NOT_THROTTLABLE = frozenset({Op.PING, Op.CLOSE_SESSION, Op.CREATE_SESSION})


class RequestThrottler:
    """The queue between the client connections and the pipeline.

    The connection asks holds() before it dispatches a request; if so, it
    hands the request over with hold(), and the driver calls next() whenever
    a request leaves the pipeline (and every stall_time ms while the head
    waits), acting on each verdict until next() returns None."""

    COUNTERS = ("request_throttle_wait_count", "throttled_ops", "stale_requests",
                "stale_requests_dropped")

    def __init__(self, max_requests=0, stall_time=100, drop_stale=True, throttled_op_wait_time=0,
                 stale_connection_check=True, stale_latency_check=False, counters=None,
                 queue_time=None):
        self.max_requests = max_requests      # 0: requests never wait
        self.stall_time = stall_time          # ms between checks of a waiting head
        self.drop_stale = drop_stale
        self.throttled_op_wait_time = throttled_op_wait_time   # 0: never Throttled
        self.stale_connection_check = stale_connection_check
        self.stale_latency_check = stale_latency_check
        # (connection, opcode, payload, received ms, held since ms), oldest first
        self.held = collections.deque()
        # Connections one of whose requests was dropped: the rest of their
        # requests are dropped too, so that none runs after a gap.
        self.invalid = set()
        self.timer = None                     # the driver's stall timer, while one is set
        self.pumping = False                  # the driver is acting on verdicts
        self.counters = counters if counters is not None else dict.fromkeys(self.COUNTERS, 0)
        # mntr: zk_*_request_throttle_queue_time_ms
        self.queue_time = queue_time if queue_time is not None else LatencyStats()

    @property
    def enabled(self) -> bool:
        return self.max_requests > 0

    @property
    def request_throttle_wait_count(self) -> int:
        return self.counters["request_throttle_wait_count"]

    @property
    def throttled_ops(self) -> int:
        return self.counters["throttled_ops"]

    @property
    def stale_requests(self) -> int:
        return self.counters["stale_requests"]

    @property
    def stale_requests_dropped(self) -> int:
        return self.counters["stale_requests_dropped"]

    def holds(self, in_process) -> bool:
        """Must a request that arrives now wait?  Yes while others wait (the
        queue is first come, first served) or the pipeline is full."""
        return bool(self.held) or in_process >= self.max_requests

    def hold(self, conn, op, payload, received, now):
        self.held.append((conn, op, payload, received, now))

    def next(self, now, in_process):
        """(verdict, held entry) for the request at the head, which leaves
        the queue; None if the queue is empty or its head must wait longer
        (in_process: requests in the pipeline now)."""
        held = self.held
        while held:
            entry = held[0]
            conn, op, _, received, since = entry
            if conn in self.invalid:
                held.popleft()
                continue
            stale = self._stale(conn, op, received, now)
            if stale and self.drop_stale:
                held.popleft()
                self.invalid.add(conn)
                self.counters["stale_requests_dropped"] += 1
                return DROPPED, entry
            if in_process >= self.max_requests:
                self.counters["request_throttle_wait_count"] += 1
                return None
            held.popleft()
            if stale:
                self.counters["stale_requests"] += 1
            waited = now - since
            self.queue_time.add(waited)
            if 0 < self.throttled_op_wait_time < waited and op not in _NOT_THROTTLABLE:
                self.counters["throttled_ops"] += 1
                return THROTTLED, entry
            return SUBMIT, entry
        self.invalid.clear()   # their requests are all gone
        return None

    def _stale(self, conn, op, received, now) -> bool:
        """Request.isStale: its connection is closed, or (with the latency
        check) it is older than its session timeout.  A closeSession is
        never stale: it must be able to outlive its connection."""
        if op == Op.CLOSE_SESSION:
            return False
        if self.stale_connection_check and conn.state == CLOSED:
            return True
        return self.stale_latency_check and now - received > conn.timeout


class ReadTurns:
    """Connections read again after a pause (globalOutstandingLimit) that
    still hold frames read before it: they dispatch them one frame each in
    turn (connection.py drives it)."""
    __slots__ = ("waiting", "scheduled")

    def __init__(self):
        self.waiting = collections.deque()
        self.scheduled = False


def request_throttler(config, metrics=None) -> RequestThrottler:
    """The RequestThrottler zoo.cfg asks for, counting in metrics (a
    ServerMetrics) if given."""
    return RequestThrottler(config.request_throttle_max_requests,
                            config.request_throttle_stall_time,
                            config.request_throttle_drop_stale,
                            config.throttled_op_wait_time,
                            config.request_stale_connection_check,
                            config.request_stale_latency_check,
                            None if metrics is None else metrics.counters,
                            None if metrics is None else
                            metrics.summary("request_throttle_queue_time_ms"))


class ConnectionThrottle:
    """BlueThrottle: max_tokens tokens, fill_count more every fill_time ms
    (up to max_tokens); a ConnectRequest takes one (or, with weights, as
    many as its kind of session is worth) or is refused.  With freeze_time
    other than -1, a random drop comes first: its probability grows by
    drop_increase at most every freeze_time ms while the bucket is empty,
    and shrinks by drop_decrease while no more than decrease_ratio of the
    bucket is used.  max_tokens 0: every connection passes."""

    COUNTERS = ("connection_rejected", "connection_request_count")

    def __init__(self, max_tokens=0, fill_time=1, fill_count=1, freeze_time=-1,
                 drop_increase=0.02, drop_decrease=0.002, decrease_ratio=0.0,
                 weight_enabled=False, global_weight=3, local_weight=1, renew_weight=2,
                 now=0, rng=None, counters=None, token_deficit=None):
        self.weight_enabled = weight_enabled
        self.global_weight = global_weight
        self.local_weight = local_weight
        self.renew_weight = renew_weight
        # The configured tokens count global sessions: with weights, each
        # stands for a global session's worth.
        scale = global_weight if weight_enabled else 1
        self.max_tokens = max_tokens * scale
        self.fill_time = fill_time
        self.fill_count = fill_count * scale
        self.tokens = self.max_tokens
        self.last_time = now
        self.freeze_time = freeze_time
        self.last_freeze = now
        self.drop_increase = drop_increase
        self.drop_decrease = drop_decrease
        self.decrease_point = decrease_ratio
        self.drop = 0.0          # mntr: zk_connection_drop_probability
        self.rng = rng if rng is not None else random.Random()
        self.counters = counters if counters is not None else dict.fromkeys(self.COUNTERS, 0)
        # mntr: zk_*_connection_token_deficit
        self.token_deficit = token_deficit if token_deficit is not None else LatencyStats()

    @property
    def connection_rejected(self) -> int:
        return self.counters["connection_rejected"]

    @property
    def connection_request_count(self) -> int:
        return self.counters["connection_request_count"]

    @property
    def deficit(self) -> int:
        return self.max_tokens - self.tokens

    def tokens_needed(self, session_id, local_session) -> int:
        """What a ConnectRequest costs: 1, or with weights a new global
        session, a new local session or a resumed (renewed) session's weight."""
        if not self.weight_enabled:
            return 1
        if session_id == 0:
            return self.local_weight if local_session else self.global_weight
        return self.renew_weight

    def admit(self, session_id, local_session, now) -> bool:
        """May this ConnectRequest go on (counted either way)?"""
        if not self.check_limit(self.tokens_needed(session_id, local_session), now):
            self.counters["connection_rejected"] += 1
            return False
        self.token_deficit.add(self.deficit)
        self.counters["connection_request_count"] += 1
        return True

    def check_limit(self, need, now) -> bool:
        if self.max_tokens == 0:
            return True
        diff = now - self.last_time
        if diff > self.fill_time:
            refill = diff * self.fill_count // self.fill_time
            self.tokens = min(self.tokens + refill, self.max_tokens)
            self.last_time = now
        if self.freeze_time != -1 and not self.check_blue(now):
            return False
        if self.tokens < need:
            return False
        self.tokens -= need
        return True

    def check_blue(self, now) -> bool:
        """The random drop (BLUE): adjust its probability at most once per
        freeze_time, then draw."""
        used = self.max_tokens - self.tokens
        threshold = _java_round(self.max_tokens * self.decrease_point)
        if now - self.last_freeze > self.freeze_time:
            if used == self.max_tokens and self.drop < 1:
                self.drop = min(self.drop + self.drop_increase, 1.0)
            elif used <= threshold and self.drop > 0:
                self.drop = max(self.drop - self.drop_decrease, 0.0)
            self.last_freeze = now
        return not self.rng.random() < self.drop


def _java_round(x: float) -> int:
    """Math.round(double): halves round up (towards positive infinity)."""
    return math.floor(x + 0.5)


def connection_throttle(config, now, metrics=None, rng=None) -> ConnectionThrottle:
    """The connection token bucket zoo.cfg asks for, counting in metrics (a
    ServerMetrics) if given."""
    return ConnectionThrottle(
        config.connection_throttle_tokens, config.connection_throttle_fill_time,
        config.connection_throttle_fill_count, config.connection_throttle_freeze_time,
        config.connection_throttle_drop_increase, config.connection_throttle_drop_decrease,
        config.connection_throttle_decrease_ratio, config.connection_throttle_weight_enabled,
        config.connection_throttle_global_session_weight,
        config.connection_throttle_local_session_weight,
        config.connection_throttle_renew_session_weight, now, rng,
        None if metrics is None else metrics.counters,
        None if metrics is None else metrics.summary("connection_token_deficit"))
