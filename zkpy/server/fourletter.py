"""Four-letter words on the client port: ruok, srvr, stat, mntr and friends.

A fresh connection whose first 4 bytes are one of COMMANDS gets a plain-text
report (no length prefix) and is closed; connection.py does the transport and
calls run().  Every report follows the line shapes of Apache ZooKeeper 3.8
(AbstractFourLetterCommand and its subclasses, ServerStats, ExpiryQueue.dump,
WatchManager.dumpWatches), so that zkServer.sh, kazoo and monitoring agents
parse ours as they parse theirs.  Values are zkpy's own.  The version line
uses the 3.5+ date format ("built on yyyy-MM-dd HH:mm UTC"), which
go-zookeeper's FLWSrvr rejects for real 3.5+ servers as well.

Deliberate differences from Apache ZooKeeper (for docs/compatibility.md):
  * dataDirSize / datadir_size is the size of dataDir/version-2 and
    dataLogSize / logdir_size that of dataLogDir/version-2.  ZooKeeper swaps
    the two sizes (they only differ when dataLogDir is set).
  * envi describes the Python process under ZooKeeper's java.* keys.
  * mntr prints the always-present keys (plus the quorum ones), not the
    hundreds of internal ZooKeeper metric summaries.
  * the stmk/gtmk trace mask is per server object, not per process, and
    changes nothing else (zkpy has no ZooTrace).
"""

import datetime
import getpass
import math
import os
import platform
import socket
import struct
import sys
import tempfile
import time
import weakref

from .addresses import java_peer
from .membership import membership_text
from .zkserver import VERSION

COMMANDS = frozenset(w.encode() for w in (
    "ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "wchs", "wchc",
    "wchp", "mntr", "isro", "srst", "dirs", "gtmk", "stmk", "hash"))

ZK_NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

# ZooTrace's default text trace mask: CLIENT_REQUEST | CLIENT_PING | SERVER_PACKET | ... = 306.
DEFAULT_TRACE_MASK = 0b0100110010
_trace_masks: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

_U64 = 0xFFFFFFFFFFFFFFFF
_I64 = struct.Struct(">q")
_MB = 1024 * 1024


def _build_date() -> str:
    """'yyyy-MM-dd HH:mm' in UTC, as in ZooKeeper's version line: when this copy
    of zkpy was installed (the mtime of the module that names the version)."""
    from . import zkserver
    try:
        ts = os.stat(zkserver.__file__).st_mtime
    except (OSError, TypeError):
        ts = 0
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


# Version.getFullVersion(): "<version>-<revision>, built on <date> UTC".  VERSION
# already carries a "-zkpy" revision; kazoo's server_version() reads the leading
# digits and dots of envi's zookeeper.version= line.
FULL_VERSION = f"{VERSION}, built on {_build_date()} UTC"


def run(server, word: str, extra: bytes) -> str:
    """The whole reply to a four-letter word (the caller writes it and closes)."""
    stats = server.stats
    stats.packets_received += 1          # as ZooKeeper counts the 4lw packet
    if not server.config.four_letter_word_allowed(word):
        text = f"{word} is not executed because it is not in the whitelist.\n"
    else:
        command = _COMMANDS.get(word)
        if command is None:
            return ""
        handler, needs_serving = command
        if needs_serving and not server.serving:
            text = ZK_NOT_SERVING + "\n"
        else:
            text = handler(server, extra)
    if text:
        stats.packets_sent += 1          # the reply is one more packet sent
    return text


# --- formatting helpers --------------------------------------------------------------

def _hex(n: int) -> str:
    """Long.toHexString: two's complement for negatives, no padding."""
    return format(n & _U64, "x")


def _java_double(x: float) -> str:
    """Double.toString: '0.0', '2.5455', '1.0E7'."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        return s if "." in s else s + ".0"
    from decimal import Decimal
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    exponent = len(digits) + exp - 1
    return f"{'-' if sign else ''}{ds[0]}.{ds[1:] or '0'}E{exponent}"


def _avg_latency(latency) -> float:
    """ServerStats' average: Math.round(avg * 10000) / 10000.0."""
    return math.floor(latency.avg * 10000 + 0.5) / 10000


def _java_date(epoch_ms: float) -> str:
    """java.util.Date.toString() in the local zone: 'Wed Nov 25 12:36:32 UTC 2026'."""
    t = time.localtime(epoch_ms / 1000)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[t.tm_wday]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
             "Dec")[t.tm_mon - 1]
    return (f"{day} {month} {t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} "
            f"{time.strftime('%Z', t)} {t.tm_year}")


def _monotonic_ms_to_date(ms: int) -> str:
    """Time.elapsedTimeToDate: a monotonic deadline as a wall-clock date."""
    return _java_date(time.time() * 1000 - time.monotonic() * 1000 + ms)


def _outstanding(server) -> int:
    return server.in_process   # ZooKeeper's requestsInProcess


def _dir_size(path) -> int:
    """Bytes in the files under path (File.length summed recursively); 0 if absent."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                total += _dir_size(e.path)
            else:
                total += e.stat().st_size
        except OSError:
            pass
    return total


def _snap_dir(server) -> str:
    return os.path.join(os.path.abspath(str(server.config.data_dir)), "version-2")


def _log_dir(server) -> str:
    c = server.config
    return os.path.join(os.path.abspath(str(c.data_log_dir or c.data_dir)), "version-2")


def _server_id(server) -> int:
    c = server.config
    return 0 if c.is_standalone or c.my_id is None else c.my_id


# --- srvr / stat ------------------------------------------------------------------------

def _version_lines(server) -> list:
    return ["Zookeeper version: " + FULL_VERSION] + server.role.version_lines()


def _stats_lines(server) -> list:
    """ServerStats.toString(), then the node count."""
    stats = server.stats
    lat = stats.latency
    return [
        f"Latency min/avg/max: {lat.min}/{_java_double(_avg_latency(lat))}/{lat.max}",
        f"Received: {stats.packets_received}",
        f"Sent: {stats.packets_sent}",
        f"Connections: {len(server.connections)}",
        f"Outstanding: {_outstanding(server)}",
        f"Zxid: 0x{_hex(server.tree.last_zxid)}",
        f"Mode: {server.mode}",
        f"Node count: {server.tree.node_count()}",
    ]


def _srvr(server, extra) -> str:
    # A leader adds "Proposal sizes last/min/max: a/b/c" (StatCommand).
    return "\n".join(_version_lines(server) + _stats_lines(server)
                     + server.role.srvr_lines()) + "\n"


def _stat(server, extra) -> str:
    lines = _version_lines(server)
    lines.append("Clients:")
    lines.extend(c.describe(True) for c in list(server.connections))
    lines.append("")
    lines.extend(_stats_lines(server))
    lines.extend(server.role.srvr_lines())
    return "\n".join(lines) + "\n"


# --- conf / cons / crst / srst / dirs ----------------------------------------------

def _conf(server, extra) -> str:
    c = server.config
    lines = [
        f"clientPort={c.client_port if c.client_port is not None else -1}",
        f"secureClientPort={c.secure_client_port if c.secure_client_port is not None else -1}",
        f"dataDir={_snap_dir(server)}",
        f"dataDirSize={_dir_size(_snap_dir(server))}",
        f"dataLogDir={_log_dir(server)}",
        f"dataLogSize={_dir_size(_log_dir(server))}",
        f"tickTime={c.tick_time}",
        f"maxClientCnxns={c.max_client_cnxns}",
        f"minSessionTimeout={c.min_session_timeout}",
        f"maxSessionTimeout={c.max_session_timeout}",
        f"clientPortListenBacklog={c.client_port_listen_backlog}",
        f"serverId={_server_id(server)}",
    ]
    text = "\n".join(lines) + "\n"
    if not c.is_standalone:
        text += _quorum_conf(c, server.role.conf_membership())
    return text


def _quorum_conf(c, membership: bool = True) -> str:
    """QuorumZooKeeperServer.dumpConf: limits, our ports, then the membership
    (QuorumMaj.toString, which ends without a newline).  A read-only peer
    (ReadOnlyZooKeeperServer.dumpConf) stops before the membership."""
    me = c.servers.get(c.my_id)
    lines = [
        f"initLimit={c.init_limit}",
        f"syncLimit={c.sync_limit}",
        f"electionAlg={c.election_alg}",
        f"electionPort={me.election_port if me else -1}",
        f"quorumPort={me.quorum_port if me else -1}",
        f"peerType={1 if c.peer_type == 'observer' else 0}",
    ]
    if not membership:
        return "\n".join(lines) + "\n"
    lines.append("membership: ")
    lines.append(membership_text(c))
    return "\n".join(lines)


def _cons(server, extra) -> str:
    lines = [c.describe(False) for c in list(server.connections)]
    lines.append("")
    return "\n".join(lines) + "\n"


def _crst(server, extra) -> str:
    for c in list(server.connections):
        c.stats.reset()
    return "Connection stats reset.\n"


def _srst(server, extra) -> str:
    server.stats.reset()
    return "Server stats reset.\n"


def _dirs(server, extra) -> str:
    return (f"datadir_size: {_dir_size(_snap_dir(server))}\n"
            f"logdir_size: {_dir_size(_log_dir(server))}\n")


# --- dump ----------------------------------------------------------------------------------

def _expiry_dump(lines, buckets: dict, count: int):
    """ExpiryQueue.dump: 'Sets (B)/(N):', then each bucket in time order."""
    lines[-1] += f"Sets ({len(buckets)})/({count}):"
    for at in sorted(buckets):
        items = buckets[at]
        lines.append(f"{len(items)} expire at {_monotonic_ms_to_date(at)}:")
        lines.extend("\t" + item for item in items)


def _dump(server, extra) -> str:
    lines = ["SessionTracker dump:"]

    def global_sessions(lines):
        # LearnerSessionTracker: the global sessions with their timeouts.
        sessions = server.tree.sessions
        lines.append(f"Global Sessions({len(sessions)}):")
        lines.extend(f"0x{_hex(sid)}\t{sessions[sid]}ms" for sid in sorted(sessions))

    server.role.dump_sessions(lines, _session_buckets, global_sessions)

    lines.append("ephemeral nodes dump:")
    ephemerals = server.tree.ephemerals
    lines.append(f"Sessions with Ephemerals ({len(ephemerals)}):")
    for sid in sorted(ephemerals, key=lambda s: s & _U64):
        lines.append(f"0x{_hex(sid)}:")
        lines.extend("\t" + path for path in sorted(ephemerals[sid]))

    # NIOServerCnxnFactory's connection expiry queue: each connection is due
    # at its last read + its session timeout (sessionless timeout before the
    # handshake), in buckets of the sessionless timeout.
    lines.append("Connections dump:")
    lines.append("Connections ")
    interval = max(1, server.config.sessionless_cnxn_timeout_ms)
    conns = {}
    for conn in list(server.connections):
        due = conn.last_recv + (conn.timeout or interval)
        at = (due // interval + 1) * interval
        conns.setdefault(at, []).append(
            f"ip: {java_peer(conn.peer)} sessionId: 0x{_hex(conn.session_id)}")
    _expiry_dump(lines, conns, sum(len(b) for b in conns.values()))
    return "\n".join(lines) + "\n"


def _session_buckets(lines, tracker):
    buckets = {at: [f"0x{_hex(sid)}" for sid in sorted(sids, key=lambda s: s & _U64)]
               for at, sids in tracker.buckets.items() if sids}
    _expiry_dump(lines, buckets, sum(len(b) for b in buckets.values()))


# --- envi --------------------------------------------------------------------------------

def _memory_mb() -> tuple:
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


def _envi(server, extra) -> str:
    def get(fn):
        try:
            v = fn()
        except Exception:
            return "<NA>"
        return "<NA>" if v is None or v == "" else str(v)

    arch = platform.machine()
    arch = {"x86_64": "amd64", "AMD64": "amd64", "i686": "x86", "i386": "x86"}.get(arch, arch)
    free, maximum, total = _memory_mb()
    entries = [
        ("zookeeper.version", FULL_VERSION),
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
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in entries)


# --- wchs / wchc / wchp --------------------------------------------------------------------
# As in ZooKeeper, these describe the data-watch table only (getData/exists
# watches, and persistent and recursive watches); child watches are left out.

def _wchs(server, extra) -> str:
    data = server.watches.data
    watchers = set()
    total = 0
    for by_conn in data.values():
        watchers.update(by_conn)
        total += len(by_conn)
    return f"{len(watchers)} connections watching {len(data)} paths\nTotal watches:{total}\n"


def _wchc(server, extra) -> str:
    lines = []
    for conn, paths in server.watches.data_paths_by_watcher().items():
        lines.append(f"0x{_hex(getattr(conn, 'session_id', 0))}")
        lines.extend("\t" + p for p in paths)
    lines.append("")
    return "\n".join(lines) + "\n"


def _wchp(server, extra) -> str:
    lines = []
    for path, by_conn in list(server.watches.data.items()):
        lines.append(path)
        lines.extend(f"\t0x{_hex(getattr(c, 'session_id', 0))}" for c in by_conn)
    lines.append("")
    return "\n".join(lines) + "\n"


# --- mntr ------------------------------------------------------------------------------------

def _fd_counts():
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


def monitor_values(server) -> list:
    """mntr's (key, value) pairs, in the order ZooKeeper 3.8 prints its
    always-present ones.  ints print as integers, floats as Java doubles."""
    stats = server.stats
    lat = stats.latency
    tree = server.tree
    open_fds, max_fds = _fd_counts()
    global_sessions, local_sessions = server.role.session_counts()
    values = [
        ("version", FULL_VERSION),
        ("server_state", server.mode),
        ("ephemerals_count", tree.ephemeral_count()),
        ("num_alive_connections", len(server.connections)),
        ("avg_latency", _avg_latency(lat)),
        ("outstanding_requests", _outstanding(server)),
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
        ("uptime", server.clock.wall_ms() - server.started),
        ("max_latency", lat.max),
        ("outstanding_tls_handshake", 0),
        ("min_client_response_size", stats.min_response_size),
        ("non_mtls_local_conn_count", server.security.non_mtls_local),
        # One of ZooKeeper's many counters (ServerMetrics), after the above.
        ("digest_mismatches_count", stats.digest_mismatches),
    ]
    if open_fds is None or max_fds is None:   # ZooKeeper prints these on Unix only
        values = [(k, v) for k, v in values if v is not None]
    # QuorumZooKeeperServer's keys (zk_peer_state, zk_quorum_size), a leader's
    # learner counts; a standalone or read-only server has none.
    values.extend(server.role.monitor_values())
    return values


def _mntr(server, extra) -> str:
    out = []
    for key, value in monitor_values(server):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            text = "null" if value is None else str(value)
        elif isinstance(value, int):
            text = str(value)
        else:
            text = _java_double(value)
        out.append(f"zk_{key}\t{text}\n")
    return "".join(out)


# --- ruok, isro, gtmk, stmk, hash ----------------------------------------------------------

def _ruok(server, extra) -> str:
    return "imok"


def _isro(server, extra) -> str:
    if not server.serving:
        return "null"
    return "ro" if server.role.read_only else "rw"


def _gtmk(server, extra) -> str:
    return str(_trace_masks.get(server, DEFAULT_TRACE_MASK))


def _stmk(server, extra) -> str:
    if len(extra) < 8:
        return ""   # ZooKeeper fails the read and closes without a reply
    mask = _I64.unpack_from(extra)[0]
    _trace_masks[server] = mask
    return str(mask)


def _hash(server, extra) -> str:
    if not server.serving:
        return ZK_NOT_SERVING   # DigestCommand uses print, not println
    return server.tree.digest_log.text()   # "<hex zxid>: <digest>" lines


# word -> (handler, needs a serving server; if not, the reply is ZK_NOT_SERVING)
_COMMANDS = {
    "ruok": (_ruok, False),
    "srvr": (_srvr, True),
    "stat": (_stat, True),
    "conf": (_conf, True),
    "cons": (_cons, True),
    "crst": (_crst, True),
    "dump": (_dump, True),
    "envi": (_envi, False),
    "wchs": (_wchs, True),
    "wchc": (_wchc, True),
    "wchp": (_wchp, True),
    "mntr": (_mntr, True),
    "isro": (_isro, False),
    "srst": (_srst, True),
    "dirs": (_dirs, True),
    "gtmk": (_gtmk, False),
    "stmk": (_stmk, False),
    "hash": (_hash, False),
}
assert COMMANDS == frozenset(w.encode() for w in _COMMANDS)
