"""Run a real Apache ZooKeeper 3.8 standalone server for tests and benchmarks.

Every client-visible behaviour that zkpy copies is first checked against the
real thing; this module starts it.  It relies only on the standard library
(pytest is imported lazily by :func:`require_apache`), so benchmark scripts can
use it too::

    from zkpy.testing.apache import ApacheZooKeeper

    with ApacheZooKeeper() as zk:
        print(zk.hosts)          # "127.0.0.1:PORT"

The jars, ``zkCli.sh`` and ``cli_mt`` come from Debian's ``zookeeper`` and
``zookeeper-bin`` packages (see DESIGN.md, "Apache ZooKeeper on this machine").
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from . import free_port
from .ensemble import Cluster, wait_until

JAVA_DIR = Path("/usr/share/java")
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")
CONF_DIR = Path("/etc/zookeeper/conf")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
DEBIAN_PACKAGES = "zookeeper zookeeper-bin netcat-openbsd"

# The server's runtime dependencies.  zookeeper.jar's manifest also names
# jetty/jackson (admin server, disabled here) which we do not need.
_SERVER_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "netty-all.jar",
    # NettyServerCnxnFactory (TLS) needs these, which zookeeper.jar's
    # manifest leaves out.
    "netty-codec.jar",
    "netty-resolver.jar",
    "slf4j-api.jar",
    "metrics-core.jar",
    "commons-io.jar",
    "snappy-java.jar",
)
# The AdminServer's (ApacheZooKeeper(admin=True)): Jetty 9, Jackson and the
# servlet API from Debian's libjetty9-java, libjackson2-databind-java and
# libservlet-api-java.
_ADMIN_JARS = (
    "jetty9-server.jar", "jetty9-servlet.jar", "jetty9-util.jar", "jetty9-http.jar",
    "jetty9-io.jar", "jetty9-security.jar", "jetty9-util-ajax.jar",
    "jackson-databind.jar", "jackson-core.jar", "jackson-annotations.jar", "servlet-api.jar",
)
ADMIN_DEBIAN_PACKAGES = "libjetty9-java libjackson2-databind-java libservlet-api-java"


def admin_available() -> tuple[bool, str]:
    """Whether the AdminServer's jars are here: (True, "") or (False, why)."""
    missing = [str(JAVA_DIR / j) for j in _ADMIN_JARS if not (JAVA_DIR / j).exists()]
    if missing:
        return False, (f"Apache ZooKeeper's AdminServer needs {', '.join(missing)} "
                       f"(apt-get install -y {ADMIN_DEBIAN_PACKAGES})")
    return True, ""
# slf4j bindings: "simple" logs to stderr (which we send to a file, so a failed
# start can show why), "nop" discards everything.
_LOGGER_JARS = {"simple": "slf4j-simple.jar", "nop": "slf4j-nop.jar"}

STARTUP_TIMEOUT = 30.0


def java_binary() -> str | None:
    """The java executable: $JAVA_HOME/bin/java if set, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def java_classpath(logger: str = "simple", admin: bool = False) -> str:
    """Classpath for running the ZooKeeper server (or any client class).

    ``logger`` picks the slf4j binding: "simple" (log to stderr) or "nop".
    Raises FileNotFoundError naming the first missing jar.
    """
    if logger not in _LOGGER_JARS:
        raise ValueError(f"logger must be one of {sorted(_LOGGER_JARS)}, not {logger!r}")
    entries = []
    if CONF_DIR.is_dir():
        entries.append(str(CONF_DIR))
    for name in (*_SERVER_JARS, _LOGGER_JARS[logger], *(_ADMIN_JARS if admin else ())):
        jar = JAVA_DIR / name
        if not jar.exists():
            raise FileNotFoundError(f"{jar} is missing")
        entries.append(str(jar))
    return os.pathsep.join(entries)


def apache_available() -> tuple[bool, str]:
    """Whether Apache ZooKeeper (server jars, zkCli.sh, cli_mt) and java are here.

    Returns (True, "") or (False, a reason naming what is missing).
    """
    missing = []
    if java_binary() is None:
        missing.append("java (not on PATH)")
    for name in (*_SERVER_JARS, *_LOGGER_JARS.values()):
        if not (JAVA_DIR / name).exists():
            missing.append(str(JAVA_DIR / name))
    for tool in (ZKCLI, CLI_MT):
        if not (tool.is_file() and os.access(tool, os.X_OK)):
            missing.append(str(tool))
    if missing:
        return False, (
            "Apache ZooKeeper is not installed: missing "
            + ", ".join(missing)
            + f" (apt-get install -y {DEBIAN_PACKAGES})"
        )
    return True, ""


def require_apache() -> None:
    """For tests: skip if Apache ZooKeeper is missing, but fail when CI=true."""
    import pytest

    ok, reason = apache_available()
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0,
                     extra: bytes = b"") -> str:
    """Send a four-letter word (ruok, srvr, mntr, ...), then extra (stmk's
    mask), and return the reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii") + extra)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">i", _recv_exact(sock, 4))
    if length < 0 or length > 0xFFFFF:
        raise ConnectionError(f"bad frame length {length}")
    return _recv_exact(sock, length)


def client_handshake(host: str, port: int, timeout: float = 5.0) -> int:
    """Open a real session (ConnectRequest), close it again, return its id.

    Raises OSError/ConnectionError when the server does not give a session.
    """
    # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
    # passwd (16 zero bytes), readOnly -- as the Java client sends it.
    body = struct.pack(">iqiqi16s?", 0, 0, 30000, 0, 16, b"\0" * 16, False)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        reply = _recv_frame(s)
        _proto, negotiated, session_id = struct.unpack_from(">iiq", reply)
        if session_id == 0 or negotiated <= 0:
            raise ConnectionError(
                f"server refused the session (timeout={negotiated}, id={session_id:#x})"
            )
        # closeSession: RequestHeader(xid=1, type=-11), no body.
        close = struct.pack(">ii", 1, -11)
        s.sendall(struct.pack(">i", len(close)) + close)
        try:
            _recv_frame(s)
        except (OSError, ConnectionError):
            pass
    return session_id


class ApacheZooKeeperError(RuntimeError):
    """The Apache ZooKeeper server did not start (message has the log tail)."""


class ApacheZooKeeper:
    """A standalone Apache ZooKeeper 3.8 in a fresh temporary directory.

    Use as a context manager (or call start()/stop())::

        with ApacheZooKeeper(extra_cfg={"maxClientCnxns": 0}) as zk:
            zk.hosts   # "127.0.0.1:PORT"

    ``force_sync`` writes forceSync=yes (fsync every txn log write, as in
    production); the default forceSync=no is faster for tests.  ``extra_cfg``
    adds or overrides zoo.cfg keys.  ``jvm_args`` go before -cp.
    """

    def __init__(
        self,
        extra_cfg: dict | None = None,
        force_sync: bool = False,
        *,
        jvm_args: list[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        keep_dir: bool = False,
        admin: bool = False,
    ) -> None:
        """admin: run its AdminServer (on 127.0.0.1 and a free port, admin_port)."""
        self.extra_cfg = dict(extra_cfg or {})
        self.force_sync = force_sync
        self.jvm_args = list(jvm_args or [])
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir or os.environ.get("ZKPY_KEEP_APACHE_DIR") == "1"
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.base_dir: Path | None = None
        self.data_dir: Path | None = None
        self.cfg_path: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self.admin = admin
        self.admin_port: int | None = None

    # -- public ------------------------------------------------------------

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "ApacheZooKeeper":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("already started")
        ok, reason = apache_available()
        if not ok:
            raise ApacheZooKeeperError(reason)
        self.base_dir = Path(tempfile.mkdtemp(prefix="zk-apache-"))
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir()
        self.cfg_path = self.base_dir / "zoo.cfg"
        self.log_path = self.base_dir / "zookeeper.log"
        self.port = free_port(self.host)
        if self.admin:
            self.admin_port = free_port(self.host)
        self.cfg_path.write_text(self._render_cfg())

        cmd = [
            java_binary(),
            *self.jvm_args,
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            java_classpath("simple", admin=self.admin),
            MAIN_CLASS,
            str(self.cfg_path),
        ]
        self._log_file = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                start_new_session=True,  # a ^C in the test run is not sent to it
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.base_dir is not None and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def four_letter_word(self, word: str, timeout: float = 5.0) -> str:
        return four_letter_word(self.host, self.port, word, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals ---------------------------------------------------------

    def _render_cfg(self) -> str:
        cfg: dict[str, object] = {
            "tickTime": 2000,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": self.host,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "forceSync": "yes" if self.force_sync else "no",
        }
        if self.admin:
            del cfg["admin.enableServer"]
            cfg["admin.serverAddress"] = self.host
            cfg["admin.serverPort"] = self.admin_port
        cfg.update(self.extra_cfg)
        return "".join(f"{k}={v}\n" for k, v in cfg.items())

    def _fail(self, why: str) -> None:
        raise ApacheZooKeeperError(
            f"Apache ZooKeeper on {self.hosts} {why}.\n"
            f"config {self.cfg_path}:\n{self.cfg_path.read_text()}"
            f"log {self.log_path} (tail):\n{self.log_tail()}"
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while True:
            if self.proc.poll() is not None:
                self._fail(f"exited with status {self.proc.returncode} during startup")
            try:
                # srvr: the one word every whitelist allows.
                answer = four_letter_word(self.host, self.port, "srvr", timeout=2.0)
                if not answer.startswith("Zookeeper version"):
                    raise ConnectionError(f"srvr answered {answer!r}")
                client_handshake(self.host, self.port, timeout=5.0)
                return
            except (OSError, ConnectionError, struct.error) as e:
                last_error = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                self._fail(
                    f"was not ready after {self.startup_timeout:.0f} s (last error: {last_error})"
                )
            time.sleep(0.1)


class ApacheCluster(Cluster):
    """An Apache ZooKeeper ensemble with zkpy.testing.ensemble.Cluster's
    interface (ports, directories, myid files, roles from srvr/mntr, kill,
    restart, stop), QuorumPeerMain as the peer process: for comparing an
    ensemble's behaviour with zkpy's, and for benchmarks."""

    def __init__(self, n=3, *, jvm_args=(), per_peer_jvm_args=None, **kw):
        """per_peer_jvm_args: {peer id: [-D...]} for one peer (its JAAS file, say)."""
        self.jvm_args = list(jvm_args)
        self.per_peer_jvm_args = {i: list(v) for i, v in (per_peer_jvm_args or {}).items()}
        super().__init__(n, **kw)

    def _cfg_text(self, me) -> str:
        lines = [
            f"tickTime={self.tick_time}",
            f"initLimit={self.init_limit}",
            f"syncLimit={self.sync_limit}",
            f"dataDir={me.data_dir}",
            f"clientPort={me.client_port}",
            "clientPortAddress=127.0.0.1",
            f"forceSync={'yes' if self.force_sync else 'no'}",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
        ]
        keys = {**self.extra, **self.per_peer.get(me.id, {})}
        lines += [f"{k}={v}" for k, v in keys.items()]
        for p in self.peers.values():
            role = ":observer" if p.id in self.observer_ids else ""
            lines.append(f"server.{p.id}=127.0.0.1:{p.quorum_port}:{p.election_port}"
                         f"{role};127.0.0.1:{p.client_port}")
        return "\n".join(lines) + "\n"

    def restart(self, i: int):
        p = self.peers[i]
        if p.running:
            raise RuntimeError(f"peer {i} is running")
        with open(p.log_path, "ab") as log:
            log.write(f"===== start peer {i} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            p.proc = subprocess.Popen(
                [java_binary(), *self.jvm_args, *self.per_peer_jvm_args.get(i, ()),
                 "-Dzookeeper.jmx.log4j.disable=true",
                 # Timestamps in the same format as zkpy's log lines.
                 "-Dorg.slf4j.simpleLogger.showDateTime=true",
                 "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
                 "-cp", java_classpath("simple"), MAIN_CLASS, p.cfg_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=p.dir,
                start_new_session=True)
        p.paused = False
        wait_until(lambda: not p.running or p.four_letter("ruok", 1.0) == "imok", 60,
                   what=f"ZooKeeper peer {i} to start")
        if not p.running:
            raise RuntimeError(f"ZooKeeper peer {i} exited with {p.proc.returncode}:\n"
                               f"{p.log_text()[-3000:]}")
