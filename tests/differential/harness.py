"""Differential testing: the same requests to Apache ZooKeeper and to zkpy,
every answer compared.

A `Differential` drives a pair of servers in lockstep.  Each of its sessions
holds one RawClient per server; each request goes to Apache ZooKeeper first,
then to zkpy, and the two outcomes are normalised and compared before the next
step.  The first difference raises `Mismatch` (an AssertionError) naming the
step, the request, and both answers, with the transcript of the steps before.

What an outcome holds (`Outcome`):
  * the reply's xid, its error code, and its zxid as a label;
  * the decoded body, normalised: Stats field by field (`NStat`), data
    (null and empty kept apart), ACLs in order, multi results in order;
    children, getEphemerals and whoAmI lists as sorted tuples (their order
    is unspecified: Java hash order on one side);
  * an error reply's body, raw, if the server sent one (ZooKeeper does, when
    it had built a response before failing);
  * the watch notifications this connection received since its previous reply
    (type, state, path, header zxid): so events are compared with their
    position relative to the replies;
  * or, instead of a reply, that the server closed the connection, or sent
    nothing in time, or sent something undecodable.

Normalisation (per server, per Differential):
  * zxids: the n-th distinct zxid seen becomes "Z<n>" (0 and -1 stay as they
    are).  A server that consumes zxids differently (e.g. a failed write that
    does not use one) shows up as a different label.
  * times: ctime/mtime become "t(<zxid label>)", the time of the txn that set
    them (czxid/mzxid).  Each value is checked: non-zero only with a non-zero
    zxid, within the run's wall-clock window, and the same for every field
    set by one txn (a multi's ops share one time).  A failed check turns
    the value into "BAD-TIME(...)", which then differs from the other server.
  * session ids: the harness session that owns it ("s1"); an unknown id
    becomes "S?".  Passwords: only their length and whether they are zero.

Events sent to one session by another session's write are collected by that
session's next request (`unordered=True` compares them as a multiset, for the
few cases where one txn's events come in Java hash order); `Differential.settle()` pings every open session so
that they are compared at a definite point (a ping's reply is queued behind
any notification the server sent before it, on both servers).

Differential(..., strict=False) collects the differences instead of raising
(for exploring: `d.mismatches`, `d.transcript`).

Each Differential works under a fresh root path (`d.root`, `d.p("a/b")`) and
cleans up on close(): sessions are closed with closeSession (dangling sessions
would expire later and consume zxids in the middle of another test) and the
tree under the root is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from zkpy.protocol.errors import ERROR_NAMES
from zkpy.protocol.opcodes import OP_NAMES, Op
from zkpy.protocol.records import (
    ACL, OPEN_ACL_UNSAFE, AddWatchRequest, AuthPacket, CheckVersionRequest, CreateRequest,
    DeleteRequest, MultiRequest, PathRequest, PathWatchRequest, SetACLRequest, SetDataRequest,
    SetWatches, Stat, WatchTypeRequest,
)
from zkpy.rawclient import ConnectionClosed, MultiResult, ProtocolViolation, RawClient

SERVERS = ("apache", "zkpy")
EVENT_NAMES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
               4: "NodeChildrenChanged", -1: "None"}
OPEN = list(OPEN_ACL_UNSAFE)
DEFAULT_SESSION_TIMEOUT_MS = 30000
# How long to wait for a reply before calling it "no reply".
REPLY_TIMEOUT = 5.0
# Plausibility window for ctime/mtime around the run (ms).
TIME_SLACK_MS = 10_000


class Mismatch(AssertionError):
    """zkpy and Apache ZooKeeper answered differently."""


# --- normalised values ----------------------------------------------------------------

class NStat(NamedTuple):
    czxid: Any
    mzxid: Any
    ctime: Any
    mtime: Any
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: Any
    dataLength: int
    numChildren: int
    pzxid: Any


class NEvent(NamedTuple):
    type: str
    state: int
    path: str
    zxid: Any

    def __repr__(self):
        z = "" if self.zxid == -1 else f" zxid={self.zxid}"
        s = "" if self.state == 3 else f" state={self.state}"
        return f"{self.type}({self.path}){s}{z}"


@dataclass(frozen=True)
class Outcome:
    """What one server did with one request, normalised."""
    kind: str = "reply"       # reply | closed | no-reply | violation | connect
    xid: int | None = None
    err: int | None = None
    zxid: Any = None
    body: Any = None
    events: tuple = ()

    def __str__(self):
        if self.kind == "reply":
            err = ERROR_NAMES.get(self.err, self.err) if self.err else "OK"
            s = f"xid={self.xid} zxid={self.zxid} err={err}"
            if self.err == 0 or self.body is not None:
                s += f" body={_fmt(self.body)}"
        elif self.kind == "connect":
            s = f"connect {_fmt(self.body)}"
        else:
            s = self.kind + (f" {self.body}" if self.body is not None else "")
        if self.events:
            s += f"  events before it: {list(self.events)}"
        return s

    @property
    def ok(self) -> bool:
        return self.kind == "reply" and self.err == 0


def _sort_events(o: Outcome) -> Outcome:
    return Outcome(o.kind, o.xid, o.err, o.zxid, o.body, tuple(sorted(o.events, key=repr)))


def _fmt(v) -> str:
    text = repr(v)
    return text if len(text) <= 2000 else text[:2000] + "..."


class Normaliser:
    """Per-server labels for zxids and session ids, and time checks."""

    def __init__(self, start_ms: int):
        self.start_ms = start_ms
        self.zxids: dict[int, str] = {}
        self.times: dict[int, int] = {}
        self.sessions: dict[int, str] = {}

    def zxid(self, z: int):
        if z in (0, -1):
            return z
        label = self.zxids.get(z)
        if label is None:
            label = self.zxids[z] = f"Z{len(self.zxids) + 1}"
        return label

    def time(self, t: int, z: int):
        if z == 0:
            return 0 if t == 0 else f"BAD-TIME({t} for zxid 0)"
        label = self.zxid(z)
        now = int(time.time() * 1000)
        if not self.start_ms - TIME_SLACK_MS <= t <= now + TIME_SLACK_MS:
            return f"BAD-TIME({t} outside the run)"
        known = self.times.setdefault(z, t)
        if known != t:
            return f"BAD-TIME({t}, but {known} elsewhere for {label})"
        return f"t({label})"

    def session(self, sid: int):
        if sid == 0:
            return 0
        return self.sessions.get(sid, "S?")

    def stat(self, st: Stat | None):
        if st is None:
            return None
        return NStat(
            self.zxid(st.czxid), self.zxid(st.mzxid),
            self.time(st.ctime, st.czxid), self.time(st.mtime, st.mzxid),
            st.version, st.cversion, st.aversion, self.session(st.ephemeralOwner),
            st.dataLength, st.numChildren, self.zxid(st.pzxid))

    def event(self, n) -> NEvent:
        ev = n.event
        return NEvent(EVENT_NAMES.get(ev.type, str(ev.type)), ev.state, ev.path, self.zxid(n.zxid))

    def acl(self, acls):
        return None if acls is None else tuple((a.perms, a.scheme, a.id) for a in acls)

    def body(self, op: int, v):
        """The decoded reply body of op, normalised."""
        if v is None:
            return None
        if op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            return v[0], self.stat(v[1])
        if op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL):
            return self.stat(v)
        if op in (Op.GET_DATA, Op.RECONFIG):
            return v[0], self.stat(v[1])
        if op == Op.GET_ACL:
            return self.acl(v[0]), self.stat(v[1])
        if op in (Op.GET_CHILDREN, Op.GET_EPHEMERALS):
            return tuple(sorted(v))
        if op == Op.GET_CHILDREN2:
            return (None if v[0] is None else tuple(sorted(v[0]))), self.stat(v[1])
        if op in (Op.MULTI, Op.MULTI_READ):
            return tuple(self.multi_result(r) for r in v)
        if op == Op.WHO_AM_I:
            return None if v is None else tuple(sorted(v))
        return v

    def multi_result(self, r: MultiResult):
        name = OP_NAMES.get(r.type, str(r.type)).lower()
        if r.type == Op.ERROR:
            return ("error", ERROR_NAMES.get(r.err, r.err))
        value = r.value
        if r.type in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            value = (value[0], self.stat(value[1]))
        elif r.type == Op.SET_DATA:
            value = self.stat(value)
        elif r.type == Op.GET_DATA:
            value = (value[0], self.stat(value[1]))
        elif r.type == Op.GET_CHILDREN:
            value = tuple(sorted(value))
        return (name, r.err, value) if r.err else (name, value)


# --- describing requests -----------------------------------------------------------------

def describe(op: int, record) -> str:
    name = OP_NAMES.get(op, f"op{op}")
    if record is None:
        return name
    if callable(record):
        return f"{name}(<per-server record>)"
    fields = getattr(record, "__dataclass_fields__", None)
    if fields:
        args = ", ".join(f"{k}={getattr(record, k)!r}" for k in fields)
    else:
        args = repr(record)
    return f"{name}({args})"


class Ctx(NamedTuple):
    """What a per-server record builder gets: the server's name, this
    session's client there, the Differential (d.client(name, session))."""
    server: str
    client: RawClient
    diff: "Differential"
    session: "Session"

    def other(self, session: "Session") -> RawClient:
        return session.clients[self.server]


# --- sessions ------------------------------------------------------------------------

class Session:
    """One ZooKeeper session on each server, driven in lockstep."""

    def __init__(self, diff: "Differential", name: str, read_only_byte: bool = True):
        self.diff = diff
        self.name = name
        self.read_only_byte = read_only_byte
        self.clients: dict[str, RawClient] = {}
        self.seen: dict[str, int] = {}
        self.session_ids: dict[str, int] = {}
        self.passwds: dict[str, bytes] = {}
        self.closed_session = False
        self.ended: dict[str, bool] = {}   # server -> closeSession answered
        self._new_sockets()

    def _new_sockets(self):
        for server in SERVERS:
            old = self.clients.get(server)
            if old is not None:
                old.close()
            host, port = self.diff.addresses[server]
            self.clients[server] = RawClient(host, port, timeout=REPLY_TIMEOUT,
                                             read_only_byte=self.read_only_byte)
            self.seen[server] = 0

    # --- lockstep primitives ----------------------------------------------------------

    def _ctx(self, server):
        return Ctx(server, self.clients[server], self.diff, self)

    def _resolve(self, server, value):
        return value(self._ctx(server)) if callable(value) else value

    def _new_events(self, server) -> tuple:
        c = self.clients[server]
        norm = self.diff.norms[server]
        evs = c.events[self.seen[server]:]
        self.seen[server] = len(c.events)
        return tuple(norm.event(e) for e in evs)

    def _reply(self, server, op, hdr, value) -> Outcome:
        norm = self.diff.norms[server]
        # An error reply's body, if the server sent one at all, stays raw bytes.
        body = norm.body(op, value) if hdr.err == 0 else value
        return Outcome("reply", hdr.xid, hdr.err, norm.zxid(hdr.zxid), body,
                       self._new_events(server))

    def _one(self, server, op, record, xid, timeout) -> Outcome:
        c = self.clients[server]
        try:
            hdr, value = c.request(op, self._resolve(server, record), xid=xid, timeout=timeout)
        except ConnectionClosed:
            return Outcome("closed", events=self._new_events(server))
        except socket.timeout:
            return Outcome("no-reply", events=self._new_events(server))
        except ProtocolViolation as e:
            return Outcome("violation", body=str(e), events=self._new_events(server))
        except OSError:  # e.g. sending on a connection the server reset (EPIPE)
            return Outcome("closed", events=self._new_events(server))
        return self._reply(server, op, hdr, value)

    def request(self, op: int, record=None, *, xid=None, timeout=None, desc=None,
                unordered: bool = False) -> Outcome:
        """Send op to both servers and compare.  record may be a function of
        a Ctx, for per-server values (a zxid, a session id).  unordered:
        compare the events that came before the reply as a multiset (for
        events of one txn whose order is Java hash order, e.g. the
        deletions of a closed session's ephemerals)."""
        outs = {s: self._one(s, op, record, xid, timeout) for s in SERVERS}
        if unordered:
            outs = {s: _sort_events(o) for s, o in outs.items()}
        return self.diff.compare(self, desc or describe(op, record), outs)

    def raw(self, data, op: int = Op.PING, *, timeout=None, desc=None) -> Outcome:
        """Send bytes as they are, then compare what comes back (decoded as a
        reply to op)."""
        outs = {}
        for s in SERVERS:
            c = self.clients[s]
            try:
                c.send_raw(self._resolve(s, data))
                hdr, value = c.read_reply(op, timeout)
                outs[s] = self._reply(s, op, hdr, value)
            except ConnectionClosed:
                outs[s] = Outcome("closed", events=self._new_events(s))
            except socket.timeout:
                outs[s] = Outcome("no-reply", events=self._new_events(s))
            except ProtocolViolation as e:
                outs[s] = Outcome("violation", body=str(e), events=self._new_events(s))
            except OSError:
                outs[s] = Outcome("closed", events=self._new_events(s))
        return self.diff.compare(self, desc or f"raw bytes {_fmt(data)}", outs)

    def pipeline(self, requests, desc=None) -> Outcome:
        """Send several requests back to back, then read every reply; the
        outcome's body is the tuple of per-request outcomes."""
        outs = {}
        for s in SERVERS:
            c = self.clients[s]
            results = []
            try:
                sent = [(c.send(op, self._resolve(s, rec)), op) for op, rec in requests]
                for xid, op in sent:
                    hdr, value = c.read_reply(op)
                    results.append(self._reply(s, op, hdr, value))
            except ConnectionClosed:
                results.append(Outcome("closed", events=self._new_events(s)))
            except socket.timeout:
                results.append(Outcome("no-reply", events=self._new_events(s)))
            except ProtocolViolation as e:
                results.append(Outcome("violation", body=str(e), events=self._new_events(s)))
            outs[s] = Outcome("pipeline", body=tuple(results))
        return self.diff.compare(
            self, desc or "pipelined: " + "; ".join(describe(op, r) for op, r in requests), outs)

    def expect_closed(self, timeout: float = 3.0, desc="connection closed by the server?"):
        """Compare whether each server closes this connection (reading and
        comparing whatever still arrives)."""
        outs = {}
        for s in SERVERS:
            closed = self.clients[s].is_closed_by_server(timeout)
            outs[s] = Outcome("closed" if closed else "open", events=self._new_events(s))
        return self.diff.compare(self, desc, outs)

    def connect(self, session_id=0, passwd=bytes(16), timeout_ms=DEFAULT_SESSION_TIMEOUT_MS,
                last_zxid=0, read_only=False, desc=None) -> Outcome:
        """Handshake on both servers (values may be functions of a Ctx)."""
        outs = {}
        for s in SERVERS:
            c = self.clients[s]
            norm = self.diff.norms[s]
            try:
                resp = c.connect(self._resolve(s, session_id), self._resolve(s, passwd),
                                 self._resolve(s, timeout_ms), self._resolve(s, last_zxid),
                                 read_only)
            except ConnectionClosed:
                outs[s] = Outcome("closed")
                continue
            except socket.timeout:
                outs[s] = Outcome("no-reply")
                continue
            if resp.session_id:
                self.session_ids[s] = resp.session_id
                self.passwds[s] = resp.passwd
                norm.sessions.setdefault(resp.session_id, self.name)
            body = {
                "protocolVersion": resp.protocol_version,
                "timeOut": resp.timeout,
                "sessionId": norm.session(resp.session_id),
                "passwd": (len(resp.passwd),
                           "zero" if resp.passwd == bytes(len(resp.passwd)) else "set"),
                "readOnly": resp.read_only,
            }
            outs[s] = Outcome("connect", body=body)
        return self.diff.compare(self, desc or f"connect(timeout_ms={timeout_ms})", outs)

    def reconnect(self, passwd_ok: bool = True, last_zxid=None, timeout_ms=None,
                  desc=None) -> Outcome:
        """Drop this session's sockets (no closeSession) and resume the
        session on new ones.  last_zxid defaults to the highest zxid each
        client saw."""
        last = {s: self.clients[s].last_zxid for s in SERVERS}
        old_timeout = {s: self.clients[s].negotiated_timeout for s in SERVERS}
        self._new_sockets()

        def pw(ctx):
            p = self.passwds.get(ctx.server, bytes(16))
            return p if passwd_ok else bytes(b ^ 0xFF for b in p)

        return self.connect(
            session_id=lambda ctx: self.session_ids.get(ctx.server, 0),
            passwd=pw,
            timeout_ms=(lambda ctx: old_timeout[ctx.server] or DEFAULT_SESSION_TIMEOUT_MS)
            if timeout_ms is None else timeout_ms,
            last_zxid=(lambda ctx: last[ctx.server]) if last_zxid is None else last_zxid,
            desc=desc or f"reconnect(passwd_ok={passwd_ok})")

    def disconnect(self):
        """Close the sockets without closeSession (the session lives on)."""
        for c in self.clients.values():
            c.close()

    def close_session(self, unordered: bool = False) -> Outcome:
        out = self.request(Op.CLOSE_SESSION, unordered=unordered)
        self.closed_session = True
        if out.kind == "reply" and out.err == 0:
            self.ended = {s: True for s in SERVERS}
        for c in self.clients.values():
            c.close()
        return out

    # --- the usual requests --------------------------------------------------------------

    def create(self, path, data=b"", acl=None, flags=0, *, op=Op.CREATE, ttl=-1):
        return self.request(op, CreateRequest(path, data, OPEN if acl is None else acl,
                                              flags, ttl))

    def create2(self, path, data=b"", acl=None, flags=0):
        return self.create(path, data, acl, flags, op=Op.CREATE2)

    def create_container(self, path, data=b"", acl=None, flags=4):
        return self.create(path, data, acl, flags, op=Op.CREATE_CONTAINER)

    def create_ttl(self, path, ttl, data=b"", acl=None, flags=5):
        return self.create(path, data, acl, flags, op=Op.CREATE_TTL, ttl=ttl)

    def delete(self, path, version=-1):
        return self.request(Op.DELETE, DeleteRequest(path, version))

    def exists(self, path, watch=False):
        return self.request(Op.EXISTS, PathWatchRequest(path, watch))

    def get_data(self, path, watch=False):
        return self.request(Op.GET_DATA, PathWatchRequest(path, watch))

    def set_data(self, path, data, version=-1):
        return self.request(Op.SET_DATA, SetDataRequest(path, data, version))

    def get_children(self, path, watch=False):
        return self.request(Op.GET_CHILDREN, PathWatchRequest(path, watch))

    def get_children2(self, path, watch=False):
        return self.request(Op.GET_CHILDREN2, PathWatchRequest(path, watch))

    def get_acl(self, path):
        return self.request(Op.GET_ACL, PathRequest(path))

    def set_acl(self, path, acl, version=-1):
        return self.request(Op.SET_ACL, SetACLRequest(path, acl, version))

    def sync(self, path):
        return self.request(Op.SYNC, PathRequest(path))

    def ping(self, unordered: bool = False):
        return self.request(Op.PING, unordered=unordered)

    def multi(self, *ops):
        """ops: (opcode, record) pairs."""
        return self.request(Op.MULTI, MultiRequest(list(ops)))

    def multi_read(self, *ops):
        return self.request(Op.MULTI_READ, MultiRequest(list(ops)))

    def add_watch(self, path, mode):
        return self.request(Op.ADD_WATCH, AddWatchRequest(path, mode))

    def check_watches(self, path, wtype):
        return self.request(Op.CHECK_WATCHES, WatchTypeRequest(path, wtype))

    def remove_watches(self, path, wtype):
        return self.request(Op.REMOVE_WATCHES, WatchTypeRequest(path, wtype))

    def auth(self, scheme, auth: bytes, xid=-4):
        return self.request(Op.AUTH, AuthPacket(0, scheme, auth), xid=xid)

    def get_ephemerals(self, prefix):
        return self.request(Op.GET_EPHEMERALS, PathRequest(prefix))

    def get_all_children_number(self, path):
        return self.request(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(path))

    def who_am_i(self):
        return self.request(Op.WHO_AM_I)

    def set_watches(self, data=(), exist=(), child=(), persistent=None, recursive=None,
                    relative_zxid=None, xid=None):
        """setWatches (or setWatches2 if persistent/recursive lists are given);
        relativeZxid defaults to each client's last seen zxid."""
        v2 = persistent is not None or recursive is not None

        def record(ctx):
            rz = ctx.client.last_zxid if relative_zxid is None else \
                (relative_zxid(ctx) if callable(relative_zxid) else relative_zxid)
            return SetWatches(rz, list(data), list(exist), list(child),
                              list(persistent or ()) if v2 else None,
                              list(recursive or ()) if v2 else None)

        op = Op.SET_WATCHES2 if v2 else Op.SET_WATCHES
        return self.request(op, record, xid=xid,
                            desc=f"{OP_NAMES[op]}(data={list(data)}, exist={list(exist)}, "
                                 f"child={list(child)}, persistent={persistent}, "
                                 f"recursive={recursive})")


# --- the pair of servers ----------------------------------------------------------------

class Differential:
    """Lockstep requests to Apache ZooKeeper and zkpy.  Use as a context
    manager; `session()` opens (and connects) a session on both."""

    _ids = itertools.count(1)

    def __init__(self, apache, zkpy, root: str | None = None, label: str = "",
                 strict: bool = True):
        self.addresses = {"apache": (apache.host, apache.port), "zkpy": (zkpy.host, zkpy.port)}
        self.start_ms = int(time.time() * 1000)
        self.norms = {s: Normaliser(self.start_ms) for s in SERVERS}
        self.root = root if root is not None else f"/diff-{label or 't'}-{uuid.uuid4().hex[:8]}"
        self.sessions: list[Session] = []
        self.transcript: list[str] = []
        self.step = 0
        self._root_created = False
        # strict=False (for exploring): differences are collected in
        # `mismatches` instead of raised, and Apache's outcome is returned.
        self.strict = strict
        self.mismatches: list[str] = []

    # --- paths -----------------------------------------------------------------------------

    def p(self, rel: str = "") -> str:
        """A path under this Differential's root: p("a/b") -> "<root>/a/b"."""
        rel = rel.lstrip("/")
        return f"{self.root}/{rel}" if rel else self.root

    # --- sessions --------------------------------------------------------------------------

    def session(self, name: str | None = None, connect: bool = True,
                timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                read_only_byte: bool = True) -> Session:
        name = name or f"s{len(self.sessions) + 1}"
        s = Session(self, name, read_only_byte)
        self.sessions.append(s)
        if connect:
            out = s.connect(timeout_ms=timeout_ms)
            assert out.kind == "connect" and out.body["sessionId"] != 0, out
        return s

    def make_root(self, session: Session | None = None) -> None:
        """Create the root path (persistent, empty) on both servers, compared."""
        s = session or self.sessions[0]
        out = s.create(self.root)
        assert out.ok, f"cannot create the test root {self.root}: {out}"
        self._root_created = True

    def settle(self, unordered: bool = False) -> None:
        """Ping every open session, comparing the events each received
        (as a multiset if unordered)."""
        for s in self.sessions:
            if not s.closed_session and not any(c.closed for c in s.clients.values()):
                s.ping(unordered=unordered)

    # --- comparison ----------------------------------------------------------------------

    def compare(self, session: Session, desc: str, outs: dict) -> Outcome:
        self.step += 1
        a, z = outs["apache"], outs["zkpy"]
        line = f"#{self.step} {session.name}: {desc}"
        if a == z:
            self.transcript.append(f"{line}\n      -> {a}")
            return a
        if not self.strict:
            self.mismatches.append(f"{line}\n  apache: {a}\n  zkpy:   {z}")
            self.transcript.append(f"{line}\n  apache: {a}\n  zkpy:   {z}")
            return a
        history = "\n".join(self.transcript[-15:]) or "(none)"
        raise Mismatch(
            f"zkpy differs from Apache ZooKeeper at step {self.step}, "
            f"session {session.name}: {desc}\n"
            f"  apache: {a}\n"
            f"  zkpy:   {z}\n"
            f"steps before (last 15):\n{history}")

    # --- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session, then delete the tree under the root (best
        effort, not compared)."""
        for s in self.sessions:
            for server, c in s.clients.items():
                if s.ended.get(server):
                    continue
                # A session left open would expire later, in the middle of
                # another test, and take a zxid there on one server only.
                hdr = None if c.closed else c.close_session(timeout=2.0)
                if hdr is not None and hdr.err == 0:
                    continue
                sid = s.session_ids.get(server)
                if not sid:
                    continue
                host, port = self.addresses[server]
                try:
                    rc = RawClient(host, port, timeout=2.0)
                    resp = rc.connect(sid, s.passwds[server], 30000)
                    if resp.session_id:
                        rc.close_session(timeout=2.0)
                    rc.close()
                except (OSError, ConnectionClosed, ProtocolViolation):
                    pass
        for server in SERVERS:
            delete_tree(*self.addresses[server], self.root)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def delete_tree(host: str, port: int, root: str) -> None:
    """Delete root and everything under it (best effort), in a fresh session
    closed afterwards."""
    if root in ("", "/"):
        raise ValueError("refusing to delete the whole tree")
    try:
        c = RawClient(host, port, timeout=5.0)
        c.connect(timeout_ms=10000)
        # Super-user-free: nodes whose ACL forbids deletion are left behind.
        c.request(Op.AUTH, AuthPacket(0, "digest", b"diff:diff"), xid=-4)

        def rm(path):
            hdr, children = c.request(Op.GET_CHILDREN, PathWatchRequest(path, False))
            for ch in children or ():
                rm(f"{path}/{ch}")
            c.request(Op.DELETE, DeleteRequest(path, -1))

        rm(root)
        c.close_session(timeout=5.0)
    except (OSError, ConnectionClosed, ProtocolViolation):
        pass


# --- four-letter words ----------------------------------------------------------------------

_NUM = re.compile(r"-?\d+(\.\d+)?")


def line_shape(line: str) -> str:
    """A line with its numbers masked ("Received: 15" -> "Received: N")."""
    line = re.sub(r"0x[0-9a-fA-F]+", "0xH", line)
    return _NUM.sub("N", line)


def mntr_shape(text: str) -> dict:
    """mntr: key -> value kind ("int", "float", "text")."""
    out = {}
    for line in text.splitlines():
        key, tab, value = line.partition("\t")
        if not tab:
            out[line] = "NO-TAB"
            continue
        if re.fullmatch(r"-?\d+", value):
            kind = "int"
        elif re.fullmatch(r"-?\d+\.\d+(E-?\d+)?", value):
            kind = "float"
        else:
            kind = "text"
        out[key] = kind
    return out


def key_value_keys(text: str, sep: str = "=") -> list:
    """The keys of key=value lines, in order (other lines as they are)."""
    keys = []
    for line in text.splitlines():
        k, s, _ = line.partition(sep)
        keys.append(k if s else line_shape(line))
    return keys


# --- op shorthands for multi -----------------------------------------------------------------

def m_create(path, data=b"", acl=None, flags=0, op=Op.CREATE, ttl=-1):
    return op, CreateRequest(path, data, OPEN if acl is None else acl, flags, ttl)


def m_delete(path, version=-1):
    return Op.DELETE, DeleteRequest(path, version)


def m_set_data(path, data, version=-1):
    return Op.SET_DATA, SetDataRequest(path, data, version)


def m_check(path, version):
    return Op.CHECK, CheckVersionRequest(path, version)


def m_get_data(path):
    return Op.GET_DATA, PathWatchRequest(path, False)


def m_get_children(path):
    return Op.GET_CHILDREN, PathWatchRequest(path, False)


def digest_id(user: str, password: str) -> str:
    """The digest scheme's id for user:password: user:base64(sha1(user:password))."""
    h = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(h).decode()}"


def digest_acl(user: str, password: str, perms: int = 31) -> ACL:
    return ACL(perms, "digest", digest_id(user, password))
