"""Scripted sessions of the C client's shell, cli_mt, checked on their output.

Every expectation here was first verified against Apache ZooKeeper 3.8; the
``server_hosts`` fixture runs the same checks against zkpy.

How the session is driven
-------------------------
cli_mt (the multi-threaded C client) reads commands from stdin, but most
commands are asynchronous: the main thread sends the request and reads the
next line while the library's completion thread prints the result later.  Only
exists/wexists are synchronous.  Everything the shell says goes to stderr,
except `myid` (stdout).

So the driver talks to it interactively: it waits for "Got a new session id",
then for each command writes the command followed by a marker
``delete /<unique>`` and reads stderr until the marker's completion line
"/<unique>: rc = -101".  Completions and watch callbacks run in order on the
one completion thread, and the next command is only written after the marker
came back, so each command's lines are exactly the lines before its marker.
The timing lines ("time = N msec") are dropped.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from zkpy.testing.apache import CLI_MT

STEP_TIMEOUT = 30.0  # seconds to wait for one command's marker; healthy: ~1 ms
TIME_LINE = re.compile(r"^time = -?\d+ msec$")
# the C library's own log lines (warnings and errors), e.g.
# "2026-11-25 12:38:36,505:11989(0x7f95...):ZOO_ERROR@auth_completion_func@2071: ..."
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+:\d+\(0x[0-9a-f]+\):ZOO_")

# dumpStat(): six lines; times come from ctime_r() and have no fixed zone
STAT_RES = [
    re.compile(r"^\tctime = (?P<ctime>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})$"),
    re.compile(r"^\tczxid=(?P<czxid>[0-9a-f]+)$"),
    re.compile(r"^\tmtime=(?P<mtime>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})$"),
    re.compile(r"^\tmzxid=(?P<mzxid>[0-9a-f]+)$"),
    re.compile(r"^\tversion=(?P<version>[0-9a-f]+)\taversion=(?P<aversion>[0-9a-f]+)$"),
    re.compile(r"^\tephemeralOwner = (?P<ephemeralOwner>[0-9a-f]+)$"),
]


class CliMt:
    """An interactive cli_mt process whose stderr is read line by line."""

    def __init__(self, hosts: str, args: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(CLI_MT), *(args or [hosts])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []  # every stderr line, for failure messages
        self.stdout = b""
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._out_reader = threading.Thread(target=self._read_out, daemon=True)
        self._err_reader.start()
        self._out_reader.start()

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)  # EOF

    def _read_out(self) -> None:
        self.stdout = self.proc.stdout.read()

    def dump(self) -> str:
        return "---- cli_mt stderr ----\n" + "\n".join(self.transcript)

    def read_until(self, done, timeout: float = STEP_TIMEOUT) -> list[str]:
        """Lines up to and including the first one for which done(line) is true."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"cli_mt: no expected line within {timeout} s\n{self.dump()}"
                ) from None
            if line is None:
                raise AssertionError(f"cli_mt: stderr closed early\n{self.dump()}")
            self.transcript.append(line)
            got.append(line)
            if done(line):
                return got

    def send(self, text: str) -> None:
        # One small write: cli_mt's line reader loses a partial line that a
        # read() splits off, and a pipe write under PIPE_BUF is read whole.
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close(self, timeout: float = STEP_TIMEOUT) -> int:
        try:
            if self.proc.poll() is None:
                self.send("quit\n")
            rc = self.proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            rc = self.proc.wait()
        self._err_reader.join(timeout)
        while True:  # keep the rest (e.g. "Quitting...") for the transcript
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.transcript.append(line)
        self._out_reader.join(timeout)
        return rc


@dataclass
class Session:
    header: list[str]
    results: dict[str, list[str]]
    stdout: str
    returncode: int
    transcript: list[str]

    def __getitem__(self, key: str) -> list[str]:
        return self.results[key]

    def dump(self) -> str:
        return "---- cli_mt stderr ----\n" + "\n".join(self.transcript) + "\n---- stdout ----\n" + self.stdout


def clean(lines: list[str]) -> list[str]:
    return [line for line in lines if not TIME_LINE.match(line) and not LOG_LINE.match(line)]


def run_cli_mt(hosts: str, steps: list[tuple[str, str]]) -> Session:
    keys = [k for k, _ in steps]
    assert len(set(keys)) == len(keys), "step keys must be unique"
    run = uuid.uuid4().hex[:12]
    cli = CliMt(hosts)
    try:
        header = cli.read_until(lambda line: line.startswith("Got a new session id: "))
        results = {}
        for i, (key, cmd) in enumerate(steps):
            mark = f"/climt-mark-{run}-{i}"
            cli.send(f"{cmd}\ndelete {mark}\n")
            lines = cli.read_until(lambda line, m=f"{mark}: rc = -101": line == m)
            results[key] = clean(lines[:-1])
    finally:
        rc = cli.close()
    return Session(header, results, cli.stdout.decode("utf-8", "replace"), rc, cli.transcript)


# ------------------------------------------------------------------ parsing


def parse_stat(lines: list[str]) -> dict[str, str]:
    assert len(lines) == len(STAT_RES), f"expected {len(STAT_RES)} stat lines: {lines!r}"
    stat = {}
    for rx, line in zip(STAT_RES, lines):
        m = rx.match(line)
        assert m, f"{line!r} does not match {rx.pattern!r}"
        stat.update(m.groupdict())
    return stat


def creating(path: str, mode: int) -> str:
    return f"Creating [{path}] node (mode: {mode})"


def created(path: str, mode: int = 0, name: str | None = None) -> list[str]:
    return [creating(path, mode), f"[{path}]: rc = 0", f"\tname = {name or path}"]


def event(kind: str, path: str) -> str:
    return f"Watcher {kind} state = CONNECTED_STATE for path {path}"


# C client error codes (zookeeper.h ZOO_ERRORS)
ZNONODE = -101
ZNOCHILDRENFOREPHEMERALS, ZNODEEXISTS, ZNOTEMPTY = -108, -110, -111
ZUNIMPLEMENTED = -6


def build_steps(r: str) -> list[tuple[str, str]]:
    return [
        ("mk_root", f"create {r}"),
        ("create_dup", f"create {r}"),
        ("create_x", f"create {r}/x"),
        ("get_x", f"get {r}/x"),  # also leaves a data watch on x
        ("set_x", f"set {r}/x hello world"),
        ("get_x2", f"get {r}/x"),
        ("set_x_empty", f"set {r}/x "),  # everything after "path " is the data
        ("get_x3", f"get {r}/x"),
        ("get_missing", f"get {r}/missing"),
        ("create_eph", f"create +e {r}/eph"),
        ("create_seq", f"create +s {r}/seq-"),
        ("create_eseq", f"create +es {r}/eseq-"),
        ("create_cont", f"create +c {r}/cont"),
        ("create_eph_child", f"create {r}/eph/c"),
        ("create_ttl", f"create +t=1000 {r}/ttl"),  # TTL nodes are off by default
        ("create2", f"create2 {r}/c2"),
        ("create_no_parent", f"create {r}/nope/c"),
        ("get_eph", f"get {r}/eph"),
        ("ls_root", f"ls {r}"),  # leaves a child watch on r
        ("ls2_root", f"ls2 {r}"),
        ("ls_missing", f"ls {r}/missing"),
        ("exists_x", f"exists {r}/x"),
        ("exists_missing", f"exists {r}/missing"),
        ("wexists_later", f"wexists {r}/later"),
        ("create_later", f"create {r}/later"),
        ("sync", f"sync {r}"),
        ("delete_not_empty", f"delete {r}"),
        ("delete_x", f"delete {r}/x"),
        ("delete_missing", f"delete {r}/missing"),
        ("config", "config"),
        ("myid", "myid"),
    ]


@pytest.fixture(scope="module")
def mt(server_hosts) -> tuple[str, Session]:
    root = f"/climt-{uuid.uuid4().hex[:12]}"
    return root, run_cli_mt(server_hosts, build_steps(root))


def check(s: Session, key: str, expected: list[str]) -> None:
    assert s[key] == expected, f"{key}: {s[key]!r}\n{s.dump()}"


def session_id(s: Session) -> int:
    m = re.fullmatch(r"Got a new session id: 0x([0-9a-f]+)", s.header[-1])
    assert m, s.dump()
    return int(m.group(1), 16)


# ------------------------------------------------------------------ tests


def test_connect(mt):
    _, s = mt
    assert "Watcher SESSION_EVENT state = CONNECTED_STATE" in s.header, s.dump()
    assert session_id(s) != 0, s.dump()


def test_create(mt):
    r, s = mt
    check(s, "mk_root", created(r))
    check(s, "create_x", created(f"{r}/x"))


def test_create_errors(mt):
    r, s = mt
    check(s, "create_dup", [creating(r, 0), f"[{r}]: rc = {ZNODEEXISTS}"])
    check(s, "create_no_parent", [creating(f"{r}/nope/c", 0), f"[{r}/nope/c]: rc = {ZNONODE}"])
    check(
        s,
        "create_eph_child",
        [creating(f"{r}/eph/c", 0), f"[{r}/eph/c]: rc = {ZNOCHILDRENFOREPHEMERALS}"],
    )
    # without extendedTypesEnabled a TTL create is "unimplemented"
    check(s, "create_ttl", [creating(f"{r}/ttl", 5), f"[{r}/ttl]: rc = {ZUNIMPLEMENTED}"])


def test_create_modes_and_sequence(mt):
    r, s = mt
    # modes: 1 ephemeral, 2 sequential, 3 ephemeral sequential, 4 container;
    # x and eph were created before, so the parent's cversion is 2
    check(s, "create_eph", created(f"{r}/eph", 1))
    check(s, "create_seq", created(f"{r}/seq-", 2, f"{r}/seq-0000000002"))
    check(s, "create_eseq", created(f"{r}/eseq-", 3, f"{r}/eseq-0000000003"))
    check(s, "create_cont", created(f"{r}/cont", 4))


def test_create2_returns_stat(mt):
    r, s = mt
    lines = s["create2"]
    assert lines[:3] == created(f"{r}/c2"), s.dump()
    st = parse_stat(lines[3:])
    assert st["czxid"] == st["mzxid"] and st["ctime"] == st["mtime"], lines
    assert (st["version"], st["aversion"], st["ephemeralOwner"]) == ("0", "0", "0"), lines


def test_get(mt):
    r, s = mt
    lines = s["get_x"]
    # every cli_mt create writes the 3 bytes "new"
    assert lines[:4] == [f"{r}/x: rc = 0", " value_len = 3", "new", "Stat:"], s.dump()
    st = parse_stat(lines[4:])
    assert (st["version"], st["aversion"], st["ephemeralOwner"]) == ("0", "0", "0"), lines
    assert st["czxid"] == st["mzxid"], lines


def test_get_missing(mt):
    r, s = mt
    check(s, "get_missing", [f"{r}/missing: rc = {ZNONODE}", "", "Stat:", "null"])


def test_set_fires_data_watch_and_returns_stat(mt):
    r, s = mt
    created_stat = parse_stat(s["get_x"][4:])
    lines = s["set_x"]
    # the watch from `get` fires before the reply to the set arrives
    assert lines[:2] == [event("CHANGED_EVENT", f"{r}/x"), f"{r}/x: rc = 0 Stat:"], s.dump()
    st = parse_stat(lines[2:])
    assert st["version"] == "1" and st["czxid"] == created_stat["czxid"], lines
    assert int(st["mzxid"], 16) > int(st["czxid"], 16), lines

    lines = s["get_x2"]
    assert lines[:4] == [f"{r}/x: rc = 0", " value_len = 11", "hello world", "Stat:"], s.dump()
    assert parse_stat(lines[4:])["mzxid"] == st["mzxid"], lines

    lines = s["set_x_empty"]
    assert lines[:2] == [event("CHANGED_EVENT", f"{r}/x"), f"{r}/x: rc = 0 Stat:"], s.dump()
    assert parse_stat(lines[2:])["version"] == "2", lines
    lines = s["get_x3"]
    assert lines[:4] == [f"{r}/x: rc = 0", " value_len = 0", "", "Stat:"], s.dump()


def test_ephemeral_owner_is_session(mt):
    r, s = mt
    lines = s["get_eph"]
    assert lines[:4] == [f"{r}/eph: rc = 0", " value_len = 3", "new", "Stat:"], s.dump()
    assert int(parse_stat(lines[4:])["ephemeralOwner"], 16) == session_id(s), s.dump()


CHILDREN = {"x", "eph", "seq-0000000002", "eseq-0000000003", "cont", "c2"}


def test_ls(mt):
    r, s = mt
    lines = s["ls_root"]
    assert lines[0] == f"{r}: rc = 0", s.dump()
    # cli_mt prints children in the server's order: compare as a set
    assert all(line.startswith("\t") for line in lines[1:]), s.dump()
    assert sorted(line[1:] for line in lines[1:]) == sorted(CHILDREN), s.dump()
    check(s, "ls_missing", [f"{r}/missing: rc = {ZNONODE}"])


def test_ls2(mt):
    r, s = mt
    lines = s["ls2_root"]
    assert lines[0] == f"{r}: rc = 0", s.dump()
    n = len(CHILDREN)
    assert sorted(line[1:] for line in lines[1 : 1 + n]) == sorted(CHILDREN), s.dump()
    st = parse_stat(lines[1 + n :])
    assert (st["version"], st["ephemeralOwner"]) == ("0", "0"), lines
    child = parse_stat(s["create2"][3:])  # the stat printed is the parent's
    assert int(st["czxid"], 16) < int(child["czxid"], 16), lines


def test_exists(mt):
    r, s = mt
    # exists is synchronous in cli_mt: silent on success, "Error <rc>" otherwise
    check(s, "exists_x", [])
    check(s, "exists_missing", [f"Error {ZNONODE} for {r}/missing"])


def test_exists_watch_on_missing_node(mt):
    r, s = mt
    check(s, "wexists_later", [f"Error {ZNONODE} for {r}/later"])
    # NodeCreated for the exists watch, then NodeChildrenChanged for the
    # child watch `ls` left on the parent, then the create's own reply
    check(
        s,
        "create_later",
        [
            creating(f"{r}/later", 0),
            event("CREATED_EVENT", f"{r}/later"),
            event("CHILD_EVENT", r),
            f"[{r}/later]: rc = 0",
            f"\tname = {r}/later",
        ],
    )


def test_sync(mt):
    r, s = mt
    check(s, "sync", [f"[{r}]: rc = 0", f"\tname = {r}"])


def test_delete(mt):
    r, s = mt
    check(s, "delete_not_empty", [f"{r}: rc = {ZNOTEMPTY}"])
    # x still carries the data watch of the last get
    check(s, "delete_x", [event("DELETED_EVENT", f"{r}/x"), f"{r}/x: rc = 0"])
    check(s, "delete_missing", [f"{r}/missing: rc = {ZNONODE}"])


def test_config_node(mt):
    _, s = mt
    lines = s["config"]
    assert lines[:4] == ["/zookeeper/config: rc = 0", " value_len = 0", "", "Stat:"], s.dump()
    st = parse_stat(lines[4:])
    # a synthetic node: zero zxids and times, and aclVersion -1
    assert (st["czxid"], st["mzxid"], st["version"], st["aversion"]) == ("0", "0", "0", "ffffffff"), lines


def test_myid_and_quit(mt):
    _, s = mt
    check(s, "myid", [])
    assert s.stdout.splitlines() == [f"session Id = {session_id(s):x}"], s.dump()
    assert clean(s.transcript)[-1] == "Quitting...", s.dump()
    assert s.returncode == 0, s.dump()


def test_batch_mode(server_hosts):
    """`cli_mt -h HOST -c CMD` runs one command and exits when it completes."""
    cli = CliMt(server_hosts, ["-h", server_hosts, "-c", "ls /zookeeper"])
    rc = cli.close()
    lines = clean(cli.transcript)
    assert rc == 0, cli.dump()
    assert lines[0] == "Batch mode: ls /zookeeper", cli.dump()
    i = lines.index("/zookeeper: rc = 0")
    assert sorted(lines[i + 1 :]) == ["\tconfig", "\tquota"], cli.dump()
