"""Quotas and the tree digest across a restart: a zkpy server restarted on
its dataDir (snapshots written meanwhile, then the log replayed) has the
quota roots and stats it had, and the same tree digest, as a ZooKeeper
server rebuilds them from its snapshot (DataTree.setupQuota)."""

import glob
import os
import time

from kazoo.client import KazooClient

from zkpy.datatree.digest import tree_digest, to_long
from zkpy.storage.database import restore
from zkpy.testing import ZkpyServer, four_letter_word


def _wait_snapshots(data_dir, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(glob.glob(os.path.join(data_dir, "version-2", "snapshot.*[0-9a-f]"))) < n:
        assert time.monotonic() < deadline, "no snapshot written"
        time.sleep(0.05)


def test_quota_and_digest_survive_a_restart(tmp_path):
    data_dir = str(tmp_path)
    cfg = {"snapCount": "40", "enforceQuota": "true"}
    with ZkpyServer(config=cfg, data_dir=data_dir) as srv:
        zk = KazooClient(hosts=srv.hosts)
        zk.start()
        zk.create("/q", b"12")
        zk.create("/zookeeper/quota/q", b"")
        zk.create("/zookeeper/quota/q/zookeeper_limits", b"count=-1,bytes=-1=;countHardLimit=200")
        zk.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
        for i in range(120):
            zk.create(f"/q/n{i}", b"x" * (i % 4))
            if i % 5 == 0:
                zk.set(f"/q/n{i}", b"longer")
            if i % 7 == 0:
                zk.delete(f"/q/n{i}")
        _wait_snapshots(data_dir, 2)
        stats = zk.get("/zookeeper/quota/q/zookeeper_stats")[0]
        digest = srv.server.tree.digest
        zk.stop()
        zk.close()
    kept = [i for i in range(120) if i % 7]
    size = 2 + sum(6 if i % 5 == 0 else i % 4 for i in kept)
    assert stats == f"count={1 + len(kept)},bytes={size}".encode()
    # a restart: the newest snapshot, the log after it
    tree = restore(os.path.join(data_dir, "version-2"), os.path.join(data_dir, "version-2"))
    assert tree.quota.roots == {"/q"}
    assert tree.nodes["/zookeeper/quota/q/zookeeper_stats"].data == stats
    assert tree.digest == digest == to_long(tree_digest(tree.nodes))
    with ZkpyServer(config=cfg, data_dir=data_dir) as srv:
        zk = KazooClient(hosts=srv.hosts)
        zk.start()
        assert zk.get("/zookeeper/quota/q/zookeeper_stats")[0] == stats
        zk.create("/q/after", b"abc")
        assert zk.get("/zookeeper/quota/q/zookeeper_stats")[0] == \
            f"count={2 + len(kept)},bytes={size + 3}".encode()
        for i in range(130):
            zk.create(f"/m{i}")    # past a 128th zxid: a digest in the history
        zk.stop()
        zk.close()
        text = four_letter_word(srv.host, srv.port, "hash")
        assert text and text == srv.server.tree.digest_log.text()
        zxid, value = text.splitlines()[-1].split(": ")
        assert int(zxid, 16) % 128 == 0
