"""Hand-written differential scenarios, one group per area of the wire-protocol
reference (/work/shared/reference/zookeeper-wire-protocol.md): each request is
sent to Apache ZooKeeper 3.8 and to zkpy and the answers must agree (see
harness.py for what is compared and how it is normalised).

The few `assert`s on outcomes check that a scenario does what it means to
(e.g. that a node really was created); the comparison itself is the test."""

from __future__ import annotations

import re
import struct
import time

import pytest

from zkpy.testing.apache import four_letter_word
from zkpy.protocol.errors import Err
from zkpy.protocol.jute import Writer
from zkpy.protocol.opcodes import AddWatchMode, CreateMode, Op, Perms, WatcherType
from zkpy.protocol.records import (
    ACL, CreateRequest, PathRequest, PathWatchRequest, ReconfigRequest, SASLRequest,
    encode_request,
)

from .conftest import server_pair
from .harness import (
    OPEN, Differential, digest_acl, digest_id, key_value_keys, line_shape, m_check, m_create,
    m_delete, m_get_children, m_get_data, m_set_data, mntr_shape,
)

pytestmark = pytest.mark.apache

READ_ONLY = [ACL(Perms.READ, "world", "anyone")]


def known(reason: str):
    """A known difference from Apache ZooKeeper 3.8.0: the test must fail
    (strict xfail) until zkpy changes or the decision is revisited.  Every
    reason here belongs in docs/compatibility.md."""
    return pytest.mark.xfail(strict=True, reason=reason)


# Differences zkpy chose on purpose: it follows a later ZooKeeper release
# where 3.8.0 misbehaves or lacks a fix (see the zkpy_only tests in
# tests/integration, which check zkpy's side of each).
Z39_EXISTS_ACL = ("deliberate: exists checks READ on an existing node (ZooKeeper 3.8.4/3.9.2+); "
                  "3.8.0 returns the Stat to anyone")
Z39_IPV6_ACL = "deliberate: IPv6 ip ACLs are accepted (3.10); 3.8.0 answers InvalidACL"
Z39_WATCH_MODES = ("deliberate: watch modes coexist on a path (3.9, ZOOKEEPER-4466); in 3.8.0 "
                   "the last registration replaces the mode, in both watch tables")
Z39_WATCH_TYPES = ("deliberate: checkWatches/removeWatches Data and Children match only one-shot "
                   "watches (3.9); in 3.8.0 they match every mode in that table")
Z39_WATCHER_TYPE_45 = ("deliberate: WatcherType 4 (Persistent) and 5 (PersistentRecursive) are "
                       "3.9+; 3.8.0 answers MarshallingError")
Z39_CHECK_PER_CONN = ("deliberate: checkWatches/removeWatches look at the caller's own watches; "
                      "3.8.0 answers OK if any connection watches the path")
Z39_DELETE_CONTAINER = ("deliberate: a client's deleteContainer (20) is decoded as a "
                        "DeleteContainerRequest (3.9+); 3.8.0 takes the raw packet as the path "
                        "and always answers BadArguments")
# Java hash-set iteration order, which zkpy does not reproduce.
JAVA_ORDER_AUTH = ("Java hash order: ZooKeeper expands an 'auth' ACL entry over the "
                   "connection's ids in ConcurrentHashMap order (ServerCnxn.authInfo); zkpy "
                   "uses the order the ids were added")
JAVA_ORDER_EPHEMERALS = ("Java hash order: ZooKeeper deletes a closed/expired session's "
                         "ephemerals in HashSet<String> order (so their events come in that "
                         "order); zkpy deletes them in reverse path order")
# Requests no real client sends, where 3.8.0 does something odd.
ODD_TOP_LEVEL_CHECK = ("3.8.0 runs a top-level check (13): a failed check gets its error, a "
                       "passing one gets no reply at all (the connection stays open); zkpy "
                       "answers Unimplemented and closes, as for an unknown opcode")
ODD_EMPTY_INTERNAL_OPS = ("3.8.0 answers check (13) and createSession (-10) without a body "
                          "with MarshallingError and keeps the connection; zkpy answers "
                          "Unimplemented and closes")
def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


# === 2. session handshake ===============================================================

class TestHandshake:
    @pytest.mark.parametrize("timeout_ms", [1, 3999, 4000, 10000, 40000, 40001, 10**9])
    def test_timeout_negotiation(self, diff, timeout_ms):
        s = diff.session("t", timeout_ms=timeout_ms)
        s.ping()
        s.close_session()

    def test_without_read_only_byte(self, diff):
        s = diff.session("nro", read_only_byte=False)
        s.exists(diff.root)
        s.close_session()

    def test_read_only_true_on_a_standalone_server(self, diff):
        s = diff.session("ro", connect=False)
        s.connect(read_only=True)
        s.create(diff.p("x"))

    def test_reconnect_keeps_the_session_and_its_ephemerals(self, diff):
        s = diff.session("e")
        s.create(diff.p("eph"), b"", flags=CreateMode.EPHEMERAL)
        s.reconnect()
        s.exists(diff.p("eph"))
        s.get_ephemerals(diff.root)

    def test_reconnect_with_a_wrong_password(self, diff):
        s = diff.session("w")
        s.create(diff.p("eph"), flags=CreateMode.EPHEMERAL)
        out = s.reconnect(passwd_ok=False)
        assert out.body["timeOut"] == 0 and out.body["sessionId"] == 0
        s.expect_closed()
        # The session itself is untouched: its ephemeral is still there.
        s2 = diff.sessions[0]
        s2.exists(diff.p("eph"))

    def test_reconnect_to_an_unknown_session(self, diff):
        s = diff.session("u", connect=False)
        s.connect(session_id=lambda ctx: diff.sessions[0].session_ids[ctx.server] + 1000,
                  passwd=bytes(16))
        s.expect_closed()

    def test_reconnect_after_close_session(self, diff):
        s = diff.session("c")
        s.close_session()
        s._new_sockets()
        s.closed_session = False
        s.connect(session_id=lambda ctx: s.session_ids[ctx.server],
                  passwd=lambda ctx: s.passwds[ctx.server])
        s.expect_closed()
        s.closed_session = True

    def test_last_zxid_ahead_of_the_server(self, diff):
        s = diff.session("z", connect=False)
        out = s.connect(last_zxid=lambda ctx: diff.sessions[0].clients[ctx.server].last_zxid + 1000)
        assert out.kind == "closed"

    def test_reconnect_closes_the_other_live_connection(self, diff):
        s = diff.session("m")
        s.get_data(diff.root, watch=True)
        old = dict(s.clients)
        s.clients = {}
        s._new_sockets()
        s.connect(session_id=lambda ctx: s.session_ids[ctx.server],
                  passwd=lambda ctx: s.passwds[ctx.server])
        s.ping()
        closed = {name: c.is_closed_by_server(3.0) for name, c in old.items()}
        assert closed["apache"] == closed["zkpy"], closed
        # The old connection's watch died with it: no event anywhere.
        diff.sessions[0].set_data(diff.root, b"changed")
        s.ping()

    def test_requests_pipelined_behind_the_connect_request(self, diff):
        s = diff.session("p", connect=False)

        def data(ctx):
            w = Writer()
            from zkpy.protocol.records import ConnectRequest
            ConnectRequest(0, 0, 10000, 0, bytes(16), False).write(w)
            return (struct.pack(">i", len(w.out)) + bytes(w.out)
                    + encode_request(1, Op.EXISTS, PathWatchRequest(diff.root, False))
                    + encode_request(2, Op.GET_CHILDREN, PathWatchRequest(diff.root, False)))

        for name, c in s.clients.items():
            c.send_raw(data(None))
            resp = c.recv_connect()
            s.session_ids[name], s.passwds[name] = resp.session_id, resp.passwd
            diff.norms[name].sessions[resp.session_id] = s.name
        s.raw(b"", op=Op.EXISTS, desc="reply 1 (exists), pipelined behind the handshake")
        s.raw(b"", op=Op.GET_CHILDREN, desc="reply 2 (getChildren)")
        s.close_session()


# === 3. headers, special xids, ordering =================================================

class TestXids:
    def test_ping(self, diff):
        s = diff.sessions[0]
        s.ping()
        s.request(Op.PING, xid=77, desc="ping with xid 77")

    def test_auth_replies(self, diff):
        s = diff.sessions[0]
        s.auth("digest", b"alice:secret")
        s.auth("digest", b"bob:pw", xid=12345)
        s.auth("ip", b"")
        s.who_am_i()

    @pytest.mark.parametrize("scheme", ["nosuchscheme", "super", "world", "sasl"])
    def test_auth_failure_closes(self, diff, scheme):
        s = diff.session("a")
        s.auth(scheme, b"x:y")
        s.expect_closed()

    @pytest.mark.parametrize("op", [
        0, 10, 23, 99, 108, 1000, -3,
        pytest.param(13, marks=known(ODD_EMPTY_INTERNAL_OPS)),
        pytest.param(-10, marks=known(ODD_EMPTY_INTERNAL_OPS))])
    def test_unknown_or_misplaced_opcode(self, diff, op):
        s = diff.session("x")
        s.request(op, None, desc=f"opcode {op} with no body")
        s.expect_closed()

    @known(ODD_TOP_LEVEL_CHECK)
    def test_check_outside_multi(self, diff):
        s = diff.session("x")
        s.request(Op.CHECK, m_check(diff.root, 0)[1])
        s.expect_closed()

    def test_set_watches_with_xid_minus_8(self, diff):
        s = diff.session("w")
        s.set_watches(data=[diff.root], xid=-8)

    def test_close_session(self, diff):
        s = diff.session("c")
        s.create(diff.p("e"), flags=CreateMode.EPHEMERAL)
        diff.sessions[0].exists(diff.p("e"), watch=True)
        s.close_session()
        diff.settle()
        diff.sessions[0].exists(diff.p("e"))

    def test_pipelined_requests_are_answered_in_order(self, diff):
        s = diff.sessions[0]
        p = diff.p
        s.pipeline([
            m_create(p("a")),
            (Op.EXISTS, PathWatchRequest(p("a"), True)),
            m_set_data(p("a"), b"1"),
            (Op.GET_DATA, PathWatchRequest(p("a"), True)),
            m_create(p("a/b")),
            (Op.GET_CHILDREN, PathWatchRequest(p("a"), True)),
            m_delete(p("a/b")),
            (Op.SYNC, PathRequest(p("a"))),
            m_set_data(p("a"), b"2"),
            (Op.PING, None),
            (Op.GET_CHILDREN2, PathWatchRequest(p("a"), False)),
        ])

    def test_write_reply_zxids_and_read_reply_zxids(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.get_data(p("a"))
        s.create(p("a"))          # fails: does it consume a zxid?
        s.get_data(p("a"))
        s.set_data(p("a"), b"", version=5)
        s.get_data(p("a"))
        s.delete(p("nope"))
        s.ping()


# === 4/6. create ========================================================================

class TestCreate:
    def test_create_and_create2(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"), b"data")
        s.create2(p("b"), b"data2")
        s.get_data(p("a"))
        s.get_data(p("b"))
        s.get_children2(diff.root)
        s.exists(diff.root)

    def test_null_and_empty_data(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create2(p("null"), None)
        s.create2(p("empty"), b"")
        s.get_data(p("null"))
        s.get_data(p("empty"))
        s.set_data(p("empty"), None)
        s.get_data(p("empty"))

    def test_node_exists_and_no_node(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a"))
        s.create2(p("a"))
        s.create(p("missing/child"))
        s.create(p("a"), acl=[])  # InvalidACL comes before NodeExists

    @pytest.mark.parametrize("rel", [
        "", "/", "//", "noslash", "a/", "a//b", "./a", "a/.", "a/..", "..", ".",
        "a\x00b", "a\x01", "a\x1f", "a\x7f", "a\u0085", "a\u009f", "a\ud7ff", "a\ue000",
        "a\uf8ff", "a\uf900", "a\ufff0", "a\uffff", "a\U0001F600", "a b", "a..b", "...",
        "é", "zookeeper",
    ])
    def test_paths(self, diff, rel):
        s = diff.sessions[0]
        s.create(diff.p("a"))
        path = diff.root + "/" + rel if not rel.startswith("/") else diff.root + rel
        if rel == "noslash":
            path = "noslash"
        s.create2(path, b"v")
        s.exists(path)
        s.get_data(path)
        s.set_data(path, b"w")
        s.set_acl(path, OPEN)
        s.get_children(path)
        s.get_acl(path)
        s.delete(path)
        s.multi(m_check(path, -1))

    @pytest.mark.parametrize("path", [
        None, "", "/", "a", "//", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"])
    def test_odd_absolute_paths(self, diff, path):
        s = diff.sessions[0]
        s.create(path)
        s.exists(path)
        s.get_data(path)
        s.delete(path)
        s.get_children(path)
        s.sync(path)

    def test_children_of_system_nodes(self, diff):
        s = diff.sessions[0]
        s.create(f"/zookeeper/{diff.root[1:]}")
        s.delete(f"/zookeeper/{diff.root[1:]}")
        s.create(f"/zookeeper/quota/{diff.root[1:]}")
        s.delete(f"/zookeeper/quota/{diff.root[1:]}")
        s.create(f"/zookeeper/config/{diff.root[1:]}")
        s.set_data("/zookeeper/config", b"x")
        s.get_acl("/zookeeper/config")

    @pytest.mark.parametrize("flags", [-1, 7, 8, 100, 4])
    @pytest.mark.parametrize("op", [Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER])
    def test_create_flags(self, diff, op, flags):
        s = diff.sessions[0]
        s.create(diff.p("n"), flags=flags, op=op)
        s.exists(diff.p("n"))
        s.create(diff.p("n/child"))
        s.delete(diff.p("n/child"))
        s.exists(diff.p("n"))

    @pytest.mark.parametrize("flags", [0, 1, 2, 3])
    def test_create_container_opcode_with_other_flags(self, diff, flags):
        s = diff.sessions[0]
        s.create_container(diff.p("c"), flags=flags)
        s.exists(diff.p("c"))

    def test_sequential_names(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("q"))
        s.create(p("q/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.create(p("q/plain"))
        s.create2(p("q/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.create(p("q/"), flags=CreateMode.PERSISTENT_SEQUENTIAL)       # "/q/0000000003"
        s.create(p("q/"), flags=CreateMode.PERSISTENT)                  # BadArguments
        s.create(p("q/e-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL)
        s.get_children2(p("q"))
        s.delete(p("q/plain"))
        s.delete(p("q/x-0000000000"))
        s.create(p("q/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)    # not reused: 5
        s.get_children2(p("q"))
        s.create(p("q/x-0000000006"))
        s.create(p("q/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)    # NodeExists
        s.create(p("q/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.get_children2(p("q"))
        s.create(p("nope/x-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)

    def test_sequential_counter_after_failed_creates(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("q"))
        s.create(p("q/a"))
        s.create(p("q/a"))  # NodeExists: does not count
        s.create(p("q/b"), acl=[])  # InvalidACL
        s.create(p("q/s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.multi(m_create(p("q/m-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
                m_create(p("q/m-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
                m_create(p("q/a")))  # the multi fails: the counter stays
        s.create(p("q/s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.multi(m_create(p("q/m-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
                m_create(p("q/m-"), flags=CreateMode.PERSISTENT_SEQUENTIAL))
        s.get_children2(p("q"))

    def test_children_of_ephemerals(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("e"), flags=CreateMode.EPHEMERAL)
        s.create(p("e/child"))
        s.create(p("e/child"), flags=CreateMode.EPHEMERAL)
        s.create(p("e/s-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL)
        s.create_container(p("e/c"))
        s.create_ttl(p("e/t"), 1000)
        s.multi(m_create(p("e/m")))
        s.get_children2(p("e"))
        s.exists(p("e"))

    def test_ephemeral_owner(self, diff):
        s, p = diff.sessions[0], diff.p
        s2 = diff.session("s2")
        s.create2(p("mine"), flags=CreateMode.EPHEMERAL)
        s2.create2(p("theirs"), flags=CreateMode.EPHEMERAL_SEQUENTIAL)
        s2.exists(p("mine"))
        s.get_ephemerals("/")
        s2.get_ephemerals("/")
        s2.get_ephemerals(p("the"))
        s2.get_ephemerals(p("mine"))
        s2.get_ephemerals("")
        s2.get_ephemerals(" ")
        s2.get_ephemerals(None)

    def test_cversion_and_pzxid(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        for i in range(3):
            s.create(p(f"a/{i}"))
        s.exists(p("a"))
        s.delete(p("a/1"))
        s.exists(p("a"))
        s.set_data(p("a/0"), b"x")
        s.exists(p("a"))
        s.delete(p("a/0"))
        s.delete(p("a/2"))
        s.exists(p("a"))
        s.get_children2(p("a"))

    def test_create_under_the_parent_of_a_deleted_parent(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.delete(p("a"))
        s.create(p("a/b"))
        s.create(p("a"))
        s.create2(p("a/b"))


# === containers and TTL nodes ===========================================================

class TestContainersAndTtl:
    def test_container_stats(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create_container(p("c"), b"d")
        s.create2(p("c/child"))
        s.create2(p("c/eph"), flags=CreateMode.EPHEMERAL)
        s.exists(p("c"))
        s.get_ephemerals(p(""))

    @pytest.mark.parametrize("flags,ttl", [
        (flags, ttl) for flags in (5, 6, 0, 1, 2, 4)
        for ttl in (-1, 0, 1, 1000, 0xFFFFFFFFFF, 0x10000000000, 2**62)
        # These kill Apache ZooKeeper: see test_createttl_opcode_with_a_plain_mode.
        if not (flags not in (5, 6) and ttl < 0)])
    def test_create_ttl(self, diff, flags, ttl):
        s, p = diff.sessions[0], diff.p
        s.create_ttl(p("t"), ttl, b"x", flags=flags)
        s.exists(p("t"))
        s.get_children2(diff.root)

    @pytest.mark.xfail(strict=True, reason=(
        "Apache ZooKeeper 3.8.0 crashes: createTTL (opcode 21) with a non-TTL mode and ttl -1 "
        "passes prep, then the TTL owner (-1) is rejected by the SyncThread, a critical "
        "thread, and the whole server exits.  zkpy creates the node with the given mode."))
    @pytest.mark.parametrize("flags", [0, 1])
    def test_createttl_opcode_with_a_plain_mode(self, flags):
        cfg = {"extendedTypesEnabled": "true"}
        with server_pair(cfg) as (apache, zkpy), Differential(apache, zkpy) as d:
            s = d.session()
            d.make_root(s)
            s.create_ttl(d.p("t"), -1, b"x", flags=flags)

    @pytest.mark.parametrize("op", [Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER])
    @pytest.mark.parametrize("flags", [5, 6])
    def test_ttl_flags_on_other_opcodes(self, diff, op, flags):
        s = diff.sessions[0]
        s.create(diff.p("t"), flags=flags, op=op)
        s.create(diff.p("t2"), flags=flags, op=op, ttl=1000)
        s.exists(diff.p("t"))

    @pytest.mark.parametrize("ttl", [-1, 5000])
    def test_ttl_in_multi(self, diff, ttl):
        s, p = diff.sessions[0], diff.p
        s.multi(m_create(p("t"), flags=5, op=Op.CREATE_TTL, ttl=ttl),
                m_create(p("t/c")),
                m_create(p("c"), flags=4, op=Op.CREATE_CONTAINER),
                m_create(p("s-"), flags=6, op=Op.CREATE_TTL, ttl=ttl))
        s.get_children2(diff.root)

    @known(Z39_DELETE_CONTAINER)
    def test_delete_container_from_a_client(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create_container(p("c"))
        s.create(p("c/x"))
        s.create_ttl(p("t"), 100000)
        s.create(p("plain"))
        s.create(p("eph"), flags=CreateMode.EPHEMERAL)
        for rel in ("c", "t", "plain", "eph", "missing", "c/x"):
            s.request(Op.DELETE_CONTAINER, PathRequest(p(rel)))
        s.request(Op.DELETE_CONTAINER, PathRequest("/"))
        s.request(Op.DELETE_CONTAINER, PathRequest("/zookeeper"))
        s.request(Op.DELETE_CONTAINER, PathRequest("nopath"))
        s.get_children2(diff.root)

    def test_createttl_without_extended_types(self):
        with server_pair({}) as (apache, zkpy), Differential(apache, zkpy) as d:
            s = d.session()
            d.make_root(s)
            s.create_ttl(d.p("t"), 1000)
            s.create_ttl(d.p("t"), -5)
            s.create_ttl(d.p("t"), 1000, flags=0)
            s.multi(m_create(d.p("t"), flags=5, op=Op.CREATE_TTL, ttl=1000))
            s.create_container(d.p("c"))

    def test_reaping(self):
        cfg = {"extendedTypesEnabled": "true", "znode.container.checkIntervalMs": "500"}
        with server_pair(cfg) as (apache, zkpy), Differential(apache, zkpy) as d:
            s, p = d.session(), d.p
            d.make_root(s)
            s.create_container(p("used"))
            s.create(p("used/x"))
            s.create_container(p("never-used"))
            s.create_container(p("busy"))
            s.create(p("busy/x"))
            s.create_ttl(p("ttl-short"), 300)
            s.create_ttl(p("ttl-long"), 600000)
            s.create_ttl(p("ttl-parent"), 300)
            s.create(p("ttl-parent/x"))
            # By opcode, not flags: create(flags=4) is a plain node (kept),
            # createContainer(flags=1) a container; in a multi, flags decide.
            s.create(p("flag4"), flags=CreateMode.CONTAINER)
            s.create_container(p("cont-eph"), flags=CreateMode.EPHEMERAL)
            s.multi(m_create(p("multi4"), flags=CreateMode.CONTAINER))
            for rel in ("flag4", "cont-eph", "multi4"):
                s.create(p(rel + "/x"))
                s.delete(p(rel + "/x"))
            # One watch per connection: which node is reaped first (or in
            # which round) depends on timing, and the order within a round
            # on the server (zkpy: path order; ZooKeeper: containers first).
            w1, w2 = d.session("w1"), d.session("w2")
            w1.exists(p("used"), watch=True)
            w2.get_children(d.root, watch=True)
            s.delete(p("used/x"))
            # Wait until each server's reaper has run (well) more than once.
            _wait_until(d, lambda c: all(_missing(c, p(rel)) for rel in (
                "used", "ttl-short", "cont-eph", "multi4")), timeout=15)
            time.sleep(1.5)
            d.settle()
            s.get_children2(d.root)
            for rel in ("used", "never-used", "busy", "ttl-short", "ttl-long", "ttl-parent",
                        "flag4", "cont-eph", "multi4"):
                s.exists(p(rel))


def _missing(client, path) -> bool:
    hdr, _ = client.request(Op.EXISTS, PathWatchRequest(path, False))
    return hdr.err == Err.NO_NODE


def _wait_until(d, cond, timeout=15.0, interval=0.2):
    """Poll each server (outside the comparison, on a fresh uncompared
    connection) until cond(client) holds on both."""
    from zkpy.rawclient import RawClient
    deadline = time.monotonic() + timeout
    for server, (host, port) in d.addresses.items():
        c = RawClient(host, port)
        c.connect(timeout_ms=30000)
        try:
            while not cond(c):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{server}: condition not met in {timeout}s")
                time.sleep(interval)
        finally:
            c.close_session()


# === delete =============================================================================

class TestDelete:
    def test_versions_and_not_empty(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/b"))
        s.delete(p("a"))
        s.delete(p("a/b"), version=3)
        s.delete(p("a/b"), version=-2)
        s.delete(p("a/b"), version=0)
        s.delete(p("a/b"))
        s.delete(p("a"), version=1)
        s.set_data(p("a"), b"x")
        s.delete(p("a"), version=1)
        s.delete(p("missing"), version=5)
        s.delete(p("missing/child"))

    def test_not_empty_comes_after_bad_version(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/b"))
        s.delete(p("a"), version=9)

    @pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config",
                                      "", "x", "/zookeeper/", "/zookeeper/config/x"])
    def test_system_and_odd_paths(self, diff, path):
        diff.sessions[0].delete(path)

    def test_delete_with_a_trailing_slash(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.delete(p("a") + "/")
        s.delete(p("a") + "//")
        s.delete(p("a/./"))
        s.exists(p("a"))


# === setData / setACL / versions ========================================================

class TestSetDataAndAcl:
    def test_set_data(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"), b"one")
        s.set_data(p("a"), b"two")
        s.set_data(p("a"), b"three", version=1)
        s.set_data(p("a"), b"four", version=1)
        s.set_data(p("a"), b"five", version=-1)
        s.set_data(p("a"), b"x" * 5000)
        s.get_data(p("a"))
        s.set_data(p("missing"), b"x")
        s.set_data(p("missing"), b"x", version=7)

    def test_set_data_timestamps(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create2(p("a"), b"one")
        time.sleep(0.02)
        s.set_data(p("a"), b"two")
        s.get_data(p("a"))
        s.set_acl(p("a"), READ_ONLY + [ACL(Perms.ADMIN, "world", "anyone")])
        s.get_data(p("a"))

    def test_set_acl(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.set_acl(p("a"), READ_ONLY, version=3)
        s.set_acl(p("a"), [ACL(31, "world", "anyone"), ACL(31, "world", "anyone")], version=0)
        s.get_acl(p("a"))
        s.set_acl(p("a"), [ACL(Perms.READ | Perms.ADMIN, "world", "anyone")], version=1)
        s.get_acl(p("a"))
        s.set_data(p("a"), b"x")  # no WRITE any more
        s.set_acl(p("a"), READ_ONLY)
        s.set_acl(p("a"), OPEN)  # no ADMIN any more
        s.get_acl(p("a"))
        s.set_acl(p("missing"), OPEN)
        s.set_acl(p("missing"), [])

    @pytest.mark.parametrize("acl", [
        [], None,
        [ACL(31, "world", "someone")],
        [ACL(31, "world", "")],
        [ACL(31, "auth", "")],
        [ACL(31, "digest", "user")],
        [ACL(31, "digest", "user:")],
        [ACL(31, "digest", ":hash")],
        [ACL(31, "digest", "user:hash:more")],
        [ACL(31, "digest", "user:hash")],
        [ACL(31, "ip", "127.0.0.1")],
        [ACL(31, "ip", "10.0.0.0/8")],
        [ACL(31, "ip", "10.0.0.0/33")],
        [ACL(31, "ip", "10.0.0.0/")],
        pytest.param([ACL(31, "ip", "::1")], marks=known(Z39_IPV6_ACL)),
        [ACL(31, "ip", "::1/129")],
        [ACL(31, "ip", "10.0.0.1/+8")],
        [ACL(31, "ip", "010.0.0.1")],
        [ACL(31, "ip", "256.0.0.1")],
        [ACL(31, "ip", "10.0.0.1/0")],
        [ACL(31, "ip", "10.0.0.1/-1")],
        [ACL(31, "ip", "not-an-ip")],
        [ACL(31, "ip", "1.2.3")],
        [ACL(31, "super", "")],
        [ACL(31, "sasl", "user")],
        [ACL(31, "x509", "CN=x")],
        [ACL(31, "nosuch", "x")],
        [ACL(31, "WORLD", "anyone")],
        [ACL(0, "world", "anyone")],
        [ACL(-1, "world", "anyone")],
        [ACL(1000, "world", "anyone")],
        [ACL(31, "world", "anyone"), ACL(31, "nosuch", "x")],
        [ACL(1, "world", "anyone"), ACL(2, "world", "anyone"), ACL(1, "world", "anyone")],
        [ACL(31, None, None)],
    ])
    def test_acl_validation(self, diff, acl):
        s, p = diff.sessions[0], diff.p
        s.create2(p("n"), acl=acl)
        s.get_acl(p("n"))
        s.create(p("m"))
        s.set_acl(p("m"), acl)
        s.get_acl(p("m"))

    def test_auth_scheme_acl(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("noauth"), acl=[ACL(31, "auth", "")])
        s.auth("ip", b"")
        s.create(p("iponly"), acl=[ACL(31, "auth", "")])
        s.auth("digest", b"alice:pw")
        s.create(p("a"), acl=[ACL(5, "auth", "whatever"), ACL(1, "world", "anyone")])
        s.get_acl(p("a"))
        s.auth("digest", b"alice:pw")  # the same id again: still one entry
        s.create(p("b"), acl=[ACL(31, "auth", ""), ACL(1, "auth", "x"),
                              digest_acl("alice", "pw", 31)])
        s.get_acl(p("b"))
        s.set_acl(p("b"), [ACL(3, "auth", "")])
        s.get_acl(p("b"))

    @known(JAVA_ORDER_AUTH)
    def test_auth_scheme_acl_with_several_ids(self, diff):
        s, p = diff.sessions[0], diff.p
        s.auth("digest", b"alice:pw")
        s.auth("digest", b"bob:pw")
        s.create(p("a"), acl=[ACL(5, "auth", "")])
        s.get_acl(p("a"))


# === ACL checks, NoAuth, getACL redaction ===============================================

class TestAcl:
    def test_no_auth_everywhere(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("locked"), b"secret", acl=[digest_acl("alice", "pw")])
        s.create(p("locked-ro"), b"x", acl=READ_ONLY)
        other = diff.session("other")
        for path in (p("locked"), p("locked-ro")):
            other.get_data(path, watch=True)
            if path == p("locked-ro"):  # see test_exists_without_read
                other.exists(path, watch=True)
            other.get_children(path, watch=True)
            other.get_children2(path)
            other.get_acl(path)
            other.set_data(path, b"x")
            other.set_acl(path, OPEN)
            other.create(path + "/child")
            other.delete(path + "/child")
            other.get_all_children_number(path)
            other.multi(m_check(path, 0))
            other.multi_read(m_get_data(path), m_get_children(path))
            other.add_watch(path, AddWatchMode.PERSISTENT)
            other.sync(path)
        s.set_data(p("locked"), b"changed")  # would fire other's watches, if any were set
        diff.settle()
        other.auth("digest", b"alice:pw")
        other.get_data(p("locked"), watch=True)
        other.set_data(p("locked"), b"mine")
        other.delete(p("locked"))

    @known(Z39_EXISTS_ACL)
    def test_exists_without_read(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("locked"), b"secret", acl=[digest_acl("alice", "pw")])
        other = diff.session("other")
        other.exists(p("locked"), watch=True)

    def test_exists_watch_without_read_fires_nothing(self, diff):
        """Debian's 3.8.0 filters notifications by READ (the CVE-2024-23944
        fix), as zkpy does: a watch set on an unreadable node stays silent."""
        s, p = diff.sessions[0], diff.p
        s.create(p("locked"), b"secret", acl=[digest_acl("alice", "pw")])
        other = diff.session("other")
        # Registered with no reply compared (Apache answers with the Stat,
        # zkpy with NoAuth; see test_exists_without_read).
        for c in other.clients.values():
            c.request(Op.EXISTS, PathWatchRequest(p("locked"), True))
        s.set_data(p("locked"), b"changed")
        s.delete(p("locked"))
        diff.settle()

    def test_delete_needs_delete_on_the_parent(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("parent"), acl=[ACL(Perms.ALL & ~Perms.DELETE, "world", "anyone")])
        s.create(p("parent/child"))
        s.delete(p("parent/child"))
        s.delete(p("parent/missing"))
        s.create(p("nc"), acl=[ACL(Perms.ALL & ~Perms.CREATE, "world", "anyone")])
        s.create(p("nc/child"))
        s.create(p("nc/s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.create(p("nc/child"), acl=[])

    def test_get_acl_redaction(self, diff):
        s, p = diff.sessions[0], diff.p
        acl = [digest_acl("alice", "pw", Perms.ALL), digest_acl("bob", "pw", Perms.READ),
               ACL(Perms.READ, "ip", "127.0.0.1")]
        s.create(p("n"), acl=acl)
        s.get_acl(p("n"))                  # ip:127.0.0.1 gives READ, not ADMIN
        bob = diff.session("bob")
        bob.auth("digest", b"bob:pw")
        bob.get_acl(p("n"))
        alice = diff.session("alice")
        alice.auth("digest", b"alice:pw")
        alice.get_acl(p("n"))              # ADMIN: unredacted
        s.create(p("admin-only"), acl=[ACL(Perms.ADMIN, "world", "anyone"),
                                       digest_acl("carol", "pw", Perms.READ)])
        s.get_acl(p("admin-only"))
        s.create(p("none"), acl=[ACL(Perms.WRITE, "world", "anyone"),
                                 digest_acl("carol", "pw", Perms.READ)])
        s.get_acl(p("none"))

    def test_ip_acl(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("lo"), b"x", acl=[ACL(31, "ip", "127.0.0.0/8")])
        s.create(p("far"), b"x", acl=[ACL(31, "ip", "10.0.0.0/8")])
        for rel in ("lo", "far"):
            s.get_data(p(rel))
            s.create(p(rel) + "/c")

    def test_super_digest(self):
        cfg = {"DigestAuthenticationProvider.superDigest": digest_id("super", "adminpw")}
        with server_pair(cfg) as (apache, zkpy), Differential(apache, zkpy) as d:
            s = d.session()
            d.make_root(s)
            s.create(d.p("locked"), b"x", acl=[digest_acl("alice", "pw")])
            su = d.session("su")
            su.auth("digest", b"super:wrong")
            su.get_data(d.p("locked"))
            su.auth("digest", b"super:adminpw")
            su.get_data(d.p("locked"))
            su.get_acl(d.p("locked"))
            su.set_acl(d.p("locked"), OPEN, version=0)
            su.who_am_i()
            su.set_data("/zookeeper/config", b"")
            su2 = d.session("su2")
            su2.auth("digest", b"super:adminpw")
            su2.create(d.p("c"), acl=[ACL(31, "auth", "")])
            su2.get_acl(d.p("c"))
            su2.who_am_i()

    def test_who_am_i(self, diff):
        s = diff.sessions[0]
        s.who_am_i()
        s.auth("digest", b"alice:pw")
        s.auth("digest", b"alice:pw")
        s.auth("digest", b"bob:x:y")
        s.auth("digest", b"noco")
        s.who_am_i()


# === multi / multiRead ==================================================================

class TestMulti:
    def test_success(self, diff):
        s, p = diff.sessions[0], diff.p
        w = diff.session("watcher")
        w.get_children(diff.root, watch=True)
        w.exists(p("a"), watch=True)
        s.multi(m_create(p("a"), b"1"),
                m_create(p("a/b"), b"2", op=Op.CREATE2),
                m_set_data(p("a"), b"3", 0),
                m_check(p("a"), 1),
                m_create(p("s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
                m_create(p("s-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL, op=Op.CREATE2),
                m_create(p("c"), op=Op.CREATE_CONTAINER, flags=4),
                m_delete(p("a/b")))
        diff.settle()
        s.get_children2(diff.root)
        s.get_data(p("a"))

    @pytest.mark.parametrize("fail_at", [0, 1, 2, 3])
    def test_failure_positions(self, diff, fail_at):
        s, p = diff.sessions[0], diff.p
        s.create(p("x"), b"x")
        ops = [m_create(p("a")), m_set_data(p("x"), b"y"), m_check(p("x"), 1), m_delete(p("x"))]
        bad = [m_create(p("x")), m_set_data(p("missing"), b""), m_check(p("x"), 7),
               m_delete(p("a/b"))][fail_at]
        ops[fail_at] = bad
        w = diff.session("w")
        w.get_data(p("x"), watch=True)
        s.multi(*ops)
        diff.settle()
        s.get_children2(diff.root)
        s.get_data(p("x"))

    def test_intermediate_state(self, diff):
        s, p = diff.sessions[0], diff.p
        s.multi(m_create(p("a")), m_create(p("a/b")), m_delete(p("a/b")), m_delete(p("a")),
                m_create(p("a"), b"again"), m_set_data(p("a"), b"v1", 0), m_check(p("a"), 1))
        s.get_data(p("a"))
        s.multi(m_delete(p("a")), m_check(p("a"), -1))
        s.multi(m_set_data(p("a"), b"1"), m_set_data(p("a"), b"2"), m_check(p("a"), 3),
                m_set_data(p("a"), b"3", 3))
        s.get_data(p("a"))

    def test_multi_errors(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("e"), flags=CreateMode.EPHEMERAL)
        s.create(p("full"))
        s.create(p("full/c"))
        s.multi(m_create(p("e/c")))
        s.multi(m_delete(p("full")))
        s.multi(m_create(p("acl"), acl=[]))
        s.multi(m_create(p("bad/")))
        s.multi(m_create("nopath"))
        s.multi(m_delete("/zookeeper"))
        s.multi(m_set_data(p("full"), b"", 4))
        s.multi(m_create(p("f"), flags=9))
        s.multi(m_create(p("ok")), m_create(p("f"), flags=9))
        s.multi(m_create(p("ok")), m_create(p("t"), op=Op.CREATE_TTL, flags=5, ttl=0))
        s.multi(m_create(p("ok")), m_create(p("t"), op=Op.CREATE, flags=0, ttl=0))
        s.get_children2(diff.root)

    def test_empty_multi(self, diff):
        s = diff.sessions[0]
        s.multi()
        s.multi_read()
        s.ping()

    def test_no_auth_in_multi(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("ro"), acl=READ_ONLY)
        s.multi(m_create(p("x")), m_set_data(p("ro"), b"x"), m_create(p("y")))
        s.multi(m_create(p("ro/x")))
        s.multi(m_delete(p("ro")))

    def test_mixed_and_foreign_ops(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.multi(m_create(p("x")), m_get_data(p("a")))
        s.multi_read(m_get_data(p("a")), m_create(p("y")))
        s.multi(m_create(p("z")), (Op.EXISTS, PathWatchRequest(p("a"), False)))
        s.multi((Op.SET_ACL, m_check(p("a"), 0)[1]))
        s.get_children2(diff.root)

    def test_multi_read(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"), b"A")
        s.create(p("a/b"), None)
        s.create(p("locked"), b"L", acl=[digest_acl("alice", "pw")])
        w = diff.session("w")
        w.multi_read(m_get_data(p("a")), m_get_children(p("a")), m_get_data(p("missing")),
                     m_get_children(p("missing")), m_get_data(p("locked")),
                     m_get_data(p("a/b")), m_get_children(diff.root))
        # multiRead never sets watches, even when asked to.
        w.multi_read((Op.GET_DATA, PathWatchRequest(p("a"), True)),
                     (Op.GET_CHILDREN, PathWatchRequest(p("a"), True)))
        s.set_data(p("a"), b"changed")
        s.create(p("a/c"))
        diff.settle()

    def test_truncated_multi(self, diff):
        s, p = diff.sessions[0], diff.p

        def no_terminator(ctx):
            w = Writer()
            w.int(Op.CREATE)
            w.bool(False)
            w.int(-1)
            CreateRequest(p("x"), b"", OPEN, 0).write(w)
            body = bytes(w.out)
            return frame(struct.pack(">ii", ctx.client.next_xid(), Op.MULTI) + body)

        s.raw(no_terminator, op=Op.MULTI, desc="multi without its terminator")
        s.exists(p("x"))


# === watches ============================================================================

class TestWatches:
    def test_exists_watch_on_a_missing_node(self, diff):
        s, p = diff.sessions[0], diff.p
        w = diff.session("w")
        w.exists(p("a"), watch=True)
        w.get_data(p("a"), watch=True)        # NoNode: no watch
        w.get_children(p("a"), watch=True)    # NoNode: no watch
        s.create(p("a"))
        diff.settle()
        s.set_data(p("a"), b"x")
        s.delete(p("a"))
        diff.settle()

    def test_one_shot_watches(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.get_data(p("a"), watch=True)
        w.get_data(p("a"), watch=True)   # twice: still one event
        w.exists(p("a"), watch=True)
        w.get_children(p("a"), watch=True)
        s.set_data(p("a"), b"1")
        diff.settle()
        s.set_data(p("a"), b"2")
        s.create(p("a/b"))
        diff.settle()
        s.create(p("a/c"))
        diff.settle()

    def test_delete_fires_data_and_child_watchers_once(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/b"))
        w = diff.session("w")
        w.get_data(p("a/b"), watch=True)
        w.get_children(p("a/b"), watch=True)
        w.get_children(p("a"), watch=True)
        w2 = diff.session("w2")
        w2.get_children(p("a/b"), watch=True)
        w2.exists(p("a/b"), watch=True)
        s.delete(p("a/b"))
        diff.settle()

    def test_own_write_event_comes_before_its_reply(self, diff):
        s, p = diff.sessions[0], diff.p
        s.exists(p("a"), watch=True)
        s.get_children(diff.root, watch=True)
        s.create(p("a"))
        s.get_data(p("a"), watch=True)
        s.set_data(p("a"), b"x")
        s.get_children(diff.root, watch=True)
        s.exists(p("a"), watch=True)
        s.delete(p("a"))

    def test_set_acl_sync_check_and_failed_writes_fire_nothing(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.get_data(p("a"), watch=True)
        w.get_children(p("a"), watch=True)
        s.set_acl(p("a"), OPEN)
        s.sync(p("a"))
        s.multi(m_check(p("a"), 0))
        s.set_data(p("a"), b"x", version=9)
        s.create(p("a"))
        s.multi(m_set_data(p("a"), b"x"), m_check(p("a"), 9))
        diff.settle()

    def test_multi_events_in_order(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.get_children(diff.root, watch=True)
        w.get_children(p("a"), watch=True)
        w.exists(p("b"), watch=True)
        w.get_data(p("a"), watch=True)
        s.multi(m_create(p("a/x")), m_create(p("b")), m_set_data(p("a"), b"1"),
                m_delete(p("a/x")))
        diff.settle()

    def test_persistent_watch(self, diff):
        s, p = diff.sessions[0], diff.p
        w = diff.session("w")
        w.add_watch(p("a"), AddWatchMode.PERSISTENT)
        s.create(p("a"))
        s.create(p("a/b"))
        s.create(p("a/b/c"))
        s.set_data(p("a"), b"1")
        s.set_data(p("a/b"), b"1")
        s.delete(p("a/b/c"))
        s.delete(p("a/b"))
        s.delete(p("a"))
        s.create(p("a"))
        diff.settle()
        w.check_watches(p("a"), WatcherType.ANY)
        w.remove_watches(p("a"), WatcherType.ANY)
        w.check_watches(p("a"), WatcherType.ANY)
        w.remove_watches(p("a"), WatcherType.ANY)
        s.set_data(p("a"), b"2")
        diff.settle()

    @known(Z39_WATCH_TYPES)
    @pytest.mark.parametrize("mode", [AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE])
    def test_data_and_children_types_on_persistent_watches(self, diff, mode):
        s, p = diff.sessions[0], diff.p
        w = diff.session("w")
        w.add_watch(p("a"), mode)
        w.check_watches(p("a"), WatcherType.DATA)
        w.check_watches(p("a"), WatcherType.CHILDREN)
        w.remove_watches(p("a"), WatcherType.DATA)
        w.check_watches(p("a"), WatcherType.ANY)
        s.create(p("a"))
        diff.settle()

    def test_recursive_watch(self, diff):
        s, p = diff.sessions[0], diff.p
        w = diff.session("w")
        w.add_watch(p("a"), AddWatchMode.PERSISTENT_RECURSIVE)
        s.create(p("a"))
        s.create(p("a/b"))
        s.create(p("a/b/c"), flags=CreateMode.EPHEMERAL)
        s.set_data(p("a/b/c"), b"1")
        s.multi(m_create(p("a/x")), m_delete(p("a/x")))
        s.create(p("ab"))
        s.delete(p("a/b/c"))
        diff.settle()
        w.add_watch(p("a/b"), AddWatchMode.PERSISTENT_RECURSIVE)
        s.set_data(p("a/b"), b"once per connection")
        diff.settle()
        w.add_watch("/", AddWatchMode.PERSISTENT_RECURSIVE)
        s.set_data(p("a"), b"x")
        diff.settle()
        w.remove_watches("/", WatcherType.ANY)
        w.remove_watches(p("a"), WatcherType.ANY)
        w.check_watches(p("a"), WatcherType.ANY)
        s.set_data(p("a"), b"y")
        diff.settle()

    @known(Z39_WATCH_MODES)
    def test_standard_watch_after_a_persistent_one(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.add_watch(p("a"), AddWatchMode.PERSISTENT)
        w.get_data(p("a"), watch=True)
        s.set_data(p("a"), b"1")
        s.set_data(p("a"), b"2")
        s.create(p("a/b"))
        diff.settle()
        w.get_children(p("a"), watch=True)
        w.add_watch(p("a"), AddWatchMode.PERSISTENT_RECURSIVE)
        s.create(p("a/c"))
        s.set_data(p("a/c"), b"1")
        s.set_data(p("a"), b"3")
        diff.settle()

    @pytest.mark.parametrize("mode", [-1, 2, 3, 100])
    def test_add_watch_bad_mode(self, diff, mode):
        w = diff.session("w")
        w.add_watch(diff.p("a"), mode)
        w.ping()

    def test_add_watch_odd_paths(self, diff):
        w = diff.session("w")
        w.add_watch("", AddWatchMode.PERSISTENT)
        w.add_watch("noslash", AddWatchMode.PERSISTENT_RECURSIVE)
        w.add_watch(diff.p("x") + "/", AddWatchMode.PERSISTENT)
        w.ping()

    @pytest.mark.parametrize("wtype", [WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY])
    def test_check_and_remove_watches(self, diff, wtype):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.check_watches(p("a"), wtype)
        w.remove_watches(p("a"), wtype)
        w.get_data(p("a"), watch=True)
        w.get_children(p("a"), watch=True)
        w.check_watches(p("a"), wtype)
        w.remove_watches(p("a"), wtype)
        w.check_watches(p("a"), WatcherType.DATA)
        w.check_watches(p("a"), WatcherType.CHILDREN)
        s.set_data(p("a"), b"x")
        s.create(p("a/b"))
        diff.settle()
        w.exists(p("missing"), watch=True)
        w.check_watches(p("missing"), wtype)
        w.remove_watches(p("missing"), wtype)
        w.check_watches(p("missing"), wtype)

    @pytest.mark.parametrize("wtype", [
        0, 6, -1,
        pytest.param(4, marks=known(Z39_WATCHER_TYPE_45)),
        pytest.param(5, marks=known(Z39_WATCHER_TYPE_45))])
    def test_check_and_remove_watches_bad_types(self, diff, wtype):
        p = diff.p
        w = diff.session("w")
        w.add_watch(p("a"), AddWatchMode.PERSISTENT)
        w.add_watch(p("b"), AddWatchMode.PERSISTENT_RECURSIVE)
        w.check_watches(p("a"), wtype)
        w.check_watches(p("b"), wtype)
        w.remove_watches(p("a"), wtype)
        w.remove_watches(p("b"), wtype)
        w.ping()

    @known(Z39_CHECK_PER_CONN)
    def test_remove_watches_of_another_session(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.get_data(p("a"), watch=True)
        s.check_watches(p("a"), WatcherType.DATA)
        s.remove_watches(p("a"), WatcherType.DATA)
        s.set_data(p("a"), b"x")
        diff.settle()

    def test_event_acl_filtering(self, diff):
        """Notifications for nodes the watcher cannot read (ZOOKEEPER-4026,
        3.8.4+): what does 3.8 do?"""
        s, p = diff.sessions[0], diff.p
        s.auth("digest", b"alice:pw")
        s.create(p("a"), b"", acl=[digest_acl("alice", "pw")])
        w = diff.session("w")
        w.add_watch(diff.root, AddWatchMode.PERSISTENT_RECURSIVE)
        w.exists(p("b"), watch=True)
        s.set_data(p("a"), b"1")
        s.create(p("b"), acl=[digest_acl("alice", "pw")])
        s.create(p("a/c"))
        s.delete(p("a/c"))
        s.delete(p("b"))
        diff.settle()

    def test_ephemerals_of_a_closed_session_fire_watches(self, diff):
        s, p = diff.sessions[0], diff.p
        e = diff.session("e")
        e.create(p("e1"), flags=CreateMode.EPHEMERAL)
        e.create(p("e2"), flags=CreateMode.EPHEMERAL_SEQUENTIAL)
        s.create(p("dir"))
        e.create(p("dir/e3"), flags=CreateMode.EPHEMERAL)
        # One watch per connection: the order in which one txn deletes
        # several ephemerals is Java hash order (see the test below).
        w1, w2, w3, w4 = (diff.session(f"w{i}") for i in range(1, 5))
        w1.get_children(diff.root, watch=True)
        w2.get_children(p("dir"), watch=True)
        w3.exists(p("e1"), watch=True)
        w4.add_watch(p("dir"), AddWatchMode.PERSISTENT_RECURSIVE)
        e.get_data(p("e1"), watch=True)
        e.close_session()
        diff.settle()
        s.get_children2(diff.root)
        s.get_children2(p("dir"))
        s.get_ephemerals("/")

    @known(JAVA_ORDER_EPHEMERALS)
    def test_order_of_a_closed_sessions_deletions(self, servers):
        # A fixed root: the Java order depends on the paths' hash codes.
        # ZooKeeper deletes in the order of a HashSet.clone() of the
        # session's ephemeral set, whose table is sized for its size
        # (capacity tableSizeFor(n / 0.75 + 1): 8 for 5 paths), so by
        # (h ^ h >>> 16) & 7 of String.hashCode, then the original set's
        # order: a-long-name, e2, e1, e3, zz here (zkpy: reverse path order).
        apache, zkpy = servers
        with Differential(apache, zkpy, root="/diff-java-hash-order") as d:
            s = d.session()
            d.make_root(s)
            e = d.session("e")
            for name in ("e1", "e2", "e3", "zz", "a-long-name"):
                e.create(d.p(name), flags=CreateMode.EPHEMERAL)
            w = d.session("w")
            w.add_watch(d.root, AddWatchMode.PERSISTENT_RECURSIVE)
            e.close_session()
            d.settle()


# === setWatches after a reconnect =======================================================

class TestSetWatches:
    def test_catch_up_events(self, diff):
        s, p = diff.sessions[0], diff.p
        for rel in ("same", "changed", "deleted", "kids", "kids-same", "kids-deleted"):
            s.create(p(rel))
        s.create(p("kids/x"))
        w = diff.session("w")
        w.ping()
        # While w is away, things change:
        s.set_data(p("changed"), b"new")
        s.delete(p("deleted"))
        s.create(p("kids/y"))
        s.delete(p("kids-deleted"))
        s.create(p("appeared"))
        s.set_data(p("kids-same"), b"data only")
        w.reconnect()
        w.set_watches(
            data=[p("same"), p("changed"), p("deleted"), p("never")],
            exist=[p("appeared"), p("still-missing"), p("same")],
            child=[p("kids"), p("kids-same"), p("kids-deleted"), p("never")])
        # Registered ones fire now; caught-up ones are not registered.
        s.set_data(p("same"), b"x")
        s.create(p("still-missing"))
        s.create(p("kids-same/z"))
        s.set_data(p("changed"), b"again")
        diff.settle()

    def test_relative_zxid_zero_and_far_ahead(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/b"))
        w = diff.session("w")
        w.set_watches(data=[p("a")], child=[p("a")], relative_zxid=0)
        w.set_watches(data=[p("a")], child=[p("a")],
                      relative_zxid=lambda ctx: ctx.client.last_zxid + 1000)
        s.set_data(p("a"), b"x")
        s.create(p("a/c"))
        diff.settle()

    def test_set_watches2_persistent(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.set_watches(persistent=[p("a"), p("missing")], recursive=[diff.root], relative_zxid=0)
        s.create(p("a/b"))
        s.set_data(p("a"), b"x")
        s.create(p("missing"))
        diff.settle()
        w.check_watches(p("a"), WatcherType.ANY)
        w.check_watches(diff.root, WatcherType.ANY)

    def test_watches_die_with_the_connection(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.get_data(p("a"), watch=True)
        w.add_watch(p("a"), AddWatchMode.PERSISTENT)
        w.reconnect()
        s.set_data(p("a"), b"x")
        diff.settle()
        w.check_watches(p("a"), WatcherType.ANY)

    def test_set_watches_with_null_lists(self, diff):
        s = diff.sessions[0]

        def body(ctx):
            w = Writer()
            w.int(16 + 8 + 12 - 4 + 4)  # placeholder, fixed below
            w.int(ctx.client.next_xid())
            w.int(Op.SET_WATCHES)
            w.long(ctx.client.last_zxid)
            w.int(-1)
            w.int(-1)
            w.int(-1)
            out = bytearray(w.out)
            out[0:4] = struct.pack(">i", len(out) - 4)
            return bytes(out)

        s.raw(body, op=Op.SET_WATCHES, desc="setWatches with three null lists")
        s.ping()


# === sessions: expiry ===================================================================

class TestSessions:
    def test_expiry_deletes_ephemerals(self, diff):
        s, p = diff.sessions[0], diff.p
        e = diff.session("e", timeout_ms=4000)
        e.create(p("eph"), flags=CreateMode.EPHEMERAL)
        e.create(p("eph-s-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL)
        s.exists(p("eph"), watch=True)
        s2 = diff.session("s2")
        s2.get_children(diff.root, watch=True)
        e.disconnect()
        _wait_until(diff, lambda c: _missing(c, p("eph")), timeout=20)
        diff.settle()
        s.get_children2(diff.root)
        # The expired session cannot come back.
        out = e.reconnect()
        assert out.kind in ("connect", "closed")
        e.expect_closed()
        e.closed_session = True

    def test_requests_after_close_session_on_the_same_socket(self, diff):
        s = diff.session("c")
        s.request(Op.CLOSE_SESSION)
        s.request(Op.EXISTS, PathWatchRequest(diff.root, False), timeout=2.0)
        s.closed_session = True

    def test_get_ephemerals(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/e1"), flags=CreateMode.EPHEMERAL)
        s.create(p("e2"), flags=CreateMode.EPHEMERAL)
        s.create_container(p("c"))
        s.create(p("a/p"))
        for prefix in ("/", p(""), p("a"), p("a/"), p("e"), p("zz"), "", None, "  ", "x"):
            s.get_ephemerals(prefix)


# === other requests =====================================================================

class TestOtherRequests:
    def test_sync(self, diff):
        s = diff.sessions[0]
        for path in (diff.root, diff.p("missing"), "/", "", "weird", None):
            s.sync(path)

    def test_get_all_children_number(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        s.create(p("a/b"))
        s.create(p("a/b/c"))
        s.create(p("a/d"))
        # ("" and "/" count the whole tree: see test_initial_tree.)
        for path in (diff.root, p("a"), p("a/b"), p("a/b/c"), p("missing"), "/zookeeper",
                     p("a") + "/", "/zookeeper/"):
            s.get_all_children_number(path)

    def test_reconfig_disabled(self, diff):
        s = diff.sessions[0]
        s.request(Op.RECONFIG, ReconfigRequest(None, None, "server.1=127.0.0.1:2888:3888", -1))
        s.request(Op.RECONFIG, ReconfigRequest("", "", "", 5))
        s.ping()

    def test_sasl_without_sasl(self, diff):
        # OK with a null token; the connection stays.
        s = diff.session("sasl")
        s.request(Op.SASL, SASLRequest(b"token"))
        s.ping()

    def test_get_data_of_the_system_nodes(self, diff):
        s = diff.sessions[0]
        for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            s.get_data(path)
            s.get_acl(path)
            s.get_children(path)


# === framing and malformed input ========================================================

class TestMalformedInput:
    def test_frame_too_long(self, diff):
        s = diff.session("x")
        s.raw(struct.pack(">i", 0xFFFFF + 1) + b"\0" * 64, desc="frame length jute.maxbuffer+1")
        s.expect_closed()

    def test_frame_at_the_limit_is_read(self, diff):
        s = diff.session("x")
        payload = encode_request(1, Op.SET_DATA, None)[4:]  # header only
        big = payload + b"\0" * (0xFFFFF - len(payload))
        s.raw(frame(big), op=Op.SET_DATA, desc="1 MiB - 1 frame of garbage after a setData header")
        s.expect_closed(timeout=2.0)

    @pytest.mark.parametrize("size", [1_000_000, 1_048_575 - 200, 1_048_576])
    def test_large_data(self, diff, size):
        s, p = diff.sessions[0], diff.p
        s.create2(p("big"), b"z" * size)
        if not any(c.closed for c in s.clients.values()):
            s.get_data(p("big"))
            s.set_data(p("big"), b"y" * size)
            s.exists(p("big"))

    def test_negative_frame_length(self, diff):
        s = diff.session("x")
        s.raw(struct.pack(">i", -5), desc="frame length -5")
        s.expect_closed()

    def test_short_frames(self, diff):
        s = diff.session("x")
        s.raw(frame(b"\x00\x00\x00\x01"), desc="a 4-byte request")
        s.expect_closed()

    def test_empty_frame(self, diff):
        s = diff.session("x")
        s.raw(frame(b""), desc="an empty frame")
        s.expect_closed()

    @pytest.mark.parametrize("op", [Op.CREATE, Op.DELETE, Op.SET_DATA, Op.GET_DATA, Op.EXISTS,
                                    Op.GET_CHILDREN, Op.GET_ACL, Op.SET_ACL, Op.SYNC, Op.MULTI,
                                    Op.ADD_WATCH, Op.SET_WATCHES, Op.AUTH, Op.CHECK_WATCHES,
                                    Op.GET_EPHEMERALS, Op.MULTI_READ, Op.CREATE_TTL])
    def test_truncated_bodies(self, diff, op):
        s = diff.session("x")
        s.raw(lambda ctx: frame(struct.pack(">ii", ctx.client.next_xid(), op)),
              op=op, desc=f"op {op} with an empty body")
        s.raw(lambda ctx: frame(struct.pack(">ii", ctx.client.next_xid(), op) + b"\x00\x00"),
              op=op, desc=f"op {op} with a 2-byte body")
        s.ping()

    @pytest.mark.parametrize("op", [Op.CREATE, Op.GET_DATA, Op.SET_DATA, Op.EXISTS, Op.SYNC])
    def test_string_length_beyond_the_record(self, diff, op):
        s = diff.session("x")
        s.raw(lambda ctx: frame(struct.pack(">iii", ctx.client.next_xid(), op, 1000) + b"/abc"),
              op=op, desc=f"op {op}: path length 1000, 4 bytes present")
        s.ping()

    @pytest.mark.parametrize("n", [-2, -100, 0x7FFFFFFF])
    def test_bad_string_lengths(self, diff, n):
        s = diff.session("x")
        s.raw(lambda ctx: frame(struct.pack(">iii", ctx.client.next_xid(), Op.GET_DATA, n)
                                + b"\x00"), op=Op.GET_DATA, desc=f"getData, path length {n}")
        s.ping()

    def test_trailing_bytes_after_a_record(self, diff):
        s = diff.session("x")
        s.raw(lambda ctx: frame(encode_request(ctx.client.next_xid(), Op.EXISTS,
                                               PathWatchRequest(diff.root, False))[4:]
                                + b"extra"),
              op=Op.EXISTS, desc="exists with 5 bytes after the record")
        s.ping()

    def test_bad_vector_length(self, diff):
        s = diff.session("x")

        def rec(ctx):
            w = Writer()
            w.ustring(diff.p("v"))
            w.buffer(b"")
            w.int(-7)          # acl vector length
            w.int(0)
            return frame(struct.pack(">ii", ctx.client.next_xid(), Op.CREATE) + bytes(w.out))

        s.raw(rec, op=Op.CREATE, desc="create with acl vector length -7")
        s.ping()

    def test_boolean_values(self, diff):
        s, p = diff.sessions[0], diff.p
        s.create(p("a"))
        w = diff.session("w")
        w.raw(lambda ctx: frame(struct.pack(">ii", ctx.client.next_xid(), Op.GET_DATA)
                                + struct.pack(">i", len(p("a").encode())) + p("a").encode()
                                + b"\x07"),
              op=Op.GET_DATA, desc="getData with watch byte 7")
        s.set_data(p("a"), b"x")
        diff.settle()

    def test_non_utf8_path(self, diff):
        s = diff.sessions[0]
        raw_path = diff.root.encode() + b"/\xff\xfe"
        s.raw(lambda ctx: frame(struct.pack(">ii", ctx.client.next_xid(), Op.CREATE)
                                + struct.pack(">i", len(raw_path)) + raw_path
                                + b"\xff\xff\xff\xff" + struct.pack(">i", 1)
                                + struct.pack(">i", 31) + struct.pack(">i", 5) + b"world"
                                + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0)),
              op=Op.CREATE, desc="create with a path that is not UTF-8")
        s.get_children(diff.root)

    def test_cesu8_path(self, diff):
        s = diff.sessions[0]
        cesu = diff.root.encode() + b"/x\xed\xa0\xbd\xed\xb8\x80"
        s.raw(lambda ctx: frame(struct.pack(">ii", ctx.client.next_xid(), Op.CREATE)
                                + struct.pack(">i", len(cesu)) + cesu
                                + b"\xff\xff\xff\xff" + struct.pack(">i", 1)
                                + struct.pack(">i", 31) + struct.pack(">i", 5) + b"world"
                                + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0)),
              op=Op.CREATE, desc="create with a CESU-8 (Java-style) non-BMP character")
        s.get_children(diff.root)


# === the initial tree of a fresh server =================================================

def test_initial_tree():
    with server_pair({}) as (apache, zkpy), Differential(apache, zkpy, root="/never") as d:
        s = d.session()
        for path in ("/", "", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            s.get_data(path)
            s.get_acl(path)
            s.get_children2(path)
            s.get_all_children_number(path)
        s.multi_read(m_get_data("/"), m_get_children("/"))
        s.create("/x")
        s.get_children2("/")
        s.delete("/x")
        s.get_children2("/")


# === four-letter words ==================================================================

def _words(servers, word, extra=b""):
    apache, zkpy = servers
    return (four_letter_word(apache.host, apache.port, word, extra=extra),
            four_letter_word(zkpy.host, zkpy.port, word, extra=extra))


def _shapes(text):
    return [line_shape(line) for line in text.splitlines()]


class TestFourLetterWords:
    def test_ruok(self, servers):
        a, z = _words(servers, "ruok")
        assert a == z == "imok"

    def test_srvr(self, servers):
        a, z = _words(servers, "srvr")
        norm = [_shapes(t) for t in (a, z)]
        for lines in norm:  # the version text itself may differ
            if lines and lines[0].startswith("Zookeeper version:"):
                lines[0] = "Zookeeper version: <v>, built on <date>"
        assert norm[0] == norm[1], (a, z)
        assert a.endswith("\n") == z.endswith("\n")

    def test_stat(self, servers, diff):
        a, z = _words(servers, "stat")
        def shape(t):
            lines = _shapes(t)
            if lines and lines[0].startswith("Zookeeper version:"):
                lines[0] = "<version line>"
            # one line per connection: their number may differ
            return [ln for i, ln in enumerate(lines) if not ln.startswith(" /")]
        assert shape(a) == shape(z), (a, z)
        assert (" /" in a) == (" /" in z)

    def test_conf(self, servers):
        a, z = _words(servers, "conf")
        assert key_value_keys(a) == key_value_keys(z), (a, z)

    def test_envi(self, servers):
        a, z = _words(servers, "envi")
        assert key_value_keys(a) == key_value_keys(z), (a, z)

    def test_mntr(self, servers):
        """Every key zkpy prints, Apache prints too, with the same kind of
        value; and both print the always-present keys.  (zkpy leaves out on
        purpose the hundreds of internal metric summaries, zk_avg_X ...)"""
        a, z = _words(servers, "mntr")
        ka, kz = mntr_shape(a), mntr_shape(z)
        assert sorted(set(kz) - set(ka)) == [], "keys zkpy has and Apache does not"
        assert {k: ka[k] for k in kz} == kz, "kinds of values"
        always = {
            "zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency",
            "zk_min_latency", "zk_packets_received", "zk_packets_sent",
            "zk_num_alive_connections", "zk_outstanding_requests", "zk_uptime",
            "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
            "zk_approximate_data_size", "zk_global_sessions", "zk_local_sessions",
            "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
            "zk_connection_drop_probability", "zk_last_client_response_size",
            "zk_max_client_response_size", "zk_min_client_response_size",
            "zk_outstanding_tls_handshake", "zk_auth_failed_count",
            "zk_non_mtls_remote_conn_count", "zk_non_mtls_local_conn_count"}
        assert always <= set(ka)
        assert always <= set(kz), sorted(always - set(kz))
        # The first lines, in the same order.
        order = [k for k in ka if k in kz]
        assert order == [k for k in kz if k in ka]

    def test_cons(self, servers, diff):
        a, z = _words(servers, "cons")
        def shape(t):
            out = []
            for line in t.splitlines():
                if line.startswith(" /"):
                    fields = line[line.index("(") + 1:line.rindex(")")].split(",")
                    out.append(tuple(f.partition("=")[0] for f in fields))
                else:
                    out.append(line_shape(line))
            return sorted(set(out), key=repr)
        assert shape(a) == shape(z), (a, z)

    @pytest.mark.parametrize("word", ["wchs", "wchc", "wchp", "dump"])
    def test_watch_and_dump_reports(self, servers, diff, word):
        s, p = diff.sessions[0], diff.p
        s.create(p("w"))
        s.get_data(p("w"), watch=True)
        s.create(p("e"), flags=CreateMode.EPHEMERAL)
        a, z = _words(servers, word)
        if word == "wchs":
            assert _shapes(a) == _shapes(z), (a, z)
        else:
            ka = {line_shape(ln).strip() for ln in a.splitlines() if "0x" not in ln}
            kz = {line_shape(ln).strip() for ln in z.splitlines() if "0x" not in ln}
            # Both mention the watched / ephemeral path, with the same framing lines.
            heads_a = {ln for ln in ka if not ln.startswith("/")}
            heads_z = {ln for ln in kz if not ln.startswith("/")}
            assert heads_a == heads_z, (a, z)

    @pytest.mark.parametrize("word", ["isro", "gtmk", "dirs", "crst", "srst"])
    def test_simple_words(self, servers, word):
        a, z = _words(servers, word)
        assert _shapes(a) == _shapes(z), (a, z)

    def test_stmk(self, servers):
        a, z = _words(servers, "stmk", struct.pack(">q", 306))
        assert a == z, (a, z)
        a, z = _words(servers, "gtmk")
        assert a == z, (a, z)

    def test_hash(self, servers):
        """zkpy keeps no digest log and prints nothing (on purpose); Apache
        prints "<hex zxid>: <digest>" lines once it has logged digests."""
        a, z = _words(servers, "hash")
        assert all(re.fullmatch(r"[0-9a-f]+: -?\d+", ln) for ln in a.splitlines()), a
        assert all(re.fullmatch(r"[0-9a-f]+: -?\d+", ln) for ln in z.splitlines()), z

    def test_unknown_word_is_a_frame_length(self, servers):
        # "xyzw" is no command: as a frame length (0x78797a77) it is far too
        # long, so both servers close the connection without a word.
        a, z = _words(servers, "xyzw")
        assert a == z == ""

    def test_word_after_a_handshake_is_not_a_word(self, diff):
        s = diff.session("x")
        s.raw(b"ruok", desc="'ruok' sent after the handshake")
        s.expect_closed()
