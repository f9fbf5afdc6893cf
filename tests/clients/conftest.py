"""Fixtures for the CLI tests: the same scripted sessions run against Apache
ZooKeeper (the reference) and against zkpy, which must give the same output."""

from __future__ import annotations

import pytest

from zkpy.testing.apache import ApacheZooKeeper, require_apache


@pytest.fixture(scope="session", params=["apache", "zkpy"])
def server_hosts(request) -> str:
    """Connect string ("127.0.0.1:PORT") of a fresh server of each kind.

    "zkpy" errors (it is not skipped) when zkpy.testing cannot be imported:
    a missing server under test is a failure.  Both kinds need the Apache
    CLIs, so both go through require_apache().
    """
    require_apache()
    if request.param == "apache":
        with ApacheZooKeeper() as zk:
            yield zk.hosts
    else:
        from zkpy.testing import ZkpyServer

        with ZkpyServer() as srv:
            yield srv.hosts
