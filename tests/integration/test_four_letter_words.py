"""Four-letter words (ruok, srvr, stat, mntr, ...): each reply's line shapes,
the whitelist, and a side-by-side comparison with Apache ZooKeeper 3.8.

The shape tests run against whichever target tests/conftest.py selects
(ZKPY_IT_TARGET=apache runs them against the reference), so the regexes here
are checked against the real thing too."""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from ..conftest import run_server

# --- helpers ----------------------------------------------------------------------------

VERSION_RE = r"(\S+), built on \d{4}-\d\d-\d\d \d\d:\d\d UTC"
JAVA_DATE_RE = r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+ \d{4}"
HEX = r"0x[0-9a-f]+"
INT = r"-?\d+"
DOUBLE = r"-?\d+\.\d+(?:E-?\d+)?"
PEER = r"/[0-9a-f.:]+:\d+"

SRVR_BODY = [
    rf"Latency min/avg/max: \d+/{DOUBLE}/\d+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    rf"Zxid: {HEX}",
    r"Mode: standalone",
    r"Node count: \d+",
]
CONS_BRIEF = rf" {PEER}\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)"
CONS_FULL = (rf" {PEER}\[\d+\]\(queued=\d+,recved=\d+,sent=\d+,sid=(?P<sid>{HEX}),lop=\w+,"
             rf"est=\d+,to=\d+(?:,lcxid={HEX})?,lzxid={HEX},lresp=\d+,llat=\d+,minlat=\d+,"
             rf"avglat=\d+,maxlat=\d+\)")
CONF_KEYS = ["clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
             "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
             "maxSessionTimeout", "clientPortListenBacklog", "serverId"]
ENVI_KEYS = ["zookeeper.version", "host.name", "java.version", "java.vendor", "java.home",
             "java.class.path", "java.library.path", "java.io.tmpdir", "java.compiler",
             "os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir",
             "os.memory.free", "os.memory.max", "os.memory.total"]
# mntr keys every ZooKeeper 3.8 server prints (standalone).
MNTR_ALWAYS = {
    "zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
    "zk_outstanding_requests", "zk_uptime", "zk_znode_count", "zk_watch_count",
    "zk_ephemerals_count", "zk_approximate_data_size", "zk_global_sessions",
    "zk_local_sessions", "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
    "zk_connection_drop_probability", "zk_last_client_response_size",
    "zk_max_client_response_size", "zk_min_client_response_size",
    "zk_outstanding_tls_handshake", "zk_auth_failed_count", "zk_non_mtls_remote_conn_count",
    "zk_non_mtls_local_conn_count",
}
MNTR_DOUBLES = {"zk_avg_latency", "zk_connection_drop_probability"}
ALL_WORDS = ["ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "wchs", "wchc",
             "wchp", "mntr", "isro", "srst", "dirs", "gtmk", "stmk", "hash"]


def four_letter(srv, word: str) -> str:
    """A four-letter word to either kind of server (zkpy or Apache)."""
    if hasattr(srv, "four_letter"):
        return srv.four_letter(word)
    return srv.four_letter_word(word)


def send_raw(srv, payload: bytes) -> str:
    host, port = srv.hosts.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def full(pattern: str, text: str):
    m = re.fullmatch(pattern, text)
    assert m, f"{text!r} does not match {pattern!r}"
    return m


def parse_mntr(text: str) -> dict:
    assert text.endswith("\n")
    out = {}
    for line in text[:-1].split("\n"):
        key, sep, value = line.partition("\t")
        assert sep and key.startswith("zk_"), line
        out[key] = value
    return out


def parse_blocks(text: str) -> dict:
    """wchc / wchp: unindented heads, each with its tab-indented items."""
    assert text.endswith("\n\n") or text == "\n", text
    blocks: dict = {}
    head = None
    for line in text[:-2].split("\n") if text != "\n" else []:
        if line.startswith("\t"):
            blocks[head].add(line[1:])
        else:
            head = line
            blocks.setdefault(head, set())
    return blocks


def sid_hex(client) -> str:
    return f"0x{client.client_id[0] & 0xFFFFFFFFFFFFFFFF:x}"


def populate(srv, make_client):
    """Two sessions, an ephemeral, and watches: c1 and c2 watch /fl/a's data,
    c2 watches /fl/a's children and the missing /fl/nope."""
    c1 = make_client(srv.hosts)
    c2 = make_client(srv.hosts)
    c1.create("/fl")
    c1.create("/fl/a", b"hello")
    c1.create("/fl/a/e", b"x", ephemeral=True)
    c2.create("/fl/b", b"")
    c1.get("/fl/a", watch=lambda e: None)
    c2.get("/fl/a", watch=lambda e: None)
    c2.get_children("/fl/a", watch=lambda e: None)
    c2.exists("/fl/nope", watch=lambda e: None)
    return c1, c2


@pytest.fixture(scope="module")
def busy():
    """A server of the selected target with populate() applied; the tests using
    it only read (the reset commands get their own server)."""
    from kazoo.client import KazooClient

    clients = []

    def make_client(hosts):
        c = KazooClient(hosts=hosts, timeout=30.0)
        c.start(timeout=15)
        clients.append(c)
        return c

    with run_server() as srv:
        srv.c1, srv.c2 = populate(srv, make_client)
        yield srv
        for c in clients:
            c.stop()
            c.close()


# --- the simple ones -----------------------------------------------------------------------

def test_ruok_is_imok_without_newline(busy):
    assert four_letter(busy, "ruok") == "imok"


def test_ruok_through_kazoo_command(busy):
    assert busy.c1.command(b"ruok") == "imok"


def test_isro_is_rw(busy):
    assert four_letter(busy, "isro") == "rw"


def test_hash_prints_no_digest_yet(busy):
    assert four_letter(busy, "hash") == ""


def test_dirs(busy):
    full(r"datadir_size: \d+\nlogdir_size: \d+\n", four_letter(busy, "dirs"))


def test_extra_bytes_after_the_word_are_ignored(busy):
    assert send_raw(busy, b"ruok\n") == "imok"
    full(r"Zookeeper version: .*\n(?:.*\n)+", send_raw(busy, b"srvr\r\nsome junk"))


# --- srvr / stat ------------------------------------------------------------------------------

def test_srvr_lines(busy):
    lines = four_letter(busy, "srvr").split("\n")
    assert lines[-1] == ""
    full(rf"Zookeeper version: {VERSION_RE}", lines[0])
    assert len(lines) == 1 + len(SRVR_BODY) + 1
    for pattern, line in zip(SRVR_BODY, lines[1:]):
        full(pattern, line)
    values = dict(line.split(": ", 1) for line in lines[1:-1])
    # /fl, /fl/a, /fl/a/e, /fl/b on top of the 5 of a fresh server ("" alias included).
    assert int(values["Node count"]) == 9
    assert int(values["Connections"]) >= 3    # two clients and this 4lw socket
    assert int(values["Outstanding"]) == 0


def test_srvr_counts_the_four_letter_word_as_a_packet(busy):
    def received():
        return int(re.search(r"^Received: (\d+)$", four_letter(busy, "srvr"), re.M).group(1))

    first = received()
    assert received() > first


def test_stat_lines(busy):
    text = four_letter(busy, "stat")
    lines = text.split("\n")
    full(rf"Zookeeper version: {VERSION_RE}", lines[0])
    assert lines[1] == "Clients:"
    blank = lines.index("")
    clients = lines[2:blank]
    assert len(clients) >= 3
    for line in clients:
        full(CONS_BRIEF, line)
    body = lines[blank + 1:]
    assert body[-1] == ""
    assert len(body) == len(SRVR_BODY) + 1
    for pattern, line in zip(SRVR_BODY, body):
        full(pattern, line)


def test_version_line_agrees_with_envi_and_kazoo(busy):
    version = full(rf"Zookeeper version: {VERSION_RE}\n(?s:.*)", four_letter(busy, "srvr"))
    envi = four_letter(busy, "envi")
    assert f"\nzookeeper.version={version.group(1)}, built on " in envi
    expected = tuple(int(d) for d in re.match(r"[\d.]*", version.group(1)).group(0).split("."))
    assert len(expected) >= 2
    assert busy.c1.server_version() == expected


# --- conf / cons / dump / envi ----------------------------------------------------------------

def test_conf(busy):
    text = four_letter(busy, "conf")
    assert text.endswith("\n")
    pairs = [line.split("=", 1) for line in text[:-1].split("\n")]
    assert [k for k, _ in pairs] == CONF_KEYS
    conf = dict(pairs)
    assert conf["clientPort"] == busy.hosts.rsplit(":", 1)[1]
    assert conf["secureClientPort"] == "-1"
    assert conf["dataDir"].endswith("/version-2")
    assert conf["dataLogDir"].endswith("/version-2")
    assert conf["tickTime"] == "2000"
    assert conf["maxClientCnxns"] == "60"
    assert conf["minSessionTimeout"] == "4000" and conf["maxSessionTimeout"] == "40000"
    assert conf["serverId"] == "0"
    for key in ("dataDirSize", "dataLogSize", "clientPortListenBacklog"):
        full(INT, conf[key])


def test_cons(busy):
    text = four_letter(busy, "cons")
    assert text.endswith("\n\n")
    lines = text[:-2].split("\n")
    sessions = set()
    brief = 0
    for line in lines:
        m = re.fullmatch(CONS_FULL, line)
        if m:
            sessions.add(m.group("sid"))
        else:
            full(CONS_BRIEF, line)   # the asking 4lw socket has no session
            brief += 1
    assert {sid_hex(busy.c1), sid_hex(busy.c2)} <= sessions
    assert brief >= 1


def test_dump(busy):
    text = four_letter(busy, "dump")
    lines = text.split("\n")
    assert lines[-1] == ""
    it = iter(lines[:-1])
    assert next(it) == "SessionTracker dump:"
    header = full(r"Session Sets \((\d+)\)/\((\d+)\):", next(it))
    sessions = set()
    line = next(it)
    while line != "ephemeral nodes dump:":
        full(rf"\d+ expire at {JAVA_DATE_RE}:", line)
        line = next(it)
        while line.startswith("\t"):
            sessions.add(full(rf"\t({HEX})", line).group(1))
            line = next(it)
    assert {sid_hex(busy.c1), sid_hex(busy.c2)} <= sessions
    assert int(header.group(2)) == len(sessions)
    eph = full(r"Sessions with Ephemerals \((\d+)\):", next(it))
    assert eph.group(1) == "1"
    assert next(it) == sid_hex(busy.c1) + ":"
    assert next(it) == "\t/fl/a/e"
    assert next(it) == "Connections dump:"
    full(r"Connections Sets \(\d+\)/\(\d+\):", next(it))
    cnxn_sessions = set()
    for line in it:
        if not line.startswith("\t"):
            full(rf"\d+ expire at {JAVA_DATE_RE}:", line)
            continue
        cnxn_sessions.add(full(rf"\tip: {PEER} sessionId: ({HEX})", line).group(1))
    assert {sid_hex(busy.c1), sid_hex(busy.c2), "0x0"} <= cnxn_sessions


def test_envi(busy):
    text = four_letter(busy, "envi")
    lines = text.split("\n")
    assert lines[0] == "Environment:" and lines[-1] == ""
    pairs = [line.split("=", 1) for line in lines[1:-1]]
    assert [k for k, _ in pairs] == ENVI_KEYS
    env = dict(pairs)
    for key in ("os.memory.free", "os.memory.max", "os.memory.total"):
        full(r"\d+MB|<NA>", env[key])
    assert len(text.encode()) < 8192    # kazoo's command() reads one recv(8192)


# --- watches --------------------------------------------------------------------------------------

def test_wchs_counts_the_data_watch_table(busy):
    # Data watches: c1 on /fl/a, c2 on /fl/a and /fl/nope; the child watch is not counted.
    assert four_letter(busy, "wchs") == "2 connections watching 2 paths\nTotal watches:3\n"


def test_wchc(busy):
    blocks = parse_blocks(four_letter(busy, "wchc"))
    assert blocks == {sid_hex(busy.c1): {"/fl/a"}, sid_hex(busy.c2): {"/fl/a", "/fl/nope"}}


def test_wchp(busy):
    blocks = parse_blocks(four_letter(busy, "wchp"))
    assert blocks == {"/fl/a": {sid_hex(busy.c1), sid_hex(busy.c2)},
                      "/fl/nope": {sid_hex(busy.c2)}}


# --- mntr -----------------------------------------------------------------------------------------

def test_mntr(busy):
    m = parse_mntr(four_letter(busy, "mntr"))
    assert MNTR_ALWAYS <= m.keys()
    for key in MNTR_ALWAYS - {"zk_version", "zk_server_state"}:
        full(DOUBLE if key in MNTR_DOUBLES else INT, m[key])
    full(VERSION_RE, m["zk_version"])
    assert m["zk_server_state"] == "standalone"
    assert m["zk_znode_count"] == "9"
    assert m["zk_ephemerals_count"] == "1"
    assert m["zk_watch_count"] == "4"           # both tables: 3 data + 1 child
    assert m["zk_global_sessions"] == "2"
    assert m["zk_outstanding_requests"] == "0"
    # sum of path length + data length: / /zookeeper /zookeeper/quota
    # /zookeeper/config /fl /fl/a(+5) /fl/a/e(+1) /fl/b
    assert m["zk_approximate_data_size"] == str(1 + 10 + 16 + 17 + 3 + 5 + 5 + 7 + 1 + 5)
    assert int(m["zk_num_alive_connections"]) >= 3
    assert int(m["zk_max_client_response_size"]) >= int(m["zk_min_client_response_size"]) > 0


# --- the commands that change something: a server of their own --------------------------

@pytest.fixture
def fresh(make_server, make_client):
    srv = make_server()
    srv.c1, srv.c2 = populate(srv, make_client)
    return srv


def test_crst_resets_connection_stats(fresh):
    before = four_letter(fresh, "cons")
    assert "lcxid=" in before
    assert four_letter(fresh, "crst") == "Connection stats reset.\n"
    after = four_letter(fresh, "cons")
    for line in after[:-2].split("\n"):
        m = re.fullmatch(CONS_FULL, line)
        if m:
            # A ping may slip in, but pings (xid -2) never set lcxid.
            assert "lcxid=" not in line
            full(r".*,recved=[01],sent=[01],.*", line)


def test_srst_resets_server_stats(fresh):
    def received():
        return int(re.search(r"^Received: (\d+)$", four_letter(fresh, "srvr"), re.M).group(1))

    before = received()
    assert before > 5
    assert four_letter(fresh, "srst") == "Server stats reset.\n"
    assert received() < 5


def test_gtmk_and_stmk(fresh):
    assert four_letter(fresh, "gtmk") == "306"
    assert send_raw(fresh, b"stmk" + struct.pack(">q", 1234)) == "1234"
    assert four_letter(fresh, "gtmk") == "1234"
    assert send_raw(fresh, b"stmk" + struct.pack(">q", -2)) == "-2"
    assert send_raw(fresh, b"stmk" + struct.pack(">q", 306)) == "306"


# --- whitelist ------------------------------------------------------------------------------------

@pytest.mark.zkpy_only
def test_whitelist_srvr_only():
    from zkpy.server.config import parse_config
    from zkpy.testing import ZkpyServer

    # ZkpyServer (like ApacheZooKeeper) waits for "imok", which this whitelist
    # refuses; so start with every word allowed, then narrow the list to what
    # zoo.cfg's "4lw.commands.whitelist=srvr" gives.
    allowed = parse_config("dataDir=/tmp\n4lw.commands.whitelist=srvr\n").four_letter_whitelist
    assert allowed == {"srvr"}
    srv = ZkpyServer().start()
    try:
        srv.call(lambda server: setattr(server.config, "four_letter_whitelist", allowed))
        _check_srvr_only(srv)
    finally:
        srv.__exit__(None, None, None)


def _check_srvr_only(srv):
    assert four_letter(srv, "srvr").startswith("Zookeeper version: ")
    for word in ("ruok", "mntr", "stat", "envi", "isro", "gtmk"):
        assert four_letter(srv, word) == \
            f"{word} is not executed because it is not in the whitelist.\n"
    assert send_raw(srv, b"stmk" + struct.pack(">q", 1)) == \
        "stmk is not executed because it is not in the whitelist.\n"


def test_whitelist_list_always_has_srvr(make_server):
    srv = make_server({"4lw.commands.whitelist": "ruok, conf"})
    assert four_letter(srv, "ruok") == "imok"
    assert four_letter(srv, "conf").startswith("clientPort=")
    assert four_letter(srv, "srvr").startswith("Zookeeper version: ")
    assert four_letter(srv, "mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert four_letter(srv, "wchs") == "wchs is not executed because it is not in the whitelist.\n"


# --- not serving, quorum conf: the module directly --------------------------------------------------

@pytest.mark.zkpy_only
def test_not_serving(tmp_path):
    from zkpy.server import fourletter
    from zkpy.server.config import ServerConfig
    from zkpy.server.zkserver import ZooKeeperServer

    server = ZooKeeperServer(ServerConfig(data_dir=tmp_path, four_letter_whitelist=frozenset({"*"})))
    server.shutdown()          # a server that no longer serves
    not_serving = "This ZooKeeper instance is not currently serving requests"
    for word in ("srvr", "stat", "conf", "cons", "crst", "dump", "wchs", "wchc", "wchp", "mntr",
                 "srst", "dirs"):
        assert fourletter.run(server, word, b"") == not_serving + "\n"
    assert fourletter.run(server, "hash", b"") == not_serving
    assert fourletter.run(server, "ruok", b"") == "imok"
    assert fourletter.run(server, "isro", b"") == "null"
    assert fourletter.run(server, "gtmk", b"") == "306"
    assert fourletter.run(server, "envi", b"").startswith("Environment:\nzookeeper.version=")


@pytest.mark.zkpy_only
def test_quorum_conf_and_mntr(tmp_path):
    from zkpy.server import fourletter
    from zkpy.server.config import ServerConfig, ServerSpec
    from zkpy.server.roles import FollowerRole
    from zkpy.server.zkserver import ZooKeeperServer

    servers = {i: ServerSpec(i, "127.0.0.1", 2880 + i, 3880 + i) for i in (1, 2, 3)}
    servers[3] = ServerSpec(3, "127.0.0.1", 2883, 3883, client_host="0.0.0.0", client_port=2183)
    config = ServerConfig(data_dir=tmp_path, servers=servers, my_id=2, init_limit=5, sync_limit=2,
                          client_port=2182, four_letter_whitelist=frozenset({"*"}))
    server = ZooKeeperServer(config, server_id=2)
    server.set_role(FollowerRole(server, port=None))
    conf = fourletter.run(server, "conf", b"")
    assert conf.endswith(
        "serverId=2\ninitLimit=5\nsyncLimit=2\nelectionAlg=3\nelectionPort=3882\n"
        "quorumPort=2882\npeerType=0\nmembership: \n"
        "server.1=127.0.0.1:2881:3881:participant\n"
        "server.2=127.0.0.1:2882:3882:participant\n"
        "server.3=127.0.0.1:2883:3883:participant;0.0.0.0:2183\n"
        "version=0")
    m = parse_mntr(fourletter.run(server, "mntr", b""))
    assert m["zk_server_state"] == "follower"
    assert m["zk_peer_state"] == "following - broadcast"
    assert m["zk_quorum_size"] == "3"
    assert "Mode: follower\n" in fourletter.run(server, "srvr", b"")


# --- lop names ------------------------------------------------------------------------------------

def test_cons_last_operation_uses_zookeeper_codes(fresh):
    fresh.c1.get("/fl/a")
    line = next(line for line in four_letter(fresh, "cons").split("\n")
                if f"sid={sid_hex(fresh.c1)}," in line)
    assert ",lop=GETD," in line


# --- side by side with Apache ZooKeeper ---------------------------------------------------------

def _shape(line: str) -> str:
    """A line with its values replaced by placeholders."""
    line = re.sub(VERSION_RE, "VERSION", line)
    line = re.sub(JAVA_DATE_RE, "DATE", line)
    line = re.sub(r"=/\S*", "=PATH", line)             # conf's directories
    line = re.sub(r"\d+\.\d+\.\d+\.\d+", "IP", line)
    line = re.sub(HEX, "HEX", line)
    line = re.sub(r"-?\d+(?:\.\d+)?(?:E-?\d+)?", "N", line)
    return line


# Replies whose lines come in hash-map order (and, for dump, in timing-dependent
# buckets) are compared as sets of shapes; the others line by line.
_UNORDERED = {"stat", "cons", "dump", "wchc", "wchp"}


def _shapes(word: str, text: str):
    if word == "envi":
        return [line.split("=", 1)[0] for line in text.split("\n")]
    if word == "mntr":
        return None   # compared key by key below
    shapes = [_shape(line) for line in text.split("\n")]
    if word in _UNORDERED:
        return set(shapes)
    return shapes


def _value_kind(value: str) -> str:
    if re.fullmatch(INT, value):
        return "int"
    if re.fullmatch(DOUBLE, value):
        return "double"
    return "text"


def _session_outputs(srv) -> dict:
    from kazoo.client import KazooClient

    clients = []

    def make_client(hosts):
        c = KazooClient(hosts=hosts, timeout=30.0)
        c.start(timeout=15)
        clients.append(c)
        return c

    try:
        populate(srv, make_client)
        words = [w for w in ALL_WORDS if w not in ("crst", "srst", "stmk")]
        out = {w: four_letter(srv, w) for w in words}
        out["stmk"] = send_raw(srv, b"stmk" + struct.pack(">q", 306))
        out["crst"] = four_letter(srv, "crst")
        out["srst"] = four_letter(srv, "srst")
        out["hash-refused"] = four_letter(srv, "hash")
    finally:
        for c in clients:
            c.stop()
            c.close()
    return out


@pytest.mark.apache
def test_same_shapes_as_apache_zookeeper():
    """The same session against both servers; every reply compared by shape
    (values differ), mntr key by key."""
    from zkpy.testing.apache import ApacheZooKeeper, require_apache
    from zkpy.testing import ZkpyServer

    require_apache()
    # Everything but hash, so that the refusal text is compared as well.
    whitelist = ",".join(w for w in ALL_WORDS if w != "hash")
    cfg = {"4lw.commands.whitelist": whitelist}
    with ApacheZooKeeper(extra_cfg=cfg) as apache:
        theirs = _session_outputs(apache)
    with ZkpyServer(config=cfg) as ours:
        mine = _session_outputs(ours)

    assert mine["hash-refused"] == theirs["hash-refused"] == \
        "hash is not executed because it is not in the whitelist.\n"
    for word in ALL_WORDS:
        if word == "hash":
            continue
        assert _shapes(word, mine[word]) == _shapes(word, theirs[word]), \
            f"{word}:\n--- Apache ZooKeeper\n{theirs[word]}\n--- zkpy\n{mine[word]}"

    m_ours, m_theirs = parse_mntr(mine["mntr"]), parse_mntr(theirs["mntr"])
    assert MNTR_ALWAYS <= m_theirs.keys()
    assert MNTR_ALWAYS <= m_ours.keys()
    assert m_ours.keys() <= m_theirs.keys(), "zkpy invents mntr keys"
    # Every key ZooKeeper prints, but the summaries keyed by a znode's top
    # namespace (docs/compatibility.md).
    expected = {k for k in m_theirs if not k.endswith(("_read_per_namespace",
                                                        "_write_per_namespace"))}
    assert m_ours.keys() == expected, sorted(expected - m_ours.keys())
    kinds_ours = {k: _value_kind(v) for k, v in m_ours.items()}
    kinds_theirs = {k: _value_kind(v) for k, v in m_theirs.items() if k in m_ours}
    assert kinds_ours == kinds_theirs
    # Values that are facts about the tree, the sessions and the watches agree.
    for key in ("zk_server_state", "zk_znode_count", "zk_ephemerals_count", "zk_watch_count",
                "zk_approximate_data_size", "zk_global_sessions", "zk_outstanding_requests"):
        assert m_ours[key] == m_theirs[key], key
    for word in ("ruok", "isro", "wchs", "gtmk", "stmk", "crst", "srst"):
        assert mine[word] == theirs[word], word


def _handshake_figures(srv) -> list:
    """A connection's cons figures, step by step: a new session's handshake,
    requests with cxid 5 and 0, the session resumed on another connection;
    then srvr's packet counts and mntr's latency counts for all of it."""
    from zkpy.protocol.opcodes import Op
    from zkpy.protocol.records import PathWatchRequest
    from zkpy.rawclient import RawClient

    def figures(sid, replies):
        # ZooKeeper counts a packet sent after its socket write returns, so
        # the client may have read a reply before it is counted: cons is
        # read again (a few times at most) until it counts the replies the
        # client has read.  (A server that never counts them fails below.)
        for _ in range(50):
            line = next(line for line in four_letter(srv, "cons").split("\n")
                        if f"sid=0x{sid:x}," in line)
            f = dict(re.findall(r"(recved|sent|lop|lcxid|lzxid)=(\w+)", line))
            if int(f["sent"]) >= replies:
                break
            time.sleep(0.02)
        zxid = int(f.pop("lzxid"), 16)
        # The zxid is the server's own; whether it is 0 is what compares.
        f["lzxid"] = "0x0" if zxid == 0 else "tree's" if zxid == tree_zxid() else hex(zxid)
        return f

    def tree_zxid():
        return int(re.search(r"Zxid: (0x[0-9a-f]+)", four_letter(srv, "srvr")).group(1), 16)

    def mntr_counts():
        m = parse_mntr(four_letter(srv, "mntr"))
        return {k: int(m[k]) for k in ("zk_cnt_updatelatency", "zk_cnt_readlatency")}

    host, port = srv.hosts.rsplit(":", 1)
    four_letter(srv, "srst")
    before = mntr_counts()
    steps = []
    c = RawClient(host, int(port))
    with c:
        r = c.connect()
        steps.append(figures(r.session_id, 1))
        c.request(Op.EXISTS, PathWatchRequest("/", False), xid=5)
        steps.append(figures(r.session_id, 2))
        c.request(Op.EXISTS, PathWatchRequest("/", False), xid=0)
        steps.append(figures(r.session_id, 3))
        with RawClient(host, int(port)) as again:
            again.connect(r.session_id, r.passwd)
            steps.append(figures(r.session_id, 1))
    after = mntr_counts()
    steps.append({k: after[k] - before[k] for k in after})
    return steps


@pytest.mark.apache
def test_a_connections_figures_through_its_handshake_as_apache_zookeepers():
    """ZooKeeper counts the ConnectRequest and ConnectResponse as packets,
    a new session's createSession as a request answered (lop SESS, cxid 0,
    an update latency), shows a fresh connection's Java defaults (lop null,
    lcxid 0x0, lzxid 0x0) until its first reply, and takes a cxid of 0 as
    the last cxid."""
    from zkpy.testing.apache import ApacheZooKeeper, require_apache
    from zkpy.testing import ZkpyServer

    require_apache()
    cfg = {"4lw.commands.whitelist": "*"}
    with ApacheZooKeeper(extra_cfg=cfg) as apache:
        theirs = _handshake_figures(apache)
    with ZkpyServer(config=cfg) as ours:
        mine = _handshake_figures(ours)
    assert theirs[0] == {"recved": "1", "sent": "1", "lop": "SESS", "lcxid": "0x0",
                         "lzxid": "tree's"}   # what is compared is what ZooKeeper does
    assert mine == theirs
