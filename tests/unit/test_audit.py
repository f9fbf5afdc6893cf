"""The audit log's lines (AuditEvent / AuditHelper of ZooKeeper 3.8).  The
same requests are compared with Apache ZooKeeper's audit log in
tests/differential/test_operations.py."""

import logging

import pytest

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.opcodes import EventType, Op
from zkpy.protocol.records import ACL, CreateRequest, DeleteRequest, SetACLRequest
from zkpy.server.audit import AuditLog, acl_text, format_event, users
from zkpy.server.request import Request

SID = 0x1000A2F3C0000


class Conn:
    def __init__(self, auth_ids=(("ip", "10.1.2.3"),)):
        self.session_id = SID
        self.auth_ids = list(auth_ids)
        self.peer = ("10.1.2.3", 5555)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))


@pytest.fixture
def audit():
    handler = Lines()
    logger = logging.getLogger("test.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    a = AuditLog(server_user="zk", logger=logger)
    a.lines = handler.records
    yield a
    logger.removeHandler(handler)


def test_format_keeps_zookeepers_order_and_skips_missing_fields():
    assert format_event("success", user="root", operation="serverStart") == \
        "user=root\toperation=serverStart\tresult=success"
    assert format_event("failure", acl="x", znode="/a", operation="setAcl", ip="1.2.3.4",
                        user="u", session="0x1") == \
        "session=0x1\tuser=u\tip=1.2.3.4\toperation=setAcl\tznode=/a\tacl=x\tresult=failure"


def test_users():
    assert users([("ip", "127.0.0.1"), ("digest", "alice:abc="), ("super", "")]) == \
        "127.0.0.1,alice"
    assert users([("super", "")]) is None
    assert users([]) is None


def test_acl_text_has_no_separator():
    assert acl_text([ACL(31, "world", "anyone"), ACL(5, "digest", "bob:h=")]) == \
        "world:anyone:cdrwadigest:bob:h=:cr"


def test_server_start_and_stop(audit):
    audit.server_start()
    audit.server_start_failed()
    audit.server_stop()
    assert audit.lines == [
        ("INFO", "user=zk\toperation=serverStart\tresult=success"),
        ("ERROR", "user=zk\toperation=serverStart\tresult=failure"),
        ("INFO", "user=zk\toperation=serverStop\tresult=invoked"),
    ]


def request(op, record, auth_ids=(("ip", "10.1.2.3"),)):
    return Request(Conn(auth_ids), 7, op, record, 0)


def test_create_success_and_failure(audit):
    rec = CreateRequest("/a/s-", b"", [], 2)
    txn = Txn(SID, 7, 5, 0, Op.CREATE, ("/a/s-0000000001", b"", [], 0, 1))
    audit.applied(txn, ("/a/s-0000000001", None), [], request(Op.CREATE, rec))
    audit.applied(Txn(SID, 7, 6, 0, Op.ERROR, (-110,)), None, [], request(Op.CREATE, rec))
    assert audit.lines == [
        ("INFO", "session=0x1000a2f3c0000\tuser=10.1.2.3\tip=10.1.2.3\toperation=create\t"
                 "znode=/a/s-0000000001\tznode_type=persistent_sequential\tresult=success"),
        ("ERROR", "session=0x1000a2f3c0000\tuser=10.1.2.3\tip=10.1.2.3\toperation=create\t"
                  "znode=/a/s-\tznode_type=persistent_sequential\tresult=failure"),
    ]


def test_not_audited(audit):
    audit.applied(Txn(SID, 7, 5, 0, Op.CREATE_TTL, ("/t", b"", [], 1, 1)), ("/t", None), [],
                  request(Op.CREATE_TTL, CreateRequest("/t", b"", [], 5, 100)))
    audit.applied(Txn(SID, 0, 6, 0, Op.CREATE_SESSION, (3000,)), None, [],
                  request(Op.CREATE_SESSION, None))
    # no request: a forwarded write on the leader, the server's deleteContainer
    audit.applied(Txn(SID, 7, 7, 0, Op.DELETE, ("/x",)), None, [], None)
    # an invalid create mode: ZooKeeper's audit throws and logs no line
    audit.applied(Txn(SID, 7, 8, 0, Op.ERROR, (-8,)), None, [],
                  request(Op.CREATE, CreateRequest("/x", b"", [], 9)))
    assert audit.lines == []


def test_set_acl_and_delete(audit):
    acl = [ACL(1, "world", "anyone")]
    audit.applied(Txn(SID, 7, 5, 0, Op.SET_ACL, ("/a", acl, 1)), None, [],
                  request(Op.SET_ACL, SetACLRequest("/a", acl, -1),
                          [("ip", "10.1.2.3"), ("digest", "al:x")]))
    audit.applied(Txn(SID, 7, 6, 0, Op.DELETE, ("/a",)), None, [],
                  request(Op.DELETE, DeleteRequest("/a", -1)))
    assert [m for _, m in audit.lines] == [
        "session=0x1000a2f3c0000\tuser=10.1.2.3,al\tip=10.1.2.3\toperation=setAcl\t"
        "znode=/a\tacl=world:anyone:r\tresult=success",
        "session=0x1000a2f3c0000\tuser=10.1.2.3\tip=10.1.2.3\toperation=delete\tznode=/a\t"
        "result=success",
    ]


def test_ephemerals_deleted_by_a_close(audit):
    tree = DataTree()
    tree.apply(Txn(SID, 1, 1, 0, Op.CREATE, ("/e", b"", [(31, "world", "anyone")], SID, 1)))
    txn = Txn(SID, 2, 2, 0, Op.CLOSE_SESSION, (["/e"],))
    result, events = tree.apply(txn)
    assert (EventType.NODE_DELETED, "/e") in [(t, p) for t, p, _ in events]
    audit.applied(txn, result, events, None)
    assert audit.lines == [("INFO", "session=0x1000a2f3c0000\tuser=zk\t"
                                    "operation=ephemeralZNodeDeletionOnSessionCloseOrExpire\t"
                                    "znode=/e\tresult=success")]
