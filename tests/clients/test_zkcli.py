"""Scripted sessions of the Java CLI, zkCli.sh, checked on their output.

Every expectation here was first verified against Apache ZooKeeper 3.8; the
``server_hosts`` fixture runs the same checks against zkpy.

How the session is driven
-------------------------
zkCli.sh without a terminal reads commands from stdin line by line (JLine is
not on Debian's classpath) and runs them one at a time, so one JVM runs the
whole script.  The CLI prints results on stdout (get, stat, ls, ...) and
"Created ..." and errors on stderr.  Merging the two streams is not safe
(they are separately buffered, so a watch notification on stdout can land in
the middle of a stderr line), so each command is followed by two local marker
commands that need no server:

* ``printwatches``  -> stdout "printwatches is on"
* ``redo 999999999`` -> stderr "Command index out of range"

Splitting each stream at its markers gives every command its own stdout and
stderr lines.  Watch notifications are printed by the client's event thread at
any moment, as one atomic "\\nWATCHER::\\n" and one "\\nWatchedEvent ...\\n"
write; they are cut out of the raw stdout (which restores any line they split)
and collected, in arrival order, into ``Transcript.events``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import uuid
from dataclasses import dataclass, field

import pytest

from zkpy.testing.apache import ZKCLI

OUT_MARK_CMD = "printwatches"
OUT_MARK = "printwatches is on"
ERR_MARK_CMD = "redo 999999999"
ERR_MARK = "Command index out of range"

WATCHER_RE = re.compile(r"\nWATCHER::\n")
EVENT_RE = re.compile(r"\nWatchedEvent state:(\w+) type:(\w+) path:([^\n]*)\n")
STAT_LINE_RE = re.compile(r"^(\w+) = (.*)$")
STAT_FIELDS = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
]
SESSION_TIMEOUT = 120  # seconds for a whole zkCli run; a healthy one takes ~1 s


@dataclass
class Result:
    """What one command printed (markers, watch events and JVM noise removed)."""

    cmd: str
    out: list[str]
    err: list[str]

    def __str__(self) -> str:
        return f"{self.cmd!r}: out={self.out!r} err={self.err!r}"


@dataclass
class Transcript:
    header_out: list[str]
    header_err: list[str]
    results: dict[str, Result]
    events: list[tuple[str, str, str]]  # (state, type, path) in arrival order
    raw_out: str = field(repr=False)
    raw_err: str = field(repr=False)
    returncode: int = 0

    def __getitem__(self, key: str) -> Result:
        return self.results[key]

    def dump(self) -> str:
        return (
            "---- zkCli stdout ----\n" + self.raw_out + "\n---- zkCli stderr ----\n" + self.raw_err
        )


def _split(lines: list[str], mark: str, n: int, what: str, raw: str) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for line in lines:
        if line == mark:
            segments.append([])
        else:
            segments[-1].append(line)
    if len(segments) < n + 1:
        raise AssertionError(
            f"zkCli {what}: found {len(segments) - 1} of {n} markers; the session "
            f"stopped early.\n{raw}"
        )
    return segments


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def run_zkcli(hosts: str, steps: list[tuple[str, str]], timeout: float = SESSION_TIMEOUT,
              jvm_flags: list[str] = ()) -> Transcript:
    """Run ``steps`` ([(key, command)], keys unique) in one zkCli.sh session;
    ``jvm_flags`` go to its JVM (zkCli.sh's CLIENT_JVMFLAGS)."""
    keys = [k for k, _ in steps]
    assert len(set(keys)) == len(keys), "step keys must be unique"
    script_lines = [OUT_MARK_CMD, ERR_MARK_CMD]  # closes the header segment
    for _, cmd in steps:
        script_lines += [cmd, OUT_MARK_CMD, ERR_MARK_CMD]
    script_lines.append("quit")
    try:
        proc = subprocess.run(
            [str(ZKCLI), "-server", hosts],
            input="\n".join(script_lines) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "CLIENT_JVMFLAGS": " ".join(jvm_flags)} if jvm_flags else None,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"zkCli.sh did not finish within {timeout} s\n"
            f"---- stdout ----\n{_text(e.stdout)}\n---- stderr ----\n{_text(e.stderr)}"
        ) from None
    raw_out, raw_err = proc.stdout, proc.stderr

    events = [m.groups() for m in EVENT_RE.finditer(raw_out)]
    # Each block is one contiguous write that starts with its own "\n", so
    # cutting it out exactly restores the output it interrupted, even mid-line.
    clean = EVENT_RE.sub("", WATCHER_RE.sub("", raw_out))
    out_lines = clean.split("\n")
    err_lines = [line for line in raw_err.split("\n") if not line.startswith("SLF4J:")]

    dump = f"---- stdout ----\n{raw_out}\n---- stderr ----\n{raw_err}"
    out_segs = _split(out_lines, OUT_MARK, len(steps), "stdout", dump)
    err_segs = _split(err_lines, ERR_MARK, len(steps), "stderr", dump)

    results = {}
    for i, (key, cmd) in enumerate(steps, start=1):
        results[key] = Result(cmd, out_segs[i], err_segs[i])
    return Transcript(
        header_out=out_segs[0],
        header_err=err_segs[0],
        results=results,
        events=events,
        raw_out=raw_out,
        raw_err=raw_err,
        returncode=proc.returncode,
    )


# ------------------------------------------------------------------ parsing


def parse_stat(lines: list[str]) -> dict[str, str]:
    """The 11 "name = value" lines StatPrinter writes, in ZooKeeper's order."""
    assert len(lines) == len(STAT_FIELDS), f"expected {len(STAT_FIELDS)} stat lines: {lines!r}"
    stat = {}
    for line in lines:
        m = STAT_LINE_RE.match(line)
        assert m, f"not a stat line: {line!r}"
        stat[m.group(1)] = m.group(2)
    assert list(stat) == STAT_FIELDS, f"stat fields out of order: {lines!r}"
    for name in ("cZxid", "mZxid", "pZxid", "ephemeralOwner"):
        assert re.fullmatch(r"0x[0-9a-f]+", stat[name]), f"{name} = {stat[name]!r}"
    for name in ("cversion", "dataVersion", "aclVersion", "dataLength", "numChildren"):
        assert re.fullmatch(r"-?\d+", stat[name]), f"{name} = {stat[name]!r}"
    for name in ("ctime", "mtime"):  # Date.toString(): "Wed Nov 25 12:29:51 UTC 2026"
        assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \d{4}", stat[name]), stat[name]
    return stat


def zxid(stat: dict[str, str], name: str) -> int:
    return int(stat[name], 16)


def parse_list(line: str) -> list[str]:
    """ "[a, b, c]" (ls, getEphemerals) -> ["a", "b", "c"]."""
    assert line.startswith("[") and line.endswith("]"), f"not a list: {line!r}"
    inner = line[1:-1]
    return inner.split(", ") if inner else []


def digest(user: str, password: str) -> str:
    """The id that the digest scheme stores: user:base64(sha1(user:password))."""
    sha = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


def no_node(path: str) -> list[str]:
    return [f"Node does not exist: {path}"]


def no_auth(path: str) -> list[str]:
    return [f"Insufficient permission : {path}"]


def bad_version(path: str) -> list[str]:
    return [f"version No is not valid : {path}"]


# ------------------------------------------------------------------ the script


def build_steps(root: str, hosts: str) -> list[tuple[str, str]]:
    """One zkCli session exercising most commands; keys name each step.

    Sections use their own subtrees under ``root``.  The watch section comes
    early so that every notification it causes has been printed long before
    the session ends.
    """
    b, k, a = f"{root}/basic", f"{root}/kinds", f"{root}/acl"
    w, pw, ow = f"{root}/w", f"{root}/pw", f"{root}/ow"
    steps = [
        ("mk_root", f"create {root}"),
        # -- basic create / get / set / stat, data forms, versions
        ("mk_basic", f"create {b}"),
        ("create_plain", f"create {b}/plain data1"),
        ("get_plain", f"get {b}/plain"),
        ("create_nodata", f"create {b}/nodata"),
        ("get_nodata", f"get {b}/nodata"),
        ("create_empty", f'create {b}/empty ""'),
        ("get_empty", f"get {b}/empty"),
        ("create_spaced", f'create {b}/spaced "hello world"'),
        ("get_spaced", f"get {b}/spaced"),
        ("get_s_plain", f"get -s {b}/plain"),
        ("set_plain", f"set {b}/plain data22"),
        ("get_plain_2", f"get {b}/plain"),
        ("set_s_plain", f"set -s {b}/plain data333"),
        ("set_bad_version", f"set -v 1 {b}/plain nope"),
        ("set_good_version", f"set -v 2 {b}/plain v3"),
        ("stat_plain", f"stat {b}/plain"),
        ("get_plain_3", f"get {b}/plain"),
        ("stat_spaced", f"stat {b}/spaced"),
        ("stat_basic", f"stat {b}"),
        ("create_dup", f"create {b}/plain again"),
        ("create_no_parent", f"create {b}/nope/child"),
        ("get_missing", f"get {b}/missing"),
        ("get_s_missing", f"get -s {b}/missing"),
        ("stat_missing", f"stat {b}/missing"),
        ("set_missing", f"set {b}/missing x"),
        ("ls_missing", f"ls {b}/missing"),
        ("delete_missing", f"delete {b}/missing"),
        ("deleteall_missing", f"deleteall {b}/missing"),
        ("getAcl_missing", f"getAcl {b}/missing"),
        ("setAcl_missing", f"setAcl {b}/missing world:anyone:r"),
        ("count_missing", f"getAllChildrenNumber {b}/missing"),
        ("ls_zookeeper", "ls /zookeeper"),
        ("config", "config"),
        # -- watches: persistent recursive, persistent, one-shot
        ("mk_w", f"create {w}"),
        ("addWatch_recursive", f"addWatch -m PERSISTENT_RECURSIVE {w}"),
        ("w_create_a", f"create {w}/a 1"),
        ("w_set_a", f"set {w}/a 2"),
        ("w_create_ab", f"create {w}/a/b 1"),
        ("w_delete_ab", f"delete {w}/a/b"),
        ("w_set_w", f"set {w} x"),
        ("mk_pw", f"create {pw}"),
        ("addWatch_persistent", f"addWatch -m PERSISTENT {pw}"),
        ("pw_create_c", f"create {pw}/c"),
        ("pw_set_1", f"set {pw} 1"),
        ("pw_set_2", f"set {pw} 2"),
        ("pw_set_child", f"set {pw}/c 1"),  # PERSISTENT is not recursive
        ("removewatches_pw", f"removewatches {pw}"),
        ("pw_set_3", f"set {pw} 3"),  # no watch any more
        ("removewatches_pw_again", f"removewatches {pw}"),
        ("mk_ow", f"create {ow} x"),
        ("get_w", f"get -w {ow}"),
        ("ls_w", f"ls -w {ow}"),
        ("stat_w", f"stat -w {ow}"),
        ("ow_set_y", f"set {ow} y"),  # one event for the get -w and stat -w watches
        ("ow_set_z", f"set {ow} z"),  # one-shot: no event
        ("ow_create_c", f"create {ow}/c"),
        ("stat_w_missing", f"stat -w {ow}/later"),  # exists watch on a missing node
        ("ow_create_later", f"create {ow}/later"),
        # -- node kinds, sequence numbers, ls variants, delete / deleteall
        ("mk_kinds", f"create {k}"),
        ("create_eph", f"create -e {k}/eph edata"),
        ("create_seq1", f"create -s {k}/seq- s1"),
        ("create_seq2", f"create -s {k}/seq- s2"),
        ("create_eseq", f"create -e -s {k}/eseq- x"),
        ("create_cont", f"create -c {k}/cont"),
        ("create_cont_child", f"create {k}/cont/child x"),
        ("create_eph_child", f"create {k}/eph/child"),
        ("stat_eph", f"stat {k}/eph"),
        ("stat_eseq", f"stat {k}/eseq-0000000003"),
        ("stat_cont", f"stat {k}/cont"),
        ("get_seq1", f"get {k}/seq-0000000001"),
        ("ls_kinds", f"ls {k}"),
        ("ls_s_kinds", f"ls -s {k}"),
        ("ls_R_kinds", f"ls -R {k}"),
        ("ephemerals_kinds", f"getEphemerals {k}"),
        ("ephemerals_missing", f"getEphemerals {k}/missing"),
        ("count_kinds", f"getAllChildrenNumber {k}"),
        ("delete_not_empty", f"delete {k}/cont"),
        ("delete_bad_version", f"delete -v 5 {k}/seq-0000000001"),
        ("delete_good_version", f"delete -v 0 {k}/seq-0000000001"),
        ("delete_again", f"delete {k}/seq-0000000001"),
        ("deleteall_cont", f"deleteall {k}/cont"),
        ("ls_kinds_after", f"ls {k}"),
        ("stat_kinds_after", f"stat {k}"),
        ("create_seq3", f"create -s {k}/seq- s3"),
        ("stat_kinds_final", f"stat {k}"),
        # -- ACLs and auth
        ("mk_acl", f"create {a}"),
        ("getAcl_default", f"getAcl {a}"),
        ("getAcl_s", f"getAcl -s {a}"),
        ("create_ro", f"create {a}/ro x world:anyone:r"),
        ("getAcl_ro", f"getAcl {a}/ro"),
        ("get_ro", f"get {a}/ro"),
        ("set_ro", f"set {a}/ro y"),
        ("create_under_ro", f"create {a}/ro/child"),
        ("setAcl_ro", f"setAcl {a}/ro world:anyone:cdrwa"),
        ("create_rw", f"create {a}/rw x"),
        ("setAcl_bad_version", f"setAcl -v 3 {a}/rw world:anyone:r"),
        ("setAcl_s", f"setAcl -s {a}/rw world:anyone:cdr"),
        ("getAcl_rw", f"getAcl {a}/rw"),
        ("setAcl_bad_scheme", f"setAcl {a}/rw nosuch:foo:cdrwa"),
        ("setAcl_bad_digest", f"setAcl {a}/rw digest:alice:cdrwa"),
        ("create_multi", f"create {a}/multi x world:anyone:r,ip:127.0.0.1:cdrwa"),
        ("getAcl_multi", f"getAcl {a}/multi"),
        ("create_ipdeny", f"create {a}/ipdeny x ip:10.0.0.1:cdrwa"),
        ("get_ipdeny", f"get {a}/ipdeny"),
        ("getAcl_ipdeny", f"getAcl {a}/ipdeny"),
        ("create_ipok", f"create {a}/ipok x ip:127.0.0.1:cdrwa"),
        ("get_ipok", f"get {a}/ipok"),
        ("create_sec", f"create {a}/sec x"),
        ("setAcl_auth_unauthenticated", f"setAcl {a}/sec auth::cdrwa"),
        ("create_auth_unauthenticated", f"create {a}/sec2 x auth::cdrwa"),
        ("whoami_anonymous", "whoami"),
        ("addauth_alice", "addauth digest alice:secret"),
        ("whoami_alice", "whoami"),
        ("setAcl_auth", f"setAcl {a}/sec auth::cdrwa"),
        ("getAcl_sec", f"getAcl {a}/sec"),
        ("get_sec", f"get {a}/sec"),
        ("create_bob", f"create {a}/bob x digest:{digest('bob', 'pw')}:cdrwa"),
        ("get_bob", f"get {a}/bob"),
        ("getAcl_bob", f"getAcl {a}/bob"),
        ("delete_bob", f"delete {a}/bob"),  # needs only DELETE on the parent
        ("delete_ipdeny", f"delete {a}/ipdeny"),
        # -- sync
        ("sync", f"sync {root}"),
        # -- a new session (the old one is closed): ephemerals gone, no auth
        ("connect", f"connect {hosts}"),
        ("ls_kinds_new_session", f"ls {k}"),
        ("stat_kinds_new_session", f"stat {k}"),
        ("ephemerals_new_session", f"getEphemerals {k}"),
        ("whoami_new_session", "whoami"),
        ("get_sec_new_session", f"get {a}/sec"),
        ("addauth_alice_again", "addauth digest alice:secret"),
        ("get_sec_reauth", f"get {a}/sec"),
        # -- cleanup
        ("deleteall_root", f"deleteall {root}"),
        ("ls_root_gone", f"ls {root}"),
    ]
    return steps


@pytest.fixture(scope="module")
def cli(server_hosts) -> tuple[str, Transcript]:
    """(root path, transcript) of the scripted session on this server."""
    root = f"/zkcli-{uuid.uuid4().hex[:12]}"
    return root, run_zkcli(server_hosts, build_steps(root, server_hosts))


def check(t: Transcript, key: str, out=None, err=None) -> Result:
    """Assert a step's exact stdout and/or stderr lines, showing the transcript on failure."""
    r = t[key]
    if out is not None:
        assert r.out == out, f"{r}\n{t.dump()}"
    if err is not None:
        assert r.err == err, f"{r}\n{t.dump()}"
    return r


# ------------------------------------------------------------------ tests


def test_session_header(cli):
    _, t = cli
    assert "Welcome to ZooKeeper!" in t.header_out, t.dump()
    assert t.events[0] == ("SyncConnected", "None", "null"), t.dump()


def test_create_and_get(cli):
    root, t = cli
    b = f"{root}/basic"
    check(t, "mk_root", out=[], err=[f"Created {root}"])
    check(t, "create_plain", out=[], err=[f"Created {b}/plain"])
    check(t, "get_plain", out=["data1"], err=[])


def test_get_data_forms(cli):
    """Null data prints "null", empty data an empty line; quoting keeps spaces."""
    root, t = cli
    b = f"{root}/basic"
    check(t, "create_nodata", err=[f"Created {b}/nodata"])
    check(t, "get_nodata", out=["null"], err=[])
    check(t, "create_empty", err=[f"Created {b}/empty"])
    check(t, "get_empty", out=[""], err=[])
    check(t, "get_spaced", out=["hello world"], err=[])


def test_get_with_stat(cli):
    _, t = cli
    r = check(t, "get_s_plain", err=[])
    assert r.out[0] == "data1", r
    st = parse_stat(r.out[1:])
    assert st["cZxid"] == st["mZxid"] == st["pZxid"], r
    assert st["ctime"] == st["mtime"], r
    assert (st["cversion"], st["dataVersion"], st["aclVersion"]) == ("0", "0", "0"), r
    assert (st["ephemeralOwner"], st["dataLength"], st["numChildren"]) == ("0x0", "5", "0"), r


def test_set_and_versions(cli):
    root, t = cli
    p = f"{root}/basic/plain"
    check(t, "set_plain", out=[], err=[])
    check(t, "get_plain_2", out=["data22"])
    r = check(t, "set_s_plain", err=[])
    st = parse_stat(r.out)
    assert (st["dataVersion"], st["dataLength"], st["cversion"]) == ("2", "7", "0"), r
    assert zxid(st, "mZxid") > zxid(st, "cZxid"), r
    assert st["pZxid"] == st["cZxid"], r
    created = parse_stat(t["get_s_plain"].out[1:])
    assert st["cZxid"] == created["cZxid"] and st["ctime"] == created["ctime"], r
    check(t, "set_bad_version", out=[], err=bad_version(p))
    check(t, "set_good_version", out=[], err=[])
    st = parse_stat(check(t, "stat_plain", err=[]).out)
    assert (st["dataVersion"], st["dataLength"]) == ("3", "2"), t["stat_plain"]
    check(t, "get_plain_3", out=["v3"])


def test_parent_stat_tracks_children(cli):
    _, t = cli
    parent = parse_stat(check(t, "stat_basic", err=[]).out)
    last_child = parse_stat(check(t, "stat_spaced", err=[]).out)
    assert parent["numChildren"] == "4" and parent["cversion"] == "4", t["stat_basic"]
    assert parent["pZxid"] == last_child["cZxid"], (t["stat_basic"], t["stat_spaced"])
    assert parent["dataVersion"] == "0" and parent["mZxid"] == parent["cZxid"], t["stat_basic"]


def test_create_errors(cli):
    root, t = cli
    b = f"{root}/basic"
    check(t, "create_dup", out=[], err=[f"Node already exists: {b}/plain"])
    check(t, "create_no_parent", out=[], err=no_node(f"{b}/nope/child"))
    k = f"{root}/kinds"
    check(t, "create_eph_child", out=[], err=[f"Ephemerals cannot have children: {k}/eph/child"])


@pytest.mark.parametrize(
    "key",
    [
        "get_missing",
        "get_s_missing",
        "stat_missing",
        "set_missing",
        "ls_missing",
        "delete_missing",
        "deleteall_missing",
        "getAcl_missing",
        "setAcl_missing",
        "count_missing",
    ],
)
def test_missing_node(cli, key):
    root, t = cli
    check(t, key, out=[], err=no_node(f"{root}/basic/missing"))


def test_system_nodes(cli):
    _, t = cli
    check(t, "ls_zookeeper", out=["[config, quota]"], err=[])
    # standalone: /zookeeper/config exists and holds no data
    check(t, "config", out=[""], err=[])


def test_sequential_and_ephemeral(cli):
    root, t = cli
    k = f"{root}/kinds"
    # the sequence number is the parent's cversion, ten digits, zero-padded
    check(t, "create_eph", out=[], err=[f"Created {k}/eph"])
    check(t, "create_seq1", out=[], err=[f"Created {k}/seq-0000000001"])
    check(t, "create_seq2", out=[], err=[f"Created {k}/seq-0000000002"])
    check(t, "create_eseq", out=[], err=[f"Created {k}/eseq-0000000003"])
    check(t, "get_seq1", out=["s1"], err=[])
    eph = parse_stat(check(t, "stat_eph", err=[]).out)
    eseq = parse_stat(check(t, "stat_eseq", err=[]).out)
    assert eph["ephemeralOwner"] != "0x0", t["stat_eph"]
    assert eseq["ephemeralOwner"] == eph["ephemeralOwner"], (t["stat_eph"], t["stat_eseq"])
    assert eph["dataLength"] == "5", t["stat_eph"]


def test_container(cli):
    root, t = cli
    k = f"{root}/kinds"
    check(t, "create_cont", out=[], err=[f"Created {k}/cont"])
    check(t, "create_cont_child", out=[], err=[f"Created {k}/cont/child"])
    st = parse_stat(check(t, "stat_cont", err=[]).out)
    # a container is no ephemeral: clients see ephemeralOwner 0
    assert st["ephemeralOwner"] == "0x0" and st["numChildren"] == "1", t["stat_cont"]


def test_ls_variants(cli):
    root, t = cli
    k = f"{root}/kinds"
    children = ["cont", "eph", "eseq-0000000003", "seq-0000000001", "seq-0000000002"]
    check(t, "ls_kinds", out=["[" + ", ".join(children) + "]"], err=[])
    r = check(t, "ls_s_kinds", err=[])
    assert parse_list(r.out[0]) == children, r
    st = parse_stat(r.out[1:])
    assert (st["numChildren"], st["cversion"], st["dataLength"]) == ("5", "5", "0"), r
    r = check(t, "ls_R_kinds", err=[])
    assert r.out[0] == k, r
    expected = {k, f"{k}/cont/child"} | {f"{k}/{c}" for c in children}
    assert sorted(r.out) == sorted(expected), r


def test_get_ephemerals(cli):
    root, t = cli
    k = f"{root}/kinds"
    r = check(t, "ephemerals_kinds", err=[])
    assert len(r.out) == 1, r
    # the order comes from a server-side set: compare as a set
    assert sorted(parse_list(r.out[0])) == [f"{k}/eph", f"{k}/eseq-0000000003"], r
    check(t, "ephemerals_missing", out=["[]"], err=[])


def test_get_all_children_number(cli):
    _, t = cli
    check(t, "count_kinds", out=["6"], err=[])  # counts grandchildren too


def test_delete_and_deleteall(cli):
    root, t = cli
    k = f"{root}/kinds"
    check(t, "delete_not_empty", out=[], err=[f"Node not empty: {k}/cont"])
    check(t, "delete_bad_version", out=[], err=bad_version(f"{k}/seq-0000000001"))
    check(t, "delete_good_version", out=[], err=[])
    check(t, "delete_again", out=[], err=no_node(f"{k}/seq-0000000001"))
    check(t, "deleteall_cont", out=[], err=[])
    check(t, "ls_kinds_after", out=["[eph, eseq-0000000003, seq-0000000002]"], err=[])


def test_cversion_and_sequence_numbers_after_deletes(cli):
    """Deletes count in the cversion clients see, but not in sequence numbers.

    ZooKeeper stores the number of creates under a parent and reports
    cversion = 2 * creates - numChildren (DataNode.copyStat); the sequence
    suffix of a new child is the stored create count.
    """
    root, t = cli
    k = f"{root}/kinds"
    # 5 creates, 2 deletes: the cversion shows 7 changes
    st = parse_stat(check(t, "stat_kinds_after", err=[]).out)
    assert (st["cversion"], st["numChildren"]) == ("7", "3"), t["stat_kinds_after"]
    # ... but the next sequence number is 5, not 7
    check(t, "create_seq3", out=[], err=[f"Created {k}/seq-0000000005"])
    st = parse_stat(check(t, "stat_kinds_final", err=[]).out)
    assert (st["cversion"], st["numChildren"]) == ("8", "4"), t["stat_kinds_final"]
    # the two ephemerals went with the first session: 6 creates, 4 deletes
    check(t, "ls_kinds_new_session", out=["[seq-0000000002, seq-0000000005]"], err=[])
    st = parse_stat(check(t, "stat_kinds_new_session", err=[]).out)
    assert (st["cversion"], st["numChildren"]) == ("10", "2"), t["stat_kinds_new_session"]


def test_deleteall_whole_tree(cli):
    """deleteall of the test root (ACL-restricted nodes included) leaves nothing."""
    root, t = cli
    check(t, "deleteall_root", out=[], err=[])
    check(t, "ls_root_gone", out=[], err=no_node(root))


def test_acl_basics(cli):
    root, t = cli
    a = f"{root}/acl"
    check(t, "getAcl_default", out=["'world,'anyone", ": cdrwa"], err=[])
    r = check(t, "getAcl_s", err=[])
    assert r.out[:2] == ["'world,'anyone", ": cdrwa"], r
    assert parse_stat(r.out[2:])["aclVersion"] == "0", r
    check(t, "create_ro", out=[], err=[f"Created {a}/ro"])
    check(t, "getAcl_ro", out=["'world,'anyone", ": r"], err=[])
    check(t, "get_ro", out=["x"], err=[])
    check(t, "set_ro", out=[], err=no_auth(f"{a}/ro"))
    check(t, "create_under_ro", out=[], err=no_auth(f"{a}/ro/child"))
    check(t, "setAcl_ro", out=[], err=no_auth(f"{a}/ro"))  # needs ADMIN


def test_set_acl(cli):
    root, t = cli
    rw = f"{root}/acl/rw"
    check(t, "setAcl_bad_version", out=[], err=bad_version(rw))
    r = check(t, "setAcl_s", err=[])
    st = parse_stat(r.out)
    assert (st["aclVersion"], st["dataVersion"]) == ("1", "0"), r
    check(t, "getAcl_rw", out=["'world,'anyone", ": cdr"], err=[])
    check(t, "setAcl_bad_scheme", out=[], err=[f"Acl is not valid : {rw}"])
    check(t, "setAcl_bad_digest", out=[], err=[f"Acl is not valid : {rw}"])
    check(t, "getAcl_multi", out=["'world,'anyone", ": r", "'ip,'127.0.0.1", ": cdrwa"], err=[])


def test_ip_acl(cli):
    root, t = cli
    a = f"{root}/acl"
    check(t, "create_ipdeny", out=[], err=[f"Created {a}/ipdeny"])
    check(t, "get_ipdeny", out=[], err=no_auth(f"{a}/ipdeny"))
    check(t, "getAcl_ipdeny", out=[], err=no_auth(f"{a}/ipdeny"))  # READ or ADMIN needed
    check(t, "get_ipok", out=["x"], err=[])
    check(t, "delete_ipdeny", out=[], err=[])


def test_auth_scheme_needs_authentication(cli):
    root, t = cli
    a = f"{root}/acl"
    check(t, "setAcl_auth_unauthenticated", out=[], err=[f"Acl is not valid : {a}/sec"])
    # create prints the KeeperException and then its own message
    check(
        t,
        "create_auth_unauthenticated",
        out=[],
        err=[f"KeeperErrorCode = InvalidACL for {a}/sec2", f"Acl is not valid : {a}/sec2"],
    )


def test_addauth_digest_and_whoami(cli):
    root, t = cli
    a = f"{root}/acl"
    check(t, "whoami_anonymous", out=["Auth scheme: User", "ip: 127.0.0.1"], err=[])
    check(t, "addauth_alice", out=[], err=[])
    r = check(t, "whoami_alice", err=[])
    assert r.out[0] == "Auth scheme: User", r
    assert sorted(r.out[1:]) == ["digest: alice", "ip: 127.0.0.1"], r
    check(t, "setAcl_auth", out=[], err=[])
    # "auth" expands to the session's digest identity: user:base64(sha1(user:pw))
    check(t, "getAcl_sec", out=[f"'digest,'{digest('alice', 'secret')}", ": cdrwa"], err=[])
    check(t, "get_sec", out=["x"], err=[])
    check(t, "create_bob", out=[], err=[f"Created {a}/bob"])
    check(t, "get_bob", out=[], err=no_auth(f"{a}/bob"))
    check(t, "getAcl_bob", out=[], err=no_auth(f"{a}/bob"))
    check(t, "delete_bob", out=[], err=[])


def test_sync(cli):
    _, t = cli
    check(t, "sync", out=["Sync is OK"], err=[])


def test_new_session(cli):
    """After `connect` the first session is closed: its ephemerals and auth are gone."""
    root, t = cli
    k, a = f"{root}/kinds", f"{root}/acl"
    check(t, "connect", out=[], err=[])
    check(t, "ephemerals_new_session", out=["[]"], err=[])
    check(t, "whoami_new_session", out=["Auth scheme: User", "ip: 127.0.0.1"], err=[])
    check(t, "get_sec_new_session", out=[], err=no_auth(f"{a}/sec"))
    check(t, "addauth_alice_again", out=[], err=[])
    check(t, "get_sec_reauth", out=["x"], err=[])
    # the new session connected: Closed, then SyncConnected again
    assert ("Closed", "None", "null") in t.events, t.dump()
    closed = t.events.index(("Closed", "None", "null"))
    assert ("SyncConnected", "None", "null") in t.events[closed:], t.dump()


def test_watch_commands_output(cli):
    root, t = cli
    ow, pw = f"{root}/ow", f"{root}/pw"
    for key in ("addWatch_recursive", "addWatch_persistent", "removewatches_pw"):
        check(t, key, out=[], err=[])
    check(t, "get_w", out=["x"], err=[])
    check(t, "ls_w", out=["[]"], err=[])
    assert parse_stat(check(t, "stat_w", err=[]).out)["dataLength"] == "1"
    check(t, "stat_w_missing", out=[], err=no_node(f"{ow}/later"))
    check(t, "removewatches_pw_again", out=[], err=[f"KeeperErrorCode = No such watcher for {pw}"])


def test_watch_events(cli):
    """The WatchedEvent lines the CLI printed, in order, for this test's paths."""
    root, t = cli
    w, pw, ow = f"{root}/w", f"{root}/pw", f"{root}/ow"
    ours = [e for e in t.events if e[2] == root or e[2].startswith(root + "/")]
    expected = [
        # PERSISTENT_RECURSIVE on w: every node below, no NodeChildrenChanged
        ("SyncConnected", "NodeCreated", f"{w}/a"),
        ("SyncConnected", "NodeDataChanged", f"{w}/a"),
        ("SyncConnected", "NodeCreated", f"{w}/a/b"),
        ("SyncConnected", "NodeDeleted", f"{w}/a/b"),
        ("SyncConnected", "NodeDataChanged", w),
        # PERSISTENT on pw: fires repeatedly, only for pw itself and its child list
        ("SyncConnected", "NodeChildrenChanged", pw),
        ("SyncConnected", "NodeDataChanged", pw),
        ("SyncConnected", "NodeDataChanged", pw),
        # removewatches succeeded (this event is made by the client)
        ("SyncConnected", "PersistentWatchRemoved", pw),
        # one-shot watches on ow: one data event, one child event, one created
        ("SyncConnected", "NodeDataChanged", ow),
        ("SyncConnected", "NodeChildrenChanged", ow),
        ("SyncConnected", "NodeCreated", f"{ow}/later"),
    ]
    assert ours == expected, t.dump()


def test_one_shot_commands(server_hosts):
    """`zkCli.sh -server H cmd args` runs one command; the exit code tells errors."""
    missing = f"/zkcli-oneshot-{uuid.uuid4().hex[:12]}"
    ok = subprocess.run(
        [str(ZKCLI), "-server", server_hosts, "ls", "/zookeeper"],
        capture_output=True, text=True, timeout=SESSION_TIMEOUT,
    )
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    assert "[config, quota]" in ok.stdout.splitlines(), ok.stdout
    bad = subprocess.run(
        [str(ZKCLI), "-server", server_hosts, "get", missing],
        capture_output=True, text=True, timeout=SESSION_TIMEOUT,
    )
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert f"Node does not exist: {missing}" in bad.stderr.splitlines(), bad.stderr


def test_unknown_auth_scheme_fails_the_session(server_hosts):
    """addauth with a scheme the server does not know: AuthFailed, session over.

    The server answers the auth packet with AUTHFAILED and closes the
    connection; the client then refuses every command.  Whether the `ls`
    right after addauth was already refused locally ("Not connected") or
    failed in flight (AuthFailed) depends on timing, so both are accepted;
    after a dead session the stdout marker command also prints
    "Not connected", so those lines are ignored.
    """
    t = run_zkcli(
        server_hosts,
        [
            ("ls_before", "ls /zookeeper"),
            ("addauth_bad", "addauth nosuchscheme foo"),
            ("ls_after", "ls /zookeeper"),
            ("get_later", "get /zookeeper"),
        ],
    )
    check(t, "ls_before", out=["[config, quota]"], err=[])
    check(t, "addauth_bad", out=[], err=[])
    assert ("AuthFailed", "None", "null") in t.events, t.dump()
    lines = [
        line
        for key in ("ls_after", "get_later")
        for line in t[key].out + t[key].err
        if line != "Not connected"
    ]
    assert lines in ([], ["KeeperErrorCode = AuthFailed for /zookeeper"]), t.dump()
    assert "Not connected" in t["get_later"].out, t.dump()
