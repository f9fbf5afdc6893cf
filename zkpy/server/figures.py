"""The figures behind the reports: one place where each number is computed,
for the four-letter words (fourletter.py prints them as text), the
AdminServer's commands (commands.py, as JSON) and the Prometheus exporter
(prometheus.py).  ZooKeeper's names: ServerStats, ZooKeeperServerConf,
dumpMonitorValues, the environment of EnvCommand."""

import getpass
import math
import os
import platform
import socket
import sys
import tempfile

from .quotametrics import quota_gauge_sets

_U64 = 0xFFFFFFFFFFFFFFFF
_MB = 1024 * 1024


def outstanding(server) -> int:
    """Requests received and not yet answered (ZooKeeper's requestsInProcess)."""
    return server.in_process


def dir_size(path) -> int:
    """Bytes in the files under path (File.length summed recursively); 0 if absent."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                total += dir_size(e.path)
            else:
                total += e.stat().st_size
        except OSError:
            pass
    return total


def snap_dir(server) -> str:
    return os.path.join(os.path.abspath(str(server.config.data_dir)), "version-2")


def log_dir(server) -> str:
    c = server.config
    return os.path.join(os.path.abspath(str(c.data_log_dir or c.data_dir)), "version-2")


def server_id(server) -> int:
    c = server.config
    return 0 if c.is_standalone or c.my_id is None else c.my_id


def uptime(server) -> int:
    return server.clock.wall_ms() - server.started


def average_latency(latency) -> float:
    """ServerStats' average: Math.round(avg * 10000) / 10000.0."""
    return math.floor(latency.avg * 10000 + 0.5) / 10000


# --- ZooKeeperServerConf ---------------------------------------------------------------

def server_conf(server) -> dict:
    """ZooKeeperServerConf's figures (conf prints them as camelCase lines, the
    configuration command as snake_case keys)."""
    c = server.config
    return {
        "client_port": c.client_port if c.client_port is not None else -1,
        "data_dir": snap_dir(server),
        "data_log_dir": log_dir(server),
        "tick_time": c.tick_time,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout,
        "max_session_timeout": c.max_session_timeout,
        "server_id": server_id(server),
        "client_port_listen_backlog": c.client_port_listen_backlog,
    }


# --- ServerStats -------------------------------------------------------------------------

def client_response_stats(stats) -> dict:
    """BufferStats of the replies' sizes."""
    return {"last_buffer_size": stats.last_response_size,
            "min_buffer_size": stats.min_response_size,
            "max_buffer_size": stats.max_response_size}


def server_stats(server) -> dict:
    """ServerStats as the server_stats command prints it."""
    stats = server.stats
    lat = stats.latency
    data_size = dir_size(snap_dir(server))
    return {
        "packets_sent": stats.packets_sent,
        "packets_received": stats.packets_received,
        "fsync_threshold_exceed_count": stats.fsync_threshold_exceeded,
        "client_response_stats": client_response_stats(stats),
        "data_dir_size": data_size,
        "log_dir_size": dir_size(log_dir(server)),
        "provider_null": False,
        "server_state": server.mode,
        "last_processed_zxid": server.tree.last_zxid,
        "outstanding_requests": outstanding(server),
        "avg_latency": average_latency(lat),
        "max_latency": lat.max,
        "min_latency": lat.min,
        "num_alive_client_connections": len(server.connections),
        "uptime": uptime(server),
        "auth_failed_count": stats.auth_failed,
        "non_mtlsremote_conn_count": server.security.non_mtls_remote,
        "non_mtlslocal_conn_count": server.security.non_mtls_local,
    }


# --- the process -------------------------------------------------------------------------

def fd_counts():
    """(open, max) file descriptors of this process, or None where unknown."""
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = None
    try:
        import resource
        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        max_fds = None
    return open_fds, max_fds


def memory_mb() -> tuple:
    """(free, max, total) in MB, the Python analogue of Runtime's figures:
    total = this process's resident size, max = physical memory (or the
    address-space limit if lower), free = memory available on the host."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    total = free = maximum = None
    try:
        with open("/proc/self/statm") as f:
            total = int(f.read().split()[1]) * page
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/meminfo") as f:
            info = {k: v for k, _, v in (line.partition(":") for line in f)}
        free = int(info["MemAvailable"].split()[0]) * 1024
        maximum = int(info["MemTotal"].split()[0]) * 1024
    except (OSError, ValueError, KeyError, IndexError):
        pass
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and (maximum is None or soft < maximum):
            maximum = soft
    except (ImportError, OSError, ValueError):
        pass
    return tuple(None if v is None else f"{v // _MB}MB" for v in (free, maximum, total))


def environment(full_version: str) -> list:
    """Environment.list(): (key, value) pairs, the Python process described
    under ZooKeeper's java.* keys."""
    def get(fn):
        try:
            v = fn()
        except Exception:
            return "<NA>"
        return "<NA>" if v is None or v == "" else str(v)

    arch = platform.machine()
    arch = {"x86_64": "amd64", "AMD64": "amd64", "i686": "x86", "i386": "x86"}.get(arch, arch)
    free, maximum, total = memory_mb()
    return [
        ("zookeeper.version", full_version),
        ("host.name", get(socket.gethostname)),
        ("java.version", platform.python_version()),
        ("java.vendor", platform.python_implementation()),
        ("java.home", sys.prefix),
        ("java.class.path", os.pathsep.join(p for p in sys.path if p)),
        ("java.library.path", get(lambda: os.environ.get("LD_LIBRARY_PATH"))),
        ("java.io.tmpdir", get(tempfile.gettempdir)),
        ("java.compiler", "<NA>"),
        ("os.name", get(platform.system)),
        ("os.arch", arch or "<NA>"),
        ("os.version", get(platform.release)),
        ("user.name", get(getpass.getuser)),
        ("user.home", get(lambda: os.path.expanduser("~"))),
        ("user.dir", get(os.getcwd)),
        ("os.memory.free", free or "<NA>"),
        ("os.memory.max", maximum or "<NA>"),
        ("os.memory.total", total or "<NA>"),
    ]


# --- mntr / monitor ----------------------------------------------------------------------

def gauge_values(server, full_version: str) -> list:
    """The always-present (key, value) pairs of mntr, in ZooKeeper 3.8's order
    (dumpMonitorValues and the gauges ZooKeeperServer registers)."""
    stats = server.stats
    lat = stats.latency
    tree = server.tree
    open_fds, max_fds = fd_counts()
    global_sessions, local_sessions = server.role.session_counts()
    values = [
        ("version", full_version),
        ("server_state", server.mode),
        ("ephemerals_count", tree.ephemeral_count()),
        ("num_alive_connections", len(server.connections)),
        ("avg_latency", average_latency(lat)),
        ("outstanding_requests", outstanding(server)),
        ("znode_count", tree.node_count()),
        ("global_sessions", global_sessions),
        ("non_mtls_remote_conn_count", server.security.non_mtls_remote),
        ("last_client_response_size", stats.last_response_size),
        ("packets_sent", stats.packets_sent),
        ("packets_received", stats.packets_received),
        ("max_client_response_size", stats.max_response_size),
        ("connection_drop_probability", server.connection_throttle.drop),
        ("watch_count", server.watches.watch_count()),
        ("auth_failed_count", stats.auth_failed),
        ("min_latency", lat.min),
        ("max_file_descriptor_count", max_fds),
        ("approximate_data_size", tree.approximate_data_size()),
        ("open_file_descriptor_count", open_fds),
        ("local_sessions", local_sessions),
        ("uptime", uptime(server)),
        ("max_latency", lat.max),
        ("outstanding_tls_handshake", server.tls_handshakes.outstanding),
        ("min_client_response_size", stats.min_response_size),
        ("non_mtls_local_conn_count", server.security.non_mtls_local),
    ]
    if open_fds is None or max_fds is None:   # ZooKeeper prints these on Unix only
        values = [(k, v) for k, v in values if v is not None]
    # QuorumZooKeeperServer's keys (zk_peer_state, zk_quorum_size), a leader's
    # learner counts; a standalone or read-only server has none.
    values.extend(server.role.monitor_values())
    return values


def monitor_values(server, full_version: str) -> list:
    """Everything mntr and the monitor command print: the gauges, then
    ServerMetrics' counters and summaries (zkpy.server.metrics)."""
    dump = server.metrics.provider_dump
    if dump is None:
        quotas = [(f"{namespace}_{name}", v)
                  for name, values in quota_gauge_sets(server.tree).items()
                  for namespace, v in values.items()]
        return gauge_values(server, full_version) + quotas + server.metrics.mntr_values()
    # The Prometheus provider's dump: every sample, gauges included, by its
    # Prometheus name; only dumpMonitorValues' texts come before it.
    texts = [(k, v) for k, v in server.role.monitor_values() if isinstance(v, str)]
    return [("version", full_version), ("server_state", server.mode)] + texts + dump()
