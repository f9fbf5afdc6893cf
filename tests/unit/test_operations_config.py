"""zoo.cfg keys of the AdminServer and the metrics provider: ZooKeeper's
defaults, its parsing, and one clear line naming the key for a bad value."""

import subprocess
import sys

import pytest

from zkpy.server.config import (
    DEFAULT_METRICS_PROVIDER, PROMETHEUS_METRICS_PROVIDER, ConfigError, parse_config,
)


def cfg(*lines):
    return parse_config("\n".join(("dataDir=/var/zk",) + lines))


def error(*lines) -> str:
    with pytest.raises(ConfigError) as info:
        cfg(*lines)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults():
    c = cfg()
    assert c.admin_enable_server is True
    assert (c.admin_server_address, c.admin_server_port) == ("0.0.0.0", 8080)
    assert c.admin_command_url == "/commands"
    assert c.admin_idle_timeout_ms == 30000
    assert (c.admin_snapshot_enabled, c.admin_restore_enabled) == (True, True)
    assert c.admin_rate_limiter_interval_ms == 300000
    assert c.metrics_provider_class_name == DEFAULT_METRICS_PROVIDER
    assert (c.metrics_provider_http_host, c.metrics_provider_http_port) == ("0.0.0.0", 7000)
    assert c.metrics_provider_export_jvm_info is True
    assert c.source_text.startswith("dataDir=/var/zk")


def test_values_and_java_parsing():
    c = cfg("admin.serverAddress=127.0.0.1", "zookeeper.admin.serverPort=0x1F90",
            "admin.commandURL=/zk", "admin.idleTimeout=5000", "admin.snapshot.enabled=no",
            "admin.restore.enabled=TRUE", "admin.rateLimiterIntervalInMS=0",
            f"metricsProvider.className={PROMETHEUS_METRICS_PROVIDER}",
            "metricsProvider.httpHost=127.0.0.1", "metricsProvider.httpPort=9141",
            "metricsProvider.exportJvmInfo=false")
    assert c.admin_server_address == "127.0.0.1"
    assert c.admin_server_port == 8080          # Integer.getInteger decodes hex
    assert c.admin_command_url == "/zk" and c.admin_idle_timeout_ms == 5000
    assert c.admin_snapshot_enabled is False    # Boolean.parseBoolean: not "true"
    assert c.admin_restore_enabled is True
    assert c.admin_rate_limiter_interval_ms == 0
    assert c.metrics_provider_class_name == PROMETHEUS_METRICS_PROVIDER
    assert c.metrics_provider_http_port == 9141
    assert c.metrics_provider_export_jvm_info is False
    assert c.unknown_keys == []


@pytest.mark.parametrize("line, key", [
    ("metricsProvider.className=com.example.Nope", "metricsProvider.className"),
    ("metricsProvider.httpPort=http", "metricsProvider.httpPort"),
    ("metricsProvider.httpPort=70000", "metricsProvider.httpPort"),
    ("admin.serverPort=x", "admin.serverPort"),
    ("admin.idleTimeout=soon", "admin.idleTimeout"),
    ("admin.commandURL=commands", "admin.commandURL"),
    ("admin.rateLimiterIntervalInMS=5m", "admin.rateLimiterIntervalInMS"),
    ("admin.portUnification=true", "admin.portUnification"),
    ("admin.httpVersion=2", "admin.httpVersion"),
])
def test_bad_values_name_the_key(line, key):
    message = error(line)
    assert message.startswith(f"zoo.cfg: {key}: ")


def test_unknown_admin_keys_are_reported():
    c = cfg("admin.noSuchKey=1")
    assert c.unknown_keys == ["admin.noSuchKey"]


def test_bad_provider_stops_the_server_with_exit_code_2(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={tmp_path}\nclientPort=2181\nmetricsProvider.className=x.Y\n")
    proc = subprocess.run([sys.executable, "-m", "zkpy.server.main", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "metricsProvider.className" in lines[0]


def test_force_https_without_a_key_store_exits_2(tmp_path):
    from socket import socket
    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={tmp_path}\nclientPort={port}\nadmin.serverPort=0\n"
                    f"admin.forceHttps=true\n")
    proc = subprocess.run([sys.executable, "-m", "zkpy.server.main", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "ssl.quorum.keyStore.location" in proc.stderr.strip().splitlines()[-1]
