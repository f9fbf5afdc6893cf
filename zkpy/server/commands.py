"""The AdminServer's commands (ZooKeeper's org.apache.zookeeper.server.admin.Commands):
each under its primary name and aliases, answering a dict of the keys
ZooKeeper 3.8's command answers, plus 3.9's snapshot and restore.

A command that is also a four-letter word names it among its aliases (conf,
cons, mntr, ...); both read the same figures (figures.py, connstats.py,
metrics.py): the word prints them as text, the command as JSON.  How the
command reaches the server (HTTP, authentication, streaming) is admin.py's
business; snapshot and restore are backup.py's.

A command's run(ctx, kwargs) gets an AdminContext: the server as it is now
(an ensemble member's server changes role, never object), its ZAB peer if
it has one, and the zoo.cfg text it was started with."""

import os
from dataclasses import dataclass
from typing import Callable

from ..datatree.digest import to_long
from ..storage.snapshot import list_snapshots
from . import figures, fourletter
from .peerstatus import peer_status

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


@dataclass
class AdminContext:
    server: object              # the ZooKeeperServer
    peer: object = None         # the QuorumPeer of an ensemble member
    config_text: str = ""       # zoo.cfg as written (initial_configuration)


@dataclass
class Command:
    names: tuple                # primary name first, then aliases
    run: Callable               # (ctx, kwargs) -> dict
    server_required: bool = True
    auth: bool = False          # needs an Authorization header (ALL on "/")
    post: bool = False          # a POST command (its body is the input)

    @property
    def primary(self) -> str:
        return self.names[0]


def _response(name: str, values: dict | None = None, error=None) -> dict:
    """CommandResponse.toMap: the command's keys, then command and error."""
    out = dict(values or {})
    out["command"] = name
    out.setdefault("error", error)
    return out


# --- the commands ---------------------------------------------------------------------

def _configuration(ctx, kwargs):
    return figures.server_conf(ctx.server)


def _by_port(server):
    """(plain, secure) connections: those that came in on secureClientPort
    are the secure factory's, as ZooKeeper lists them."""
    port = server.config.secure_client_port
    plain, secure = [], []
    for c in list(server.connections):
        sock = c.transport.get_extra_info("sockname") if port and c.transport else None
        (secure if sock and sock[1] == port else plain).append(c)
    return plain, secure


def _connections(ctx, kwargs):
    plain, secure = _by_port(ctx.server)
    return {"connections": [c.stats.info(c, False) for c in plain],
            "secure_connections": [c.stats.info(c, False) for c in secure]}


def _connection_stat_reset(ctx, kwargs):
    for c in list(ctx.server.connections):
        c.stats.reset()
    return {}


def _dirs(ctx, kwargs):
    s = ctx.server
    return {"datadir_size": figures.dir_size(figures.snap_dir(s)),
            "logdir_size": figures.dir_size(figures.log_dir(s))}


def _dump(ctx, kwargs):
    server = ctx.server
    expiry = {}

    def tracker(lines, sessions):
        # Only the roles that expire sessions here have a tracker to show.
        for at, sids in sorted(sessions.buckets.items()):
            if sids:
                expiry[str(at)] = sorted(_signed(s) for s in sids)
    server.role.dump_sessions([], tracker, lambda lines: None)
    ephemerals = {str(_signed(sid)): sorted(paths)
                  for sid, paths in sorted(server.tree.ephemerals.items())}
    return {"expiry_time_to_session_ids": expiry,
            "session_id_to_ephemeral_paths": ephemerals}


def _environment(ctx, kwargs):
    return dict(figures.environment(fourletter.FULL_VERSION))


def _hash(ctx, kwargs):
    return {"digests": [{"zxid": zxid, "digest": to_long(d), "digest_version": 2}
                        for zxid, d in ctx.server.tree.digest_log.entries]}


def _get_trace_mask(ctx, kwargs):
    return {"tracemask": fourletter.trace_mask(ctx.server)}


def _set_trace_mask(ctx, kwargs):
    if "traceMask" not in kwargs:
        return {"error": "setTraceMask requires long traceMask argument"}
    text = kwargs["traceMask"]
    try:
        mask = _java_long(text)
    except ValueError:
        return {"error": "setTraceMask requires long traceMask argument, got " + text}
    fourletter.set_trace_mask(ctx.server, mask)
    return {"tracemask": mask}


def _initial_configuration(ctx, kwargs):
    return {"initial_configuration": ctx.config_text}


def _is_read_only(ctx, kwargs):
    return {"read_only": ctx.server.role.read_only}


def _last_snapshot(ctx, kwargs):
    snaps = list_snapshots(figures.snap_dir(ctx.server))
    if not snaps:
        return {"zxid": format(-1 & 0xFFFFFFFFFFFFFFFF, "x"), "timestamp": -1}
    zxid, path = snaps[-1]
    try:
        stamp = int(os.stat(path).st_mtime)
    except OSError:
        stamp = -1
    return {"zxid": format(zxid, "x"), "timestamp": stamp}


def _leader(ctx, kwargs):
    status = peer_status(ctx.peer)
    if status is None:
        return {"error": "server is not initialized"}
    return {"is_leader": status.is_leader, "leader_id": status.leader_id,
            "leader_ip": status.leader_ip}


def _monitor(ctx, kwargs):
    return dict(fourletter.monitor_values(ctx.server))


def _ok(ctx, kwargs):
    return {}


def _observers(ctx, kwargs):
    status = peer_status(ctx.peer)
    count = status.synced_observers if status is not None and status.is_leader else 0
    return {"synced_observers": count, "observers": []}


def _server_stats(ctx, kwargs):
    server = ctx.server
    out = {
        "version": fourletter.FULL_VERSION,
        "read_only": server.role.read_only,
        "server_stats": figures.server_stats(server),
        "client_response": figures.client_response_stats(server.stats),
    }
    status = peer_status(ctx.peer)
    if status is not None and status.is_leader:
        last, lo, hi = status.proposal_sizes     # a leader's BufferStats
        out["proposal_stats"] = {"last_buffer_size": last, "min_buffer_size": lo,
                                 "max_buffer_size": hi}
    out["node_count"] = server.tree.node_count()
    return out


def _stats(ctx, kwargs):
    out = _server_stats(ctx, kwargs)
    plain, secure = _by_port(ctx.server)
    out["connections"] = [c.stats.info(c, True) for c in plain]
    out["secure_connections"] = [c.stats.info(c, True) for c in secure]
    return out


def _stat_reset(ctx, kwargs):
    ctx.server.stats.reset()
    return {}


def _system_properties(ctx, kwargs):
    """System.getProperties(), sorted: the process described under Java's
    names (as envi does), and every zoo.cfg key as the zookeeper.* property
    it stands for."""
    props = {k: v for k, v in figures.environment(fourletter.FULL_VERSION)
             if not k.startswith(("os.memory.", "zookeeper.version", "host.name"))}
    props.update({"zookeeper." + k: v for k, v in ctx.server.config.extra.items()})
    return dict(sorted(props.items()))


def _voting_view(ctx, kwargs):
    if peer_status(ctx.peer) is None:
        return {"current_config": {}}
    c = ctx.server.config
    view = {}
    for sid in sorted(c.participants):
        s = c.servers[sid]
        addresses = s.addresses or ((s.host, s.quorum_port, s.election_port),)
        client = ""
        if s.client_port is not None:
            client = f"{s.client_host or '0.0.0.0'}:{s.client_port}"
        view[str(sid)] = {"server_addresses": [f"{_host(h)}:{q}" for h, q, _ in addresses],
                          "election_addresses": [f"{_host(h)}:{e}" for h, _, e in addresses],
                          "client_address": client,
                          "learner_type": "participant"}
    return {"current_config": view}


def _watches(ctx, kwargs):
    by_session = {}
    for conn, paths in ctx.server.watches.data_paths_by_watcher().items():
        by_session[str(_signed(getattr(conn, "session_id", 0)))] = list(paths)
    return {"session_id_to_watched_paths": by_session}


def _watches_by_path(ctx, kwargs):
    return {"path_to_session_ids": {
        path: [_signed(getattr(c, "session_id", 0)) for c in by_conn]
        for path, by_conn in list(ctx.server.watches.data.items())}}


def _watch_summary(ctx, kwargs):
    data = ctx.server.watches.data
    watchers = set()
    total = 0
    for by_conn in data.values():
        watchers.update(by_conn)
        total += len(by_conn)
    return {"num_connections": len(watchers), "num_paths": len(data),
            "num_total_watches": total}


def _zabstate(ctx, kwargs):
    status = peer_status(ctx.peer)
    if status is None or not ctx.server.serving:
        return {"voting": False, "zabstate": ""}
    zxid = ctx.server.tree.last_zxid
    return {
        "myid": status.my_id,
        "is_leader": status.is_leader,
        "quorum_address": status.quorum_address,
        "election_address": status.election_address,
        "client_address": status.client_address,
        "voting": status.voting,
        "last_zxid": f"0x{zxid:x}",
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": status.zab_state,
    }


def _host(host: str) -> str:
    """QuorumServer.delimitedHostString: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _signed(n: int) -> int:
    n &= 0xFFFFFFFFFFFFFFFF
    return n - (1 << 64) if n >= 1 << 63 else n


def _java_long(text: str) -> int:
    """Long.parseLong: an optional sign and decimal digits, in range."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(text)
    n = int(text)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(text)
    return n


COMMANDS = [
    Command(("connection_stat_reset", "crst"), _connection_stat_reset),
    Command(("configuration", "conf", "config"), _configuration),
    Command(("connections", "cons"), _connections),
    Command(("hash",), _hash),
    Command(("dirs",), _dirs),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), _environment, server_required=False),
    Command(("get_trace_mask", "gtmk"), _get_trace_mask, server_required=False),
    Command(("initial_configuration", "icfg"), _initial_configuration),
    Command(("is_read_only", "isro"), _is_read_only),
    Command(("last_snapshot", "lsnp"), _last_snapshot),
    Command(("leader", "lead"), _leader),
    Command(("monitor", "mntr"), _monitor, server_required=False),
    Command(("observer_connection_stat_reset", "orst"), _ok),
    Command(("ruok",), _ok),
    Command(("set_trace_mask", "stmk"), _set_trace_mask, server_required=False),
    Command(("server_stats", "srvr"), _server_stats),
    Command(("stats", "stat"), _stats),
    Command(("stat_reset", "srst"), _stat_reset),
    Command(("observers", "obsr"), _observers),
    Command(("system_properties", "sysp"), _system_properties, server_required=False),
    Command(("voting_view",), _voting_view),
    Command(("watches", "wchc"), _watches),
    Command(("watches_by_path", "wchp"), _watches_by_path),
    Command(("watch_summary", "wchs"), _watch_summary),
    Command(("zabstate",), _zabstate, server_required=False),
    # 3.9's: run by admin.py (authentication, streaming) with backup.py.
    Command(("snapshot", "snap"), None, auth=True),
    Command(("restore", "rest"), None, auth=True, post=True),
]

BY_NAME: dict = {}


def register(command: Command) -> None:
    for name in command.names:
        BY_NAME[name] = command
    if command not in COMMANDS:
        COMMANDS.append(command)


for _c in list(COMMANDS):
    register(_c)


def primary_names() -> list:
    """The names /commands lists, sorted as ZooKeeper lists them."""
    return sorted(c.primary for c in COMMANDS)


def run(name: str, ctx: AdminContext, kwargs: dict) -> tuple:
    """(HTTP status, the response dict) of a GET command; authentication is
    checked by the caller (admin.py) before commands that need it."""
    command = BY_NAME.get(name)
    if command is None:
        return 200, _response(name, error="Unknown command: " + name)
    if command.server_required and not ctx.server.serving:
        return 200, _response(name, error=NOT_SERVING)
    if command.run is None:
        return 405, _response(name, error=f"Command {name} is not a GET command")
    return 200, _response(name, command.run(ctx, kwargs))
