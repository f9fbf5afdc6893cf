"""What zkpy-server does with zoo.cfg at start: adjustments it makes are
logged, and the client port listens with the configured backlog."""

import subprocess

from zkpy.testing import ZkpyServer


def _listen_backlog(port: int) -> int:
    """Send-Q of a listening socket is its backlog (ss reads it from the kernel)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines, f"nothing listens on port {port}"
    return int(lines[0][2])


def test_client_port_listen_backlog_is_used():
    with ZkpyServer(config={"clientPortListenBacklog": "7"}, subprocess=True) as zk:
        assert _listen_backlog(zk.port) == 7
        assert "clientPortListenBacklog=7\n" in zk.four_letter("conf")


def test_unset_listen_backlog_is_javas_default():
    with ZkpyServer(subprocess=True) as zk:
        assert _listen_backlog(zk.port) == 50
        assert "clientPortListenBacklog=-1\n" in zk.four_letter("conf")


def test_adjusted_values_are_logged():
    with ZkpyServer(config={"snapCount": "1", "autopurge.snapRetainCount": "1"},
                    subprocess=True) as zk:
        log = zk.log_tail()
    assert "zoo.cfg: snapCount=1 is below the minimum; using 2" in log
    assert "zoo.cfg: autopurge.snapRetainCount=1 is below the minimum; using 3" in log
