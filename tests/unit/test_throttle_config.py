"""zoo.cfg keys of the throttles: their property names and the
administrator's guide names, their defaults, the values refused, the session
weights that ZooKeeper replaces with a warning."""

import pytest

from zkpy.server.config import ConfigError, parse_config
from zkpy.server.throttle import connection_throttle, request_throttler


def cfg(*lines):
    return parse_config("dataDir=/var/zk\n" + "\n".join(lines))


def error(*lines):
    with pytest.raises(ConfigError) as info:
        cfg(*lines)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_are_zookeepers():
    c = cfg()
    assert c.global_outstanding_limit == 1000
    assert (c.request_throttle_max_requests, c.request_throttle_stall_time,
            c.request_throttle_drop_stale, c.throttled_op_wait_time) == (0, 100, True, 0)
    assert (c.request_stale_connection_check, c.request_stale_latency_check) == (True, False)
    assert (c.connection_throttle_tokens, c.connection_throttle_fill_time,
            c.connection_throttle_fill_count, c.connection_throttle_freeze_time) == (0, 1, 1, -1)
    assert (c.connection_throttle_drop_increase, c.connection_throttle_drop_decrease,
            c.connection_throttle_decrease_ratio) == (0.02, 0.002, 0.0)
    assert not c.connection_throttle_weight_enabled
    assert (c.connection_throttle_global_session_weight,
            c.connection_throttle_local_session_weight,
            c.connection_throttle_renew_session_weight) == (3, 1, 2)
    assert not request_throttler(c).enabled
    assert connection_throttle(c, 0).max_tokens == 0


@pytest.mark.parametrize("key, guide_name, field, value, parsed", [
    ("request_throttle_max_requests", "requestThrottleLimit", "request_throttle_max_requests",
     "0x10", 16),
    ("request_throttle_stall_time", "requestThrottleStallTime", "request_throttle_stall_time",
     "250", 250),
    ("request_throttle_drop_stale", "requestThrottleDropStale", "request_throttle_drop_stale",
     "False", False),
    ("request_stale_latency_check", "requestStaleLatencyCheck", "request_stale_latency_check",
     "true", True),
    ("request_stale_connection_check", "requestStaleConnectionCheck",
     "request_stale_connection_check", "false", False),
    ("throttled_op_wait_time", "throttledOpWaitTime", "throttled_op_wait_time", "20", 20),
    ("connection_throttle_tokens", "connectionMaxTokens", "connection_throttle_tokens",
     "100", 100),
    ("connection_throttle_fill_time", "connectionTokenFillTime", "connection_throttle_fill_time",
     "10", 10),
    ("connection_throttle_fill_count", "connectionTokenFillCount",
     "connection_throttle_fill_count", "5", 5),
    ("connection_throttle_freeze_time", "connectionFreezeTime", "connection_throttle_freeze_time",
     "1000", 1000),
    ("connection_throttle_drop_increase", "connectionDropIncrease",
     "connection_throttle_drop_increase", "0.05", 0.05),
    ("connection_throttle_drop_decrease", "connectionDropDecrease",
     "connection_throttle_drop_decrease", "1e-3", 0.001),
    ("connection_throttle_decrease_ratio", "connectionDecreaseRatio",
     "connection_throttle_decrease_ratio", " 0.25d ", 0.25),
])
def test_property_names_guide_names_and_prefix(key, guide_name, field, value, parsed):
    for name in (key, "zookeeper." + key, guide_name):
        c = cfg(f"{name}={value}")
        assert getattr(c, field) == parsed, name
        assert c.unknown_keys == []


def test_weights():
    c = cfg("connection_throttle_weight_enabled=true",
            "connection_throttle_global_session_weight=5",
            "connection_throttle_local_session_weight=2",
            "connection_throttle_renew_session_weight=4")
    t = connection_throttle(c, 0)
    assert (t.max_tokens, t.global_weight, t.local_weight, t.renew_weight) == (0, 5, 2, 4)
    assert c.warnings == []


@pytest.mark.parametrize("lines, fixed", [
    (["connection_throttle_global_session_weight=0"], (3, 1, 2)),
    (["connection_throttle_local_session_weight=-2"], (3, 1, 2)),
    (["connection_throttle_renew_session_weight=0"], (3, 1, 2)),
    (["connection_throttle_local_session_weight=4"], (4, 4, 4)),      # global, renew < local
    (["connection_throttle_global_session_weight=2",
      "connection_throttle_local_session_weight=3"], (3, 3, 3)),
])
def test_bad_weights_are_replaced_with_a_warning(lines, fixed):
    c = cfg(*lines)
    assert (c.connection_throttle_global_session_weight,
            c.connection_throttle_local_session_weight,
            c.connection_throttle_renew_session_weight) == fixed
    assert c.warnings and all("weight" in w for w in c.warnings)


@pytest.mark.parametrize("line, key", [
    ("request_throttle_max_requests=many", "request_throttle_max_requests"),
    ("requestThrottleStallTime=-1", "requestThrottleStallTime"),
    ("request_throttle_drop_stale=yes", "request_throttle_drop_stale"),
    ("zookeeper.throttled_op_wait_time=1.5", "zookeeper.throttled_op_wait_time"),
    ("connection_throttle_tokens=-1", "connection_throttle_tokens"),
    ("connection_throttle_drop_increase=lots", "connection_throttle_drop_increase"),
    ("connection_throttle_drop_increase=NaN", "connection_throttle_drop_increase"),
    ("connection_throttle_decrease_ratio=1_0", "connection_throttle_decrease_ratio"),
    ("connection_throttle_weight_enabled=on", "connection_throttle_weight_enabled"),
    ("globalOutstandingLimit=x", "globalOutstandingLimit"),
])
def test_bad_values_name_their_key(line, key):
    assert key in error(line)


def test_fill_values_are_checked_only_when_the_bucket_is_on():
    assert cfg("connection_throttle_fill_time=0").connection_throttle_fill_time == 0
    assert "connection_throttle_fill_time" in error("connection_throttle_tokens=5",
                                                    "connection_throttle_fill_time=0")
    assert "connectionTokenFillCount" in error("connectionMaxTokens=5",
                                               "connectionTokenFillCount=-1")


def test_a_misspelt_throttle_key_is_reported_as_unknown():
    c = cfg("connection_throttle_token=5", "request_throttle_max_request=5")
    assert c.unknown_keys == ["connection_throttle_token", "request_throttle_max_request"]
