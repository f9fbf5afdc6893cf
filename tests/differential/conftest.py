"""Fixtures of the differential suite: one Apache ZooKeeper 3.8 and one zkpy,
configured alike, shared by the whole test session; every test works under its
own root path.  Special scenarios start their own pair (`server_pair`)."""

from __future__ import annotations

import contextlib

import pytest

from zkpy.testing.apache import ApacheZooKeeper, require_apache

from .harness import Differential

# Both servers get the same settings.  The container/TTL reaper runs only
# once an hour on the shared pair: a reap consumes a zxid, and one landing in
# the middle of another test would shift its zxid labels on one server only.
SHARED_CONFIG = {
    "extendedTypesEnabled": "true",
    "znode.container.checkIntervalMs": "3600000",
}
# Keys that are JVM system properties for Apache ZooKeeper, not zoo.cfg keys.
_JVM_ONLY_PREFIXES = ("znode.container.", "jute.maxbuffer", "readonlymode.")


@contextlib.contextmanager
def server_pair(config: dict | None = None):
    """(apache, zkpy): a fresh Apache ZooKeeper and a fresh zkpy with the same
    configuration, for the length of a `with`."""
    from zkpy.testing import ZkpyServer

    config = {k: str(v) for k, v in (config or {}).items()}
    cfg, jvm = {}, []
    for k, v in config.items():
        if k.startswith(_JVM_ONLY_PREFIXES):
            jvm.append(f"-D{k}={v}")
        else:
            cfg[k] = v
    with ApacheZooKeeper(extra_cfg=cfg, jvm_args=jvm) as apache, \
            ZkpyServer(config=config) as zkpy:
        yield apache, zkpy


@pytest.fixture(scope="session")
def servers():
    """The shared (apache, zkpy) pair."""
    require_apache()
    with server_pair(SHARED_CONFIG) as pair:
        yield pair


@pytest.fixture
def diff(request, servers):
    """A Differential on the shared pair, with a fresh root path and one
    connected session (d.sessions[0]) that has created the root."""
    apache, zkpy = servers
    name = request.node.name.replace("test_", "")[:30]
    label = "".join(ch if ch.isalnum() else "-" for ch in name)
    with Differential(apache, zkpy, label=label) as d:
        s = d.session("s1")
        d.make_root(s)
        yield d
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.passed:
            d.settle()  # every session's leftover events must agree too


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets the `diff` fixture skip its final settle() after a failed test.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
