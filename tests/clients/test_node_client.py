"""Client compatibility: node-zookeeper-client (pure JavaScript) against zkpy.

``tests/clients/node/check.js`` runs one scripted session (two clients) and
prints one JSON line per step.  It is run against zkpy and against Apache
ZooKeeper 3.8 (the reference); after normalising what legitimately differs
(absolute zxids, times, session ids) the two transcripts must be equal, and
both must show the expected values checked explicitly below.

node-zookeeper-client matters here because it does not send the ``readOnly``
byte in its ConnectRequest (reference: zookeeper-wire-protocol.md §2.1-2.2):
the server must answer with the short ConnectResponse.  check.js shows that
the client gets a session; test_connect_response_without_readonly_byte checks
the reply's exact shape (the client would ignore a stray trailing byte).

Set-up: the npm package is pinned to an exact version in
``tests/clients/node/package.json`` with a committed ``package-lock.json``.
The first test that needs it runs ``npm ci`` there (``npm install`` if the
lock file is missing) when ``node_modules`` is missing or holds another
version.  Without node/npm, or when the install fails for lack of network,
the tests are skipped -- unless CI=true, where that is a failure.  The
Apache part goes through ``require_apache()`` (same rule).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from zkpy.testing.apache import ApacheZooKeeper, require_apache

NODE_DIR = Path(__file__).resolve().parent / "node"
CHECK_JS = NODE_DIR / "check.js"
PACKAGE = "node-zookeeper-client"
MIN_NODE_MAJOR = 14  # package.json "engines"; check.js needs Buffer.readBigInt64BE (12+)
INSTALL_TIMEOUT = 600  # seconds for npm ci / npm install
CHECK_TIMEOUT = 180  # seconds for one check.js run; a healthy one takes < 2 s
CLOCK_SLACK_MS = 60_000  # server times must lie within the run, give or take this
# Serialises installs by concurrent pytest runs in the same tree.
INSTALL_LOCK = Path(tempfile.gettempdir()) / "zkpy-node-client-npm.lock"

# npm/node error codes and messages that mean "no network / registry unreachable".
NETWORK_ERROR_RE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|"
    r"ENETUNREACH|EHOSTUNREACH|ENETDOWN|socket hang up|network request|"
    r"request to \S+ failed|getaddrinfo|self[- ]signed certificate|"
    r"unable to (get|verify) .*certificate",
    re.IGNORECASE,
)

ZXID_KEYS = ("czxid", "mzxid", "pzxid")
TIME_KEYS = ("ctime", "mtime")

# ZooKeeper error codes (as node-zookeeper-client names them).
NO_NODE = {"code": -101, "name": "NO_NODE"}
NO_AUTH = {"code": -102, "name": "NO_AUTH"}
BAD_VERSION = {"code": -103, "name": "BAD_VERSION"}
NO_CHILDREN_FOR_EPHEMERALS = {"code": -108, "name": "NO_CHILDREN_FOR_EPHEMERALS"}
NODE_EXISTS = {"code": -110, "name": "NODE_EXISTS"}
NOT_EMPTY = {"code": -111, "name": "NOT_EMPTY"}
INVALID_ACL = {"code": -114, "name": "INVALID_ACL"}

# Multi op types in results (jute OpCodes).
OP_ERROR, OP_CREATE, OP_DELETE, OP_SET_DATA, OP_CHECK = -1, 1, 2, 5, 13


# --------------------------------------------------------------- set-up --


def _skip_or_fail(reason: str) -> None:
    """Skip, but fail when CI=true (a missing prerequisite is then an error)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def _pinned_version() -> str:
    package = json.loads((NODE_DIR / "package.json").read_text())
    return package["dependencies"][PACKAGE]


def _installed_version() -> str | None:
    try:
        meta = json.loads((NODE_DIR / "node_modules" / PACKAGE / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("version")


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


@contextlib.contextmanager
def _install_lock():
    with open(INSTALL_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _npm_install(npm: str) -> None:
    """npm ci (or npm install without a lock file) in NODE_DIR."""
    if (NODE_DIR / "package-lock.json").exists():
        cmd = [npm, "ci"]
    else:
        cmd = [npm, "install"]
    cmd += [
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
        # fail in about a minute, not after npm's default of several, offline
        "--fetch-retries=1",
        "--fetch-retry-mintimeout=2000",
        "--fetch-retry-maxtimeout=10000",
        "--fetch-timeout=60000",
    ]
    what = " ".join(cmd[:2]) + f" in {NODE_DIR}"
    try:
        proc = subprocess.run(
            cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        _skip_or_fail(
            f"{what} did not finish within {INSTALL_TIMEOUT} s (no network?): "
            f"{_text(e.stderr)[-500:]}"
        )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        if NETWORK_ERROR_RE.search(output):
            lines = [line for line in output.splitlines() if NETWORK_ERROR_RE.search(line)]
            _skip_or_fail(
                f"{what} failed for lack of network (registry unreachable): "
                + " | ".join(dict.fromkeys(line.strip() for line in lines[:3]))
            )
        pytest.fail(f"{what} failed (exit {proc.returncode}):\n{output}", pytrace=False)
    installed = _installed_version()
    if installed != _pinned_version():
        pytest.fail(
            f"{what} succeeded but installed {PACKAGE} {installed!r}, "
            f"not the pinned {_pinned_version()!r}:\n{output}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def node_check() -> list[str]:
    """The command (without host:port) that runs check.js, with the pinned
    node-zookeeper-client installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        _skip_or_fail(f"{missing} not on PATH: cannot run the node-zookeeper-client check")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if not major or int(major.group(1)) < MIN_NODE_MAJOR:
        _skip_or_fail(f"node {version!r} is too old (need v{MIN_NODE_MAJOR}+)")
    if _installed_version() != _pinned_version():
        with _install_lock():
            if _installed_version() != _pinned_version():  # another run may have done it
                _npm_install(npm)
    return [node, str(CHECK_JS)]


# ------------------------------------------------------------ transcript --


class Transcript:
    """The steps check.js printed, in order, keyed by step name."""

    def __init__(self, server: str, hosts: str, stdout: str, stderr: str, returncode: int,
                 started_ms: int, finished_ms: int) -> None:
        self.server = server
        self.hosts = hosts
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode
        self.started_ms = started_ms
        self.finished_ms = finished_ms
        self.steps: dict[str, dict] = {}
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"check.js printed a non-JSON line: {line!r}\n{self.dump()}")
            name = record.pop("step")
            assert name not in self.steps, f"step {name!r} printed twice\n{self.dump()}"
            self.steps[name] = record

    def __getitem__(self, name: str) -> dict:
        try:
            return self.steps[name]
        except KeyError:
            raise AssertionError(
                f"check.js against {self.server} printed no step {name!r}\n{self.dump()}"
            ) from None

    def dump(self) -> str:
        return (
            f"---- check.js {self.hosts} ({self.server}), exit {self.returncode} ----\n"
            f"{self.stdout}---- stderr ----\n{self.stderr}"
        )

    def failures(self) -> dict[str, str]:
        return {name: rec["failure"] for name, rec in self.steps.items() if "failure" in rec}

    def session_ids(self) -> dict[str, str]:
        return {
            self[f"connect_{c}"].get("session_id"): f"<session {c}>"
            for c in ("a", "b")
            if self[f"connect_{c}"].get("session_id")
        }

    def normalised(self) -> dict[str, dict]:
        """The steps with zxids made relative, times and session ids replaced.

        zxids become "+N": the offset from the smallest zxid in the run (the
        czxid of the test's root node), so the comparison still checks that
        both servers spend zxids the same way (failed writes included) but
        not where the counter started.  Times become "<time>" (checked for
        sanity by check_times).  Session ids become "<session a|b>".
        """
        zxids = []
        _walk(self.steps, lambda k, v: zxids.append(int(v)) if k in ZXID_KEYS else None)
        base = min(zxids) if zxids else 0
        sessions = self.session_ids()

        def fix(key, value):
            if key in ZXID_KEYS:
                return f"+{int(value) - base}"
            if key in TIME_KEYS:
                return "<time>"
            if key in ("session_id", "ephemeralOwner"):
                if value == "0x0":
                    return "0x0"
                return sessions.get(value, f"<unknown session {value}>")
            return value

        return _map(self.steps, fix)

    def check_times(self) -> None:
        """Every ctime/mtime is an epoch-milliseconds value inside the run."""
        low = self.started_ms - CLOCK_SLACK_MS
        high = self.finished_ms + CLOCK_SLACK_MS
        bad = []

        def check(key, value):
            if key in TIME_KEYS and not (isinstance(value, int) and low <= value <= high):
                bad.append((key, value))

        _walk(self.steps, check)
        assert not bad, (
            f"{self.server}: times outside the run [{low}, {high}] ms: {bad}\n{self.dump()}"
        )


def _walk(obj, fn, key=None):
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, fn, k)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, fn, key)
    else:
        fn(key, obj)


def _map(obj, fn, key=None):
    if isinstance(obj, dict):
        return {k: _map(v, fn, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map(v, fn, key) for v in obj]
    return fn(key, obj)


def run_check(command: list[str], server: str, hosts: str) -> Transcript:
    started = int(time.time() * 1000)
    try:
        proc = subprocess.run(
            [*command, hosts], cwd=NODE_DIR, capture_output=True, text=True,
            timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"check.js against {server} ({hosts}) did not finish within {CHECK_TIMEOUT} s\n"
            f"---- stdout ----\n{_text(e.stdout)}---- stderr ----\n{_text(e.stderr)}"
        ) from None
    finished = int(time.time() * 1000)
    return Transcript(server, hosts, proc.stdout, proc.stderr, proc.returncode, started, finished)


@pytest.fixture(scope="module")
def zkpy_transcript(node_check) -> Transcript:
    from zkpy.testing import ZkpyServer

    with ZkpyServer() as srv:
        return run_check(node_check, "zkpy", srv.hosts)


@pytest.fixture(scope="module")
def apache_transcript(node_check) -> Transcript:
    require_apache()
    with ApacheZooKeeper() as zk:
        return run_check(node_check, "Apache ZooKeeper", zk.hosts)


# ------------------------------------------------------------ expectations --

STEP_NAMES = [
    "connect_a", "connect_b",
    "create_root", "create_persistent", "create_ephemeral", "exists_ephemeral_from_b",
    "create_persistent_sequential", "create_persistent_sequential_again",
    "create_ephemeral_sequential", "create_existing", "create_without_parent",
    "create_under_ephemeral",
    "get_data_watch", "set_data_from_b", "data_watch_event", "get_data_after_set",
    "get_data_null", "get_data_missing",
    "exists", "exists_missing_watch", "create_watched_from_b", "exists_watch_event",
    "get_children_watch", "create_child_from_b", "child_watch_event", "get_children_missing",
    "set_data_bad_version", "set_data_missing", "get_data_unchanged",
    "delete", "delete_missing", "delete_not_empty", "delete_bad_version",
    "delete_with_version", "exists_deleted",
    "get_acl", "set_acl_bad_version", "set_acl", "set_acl_without_admin", "get_acl_after_set",
    "set_data_read_only_acl", "get_data_read_only_acl", "get_acl_missing",
    "transaction_ok", "transaction_ok_effect", "transaction_fail",
    "transaction_fail_no_effect", "transaction_fail_no_node",
    "create_creator_acl_without_auth", "add_auth_a", "create_creator_acl_with_auth",
    "get_acl_digest", "get_data_digest_a", "get_data_digest_b_no_auth",
    "get_data_digest_b_wrong_password", "get_data_digest_b_right_password",
    "set_acl_digest_explicit",
    "exists_ephemeral_watch_from_b", "close_a", "ephemeral_deleted_event",
    "exists_ephemeral_after_close", "get_children_after_close", "close_b",
    "event_log",
]

WORLD_ALL = [{"perms": 31, "scheme": "world", "id": "anyone"}]
WORLD_READ = [{"perms": 1, "scheme": "world", "id": "anyone"}]
# base64(sha1("alice:secret")), as DigestAuthenticationProvider computes it
ALICE_DIGEST = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="


def _event(type_: int, name: str, path: str) -> dict:
    return {"type": type_, "name": name, "path": path}


def check_expected(t: Transcript) -> None:
    """Explicit checks of one transcript (the values verified on Apache 3.8)."""
    assert list(t.steps) == STEP_NAMES, f"unexpected step list\n{t.dump()}"
    n = t.normalised()

    def expect(step: str, **fields) -> None:
        rec = n[step]
        for key, want in fields.items():
            got = rec.get(key, "<missing>")
            if isinstance(want, dict) and isinstance(got, dict):
                got = {k: got.get(k, "<missing>") for k in want}
            assert got == want, (
                f"{t.server}: step {step!r} field {key!r}: got {got!r}, expected {want!r}\n"
                f"step: {json.dumps(t[step])}"
            )

    # connect: session without the readOnly byte; 30 s is inside [4 s, 40 s]
    for c in ("a", "b"):
        expect(f"connect_{c}", error=None, state="SYNC_CONNECTED", session_timeout=30000,
               password_length=16, session_id=f"<session {c}>")
    assert t["connect_a"]["session_id"] != t["connect_b"]["session_id"]

    # create: persistent, ephemeral, sequential
    expect("create_root", error=None, path="/nodecheck")
    expect("create_persistent", error=None, path="/nodecheck/p")
    expect("create_ephemeral", error=None, path="/nodecheck/eph")
    expect("exists_ephemeral_from_b", error=None,
           stat={"ephemeralOwner": "<session a>", "dataLength": 1, "version": 0,
                 "numChildren": 0})
    # the suffix counts the children ever created under the parent (p, eph, ...)
    expect("create_persistent_sequential", error=None, path="/nodecheck/seq-0000000002")
    expect("create_persistent_sequential_again", error=None, path="/nodecheck/seq-0000000003")
    expect("create_ephemeral_sequential", error=None, path="/nodecheck/eseq-0000000004")
    expect("create_existing", error=NODE_EXISTS, path=None)
    expect("create_without_parent", error=NO_NODE, path=None)
    expect("create_under_ephemeral", error=NO_CHILDREN_FOR_EPHEMERALS, path=None)

    # getData + watch; setData from the other client fires it
    expect("get_data_watch", error=None, data="hello",
           stat={"version": 0, "dataLength": 5, "ephemeralOwner": "0x0", "aversion": 0})
    expect("set_data_from_b", error=None, stat={"version": 1, "dataLength": 5})
    s = n["set_data_from_b"]["stat"]
    assert s["mzxid"] != s["czxid"] and s["pzxid"] == s["czxid"], s
    expect("data_watch_event", error=None,
           event=_event(3, "NODE_DATA_CHANGED", "/nodecheck/p"))
    expect("get_data_after_set", error=None, data="world", stat=n["set_data_from_b"]["stat"])
    expect("get_data_null", error=None, data=None,
           stat={"dataLength": 0, "ephemeralOwner": "<session a>"})
    expect("get_data_missing", error=NO_NODE, data=None)

    # exists (+ watch on a missing node)
    expect("exists", error=None, stat=n["set_data_from_b"]["stat"])
    expect("exists_missing_watch", error=None, stat=None)
    expect("create_watched_from_b", error=None, path="/nodecheck/later")
    expect("exists_watch_event", error=None,
           event=_event(1, "NODE_CREATED", "/nodecheck/later"))

    # getChildren + watch; a child created by b fires it
    expect("get_children_watch", error=None,
           children=["eph", "eseq-0000000004", "later", "p", "seq-0000000002",
                     "seq-0000000003"],
           stat={"numChildren": 6, "cversion": 6, "dataLength": 4, "version": 0})
    expect("create_child_from_b", error=None, path="/nodecheck/child")
    expect("child_watch_event", error=None,
           event=_event(4, "NODE_CHILDREN_CHANGED", "/nodecheck"))
    expect("get_children_missing", error=NO_NODE, children=None)

    # setData with a bad version
    expect("set_data_bad_version", error=BAD_VERSION, stat=None)
    expect("set_data_missing", error=NO_NODE, stat=None)
    expect("get_data_unchanged", error=None, data="world", stat={"version": 1})

    # delete
    expect("delete", error=None)
    expect("delete_missing", error=NO_NODE)
    expect("delete_not_empty", error=NOT_EMPTY)
    expect("delete_bad_version", error=BAD_VERSION)
    expect("delete_with_version", error=None)
    expect("exists_deleted", error=None, stat=None)

    # getACL / setACL
    expect("get_acl", error=None, acls=WORLD_ALL, stat={"aversion": 0})
    expect("set_acl_bad_version", error=BAD_VERSION, stat=None)
    expect("set_acl", error=None, stat={"aversion": 1, "version": 1})
    expect("set_acl_without_admin", error=NO_AUTH, stat=None)  # ADMIN before version
    expect("get_acl_after_set", error=None, acls=WORLD_READ, stat={"aversion": 1})
    expect("set_data_read_only_acl", error=NO_AUTH, stat=None)
    expect("get_data_read_only_acl", error=None, data="world")
    expect("get_acl_missing", error=NO_NODE, acls=None)

    # transactions
    ok = n["transaction_ok"]
    assert ok["error"] is None, ok
    assert [r["type"] for r in ok["results"]] == [
        OP_CREATE, OP_SET_DATA, OP_CHECK, OP_CREATE, OP_DELETE, OP_CREATE], ok
    assert ok["results"][0]["path"] == "/nodecheck/tx"
    assert ok["results"][1]["stat"]["version"] == 1
    assert ok["results"][3]["path"] == "/nodecheck/tx-tmp"
    # 9 creates under /nodecheck before it (deletes do not count, although they
    # raise the visible cversion: wire-protocol reference §6.7)
    assert ok["results"][5]["path"] == "/nodecheck/tx-seq-0000000009", ok
    expect("transaction_ok_effect", error=None, data="t2", stat={"version": 1})
    # all ops share the multi's zxid
    tx_stat = n["transaction_ok_effect"]["stat"]
    assert tx_stat["czxid"] == tx_stat["mzxid"], tx_stat
    expect("transaction_fail", error=BAD_VERSION, results=[
        {"type": OP_ERROR, "err": 0},
        {"type": OP_ERROR, "err": 0},
        {"type": OP_ERROR, "err": -103},
        {"type": OP_ERROR, "err": -2},  # RuntimeInconsistency after the failure
    ])
    expect("transaction_fail_no_effect", error=None, tx_fail_stat=None, tx_data="t2",
           tx_stat=n["transaction_ok_effect"]["stat"])
    expect("transaction_fail_no_node", error=NO_NODE, results=[
        {"type": OP_ERROR, "err": 0},
        {"type": OP_ERROR, "err": -101},
    ])

    # addAuthInfo digest
    expect("create_creator_acl_without_auth", error=INVALID_ACL, path=None)
    expect("add_auth_a", error=None, state="SYNC_CONNECTED", round_trip_error=None)
    expect("create_creator_acl_with_auth", error=None, path="/nodecheck/secret")
    expect("get_acl_digest", error=None, expected_digest_id=ALICE_DIGEST,
           acls=[{"perms": 31, "scheme": "digest", "id": ALICE_DIGEST}])
    expect("get_data_digest_a", error=None, data="s")
    expect("get_data_digest_b_no_auth", error=NO_AUTH, data=None)
    expect("get_data_digest_b_wrong_password", error=NO_AUTH, data=None, state="SYNC_CONNECTED")
    expect("get_data_digest_b_right_password", error=None, data="s", state="SYNC_CONNECTED")
    # a reader without ADMIN sees digest ids redacted
    expect("set_acl_digest_explicit", error=None, stat={"aversion": 1}, acls=[
        {"perms": 3, "scheme": "digest", "id": "alice:x"},
        {"perms": 1, "scheme": "world", "id": "anyone"},
    ])

    # close: a's ephemerals are gone for b
    expect("exists_ephemeral_watch_from_b", error=None, stat={"ephemeralOwner": "<session a>"})
    expect("close_a", error=None, state="DISCONNECTED")
    expect("ephemeral_deleted_event", error=None,
           event=_event(2, "NODE_DELETED", "/nodecheck/eph"))
    expect("exists_ephemeral_after_close", error=None, stat=None)
    expect("get_children_after_close", error=None,
           children=["p", "secret", "seq-0000000002", "seq-0000000003", "tx",
                     "tx-seq-0000000009"],
           stat={"numChildren": 6})
    expect("close_b", error=None, state="DISCONNECTED")

    # every watch fired exactly once, nothing else arrived
    expect("event_log", error=None, a=[
        {"watcher": "getData p", **_event(3, "NODE_DATA_CHANGED", "/nodecheck/p")},
        {"watcher": "exists later", **_event(1, "NODE_CREATED", "/nodecheck/later")},
        {"watcher": "getChildren root", **_event(4, "NODE_CHILDREN_CHANGED", "/nodecheck")},
    ], b=[
        {"watcher": "exists eph", **_event(2, "NODE_DELETED", "/nodecheck/eph")},
    ])

    t.check_times()


def _assert_finished(t: Transcript) -> None:
    failures = t.failures()
    assert not failures, (
        f"check.js could not finish {len(failures)} step(s) against {t.server}: "
        + "; ".join(f"{k}: {v}" for k, v in failures.items())
        + "\n"
        + t.dump()
    )
    assert t.returncode == 0, f"check.js exited {t.returncode}\n{t.dump()}"


# ------------------------------------------------------------------ tests --


def test_package_pins_exact_version():
    """package.json pins node-zookeeper-client exactly, and the lock file agrees."""
    pinned = _pinned_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"{PACKAGE} is not pinned exactly: {pinned!r}"
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"][PACKAGE] == pinned
    assert lock["packages"][f"node_modules/{PACKAGE}"]["version"] == pinned


def test_node_client_against_zkpy(zkpy_transcript):
    _assert_finished(zkpy_transcript)
    check_expected(zkpy_transcript)


@pytest.mark.apache
def test_node_client_against_apache(apache_transcript):
    """The same expectations hold for the reference server."""
    _assert_finished(apache_transcript)
    check_expected(apache_transcript)


@pytest.mark.apache
def test_node_client_zkpy_matches_apache(zkpy_transcript, apache_transcript):
    """Step for step, zkpy answers node-zookeeper-client as Apache does."""
    _assert_finished(apache_transcript)
    zk, ap = zkpy_transcript.normalised(), apache_transcript.normalised()
    assert list(zk) == list(ap), "zkpy and Apache ran different steps"
    diffs = [
        f"  {name}:\n    zkpy:   {json.dumps(zk[name], sort_keys=True)}\n"
        f"    apache: {json.dumps(ap[name], sort_keys=True)}"
        for name in ap
        if zk[name] != ap[name]
    ]
    assert not diffs, (
        f"{len(diffs)} step(s) differ from Apache ZooKeeper (after normalising "
        "zxids, times and session ids):\n" + "\n".join(diffs)
    )


def _connect_without_readonly(hosts: str) -> bytes:
    """Send a ConnectRequest shaped like node-zookeeper-client's (44 bytes, no
    readOnly byte) and return the ConnectResponse payload."""
    host, port = hosts.rsplit(":", 1)
    body = struct.pack(">iqiqi16s", 0, 0, 30000, 0, 16, b"\0" * 16)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"{hosts} closed the connection; got {buf!r}")
            buf += chunk
        (length,) = struct.unpack(">i", buf[:4])
        return buf[4 : 4 + length]


@pytest.mark.parametrize("server", ["zkpy", "apache"])
def test_connect_response_without_readonly_byte(server):
    """The node client sends no readOnly byte; the server's answer has none
    either: protocolVersion, timeOut, sessionId, passwd = 4+4+8+(4+16) bytes
    (wire-protocol reference section 2.2).  The node client itself ignores
    trailing bytes, so check.js cannot see this."""
    if server == "apache":
        require_apache()
        ctx = ApacheZooKeeper()
    else:
        from zkpy.testing import ZkpyServer

        ctx = ZkpyServer()
    with ctx as srv:
        reply = _connect_without_readonly(srv.hosts)
    assert len(reply) == 36, f"{server}: ConnectResponse is {len(reply)} bytes: {reply.hex()}"
    proto, timeout, session_id, pw_len = struct.unpack(">iiqi", reply[:20])
    assert (proto, timeout, pw_len) == (0, 30000, 16)
    assert session_id != 0
