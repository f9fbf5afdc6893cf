"""The Prometheus exporter (ZooKeeper's PrometheusMetricsProvider), with
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider:
GET /metrics on metricsProvider.httpHost:metricsProvider.httpPort (0.0.0.0:7000),
served by aiohttp on the server's own loop.

Names, types and labels are those ZooKeeper 3.8's exporter writes (with the
Prometheus simpleclient 0.9 it is built on), so that dashboards made for
ZooKeeper work unchanged:

    gauges      znode_count, watch_count, num_alive_connections, ... (the
                gauges ZooKeeperServer, QuorumZooKeeperServer and Leader register)
    counters    ServerMetrics' counters, the sample named as the metric
                (packets of simpleclient 0.9: no _total suffix)
    summaries   ServerMetrics' summaries: {quantile="0.5"} (BASIC) or 0.5,
                0.9, 0.99 (ADVANCED) over the last 10 minutes, _count, _sum
    sets        the same with a "key" label
    process     metricsProvider.exportJvmInfo=true (the default): the
                process_* metrics (the names the JVM exporter uses for them)
                and python_* instead of jvm_*

Every value is read from the server's figures when /metrics is scraped
(one source for each number: zkpy.server.figures and metrics); no
prometheus-client object is touched per request.  prometheus-client gives
the registry, the metric families and the process collectors; the text is
written as simpleclient 0.9 writes it, which prometheus-client's own writer
cannot do (it appends _total to every counter sample)."""

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from . import figures
from .quotametrics import quota_gauge_sets
from .metrics import ADVANCED, ADVANCED_SET, BASIC, BASIC_SET, CATALOGUE, COUNTER, COUNTER_SET

log = logging.getLogger("zkpy.server.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The gauges ZooKeeper 3.8 registers (ZooKeeperServer.registerMetrics,
# QuorumZooKeeperServer, Leader/Follower): mntr's numeric keys of these names.
GAUGES = (
    "avg_latency", "max_latency", "min_latency", "packets_received", "packets_sent",
    "num_alive_connections", "outstanding_requests", "uptime", "znode_count", "watch_count",
    "ephemerals_count", "approximate_data_size", "global_sessions", "local_sessions",
    "open_file_descriptor_count", "max_file_descriptor_count", "connection_drop_probability",
    "last_client_response_size", "max_client_response_size", "min_client_response_size",
    "outstanding_tls_handshake", "auth_failed_count", "non_mtls_remote_conn_count",
    "non_mtls_local_conn_count", "quorum_size", "learners", "synced_followers",
    "synced_non_voting_followers", "synced_observers", "pending_syncs", "leader_uptime",
    "last_proposal_size", "max_proposal_size", "min_proposal_size",
)
_GAUGE_SET = frozenset(GAUGES)

_QUANTILES = {BASIC: (0.5,), ADVANCED: (0.5, 0.9, 0.99),
              BASIC_SET: (0.5,), ADVANCED_SET: (0.5, 0.9, 0.99)}


class ServerCollector:
    """A prometheus-client collector over one server's figures.  server_ref()
    gives the server as it is now (an ensemble member keeps one server)."""

    def __init__(self, server_ref):
        self.server_ref = server_ref

    def collect(self):
        server = self.server_ref()
        if server is None:
            return
        values = dict(figures.gauge_values(server, ""))
        for name in GAUGES:
            v = values.get(name)
            if name in values and isinstance(v, (int, float)) and not isinstance(v, bool):
                m = Metric(name, name, "gauge")
                m.add_sample(name, {}, float(v))
                yield m
        for name, values in quota_gauge_sets(server.tree).items():
            m = Metric(name, name, "gauge")
            for key, v in values.items():
                m.add_sample(name, {"key": key}, float(v))
            yield m
        metrics = server.metrics
        for name, kind in CATALOGUE:
            if kind == COUNTER:
                m = Metric(name, name, "counter")
                m.add_sample(name, {}, float(metrics.counter(name)))
                yield m
            elif kind == COUNTER_SET:
                m = Metric(name, name, "counter")
                for key, n in metrics.sets[name].items():
                    m.add_sample(name, {"key": key}, float(n))
                yield m
            elif kind in (BASIC, ADVANCED):
                m = Metric(name, name, "summary")
                _summary_samples(m, name, metrics.summaries[name], _QUANTILES[kind], {})
                yield m
            else:
                m = Metric(name, name, "summary")
                for key, s in metrics.sets[name].by_key.items():
                    _summary_samples(m, name, s, _QUANTILES[kind], {"key": key})
                yield m
        for name, n in metrics.admin_counters.items():
            m = Metric(name, name, "counter")
            m.add_sample(name, {}, float(n))
            yield m


def _summary_samples(m, name, summary, quantiles, labels):
    for q, v in zip(quantiles, summary.window_quantiles(quantiles)):
        m.add_sample(name, dict(labels, quantile=str(q)), float(v))
    m.add_sample(name + "_count", dict(labels), float(summary.count))
    m.add_sample(name + "_sum", dict(labels), float(summary.total))


def registry_for(server_ref, export_process_info: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server_ref))
    if export_process_info:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def exposition(registry) -> str:
    """The text format (0.0.4) as Prometheus' Java simpleclient 0.9 writes
    it: HELP, TYPE, then the samples under their own names."""
    out = []
    for metric in registry.collect():
        name = metric.name
        mtype = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(metric.type,
                                                                                metric.type)
        samples = metric.samples
        if metric.type == "counter" and samples and \
                all(s.name == name + "_total" for s in samples):
            name += "_total"    # a counter named the OpenMetrics way (python's own)
        elif metric.type == "info":
            name += "_info"
        out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n")
        out.append(f"# TYPE {name} {mtype}\n")
        for s in samples:
            if s.name.endswith("_created"):
                continue
            if s.labels:
                labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels.items())
                out.append(f"{s.name}{{{labels},}} {floatToGoString(s.value)}\n")
            else:
                out.append(f"{s.name} {floatToGoString(s.value)}\n")
    return "".join(out)


def dump(registry) -> list:
    """PrometheusMetricsProvider.dump: every sample as (key, value), the key
    its name and labels -- what mntr prints with this provider."""
    out = []
    for metric in registry.collect():
        for s in metric.samples:
            if s.name.endswith("_created"):
                continue
            key = s.name
            if s.labels:
                key += "{" + ",".join(f'{k}="{v}"' for k, v in s.labels.items()) + "}"
            out.append((key, float(s.value)))
    return out


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class PrometheusExporter:
    """/metrics over HTTP, on the loop it is started on."""

    def __init__(self, config, server_ref):
        self.config = config
        self.registry = registry_for(server_ref, config.metrics_provider_export_jvm_info)
        self.runner = None
        self.port = None

    async def start(self):
        app = web.Application()
        app.router.add_route("GET", "/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        c = self.config
        site = web.TCPSite(self.runner, c.metrics_provider_http_host,
                           c.metrics_provider_http_port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        log.info("Started /metrics HTTP endpoint at host: %s, port: %d, exportJvmInfo: %s",
                 c.metrics_provider_http_host, self.port, c.metrics_provider_export_jvm_info)
        return self

    async def stop(self):
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _metrics(self, request):
        return web.Response(body=exposition(self.registry).encode("utf-8"),
                            headers={"Content-Type": CONTENT_TYPE})
