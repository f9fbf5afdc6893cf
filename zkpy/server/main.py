"""The zkpy-server command: `zkpy-server conf/zoo.cfg`."""

import argparse
import asyncio
import logging
import signal
import sys

from .config import ConfigError, load_config
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
    if config.client_port is None:
        print("zkpy-server: zoo.cfg: clientPort is not set", file=sys.stderr)
        return 2
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # uvloop is a dependency; this keeps odd platforms alive
        runner = asyncio.run
    try:
        runner(_serve(config))
    except OSError as e:
        print(f"zkpy-server: cannot listen on port {config.client_port}: {e}", file=sys.stderr)
        return 1
    except DataDirError as e:
        print(f"zkpy-server: refusing to start: {e}", file=sys.stderr)
        return 3
    return 0


async def _serve(config):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if config.is_standalone:
        await serve_forever(config, stop)
    else:
        from .quorum import run_peer
        await run_peer(config, stop)
    log.info("zkpy stopped")


if __name__ == "__main__":
    sys.exit(main())
