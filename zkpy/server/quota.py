"""Quota limits checked in prep, as ZooKeeper 3.8's ZooKeeperServer.checkQuota
(called by PrepRequestProcessor for create, after NoChildrenForEphemerals, and
for setData, after the ACL check and before the version check; a multi's ops
alike).

Only with enforceQuota=true: then a create or setData under a quota root
whose new count or bytes would go over the root's limit is

  * refused with QuotaExceeded (-125) if the limit is a hard one
    (countHardLimit / byteHardLimit, set by setquota -N / -B), or
  * let through with a warning if it is a soft one (count / bytes, setquota
    -n / -b; a hard limit of that kind, when set, is the one checked).

Without enforceQuota nothing is checked and nothing is logged (as in 3.8:
its soft-limit warning comes from this check only).  The limits and the
usage are read from the applied tree (the zookeeper_limits and
zookeeper_stats nodes of the innermost quota root), not from writes still in
the pipeline; the node's current data (for setData's byte difference) is
prep's view of it."""

import logging
import time

from ..datatree import quota as _quota
from ..protocol.errors import Err, KeeperError, MarshallingError

log = logging.getLogger("zkpy.server.quota")


class RateLogger:
    """ZooKeeper's RateLogger: a new message is logged at once (WARN,
    "Message:<msg> Value:<value>"); the same message again is only counted,
    and logged as "[<n> times] Message: <msg>" once `interval` seconds have
    passed since it was last logged, or when another message comes."""

    def __init__(self, logger, interval: float = 0.1, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.msg = None
        self.value = None
        self.count = 0
        self.timestamp = 0.0

    def flush(self) -> None:
        if self.msg is not None and self.count > 0:
            text = f"[{self.count} times] " if self.count > 1 else ""
            text += "Message: " + self.msg
            if self.value is not None:
                text += " Last value:" + self.value
            self.logger.warning("%s", text)
        self.msg = None
        self.value = None
        self.count = 0

    def log(self, msg: str, value=None) -> None:
        now = self.clock()
        if msg == self.msg:
            self.count += 1
            self.value = value
            if now - self.timestamp >= self.interval:
                self.flush()
                self.msg = msg
                self.timestamp = now
                self.value = value
        else:
            self.flush()
            self.msg = msg
            self.value = value
            self.timestamp = now
            self.logger.warning("Message:%s Value:%s", msg, value)


class QuotaChecker:
    """checkQuota for one server: check(tree, path, last_data, data, create)."""

    def __init__(self, rate_logger=None, exceeded_per_namespace=None):
        self.rate_log = rate_logger or RateLogger(log)
        # Hard-limit refusals by the top name of the path written
        # (quota_exceeded_error_per_namespace, a counter set of ServerMetrics).
        self.exceeded = exceeded_per_namespace if exceeded_per_namespace is not None else {}

    def check(self, tree, path: str, last_data, data, create: bool) -> None:
        """Raise KeeperError(QUOTA_EXCEEDED) where ZooKeeper would; raise
        MarshallingError where ZooKeeper's StatsTrack throws on the text of a
        limits or stats node (its prep turns that exception into one)."""
        prefix = tree.quota.max_prefix(path)
        if prefix is None:
            return
        size = len(data) if data else 0
        # PathUtils.getTopNamespace: "/a/b" -> "a"; "/" has none.
        parts = path.split("/")
        namespace = parts[1] if len(parts) > 1 else None
        if create:
            self._check(tree, prefix, size, 1, namespace)
        else:
            self._check(tree, prefix, size - (len(last_data) if last_data else 0), 0, namespace)

    def _refused(self, namespace) -> None:
        if namespace is not None:
            self.exceeded[namespace] = self.exceeded.get(namespace, 0) + 1

    def _check(self, tree, prefix, bytes_diff, count_diff, namespace) -> None:
        nodes = tree.nodes
        limit_path = _quota.limit_path(prefix)
        node = nodes.get(limit_path)
        if node is None:
            log.error("Missing limit node for quota %s", limit_path)
            return
        limits = _stats(node.data, limit_path)
        count_limit = limits.get(_quota.COUNT, -1)
        count_hard = limits.get(_quota.COUNT_HARD, -1)
        bytes_limit = limits.get(_quota.BYTES, -1)
        bytes_hard = limits.get(_quota.BYTES_HARD, -1)
        check_count = count_diff != 0 and (count_limit > -1 or count_hard > -1)
        check_bytes = bytes_diff != 0 and (bytes_limit > -1 or bytes_hard > -1)
        if not check_count and not check_bytes:
            return
        stat_path = _quota.stat_path(prefix)
        node = nodes.get(stat_path)
        if node is None:
            log.error("Missing node for stat %s", stat_path)
            return
        current = _stats(node.data, stat_path)
        if check_count:
            new = current.get(_quota.COUNT, -1) + count_diff
            hard = count_hard > -1
            limit = count_hard if hard else count_limit
            if new > limit:
                self.rate_log.log(f"Quota exceeded: {prefix} [current count={new}, "
                                  f"{'hard' if hard else 'soft'}CountLimit={limit}]")
                if hard:
                    self._refused(namespace)
                    raise KeeperError(Err.QUOTA_EXCEEDED, prefix)
        if check_bytes:
            new = current.get(_quota.BYTES, -1) + bytes_diff
            hard = bytes_hard > -1
            limit = bytes_hard if hard else bytes_limit
            if new > limit:
                self.rate_log.log(f"Quota exceeded: {prefix} [current bytes={new}, "
                                  f"{'hard' if hard else 'soft'}ByteLimit={limit}]")
                if hard:
                    self._refused(namespace)
                    raise KeeperError(Err.QUOTA_EXCEEDED, prefix)


def _stats(data, path) -> dict:
    try:
        return _quota.parse_stats(data)
    except _quota.StatsParseError as e:
        log.error("Failed to process a request: invalid quota node %s: %s", path, e)
        raise MarshallingError(f"invalid quota node {path}") from None
