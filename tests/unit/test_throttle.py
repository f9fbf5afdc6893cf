"""The throttles' rules (zkpy.server.throttle) on a made-up clock: the
RequestThrottler's queue, stalls, Throttled verdicts and stale drops, and the
connection token bucket with its random drop (BlueThrottle)."""

import random

import pytest

from zkpy.protocol.opcodes import Op
from zkpy.server.request import CLOSED, ESTABLISHED
from zkpy.server.throttle import (
    DROPPED, SUBMIT, THROTTLED, ConnectionThrottle, RequestThrottler,
)


class Conn:
    def __init__(self, timeout=4000):
        self.state = ESTABLISHED
        self.timeout = timeout


def hold(t, conn, op, at, received=None):
    t.hold(conn, op, b"payload", at if received is None else received, at)


def verdicts(t, now, in_process, run=True):
    """Every verdict next() gives now; a SUBMIT or THROTTLED adds one to
    in_process when run (the request is in the pipeline)."""
    out = []
    while True:
        v = t.next(now, in_process)
        if v is None:
            return out
        kind, (conn, op, *_rest) = v
        out.append((kind, op))
        if kind != DROPPED and run:
            in_process += 1


# --- RequestThrottler --------------------------------------------------------------------

def test_disabled_throttler_never_holds():
    t = RequestThrottler(0)
    assert not t.enabled
    t2 = RequestThrottler(5)
    assert t2.enabled
    assert not t2.holds(4)
    assert t2.holds(5)


def test_requests_wait_while_the_pipeline_is_full_then_go_in_order():
    t = RequestThrottler(2)
    a, b = Conn(), Conn()
    assert t.holds(2)
    hold(t, a, Op.CREATE, 0)
    hold(t, b, Op.GET_DATA, 1)
    hold(t, a, Op.SET_DATA, 2)
    assert t.holds(0)   # others wait: first come, first served
    assert t.next(3, 2) is None
    assert t.request_throttle_wait_count == 1
    # One request leaves the pipeline: one goes in.
    assert verdicts(t, 4, 1) == [(SUBMIT, Op.CREATE)]
    assert t.request_throttle_wait_count == 2
    assert verdicts(t, 5, 0) == [(SUBMIT, Op.GET_DATA), (SUBMIT, Op.SET_DATA)]
    assert not t.held and not t.holds(1)
    assert t.queue_time.count == 3 and t.queue_time.max == 4
    assert t.throttled_ops == 0


def test_a_request_that_waited_longer_than_throttled_op_wait_time_is_throttled():
    t = RequestThrottler(1, throttled_op_wait_time=10)
    c = Conn()
    for op in (Op.CREATE, Op.GET_DATA, Op.PING, Op.CLOSE_SESSION, Op.SYNC, Op.MULTI):
        hold(t, c, op, 100)
    kind, (_, op, *_rest) = t.next(110, 0)
    assert (kind, op) == (SUBMIT, Op.CREATE)     # waited 10 ms: not longer
    assert verdicts(t, 111, 0, run=False) == [
        (THROTTLED, Op.GET_DATA), (SUBMIT, Op.PING), (SUBMIT, Op.CLOSE_SESSION),
        (THROTTLED, Op.SYNC), (THROTTLED, Op.MULTI)]
    assert t.throttled_ops == 3


def test_stale_requests_are_dropped_and_the_rest_of_their_connection_with_them():
    t = RequestThrottler(1)
    gone, alive = Conn(), Conn()
    hold(t, gone, Op.CREATE, 0)
    hold(t, alive, Op.CREATE, 1)
    hold(t, gone, Op.GET_DATA, 2)
    hold(t, gone, Op.CLOSE_SESSION, 3)
    gone.state = CLOSED
    # Dropped even while the pipeline is full; the connection is invalid from
    # then on, so its later requests go without a verdict (a closeSession too).
    assert verdicts(t, 5, 1) == [(DROPPED, Op.CREATE)]
    assert verdicts(t, 6, 0) == [(SUBMIT, Op.CREATE)]
    assert t.stale_requests_dropped == 1
    assert not t.held and not t.invalid


def test_a_closed_connections_close_session_is_never_stale():
    t = RequestThrottler(1)
    gone = Conn()
    hold(t, gone, Op.CLOSE_SESSION, 0)
    gone.state = CLOSED
    assert verdicts(t, 1, 0) == [(SUBMIT, Op.CLOSE_SESSION)]


def test_without_drop_stale_a_stale_request_goes_on_and_is_counted():
    t = RequestThrottler(1, drop_stale=False)
    gone = Conn()
    hold(t, gone, Op.CREATE, 0)
    gone.state = CLOSED
    assert verdicts(t, 1, 0) == [(SUBMIT, Op.CREATE)]
    assert t.stale_requests == 1 and t.stale_requests_dropped == 0


def test_stale_connection_check_off_keeps_a_closed_connections_requests():
    t = RequestThrottler(1, stale_connection_check=False)
    gone = Conn()
    hold(t, gone, Op.CREATE, 0)
    gone.state = CLOSED
    assert verdicts(t, 1, 0) == [(SUBMIT, Op.CREATE)]
    assert t.stale_requests == 0


def test_latency_check_makes_requests_older_than_the_session_timeout_stale():
    t = RequestThrottler(1, stale_latency_check=True)
    c = Conn(timeout=1000)
    hold(t, c, Op.GET_DATA, 50, received=0)
    hold(t, c, Op.GET_DATA, 50, received=10)
    assert t.next(1000, 1) is None          # 1000 ms old: not older than the timeout
    assert verdicts(t, 1001, 1) == [(DROPPED, Op.GET_DATA)]
    assert t.stale_requests_dropped == 1 and not t.held


# --- ConnectionThrottle (BlueThrottle) ----------------------------------------------------

def test_no_tokens_means_no_throttling():
    t = ConnectionThrottle(0)
    assert all(t.admit(0, False, now) for now in range(1000))
    assert t.connection_rejected == 0 and t.connection_request_count == 1000
    assert t.drop == 0.0


def test_token_bucket_refills_fill_count_every_fill_time():
    t = ConnectionThrottle(3, fill_time=100, fill_count=2, now=0)
    assert [t.admit(0, False, 0) for _ in range(4)] == [True, True, True, False]
    assert t.connection_rejected == 1 and t.connection_request_count == 3
    assert t.token_deficit.max == 3 and t.token_deficit.min == 1
    assert not t.admit(0, False, 100)        # not more than fill_time yet
    assert t.admit(0, False, 101)            # 101 ms: 2 tokens
    assert t.admit(0, False, 101)
    assert not t.admit(0, False, 101)
    assert t.tokens == 0
    # A long pause refills to the cap, never beyond.
    assert t.check_limit(0, 100_000) and t.tokens == 3


def test_refill_counts_whole_intervals_since_the_last_refill():
    t = ConnectionThrottle(10, fill_time=10, fill_count=1, now=0)
    t.tokens = 0
    t.check_limit(0, 25)       # 25 ms: 2 tokens (25 * 1 // 10); the clock restarts at 25
    assert t.tokens == 2 and t.last_time == 25
    t.check_limit(0, 30)       # 5 ms: not more than fill_time, nothing
    assert t.tokens == 2 and t.last_time == 25


def test_weights_scale_the_bucket_and_price_each_kind_of_session():
    t = ConnectionThrottle(2, weight_enabled=True, global_weight=3, local_weight=1,
                           renew_weight=2, fill_time=10**9)
    assert t.max_tokens == 6
    assert t.tokens_needed(0, False) == 3
    assert t.tokens_needed(0, True) == 1
    assert t.tokens_needed(0x1234, False) == 2
    assert t.admit(0, False, 1)          # 6 -> 3
    assert t.admit(0x1234, False, 1)     # 3 -> 1
    assert not t.admit(0x1234, False, 1)
    assert t.admit(0, True, 1)           # a local session: 1 -> 0
    assert not t.admit(0, True, 1)


def test_blue_drop_probability_grows_while_the_bucket_is_empty_and_decays():
    rng = random.Random(7)
    t = ConnectionThrottle(4, fill_time=10**9, freeze_time=10, drop_increase=0.25,
                           drop_decrease=0.1, decrease_ratio=0.5, rng=rng)
    assert all(t.admit(0, False, now) for now in (1, 2, 3, 4))
    assert t.drop == 0.0
    assert not t.admit(0, False, 5)          # empty, but not 10 ms since the last adjustment
    assert t.drop == 0.0
    t.check_blue(11)
    assert t.drop == 0.25
    t.check_blue(15)                         # within freeze_time: unchanged
    assert t.drop == 0.25
    for now in (30, 45, 60, 75):
        t.check_blue(now)
    assert t.drop == 1.0                     # capped
    assert not any(t.check_blue(76) for _ in range(50))   # everything dropped
    # Decays only while no more than decrease_ratio of the bucket is used
    # (threshold round(4 * 0.5) = 2 tokens used).
    t.tokens = 1
    t.check_blue(90)
    assert t.drop == 1.0
    t.tokens = 2
    t.check_blue(105)
    assert t.drop == pytest.approx(0.9)
    t.check_blue(110)                        # within freeze_time
    assert t.drop == pytest.approx(0.9)


def test_blue_drop_is_random_in_proportion():
    rng = random.Random(1)
    t = ConnectionThrottle(1000, fill_time=10**9, freeze_time=-1, rng=rng)
    t.freeze_time = 0
    t.drop = 0.5
    t.last_freeze = 10**9   # no adjustment
    passed = sum(t.check_blue(0) for _ in range(2000))
    assert 800 < passed < 1200


def test_freeze_time_minus_one_turns_the_random_drop_off():
    t = ConnectionThrottle(1, fill_time=10**9, freeze_time=-1, drop_increase=1.0)
    assert t.admit(0, False, 0)
    for now in range(1, 100, 10):
        assert not t.admit(0, False, now)
    assert t.drop == 0.0
