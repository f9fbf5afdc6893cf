"""The zkpy-server command: `zkpy-server conf/zoo.cfg`."""

import argparse
import asyncio
import logging
import signal
import sys

from .audit import AuditLog
from .config import ConfigError, load_config
from ..datatree.tree import DataTree
from ..storage.database import DataDirError
from .listener import serve_forever

log = logging.getLogger("zkpy.server")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="zkpy-server",
                                     description="A ZooKeeper-compatible server.")
    parser.add_argument("config", help="path to zoo.cfg")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"zkpy-server: {e}", file=sys.stderr)
        return 2
    for key in config.unknown_keys:
        log.info("%s is not a known zoo.cfg key; kept as a system property", key)
    for warning in config.warnings:
        log.warning("zoo.cfg: %s", warning)
    if config.inert_keys:
        # Nothing in zoo.cfg is ignored silently (docs/compatibility.md says why).
        log.info("zoo.cfg keys of ZooKeeper's Java internals, no effect in zkpy: %s",
                 ", ".join(config.inert_keys))
    if config.client_port is None and config.secure_client_port is None:
        print("zkpy-server: zoo.cfg: clientPort is not set", file=sys.stderr)
        return 2
    # zookeeper.digest.enabled holds for the whole process, and for every
    # tree it loads (snapshots included).
    DataTree.digest_default = config.digest_enabled
    audit = AuditLog() if config.audit_enable else None
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # uvloop is a dependency; this keeps odd platforms alive
        runner = asyncio.run
    try:
        runner(_serve(config, audit))
    except ConfigError as e:
        # Files the keys name (key stores, the JAAS file, keytabs) are
        # read as the server starts.
        if audit is not None:
            audit.server_start_failed()
        print(f"zkpy-server: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if audit is not None:
            audit.server_start_failed()
        if (e.strerror or "").startswith("AdminServer"):   # endpoints.py names it
            print(f"zkpy-server: cannot start the {e.strerror}", file=sys.stderr)
        else:
            print(f"zkpy-server: cannot listen on port {config.client_port}: {e}",
                  file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"zkpy-server: {e}", file=sys.stderr)
        return 2
    except DataDirError as e:
        if audit is not None:
            audit.server_start_failed()
        print(f"zkpy-server: refusing to start: {e}", file=sys.stderr)
        return 3
    return 0


async def _serve(config, audit=None):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal():
        if audit is not None and not stop.is_set():
            audit.server_stop()   # "invoked": logged as the stop begins, as ZooKeeper does
        stop.set()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if config.is_standalone:
        await serve_forever(config, stop,
                            on_ready=(lambda _: audit.server_start()) if audit else None)
    else:
        from .quorum import run_peer
        if audit is not None:
            # ZooKeeper logs it once its peer has started; run_peer has no
            # hook for that yet.
            audit.server_start()
        await run_peer(config, stop)
    log.info("zkpy stopped")


if __name__ == "__main__":
    sys.exit(main())
