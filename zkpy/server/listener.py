"""The asyncio shell around a ZooKeeperServer: the client port, the tick that
expires sessions and idle connections, and the container/TTL reaper."""

import asyncio
import gc
import logging
import time

from ..storage.database import DurableLog, dirs, restore
from .pause_monitor import PauseMonitor
from .endpoints import Endpoints, startup_figures
from .secure_port import client_port_factory, open_secure_port
from .zkserver import ZooKeeperServer

log = logging.getLogger("zkpy.server")


class ServerRunner:
    def __init__(self, config, server: ZooKeeperServer | None = None, peer=None):
        """peer: the QuorumPeer of an ensemble member (its AdminServer
        reports on it)."""
        self.config = config
        self.server = server
        self.peer = peer
        self.listener = None
        self.secure_listener = None
        self.secure_port = None
        self.tasks = []
        self.port = None
        self.host = None
        self.endpoints = None     # the AdminServer and the Prometheus exporter

    async def start(self):
        loop = asyncio.get_running_loop()
        c = self.config
        if self.server is None:
            snap_dir, log_dir = dirs(c)
            # Building a large tree makes millions of objects that hold no
            # cycles: with the collector on, thousands of collections would
            # scan them again and again.
            gc.disable()
            timings = {}
            start = time.monotonic()
            try:
                tree = await loop.run_in_executor(None, restore, snap_dir, log_dir, True,
                                                  timings)
            finally:
                gc.enable()
            gc.freeze()  # the restored tree: long-lived, nothing to scan
            durable = DurableLog(c, loop, tree)
            self.server = ZooKeeperServer(c, durable, tree)
            durable.observe(self.server.metrics, self.server.stats)
            startup_figures(self.server.metrics, (time.monotonic() - start) * 1000, timings)
        # The AdminServer and /metrics first, as ZooKeeper starts them.
        self.endpoints = await Endpoints(c, lambda: self.server, self.peer).start()
        host = c.client_port_address or None
        backlog = self._backlog()
        if c.client_port is not None:   # a server may have a secure port only
            self.listener = await loop.create_server(
                client_port_factory(self.server, loop), host=host, port=c.client_port,
                reuse_address=True, backlog=backlog)
            sock = self.listener.sockets[0]
            self.host, self.port = sock.getsockname()[:2]
        self.secure_listener = await open_secure_port(self.server, loop, backlog)
        if self.secure_listener is not None:
            self.secure_port = self.secure_listener.sockets[0].getsockname()[1]
        self.tasks.append(loop.create_task(self._tick()))
        self.tasks.append(loop.create_task(self._reap_containers()))
        if c.autopurge_purge_interval > 0:
            self.tasks.append(loop.create_task(self._autopurge()))
        if c.jvm_pause_monitor:
            self.tasks.append(loop.create_task(PauseMonitor(c, self.server.metrics).run()))
        return self

    def _backlog(self) -> int:
        # ServerSocket.bind: a backlog below 1 means Java's default of 50.
        n = self.config.client_port_listen_backlog
        return n if n > 0 else 50

    async def rebind(self, host, port):
        """A reconfiguration moved this server's client port: listen there
        instead (the connections made on the old port go on)."""
        loop = asyncio.get_running_loop()
        old = self.listener
        self.listener = await loop.create_server(
            client_port_factory(self.server, loop), host=host or None, port=port,
            reuse_address=True, backlog=self._backlog())
        sock = self.listener.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        if old is not None:
            old.close()
        log.info("serving clients on %s:%s from now on", self.host, self.port)

    async def _tick(self):
        """Every tickTime: expire sessions, close idle connections."""
        server = self.server
        tick = self.config.tick_time / 1000
        while True:
            await asyncio.sleep(tick)
            try:
                server.tick(server.clock.now_ms())
            except Exception:
                log.exception("session tick failed")

    async def _reap_containers(self):
        interval = self.config.container_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.server.role.reap_containers(self.server.clock.wall_ms())
            except Exception:
                log.exception("container reaper failed")

    async def _autopurge(self):
        """autopurge.purgeInterval hours apart: keep autopurge.snapRetainCount snapshots."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.autopurge_purge_interval * 3600)
            try:
                deleted = await loop.run_in_executor(None, self.server.log.purge)
                log.info("Purged %d old snapshot and log files", len(deleted))
            except Exception:
                log.exception("autopurge failed")

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()
        if self.listener is not None:
            self.listener.close()
        if self.secure_listener is not None:
            self.secure_listener.close()
        self.server.shutdown()
        if self.endpoints is not None:
            await self.endpoints.stop()


async def serve_forever(config, stop_event: asyncio.Event, on_ready=None):
    runner = await ServerRunner(config).start()
    log.info("zkpy %s serving clients on %s:%s (dataDir %s)", "standalone",
             runner.host, runner.port, config.data_dir)
    if on_ready is not None:
        on_ready(runner)
    try:
        await stop_event.wait()
    finally:
        await runner.stop()
    return runner
