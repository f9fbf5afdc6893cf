"""zoo.cfg parsing: Java ``Properties`` syntax plus ZooKeeper's key semantics.

The public entry points are :func:`load_config` (read a file) and
:func:`parse_config` (parse text); both return a :class:`ServerConfig` or
raise :class:`ConfigError`, whose ``str()`` is a single line naming the file
and the offending key.

Behaviour follows Apache ZooKeeper 3.8 (``QuorumPeerConfig`` and the system
properties that unrecognised zoo.cfg keys turn into), with these deliberate
differences:

* A key may be written with or without a leading ``zookeeper.`` prefix
  (``snapCount`` and ``zookeeper.snapCount`` are the same key).  ZooKeeper
  copies unknown keys into the system property ``zookeeper.<key>``; we
  normalise both spellings to one name.  If both appear, the later line wins.
* Malformed integers are always an error.  ZooKeeper silently falls back to
  the default for keys read through ``Integer.getInteger``.
* ``clientPort=0`` is kept as 0 (bind an ephemeral port) instead of meaning
  "not set".
* The ``myid`` file's first line is stripped of surrounding whitespace.
* Features zkpy does not implement and that would silently change quorum
  semantics if ignored are rejected: hierarchical quorums (``group.N``,
  ``weight.N``), ``dynamicConfigFile`` and multiple ``|``-separated
  addresses on a ``server.N`` line.

Nothing here touches the network or resolves host names; the only file
reads are the config file itself and ``<dataDir>/myid`` (quorum mode only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

__all__ = [
    "ConfigError",
    "ServerSpec",
    "ServerConfig",
    "parse_properties",
    "iter_properties",
    "normalize_key",
    "parse_server_spec",
    "parse_config",
    "load_config",
]

DEFAULT_SOURCE = "zoo.cfg"
PARTICIPANT = "participant"
OBSERVER = "observer"
ALL_FOUR_LETTER_WORDS = frozenset({"*"})


class ConfigError(Exception):
    """A configuration problem, rendered as ``<source>: <key>: <message>``.

    ``source`` (usually the config file name) and ``key`` (the key as the
    user wrote it) are optional, so the rendered text is always one line.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.source = source

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.key, self.message) if p]
        # Keep the promise of one line even if a value smuggled in a newline.
        return ": ".join(parts).replace("\r", " ").replace("\n", " ")


# ---------------------------------------------------------------------------
# Java Properties syntax (java.util.Properties.load)
# ---------------------------------------------------------------------------

# Properties treats only these three as whitespace; not \v, not Unicode spaces.
_PROP_WS = " \t\f"
# String.trim() strips every char <= U+0020, which is what ZooKeeper applies.
_JAVA_TRIM = "".join(chr(c) for c in range(0x21))
# Java ends lines on \n, \r or \r\n only (str.splitlines would also split on
# \v, \f, U+2028 and friends, which Java keeps as ordinary characters).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java Properties text into a dict; later duplicates win."""
    return dict(iter_properties(text))


def iter_properties(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(key, value)`` pairs in file order, unescaped and trimmed."""
    for line in _logical_lines(text):
        raw_key, raw_value = _split_key_value(line)
        key = _unescape(raw_key, raw_key).strip(_JAVA_TRIM)
        value = _unescape(raw_value, raw_key).strip(_JAVA_TRIM)
        yield key, value


def _logical_lines(text: str) -> Iterator[str]:
    """Join continued lines and drop blank and comment lines.

    As in JDK 9+, '#' or '!' starts a comment only while nothing has been
    collected for the logical line yet: ``a=1\\`` followed by ``#x`` is the
    value "1#x", while a comment ending in a backslash does not continue.
    Leading whitespace of every natural line (continuations included) is
    dropped.
    """
    pending: str | None = None
    for natural in _LINE_BREAK.split(text):
        line = natural.lstrip(_PROP_WS)
        if not pending:
            if not line or line[0] in "#!":
                pending = None
                continue
            pending = ""
        if _continues(line):
            pending += line[:-1]
            continue
        logical, pending = pending + line, None
        if logical:
            yield logical
    # A backslash on the very last line: Java drops it and keeps the line.
    if pending:
        yield pending


def _continues(line: str) -> bool:
    """An odd number of trailing backslashes means the line continues."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    """Split a logical line the way Properties.load does (still escaped).

    The key ends at the first unescaped '=', ':' or whitespace.  After it,
    whitespace and at most one '=' or ':' are skipped, so ``k = v``,
    ``k:v`` and ``k v`` all give ("k", "v"), while ``k==v`` gives "=v".
    """
    n = len(line)
    key_end = n
    value_start = n
    has_separator = False
    escaped = False
    for i, c in enumerate(line):
        if not escaped and c in "=:":
            key_end, value_start, has_separator = i, i + 1, True
            break
        if not escaped and c in _PROP_WS:
            key_end, value_start = i, i + 1
            break
        escaped = c == "\\" and not escaped
    j = value_start
    while j < n:
        c = line[j]
        if c not in _PROP_WS:
            if has_separator or c not in "=:":
                break
            has_separator = True
        j += 1
    return line[:key_end], line[j:]


def _unescape(raw: str, key_for_errors: str) -> str:
    """Apply Properties escapes: \\t \\n \\r \\f \\uXXXX, and \\c -> c."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= n:  # a lone trailing backslash; Java drops it too
            break
        c = raw[i]
        i += 1
        if c == "u":
            digits = raw[i:i + 4]
            if len(digits) < 4 or not set(digits) <= _HEX:
                raise ConfigError(
                    f"malformed \\uXXXX escape in {raw!r}", key=key_for_errors or None
                )
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_SIMPLE_ESCAPES.get(c, c))
    return _join_surrogates("".join(out))


def _join_surrogates(s: str) -> str:
    """Java strings are UTF-16: \\uD83D\\uDE00 is one character, not two."""
    if not any("\ud800" <= c <= "\udfff" for c in s):
        return s
    try:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:  # an unpaired surrogate; keep it as written
        return s


# ---------------------------------------------------------------------------
# Value parsers.  Each takes (key as written, value) and returns a typed value
# or raises ConfigError naming the key.
# ---------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_BITS_RANGE = {32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}


def _java_decode(text: str) -> int | None:
    """Integer.decode: optional sign, then 0x/0X/# hex, 0-prefixed octal, or decimal."""
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|#[0-9a-fA-F]+|0[0-7]+|[0-9]+)", text)
    if m is None:
        return None
    sign, body = m.groups()
    if body[:2] in ("0x", "0X"):
        number = int(body[2:], 16)
    elif body.startswith("#"):
        number = int(body[1:], 16)
    elif len(body) > 1 and body.startswith("0"):
        number = int(body, 8)
    else:
        number = int(body)
    return -number if sign == "-" else number


def _parse_int(key: str, value: str, *, bits: int = 32, decode: bool = False) -> int:
    """Integer.parseInt / Long.parseLong, or Integer.decode when ``decode``.

    ZooKeeper reads its own zoo.cfg keys with parseInt (decimal only) but
    the ones it forwards as system properties with Integer.getInteger, which
    decodes; so ``jute.maxbuffer=0xfffff`` is fine and ``tickTime=0x10`` is not.
    Python's int() is too lenient (underscores, Unicode digits), hence regexes.
    """
    number = _java_decode(value) if decode else (
        int(value) if _DECIMAL.fullmatch(value) else None
    )
    if number is None:
        raise ConfigError(f"expected an integer, got {value!r}", key=key)
    low, high = _BITS_RANGE[bits]
    if not low <= number <= high:
        raise ConfigError(f"{value} is out of range ({low}..{high})", key=key)
    return number


def _int32(key: str, value: str) -> int:
    return _parse_int(key, value)


def _int32_decoded(key: str, value: str) -> int:
    return _parse_int(key, value, decode=True)


def _int64(key: str, value: str) -> int:
    return _parse_int(key, value, bits=64)


def _int64_decoded(key: str, value: str) -> int:
    return _parse_int(key, value, bits=64, decode=True)


def _port(key: str, value: str, *, decode: bool = False) -> int:
    number = _parse_int(key, value, decode=decode)
    if not 0 <= number <= 65535:
        raise ConfigError(f"port {number} is out of range (0..65535)", key=key)
    return number


def _port_decoded(key: str, value: str) -> int:
    return _port(key, value, decode=True)


def _session_timeout(key: str, value: str) -> int | None:
    # ZooKeeper uses -1 as "derive from tickTime", so an explicit -1 is legal.
    number = _parse_int(key, value)
    if number == -1:
        return None
    if number < 0:
        raise ConfigError(f"must be >= 0 (or -1 for the default), got {number}", key=key)
    return number


DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
PROMETHEUS_METRICS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


def _strict_bool(key: str, value: str) -> bool:
    # QuorumPeerConfig's own boolean keys reject anything but true/false.
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ConfigError(f"expected 'true' or 'false', got {value!r}", key=key)
    return lowered == "true"


def _java_bool(key: str, value: str) -> bool:
    # Boolean.parseBoolean: only "true" (any case) is true, anything else false.
    return value.lower() == "true"


def _yes(key: str, value: str) -> bool:
    # zookeeper.skipACL: System.getProperty(...).equals("yes"), case-sensitive.
    return value == "yes"


def _not_no(key: str, value: str) -> bool:
    # zookeeper.forceSync: anything but exactly "no" keeps fsync on.
    return value != "no"


def _not_false(key: str, value: str) -> bool:
    # zookeeper.admin.enableServer (3.8): disabled only by exactly "false".
    return value != "false"


def _text(key: str, value: str) -> str:
    return value


def _path(key: str, value: str) -> Path:
    if not value:
        raise ConfigError("must not be empty", key=key)
    return Path(value)


def _bind_host(key: str, value: str) -> str:
    if not value:
        raise ConfigError("must not be empty", key=key)
    return _strip_brackets(value)


def _election_alg(key: str, value: str) -> int:
    number = _parse_int(key, value)
    if number != 3:
        raise ConfigError(
            f"only 3 (fast leader election) is supported, got {number}", key=key
        )
    return number


def _learner_type(key: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in (PARTICIPANT, OBSERVER):
        raise ConfigError(
            f"expected 'participant' or 'observer', got {value!r}", key=key
        )
    return lowered


def _four_letter_list(key: str, value: str) -> frozenset[str]:
    """Comma-separated, entries trimmed, empties ignored; '*' anywhere means all."""
    entries = {e.strip() for e in value.split(",")} - {""}
    if "*" in entries:
        return ALL_FOUR_LETTER_WORDS
    return frozenset(entries)


# ---------------------------------------------------------------------------
# server.N lines
# ---------------------------------------------------------------------------

_SERVER_SYNTAX = (
    "expected host:quorumPort:electionPort[:participant|observer]"
    "[;[clientHost:]clientPort]"
)
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


@dataclass(frozen=True)
class ServerSpec:
    """One ``server.N`` line."""

    id: int
    host: str
    quorum_port: int
    election_port: int
    role: str = PARTICIPANT
    # None when the line has no ';' client part; "0.0.0.0" when it gives
    # only a port (ZooKeeper's meaning: listen on all interfaces).
    client_host: str | None = None
    client_port: int | None = None
    # Every (host, quorum port, election port) of the line, the first one
    # included: several with multiAddress.enabled (a1:p1:e1|a2:p2:e2).
    addresses: tuple = ()

    @property
    def is_observer(self) -> bool:
        return self.role == OBSERVER

    @property
    def quorum_addresses(self) -> tuple:
        """(host, quorum port) of each address, in the order given."""
        if not self.addresses:
            return ((self.host, self.quorum_port),)
        return tuple((h, q) for h, q, _ in self.addresses)


def _java_split(text: str, sep: str) -> list[str]:
    """String.split: trailing empty strings are dropped."""
    parts = text.split(sep)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _host_and_ports(text: str, key: str) -> list[str]:
    """Split ``host:a:b`` where host may be a bracketed IPv6 literal."""
    if not text.startswith("["):
        return [p.strip() for p in _java_split(text, ":")]
    close = text.find("]")
    if close < 0:
        raise ConfigError(f"{text!r} starts with '[' but has no matching ']'", key=key)
    rest = text[close + 1:]
    if not rest.startswith(":") or len(rest) == 1:
        raise ConfigError(f"{text!r} has no port after the ']:'", key=key)
    return [text[1:close]] + [p.strip() for p in _java_split(rest[1:], ":")]


def parse_server_spec(server_id: int, value: str, key: str | None = None,
                      multi_address: bool = False) -> ServerSpec:
    """Parse the value of ``server.<server_id>``; errors name ``key``.
    multi_address: multiAddress.enabled (several '|'-separated addresses)."""
    key = key or f"server.{server_id}"
    sections = _java_split(value, ";")
    if len(sections) > 2:
        raise ConfigError(f"{_SERVER_SYNTAX}, got {value!r}", key=key)
    chunks = sections[0].split("|")
    if len(chunks) > 1 and not multi_address:
        raise ConfigError(
            "several '|'-separated addresses need multiAddress.enabled=true", key=key)
    addresses = []
    role = None
    for chunk in chunks:
        parts = _host_and_ports(chunk.strip(), key)
        if not 3 <= len(parts) <= 4:
            raise ConfigError(f"{_SERVER_SYNTAX}, got {value!r}", key=key)
        host = parts[0]
        if not host:
            raise ConfigError(f"missing host in {value!r}", key=key)
        quorum_port = _server_port(parts[1], key)
        election_port = _server_port(parts[2], key)
        if quorum_port == election_port:
            raise ConfigError(
                f"quorum port and election port must be different (both {quorum_port})",
                key=key,
            )
        if len(parts) == 4:
            this_role = parts[3].lower()
            if this_role not in (PARTICIPANT, OBSERVER):
                raise ConfigError(
                    f"unknown role {parts[3]!r} (expected participant or observer)", key=key
                )
            if role is not None and this_role != role:
                raise ConfigError(f"the addresses name different roles: {role} and {this_role}",
                                  key=key)
            role = this_role
        addresses.append((host, quorum_port, election_port))
    client_host, client_port = None, None
    if len(sections) == 2:
        client_host, client_port = _client_address(sections[1].strip(), value, key)
    host, quorum_port, election_port = addresses[0]
    return ServerSpec(
        id=server_id,
        host=host,
        quorum_port=quorum_port,
        election_port=election_port,
        role=role or PARTICIPANT,
        client_host=client_host,
        client_port=client_port,
        addresses=tuple(addresses) if len(addresses) > 1 else (),
    )


def _client_address(text: str, whole: str, key: str) -> tuple[str, int]:
    parts = _host_and_ports(text, key)
    if len(parts) > 2 or not parts[-1]:
        raise ConfigError(f"{_SERVER_SYNTAX}, got {whole!r}", key=key)
    host = parts[0] if len(parts) == 2 else "0.0.0.0"
    return host or "0.0.0.0", _server_port(parts[-1], key)


def _server_port(text: str, key: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise ConfigError(f"expected an integer port, got {text!r}", key=key)
    number = int(text)
    if not 1 <= number <= 65535:
        raise ConfigError(f"port {number} is out of range (1..65535)", key=key)
    return number


def _server_id(key: str, normalized: str) -> int:
    suffix = normalized[len("server."):]
    if not re.fullmatch(r"[0-9]+", suffix):
        raise ConfigError("server id after 'server.' must be an integer", key=key)
    return _parse_int(key, suffix, bits=64)


# ---------------------------------------------------------------------------
# The configuration object
# ---------------------------------------------------------------------------


@dataclass
class ServerConfig:
    """Typed zoo.cfg contents with ZooKeeper's defaults.

    Constructing it directly (e.g. in tests) fills the derived defaults:
    ``data_log_dir`` = ``data_dir`` and the session-timeout bounds from
    ``tick_time``.  Validation happens in :func:`parse_config`.
    """

    data_dir: Path
    tick_time: int = 3000
    init_limit: int | None = None
    sync_limit: int | None = None
    data_log_dir: Path | None = None  # None -> data_dir
    client_port: int | None = None
    client_port_address: str | None = None  # None -> all interfaces
    client_port_listen_backlog: int = -1  # the listen(2) backlog; < 1 -> Java's default, 50
    max_client_cnxns: int = 60  # per client IP; 0 = unlimited
    min_session_timeout: int | None = None  # None -> 2 * tick_time
    max_session_timeout: int | None = None  # None -> 20 * tick_time
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 0  # hours; 0 = disabled
    snap_count: int = 100000
    pre_alloc_size_kb: int = 65536
    # frozenset({"*"}) means every command is allowed.
    four_letter_whitelist: frozenset[str] = frozenset({"srvr"})
    admin_enable_server: bool = True
    admin_server_port: int = 8080
    # --- operations (issue 11): the AdminServer and the metrics provider;
    # see the "Operations keys" section below.
    admin_server_address: str = "0.0.0.0"
    admin_command_url: str = "/commands"
    admin_idle_timeout_ms: int = 30000
    admin_force_https: bool = False
    admin_port_unification: bool = False
    admin_http_version: int = 11
    admin_snapshot_enabled: bool = True
    admin_restore_enabled: bool = True
    admin_rate_limiter_interval_ms: int = 300000
    serialize_last_processed_zxid_enabled: bool = True
    metrics_provider_class_name: str = DEFAULT_METRICS_PROVIDER
    metrics_provider_http_host: str = "0.0.0.0"
    metrics_provider_http_port: int = 7000
    metrics_provider_export_jvm_info: bool = True
    metrics_provider_num_worker_threads: int = 1
    metrics_provider_max_queue_size: int = 1000000
    metrics_provider_worker_shutdown_timeout_ms: int = 1000
    source_text: str = ""  # zoo.cfg as written (the initial_configuration command)
    global_outstanding_limit: int = 1000
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    election_alg: int = 3
    sync_enabled: bool = True
    peer_type: str = PARTICIPANT
    force_sync: bool = True
    fsync_warning_threshold_ms: int = 1000
    extended_types_enabled: bool = False
    skip_acl: bool = False
    enforce_quota: bool = False  # hard quota limits refused with QuotaExceeded
    super_digest: str | None = None  # "user:base64(sha1(user:password))"
    digest_enabled: bool = True  # the data-tree digest (zookeeper.digest.enabled)
    audit_enable: bool = False  # audit log lines to the "zkpy.audit" logger
    readonly_mode_enabled: bool = False
    # Sessions local to the peer that made them (no txn) until an ephemeral
    # needs a global one; only an ensemble member has them.
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    jute_maxbuffer: int = 0xFFFFF
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    container_max_never_used_interval_ms: int = 0
    sessionless_cnxn_timeout_ms: int = 10000
    max_cnxns: int = 0  # server-wide; 0 = unlimited
    # --- throttling: see the "Throttling keys" section below and zkpy.server.throttle
    request_throttle_max_requests: int = 0  # 0: the RequestThrottler never holds a request
    request_throttle_stall_time: int = 100  # ms
    request_throttle_drop_stale: bool = True
    request_stale_connection_check: bool = True
    request_stale_latency_check: bool = False
    throttled_op_wait_time: int = 0  # ms; 0: never answer Throttled
    connection_throttle_tokens: int = 0  # 0: connections are not throttled
    connection_throttle_fill_time: int = 1  # ms
    connection_throttle_fill_count: int = 1
    connection_throttle_freeze_time: int = -1  # ms; -1: no random drop
    connection_throttle_drop_increase: float = 0.02
    connection_throttle_drop_decrease: float = 0.002
    connection_throttle_decrease_ratio: float = 0.0
    connection_throttle_weight_enabled: bool = False
    connection_throttle_global_session_weight: int = 3
    connection_throttle_local_session_weight: int = 1
    connection_throttle_renew_session_weight: int = 2
    # --- security (issue 10): TLS, x509, SASL, enforce.auth; see the
    # "Security keys" section below for each key's parsing.
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None  # None -> all interfaces
    client_port_unification: bool = False
    quorum_port_unification: bool = False  # zoo.cfg's plain "portUnification"
    server_cnxn_factory: str | None = None
    # ssl.* (client port) and ssl.quorum.* (quorum links): see zkpy.security.tls
    ssl_keystore_location: str | None = None
    ssl_keystore_password: str = ""
    ssl_keystore_password_path: str | None = None
    ssl_keystore_type: str | None = None  # PEM / JKS / PKCS12 / BCFKS; None -> from the extension
    ssl_truststore_location: str | None = None
    ssl_truststore_password: str = ""
    ssl_truststore_password_path: str | None = None
    ssl_truststore_type: str | None = None
    ssl_client_auth: str = "need"  # none / want / need
    ssl_protocol: str = "TLSv1.2"
    ssl_enabled_protocols: tuple[str, ...] | None = None  # None -> (ssl_protocol,)
    ssl_ciphersuites: tuple[str, ...] | None = None  # Java names; None -> ZooKeeper's defaults
    ssl_hostname_verification: bool = True
    ssl_handshake_detection_timeout_ms: int = 5000
    ssl_auth_provider: str = "x509"
    ssl_quorum_keystore_location: str | None = None
    ssl_quorum_keystore_password: str = ""
    ssl_quorum_keystore_password_path: str | None = None
    ssl_quorum_keystore_type: str | None = None
    ssl_quorum_truststore_location: str | None = None
    ssl_quorum_truststore_password: str = ""
    ssl_quorum_truststore_password_path: str | None = None
    ssl_quorum_truststore_type: str | None = None
    ssl_quorum_client_auth: str = "need"
    ssl_quorum_protocol: str = "TLSv1.2"
    ssl_quorum_enabled_protocols: tuple[str, ...] | None = None
    ssl_quorum_ciphersuites: tuple[str, ...] | None = None
    ssl_quorum_hostname_verification: bool = True
    ssl_quorum_handshake_detection_timeout_ms: int = 5000
    ssl_quorum: bool = False
    ssl_quorum_reload_cert_files: bool = False
    x509_super_user: str | None = None
    # authProvider.<name> -> Java class name, as written (plus the x509
    # provider ZooKeeper registers by itself when a secure client port is on).
    auth_providers: dict[str, str] = field(default_factory=dict)
    jaas_config: Path | None = None  # java.security.auth.login.config
    sasl_server_login_context: str = "Server"  # sasl.serverconfig
    kerberos_remove_host_from_principal: bool = False
    kerberos_remove_realm_from_principal: bool = False
    kerberos_auth_to_local: str = "DEFAULT"  # security.auth_to_local
    sasl_super_users: frozenset[str] = frozenset()  # superUser and superUser.*
    sasl_super_password: str | None = None  # SASLAuthenticationProvider.superPassword
    sasl_let_any_user_do_x: str | None = None  # letAnySaslUserDoX
    allow_sasl_failed_clients: bool = False
    session_require_client_sasl_auth: bool = False
    enforce_auth_enabled: bool = False
    enforce_auth_schemes: tuple[str, ...] = ()
    quorum_auth_enable_sasl: bool = False
    quorum_auth_learner_require_sasl: bool = False
    quorum_auth_server_require_sasl: bool = False
    quorum_auth_learner_login_context: str = "QuorumLearner"
    quorum_auth_server_login_context: str = "QuorumServer"
    quorum_auth_kerberos_service_principal: str = "zkquorum/localhost"
    # quorum.cnxn.threads.size: ZooKeeper's pool of threads that set up peer
    # connections (their SASL exchanges); zkpy's exchanges run on its event
    # loop, any number at once.  Checked as a number.
    quorum_cnxn_threads_size: int = 20
    # zookeeper.server.realm: the realm of the principal a Kerberos learner
    # asks for when quorum.auth.kerberos.servicePrincipal names none.
    kerberos_server_realm: str | None = None
    digest_auth_enabled: bool = True  # DigestAuthenticationProvider.enabled
    digest_auth_alg: str = "SHA1"  # DigestAuthenticationProvider.digestAlg, as written
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    # Hierarchical quorums: group id -> its participants (group.N), and
    # participant -> weight (weight.N); empty for majority quorums.
    groups: dict[int, tuple] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    # dynamicConfigFile: where the membership (server.N, group.N, weight.N)
    # lives, and its version (from the file's name); 0 for a static one.
    dynamic_config_file: Path | None = None
    config_version: int = 0
    multi_address_enabled: bool = False
    config_path: Path | None = None   # the zoo.cfg read (a reconfiguration edits it)
    multi_address_reachability_check_enabled: bool = True
    multi_address_reachability_check_timeout_ms: int = 1000
    # --- ZooKeeper's other keys: see "ZooKeeper's remaining keys" below.
    # Large requests (ZooKeeperServer): bytes of requests over the threshold
    # in process at once; -1: no limit.
    large_request_max_bytes: int = 100 * 1024 * 1024
    large_request_threshold: int = -1
    # A snapshot also once the txns logged since the last one pass a random
    # point between half this and this (KB); <= 0: by snapCount alone.
    snap_size_limit_kb: int = 4194304
    txn_log_size_limit_kb: int = -1  # a log file is closed past this (KB); <= 0: no limit
    quorum_listen_on_all_ips: bool = False  # the peer port binds every address
    # Ticks a learner waits for the leader to answer it; 0 -> initLimit.
    connect_to_learner_master_limit: int = 0
    # The event-loop pause monitor (ZooKeeper's JvmPauseMonitor).
    jvm_pause_monitor: bool = False
    jvm_pause_info_threshold_ms: int = 1000
    jvm_pause_warn_threshold_ms: int = 10000
    jvm_pause_sleep_time_ms: int = 500
    # TLS handshakes under way at once on the client port; <= 0: no limit.
    outstanding_handshake_limit: int = -1
    # An ensemble member refuses writes the ACLs forbid before the pipeline.
    enable_eager_acl_check: bool = False
    inert_keys: list[str] = field(default_factory=list)  # as written: no effect in zkpy
    my_id: int | None = None  # only read in quorum mode
    extra: dict[str, str] = field(default_factory=dict)  # normalised key -> value
    unknown_keys: list[str] = field(default_factory=list)  # as written, for logging
    warnings: list[str] = field(default_factory=list)  # adjustments, for logging

    def __post_init__(self) -> None:
        if self.data_log_dir is None:
            self.data_log_dir = self.data_dir
        if self.min_session_timeout is None:
            self.min_session_timeout = 2 * self.tick_time
        if self.max_session_timeout is None:
            self.max_session_timeout = 20 * self.tick_time

    @property
    def participants(self) -> dict[int, ServerSpec]:
        return {sid: s for sid, s in self.servers.items() if not s.is_observer}

    @property
    def observers(self) -> dict[int, ServerSpec]:
        return {sid: s for sid, s in self.servers.items() if s.is_observer}

    @property
    def is_standalone(self) -> bool:
        """ZooKeeper's rule: replicated only with >1 participant or standaloneEnabled=false."""
        return self.standalone_enabled and len(self.participants) <= 1

    def four_letter_word_allowed(self, command: str) -> bool:
        wl = self.four_letter_whitelist
        return "*" in wl or command in wl


# Normalised key -> (ServerConfig field, parser).
_FIELDS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    # QuorumPeerConfig's own keys: decimal integers, strict booleans.
    "tickTime": ("tick_time", _int32),
    "initLimit": ("init_limit", _int32),
    "syncLimit": ("sync_limit", _int32),
    "dataDir": ("data_dir", _path),
    "dataLogDir": ("data_log_dir", _path),
    "clientPort": ("client_port", _port),
    "clientPortAddress": ("client_port_address", _bind_host),
    "clientPortListenBacklog": ("client_port_listen_backlog", _int32),
    "dynamicConfigFile": ("dynamic_config_file", _path),
    "multiAddress.enabled": ("multi_address_enabled", _strict_bool),
    "multiAddress.reachabilityCheckEnabled": (
        "multi_address_reachability_check_enabled", _strict_bool),
    "multiAddress.reachabilityCheckTimeoutMs": (
        "multi_address_reachability_check_timeout_ms", _int32),
    "maxClientCnxns": ("max_client_cnxns", _int32),
    "minSessionTimeout": ("min_session_timeout", _session_timeout),
    "maxSessionTimeout": ("max_session_timeout", _session_timeout),
    "autopurge.snapRetainCount": ("autopurge_snap_retain_count", _int32),
    "autopurge.purgeInterval": ("autopurge_purge_interval", _int32),
    "standaloneEnabled": ("standalone_enabled", _strict_bool),
    "reconfigEnabled": ("reconfig_enabled", _strict_bool),
    "electionAlg": ("election_alg", _election_alg),
    "syncEnabled": ("sync_enabled", _strict_bool),
    "peerType": ("peer_type", _learner_type),
    "localSessionsEnabled": ("local_sessions_enabled", _strict_bool),
    "localSessionsUpgradingEnabled": ("local_sessions_upgrading_enabled", _strict_bool),
    # System properties (zookeeper.<key>): Integer.getInteger decodes hex,
    # booleans follow whatever test the Java code applies.
    "snapCount": ("snap_count", _int32_decoded),
    "preAllocSize": ("pre_alloc_size_kb", _int64),
    "4lw.commands.whitelist": ("four_letter_whitelist", _four_letter_list),
    "admin.enableServer": ("admin_enable_server", _not_false),
    "admin.serverPort": ("admin_server_port", _port_decoded),
    "globalOutstandingLimit": ("global_outstanding_limit", _int32_decoded),
    "forceSync": ("force_sync", _not_no),
    "fsync.warningthresholdms": ("fsync_warning_threshold_ms", _int64_decoded),
    "extendedTypesEnabled": ("extended_types_enabled", _java_bool),
    "skipACL": ("skip_acl", _yes),
    # Boolean.parseBoolean in ZooKeeper (anything but "true" is false); zkpy
    # takes only true/false for these, so that a typo does not switch quietly.
    "enforceQuota": ("enforce_quota", _strict_bool),
    "DigestAuthenticationProvider.superDigest": ("super_digest", _text),
    "digest.enabled": ("digest_enabled", _strict_bool),
    "audit.enable": ("audit_enable", _strict_bool),
    "readonlymode.enabled": ("readonly_mode_enabled", _java_bool),
    "jute.maxbuffer": ("jute_maxbuffer", _int32_decoded),
    "znode.container.checkIntervalMs": ("container_check_interval_ms", _int32_decoded),
    "znode.container.maxPerMinute": ("container_max_per_minute", _int32_decoded),
    "znode.container.maxNeverUsedIntervalMs": (
        "container_max_never_used_interval_ms", _int64_decoded),
    "nio.sessionlessCnxnTimeout": ("sessionless_cnxn_timeout_ms", _int32_decoded),
    "maxCnxns": ("max_cnxns", _int32_decoded),
}

# ---------------------------------------------------------------------------
# Operations keys (issue 11): the AdminServer (admin.*, JettyAdminServer's
# system properties; 3.9's snapshot and restore switches) and the metrics
# provider (metricsProvider.*, zoo.cfg keys handed to the provider).
# ---------------------------------------------------------------------------

def _metrics_provider(key: str, value: str) -> str:
    # ZooKeeper loads the class by name and stops if there is none.
    if value not in (DEFAULT_METRICS_PROVIDER, PROMETHEUS_METRICS_PROVIDER):
        raise ConfigError(
            f"unknown metrics provider {value!r} (expected {PROMETHEUS_METRICS_PROVIDER} "
            f"or {DEFAULT_METRICS_PROVIDER})", key=key)
    return value


def _unsupported_true(what: str):
    def parse(key: str, value: str) -> bool:
        # Boolean.getBoolean: only "true" (any case) switches it on.
        if value.lower() == "true":
            raise ConfigError(f"{what} is not supported", key=key)
        return False
    return parse


def _http_version(key: str, value: str) -> int:
    # JettyAdminServer: HttpVersion.fromVersion(Integer.getInteger(...)).
    number = _parse_int(key, value, decode=True)
    if number != 11:
        raise ConfigError(f"only HTTP/1.1 (11) is supported, got {number}", key=key)
    return number


def _command_url(key: str, value: str) -> str:
    if not value.startswith("/"):
        raise ConfigError(f"must start with '/', got {value!r}", key=key)
    return value


_OPERATIONS_FIELDS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "admin.serverAddress": ("admin_server_address", _bind_host),
    "admin.commandURL": ("admin_command_url", _command_url),
    "admin.idleTimeout": ("admin_idle_timeout_ms", _int32_decoded),
    "admin.forceHttps": ("admin_force_https", _java_bool),
    "admin.portUnification": (
        "admin_port_unification", _unsupported_true("HTTP and HTTPS on one admin port")),
    "admin.httpVersion": ("admin_http_version", _http_version),
    "admin.snapshot.enabled": ("admin_snapshot_enabled", _java_bool),
    "admin.restore.enabled": ("admin_restore_enabled", _java_bool),
    "admin.rateLimiterIntervalInMS": ("admin_rate_limiter_interval_ms", _int32),
    "serializeLastProcessedZxid.enabled": ("serialize_last_processed_zxid_enabled", _java_bool),
    "metricsProvider.className": ("metrics_provider_class_name", _metrics_provider),
    "metricsProvider.httpHost": ("metrics_provider_http_host", _bind_host),
    "metricsProvider.httpPort": ("metrics_provider_http_port", _port),
    "metricsProvider.exportJvmInfo": ("metrics_provider_export_jvm_info", _java_bool),
    "metricsProvider.numWorkerThreads": ("metrics_provider_num_worker_threads", _int32),
    "metricsProvider.maxQueueSize": ("metrics_provider_max_queue_size", _int32),
    "metricsProvider.workerShutdownTimeoutMs": (
        "metrics_provider_worker_shutdown_timeout_ms", _int64),
}
_FIELDS.update(_OPERATIONS_FIELDS)


# ---------------------------------------------------------------------------
# ZooKeeper's remaining keys (docs/compatibility.md, "Configuration and
# storage").  Each one is read as ZooKeeper 3.8 reads it: QuorumPeerConfig's
# own keys with parseInt/parseLong and its strict booleans, the system
# properties with Integer.getInteger/Long.getLong (hex allowed).  A value
# ZooKeeper replaces with a warning is replaced here with a warning too; one
# that stops ZooKeeper stops zkpy.
# ---------------------------------------------------------------------------

DEFAULT_WATCH_MANAGERS = (
    "org.apache.zookeeper.server.watch.WatchManager",
    "org.apache.zookeeper.server.watch.WatchManagerOptimized",
)


def _watch_manager(key: str, value: str) -> str:
    # WatchManagerFactory instantiates the class by name; one that does not
    # load stops the server.  zkpy has one watch manager for either.
    if value not in DEFAULT_WATCH_MANAGERS:
        raise ConfigError(f"unknown watch manager {value!r} (expected "
                          f"{' or '.join(DEFAULT_WATCH_MANAGERS)})", key=key)
    return value


def _at_least(minimum: int, what: str, parse=_int32_decoded):
    def check(key: str, value: str) -> int:
        number = parse(key, value)
        if number < minimum:
            raise ConfigError(f"{what} must be at least {minimum}, got {number}", key=key)
        return number
    return check


# Keys with a behaviour: a field of ServerConfig each.
_KEY_FIELDS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "largeRequestMaxBytes": ("large_request_max_bytes", _int32_decoded),
    "largeRequestThreshold": ("large_request_threshold", _int32_decoded),
    "snapSizeLimitInKb": ("snap_size_limit_kb", _int64_decoded),
    "txnLogSizeLimitInKb": ("txn_log_size_limit_kb", _int64_decoded),
    "quorumListenOnAllIPs": ("quorum_listen_on_all_ips", _strict_bool),
    "connectToLearnerMasterLimit": ("connect_to_learner_master_limit", _int32),
    "jvm.pause.monitor": ("jvm_pause_monitor", _strict_bool),
    "jvm.pause.info-threshold.ms": ("jvm_pause_info_threshold_ms", _int64),
    "jvm.pause.warn-threshold.ms": ("jvm_pause_warn_threshold_ms", _int64),
    "jvm.pause.sleep.time.ms": ("jvm_pause_sleep_time_ms", _int64),
    "netty.server.outstandingHandshake.limit": (
        "outstanding_handshake_limit", _int32_decoded),
    "enableEagerACLCheck": ("enable_eager_acl_check", _java_bool),   # Boolean.getBoolean
}
_FIELDS.update(_KEY_FIELDS)

# Keys of ZooKeeper's Java internals with no counterpart in zkpy: checked as
# ZooKeeper checks them, kept in `extra`, listed at startup (INFO) as having
# no effect.  Why each has none: docs/compatibility.md.
_INERT_KEYS: dict[str, Callable[[str, str], object]] = {
    "maxResponseCacheSize": _int32_decoded,
    "maxGetChildrenResponseCacheSize": _int32_decoded,
    "commitLogCount": _int32_decoded,
    "flushDelay": _int64_decoded,
    "maxWriteQueuePollTime": _int64_decoded,
    "maxBatchSize": _int32_decoded,
    "closeSessionTxn.enabled": _java_bool,
    # ZooKeeperServer's static initialiser refuses a starting size below 32.
    "intBufferStartingSizeBytes": _at_least(32, "the buffer starting size"),
    "request_throttler.shutdownTimeout": _int32_decoded,
    # NIOServerCnxnFactory.configure refuses fewer than one selector thread.
    "nio.numSelectorThreads": _at_least(1, "numSelectorThreads"),
    "nio.numWorkerThreads": _int32_decoded,
    "nio.directBufferBytes": _int32_decoded,
    "nio.shutdownTimeout": _int64_decoded,
    "watchManagerName": _watch_manager,
    "jute.maxbuffer.extrasize": _int32_decoded,
    "fips-mode": _java_bool,
    "learner.asyncSending": _java_bool,
    "learner.closeSocketAsync": _java_bool,
    "leader.closeSocketAsync": _java_bool,
    "leader.ackLoggingFrequency": _int32_decoded,
    "netty.advancedFlowControl.enabled": _java_bool,
    "netty.server.earlyDropSecureConnectionHandshakes": _java_bool,
    "kerberos.minReLoginTimeMs": _int64_decoded,
    "version": _text,
}


# Keys with a behaviour zkpy does not have: checked, kept in `extra`, and
# a warning at startup when the value asks for that behaviour.
# key -> (parser, asks for it?(parsed value), what zkpy does instead).
_UNIMPLEMENTED_KEYS: dict[str, tuple[Callable, Callable, str]] = {
    "observerMasterPort": (
        _int32, lambda v: v > 0,
        "followers do not serve observers: observers sync from the leader"),
    "oraclePath": (
        _text, lambda v: bool(v),
        "no QuorumOracleMaj: a two-voter ensemble needs both voters for a quorum"),
    "requireKerberosConfig": (
        _text, lambda v: v == "true",
        "a missing Kerberos configuration is reported when Kerberos is first used"),
    "leader.maxConcurrentSnapSyncs": (
        _int32_decoded, lambda v: True,
        "the leader syncs any number of learners at once"),
    "leader.maxConcurrentDiffSyncs": (
        _int32_decoded, lambda v: True,
        "the leader syncs any number of learners at once"),
    "leader.maxTimeToWaitForEpoch": (
        _int32_decoded, lambda v: True,
        "a new leader waits initLimit ticks for a quorum to accept its epoch"),
    "kerberos.canonicalizeHostNames": (
        _java_bool, lambda v: v,
        "the host in a quorum service principal is used as written"),
    "audit.impl.class": (
        _text, lambda v: v != "org.apache.zookeeper.audit.Slf4jAuditLogger",
        "audit lines go to the zkpy.audit logger"),
    "ssl.context.supplier.class": (
        _text, lambda v: bool(v), "TLS contexts are built from the ssl.* keys"),
    "ssl.quorum.context.supplier.class": (
        _text, lambda v: bool(v), "TLS contexts are built from the ssl.quorum.* keys"),
    "ssl.allowReverseDnsLookup": (
        _java_bool, lambda v: v, "hostname verification never looks a name up in reverse"),
    "ssl.quorum.allowReverseDnsLookup": (
        _java_bool, lambda v: v, "hostname verification never looks a name up in reverse"),
}

# Asking for certificate revocation checks zkpy does not make must not pass
# quietly (a revoked certificate would be accepted): true stops the server;
# false asks for nothing.
for _name in ("ssl.crl", "ssl.ocsp", "ssl.quorum.crl", "ssl.quorum.ocsp"):
    _INERT_KEYS[_name] = _unsupported_true("certificate revocation checking (CRL/OCSP)")
del _name

# Keys taken under any suffix: authProvider.<scheme>, superUser.<n>.
_RECOGNISED_PREFIXES = ("authProvider.", "superUser.")
_RECOGNISED_KEYS = frozenset({"superUser"})


def _check_other_keys(config: "ServerConfig", written: dict[str, str]) -> None:
    for norm, value in config.extra.items():
        key = written.get(norm, norm)
        parse = _INERT_KEYS.get(norm)
        if parse is not None:
            parse(key, value)
            config.inert_keys.append(key)
            continue
        entry = _UNIMPLEMENTED_KEYS.get(norm)
        if entry is not None:
            parse, wanted, instead = entry
            if wanted(parse(key, value)):
                config.warnings.append(f"{key}={value} is not implemented: {instead}")
    # JvmPauseMonitor's thread dies on a negative sleep and spins on 0.
    if config.jvm_pause_monitor and config.jvm_pause_sleep_time_ms < 1:
        raise ConfigError(f"must be at least 1 (ms) with jvm.pause.monitor=true, got "
                          f"{config.jvm_pause_sleep_time_ms}",
                          key=_key(written, "jvm.pause.sleep.time.ms"))
    # ZooKeeperServer keeps its default for a maximum that is not positive,
    # and turns the limit off for a threshold of 0 or below -1.
    if config.large_request_max_bytes <= 0:
        config.warnings.append(
            f"{_key(written, 'largeRequestMaxBytes')}={config.large_request_max_bytes} is "
            f"not positive; using {100 * 1024 * 1024}")
        config.large_request_max_bytes = 100 * 1024 * 1024
    t = config.large_request_threshold
    if t == 0 or t < -1:
        config.warnings.append(f"{_key(written, 'largeRequestThreshold')}={t} should be "
                               "-1 or positive; using -1")
        config.large_request_threshold = -1


# ---------------------------------------------------------------------------
# Security keys (issue 10): TLS, x509, SASL, Kerberos names, enforce.auth.
#
# ZooKeeper reads most of these as system properties, each with its own
# notion of a boolean: QuorumPeerConfig's own keys (sslQuorum, portUnification,
# quorum.auth.*) take only true/false; ZKConfig.getBoolean and
# Boolean.parseBoolean treat anything but "true" as false; Boolean.getBoolean
# (client.portUnification, allowSaslFailedClients) likewise; the Kerberos
# principal switches compare with "true" case-sensitively.  The SSL values
# that ZooKeeper only checks when it builds an SSLContext (store types,
# clientAuth, protocols) are checked here, so that a typo stops the server
# at startup with a line naming the key instead of failing each handshake.
# ---------------------------------------------------------------------------

_STORE_TYPES = ("JKS", "PEM", "PKCS12", "BCFKS")
_CLIENT_AUTH = ("none", "want", "need")
# What SSLContext.getInstance accepts on the JDK (ssl.protocol); zkpy builds
# a context for each with the same minimum version.
_SSL_PROTOCOLS = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "TLS", "SSLv3", "SSL")
# What SSLParameters.setProtocols accepts (ssl.enabledProtocols).
_ENABLED_PROTOCOLS = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3", "SSLv2Hello")
# MessageDigest names the JDK knows (DigestAuthenticationProvider.digestAlg),
# upper-cased -> hashlib name.  Java looks algorithm names up case-insensitively.
_DIGEST_ALGS = {
    "SHA1": "sha1", "SHA-1": "sha1", "SHA": "sha1", "MD5": "md5", "MD2": None,
    "SHA-224": "sha224", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
    "SHA-512/224": "sha512_224", "SHA-512/256": "sha512_256",
    "SHA3-224": "sha3_224", "SHA3-256": "sha3_256", "SHA3-384": "sha3_384",
    "SHA3-512": "sha3_512",
}
_SERVER_CNXN_FACTORIES = (
    "org.apache.zookeeper.server.NIOServerCnxnFactory",
    "org.apache.zookeeper.server.NettyServerCnxnFactory",
)
X509_PROVIDER_CLASS = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"


def _optional_text(key: str, value: str) -> str | None:
    # ZooKeeper's getProperty(key, "") followed by isEmpty(): empty means unset.
    return value or None


def _store_type(key: str, value: str) -> str | None:
    # KeyStoreFileType.fromPropertyValue: empty -> guess from the file name,
    # otherwise valueOf(toUpperCase()).
    if not value:
        return None
    upper = value.upper()
    if upper not in _STORE_TYPES:
        raise ConfigError(
            f"unknown store type {value!r} (expected one of {', '.join(_STORE_TYPES)})", key=key
        )
    return upper


def _client_auth(key: str, value: str) -> str:
    # X509Util.ClientAuth.fromPropertyValue: empty -> NEED; case-insensitive.
    if not value:
        return "need"
    lowered = value.lower()
    if lowered not in _CLIENT_AUTH:
        raise ConfigError(f"expected none, want or need, got {value!r}", key=key)
    return lowered


def _ssl_protocol(key: str, value: str) -> str:
    if value not in _SSL_PROTOCOLS:
        raise ConfigError(
            f"unsupported protocol {value!r} (expected one of {', '.join(_SSL_PROTOCOLS)})",
            key=key,
        )
    return value


def _enabled_protocols(key: str, value: str) -> tuple[str, ...]:
    # Java splits on "," without trimming; we trim, which only forgives blanks.
    names = tuple(p.strip() for p in value.split(","))
    for name in names:
        if name not in _ENABLED_PROTOCOLS:
            raise ConfigError(
                f"unsupported protocol {name!r} (expected names such as TLSv1.2, TLSv1.3)",
                key=key,
            )
    return names


def _ciphersuites(key: str, value: str) -> tuple[str, ...]:
    from ..security.ciphers import openssl_cipher_name  # no cycle: ciphers has no imports

    names = tuple(p.strip() for p in value.split(",") if p.strip())
    if not names:
        raise ConfigError("must name at least one cipher suite", key=key)
    for name in names:
        if openssl_cipher_name(name) is None:
            raise ConfigError(f"unknown or unsupported cipher suite {name!r}", key=key)
    return names


def _positive_or_default_5000(key: str, value: str) -> int:
    # SSLContextAndOptions: Integer.parseInt, and values < 1 fall back to 5000.
    number = _parse_int(key, value)
    return number if number >= 1 else 5000


def _exactly_true(key: str, value: str) -> bool:
    # SaslServerCallbackHandler: "true".equals(System.getProperty(...)).
    return value == "true"


def _secure_port(key: str, value: str) -> int | None:
    # QuorumPeerConfig reads it with parseInt; like clientPort we keep 0 as
    # "bind an ephemeral port" (useful in tests) rather than "not set".
    return _port(key, value)


def _server_cnxn_factory(key: str, value: str) -> str:
    # zkpy has one connection factory; both of ZooKeeper's names are accepted.
    # Any other class would make ZooKeeper fail to start (Class.forName).
    if value not in _SERVER_CNXN_FACTORIES:
        raise ConfigError(
            f"unknown connection factory {value!r} (expected "
            f"{' or '.join(_SERVER_CNXN_FACTORIES)})",
            key=key,
        )
    return value


def _digest_alg(key: str, value: str) -> str:
    if hashlib_name(value) is None:
        raise ConfigError(f"unsupported digest algorithm {value!r}", key=key)
    return value


def hashlib_name(digest_alg: str) -> str | None:
    """The hashlib name for a Java MessageDigest name, or None if unsupported."""
    name = _DIGEST_ALGS.get(digest_alg.upper())
    if name is None:
        return None
    import hashlib

    return name if name in hashlib.algorithms_available else None


def _auth_schemes(key: str, value: str) -> tuple[str, ...]:
    # AuthenticationHelper: split(",") and trim each; empty pieces are kept
    # (and then fail the "is a provider registered" check, as in ZooKeeper).
    return tuple(p.strip() for p in value.split(","))


def _auth_to_local(key: str, value: str) -> str:
    from ..security.kerberos_name import parse_rules

    try:
        parse_rules(value)
    except ValueError as e:
        raise ConfigError(str(e), key=key) from None
    return value


def _ssl_fields(prefix: str, field_prefix: str) -> dict[str, tuple[str, Callable[[str, str], object]]]:
    return {
        f"{prefix}keyStore.location": (f"{field_prefix}keystore_location", _optional_text),
        f"{prefix}keyStore.password": (f"{field_prefix}keystore_password", _text),
        f"{prefix}keyStore.passwordPath": (f"{field_prefix}keystore_password_path", _optional_text),
        f"{prefix}keyStore.type": (f"{field_prefix}keystore_type", _store_type),
        f"{prefix}trustStore.location": (f"{field_prefix}truststore_location", _optional_text),
        f"{prefix}trustStore.password": (f"{field_prefix}truststore_password", _text),
        f"{prefix}trustStore.passwordPath": (
            f"{field_prefix}truststore_password_path", _optional_text),
        f"{prefix}trustStore.type": (f"{field_prefix}truststore_type", _store_type),
        f"{prefix}clientAuth": (f"{field_prefix}client_auth", _client_auth),
        f"{prefix}protocol": (f"{field_prefix}protocol", _ssl_protocol),
        f"{prefix}enabledProtocols": (f"{field_prefix}enabled_protocols", _enabled_protocols),
        f"{prefix}ciphersuites": (f"{field_prefix}ciphersuites", _ciphersuites),
        f"{prefix}hostnameVerification": (f"{field_prefix}hostname_verification", _java_bool),
        f"{prefix}handshakeDetectionTimeoutMillis": (
            f"{field_prefix}handshake_detection_timeout_ms", _positive_or_default_5000),
    }


_SECURITY_FIELDS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "secureClientPort": ("secure_client_port", _secure_port),
    "secureClientPortAddress": ("secure_client_port_address", _bind_host),
    "client.portUnification": ("client_port_unification", _java_bool),
    "portUnification": ("quorum_port_unification", _strict_bool),
    "serverCnxnFactory": ("server_cnxn_factory", _server_cnxn_factory),
    **_ssl_fields("ssl.", "ssl_"),
    **_ssl_fields("ssl.quorum.", "ssl_quorum_"),
    "ssl.authProvider": ("ssl_auth_provider", _text),
    "sslQuorum": ("ssl_quorum", _strict_bool),
    "sslQuorumReloadCertFiles": ("ssl_quorum_reload_cert_files", _strict_bool),
    "X509AuthenticationProvider.superUser": ("x509_super_user", _optional_text),
    "java.security.auth.login.config": ("jaas_config", _path),
    "sasl.serverconfig": ("sasl_server_login_context", _text),
    "kerberos.removeHostFromPrincipal": ("kerberos_remove_host_from_principal", _exactly_true),
    "kerberos.removeRealmFromPrincipal": ("kerberos_remove_realm_from_principal", _exactly_true),
    "security.auth_to_local": ("kerberos_auth_to_local", _auth_to_local),
    "SASLAuthenticationProvider.superPassword": ("sasl_super_password", _text),
    "letAnySaslUserDoX": ("sasl_let_any_user_do_x", _text),
    "allowSaslFailedClients": ("allow_sasl_failed_clients", _java_bool),
    "sessionRequireClientSASLAuth": ("session_require_client_sasl_auth", _java_bool),
    "enforce.auth.enabled": ("enforce_auth_enabled", _java_bool),
    "enforce.auth.schemes": ("enforce_auth_schemes", _auth_schemes),
    "quorum.auth.enableSasl": ("quorum_auth_enable_sasl", _strict_bool),
    "quorum.auth.learnerRequireSasl": ("quorum_auth_learner_require_sasl", _strict_bool),
    "quorum.auth.serverRequireSasl": ("quorum_auth_server_require_sasl", _strict_bool),
    "quorum.auth.learner.saslLoginContext": ("quorum_auth_learner_login_context", _text),
    "quorum.auth.server.saslLoginContext": ("quorum_auth_server_login_context", _text),
    "quorum.auth.kerberos.servicePrincipal": ("quorum_auth_kerberos_service_principal", _text),
    "quorum.cnxn.threads.size": ("quorum_cnxn_threads_size", _int32),
    # Before the server.N lines: "server.realm" is this property, not a server.
    "server.realm": ("kerberos_server_realm", _text),
    "DigestAuthenticationProvider.enabled": ("digest_auth_enabled", _java_bool),
    "DigestAuthenticationProvider.digestAlg": ("digest_auth_alg", _digest_alg),
}
_FIELDS.update(_SECURITY_FIELDS)


def _check_security(config: "ServerConfig", written: dict[str, str]) -> None:
    """Cross-key rules and the keys collected by prefix (authProvider.*, superUser.*)."""
    for norm, value in config.extra.items():
        if norm.startswith("authProvider."):
            config.auth_providers[norm[len("authProvider."):]] = value
    config.sasl_super_users = frozenset(
        value for norm, value in config.extra.items()
        if norm == "superUser" or norm.startswith("superUser.")
    )
    if config.secure_client_port_address is not None and config.secure_client_port is None:
        raise ConfigError(
            "is set but secureClientPort is not set",
            key=_key(written, "secureClientPortAddress"),
        )
    if config.secure_client_port is not None or config.client_port_unification:
        _configure_ssl_auth(config, written)
    # QuorumPeerConfig's consistency rules for quorum SASL.
    enable, learner, server = (
        config.quorum_auth_enable_sasl,
        config.quorum_auth_learner_require_sasl,
        config.quorum_auth_server_require_sasl,
    )
    if not enable and server:
        raise ConfigError(
            "quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.serverRequireSasl",
            key=_key(written, "quorum.auth.serverRequireSasl"),
        )
    if not enable and learner:
        raise ConfigError(
            "quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.learnerRequireSasl",
            key=_key(written, "quorum.auth.learnerRequireSasl"),
        )
    if not learner and server:
        raise ConfigError(
            "quorum.auth.learnerRequireSasl is disabled, so cannot enable "
            "quorum.auth.serverRequireSasl",
            key=_key(written, "quorum.auth.serverRequireSasl"),
        )
    _check_enforce_auth(config, written)


def _configure_ssl_auth(config: "ServerConfig", written: dict[str, str]) -> None:
    """QuorumPeerConfig.configureSSLAuth: with a secure client port, the scheme
    named by ssl.authProvider (default x509) needs a provider registered as
    authProvider.<scheme>; for x509 ZooKeeper registers its own."""
    scheme = config.ssl_auth_provider
    if scheme in config.auth_providers:
        return
    if scheme == "x509":
        config.auth_providers["x509"] = X509_PROVIDER_CLASS
        return
    raise ConfigError(
        f"no auth provider configured for the SSL authentication scheme {scheme!r} "
        f"(expected authProvider.{scheme}=<class>)",
        key=_key(written, "ssl.authProvider"),
    )


def _check_enforce_auth(config: "ServerConfig", written: dict[str, str]) -> None:
    """AuthenticationHelper's startup checks.  sessionRequireClientSASLAuth
    overrides the enforce.auth.* keys with enforcement of the sasl scheme."""
    from ..security.providers import registered_schemes

    if config.session_require_client_sasl_auth:
        enabled, schemes = True, ("sasl",)
        key = _key(written, "sessionRequireClientSASLAuth")
    else:
        enabled, schemes = config.enforce_auth_enabled, config.enforce_auth_schemes
        key = _key(written, "enforce.auth.schemes")
    if not enabled:
        return
    if not schemes:
        raise ConfigError(
            "enforce.auth.enabled is true, so enforce.auth.schemes must be configured",
            key=_key(written, "enforce.auth.enabled"),
        )
    available = registered_schemes(config)
    for scheme in schemes:
        if scheme not in available:
            raise ConfigError(
                f"authentication scheme {scheme!r} is not available "
                f"(registered: {', '.join(sorted(available))})",
                key=key,
            )


# ---------------------------------------------------------------------------
# Throttling keys: the RequestThrottler, the connection token bucket
# (BlueThrottle).  ZooKeeper reads them as system properties, so in its
# zoo.cfg they work under their property names (request_throttle_max_requests,
# connection_throttle_tokens, ...); the administrator's guide calls them
# requestThrottleLimit, connectionMaxTokens and so on, names ZooKeeper itself
# never reads.  zkpy takes both (docs/compatibility.md).  Integers are read as
# Integer.getInteger reads them; a value that is not a number, or one that
# would break the throttle (a negative stall time, a fill time below 1 ms), is
# refused.
# ---------------------------------------------------------------------------

_JAVA_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")


def _java_double(key: str, value: str) -> float:
    # Double.parseDouble, finite values only (it also trims the value).
    text = value.strip()
    if not _JAVA_DOUBLE.fullmatch(text):
        raise ConfigError(f"expected a number, got {value!r}", key=key)
    return float(text.rstrip("fFdD"))


_THROTTLE_FIELDS: dict[str, tuple[str, Callable[[str, str], object]]] = {}
for _names, _field, _parse in (
    (("request_throttle_max_requests", "requestThrottleLimit"),
     "request_throttle_max_requests", _int32_decoded),
    (("request_throttle_stall_time", "requestThrottleStallTime"),
     "request_throttle_stall_time", _int32_decoded),
    (("request_throttle_drop_stale", "requestThrottleDropStale"),
     "request_throttle_drop_stale", _strict_bool),
    (("request_stale_connection_check", "requestStaleConnectionCheck"),
     "request_stale_connection_check", _strict_bool),
    (("request_stale_latency_check", "requestStaleLatencyCheck"),
     "request_stale_latency_check", _strict_bool),
    (("throttled_op_wait_time", "throttledOpWaitTime"),
     "throttled_op_wait_time", _int32_decoded),
    (("connection_throttle_tokens", "connectionMaxTokens"),
     "connection_throttle_tokens", _int32_decoded),
    (("connection_throttle_fill_time", "connectionTokenFillTime"),
     "connection_throttle_fill_time", _int32_decoded),
    (("connection_throttle_fill_count", "connectionTokenFillCount"),
     "connection_throttle_fill_count", _int32_decoded),
    (("connection_throttle_freeze_time", "connectionFreezeTime"),
     "connection_throttle_freeze_time", _int32_decoded),
    (("connection_throttle_drop_increase", "connectionDropIncrease"),
     "connection_throttle_drop_increase", _java_double),
    (("connection_throttle_drop_decrease", "connectionDropDecrease"),
     "connection_throttle_drop_decrease", _java_double),
    (("connection_throttle_decrease_ratio", "connectionDecreaseRatio"),
     "connection_throttle_decrease_ratio", _java_double),
    (("connection_throttle_weight_enabled",), "connection_throttle_weight_enabled", _strict_bool),
    (("connection_throttle_global_session_weight",),
     "connection_throttle_global_session_weight", _int32_decoded),
    (("connection_throttle_local_session_weight",),
     "connection_throttle_local_session_weight", _int32_decoded),
    (("connection_throttle_renew_session_weight",),
     "connection_throttle_renew_session_weight", _int32_decoded),
):
    for _name in _names:
        _THROTTLE_FIELDS[_name] = (_field, _parse)
del _names, _field, _parse, _name
_FIELDS.update(_THROTTLE_FIELDS)


def _check_throttling(config: "ServerConfig", written: dict[str, str]) -> None:
    def key(*names):
        for name in names:
            if name in written:
                return written[name]
        return names[0]

    if config.request_throttle_stall_time < 0:
        raise ConfigError(f"must be >= 0, got {config.request_throttle_stall_time}",
                          key=key("request_throttle_stall_time", "requestThrottleStallTime"))
    if config.connection_throttle_tokens < 0:
        raise ConfigError(f"must be >= 0 (0: no connection throttling), got "
                          f"{config.connection_throttle_tokens}",
                          key=key("connection_throttle_tokens", "connectionMaxTokens"))
    if config.connection_throttle_tokens > 0:
        if config.connection_throttle_fill_time < 1:
            raise ConfigError(f"must be at least 1 (ms), got "
                              f"{config.connection_throttle_fill_time}",
                              key=key("connection_throttle_fill_time", "connectionTokenFillTime"))
        if config.connection_throttle_fill_count < 0:
            raise ConfigError(f"must be >= 0, got {config.connection_throttle_fill_count}",
                              key=key("connection_throttle_fill_count",
                                      "connectionTokenFillCount"))
    _adjust_session_weights(config, written)


def _adjust_session_weights(config: "ServerConfig", written: dict[str, str]) -> None:
    # BlueThrottle replaces a weight that is not positive, or out of order
    # (global and renew below local), with a warning.
    g = config.connection_throttle_global_session_weight
    local = config.connection_throttle_local_session_weight
    r = config.connection_throttle_renew_session_weight
    names = ("connection_throttle_global_session_weight",
             "connection_throttle_local_session_weight",
             "connection_throttle_renew_session_weight")
    fixed_g = 3 if g <= 0 else (local if g < local else g)
    fixed_l = 1 if local <= 0 else local
    fixed_r = 2 if r <= 0 else (local if r < local else r)
    for name, was, now in zip(names, (g, local, r), (fixed_g, fixed_l, fixed_r)):
        if was != now:
            config.warnings.append(f"{_key(written, name)}={was} is not a valid weight "
                                   f"(positive; global and renew at least local); using {now}")
            setattr(config, name, now)


def normalize_key(key: str) -> str:
    """Drop one leading ``zookeeper.``: zoo.cfg keys double as system properties."""
    prefix = "zookeeper."
    return key[len(prefix):] if key.startswith(prefix) else key


def _is_recognised(normalized: str) -> bool:
    return (normalized in _INERT_KEYS or normalized in _UNIMPLEMENTED_KEYS
            or normalized in _RECOGNISED_KEYS or normalized.startswith(_RECOGNISED_PREFIXES))


# ---------------------------------------------------------------------------
# parse_config and its steps
# ---------------------------------------------------------------------------


def load_config(path: str | Path, base_dir: str | Path | None = None) -> ServerConfig:
    """Read and parse a zoo.cfg file.

    Relative paths inside it are left relative (so they resolve against the
    process's working directory, as in ZooKeeper) unless ``base_dir`` is given.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=source) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file ({e.strerror or e})", source=source) from None
    config = parse_config(_decode(data), base_dir, source=source)
    config.config_path = Path(path)
    return config


def _decode(data: bytes) -> str:
    # Java reads .properties as ISO-8859-1; accepting UTF-8 first (and a BOM)
    # is friendlier and identical for the ASCII configs everyone writes.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_config(
    text: str, base_dir: str | Path | None = None, *, source: str = DEFAULT_SOURCE
) -> ServerConfig:
    """Parse zoo.cfg text.  ``source`` names the file in error messages."""
    try:
        return _parse_config(text, base_dir)
    except ConfigError as e:
        if e.source is None:
            e.source = source
        raise


def _parse_config(text: str, base_dir: str | Path | None) -> ServerConfig:
    # Normalise first so that "x" and "zookeeper.x" collapse, later line winning;
    # remember the spelling actually used so errors can quote it.
    entries: dict[str, tuple[str, str]] = {}
    for key, value in iter_properties(text):
        entries[normalize_key(key)] = (key, value)
    written = {norm: key for norm, (key, _) in entries.items()}

    settings: dict[str, object] = {}
    membership: dict[str, tuple[str, str]] = {}   # server.N, group.N, weight.N lines
    extra: dict[str, str] = {}
    unknown: list[str] = []
    for norm, (key, value) in entries.items():
        if norm in _FIELDS:
            name, parse = _FIELDS[norm]
            settings[name] = parse(key, value)
        elif norm.startswith(_MEMBERSHIP_PREFIXES):
            membership[norm] = (key, value)
        else:
            extra[norm] = value
            if not _is_recognised(norm):
                unknown.append(key)

    if "data_dir" not in settings:
        raise ConfigError("dataDir is not set")
    _resolve_paths(settings, base_dir)
    config = ServerConfig(extra=extra, unknown_keys=unknown, source_text=text, **settings)
    _read_membership(config, membership, base_dir)

    _check_tick_time(config, written)
    _check_session_timeouts(config, written)
    _check_client_address(config, written)
    _apply_minimums(config, written)
    config.four_letter_whitelist = _complete_whitelist(config)
    _check_security(config, written)
    _check_throttling(config, written)
    _check_other_keys(config, written)
    _check_server_list(config, written)
    if not config.is_standalone:
        _setup_quorum_member(config, written)
    return config


def _key(written: dict[str, str], canonical: str) -> str:
    """The key as the user spelled it (possibly with 'zookeeper.'), for messages."""
    return written.get(canonical, canonical)


def _resolve_paths(settings: dict[str, object], base_dir: str | Path | None) -> None:
    if base_dir is None:
        return
    for name in ("data_dir", "data_log_dir"):
        path = settings.get(name)
        if isinstance(path, Path) and not path.is_absolute():
            settings[name] = Path(base_dir) / path


def _check_tick_time(config: ServerConfig, written: dict[str, str]) -> None:
    if config.tick_time <= 0:
        raise ConfigError(
            f"must be a positive number of milliseconds, got {config.tick_time}",
            key=_key(written, "tickTime"),
        )


def _check_session_timeouts(config: ServerConfig, written: dict[str, str]) -> None:
    low, high = config.min_session_timeout, config.max_session_timeout
    if low > high:
        raise ConfigError(
            f"{low} must not be larger than maxSessionTimeout ({high})",
            key=_key(written, "minSessionTimeout"),
        )


def _check_client_address(config: ServerConfig, written: dict[str, str]) -> None:
    if config.client_port_address is not None and config.client_port is None:
        raise ConfigError(
            "is set but clientPort is not set", key=_key(written, "clientPortAddress")
        )


def _apply_minimums(config: ServerConfig, written: dict[str, str]) -> None:
    # ZooKeeper resets these (with a warning) rather than failing.
    if config.autopurge_snap_retain_count < 3:
        config.warnings.append(
            f"{_key(written, 'autopurge.snapRetainCount')}="
            f"{config.autopurge_snap_retain_count} is below the minimum; using 3"
        )
        config.autopurge_snap_retain_count = 3
    if config.snap_count < 2:
        config.warnings.append(
            f"{_key(written, 'snapCount')}={config.snap_count} is below the minimum; using 2"
        )
        config.snap_count = 2


def _complete_whitelist(config: ServerConfig) -> frozenset[str]:
    wl = config.four_letter_whitelist
    if "*" in wl:
        return ALL_FOUR_LETTER_WORDS
    # zkServer.sh status relies on srvr, and read-only clients probe isro,
    # so ZooKeeper adds them whatever the list says.
    wl = wl | {"srvr"}
    if config.readonly_mode_enabled:
        wl = wl | {"isro"}
    return frozenset(wl)


def _check_server_list(config: ServerConfig, written: dict[str, str]) -> None:
    """ZooKeeper's consistency rules between standaloneEnabled and server.N."""
    participants, observers = config.participants, config.observers
    if not participants:
        if not config.standalone_enabled:
            raise ConfigError(
                "is false, so at least one participant server.N line is required",
                key=_key(written, "standaloneEnabled"),
            )
        if observers:
            raise ConfigError("observers are configured without any participant server.N line")
    elif len(participants) == 1 and config.standalone_enabled:
        if observers:
            raise ConfigError(
                "observers need a replicated ensemble, but only one participant is configured"
            )
        config.warnings.append(
            "only one server.N participant is configured; running standalone and ignoring it"
        )


def _setup_quorum_member(config: ServerConfig, written: dict[str, str]) -> None:
    for canonical, value in (("initLimit", config.init_limit), ("syncLimit", config.sync_limit)):
        if not value:  # ZooKeeper treats 0 as unset too
            raise ConfigError(
                f"{canonical} is not set (it is required for a replicated ensemble)"
            )
    config.my_id = _read_my_id(Path(config.data_dir) / "myid")
    spec = config.servers.get(config.my_id)
    if spec is None:
        raise ConfigError(
            f"myid {config.my_id} (from {config.data_dir}/myid) has no server.{config.my_id} line"
        )
    if config.extended_types_enabled and config.my_id > 254:
        # The session id's top byte is the server id; 0xFF marks extended types.
        raise ConfigError(
            f"myid {config.my_id} must be <= 254 when extendedTypesEnabled is true"
        )
    if config.peer_type != spec.role:
        config.warnings.append(
            f"peerType={config.peer_type} disagrees with server.{spec.id} ({spec.role}); "
            f"using {spec.role}"
        )
        config.peer_type = spec.role
    _adopt_server_client_address(config, spec, written)


def _read_my_id(path: Path) -> int:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError(
            f"myid file is missing: {path} (required for a replicated ensemble)"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror or e})") from None
    first_line = _LINE_BREAK.split(data.decode("latin-1"), maxsplit=1)[0].strip()
    if not _DECIMAL.fullmatch(first_line):
        raise ConfigError(
            f"expected an integer server id on the first line, got {first_line!r}",
            source=str(path),
        )
    return _parse_int("myid", first_line, bits=64)


def _adopt_server_client_address(
    config: ServerConfig, spec: ServerSpec, written: dict[str, str]
) -> None:
    """A ';client' part on our own server.N line overrides clientPort(Address).

    Both may be given only if they agree: same port, and if clientPortAddress
    names a specific interface, the same host.
    """
    if spec.client_port is None:
        return
    if config.client_port is not None and config.client_port != spec.client_port:
        raise ConfigError(
            f"{config.client_port} differs from the client port {spec.client_port} "
            f"on server.{spec.id}",
            key=_key(written, "clientPort"),
        )
    static_host = config.client_port_address
    if static_host not in (None, *_WILDCARD_HOSTS) and static_host != spec.client_host:
        raise ConfigError(
            f"{static_host} differs from the client address {spec.client_host} "
            f"on server.{spec.id}",
            key=_key(written, "clientPortAddress"),
        )
    config.client_port = spec.client_port
    host = spec.client_host
    config.client_port_address = None if host in _WILDCARD_HOSTS else host


# ---------------------------------------------------------------------------
# The membership: server.N, group.N and weight.N, in zoo.cfg or in the file
# dynamicConfigFile names (QuorumPeerConfig.parseDynamicConfig).
# ---------------------------------------------------------------------------

_MEMBERSHIP_PREFIXES = ("server.", "group.", "weight.")


def _read_membership(config: ServerConfig, static: dict, base_dir) -> None:
    lines = static
    if config.dynamic_config_file is not None:
        if static:
            key = next(iter(static.values()))[0]
            raise ConfigError("must be in the separate dynamic config file "
                              f"({config.dynamic_config_file})", key=key)
        lines, version = _load_dynamic_config(config.dynamic_config_file)
        config.config_version = version
    config.servers, config.groups, config.weights = parse_membership_lines(
        lines, config.multi_address_enabled)


def parse_membership_lines(lines: dict, multi_address: bool = False) -> tuple:
    """(servers, groups, weights) from server.N, group.N and weight.N lines
    ({normalised key: (key as written, value)}); ConfigError names the key."""
    servers, groups, weights = {}, {}, {}
    for norm, (key, value) in lines.items():
        if norm.startswith("server."):
            sid = _server_id(key, norm)
            servers[sid] = parse_server_spec(sid, value, key, multi_address)
        elif norm.startswith("group."):
            gid = _parse_int(key, norm[len("group."):], bits=64)
            members = tuple(_parse_int(key, part.strip(), bits=64)
                            for part in value.split(":"))
            for sid in members:
                for other, ids in groups.items():
                    if sid in ids:
                        raise ConfigError(f"server {sid} is in group {other} too", key=key)
            groups[gid] = members
        else:
            sid = _parse_int(key, norm[len("weight."):], bits=64)
            weights[sid] = _parse_int(key, value.strip(), bits=64)
    servers = dict(sorted(servers.items()))
    if groups or weights:
        for sid, spec in servers.items():
            if not spec.is_observer and not any(sid in ids for ids in groups.values()):
                raise ConfigError(f"server {sid} is a participant in no group.N "
                                  "(hierarchical quorums need every participant in a group)",
                                  key=f"server.{sid}")
    return servers, groups, weights


def _load_dynamic_config(path: Path) -> tuple[dict, int]:
    """The membership lines of a dynamic config file, and its version (the
    hex number after the file name's last '.', as ZooKeeper reads it; 0 if
    there is none)."""
    key = "dynamicConfigFile"
    try:
        text = _decode(Path(path).read_bytes())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", key=key) from None
    lines = {}
    for k, value in iter_properties(text):
        norm = k.strip()
        if norm == "version":
            raise ConfigError(f"{path}: a dynamic config file holds no version line "
                              "(its name gives the version)", key=key)
        if not norm.startswith(_MEMBERSHIP_PREFIXES):
            raise ConfigError(f"{path}: unrecognised parameter {k!r}", key=key)
        lines[norm] = (k, value)
    suffix = Path(path).name.rpartition(".")[2]
    try:
        version = int(suffix, 16) if "." in Path(path).name else 0
    except ValueError:
        version = 0
    return lines, version
