"""The AdminServer of a real zkpy server over real HTTP: its zoo.cfg keys,
3.9's snapshot and restore (authentication, switches, rate limit, an atomic
restore that survives a restart), HTTPS with admin.forceHttps."""

import json
import ssl
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from zkpy.testing import ZkpyServer, free_port

DIGEST = {"Authorization": "digest admin:secret"}


def call(port, path, data=None, headers=None, scheme="http", context=None):
    """(status, headers, body bytes) of a request to the AdminServer."""
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", data=data,
                                 headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def admin_server(**cfg):
    port = free_port()
    config = {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
              "admin.serverPort": port, "admin.rateLimiterIntervalInMS": "0", **cfg}
    return ZkpyServer(config=config), port


def client(srv):
    zk = KazooClient(hosts=srv.hosts, timeout=30.0)
    zk.start(timeout=15)
    return zk


def test_command_url_and_aliases():
    srv, port = admin_server(**{"admin.commandURL": "/zk"})
    with srv:
        status, headers, body = call(port, "/zk")
        assert status == 200 and '<a href="/zk/monitor">monitor</a>' in body.decode()
        for alias in ("mntr", "monitor"):
            status, headers, body = call(port, f"/zk/{alias}")
            answer = json.loads(body)
            assert answer["command"] == alias and answer["error"] is None
            assert answer["server_state"] == "standalone"
        assert call(port, "/commands/monitor")[0] == 404


def test_admin_server_off_by_switch():
    srv = ZkpyServer(config={"admin.enableServer": "false"})
    with srv:
        assert srv.runner.endpoints.admin is None


def test_snapshot_and_restore_round_trip(tmp_path):
    srv, port = admin_server()
    with srv:
        zk = client(srv)
        zk.create("/keep", b"before")
        for i in range(20):
            zk.create(f"/keep/n{i}", str(i).encode())
        status, headers, blob = call(port, "/commands/snapshot", headers=DIGEST)
        assert status == 200
        assert headers["Content-Type"] == "application/octet-stream"
        assert int(headers["snapshot_size"]) == len(blob) > 0
        assert headers["last_zxid"] == f"0x{zk.exists('/keep/n19').mzxid:x}"
        # Without streaming: the headers, and the command's JSON.
        status, headers, body = call(port, "/commands/snapshot?streaming=false", headers=DIGEST)
        assert status == 200 and json.loads(body) == {"command": "snapshot", "error": None}
        assert int(headers["snapshot_size"]) > 0

        # Changes after the snapshot ...
        zk.set("/keep", b"after")
        zk.delete("/keep/n0")
        zk.create("/later", b"x")
        last = zk.exists("/later").mzxid
        # ... are undone by the restore.
        status, headers, body = call(port, "/commands/restore", data=blob, headers=DIGEST)
        answer = json.loads(body)
        assert status == 200 and answer["error"] is None
        assert answer["last_zxid"] > last      # the restore takes a zxid of its own
        zk.stop()
        zk.close()
        zk = client(srv)
        assert zk.get("/keep")[0] == b"before"
        assert zk.exists("/keep/n0") is not None and zk.exists("/later") is None
        zk.create("/after-restore", b"y")
        assert zk.exists("/after-restore").czxid > answer["last_zxid"]
        zk.stop()
        zk.close()
        data_dir = srv.data_dir
        srv.stop()
        # The restored tree is what a restart finds, with the writes after it.
        with ZkpyServer(data_dir=data_dir) as again:
            zk = client(again)
            assert zk.get("/keep")[0] == b"before"
            assert zk.exists("/later") is None and zk.exists("/after-restore") is not None
            assert len(zk.get_children("/keep")) == 20
            zk.stop()
            zk.close()


def test_a_bad_snapshot_changes_nothing():
    srv, port = admin_server()
    with srv:
        zk = client(srv)
        zk.create("/here", b"1")
        _, _, blob = call(port, "/commands/snapshot", headers=DIGEST)
        damaged = blob[:-10] + bytes(10)
        for body in (damaged, b"not a snapshot", blob[: len(blob) // 2]):
            status, _, answer = call(port, "/commands/restore", data=body, headers=DIGEST)
            assert status == 500 and "not a valid snapshot" in json.loads(answer)["error"]
        assert zk.get("/here")[0] == b"1"
        zk.set("/here", b"2")
        assert zk.get("/here")[0] == b"2"
        zk.stop()
        zk.close()


def test_authentication_and_authorization():
    srv, port = admin_server()
    with srv:
        status, _, body = call(port, "/commands/snapshot")
        assert status == 401 and json.loads(body)["error"] == "Auth info is missing for the command"
        for bad in ("nosuchscheme x", "digest", "a b c"):
            status, _, body = call(port, "/commands/snapshot", headers={"Authorization": bad})
            assert status == 401 and json.loads(body)["error"] == "Not authenticated"
        # "/" open to the world: any authenticated caller may; ip works too.
        assert call(port, "/commands/snapshot", headers={"Authorization": "ip"})[0] == 200
        # "/" closed to all but admin:secret.
        zk = client(srv)
        zk.add_auth("digest", "admin:secret")
        zk.set_acls("/", [make_digest_acl("admin", "secret", all=True)])
        status, _, body = call(port, "/commands/snapshot",
                               headers={"Authorization": "digest eve:guess"})
        assert status == 403 and json.loads(body)["error"] == "Not authorized"
        assert call(port, "/commands/snapshot", headers=DIGEST)[0] == 200
        assert call(port, "/commands/restore", data=b"x",
                    headers={"Authorization": "ip"})[0] == 403
        zk.stop()
        zk.close()


def test_switches_and_rate_limit():
    srv, port = admin_server(**{"admin.snapshot.enabled": "false",
                                "admin.restore.enabled": "false"})
    with srv:
        assert call(port, "/commands/snapshot", headers=DIGEST)[0] == 503
        assert call(port, "/commands/restore", data=b"x", headers=DIGEST)[0] == 503
    srv, port = admin_server(**{"serializeLastProcessedZxid.enabled": "false"})
    with srv:
        assert call(port, "/commands/snapshot", headers=DIGEST)[0] == 500
    # One restore per admin.rateLimiterIntervalInMS (milliseconds).
    srv, port = admin_server(**{"admin.rateLimiterIntervalInMS": "3600000"})
    with srv:
        assert call(port, "/commands/restore", data=b"x", headers=DIGEST)[0] == 500
        status, _, body = call(port, "/commands/restore", data=b"x", headers=DIGEST)
        assert status == 429
        assert srv.server.metrics.admin_counters["restore_rate_limited_count"] == 1


def test_get_only_and_post_only():
    srv, port = admin_server()
    with srv:
        assert call(port, "/commands/restore", headers=DIGEST)[0] == 405
        assert call(port, "/commands/monitor", data=b"")[0] == 405
        status, _, body = call(port, "/commands/nope", data=b"")
        assert status == 200 and json.loads(body)["error"] == "Unknown command: nope"


def test_https_with_force_https(tmp_path):
    from tests.support import pki

    ca = pki.CA()
    store = pki.write_pem_key_store(tmp_path / "server.pem", ca.issue("zkpy admin"), ca)
    trust = pki.write_pem_trust_store(tmp_path / "ca.pem", ca)
    srv, port = admin_server(**{
        "admin.forceHttps": "true",
        "ssl.quorum.keyStore.location": store,
        "ssl.quorum.keyStore.type": "PEM",
    })
    with srv:
        ctx = ssl.create_default_context(cafile=str(trust))
        ctx.check_hostname = False
        status, _, body = call(port, "/commands/ruok", scheme="https", context=ctx)
        assert status == 200 and json.loads(body)["command"] == "ruok"
        with pytest.raises(Exception):
            call(port, "/commands/ruok")     # plain HTTP is not served


def test_admin_port_taken_stops_a_standalone_server(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"dataDir={tmp_path}\nclientPort={free_port()}\n"
                       f"admin.serverAddress=127.0.0.1\n"
                       f"admin.serverPort={taken.getsockname()[1]}\n")
        proc = subprocess.run([sys.executable, "-m", "zkpy.server.main", str(cfg)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot start the AdminServer on port" in proc.stderr
