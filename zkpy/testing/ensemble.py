"""A zkpy ensemble as real processes on loopback, for tests and benchmarks.

    with Cluster(3) as c:                  # peers 1..3, each `python -m zkpy.server.main cfg`
        c.wait_ready()                     # a leader serves and every live peer is synced
        zk = KazooClient(hosts=c.hosts)    # all client addresses
        c.kill(c.leader())                 # kill -9
        c.restart(i); c.stop(i); c.pause(i); c.resume(i)
        c.cut(i); c.heal(i)                # partition one peer (needs proxy=True)

Every peer gets free ports, its own directory under a temp dir (zoo.cfg,
data/, data/myid, server.log) and a short tickTime.  Roles are read from the
`srvr` four-letter word (`Mode:`), leader figures from `mntr`.

Partitions: with proxy=True every peer link goes through a small TCP proxy in
this process.  A pair's link is one connection, dialled by the larger id to
the smaller id's quorum port, so the proxy for the pair (a > b) listens on a
port that only peer a's zoo.cfg names as server.b.  cut(i) freezes every proxy
of a pair that includes i (nothing is forwarded, in either direction, on old
or new connections: what a silent network looks like); heal(i) either resets
those connections (reset=True, as after a long outage) or delivers what was
held (reset=False: a long delay; TCP loses nothing)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import four_letter_word, free_port

# The directory that holds this zkpy package: the peers import the same code.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def four_letter(port: int, word: str, timeout: float = 2.0) -> str:
    """The reply to a four-letter word ("" if the peer does not answer)."""
    try:
        return four_letter_word("127.0.0.1", port, word, timeout)
    except (OSError, UnicodeDecodeError):
        return ""


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll predicate() until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # a peer going away mid-poll is no reason to stop
            last_exc = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# --- a fault-injecting TCP proxy --------------------------------------------------------------

class _Pipe:
    """One proxied connection: two sockets and two pumping threads."""

    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.upstream = None
        self.dead = False
        self.lock = threading.Lock()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        # Nothing reaches the target while the proxy is frozen, not even the
        # connection itself.
        if not self.proxy._wait_open(self):
            return
        try:
            self.upstream = socket.create_connection(("127.0.0.1", self.proxy.target_port),
                                                     timeout=5)
            self.upstream.settimeout(None)
        except OSError:
            self.kill()
            return
        threading.Thread(target=self._pump, args=(self.upstream, self.client),
                         daemon=True).start()
        self._pump(self.client, self.upstream)

    def _pump(self, src, dst):
        while not self.dead:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if not self.proxy._wait_open(self):
                return
            try:
                dst.sendall(data)
            except OSError:
                break
        self.kill()

    def kill(self):
        with self.lock:
            if self.dead:
                return
            self.dead = True
        for s in (self.client, self.upstream):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.proxy._forget(self)


class LinkProxy:
    """Listens on listen_port, forwards each connection to target_port."""

    def __init__(self, listen_port: int, target_port: int):
        self.listen_port = listen_port
        self.target_port = target_port
        self.open = threading.Event()
        self.open.set()
        self.pipes: set[_Pipe] = set()
        self.lock = threading.Lock()
        self.closed = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            pipe = _Pipe(self, client)
            with self.lock:
                self.pipes.add(pipe)
            pipe.start()

    def _wait_open(self, pipe) -> bool:
        while not self.open.wait(0.05):
            if pipe.dead or self.closed:
                return False
        return not pipe.dead

    def _forget(self, pipe):
        with self.lock:
            self.pipes.discard(pipe)

    def freeze(self):
        self.open.clear()

    def thaw(self, reset: bool):
        if reset:
            with self.lock:
                pipes = list(self.pipes)
            for p in pipes:
                p.kill()
        self.open.set()

    def close(self):
        self.closed = True
        self.open.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            pipes = list(self.pipes)
        for p in pipes:
            p.kill()


# --- the ensemble -----------------------------------------------------------------------------

class Peer:
    def __init__(self, cluster, pid):
        self.cluster = cluster
        self.id = pid
        self.dir = os.path.join(cluster.base_dir, f"peer{pid}")
        self.data_dir = os.path.join(self.dir, "data")
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "server.log")
        self.client_port = free_port()
        self.quorum_port = free_port()
        self.election_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        return four_letter(self.client_port, word, timeout)

    def srvr(self) -> dict:
        out = {}
        for line in self.four_letter("srvr").splitlines():
            if ": " in line:
                k, v = line.split(": ", 1)
                out[k.strip()] = v.strip()
        return out

    def mode(self) -> str | None:
        """leader / follower / observer, or None (not serving, not running)."""
        if not self.running or self.paused:
            return None
        return self.srvr().get("Mode")

    def mntr(self) -> dict:
        out = {}
        for line in self.four_letter("mntr").splitlines():
            if "\t" in line:
                k, v = line.split("\t", 1)
                out[k] = v
        return out

    def zxid(self) -> int | None:
        z = self.srvr().get("Zxid")
        return int(z, 16) if z else None

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    def __init__(self, n: int = 3, *, tick_time: int = 300, init_limit: int = 10,
                 sync_limit: int = 5, force_sync: bool = False, snap_count: int | None = None,
                 proxy: bool = False, extra: dict | None = None, keep_dir: bool = False,
                 log_level: str = "INFO", observers: int = 0, members=None,
                 per_peer: dict | None = None):
        """extra: zoo.cfg keys for every peer; per_peer: {peer id: keys} for
        one.  members: {peer: the ids its zoo.cfg lists} for peers that start
        with a partial view (a server that is to join an ensemble by a
        reconfiguration lists the members and itself); default: all."""
        self.n = n
        self.members = dict(members or {})
        self.per_peer = {i: dict(v) for i, v in (per_peer or {}).items()}
        # The last `observers` peers observe (server.N=...:observer).
        self.observer_ids = set(range(n - observers + 1, n + 1)) if observers else set()
        self.log_level = log_level
        self.tick_time = tick_time
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.force_sync = force_sync
        self.snap_count = snap_count
        self.extra = dict(extra or {})
        # ZKPY_KEEP_ENSEMBLE=1 keeps the peers' directories (configs, data, logs).
        self.keep_dir = keep_dir or bool(os.environ.get("ZKPY_KEEP_ENSEMBLE"))
        self.base_dir = tempfile.mkdtemp(prefix="zkpy-ensemble-")
        self.peers = {i: Peer(self, i) for i in range(1, n + 1)}
        self.proxies: dict[tuple[int, int], LinkProxy] = {}
        if proxy:
            for a in self.peers:
                for b in self.peers:
                    if a > b:
                        self.proxies[(a, b)] = LinkProxy(free_port(), self.peers[b].quorum_port)
        self.cut_off: set[int] = set()
        for p in self.peers.values():
            os.makedirs(p.data_dir, exist_ok=True)
            with open(os.path.join(p.data_dir, "myid"), "w") as f:
                f.write(f"{p.id}\n")
            with open(p.cfg_path, "w") as f:
                f.write(self._cfg_text(p))

    # --- configuration -------------------------------------------------------------------

    def _cfg_text(self, me: Peer) -> str:
        lines = [
            f"tickTime={self.tick_time}",
            f"initLimit={self.init_limit}",
            f"syncLimit={self.sync_limit}",
            f"dataDir={me.data_dir}",
            f"forceSync={'yes' if self.force_sync else 'no'}",
            "4lw.commands.whitelist=*",
        ]
        if self.snap_count is not None:
            lines.append(f"snapCount={self.snap_count}")
        # No AdminServer unless asked for: the peers share this host.
        keys = {"admin.enableServer": "false", **self.extra, **self.per_peer.get(me.id, {})}
        lines += [f"{k}={v}" for k, v in keys.items()]
        listed = self.members.get(me.id, self.peers)
        for p in self.peers.values():
            if p.id not in listed:
                continue
            port = p.quorum_port
            if (me.id, p.id) in self.proxies:      # our link to p goes through the proxy
                port = self.proxies[(me.id, p.id)].listen_port
            role = ":observer" if p.id in self.observer_ids else ""
            lines.append(f"server.{p.id}=127.0.0.1:{port}:{p.election_port}{role};"
                         f"127.0.0.1:{p.client_port}")
        return "\n".join(lines) + "\n"

    @property
    def hosts(self) -> str:
        """Every peer's client address, for a client that fails over."""
        return ",".join(p.host for p in self.peers.values())

    def host(self, i: int) -> str:
        return self.peers[i].host

    # --- processes ---------------------------------------------------------------------------

    def start(self) -> "Cluster":
        for i in self.peers:
            self.restart(i)
        return self

    def restart(self, i: int):
        """Start peer i (again) from what its data dir holds."""
        p = self.peers[i]
        if p.running:
            raise RuntimeError(f"peer {i} is running")
        log = open(p.log_path, "ab")
        log.write(f"===== start peer {i} at {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        p.proc = subprocess.Popen(
            [sys.executable, "-m", "zkpy.server.main", p.cfg_path, "--log-level", self.log_level],
            stdout=log, stderr=subprocess.STDOUT, cwd=p.dir,
            env={**os.environ, "PYTHONUNBUFFERED": "1",
                 "PYTHONPATH": os.pathsep.join(
                     [_PACKAGE_PARENT] + [x for x in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                          if x])})
        log.close()
        p.paused = False
        # Listening for clients means the peer is up (not that it serves).
        wait_until(lambda: not p.running or p.four_letter("ruok", 1.0) == "imok", 30,
                   what=f"peer {i} to start")
        if not p.running:
            raise RuntimeError(f"peer {i} exited with {p.proc.returncode}:\n{p.log_text()[-3000:]}")

    def kill(self, i: int, sig: int = signal.SIGKILL):
        p = self.peers[i]
        if p.proc is None:
            return
        if sig == signal.SIGKILL and p.paused:
            p.paused = False
        p.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            try:
                p.proc.wait(20)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(10)

    def stop(self, i: int):
        """A clean shutdown (SIGTERM)."""
        p = self.peers[i]
        if p.paused:
            self.resume(i)
        if p.running:
            self.kill(i, signal.SIGTERM)

    def pause(self, i: int):
        self.peers[i].proc.send_signal(signal.SIGSTOP)
        self.peers[i].paused = True

    def resume(self, i: int):
        self.peers[i].proc.send_signal(signal.SIGCONT)
        self.peers[i].paused = False

    def close(self):
        for p in self.peers.values():
            if p.proc is not None and p.proc.poll() is None:
                try:
                    p.proc.send_signal(signal.SIGCONT)
                    p.proc.kill()
                    p.proc.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        for proxy in self.proxies.values():
            proxy.close()
        if not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- partitions -------------------------------------------------------------------------

    def _proxies_of(self, i: int):
        if not self.proxies:
            raise RuntimeError("this cluster was built without proxy=True")
        return [pr for (a, b), pr in self.proxies.items() if i in (a, b)]

    def cut(self, i: int):
        """Peer i can no longer talk to any other peer (its clients still reach it)."""
        self.cut_off.add(i)
        for pr in self._proxies_of(i):
            pr.freeze()

    def heal(self, i: int, reset: bool = True):
        self.cut_off.discard(i)
        for (a, b), pr in self.proxies.items():
            if i in (a, b) and not ({a, b} & self.cut_off):
                pr.thaw(reset)

    # --- roles --------------------------------------------------------------------------------

    def live(self) -> list[int]:
        """Peers running and not paused."""
        return [i for i, p in self.peers.items() if p.running and not p.paused]

    def modes(self) -> dict:
        return {i: self.peers[i].mode() for i in self.live()}

    def leader(self) -> int | None:
        """The one peer that says it leads (None if none or several do)."""
        leaders = [i for i, m in self.modes().items() if m == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def followers(self) -> list[int]:
        return [i for i, m in self.modes().items() if m == "follower"]

    def wait_ready(self, peers=None, timeout: float = 45.0) -> int:
        """Wait until one leader serves and every peer in `peers` (default: the
        live peers not cut off) serves as its leader or follower, synced.
        Returns the leader's id."""
        want = set(peers) if peers is not None else set(self.live()) - self.cut_off

        def ready():
            modes = {i: self.peers[i].mode() for i in want}
            leaders = [i for i, m in modes.items() if m == "leader"]
            if len(leaders) != 1 or any(m not in ("leader", "follower", "observer")
                                        for m in modes.values()):
                return None
            leader = leaders[0]
            m = self.peers[leader].mntr()
            # float(): with the Prometheus provider mntr prints "2.0", as ZooKeeper does.
            synced = sum(int(float(m.get(key, "0"))) for key in (
                "zk_synced_followers", "zk_synced_observers", "zk_synced_non_voting_followers"))
            if "zk_synced_followers" not in m:
                return None
            return leader if synced >= len(want) - 1 else None

        return wait_until(ready, timeout, 0.1, what=f"a leader and peers {sorted(want)} synced "
                          f"(modes now {self.modes()})")

    def wait_caught_up(self, peers=None, timeout: float = 45.0):
        """Wait until the given peers (default: the live ones) show the same zxid."""
        want = list(peers) if peers is not None else self.live()

        def same():
            zxids = [self.peers[i].zxid() for i in want]
            return None not in zxids and len(set(zxids)) == 1

        wait_until(same, timeout, 0.1, what=f"peers {want} to reach the same zxid")

    def dump_logs(self, tail: int = 4000) -> str:
        return "\n".join(f"----- peer {i} -----\n{p.log_text()[-tail:]}"
                         for i, p in self.peers.items())


def make_whole(cluster: "Cluster", failed: bool) -> None:
    """After a test: print the logs if it failed, then heal, resume and
    restart whatever it cut off, stopped or killed, and wait for a quorum."""
    if failed:
        print(cluster.dump_logs())
    for i in list(cluster.cut_off):
        cluster.heal(i)
    for i, p in cluster.peers.items():
        if p.paused:
            cluster.resume(i)
        if not p.running:
            cluster.restart(i)
    cluster.wait_ready()


@contextlib.contextmanager
def running(cluster: "Cluster"):
    """Start cluster and wait until it is ready; print every peer's log if
    anything fails inside; close it in the end (a module fixture's body)."""
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()
