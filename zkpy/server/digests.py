"""The data-tree digest across an ensemble (digest.enabled, on by default).

Each COMMIT (and each INFORM, for observers) carries the leader's tree digest
after the txn it names: the leader applies the txn before the message goes
out, and the driver stamps it then (the ZAB peer has no tree).  A learner,
having applied that txn, compares its own tree's digest.  Every txn of a
commit lies at or before the zxid it names, and the digest sums every node,
so a tree that diverged anywhere shows at the next commit.

A mismatch is counted (mntr's zk_digest_mismatches_count), logged loudly, and
the learner syncs again with its leader by SNAP, dropping the tree it had.
ZooKeeper counts and logs a mismatch the same way (it compares at each txn,
with a digest its leader computed at prep time) but goes on serving the
diverged tree."""

import logging

log = logging.getLogger("zkpy.quorum")


def stamp(msg, tree) -> None:
    """A Commit or Inform going out from the leader, which has applied its
    zxid: give it the tree's digest now (once: the message may be shared)."""
    if msg.digest is None and tree.digest_enabled:
        msg.digest = tree.digest


def check(server, core, zxid, digest) -> bool:
    """A learner has applied zxid: does its tree match the leader's?  If not,
    it says so and syncs again (core.resync())."""
    mine = server.tree.digest
    if mine is None or mine == digest:
        return True
    server.stats.digest_mismatches += 1
    log.error("Digests are not matching. Value is Zxid. 0x%x: the leader's digest is %d, this "
              "peer's %d; its tree has diverged: syncing again with the leader by SNAP",
              zxid & 0xFFFFFFFFFFFFFFFF, digest, mine)
    core.resync()
    return False
