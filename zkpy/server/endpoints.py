"""A server's HTTP endpoints, started and stopped with its client port
(listener.ServerRunner): the AdminServer (admin.enableServer, on by default)
and the Prometheus exporter (metricsProvider.className).  Both run on the
server's event loop and read the server through server_ref(), so that they
follow it wherever it goes."""

import dataclasses
import logging

from .config import PROMETHEUS_METRICS_PROVIDER, ConfigError

log = logging.getLogger("zkpy.server")


class Endpoints:
    def __init__(self, config, server_ref, peer=None):
        self.config = config
        self.server_ref = server_ref
        self.peer = peer
        self.admin = None
        self.prometheus = None

    async def start(self):
        c = self.config
        server = self.server_ref()
        if c.metrics_provider_class_name == PROMETHEUS_METRICS_PROVIDER:
            from . import prometheus
            self.prometheus = prometheus.PrometheusExporter(c, self.server_ref)
            registry = self.prometheus.registry
            server.metrics.provider_dump = lambda: prometheus.dump(registry)
            await self.prometheus.start()
        if c.admin_enable_server:
            from .admin import AdminServer
            from .commands import AdminContext
            context = AdminContext(server, self.peer, c.source_text)
            self.admin = AdminServer(c, context, admin_ssl_context(c))
            try:
                await self.admin.start()
            except OSError as e:
                if self.peer is None:
                    raise OSError(e.errno, f"AdminServer on port {c.admin_server_port}: "
                                           f"{e.strerror}") from None
                # QuorumPeer.start: the peer serves on without its AdminServer.
                log.error("Problem starting AdminServer on address %s, port %d: %s",
                          c.admin_server_address, c.admin_server_port, e)
                self.admin = None
        return self

    async def stop(self):
        for endpoint in (self.admin, self.prometheus):
            if endpoint is not None:
                await endpoint.stop()


def admin_ssl_context(config):
    """admin.forceHttps: HTTPS with the ssl.quorum.* key and trust stores, as
    JettyAdminServer takes them (QuorumX509Util), clients not asked for a
    certificate; None for plain HTTP."""
    if not config.admin_force_https:
        return None
    from ..security.tls import TlsSettings, server_context
    settings = TlsSettings.from_config(config, quorum=True)
    if settings.key_store is None:
        raise ConfigError("admin.forceHttps needs ssl.quorum.keyStore.location",
                          key="ssl.quorum.keyStore.location")
    return server_context(dataclasses.replace(settings, client_auth="none"))


def startup_figures(metrics, dbinit_ms: float, timings: dict) -> None:
    """ZooKeeper's startup summaries: dbinittime (the whole load),
    startup_snap_load_time, startup_txns_loaded, startup_txns_load_time."""
    metrics.summary("dbinittime").add_value(dbinit_ms)
    if timings:
        metrics.summary("startup_snap_load_time").add_value(timings["snap_load_ms"])
        metrics.summary("startup_txns_loaded").add_value(timings["txns_loaded"])
        metrics.summary("startup_txns_load_time").add_value(timings["txns_load_ms"])
