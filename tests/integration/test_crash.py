"""Crash tests with real processes: a `zkpy-server` subprocess with
forceSync=yes is killed with SIGKILL while kazoo sessions write, restarted on
the same dataDir and port, and checked:

- every write whose reply a client received is there, with its value or a
  later value, and nothing appears that no client sent;
- sessions survive a restart: a client that reconnects within its timeout
  keeps its session and its ephemerals; a session that does not come back
  is expired after the restart and its ephemerals are deleted;
- zxids never go backwards: a client's last seen zxid is accepted after the
  restart and new writes get higher zxids.

The kill moments are random; the seed is printed (ZKPY_CRASH_SEED=<seed>
replays a run's choices)."""

import os
import random
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from zkpy.testing import ZkpyServer, free_port

CONFIG = {
    "forceSync": "yes",
    "tickTime": "500",          # session timeouts 1 s .. 10 s
    "snapCount": "120",         # snapshots and log rolls while the writers run
    "preAllocSize": "64",       # KB: the log files grow while they are written
}
FAST_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 1, "max_delay": 0.2}


class Node:
    """What one server process is: start it, kill it, start it again."""

    def __init__(self, data_dir, port, config=CONFIG):
        self.data_dir = str(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = port
        self.config = dict(config)
        self.server = None

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.server = ZkpyServer(subprocess=True, data_dir=self.data_dir, port=self.port,
                                 config=self.config).start()
        return self

    def kill(self):
        self.server.stop(kill=True)

    def stop(self):
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path / "data", free_port())
    yield n
    n.stop()


@pytest.fixture
def clients():
    made = []

    def make(hosts, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("connection_retry", FAST_RETRY)
        c = KazooClient(hosts=hosts, **kwargs)
        c.start(timeout=15)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- kill -9 while writing ------------------------------------------------------------


class Writer(threading.Thread):
    """One session writing its own nodes, one request at a time: creates of
    new nodes and setData of nodes it created, every value unique.  Each
    write is recorded before it is sent and marked when its reply arrives."""

    def __init__(self, wid, zk, rng, history, stop, rnd):
        super().__init__(name=f"writer-{wid}", daemon=True)
        self.wid, self.zk, self.rng, self.history, self.stop = wid, zk, rng, history, stop
        self.prefix = f"r{rnd}w{wid}-"
        self.mine = []
        self.n = 0
        self.max_zxid = 0

    def run(self):
        while not self.stop.is_set():
            self.n += 1
            value = f"{self.prefix}{self.n}".encode()
            if self.mine and self.rng.random() < 0.5:
                path = self.rng.choice(self.mine)
                create = False
            else:
                path = f"/crash/{self.prefix}{self.n}"
                create = True
            entry = [value, "sent"]
            self.history.setdefault(path, []).append(entry)
            try:
                if create:
                    _, stat = self.zk.create(path, value, include_data=True)
                    self.mine.append(path)
                else:
                    stat = self.zk.set(path, value)
            except Exception:
                entry[1] = "unknown"   # the server may or may not have logged it
                return
            entry[1] = "acked"
            self.max_zxid = max(self.max_zxid, stat.mzxid)


def check_history(zk, history):
    """Every acknowledged write is present with its value or a later one; every
    node and value present was sent by some writer."""
    present = set(zk.get_children("/crash"))
    for name in present:
        assert "/crash/" + name in history, f"/crash/{name} appeared but was never created"
    checked = 0
    for path, writes in history.items():
        acked = [i for i, (_, status) in enumerate(writes) if status == "acked"]
        # Writes to one path are sequential: after the last acknowledged one
        # only writes whose outcome the client never learnt may have landed.
        allowed = {v for v, s in writes[acked[-1] + 1 if acked else 0:] if s != "acked"}
        if acked:
            allowed.add(writes[acked[-1]][0])
        if path.rsplit("/", 1)[1] not in present:
            assert not acked, f"{path} was acknowledged ({writes[acked[-1]][0]!r}) but is gone"
            continue
        data, _ = zk.get(path)
        assert data in allowed, (f"{path} holds {data!r}; acknowledged writes "
                                 f"{[v for v, s in writes if s == 'acked']}, allowed {allowed}")
        checked += 1
    return checked


def test_kill_9_while_writing_loses_no_acknowledged_write(node, clients):
    seed = int(os.environ.get("ZKPY_CRASH_SEED") or random.randrange(2**32))
    print(f"crash test seed: {seed} (ZKPY_CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    node.start()
    writers_zk = [clients(node.hosts) for _ in range(4)]
    writers_zk[0].create("/crash")
    history: dict = {}
    max_zxid = 0
    total_acked = 0
    for rnd in range(6):
        stop = threading.Event()
        writers = [Writer(i, zk, random.Random(rng.random()), history, stop, rnd)
                   for i, zk in enumerate(writers_zk)]
        for w in writers:
            w.start()
        time.sleep(rng.uniform(0.15, 1.2))
        stop.set()
        node.kill()
        node.start()
        # A request kazoo had queued but not sent goes to the new server once
        # the session reconnects: let every writer finish before checking.
        for w in writers:
            w.join(30)
            assert not w.is_alive(), "a writer hung"
            max_zxid = max(max_zxid, w.max_zxid)
        zk = clients(node.hosts)
        checked = check_history(zk, history)
        acked = sum(1 for ws in history.values() for _, s in ws if s == "acked")
        assert acked > total_acked, f"round {rnd}: nothing was acknowledged"
        total_acked = acked
        print(f"round {rnd}: {acked} acknowledged writes in all, {checked} nodes checked")
        # zxids go on from where they were.
        _, stat = zk.create(f"/probe-{rnd}", include_data=True)
        assert stat.czxid > max_zxid
        max_zxid = stat.czxid
        zk.stop()
        zk.close()
        # The writers' sessions came back with the server.
        for wz in writers_zk:
            wait_for(lambda: wz.state == KazooState.CONNECTED, what="writer reconnect")


# --- sessions across a restart ---------------------------------------------------------


def test_sessions_survive_a_restart_and_absent_ones_expire(node, clients):
    node.start()
    a = clients(node.hosts, timeout=10.0)
    b = clients(node.hosts, timeout=2.0)
    a_states = []
    a.add_listener(a_states.append)
    a.create("/s")
    a.create("/s/a-eph", b"a", ephemeral=True)
    b.create("/s/b-eph", b"b", ephemeral=True)
    a_sid, b_sid = a.client_id[0], b.client_id[0]
    assert a_sid != b_sid
    node.kill()
    b.stop()       # b never comes back (it cannot say goodbye: the server is down)
    time.sleep(2.5)  # longer than b's timeout: it expires while the server is down
    node.start()
    wait_for(lambda: a.state == KazooState.CONNECTED, what="a to reconnect")
    assert a.client_id[0] == a_sid, "a keeps its session"
    assert KazooState.LOST not in a_states
    data, stat = a.get("/s/a-eph")
    assert data == b"a" and stat.ephemeralOwner == a_sid
    # b's session is expired after the restart (its timeout counted from the
    # start), and its ephemeral goes with it.
    wait_for(lambda: a.exists("/s/b-eph") is None, timeout=20, what="b's ephemeral to go")
    assert a.exists("/s/a-eph") is not None
    # a's session is still good for writes, and survives a second restart too.
    a.create("/s/a-eph2", ephemeral=True)
    node.kill()
    node.start()
    wait_for(lambda: a.state == KazooState.CONNECTED, what="a to reconnect again")
    assert a.client_id[0] == a_sid
    assert sorted(a.get_children("/s")) == ["a-eph", "a-eph2"]
    # Closing the session now deletes its ephemerals for good, across restarts.
    a.stop()
    node.kill()
    node.start()
    c = clients(node.hosts)
    assert c.get_children("/s") == []


def test_zxids_never_go_backwards(node, clients):
    node.start()
    zk = clients(node.hosts)
    zk.create("/z")
    seen = 0
    for i in range(30):
        seen = max(seen, zk.set("/z", b"%d" % i).mzxid)
    assert zk.last_zxid >= seen
    for how in ("kill", "term", "kill"):
        last = zk.last_zxid
        if how == "kill":
            node.kill()
        else:
            node.server.stop()     # SIGTERM: a clean shutdown
        node.start()
        # The server would refuse a client that has seen a zxid it does not
        # have ("client must try another server"): reconnecting proves it.
        wait_for(lambda: zk.state == KazooState.CONNECTED, what="reconnect")
        srvr = node.server.four_letter("srvr")
        zxid = int(srvr.split("Zxid: ")[1].split()[0], 16)
        assert zxid >= last
        stat = zk.set("/z", b"after " + how.encode())
        assert stat.mzxid > last and stat.mzxid > seen
        seen = stat.mzxid
    data, stat = zk.get("/z")
    assert data == b"after kill" and stat.version == 33


def test_corrupt_log_refuses_to_start_naming_file_and_offset(node, clients):
    node.start()
    zk = clients(node.hosts)
    for i in range(50):
        zk.create(f"/n{i}", b"x" * 20)
    zk.stop()
    node.server.stop()
    log_dir = os.path.join(node.data_dir, "version-2")
    logs = sorted(n for n in os.listdir(log_dir) if n.startswith("log."))
    path = os.path.join(log_dir, logs[0])
    with open(path, "r+b") as f:
        f.seek(300)
        b = f.read(1)
        f.seek(300)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(RuntimeError) as e:
        node.start()
    msg = str(e.value)
    assert "refusing to start" in msg and path in msg and "offset" in msg, msg
