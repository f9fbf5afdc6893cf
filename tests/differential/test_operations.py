"""Operations features side by side with Apache ZooKeeper 3.8: the data-tree
digest (the `hash` four-letter word), quota enforcement (enforceQuota=true)
and the audit log (audit.enable=true)."""

from __future__ import annotations

import logging
import time

import pytest

from zkpy.testing.apache import four_letter_word
from zkpy.datatree.digest import DIGEST_LOG_INTERVAL
from zkpy.protocol.errors import Err
from zkpy.protocol.opcodes import CreateMode
from zkpy.protocol.records import ACL
from zkpy.storage.zookeeper_format import load_zookeeper

from .conftest import server_pair
from .harness import Differential, m_check, m_create, m_delete, m_set_data

pytestmark = pytest.mark.apache


def flw(server, word: str) -> str:
    return four_letter_word(server.host, server.port, word)


def hash_lines(text: str) -> list[tuple[int, int]]:
    out = []
    for line in text.splitlines():
        zxid, digest = line.split(": ")
        out.append((int(zxid, 16), int(digest)))
    return out


def test_digest_values_are_zookeepers():
    """The same txns give ZooKeeper's digests: zkpy reads Apache ZooKeeper's
    own data directory (its snapshot and log: the same zxids, times and
    session ids) and computes, txn by txn, the digest history that the
    ZooKeeper server prints for `hash`.  (The two servers' own digests
    differ only because their times and session ids differ.)"""
    cfg = {"extendedTypesEnabled": "true", "znode.container.checkIntervalMs": "3600000"}
    with server_pair(cfg) as (apache, zkpy), Differential(apache, zkpy) as d:
        s, p = d.session(), d.p
        d.make_root(s)
        s.set_data("/", b"root data")
        s.set_data("/zookeeper", b"proc data")
        s.create("/zookeeper/mine", b"not in the digest")
        s.create(p("e"), b"eph", flags=CreateMode.EPHEMERAL)
        s.create(p("s-"), b"seq", flags=CreateMode.PERSISTENT_SEQUENTIAL)
        s.create_container(p("c"), b"container")
        s.create(p("c/x"), b"")
        s.create_ttl(p("t"), 600000, b"ttl")
        s.set_acl(p("c/x"), [ACL(31, "world", "anyone")])
        s.multi(m_create(p("m"), b"1"), m_set_data(p("m"), b"22"), m_check(p("m"), 1),
                m_delete(p("c/x")))
        s.multi(m_create(p("m2")), m_delete(p("missing")))          # fails
        other = d.session()
        other.create(p("e2"), b"", flags=CreateMode.EPHEMERAL)
        other.close_session()
        i = 0
        while len(hash_lines(flw(apache, "hash"))) < 3:
            s.create(p(f"n{i}"), bytes(i % 5))
            if i % 3 == 0:
                s.set_data(p(f"n{i}"), b"again")
            if i % 4 == 0:
                s.delete(p(f"n{i}"))
            i += 1
        want = flw(apache, "hash")
        got_zkpy = flw(zkpy, "hash")
        imported = load_zookeeper(str(apache.data_dir / "version-2")).tree
    lines = hash_lines(want)
    assert [z % DIGEST_LOG_INTERVAL for z, _ in lines] == [0] * len(lines)
    # ZooKeeper's values, from ZooKeeper's txns
    assert imported.digest_log.text() == want
    # zkpy's own history has the same shape (its own values; its zxids are
    # not ZooKeeper's, which counts the sessions of its startup probe)
    ours = [z for z, _ in hash_lines(got_zkpy)]
    assert ours == [DIGEST_LOG_INTERVAL * (i + 1) for i in range(len(ours))]
    assert len(ours) >= 2
    assert got_zkpy.endswith("\n") and want.endswith("\n")


def test_digest_disabled_logs_zero():
    cfg = {"digest.enabled": "false"}
    jvm = ["-Dzookeeper.digest.enabled=false"]
    from zkpy.testing.apache import ApacheZooKeeper
    from zkpy.testing import ZkpyServer
    with ApacheZooKeeper(jvm_args=jvm) as apache, ZkpyServer(config=cfg) as zkpy:
        with Differential(apache, zkpy) as d:
            s = d.session()
            d.make_root(s)
            for i in range(DIGEST_LOG_INTERVAL):
                s.create(d.p(f"n{i}"))
            assert flw(apache, "hash") == flw(zkpy, "hash") == "80: 0\n"


# --- quotas with enforceQuota=true --------------------------------------------------------

def limits(count=-1, bytes_=-1, count_hard=-1, bytes_hard=-1) -> bytes:
    return (f"count={count},bytes={bytes_}=;byteHardLimit={bytes_hard};"
            f"countHardLimit={count_hard}").encode()


@pytest.fixture(scope="module")
def enforcing():
    with server_pair({"enforceQuota": "true"}) as pair:
        yield pair


@pytest.fixture
def qdiff(enforcing, request):
    apache, zkpy = enforcing
    with Differential(apache, zkpy, label=request.node.name[5:25]) as d:
        s = d.session("s1")
        d.make_root(s)
        yield d
        # leave no quota behind for the next test
        for rel in ("zookeeper_limits", "zookeeper_stats"):
            s.delete(f"/zookeeper/quota{d.root}/{rel}")
        s.delete(f"/zookeeper/quota{d.root}")


def set_quota(s, root, lim):
    """What zkCli's setquota writes (the server fills in the stats)."""
    s.create(f"/zookeeper/quota{root}", None)
    s.create(f"/zookeeper/quota{root}/zookeeper_limits", lim)
    s.create(f"/zookeeper/quota{root}/zookeeper_stats", b"count=0,bytes=0")
    s.get_data(f"/zookeeper/quota{root}/zookeeper_stats")


def test_hard_count_limit(qdiff):
    s, p = qdiff.sessions[0], qdiff.p
    set_quota(s, qdiff.root, limits(count_hard=3))
    s.create(p("a"))
    s.create(p("b"))
    out = s.create(p("c"))
    assert out.err == Err.QUOTA_EXCEEDED
    s.create(p("a"))                                   # NodeExists comes first
    s.create(p("e"), flags=CreateMode.EPHEMERAL)
    s.create(p("s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
    s.multi(m_create(p("m1")), m_set_data(p("a"), b"x"))
    s.multi(m_delete(p("b")), m_create(p("m2")), m_create(p("m3")))
    s.get_data(f"/zookeeper/quota{qdiff.root}/zookeeper_stats")
    s.delete(p("a"))
    s.create(p("d"))
    s.get_data(f"/zookeeper/quota{qdiff.root}/zookeeper_stats")


def test_hard_byte_limit(qdiff):
    s, p = qdiff.sessions[0], qdiff.p
    set_quota(s, qdiff.root, limits(bytes_=2, bytes_hard=10))
    s.create(p("a"), b"12345")
    s.create(p("b"), b"123456")
    s.create(p("b"), b"12345")
    s.set_data(p("a"), b"1234567")
    s.set_data(p("a"), b"1234567", version=5)          # QuotaExceeded before BadVersion
    s.set_data(p("a"), b"", version=5)
    s.set_data(p("a"), b"123")
    s.set_data(p("missing"), b"1234567890")
    s.set_acl(p("a"), [ACL(1, "world", "anyone")])
    s.set_data(p("a"), b"1234567890")                  # NoAuth before the quota
    s.get_data(f"/zookeeper/quota{qdiff.root}/zookeeper_stats")


def test_soft_limits_let_writes_through(qdiff):
    s, p = qdiff.sessions[0], qdiff.p
    set_quota(s, qdiff.root, limits(count=1, bytes_=1))
    s.create(p("a"), b"1234")
    s.set_data(p("a"), b"123456789")
    s.get_data(f"/zookeeper/quota{qdiff.root}/zookeeper_stats")


def test_unreadable_limits(qdiff):
    s, p = qdiff.sessions[0], qdiff.p
    set_quota(s, qdiff.root, limits(count_hard=5))
    s.set_data(f"/zookeeper/quota{qdiff.root}/zookeeper_limits", b"count=garbage")
    s.create(p("a"))                                   # MarshallingError
    s.multi(m_create(p("b")), m_create(p("c")))        # the whole multi
    s.set_data(qdiff.root, b"x")
    s.get_children(qdiff.root)


# --- the audit log -----------------------------------------------------------------------

class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _audit_scenario(d):
    s, p = d.sessions[0], d.p
    s.create(p("e"), flags=CreateMode.EPHEMERAL)
    s.create(p("s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)
    s.create(d.root)                                           # failure
    s.create_container(p("c"))
    s.set_data(d.root, b"y")
    s.set_data(d.root, b"y", version=99)                       # failure
    s.set_acl(p("s-0000000001"), [ACL(31, "world", "anyone"), ACL(1, "digest", "bob:x")])
    s.set_acl(p("nope"), [ACL(1, "world", "anyone")])             # failure
    s.auth("digest", b"alice:secret")
    s.delete(p("s-0000000001"))
    s.delete(p("nope"))                                        # failure
    s.multi(m_create(p("m")), m_create(p("ms-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
            m_set_data(p("m"), b"1"), m_check(p("m"), 1), m_delete(p("m")))
    s.multi(m_create(p("m2")), m_delete(p("nope")))            # failure
    s.sync(d.root)                                             # not audited
    s.get_data(d.root)                                         # not audited
    other = d.session()
    other.create(p("e2"), flags=CreateMode.EPHEMERAL)
    other.create(p("e3"), flags=CreateMode.EPHEMERAL)
    other.close_session(unordered=True)
    for name in ("e", "c", "ms-0000000004"):
        s.delete(p(name))


def _normalise(lines, sessions):
    """Session ids by name; the user list as a set (its order is Java hash
    order in ZooKeeper); ephemeral deletions of one close as a set (HashSet
    order)."""
    out = []
    for line in lines:
        fields = line.split("\t")
        norm = []
        for f in fields:
            key, _, value = f.partition("=")
            if key == "session":   # the cleanup's own session has no name
                value = sessions.setdefault(int(value, 16), f"other{len(sessions)}")
            elif key == "user":
                value = ",".join(sorted(value.split(",")))
            norm.append(f"{key}={value}")
        out.append("\t".join(norm))
    groups = []
    for line in out:
        if "ephemeralZNodeDeletion" in line and groups and isinstance(groups[-1], set):
            groups[-1].add(line)
        elif "ephemeralZNodeDeletion" in line:
            groups.append({line})
        else:
            groups.append(line)
    return groups


def test_audit_lines_are_zookeepers():
    handler = _Lines()
    logger = logging.getLogger("zkpy.audit")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with server_pair({"audit.enable": "true"}) as (apache, zkpy):
            with Differential(apache, zkpy) as d:
                s = d.session()
                d.make_root(s)
                _audit_scenario(d)
                sessions = {server: {sess.session_ids[server]: sess.name for sess in d.sessions}
                            for server in ("apache", "zkpy")}
            time.sleep(0.5)   # the Differential's cleanup, audited on both
            zk_lines = [line.split(" - ", 1)[1] for line in
                        apache.log_path.read_text().splitlines()
                        if "audit.Slf4jAuditLogger" in line]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    # serverStart comes from zkpy-server's main (an in-process server has none)
    zk_lines = [line for line in zk_lines if "serverStart" not in line]
    assert _normalise(handler.lines, sessions["zkpy"]) == \
        _normalise(zk_lines, sessions["apache"])
