"""The AdminServer beside Apache ZooKeeper 3.8's (Jetty, from Debian's
packages): the same session on both, then every command of /commands asked
of both, and the answers compared key by key (the structure of the JSON:
the keys of each object, the kinds of the values, the keys of the objects
in lists), with the values that are facts about the session compared
exactly.  mntr's keys are compared the same way."""

import json
import urllib.error
import urllib.request

import pytest

from zkpy.testing import ZkpyServer, free_port
from zkpy.testing.apache import ApacheZooKeeper, admin_available, require_apache

from .test_security import NETTY, certs, kazoo, tls_keys  # noqa: F401 (certs: a fixture)

pytestmark = pytest.mark.apache

# Objects whose keys are data (session ids, paths, times, server ids):
# compared as "a map of <shape of the values>".
_MAPS = {"expiry_time_to_session_ids", "session_id_to_ephemeral_paths",
         "session_id_to_watched_paths", "path_to_session_ids", "current_config"}

# ServerMetrics keyed by a znode's top namespace; zkpy does not keep them
# (docs/compatibility.md: they would cost every request a path split).
_NAMESPACE_SUFFIXES = ("_read_per_namespace", "_write_per_namespace")


def _shape(value, key=None):
    if isinstance(value, dict):
        if key in _MAPS:
            # An expiry bucket ZooKeeper has emptied stays in its map a while;
            # zkpy leaves empty buckets out (docs/compatibility.md, dump).
            return ("map", frozenset(_shape(v) for v in value.values() if v != []))
        return {k: _shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return ("list", frozenset(json.dumps(_shape(v), sort_keys=True, default=list)
                                  for v in value))
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return "str"


def _get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def _session(srv, admin_port):
    """The same session on either server; every command's answer."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=srv.hosts, timeout=30.0)
    zk.start(timeout=15)
    try:
        # A quota on /app, as zkCli's setquota writes it: the quota gauges.
        zk.create("/zookeeper/quota/app/zookeeper_limits", b"count=100,bytes=-1=;"
                  b"byteHardLimit=5000;countHardLimit=-1", makepath=True)
        zk.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")
        zk.create("/app", b"x" * 10)
        zk.create("/app/eph", b"e", ephemeral=True)
        for i in range(130):            # past the digest log's interval (128)
            zk.set("/app", str(i).encode())
        zk.get("/app", watch=lambda e: None)
        zk.get_children("/app", watch=lambda e: None)
        zk.exists("/missing", watch=lambda e: None)
        status, ctype, body = _get(admin_port, "/commands")
        out = {"/commands": (status, body.decode())}
        names = [line.split(">")[1].split("<")[0] for line in body.decode().splitlines()
                 if line.startswith("<a ")]
        for name in names + ["nope", "set_trace_mask?traceMask=306",
                             "set_trace_mask?traceMask=x", "conf", "mntr"]:
            if name in ("snapshot", "restore"):
                continue
            status, ctype, body = _get(admin_port, "/commands/" + name)
            out[name] = (status, ctype.split(";")[0], json.loads(body))
        out["names"] = names
        return out
    finally:
        zk.stop()
        zk.close()


@pytest.fixture(scope="module")
def answers():
    require_apache()
    ok, why = admin_available()
    if not ok:
        pytest.fail(why, pytrace=False)
    with ApacheZooKeeper(admin=True) as apache:
        theirs = _session(apache, apache.admin_port)
    port = free_port()
    with ZkpyServer(config={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                            "admin.serverPort": port}) as zkpy:
        mine = _session(zkpy, port)
    return theirs, mine


def test_the_same_commands(answers):
    theirs, mine = answers
    # ZooKeeper 3.9's snapshot and restore come on top of 3.8's list.
    assert mine["names"] == sorted(theirs["names"] + ["restore", "snapshot"])
    assert mine["/commands"][0] == theirs["/commands"][0] == 200


@pytest.mark.parametrize("name", [
    "configuration", "connection_stat_reset", "connections", "dirs", "dump", "hash",
    "get_trace_mask", "initial_configuration", "is_read_only", "last_snapshot", "leader",
    "observer_connection_stat_reset", "observers", "ruok", "server_stats", "stat_reset",
    "stats", "voting_view", "watch_summary", "watches", "watches_by_path", "zabstate",
    "set_trace_mask", "set_trace_mask?traceMask=306", "set_trace_mask?traceMask=x", "nope",
    "conf", "environment",
])
def test_same_keys_as_apache_zookeeper(answers, name):
    theirs, mine = answers
    t_status, t_type, t_json = theirs[name]
    m_status, m_type, m_json = mine[name]
    assert (m_status, m_type) == (t_status, t_type) == (200, "application/json")
    assert list(m_json) == list(t_json), "the same keys in the same order"
    assert _shape(m_json) == _shape(t_json), \
        f"{name}:\n--- Apache ZooKeeper\n{t_json}\n--- zkpy\n{m_json}"


@pytest.mark.parametrize("name, keys", [
    ("is_read_only", ["read_only"]),
    ("leader", ["error"]),
    ("zabstate", ["voting", "zabstate"]),
    ("voting_view", ["current_config"]),
    ("observers", ["synced_observers", "observers"]),
    ("watch_summary", ["num_connections", "num_paths", "num_total_watches"]),
    ("get_trace_mask", ["tracemask"]),
    ("set_trace_mask?traceMask=306", ["tracemask"]),
    ("set_trace_mask?traceMask=x", ["error"]),
    ("nope", ["error"]),
    ("configuration", ["tick_time", "max_client_cnxns", "min_session_timeout",
                       "max_session_timeout", "server_id", "client_port_listen_backlog"]),
])
def test_same_values(answers, name, keys):
    theirs, mine = answers
    for key in keys:
        assert mine[name][2][key] == theirs[name][2][key], key


def test_session_facts_agree(answers):
    theirs, mine = answers
    for name in ("server_stats", "stats"):
        for key in ("read_only", "node_count"):
            assert mine[name][2][key] == theirs[name][2][key]
        assert mine[name][2]["server_stats"]["server_state"] == "standalone"
    paths = lambda a: sorted(p for ps in a["dump"][2]["session_id_to_ephemeral_paths"].values()
                             for p in ps)
    assert paths(mine) == paths(theirs) == ["/app/eph"]
    assert sorted(mine["watches_by_path"][2]["path_to_session_ids"]) == \
        sorted(theirs["watches_by_path"][2]["path_to_session_ids"])
    assert len(mine["hash"][2]["digests"]) == len(theirs["hash"][2]["digests"]) == 1
    assert [d["zxid"] for d in mine["hash"][2]["digests"]] == \
        [d["zxid"] for d in theirs["hash"][2]["digests"]]


def test_monitor_keys(answers):
    """monitor (and its alias mntr) answer ZooKeeper 3.8's keys: the gauges,
    every counter and every summary, under the same names."""
    theirs, mine = answers
    for name in ("monitor", "mntr"):
        t_keys = {k for k in theirs[name][2] if not k.endswith(_NAMESPACE_SUFFIXES)}
        m_keys = set(mine[name][2])
        assert m_keys == t_keys, (sorted(t_keys - m_keys), sorted(m_keys - t_keys))
        kinds = lambda j: {k: _shape(v) for k, v in j.items() if k in t_keys}
        assert kinds(mine[name][2]) == kinds(theirs[name][2])
    for key in ("znode_count", "ephemerals_count", "watch_count", "global_sessions",
                "server_state", "cnt_node_changed_watch_count",
                "app_quota_count_limit_per_namespace", "app_quota_bytes_limit_per_namespace",
                "app_quota_count_usage_per_namespace", "app_quota_bytes_usage_per_namespace"):
        assert mine["monitor"][2][key] == theirs["monitor"][2][key], key
    # Both timed every read and every write of the session.
    for key in ("cnt_readlatency", "cnt_updatelatency"):
        assert mine["monitor"][2][key] > 0 and theirs["monitor"][2][key] > 0


def test_secure_connections(certs):
    """With secureClientPort, the connections and stats commands list the
    TLS clients of that port under secure_connections, on both servers."""
    from kazoo.client import KazooClient

    answers = {}
    for name in ("apache", "zkpy"):
        secure_port, admin_port = free_port(), free_port()
        cfg = dict(tls_keys(certs), serverCnxnFactory=NETTY, secureClientPort=secure_port)
        if name == "apache":
            server = ApacheZooKeeper(extra_cfg=cfg, admin=True)
        else:
            server = ZkpyServer(config=dict(cfg, **{"admin.enableServer": "true",
                                                    "admin.serverAddress": "127.0.0.1",
                                                    "admin.serverPort": admin_port}))
        with server:
            port = server.admin_port if name == "apache" else admin_port
            plain = KazooClient(hosts=server.hosts, timeout=30.0)
            plain.start(timeout=15)
            secure = kazoo(certs, secure_port)
            try:
                answers[name] = {cmd: json.loads(_get(port, "/commands/" + cmd)[2])
                                 for cmd in ("connections", "stats")}
            finally:
                for zk in (plain, secure):
                    zk.stop()
                    zk.close()
    for cmd in ("connections", "stats"):
        for name in ("apache", "zkpy"):
            got = answers[name][cmd]
            assert (len(got["connections"]), len(got["secure_connections"])) == (1, 1), name
        assert _shape(answers["zkpy"][cmd]) == _shape(answers["apache"][cmd])
