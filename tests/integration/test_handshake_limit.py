"""netty.server.outstandingHandshake.limit on a real server: with one TLS
handshake under way on the secure port (a client that connected and sent
nothing), the next connection is closed as it is accepted, counted in
tls_handshake_exceeded; once that handshake is over, TLS clients connect
again.  On a unified port a plaintext client ends its count with its first
byte."""

import socket
import time

import pytest

from tests.support import pki
from zkpy.rawclient import RawClient
from zkpy.testing import ZkpyServer, free_port


def mntr(srv) -> dict:
    return dict(line.split("\t", 1) for line in srv.four_letter("mntr").splitlines()
                if "\t" in line)


@pytest.fixture
def tls(tmp_path):
    keys, ctx = pki.mutual_tls(tmp_path)
    keys["serverCnxnFactory"] = "org.apache.zookeeper.server.NettyServerCnxnFactory"
    return keys, ctx


def closed_at_once(port) -> bool:
    """True if the server closes a fresh connection without waiting for us."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True


def test_a_handshake_over_the_limit_is_refused(tls):
    keys, ctx = tls
    port = free_port()
    config = dict(keys, secureClientPort=port, **{"netty.server.outstandingHandshake.limit": 1})
    with ZkpyServer(config={k: str(v) for k, v in config.items()}) as srv:
        silent = socket.create_connection(("127.0.0.1", port))   # shakes no hands
        try:
            srv.call(lambda server: None)
            assert int(mntr(srv)["zk_outstanding_tls_handshake"]) == 1
            assert closed_at_once(port)
            assert int(mntr(srv)["zk_tls_handshake_exceeded"]) == 1
        finally:
            silent.close()
        # Its handshake failed (the connection closed): room again.
        deadline = time.monotonic() + 10
        while mntr(srv)["zk_outstanding_tls_handshake"] != "0":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with RawClient("127.0.0.1", port, ssl_context=ctx) as c:
            c.connect()
        assert int(mntr(srv)["zk_outstanding_tls_handshake"]) == 0
        assert int(mntr(srv)["zk_tls_handshake_exceeded"]) == 1


def test_without_a_limit_handshakes_are_not_counted(tls):
    keys, ctx = tls
    port = free_port()
    config = dict(keys, secureClientPort=port)
    with ZkpyServer(config={k: str(v) for k, v in config.items()}) as srv:
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            with RawClient("127.0.0.1", port, ssl_context=ctx) as c:
                c.connect()
            m = mntr(srv)
            assert (m["zk_outstanding_tls_handshake"], m["zk_tls_handshake_exceeded"]) == \
                ("0", "0")
        finally:
            for s in silent:
                s.close()


def test_a_plaintext_client_on_a_unified_port_ends_its_count(tls):
    keys, ctx = tls
    config = dict(keys, **{"client.portUnification": "true",
                           "netty.server.outstandingHandshake.limit": 1})
    with ZkpyServer(config={k: str(v) for k, v in config.items()}) as srv:
        # Plaintext clients one after another: each frees its place with its
        # first byte, so the next is let in.
        for _ in range(3):
            with RawClient(srv.hosts) as c:
                c.connect()
        with RawClient(srv.host, srv.port, ssl_context=ctx) as c:
            c.connect()
        assert int(mntr(srv)["zk_tls_handshake_exceeded"]) == 0
