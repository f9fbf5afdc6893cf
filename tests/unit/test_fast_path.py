"""The fast path (zkpy.server.fast_path) against the general path: the same
requests, on two standalone servers that differ only in whether a usual
setData or create may take the fast path, give every client the same bytes (replies
and watch events, in the same order), log the same txns, leave the same
tree, digest and quota figures, and report the same figures."""

from pathlib import Path

from zkpy.protocol.errors import Err
from zkpy.protocol.jute import INT, Reader
from zkpy.protocol.opcodes import Op
from zkpy.datatree.acl import digest_id
from zkpy.protocol.records import (
    ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, AuthPacket, CreateRequest, DeleteRequest,
    MultiRequest, PathWatchRequest, ReplyHeader, SetDataRequest, encode_request,
)
from zkpy.server import fast_path
from zkpy.server.config import ServerConfig
from zkpy.server.zkserver import ZooKeeperServer
from tests.unit.test_outstanding_limit import Client, Clock, HeldLog, Loop

OPEN = list(OPEN_ACL_UNSAFE)
LOCKED = [ACL(31, "digest", "someone:aGFzaGhhc2hoYXNoaGFzaGhhc2g=")]


class RecordingLog(HeldLog):
    """HeldLog that keeps the encoding of every txn it lets through."""

    def __init__(self):
        super().__init__()
        self.logged = []

    def release(self, n=None):
        n = len(self.waiting) if n is None else n
        self.logged += [txn.packed() for txn, _ in self.waiting[:n]]
        super().release(n)


def _create(path, data=b"", acl=OPEN, flags=0):
    return Op.CREATE, CreateRequest(path, data, acl, flags)


def _set(path, data=b"new", version=-1):
    return Op.SET_DATA, SetDataRequest(path, data, version)


def _get(path, watch=False):
    return Op.GET_DATA, PathWatchRequest(path, watch)


SETUP = [
    _create("/a", b"a"), _create("/a/b"), _create("/locked", b"x", LOCKED),
    _create("/ro", b"x", list(READ_ACL_UNSAFE)), _create("/q"),
    _create("/zookeeper/quota/q"),
    _create("/zookeeper/quota/q/zookeeper_limits", b"count=-1,bytes=-1"),
    _create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0"),
    _create("/q/x", b"12345"),
]

WATCHES = [_get("/a", True), _get("/q/x", True), (Op.EXISTS, PathWatchRequest("/n", True)),
           (Op.GET_CHILDREN, PathWatchRequest("/q", True))]

# Usual setData requests and every kind the fast path leaves to the
# general path, mixed with other requests, in one read.
BURST = [
    _set("/a", b"one"),                  # usual
    _set("/a", b"two", 1),               # usual: the version the first leaves
    _set("/a", b"bad", 7),               # BadVersion
    _get("/a"),                          # a read behind writes
    _set("/missing"),                    # NoNode
    _set("a"),                           # a bad path
    _set("/locked"),                     # NoAuth: only the digest id may write
    _set("/ro"),                         # NoAuth: world may only read
    _set("/zookeeper/quota/q/zookeeper_stats", b"count=9,bytes=9"),   # /zookeeper/
    _set("/q/x", b"1234567890"),         # usual, in a quota's subtree
    _set("/zookeeper", b"z"),            # usual: /zookeeper itself is outside /zookeeper/
    _set("/", b"root"),                  # usual
    _set("/a/b", None),                  # null data: not the fast decoder's
    (Op.DELETE, DeleteRequest("/a/b", -1)),
    _set("/a/b"),                        # NoNode: deleted by a txn still in flight
    _create("/n", b"n"),
    _set("/n", b"n2", 0),                # usual: a node a txn in flight creates
    (Op.MULTI, MultiRequest([_set("/a", b"in a multi")])),
    _set("/a", b"three", 3),             # usual: the version the multi leaves
    _create("/c1", b"c"),                # usual
    (Op.CREATE2, CreateRequest("/c2", b"c", OPEN, 0)),   # usual
    _create("/seq-", b"s", flags=2),     # usual: sequential
    _create("/seq-", b"s", flags=2),     # usual: the next number, the first in flight
    _create("/eph", b"e", flags=1),      # usual: ephemeral
    _create("/eph/child"),               # NoChildrenForEphemerals, the parent in flight
    _create("/c1"),                      # NodeExists, in flight
    _create("/nope/x"),                  # NoNode: no parent
    _create("/locked/x"),                # NoAuth on the parent
    _create("/c1/."),                    # a bad path (its parent in flight)
    _create("/ttl", flags=5),            # TTL flags on a create: refused
    _create("/flags4", flags=4),         # container flags on a create: persistent
    (Op.CREATE_CONTAINER, CreateRequest("/cont", b"", OPEN, 4)),   # a container
    _create("/cont/x", b"x"),            # usual: a container's child, the container in flight
    (Op.CREATE2, CreateRequest("/es-", b"e", OPEN, 3)),   # usual: ephemeral sequential,
                                                          # its Stat in the reply
    _create("/q/y", b"yy", list(READ_ACL_UNSAFE)),   # usual: another ACL, a watched parent,
                                                     # a quota's subtree
]

# The usual writes in BURST (setData, then create), the two setData
# requests with one xid, and the writer's create with the "auth" ACL.
USUAL = 7 + 9 + 2 + 1

# The same "auth" ACL vector, in the same bytes, from two connections that
# authenticated as different digest users: each node it makes has its own
# creator's id (a fixup that depends on the connection).
AUTH_ACL = [ACL(31, "auth", "")]


def run(fast, watched=True, batches=(3, 2, None)):
    """Run the script on a new server; what every client saw, what was
    logged and left, and how many setData requests took the fast path.
    watched=False: no watch is set (a write then makes no event).
    batches: how many of the burst's txns the log lets through at a time
    (None: all that are left)."""
    loop = Loop()
    config = ServerConfig(data_dir=Path("/nonexistent"), tick_time=2000)
    server = ZooKeeperServer(config, RecordingLog(), clock=Clock())
    server.role.takes_fast_path = fast
    writer, watcher = Client(server, loop), Client(server, loop)
    writer.send_many(SETUP)
    loop.run()
    server.log.release()
    loop.run()
    if watched:
        watcher.send_many(WATCHES)
        loop.run()
    writer.send_many(BURST)
    # A request the fast path took has no decoded record.
    taken = [r for r in writer.conn.queue if r.op in fast_path.OPS and r.record is None]
    loop.run()
    for n in batches:   # the log lets the txns through in batches
        server.log.release(n)
        loop.run()
    # A client that reuses an xid: two setData frames with the same one.
    writer.conn.data_received(encode_request(99, *_set("/a", b"x1"))
                              + encode_request(99, *_set("/a", b"x2")))
    taken += [r for r in writer.conn.queue if r.op in fast_path.OPS and r.record is None]
    server.log.release()
    loop.run()
    for client, name in ((writer, "/w-auth"), (watcher, "/o-auth")):
        client.send(Op.AUTH, AuthPacket(0, "digest", name[1:2].encode() + b":pw"))
        client.send(*_create(name, b"", AUTH_ACL))
        if client is writer:
            taken += [r for r in writer.conn.queue if r.op in fast_path.OPS and r.record is None]
        loop.run()
    server.log.release()
    loop.run()
    tree = server.tree
    nodes = {p: (n.stat(), n.data, tuple(n.acl)) for p, n in tree.nodes.items()}
    stats = server.stats
    figures = (stats.packets_received, stats.packets_sent, stats.response_bytes,
               stats.min_response_size, stats.max_response_size, stats.last_response_size,
               stats.update_latency.count, stats.read_latency.count, server.in_process,
               # outstanding changes of txns not applied yet: none left
               dict(server.prep.outstanding), list(server.prep.changes),
               writer.conn.describe(False), watcher.conn.describe(False))
    return {
        "writer": bytes(writer.transport.out),
        "watcher": bytes(watcher.transport.out),
        "logged": server.log.logged,
        "nodes": nodes,
        "digest": (tree.digest, tree.digest_log.text()),
        "figures": figures,
    }, len(taken)


def test_the_fast_path_gives_what_the_general_path_gives():
    # (All the burst's txns in one batch: the read behind the first writes
    # is answered between them, not after the batch, as in ZooKeeper.)
    for watched, batches in ((True, (3, 2, None)), (False, (3, 2, None)), (False, (None,))):
        fast, taken = run(fast=True, watched=watched, batches=batches)
        general, none = run(fast=False, watched=watched, batches=batches)
        assert taken == USUAL and none == 0
        for key in fast:
            assert fast[key] == general[key], (key, watched, batches)


def _errors(out):
    """The error code of every reply frame in out, after the ConnectResponse."""
    pos = 4 + INT.unpack_from(out, 0)[0]
    errs = []
    while pos < len(out):
        n = INT.unpack_from(out, pos)[0]
        errs.append(ReplyHeader.read(Reader(out[pos + 4:pos + 4 + n])).err)
        pos += 4 + n
    return errs


def test_the_script_does_what_it_says():
    # The comparison above means something only if the script reaches what
    # it means to: each error, the watch events, the quota figures.
    result, _ = run(fast=True)
    burst = _errors(result["writer"])[len(SETUP):len(SETUP) + len(BURST)]
    assert [e for e in burst if e] == [
        Err.BAD_VERSION, Err.NO_NODE, Err.BAD_ARGUMENTS, Err.NO_AUTH, Err.NO_AUTH, Err.NO_NODE,
        Err.NO_CHILDREN_FOR_EPHEMERALS, Err.NODE_EXISTS, Err.NO_NODE, Err.NO_AUTH,
        Err.BAD_ARGUMENTS, Err.UNIMPLEMENTED]
    # Two getData, an exists and a getChildren answered, then /a and /q/x
    # changed, /n created, a child of /q created.
    # Then its auth and its create.
    assert _errors(result["watcher"]) == [0, 0, Err.NO_NODE, 0, 0, 0, 0, 0, 0, 0]
    nodes = result["nodes"]
    # Set by the client, then /q/x's 5 more bytes and /q/y counted.
    assert nodes["/zookeeper/quota/q/zookeeper_stats"][1] == b"count=10,bytes=16"
    assert {"/c1", "/c2", "/eph", "/flags4", "/cont", "/cont/x", "/q/y"} <= nodes.keys()
    # The ephemeral sequential create2 is the writer's, as /eph is.
    assert [n[0][7] for p, n in nodes.items() if p.startswith("/es-")] == [nodes["/eph"][0][7]]
    assert nodes["/eph"][0][7] != 0
    assert sorted(p for p in nodes if p.startswith("/seq-")) == [
        "/seq-0000000007", "/seq-0000000008"]
    assert nodes["/q/x"][1] == b"1234567890"
    assert nodes["/a"][1] == b"x2"
    assert nodes["/a"][0][4] == 6   # version: one, two, the multi, three, x1, x2
    assert nodes["/w-auth"][2] == (ACL(31, "digest", digest_id("w:pw")),)
    assert nodes["/o-auth"][2] == (ACL(31, "digest", digest_id("o:pw")),)
    unwatched, _ = run(fast=True, watched=False)
    assert _errors(unwatched["watcher"]) == [0, 0]   # no watch: no event
