"""A member of a replicated ensemble: the asyncio driver of its ZAB peer.

QuorumPeer feeds the peer (zkpy.zab.peer.ZabPeer) the network, the disk and
the clock, and carries its effects out (zkpy.zab.messages): it sends frames,
appends to the durable log, writes the epoch files, truncates the log or
installs a snapshot, applies committed txns to the server, and tells the
server when the peer's state changes, so that the server swaps its role
(zkpy.server.roles.follow_peer).  What the server does in each role is the
role's business; nothing here decides it.

The server's log is this driver: a leader's prep hands it each txn, which
becomes a proposal."""

import asyncio
import gc
import logging
import os

from ..storage.database import DurableLog, dirs, load_snapshot, logged_txns
from ..storage.epochs import read_epochs, write_epochs
from ..storage.forked import fork_bytes
from ..storage.snapshot import parse_snapshot, snapshot_bytes, write_snapshot_bytes
from ..storage.txnlog import list_logs, truncate_logs
from ..zab.messages import (
    SNAP, Apply, CheckDigest, Commit, Deliver, Epochs, Inform, Informs, InstallSnapshot, Log,
    Proposal, Proposals, Reconfigured, RoleChanged, Send, Serving, Sync, Truncate,
)
from ..zab.peer import ZabPeer
from ..zab.port import ZabPort
from ..zab.quorum import QuorumConfig
from ..zab.quorum_auth import QuorumLinkAuth
from ..zab.secure_link import LinkSecurity
from ..zab.transport import PeerTransport, encode, proposal_size
from . import digests
from .clock import REAL_CLOCK
from .dynamic_config import backup_static, write_in_force, write_next
from .listener import ServerRunner
from .membership import Membership, read_config
from .peerfigures import PeerFigures
from .roles import LookingRole, follow_peer
from .zkserver import ZooKeeperServer

log = logging.getLogger("zkpy.quorum")

# A SYNC carrying more txns than this is encoded by a forked child (about
# 1 us a txn on the loop, against a few ms to fork), as a SNAP always is.
FORK_SYNC_TXNS = 10000

# How often the peer's clock ticks (its timeouts count in tickTime).
TICK_S = 0.05


def quorum_of(config) -> QuorumConfig:
    return Membership.of_config(config).quorum()


class QuorumPeer:
    """Drives a ZabPeer: carries out its effects and feeds it the network,
    the disk and the clock."""

    def __init__(self, config):
        self.config = config
        self.my_id = config.my_id
        self.clock = REAL_CLOCK
        self.snap_dir, self.log_dir = dirs(config)
        self.quorum = quorum_of(config)
        self.core = None
        self.port = None
        self.server = None
        self.durable = None
        self.transport = None
        self.runner = None
        self.loop = None
        self.stash = {}            # SNAP bytes that came with a Sync, by zxid
        self.log_generation = 0
        self.tasks = []
        # The last message encoded and its frame: the core hands the same
        # message object (a proposal, a commit, a ping) to every follower.
        self.last_msg = None
        self.last_frame = b""
        self.figures = None        # PeerFigures: election, sync and proposal times
        self._handlers = {
            Send: self._send, Log: self._log, Apply: self._apply, Epochs: self._epochs,
            Truncate: self._truncate, InstallSnapshot: self._install_snapshot,
            RoleChanged: self._role_changed, Serving: self._serving, Deliver: self._deliver,
            CheckDigest: self._check_digest, Reconfigured: self._reconfigured,
        }

    # --- start and stop ------------------------------------------------------------------

    async def start(self):
        self.loop = loop = asyncio.get_running_loop()
        c = self.config
        os.makedirs(self.snap_dir, exist_ok=True)
        gc.disable()  # see ServerRunner.start: no collections while the tree is built
        try:
            tree = await loop.run_in_executor(None, load_snapshot, self.snap_dir)
            history = await loop.run_in_executor(None, logged_txns, self.log_dir,
                                                 tree.last_zxid)
        finally:
            gc.enable()
        gc.freeze()
        accepted, current = read_epochs(str(c.data_dir))
        membership = Membership.of_config(c)
        if c.reconfig_enabled and c.dynamic_config_file is None and c.config_path is not None:
            backup_static(c.config_path)    # before the first rewrite of zoo.cfg
        self.core = ZabPeer(self.my_id, self.quorum, accepted_epoch=accepted,
                            current_epoch=current, history=history, base_zxid=tree.last_zxid,
                            now=self.clock.now_ms(), tick_ms=c.tick_time, init_limit=c.init_limit,
                            sync_limit=c.sync_limit, history_limit=max(1000, c.snap_count),
                            read_config=read_config, config_text=membership.text().encode(),
                            reconfig_enabled=c.reconfig_enabled,
                            connect_limit=c.connect_to_learner_master_limit)
        self.port = ZabPort(self.core, self._process, loop.call_soon)
        # Logged txns after the snapshot may already be in it (it is fuzzy).
        self.server = ZooKeeperServer(c, txn_log=self, tree=tree, server_id=self.my_id,
                                      clock=self.clock, replay_until=self.core.last_logged)
        self.server.set_role(LookingRole(self.server))
        self.figures = PeerFigures(self.server.metrics, self.clock)
        self.durable = self._durable_log(tree)
        addresses = {i: s.quorum_addresses for i, s in c.servers.items()}
        me = c.servers[self.my_id]
        self.transport = PeerTransport(self.my_id, addresses, self._on_message, self._on_link_down,
                                       security=LinkSecurity.from_config(c),
                                       accept_unknown=c.reconfig_enabled,
                                       auth=QuorumLinkAuth.from_config(c),
                                       listen_on_all_ips=c.quorum_listen_on_all_ips)
        await self.transport.start()
        self.runner = await ServerRunner(c, self.server, peer=self).start()
        self.core.start()
        self._process()
        self.tasks.append(loop.create_task(self._ticker()))
        log.info("zkpy peer %d serving clients on %s:%s, peers on %s:%s", self.my_id,
                 self.runner.host, self.runner.port, me.host, me.quorum_port)
        return self

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        if self.runner is not None:
            await self.runner.stop()   # closes the server and its log
        if self.transport is not None:
            await self.transport.stop()

    async def _ticker(self):
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock.now_ms()
            try:
                self.core.tick(now)
                self._process()
                self.server.role.tick(now)
            except Exception:
                # A dead ticker is a peer that never times out: say so, go on.
                log.exception("peer %d: tick failed", self.my_id)

    # --- inputs to the state machine -------------------------------------------------------

    def _on_message(self, frm, msg):
        kind = msg.__class__
        if kind is Proposal or kind is Commit:
            self.figures.received(kind is Proposal)
        elif kind is Proposals:
            self.figures.received(True, len(msg.txns))
        if kind is Sync and msg.snapshot is not None:
            # The snapshot's bytes wait here for InstallSnapshot.
            self.stash[msg.zxid] = msg.snapshot
            msg.snapshot = None
        self.core.receive(frm, msg)
        self._process()

    def _on_link_down(self, peer):
        self.core.link_down(peer)
        self._process()

    def _durable_log(self, tree):
        """A log that reports each group commit once, with its last zxid."""
        gen = self.log_generation
        durable = DurableLog(self.config, self.loop, tree,
                             on_batch=lambda zxid: self._on_logged(gen, zxid))
        durable.observe(self.server.metrics, self.server.stats)
        return durable

    def _on_logged(self, generation, zxid):
        if generation == self.log_generation:
            self.core.logged(zxid)
            self._process()

    # --- the server's log: the leader's writes become proposals -----------------------------

    def append(self, txn, on_logged):
        self.figures.proposed(txn.zxid)
        self.port.propose(txn)

    def close(self):
        if self.durable is not None:
            self.durable.close()

    def purge(self):
        return self.durable.purge()

    # --- effects ------------------------------------------------------------------------------

    def _process(self):
        core = self.core
        handlers = self._handlers
        while core.out:
            for eff in core.take():
                handlers[eff.__class__](eff)

    def _send(self, eff):
        to, msg = eff.to, eff.msg
        if msg is not self.last_msg:
            cls = msg.__class__
            if cls is Commit or cls is Inform or cls is Informs:
                digests.stamp(msg, self.server.tree)
            elif cls is Sync:
                self.figures.synced_learner(msg.kind)
            if cls is Sync and (msg.kind == SNAP or len(msg.txns) > FORK_SYNC_TXNS):
                self._send_sync_forked(to, msg)
                return
            self.last_msg = msg
            self.last_frame = encode(msg)
            if msg.__class__ is Proposal:
                self.port.note_proposal_size(len(self.last_frame) - 4)
            elif msg.__class__ is Proposals:
                for txn in msg.txns:
                    self.port.note_proposal_size(proposal_size(txn))
        self.transport.send_frame(to, self.last_frame)

    def _log(self, eff):
        append = self.durable.append
        for txn in eff.txns:
            append(txn)

    def _apply(self, eff):
        self.figures.committed(eff.txn.zxid)
        self.server.apply(eff.txn)

    def _epochs(self, eff):
        write_epochs(str(self.config.data_dir), eff.accepted, eff.current)

    def _truncate(self, eff):
        log.info("peer %d: sync from the leader by TRUNC to zxid 0x%x", self.my_id, eff.zxid)
        self._restart_log(lambda: truncate_logs(self.log_dir, eff.zxid))

    def _install_snapshot(self, eff):
        log.info("peer %d: sync from the leader by SNAP at zxid 0x%x", self.my_id, eff.zxid)
        blob = self.stash.pop(eff.zxid)
        tree = parse_snapshot(blob)

        def replace():
            # The leader's bytes are the snapshot file (parse_snapshot
            # checked them): no need to serialise the tree again.
            write_snapshot_bytes(blob, tree.last_zxid, self.snap_dir)
            for _, path in list_logs(self.log_dir):
                os.remove(path)
        self._restart_log(replace, tree)
        self.server.install_tree(tree)

    def _role_changed(self, eff):
        self.figures.role_changed(eff.role)
        log.info("peer %d: %s (leader %s, epoch %s)", self.my_id, eff.role, eff.leader, eff.epoch)
        follow_peer(self.server, self.port, eff)

    def _serving(self, eff):
        self.figures.serving(eff.serving, self.core.role)
        follow_peer(self.server, self.port, eff)
        if eff.serving:
            log.info("peer %d: serving as %s", self.my_id, self.server.mode)

    def _check_digest(self, eff):
        if not digests.check(self.server, self.core, eff.zxid, eff.digest):
            self._process()

    def _reconfigured(self, eff):
        """A membership seen in a proposal (the .next file), or now in force:
        the peer links, /zookeeper/config, the dynamic config file and the
        client port follow it."""
        c = self.config
        m = Membership.parse(eff.config)
        if not eff.committed:
            if c.reconfig_enabled and c.config_path is not None:
                write_next(c.config_path, m)
            return
        old = c.servers.get(self.my_id)
        c.servers, c.groups, c.weights, c.config_version = m.servers, m.groups, m.weights, m.version
        me = m.servers.get(self.my_id)
        if me is not None:
            c.peer_type = me.role
        self.transport.update_addresses({i: s.quorum_addresses for i, s in m.servers.items()})
        self.server.take_membership()
        if c.reconfig_enabled and c.config_path is not None:
            c.dynamic_config_file = write_in_force(c.config_path, m,
                                                   me is not None and me.client_port is not None)
        log.info("peer %d: membership version 0x%x in force: %s", self.my_id, m.version,
                 ", ".join(f"{i}:{s.role}" for i, s in m.servers.items()))
        if me is not None and me.client_port is not None and \
                (old is None or (old.client_host, old.client_port) != (me.client_host, me.client_port)):
            self.loop.create_task(self.runner.rebind(me.client_host, me.client_port))

    def _deliver(self, eff):
        self.server.role.on_app(eff.frm, eff.payload)

    # --- sync by the file or in a forked child ------------------------------------------------

    def _restart_log(self, change, tree=None):
        """Stop the log, change the files, start a new log file."""
        self.durable.close()
        self.log_generation += 1
        change()
        self.durable = self._durable_log(tree if tree is not None else self.server.tree)

    def _send_sync_forked(self, to, msg):
        """A SYNC by SNAP (the whole tree) or with many txns, encoded by a
        forked child: it sees the tree as it is now while this loop goes on
        serving.  The frame's place on the link is held meanwhile: what
        follows it (proposals, NEWLEADER) waits for it, so the follower gets
        everything in the order the core sent it."""
        place = self.transport.reserve(to)
        if place is None:
            return
        tree = self.server.tree
        zxid = tree.last_zxid
        if msg.kind == SNAP:
            log.info("peer %d: syncing peer %d by SNAP at zxid 0x%x (%d znodes)", self.my_id,
                     to, zxid, tree.node_count())

            def make():
                return encode(Sync(msg.kind, msg.zxid, msg.txns, msg.settled,
                                   snapshot_bytes(tree, zxid, stable=True)))
        else:
            log.info("peer %d: syncing peer %d by %s with %d txns", self.my_id, to, msg.kind,
                     len(msg.txns))

            def make():
                return encode(msg)

        def done(frame):
            if frame is None:
                log.warning("peer %d: the sync for peer %d failed; dropping its link",
                            self.my_id, to)
                self.transport.drop(place)
            else:
                self.transport.fill(place, frame)

        if not fork_bytes(make, self.loop, done):
            done(make())


async def run_peer(config, stop_event: asyncio.Event):
    peer = await QuorumPeer(config).start()
    try:
        await stop_event.wait()
    finally:
        await peer.stop()
