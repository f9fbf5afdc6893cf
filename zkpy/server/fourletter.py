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
import math
import os
import struct
import time
import weakref

from . import figures
from .addresses import java_peer
from .figures import dir_size as _dir_size, environment, log_dir as _log_dir, \
    outstanding as _outstanding, server_conf, snap_dir as _snap_dir
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


# --- srvr / stat ------------------------------------------------------------------------

def _version_lines(server) -> list:
    return ["Zookeeper version: " + FULL_VERSION] + server.role.version_lines()


def _stats_lines(server) -> list:
    """ServerStats.toString(), then the node count."""
    stats = server.stats
    lat = stats.latency
    return [
        f"Latency min/avg/max: {lat.min}/{_java_double(figures.average_latency(lat))}/{lat.max}",
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
    conf = server_conf(server)
    lines = [
        f"clientPort={conf['client_port']}",
        f"secureClientPort={c.secure_client_port if c.secure_client_port is not None else -1}",
        f"dataDir={conf['data_dir']}",
        f"dataDirSize={_dir_size(conf['data_dir'])}",
        f"dataLogDir={conf['data_log_dir']}",
        f"dataLogSize={_dir_size(conf['data_log_dir'])}",
        f"tickTime={conf['tick_time']}",
        f"maxClientCnxns={conf['max_client_cnxns']}",
        f"minSessionTimeout={conf['min_session_timeout']}",
        f"maxSessionTimeout={conf['max_session_timeout']}",
        f"clientPortListenBacklog={conf['client_port_listen_backlog']}",
        f"serverId={conf['server_id']}",
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

def _envi(server, extra) -> str:
    entries = environment(FULL_VERSION)
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

def monitor_values(server) -> list:
    """mntr's (key, value) pairs (zkpy.server.figures)."""
    return figures.monitor_values(server, FULL_VERSION)


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


def trace_mask(server) -> int:
    """ZooTrace's text trace mask (gtmk, get_trace_mask)."""
    return _trace_masks.get(server, DEFAULT_TRACE_MASK)


def set_trace_mask(server, mask: int) -> None:
    _trace_masks[server] = mask


def _gtmk(server, extra) -> str:
    return str(trace_mask(server))


def _stmk(server, extra) -> str:
    if len(extra) < 8:
        return ""   # ZooKeeper fails the read and closes without a reply
    mask = _I64.unpack_from(extra)[0]
    set_trace_mask(server, mask)
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
