"""jvm.pause.monitor on a real server: a stall of its event loop is logged
with ZooKeeper's JvmPauseMonitor wording and counted in jvm_pause_time_ms.
The stalls are made on the server's own loop (a callback that sleeps), so
they last at least as long as the sleep: no test here depends on speed."""

import logging
import time

from zkpy.testing import ZkpyServer

MONITOR = {"jvm.pause.monitor": "true", "jvm.pause.sleep.time.ms": "20",
           "jvm.pause.info-threshold.ms": "100", "jvm.pause.warn-threshold.ms": "100000"}


def mntr(srv) -> dict:
    return dict(line.split("\t", 1) for line in srv.four_letter("mntr").splitlines()
                if "\t" in line)


def stall(srv, seconds):
    srv.call(lambda server: time.sleep(seconds))


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def pauses(caplog, level):
    return [r for r in caplog.records if r.name == "zkpy.server.pause_monitor"
            and r.levelno == level and "Detected pause" in r.getMessage()]


def test_a_stall_past_the_info_threshold_is_logged_and_counted(caplog):
    caplog.set_level(logging.INFO, logger="zkpy.server.pause_monitor")
    with ZkpyServer(config=MONITOR) as srv:
        stall(srv, 0.3)
        wait_for(lambda: pauses(caplog, logging.INFO))
        text = pauses(caplog, logging.INFO)[0].getMessage()
        assert "pause of approximately" in text and "warn level: 0" in text
        m = mntr(srv)
        assert int(m["zk_max_jvm_pause_time_ms"]) >= 250   # 300 ms less the 20 slept
        assert int(m["zk_cnt_jvm_pause_time_ms"]) >= 1


def test_a_stall_past_the_warn_threshold_is_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="zkpy.server.pause_monitor")
    config = dict(MONITOR, **{"jvm.pause.warn-threshold.ms": "200"})
    with ZkpyServer(config=config) as srv:
        stall(srv, 0.4)
        wait_for(lambda: pauses(caplog, logging.WARNING))
        assert "warn level: 1" in pauses(caplog, logging.WARNING)[0].getMessage()


def test_off_by_default(caplog):
    caplog.set_level(logging.INFO, logger="zkpy.server.pause_monitor")
    with ZkpyServer() as srv:
        stall(srv, 0.3)
        srv.call(lambda server: None)   # the loop ran on after the stall
        assert int(mntr(srv)["zk_cnt_jvm_pause_time_ms"]) == 0
        assert not [r for r in caplog.records if r.name == "zkpy.server.pause_monitor"]
