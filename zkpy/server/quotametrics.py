"""ZooKeeper's quota gauges (QuotaMetricsUtils): per top-level namespace,
the quota limits and usage that the /zookeeper/quota subtree holds, read
when a view asks (mntr prints <namespace>_<name>, /metrics labels them
with key=<namespace>).

    quota_count_limit_per_namespace   countHardLimit, else count, of each limits node
    quota_bytes_limit_per_namespace   byteHardLimit, else bytes
    quota_count_usage_per_namespace   count of each stats node
    quota_bytes_usage_per_namespace   bytes of each stats node

Values of several quota roots under one namespace are added up."""

from ..datatree.quota import (
    BYTES, BYTES_HARD, COUNT, COUNT_HARD, LIMIT_NODE, QUOTA_ZOOKEEPER, STAT_NODE,
    StatsParseError, parse_stats, trim_quota_path,
)

GAUGE_SETS = ("quota_count_limit_per_namespace", "quota_bytes_limit_per_namespace",
              "quota_count_usage_per_namespace", "quota_bytes_usage_per_namespace")


def quota_gauge_sets(tree) -> dict:
    """{gauge set name: {namespace: value}}, empty sets left out."""
    out = {name: {} for name in GAUGE_SETS}
    nodes = tree.nodes
    stack = [QUOTA_ZOOKEEPER]
    while stack:
        path = stack.pop()
        node = nodes.get(path)
        if node is None:
            continue
        if node.children:
            stack.extend(node.children)
            continue
        leaf = path.rsplit("/", 1)[-1]
        if leaf not in (LIMIT_NODE, STAT_NODE):
            continue
        namespace = _top_namespace(trim_quota_path(path))
        if namespace is None or node.data is None:
            continue
        try:
            stats = parse_stats(node.data)
        except StatsParseError:
            continue
        count, size = stats.get(COUNT, -1), stats.get(BYTES, -1)
        if leaf == LIMIT_NODE:
            hard_count, hard_bytes = stats.get(COUNT_HARD, -1), stats.get(BYTES_HARD, -1)
            _add(out["quota_count_limit_per_namespace"], namespace,
                 hard_count if hard_count > -1 else count)
            _add(out["quota_bytes_limit_per_namespace"], namespace,
                 hard_bytes if hard_bytes > -1 else size)
        else:
            _add(out["quota_count_usage_per_namespace"], namespace, count)
            _add(out["quota_bytes_usage_per_namespace"], namespace, size)
    return {name: values for name, values in out.items() if values}


def _add(values: dict, namespace: str, v: int) -> None:
    values[namespace] = values.get(namespace, 0) + v


def _top_namespace(path: str):
    """PathUtils.getTopNamespace: the first name of a path, None for "/"
    or a path without one."""
    if not path or not path.startswith("/"):
        return None
    parts = path.split("/")
    return parts[1] if len(parts) > 1 and parts[1] else None
