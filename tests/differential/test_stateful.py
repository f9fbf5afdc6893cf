"""Hypothesis-generated operation sequences from three sessions on a small
path space, run in lockstep against Apache ZooKeeper 3.8 and zkpy; every
answer and every watch event is compared (see harness.py).  When the servers
differ, Hypothesis shrinks the run to a minimal sequence of steps and prints
it, with the step that differed and both answers.

Each example works under its own root path with fresh sessions, on the
session-wide pair of servers.  Knobs (environment):

    ZKPY_DIFF_EXAMPLES   examples to run (default 100)
    ZKPY_DIFF_STEPS      maximum steps per example (default 30)
    ZKPY_DIFF_DERANDOMIZE=1   the same examples on every run

A failure prints a @reproduce_failure blob that replays it exactly.

The generated operations stay clear of the known, deliberate differences
listed in test_scenarios.py (so that what shrinks is a new one):
  * every ACL grants READ to world, so exists never meets a node it may not
    read (3.8.0 does not check READ there) and no event is filtered;
  * a session never mixes one-shot and persistent watches on one path, nor
    the two persistent modes (3.8.0 keeps only the last mode registered);
  * watches are checked and removed with WatcherType.Any only, and only by
    their own session;
  * the events a session gets from a closed session's ephemerals are
    compared as a multiset (3.8.0 deletes them in Java hash order);
  * an "auth" ACL only from a session with at most one digest id (its
    expansion over several ids is in hash order).
Sessions also reconnect, with or without setWatches/setWatches2 (relativeZxid
the last zxid seen, or 0), and close and reopen.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from hypothesis.stateful import run_state_machine_as_test

from zkpy.protocol.opcodes import AddWatchMode, CreateMode, Op, Perms, WatcherType
from zkpy.protocol.records import ACL

from .harness import (
    OPEN, Differential, digest_acl, m_check, m_create, m_delete, m_get_children, m_get_data,
    m_set_data,
)

pytestmark = pytest.mark.apache

EXAMPLES = int(os.environ.get("ZKPY_DIFF_EXAMPLES", "100"))
STEPS = int(os.environ.get("ZKPY_DIFF_STEPS", "30"))
DERANDOMIZE = os.environ.get("ZKPY_DIFF_DERANDOMIZE") == "1"

N_SESSIONS = 3
# Relative to the example's root ("" is the root itself).
REL_PATHS = ("", "a", "a/b", "a/b/c", "c", "c/d", "e")
DATA = st.sampled_from([b"", b"x", b"hello", None, b"\x00\xff" * 3])
VERSIONS = st.sampled_from([-1, -1, 0, 1, 2])
USERS = ("alice", "bob")
# Every ACL lets world READ (see the module docstring).
ACLS = [
    OPEN,
    [ACL(Perms.READ, "world", "anyone")],
    [ACL(Perms.READ | Perms.WRITE, "world", "anyone")],
    [ACL(Perms.READ, "world", "anyone"), digest_acl("alice", "pw", Perms.ALL)],
    [ACL(Perms.READ | Perms.CREATE, "world", "anyone"), digest_acl("bob", "pw", Perms.ADMIN)],
    [ACL(Perms.READ, "world", "anyone"), ACL(Perms.ALL, "ip", "127.0.0.1")],
]
ACL_CHOICE = st.integers(0, len(ACLS) - 1)
SESSION = st.integers(0, N_SESSIONS - 1)
CREATE_MODES = st.sampled_from([
    CreateMode.PERSISTENT, CreateMode.PERSISTENT, CreateMode.EPHEMERAL,
    CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL])


def make_machine(apache, zkpy):
    class DifferentialMachine(RuleBasedStateMachine):
        """Three sessions doing random things to a handful of paths."""

        def __init__(self):
            super().__init__()
            self.d = Differential(apache, zkpy, label="st")
            self.sessions = []
            self.extra_paths = []       # sequential nodes created so far
            self.std_watches = []       # per session: {path: {"data", "exist", "child"}}
            self.persistent = []        # per session: {path: addWatch mode}
            self.users = []             # per session: digest users it authenticated as
            self.generation = 0

        # --- set-up and helpers ---------------------------------------------------------

        @initialize()
        def open_sessions(self):
            for i in range(N_SESSIONS):
                self._open(i)
            self.d.make_root(self.sessions[0])

        def _open(self, i):
            self.generation += 1
            s = self.d.session(f"s{i}.{self.generation}")
            if i < len(self.sessions):
                self.sessions[i] = s
                self.std_watches[i] = {}
                self.persistent[i] = {}
                self.users[i] = set()
            else:
                self.sessions.append(s)
                self.std_watches.append({})
                self.persistent.append({})
                self.users.append(set())
            return s

        def teardown(self):
            self.d.close()

        def _path(self, data):
            choices = [self.d.p(r) for r in REL_PATHS] + self.extra_paths
            return data.draw(st.sampled_from(choices), label="path")

        def _watch_ok(self, i, path, watch, kind):
            """A one-shot watch, unless this session has a persistent one there."""
            if watch and path in self.persistent[i]:
                return False
            if watch:
                self.std_watches[i].setdefault(path, set()).add(kind)
            return watch

        def _note_created(self, out, op):
            if out.ok and op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
                path = out.body if op == Op.CREATE else out.body[0]
                if path not in self.extra_paths and path.rsplit("/", 1)[-1][-10:].isdigit():
                    self.extra_paths.append(path)

        # --- writes -------------------------------------------------------------------------

        @rule(i=SESSION, data=st.data(), value=DATA, mode=CREATE_MODES,
              op=st.sampled_from([Op.CREATE, Op.CREATE2]), acl=ACL_CHOICE)
        def create(self, i, data, value, mode, op, acl):
            path = self._path(data)
            if mode in CreateMode.SEQUENTIAL_MODES:
                path = path.rstrip("/") + "/s-" if data.draw(st.booleans(), "under") else path
            out = self.sessions[i].create(path, value, ACLS[acl], mode, op=op)
            self._note_created(out, op)

        @rule(i=SESSION, data=st.data(), ttl=st.sampled_from([-1, 0, 1000, 600000]),
              flags=st.sampled_from([4, 5, 6]))
        def create_container_or_ttl(self, i, data, ttl, flags):
            path = self._path(data)
            s = self.sessions[i]
            if flags == 4:
                out = s.create_container(path, b"c")
                self._note_created(out, Op.CREATE_CONTAINER)
            else:
                out = s.create_ttl(path, ttl, b"t", flags=flags)
                self._note_created(out, Op.CREATE_TTL)

        @rule(i=SESSION, data=st.data(), version=VERSIONS)
        def delete(self, i, data, version):
            self.sessions[i].delete(self._path(data), version)

        @rule(i=SESSION, data=st.data(), value=DATA, version=VERSIONS)
        def set_data(self, i, data, value, version):
            self.sessions[i].set_data(self._path(data), value, version)

        @rule(i=SESSION, data=st.data(), acl=ACL_CHOICE, version=VERSIONS)
        def set_acl(self, i, data, acl, version):
            self.sessions[i].set_acl(self._path(data), ACLS[acl], version)

        @rule(i=SESSION, data=st.data(), n=st.integers(1, 4))
        def multi(self, i, data, n):
            ops = []
            for _ in range(n):
                kind = data.draw(st.sampled_from(
                    ["create", "create-seq", "create-eph", "container", "delete", "set",
                     "check"]), label="op")
                path = self._path(data)
                version = data.draw(VERSIONS, label="version")
                if kind == "create":
                    ops.append(m_create(path, b"m"))
                elif kind == "create-seq":
                    ops.append(m_create(path + "/m-", flags=CreateMode.PERSISTENT_SEQUENTIAL))
                elif kind == "create-eph":
                    ops.append(m_create(path, flags=CreateMode.EPHEMERAL, op=Op.CREATE2))
                elif kind == "container":
                    ops.append(m_create(path, flags=CreateMode.CONTAINER,
                                        op=Op.CREATE_CONTAINER))
                elif kind == "delete":
                    ops.append(m_delete(path, version))
                elif kind == "set":
                    ops.append(m_set_data(path, b"ms", version))
                else:
                    ops.append(m_check(path, version))
            self.sessions[i].multi(*ops)

        # --- reads --------------------------------------------------------------------------

        @rule(i=SESSION, data=st.data(), watch=st.booleans(),
              op=st.sampled_from([Op.GET_DATA, Op.EXISTS, Op.GET_CHILDREN, Op.GET_CHILDREN2]))
        def read(self, i, data, watch, op):
            path = self._path(data)
            kind = {Op.GET_DATA: "data", Op.EXISTS: "exist"}.get(op, "child")
            watch = self._watch_ok(i, path, watch, kind)
            s = self.sessions[i]
            {Op.GET_DATA: s.get_data, Op.EXISTS: s.exists, Op.GET_CHILDREN: s.get_children,
             Op.GET_CHILDREN2: s.get_children2}[op](path, watch)

        @rule(i=SESSION, data=st.data(),
              what=st.sampled_from(["acl", "count", "sync", "ephemerals", "multiRead"]))
        def other_read(self, i, data, what):
            path = self._path(data)
            s = self.sessions[i]
            if what == "acl":
                s.get_acl(path)
            elif what == "count":
                s.get_all_children_number(path)
            elif what == "sync":
                s.sync(path)
            elif what == "ephemerals":
                s.get_ephemerals(path)
            else:
                s.multi_read(m_get_data(path), m_get_children(self._path(data)))

        # --- watches, auth, sessions -------------------------------------------------------

        @rule(i=SESSION, data=st.data(),
              mode=st.sampled_from([AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE]))
        def add_watch(self, i, data, mode):
            path = self._path(data)
            if path in self.persistent[i] or path in self.std_watches[i]:
                return
            self.persistent[i][path] = mode
            self.sessions[i].add_watch(path, mode)

        @rule(i=SESSION, data=st.data())
        def remove_watches(self, i, data):
            path = self._path(data)
            self.sessions[i].remove_watches(path, WatcherType.ANY)
            self.persistent[i].pop(path, None)
            self.std_watches[i].pop(path, None)

        @rule(i=SESSION, data=st.data(),
              suffix=st.sampled_from(["/", "//x", "/.", "/..", "/\x01", "/\u00e9"]),
              acl=st.sampled_from([[], [ACL(31, "digest", "nocolon")],
                                   [ACL(31, "world", "anyone")],
                                   [ACL(31, "auth", ""), ACL(1, "world", "anyone")]]),
              flags=st.sampled_from([0, 2, 7, -1]),
              op=st.sampled_from([Op.CREATE, Op.SET_DATA, Op.DELETE, Op.SET_ACL]))
        def odd_request(self, i, data, suffix, acl, flags, op):
            """Invalid paths, ACLs and flags: the error and its precedence."""
            path = self._path(data) + suffix
            s = self.sessions[i]
            if acl and acl[0].scheme == "auth" and len(self.users[i]) > 1:
                acl = OPEN  # expanded over several ids: Java hash order
            if op == Op.CREATE:
                s.create(path, b"", acl, flags)
            elif op == Op.SET_DATA:
                s.set_data(path, b"", -1)
            elif op == Op.DELETE:
                s.delete(path, -1)
            else:
                s.set_acl(path, acl, -1)

        @rule(i=SESSION, user=st.sampled_from(USERS))
        def auth(self, i, user):
            self.sessions[i].auth("digest", f"{user}:pw".encode())
            self.users[i].add(user)

        @rule(i=SESSION)
        def close_and_reopen(self, i):
            self.sessions[i].close_session(unordered=True)
            self.d.settle(unordered=True)
            self._open(i)

        @rule(i=SESSION, set_watches=st.booleans(), fresh=st.booleans())
        def reconnect(self, i, set_watches, fresh):
            """New connection, same session: its watches are gone, unless the
            client sets them again (setWatches, or setWatches2 when it has
            persistent ones), as the Java client does, with relativeZxid the
            last zxid it saw (or 0)."""
            s = self.sessions[i]
            s.reconnect()
            if not set_watches:
                self.std_watches[i] = {}
                self.persistent[i] = {}
                return
            std, pers = self.std_watches[i], self.persistent[i]
            lists = {k: sorted(p for p, kinds in std.items() if k in kinds)
                     for k in ("data", "exist", "child")}
            kwargs = {}
            if pers:
                kwargs["persistent"] = sorted(p for p, m in pers.items()
                                              if m == AddWatchMode.PERSISTENT)
                kwargs["recursive"] = sorted(p for p, m in pers.items()
                                             if m == AddWatchMode.PERSISTENT_RECURSIVE)
            s.set_watches(data=lists["data"], exist=lists["exist"], child=lists["child"],
                          relative_zxid=0 if fresh else None, **kwargs)

        @precondition(lambda self: self.sessions)
        @invariant()
        def events_agree(self):
            # Every session's pending notifications, compared at a definite point.
            self.d.settle()

    return DifferentialMachine


def test_random_sequences(servers):
    apache, zkpy = servers
    machine = make_machine(apache, zkpy)
    config = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        print_blob=True,
        derandomize=DERANDOMIZE,
        database=None if DERANDOMIZE else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )
    run_state_machine_as_test(machine, settings=config)
