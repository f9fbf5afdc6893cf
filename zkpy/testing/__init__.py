"""Real zkpy servers for tests: no JVM, no mocks.

    from zkpy.testing import ZkpyServer

    with ZkpyServer() as zk:                 # in this process, on a free port
        client = KazooClient(hosts=zk.hosts)

    with ZkpyServer(subprocess=True) as zk:  # a separate `zkpy-server` process
        ...

In-process servers run on their own event loop in a background thread, so they
work from synchronous tests and from asyncio tests alike.  Options are zoo.cfg
keys: ZkpyServer(config={"extendedTypesEnabled": "true"}).

pytest fixtures (add `pytest_plugins = ["zkpy.testing"]` to a conftest.py):
    zkpy_server   a fresh in-process server per test (a ZkpyServer)
    zkpy_hosts    its connection string, "127.0.0.1:<port>"
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess as _subprocess
import sys
import tempfile
import threading
import time

__all__ = ["ZkpyServer", "free_port", "four_letter_word", "zkpy_server", "zkpy_hosts"]


_given_ports: set = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, and not one this process handed out
    before (the kernel may offer a port again as soon as it is closed: two
    servers of one test would then get the same one)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def four_letter_word(host, port, word: str, timeout=2.0) -> str:
    """Send a four-letter word and read the reply to EOF."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode()


class ZkpyServer:
    """A zkpy server on 127.0.0.1 and a free port, for the length of a `with`."""

    def __init__(self, config: dict | None = None, subprocess: bool = False,
                 port: int | None = None, data_dir: str | None = None):
        # forceSync=no: tests want speed, not survival of power loss.  No
        # AdminServer unless asked for: many servers share this host (port 8080).
        self.config = {"tickTime": "2000", "4lw.commands.whitelist": "*", "forceSync": "no",
                       "admin.enableServer": "false"}
        self.config.update({k: str(v) for k, v in (config or {}).items()})
        self.use_subprocess = subprocess
        self.host = "127.0.0.1"
        self.port = port
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="zkpy-")
        self.proc = None
        self._thread = None
        self._loop = None
        self._stop = None
        self.runner = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_port(self):
        """The AdminServer's port (in-process servers with admin.enableServer=true)."""
        admin = self.runner.endpoints.admin if self.runner and self.runner.endpoints else None
        return admin.port if admin else None

    @property
    def server(self):
        """The ZooKeeperServer object (in-process servers only)."""
        return self.runner.server if self.runner else None

    def _cfg_text(self) -> str:
        lines = [f"dataDir={self.data_dir}", f"clientPort={self.port}",
                 f"clientPortAddress={self.host}"]
        lines += [f"{k}={v}" for k, v in self.config.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> "ZkpyServer":
        if self.port is None:
            self.port = free_port()
        cfg_path = os.path.join(self.data_dir, "zoo.cfg")
        with open(cfg_path, "w") as f:
            f.write(self._cfg_text())
        if self.use_subprocess:
            self._log = open(os.path.join(self.data_dir, "server.log"), "wb")
            self.proc = _subprocess.Popen(
                [sys.executable, "-m", "zkpy.server.main", cfg_path],
                stdout=self._log, stderr=_subprocess.STDOUT)
        else:
            self._start_thread(cfg_path)
        self._wait_ready()
        return self

    def _start_thread(self, cfg_path):
        from ..server.config import load_config
        from ..server.listener import ServerRunner

        config = load_config(cfg_path)
        ready = threading.Event()
        errors = []

        async def run():
            self._stop = asyncio.Event()
            try:
                self.runner = await ServerRunner(config).start()
            except Exception as e:  # reported to the starting thread
                errors.append(e)
                ready.set()
                return
            ready.set()
            await self._stop.wait()
            await self.runner.stop()

        def thread_main():
            try:
                import uvloop
                loop = uvloop.new_event_loop()
            except ImportError:
                loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(run())
            finally:
                loop.close()

        self._thread = threading.Thread(target=thread_main, name="zkpy-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"zkpy-server exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                # srvr: the one word every whitelist allows.
                if four_letter_word(self.host, self.port, "srvr").startswith("Zookeeper version"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"zkpy server did not start on {self.hosts}: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.data_dir, "server.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def four_letter(self, word: str) -> str:
        return four_letter_word(self.host, self.port, word)

    def call(self, fn):
        """Run fn(server) on the server's event loop and return its result
        (in-process servers only)."""
        fut = asyncio.run_coroutine_threadsafe(_call(fn, self.runner.server), self._loop)
        return fut.result(10)

    def stop(self, kill: bool = False):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except _subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._log.close()
            self.proc = None
        elif self._thread is not None:
            if self._loop is not None and self._stop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
            self._thread = None
            self.runner = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def _call(fn, server):
    return fn(server)


try:
    import pytest
except ImportError:  # the fixtures need pytest; the context manager does not
    pytest = None

if pytest is not None:
    @pytest.fixture
    def zkpy_server():
        with ZkpyServer() as server:
            yield server

    @pytest.fixture
    def zkpy_hosts(zkpy_server):
        return zkpy_server.hosts
