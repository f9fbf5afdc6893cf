"""ZooKeeper's JvmPauseMonitor, for the event loop (jvm.pause.monitor and the
jvm.pause.* thresholds): a loop that cannot run its callbacks on time cannot
read requests, answer pings or expire sessions on time either, and clients
lose their sessions for it.  One timer sleeps jvm.pause.sleep.time.ms again
and again; whatever it overslept is a pause of the loop (a long callback, a
garbage collection, the host machine stalling the process), logged at INFO
past jvm.pause.info-threshold.ms and at WARN past
jvm.pause.warn-threshold.ms, with ZooKeeper's wording, and added to the
jvm_pause_time_ms summary (mntr)."""

import asyncio
import gc
import logging
import time

log = logging.getLogger("zkpy.server.pause_monitor")


class PauseMonitor:
    def __init__(self, config, metrics):
        self.sleep_ms = config.jvm_pause_sleep_time_ms
        self.info_ms = config.jvm_pause_info_threshold_ms
        self.warn_ms = config.jvm_pause_warn_threshold_ms
        self.summary = metrics.summary("jvm_pause_time_ms")
        self.info_count = 0      # pauses past the info threshold (not the warn one)
        self.warn_count = 0      # pauses past the warn threshold
        self.total_ms = 0        # every pause, added up

    async def run(self):
        log.info("Starting pause monitor with infoThresholdMs:%d warnThresholdMs:%d "
                 "and sleepTimeMs:%d", self.info_ms, self.warn_ms, self.sleep_ms)
        collections = _collections()
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.sleep_ms / 1000)
            extra = int((time.monotonic() - start) * 1000) - self.sleep_ms
            collections, before = _collections(), collections
            self.observe(extra, collections, before)

    def observe(self, extra, collections=None, before=None):
        """One wake-up, extra ms late."""
        if extra >= 0:
            self.summary.add(extra)
        if extra > self.warn_ms:
            self.warn_count += 1
            log.warning(self._message(extra, collections, before))
        elif extra > self.info_ms:
            self.info_count += 1
            log.info(self._message(extra, collections, before))
        self.total_ms += extra

    def _message(self, extra, collections, before) -> str:
        text = (f"Detected pause in the event loop or host machine (eg GC): pause of "
                f"approximately {extra} ms, total pause: info level: {self.info_count}, "
                f"warn level: {self.warn_count} \n")
        diffs = [f"GC generation {gen} had collection(s): count={now - then}"
                 for gen, (now, then) in enumerate(zip(collections or (), before or ()))
                 if now != then]
        return text + ("\n".join(diffs) if diffs else "No GCs detected")


def _collections() -> tuple:
    return tuple(s["collections"] for s in gc.get_stats())
