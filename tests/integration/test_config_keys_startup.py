"""What zkpy-server says at startup about the ZooKeeper keys it is given:
one INFO line naming the keys without effect, a WARN line for each key whose
behaviour it does not have, and for a bad value one line naming the key and
exit code 2."""

import subprocess
import sys

from zkpy.testing import ZkpyServer


def test_keys_without_effect_and_unimplemented_ones_are_logged():
    config = {"nio.numSelectorThreads": "4", "zookeeper.flushDelay": "10",
              "observerMasterPort": "2191"}
    with ZkpyServer(config=config, subprocess=True) as zk:
        log = zk.log_tail()
    assert ("INFO zkpy.server: zoo.cfg keys of ZooKeeper's Java internals, no effect in zkpy: "
            "nio.numSelectorThreads, zookeeper.flushDelay") in log
    assert ("WARNING zkpy.server: zoo.cfg: observerMasterPort=2191 is not implemented: "
            "followers do not serve observers") in log


def test_no_line_when_there_is_nothing_to_say():
    with ZkpyServer(subprocess=True) as zk:
        log = zk.log_tail()
    assert "no effect in zkpy" not in log and "is not implemented" not in log


def test_a_bad_value_stops_the_server_with_one_line(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}/data\nclientPort=0\nlargeRequestMaxBytes=lots\n")
    proc = subprocess.run([sys.executable, "-m", "zkpy.server.main", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"zkpy-server: {cfg}: largeRequestMaxBytes: expected an integer, got 'lots'"]
