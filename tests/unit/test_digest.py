"""The data-tree digest (ZooKeeper's DigestCalculator / NodeHashMapImpl /
DataTree digest log): kept incrementally by apply, equal to the digest
computed from scratch after every txn.  Its values are checked against a real
ZooKeeper in tests/differential/test_operations.py."""

import random
import struct
import zlib

import pytest

from zkpy.datatree.digest import (DIGEST_LOG_INTERVAL, DIGEST_LOG_LIMIT, node_digest, to_long,
                                  tree_digest)
from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import CONTAINER_OWNER, Txn, ttl_owner
from zkpy.protocol.opcodes import Op
from zkpy.storage.snapshot import parse_snapshot, snapshot_bytes

ACL = [(31, "world", "anyone")]
T0 = 1_700_000_000_000


def reference_digest(tree) -> int:
    """The digest written out from ZooKeeper's definition, independently of
    zkpy.datatree.digest."""
    total = 0
    for path, n in tree.nodes.items():
        if path == "/" or path.startswith("/zookeeper/"):
            continue
        stat = struct.pack(">qqqqqiiiq", n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime,
                           n.version, n.creates, n.aversion, n.owner)
        total += zlib.crc32(path.encode("utf-8") + (n.data or b"") + stat)
    return to_long(total)


class Driver:
    def __init__(self, tree=None):
        self.tree = tree or DataTree()
        self.zxid = self.tree.last_zxid

    def txn(self, t, body, session=1):
        self.zxid += 1
        return Txn(session, self.zxid, self.zxid, T0 + self.zxid, t, body)

    def apply(self, t, body, session=1):
        return self.tree.apply(self.txn(t, body, session))

    def creates(self, path):
        parent = path.rsplit("/", 1)[0] or "/"
        return self.tree.nodes[parent].creates + 1

    def create(self, path, data=b"", owner=0, t=Op.CREATE):
        return self.apply(t, (path, data, ACL, owner, self.creates(path)))


def test_a_new_tree():
    tree = DataTree()
    # the root (as ""), and /zookeeper; nothing under /zookeeper/
    expected = zlib.crc32(bytes(60)) + zlib.crc32(b"/zookeeper" + bytes(60))
    assert tree.digest == expected == reference_digest(tree)


def test_node_digest_is_zookeepers_crc():
    d = Driver()
    d.create("/a", b"hello")
    n = d.tree.nodes["/a"]
    stat = struct.pack(">qqqqqiiiq", 1, 1, 1, T0 + 1, T0 + 1, 0, 0, 0, 0)
    assert node_digest("/a", n) == zlib.crc32(b"/a" + b"hello" + stat)
    assert node_digest("/zookeeper/x", n) == 0
    assert node_digest("/", d.tree.nodes["/"]) == node_digest("", d.tree.nodes["/"])


def random_walk(check_every_step):
    """Random creates, setData, setACL, deletes, multis and session closes,
    the digest checked against the reference after every txn, or only now
    and then (check_every_step=False: the parent a run of creates left
    stale is then settled by the next change or reader, not by the check).
    Returns the digest log and the digest at the end."""
    rnd = random.Random(7)
    checks = random.Random(11)
    d = Driver()
    last_parent = "/"
    live = ["/"]
    sessions = [0x1000, 0x2000]
    for sid in sessions:
        d.apply(Op.CREATE_SESSION, (30000,), session=sid)
    for step in range(3000):
        r = rnd.random()
        if r < 0.35 or len(live) < 3:
            # (often under the parent of the create before: a run of creates)
            parent = last_parent if last_parent in live and rnd.random() < 0.5 else rnd.choice(live)
            last_parent = parent
            path = (parent if parent != "/" else "") + f"/n{step}"
            kind = rnd.random()
            owner = 0
            t = Op.CREATE
            if kind < 0.1:
                owner = rnd.choice(sessions)
            elif kind < 0.15:
                owner, t = CONTAINER_OWNER, Op.CREATE_CONTAINER
            elif kind < 0.2:
                owner, t = ttl_owner(5000), Op.CREATE_TTL
            parent_node = d.tree.nodes[parent]
            if parent_node.owner and parent_node.owner in sessions:
                continue
            d.create(path, rnd.randbytes(rnd.randint(0, 40)) if rnd.random() < 0.8 else None,
                     owner, t)
            live.append(path)
        elif r < 0.6:
            path = rnd.choice(live)
            node = d.tree.nodes[path]
            d.apply(Op.SET_DATA, (path, rnd.randbytes(rnd.randint(0, 30)), node.version + 1))
        elif r < 0.7:
            path = rnd.choice(live)
            node = d.tree.nodes[path]
            d.apply(Op.SET_ACL, (path, ACL, node.aversion + 1))
        elif r < 0.9:
            leaves = [p for p in live if p != "/" and not d.tree.nodes[p].children]
            path = rnd.choice(leaves)
            d.apply(Op.DELETE, (path,))
            live.remove(path)
        elif r < 0.97:
            leaves = [p for p in live if p != "/" and not d.tree.nodes[p].children][:2]
            parent = rnd.choice(live)
            new = (parent if parent != "/" else "") + f"/m{step}"
            if d.tree.nodes[parent].owner in sessions or parent in leaves:
                continue
            ops = [(Op.DELETE, (p,)) for p in leaves]
            ops.append((Op.CREATE, (new, b"m", ACL, 0, d.tree.nodes[parent].creates + 1)))
            d.apply(Op.MULTI, (ops,))
            for p in leaves:
                live.remove(p)
            live.append(new)
        else:
            sid = rnd.choice(sessions)
            paths = sorted(d.tree.ephemerals.get(sid, ()))
            d.apply(Op.CLOSE_SESSION, (paths,), session=sid)
            live = [p for p in live if p in d.tree.nodes]
            d.apply(Op.CREATE_SESSION, (30000,), session=sid)
        if check_every_step or checks.random() < 0.02:
            assert d.tree.digest == reference_digest(d.tree), f"step {step}"
    # and the system nodes
    d.apply(Op.SET_DATA, ("/", b"root data", 1))
    d.apply(Op.SET_DATA, ("/zookeeper", b"zk", 1))
    d.create("/zookeeper/mine", b"not counted")
    d.apply(Op.SET_DATA, ("/zookeeper/config", b"x", 1))
    assert d.tree.digest == reference_digest(d.tree)
    return d.tree.digest_log.text(), d.tree.digest


def test_incremental_equals_full_over_random_txns():
    random_walk(check_every_step=True)


def test_the_digest_log_is_the_same_when_the_digest_is_read_seldom():
    assert random_walk(check_every_step=False) == random_walk(check_every_step=True)


def test_a_loaded_snapshot_has_the_same_digest():
    d = Driver()
    d.create("/a", b"1")
    d.create("/a/b", b"22")
    d.apply(Op.SET_DATA, ("/a", b"333", 1))
    copy = parse_snapshot(snapshot_bytes(d.tree, d.tree.last_zxid))
    assert copy.digest == d.tree.digest == reference_digest(d.tree)


def _stored_digest(blob):
    """The digest field of a snapshot's body (after sessions, ACLs, count)."""
    import msgpack
    from zkpy.storage import snapshot
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    u.feed(blob[snapshot.HEADER.size:-snapshot.TRAILER.size])
    return [u.unpack() for _ in range(4)][3]


def _workload():
    d = Driver()
    for i in range(30):
        d.create(f"/n{i}", bytes([i]) * i)
        d.create(f"/n{i}/c", b"x")
    for i in range(0, 30, 3):
        d.apply(Op.SET_DATA, (f"/n{i}", b"changed", 1))
    d.apply(Op.SET_DATA, ("/zookeeper", b"zk", 1))
    return d


def test_a_stable_snapshot_carries_the_digest_and_the_loader_takes_it(monkeypatch):
    d = _workload()
    blob = snapshot_bytes(d.tree, d.tree.last_zxid, stable=True)
    assert _stored_digest(blob) == d.tree.digest_sum()

    recount = tree_digest

    def no_recount(nodes):
        # (a new, empty tree computes its own: the root and /zookeeper's nodes)
        assert len(nodes) < 10, "the digest was computed again"
        return recount(nodes)
    monkeypatch.setattr("zkpy.datatree.tree.tree_digest", no_recount)
    copy = parse_snapshot(blob)
    assert copy.digest == d.tree.digest == reference_digest(copy)


def test_a_snapshot_of_a_changing_tree_has_no_digest_and_the_loader_computes_it():
    d = _workload()
    blob = snapshot_bytes(d.tree, d.tree.last_zxid)
    assert _stored_digest(blob) is None
    copy = parse_snapshot(blob)
    assert copy.digest == d.tree.digest == reference_digest(copy)


def test_a_snapshot_without_the_digest_off_stores_none():
    d = Driver(DataTree(digest_enabled=False))
    d.create("/a", b"1")
    blob = snapshot_bytes(d.tree, d.tree.last_zxid, stable=True)
    assert _stored_digest(blob) is None
    assert parse_snapshot(blob).digest == reference_digest(d.tree)


def test_the_stored_digest_is_not_used_when_nodes_are_left_out():
    """A node whose parent is missing is dropped on load: the sum written
    covered it, so the loader computes the digest of what it kept."""
    d = _workload()
    d.create("/n1/c/d", b"below")
    del d.tree.nodes["/n1/c"]      # as a table taken between two states can be
    blob = snapshot_bytes(d.tree, d.tree.last_zxid, stable=True)
    assert _stored_digest(blob) == d.tree.digest_sum()
    copy = parse_snapshot(blob)
    assert "/n1/c/d" not in copy.nodes
    assert copy.digest == reference_digest(copy) != d.tree.digest


def test_the_last_parents_digest_follows_every_change_to_it():
    """Creates and deletes under one parent reuse its digest from the one
    before; anything else that changes the parent's Stat in between (its
    setACL, setData, a create or delete under another parent and back, the
    digest turned off and on) must not leave a stale one behind."""
    d = Driver()
    d.create("/p", b"parent")
    d.create("/q")
    steps = [
        lambda: d.create("/p/a"),
        lambda: d.create("/p/b", b"1"),
        lambda: d.apply(Op.SET_ACL, ("/p", ACL, d.tree.nodes["/p"].aversion + 1)),
        lambda: d.create("/p/c"),
        lambda: d.apply(Op.DELETE, ("/p/a",)),
        lambda: d.create("/p/d"),
        lambda: d.apply(Op.SET_DATA, ("/p", b"other", d.tree.nodes["/p"].version + 1)),
        lambda: d.apply(Op.DELETE, ("/p/b",)),
        lambda: d.create("/q/x"),
        lambda: d.create("/p/e"),
        lambda: d.apply(Op.MULTI, ([(Op.DELETE, ("/p/c",)),
                                    (Op.CREATE, ("/p/f", b"", ACL, 0, d.creates("/p/f")))],)),
        lambda: d.tree.set_digest_enabled(False),
        lambda: d.create("/p/g"),
        lambda: d.apply(Op.DELETE, ("/p/d",)),
        lambda: d.tree.set_digest_enabled(True),
        lambda: d.create("/p/h"),
        lambda: d.apply(Op.DELETE, ("/p/e",)),
    ]
    for i, step in enumerate(steps):
        step()
        if d.tree.digest_enabled:
            assert d.tree.digest == reference_digest(d.tree), f"step {i}"


def test_a_nodes_kept_digest_follows_every_change_to_it():
    """Every node keeps its own CRC (ZNode.digest) for its next change: a
    setData of /p between each other change to /p -- its setACL, a child
    made or deleted (alone and in a multi), replayed txns, the digest off
    and on, a session closed with its ephemeral child -- must start from
    /p as it is, not as a setData before left it."""
    d = Driver()
    d.apply(Op.CREATE_SESSION, (30000,), session=0x77)
    d.create("/p", b"parent")
    d.create("/q")

    def set_p():
        d.apply(Op.SET_DATA, ("/p", b"v%d" % d.zxid, d.tree.nodes["/p"].version + 1))

    changes = [
        lambda: d.apply(Op.SET_ACL, ("/p", ACL, d.tree.nodes["/p"].aversion + 1)),
        lambda: d.create("/p/a"),
        lambda: d.create("/q/x"),
        lambda: d.apply(Op.DELETE, ("/p/a",)),
        lambda: d.apply(Op.MULTI, ([(Op.CREATE, ("/p/b", b"", ACL, 0, d.creates("/p/b"))),
                                    (Op.SET_DATA, ("/p", b"m", d.tree.nodes["/p"].version + 1))],)),
        lambda: d.tree.apply(d.txn(Op.CREATE, ("/p/b", b"", ACL, 0, 99)), True),  # there
        lambda: d.tree.apply(d.txn(Op.DELETE, ("/p/gone",)), True),               # gone
        lambda: d.tree.set_digest_enabled(False),
        lambda: d.create("/p/c"),
        lambda: d.apply(Op.SET_DATA, ("/p", b"off", d.tree.nodes["/p"].version + 1)),
        lambda: d.apply(Op.DELETE, ("/p/c",)),
        lambda: d.tree.set_digest_enabled(True),
        lambda: d.create("/p/e", b"", 0x77),
        lambda: d.apply(Op.CLOSE_SESSION, (["/p/e"],), session=0x77),
        lambda: d.apply(Op.DELETE, ("/p/b",)),
    ]
    for i, change in enumerate(changes):
        set_p()
        change()
        set_p()
        if d.tree.digest_enabled:
            assert d.tree.digest == reference_digest(d.tree), f"change {i}"
    # A node loaded from a snapshot keeps nothing yet.
    loaded = parse_snapshot(snapshot_bytes(d.tree, d.zxid, stable=True))
    assert loaded.nodes["/p"].digest is None
    d = Driver(loaded)
    set_p()
    assert loaded.digest == reference_digest(loaded)


def test_a_replayed_txn_that_changes_the_last_parent_forgets_its_digest():
    """A replay over a fuzzy snapshot changes a parent on the cold path (a
    create of a node the snapshot has, a delete of one it lacks)."""
    d = Driver()
    d.create("/p")
    d.create("/p/a")
    d.tree.apply(d.txn(Op.CREATE, ("/p/a", b"", ACL, 0, 7)), True)   # already there
    d.create("/p/b")
    assert d.tree.digest == reference_digest(d.tree)
    d.tree.apply(d.txn(Op.DELETE, ("/p/gone",)), True)                # already gone
    d.create("/p/c")
    assert d.tree.digest == reference_digest(d.tree)


def test_digest_off():
    tree = DataTree(digest_enabled=False)
    assert tree.digest is None
    d = Driver(tree)
    d.create("/a", b"1")
    tree.set_digest_enabled(True)
    assert tree.digest == reference_digest(tree)
    d.create("/b", b"2")
    assert tree.digest == reference_digest(tree)
    tree.set_digest_enabled(False)
    assert tree.digest is None


def test_replay_over_a_fuzzy_snapshot_keeps_the_digest_exact():
    d = Driver()
    d.create("/a")
    d.create("/a/b", b"x")
    snap = parse_snapshot(snapshot_bytes(d.tree, 1))   # says zxid 1, holds zxid 2 too
    replay = [d.txn(Op.CREATE, ("/a/c", b"", ACL, 0, 3)), d.txn(Op.DELETE, ("/a/b",))]
    for t in replay:
        d.tree.apply(t)
    for t in [Txn(1, 2, 2, T0 + 2, Op.CREATE, ("/a/b", b"x", ACL, 0, 2))] + replay:
        snap.apply(t, replay=True)
        assert snap.digest == reference_digest(snap)
    snap.apply(replay[1], replay=True)      # a delete of a node gone already
    assert snap.digest == reference_digest(snap) == d.tree.digest


class TestDigestLog:
    def test_every_128th_zxid(self):
        d = Driver()
        for i in range(300):
            d.create(f"/n{i}")
        entries = list(d.tree.digest_log.entries)
        assert [z for z, _ in entries] == [128, 256]
        assert d.tree.digest_log.text() == "".join(
            f"{z:x}: {to_long(v)}\n" for z, v in entries)

    def test_the_value_is_the_digest_after_that_txn(self):
        d = Driver()
        for i in range(DIGEST_LOG_INTERVAL):
            d.create(f"/n{i}")
        assert d.tree.digest_log.text() == f"80: {d.tree.digest}\n"

    def test_keeps_the_newest_1024(self):
        d = Driver()
        d.zxid = 0x500000000
        tree = d.tree
        for i in range((DIGEST_LOG_LIMIT + 3) * DIGEST_LOG_INTERVAL):
            tree.apply(d.txn(Op.CREATE_SESSION, (1000,), session=i))
        entries = list(tree.digest_log.entries)
        assert len(entries) == DIGEST_LOG_LIMIT
        assert entries[0][0] == 0x500000000 + 4 * DIGEST_LOG_INTERVAL
        assert tree.digest_log.text().startswith("500000200: ")

    def test_digest_off_logs_zero(self):
        d = Driver(DataTree(digest_enabled=False))
        for i in range(DIGEST_LOG_INTERVAL):
            d.create(f"/n{i}")
        assert d.tree.digest_log.text() == "80: 0\n"

    def test_a_multi_replayed_op_by_op_logs_once(self):
        tree = DataTree()
        ops = [(Op.CREATE, ("/a", b"", ACL, 0, 1)), (Op.CREATE, ("/b", b"", ACL, 0, 2))]
        for op, body in ops:
            tree.apply(Txn(1, 1, 128, T0, op, body), replay=True)
        assert [z for z, _ in tree.digest_log.entries] == [128]
        assert tree.digest_log.entries[0][1] == tree._digest


@pytest.mark.parametrize("value,expected", [(0, 0), (2**63, -(2**63)), (2**64 + 5, 5),
                                            (-1, -1)])
def test_to_long(value, expected):
    assert to_long(value) == expected


def test_tree_digest_skips_the_root_alias():
    tree = DataTree()
    assert tree_digest(tree.nodes) == tree._digest
