"""Shared test fixtures.

`zkpy.testing` gives `zkpy_server` / `zkpy_hosts`.  The integration suite uses
the fixtures below, which can also run the very same tests against Apache
ZooKeeper 3.8 (the reference) to settle what the expected behaviour is:

    ZKPY_IT_TARGET=apache python -m pytest tests/integration

Tests of behaviours where zkpy deliberately differs from Apache ZooKeeper 3.8.0
are marked `zkpy_only` (skipped against Apache); those that check only Apache
behaviour are marked `apache_only`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re

import pytest

pytest_plugins = ["zkpy.testing"]

TARGET = os.environ.get("ZKPY_IT_TARGET", "zkpy")

# Keys that are JVM system properties (not zoo.cfg keys) for Apache ZooKeeper.
_JVM_ONLY_KEYS = ("znode.container.", "jute.maxbuffer", "zookeeper.")


def pytest_configure(config):
    config.addinivalue_line("markers", "zkpy_only: zkpy behaviour that differs from Apache "
                                       "ZooKeeper 3.8.0 on purpose (skipped against Apache)")
    config.addinivalue_line("markers", "apache_only: only meaningful against Apache ZooKeeper")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TARGET == "apache" and item.get_closest_marker("zkpy_only"):
            item.add_marker(pytest.mark.skip(reason="zkpy-specific behaviour"))
        if TARGET != "apache" and item.get_closest_marker("apache_only"):
            item.add_marker(pytest.mark.skip(reason="runs against Apache ZooKeeper only"))


@contextlib.contextmanager
def run_server(config: dict | None = None):
    """A fresh server of the selected target for a `with`; the object yielded
    has `.hosts` ("127.0.0.1:PORT")."""
    config = {k: str(v) for k, v in (config or {}).items()}
    if TARGET == "apache":
        from zkpy.testing.apache import ApacheZooKeeper, require_apache

        require_apache()
        cfg, jvm = {}, []
        for k, v in config.items():
            if k.startswith(_JVM_ONLY_KEYS):
                jvm.append(f"-D{k}={v}")
            else:
                cfg[k] = v
        with ApacheZooKeeper(extra_cfg=cfg, jvm_args=jvm) as zk:
            yield zk
    else:
        from zkpy.testing import ZkpyServer

        with ZkpyServer(config=config) as zk:
            yield zk


@pytest.fixture(scope="session")
def shared_server():
    """One default server for the tests that do not disturb each other (each
    works under its own `base` path)."""
    with run_server() as srv:
        yield srv


@pytest.fixture
def make_server():
    """make_server(config) -> a fresh server (stopped after the test)."""
    with contextlib.ExitStack() as stack:
        yield lambda config=None: stack.enter_context(run_server(config))


@pytest.fixture
def make_client():
    """make_client(hosts, **kazoo_kwargs) -> a started KazooClient (stopped
    and closed after the test)."""
    from kazoo.client import KazooClient

    clients = []

    def make(hosts, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        c = KazooClient(hosts=hosts, **kwargs)
        c.start(timeout=15)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(shared_server, make_client):
    return make_client(shared_server.hosts)


@pytest.fixture
def zk2(shared_server, make_client):
    return make_client(shared_server.hosts)


@pytest.fixture
def hosts(shared_server):
    return shared_server.hosts


_counter = itertools.count()


@pytest.fixture
def base(request, shared_server, make_client):
    """A fresh, empty persistent node for this test on the shared server,
    e.g. "/it/test_create_3"."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]
    path = f"/it/{name}_{next(_counter)}"
    c = make_client(shared_server.hosts)
    c.ensure_path("/it")
    c.create(path)
    return path
