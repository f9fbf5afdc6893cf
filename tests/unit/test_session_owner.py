"""Session owners, as an ensemble's leader keeps them (SessionTrackerImpl's
checkSession / setOwner), and where prep checks them, without a network:
the tracker, Prep's order of checks, and ZooKeeperServer turning a write on a
moved session into an error txn whose "reply" closes the connection."""

import pytest

from zkpy.datatree.tree import DataTree
from zkpy.protocol.errors import Err, KeeperError
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import (
    ACL, CheckVersionRequest, CreateRequest, DeleteRequest, MultiRequest, PathRequest,
    SetDataRequest,
)
from zkpy.server import replies
from zkpy.server.config import ServerConfig
from zkpy.server.prep import Prep
from zkpy.server.request import Request
from zkpy.server.zkserver import ZooKeeperServer
from zkpy.session.tracker import SessionTracker

WORLD = [ACL(31, "world", "anyone")]
SID = 0x0100_0000_0000_0001


# --- the tracker ---------------------------------------------------------------------------

def tracker_with_session():
    t = SessionTracker(1, 2000, 0, 0)
    t.add(SID, 6000, 0)
    return t


def test_first_owner_claims_an_unowned_session():
    t = tracker_with_session()
    assert t.check_owner(SID, 2)
    assert t.check_owner(SID, 2)
    assert not t.check_owner(SID, 3)


def test_set_owner_moves_the_session():
    t = tracker_with_session()
    t.set_owner(SID, 2)
    assert not t.check_owner(SID, 1)
    t.set_owner(SID, 1)
    assert t.check_owner(SID, 1)
    assert not t.check_owner(SID, 2)


def test_unknown_sessions_are_left_to_the_validity_check():
    t = SessionTracker(1, 2000, 0, 0)
    assert t.check_owner(SID, 2)
    t.set_owner(SID, 2)          # no such session: nothing to set
    assert SID not in t.sessions


# --- prep's order of checks ---------------------------------------------------------------

def moved(ephemeral=False):
    raise KeeperError(Err.SESSION_MOVED)


def prep_with_node():
    tree = DataTree()
    prep = Prep(tree)
    overlay = {}
    body = prep.prep_op(Op.CREATE, CreateRequest("/a", b"", WORLD, 0), SID, (), overlay)
    prep.commit_overlay(overlay, 1)
    return prep, body


def code_of(fn) -> int:
    with pytest.raises(KeeperError) as e:
        fn()
    return e.value.code


@pytest.mark.parametrize("op,record", [
    (Op.DELETE, DeleteRequest("/missing/x", -1)),
    (Op.DELETE, DeleteRequest("bad path", -1)),
    (Op.SET_DATA, SetDataRequest("/missing", b"", -1)),
    (Op.CHECK, CheckVersionRequest("/missing", 3)),
])
def test_the_owner_is_checked_before_anything_else_for_most_ops(op, record):
    prep, _ = prep_with_node()
    assert code_of(lambda: prep.prep_op(op, record, SID, (), {}, moved)) == Err.SESSION_MOVED


def test_a_create_checks_its_mode_and_ttl_first_then_the_owner():
    prep, _ = prep_with_node()
    bad_flags = CreateRequest("/b", b"", WORLD, 9)
    assert code_of(lambda: prep.prep_op(Op.CREATE, bad_flags, SID, (), {}, moved)) == \
        Err.BAD_ARGUMENTS
    ttl_without_ttl_mode = CreateRequest("/b", b"", WORLD, 0, 1000)
    assert code_of(lambda: prep.prep_op(Op.CREATE_TTL, ttl_without_ttl_mode, SID, (), {},
                                        moved)) == Err.BAD_ARGUMENTS
    missing_parent = CreateRequest("/missing/b", b"", WORLD, 0)
    assert code_of(lambda: prep.prep_op(Op.CREATE, missing_parent, SID, (), {}, moved)) == \
        Err.SESSION_MOVED


def test_delete_container_is_never_checked():
    prep, _ = prep_with_node()
    # The server's own request: the node is no container, and that is the error.
    assert code_of(lambda: prep.prep_op(Op.DELETE_CONTAINER, PathRequest("/a"), 0, (), {},
                                        moved)) == Err.BAD_VERSION


def test_a_multi_fails_on_its_first_op_with_session_moved():
    prep, _ = prep_with_node()
    ops = [(Op.SET_DATA, SetDataRequest("/a", b"x", -1)), (Op.DELETE, DeleteRequest("/a", -1))]
    (body,), overlay = prep.prep_multi(ops, SID, (), moved)
    assert body == [(Op.ERROR, (Err.SESSION_MOVED,)), (Op.ERROR, (Err.RUNTIME_INCONSISTENCY,))]
    assert overlay == {}


# --- the server: an error txn, then the connection closed ----------------------------------

class FakeConn:
    """What ZooKeeperServer needs of a connection."""

    def __init__(self, sid):
        self.session_id = sid
        self.auth_ids = []
        self.applied = []

    def txn_applied(self, req, txn, result):
        self.applied.append((txn, self.server.write_reply(req, txn, result)))


def server_with_owned_session(owner):
    server = ZooKeeperServer(ServerConfig(data_dir="/nonexistent"))
    server.sessions.add(SID, 6000, 0)
    server.sessions.set_owner(SID, owner)
    conn = FakeConn(SID)
    conn.server = server
    return server, conn


def submit(server, conn, op, record, owner, xid=1):
    req = Request(conn, xid, op, record, 0)
    server.prep_and_log(req, owner=owner)
    return conn.applied[-1]


def test_a_write_through_another_owner_is_an_error_txn_and_closes_the_connection():
    server, conn = server_with_owned_session(owner=2)
    zxid = server.tree.last_zxid
    txn, reply = submit(server, conn, Op.CREATE, CreateRequest("/x", b"", WORLD, 0), owner=3)
    assert (txn.type, txn.body) == (Op.ERROR, (Err.SESSION_MOVED,))
    assert txn.zxid == zxid + 1                  # it uses up a zxid
    assert reply is replies.CLOSE
    assert "/x" not in server.tree.nodes


def test_a_multi_through_another_owner_closes_the_connection():
    server, conn = server_with_owned_session(owner=2)
    txn, reply = submit(server, conn, Op.MULTI,
                        MultiRequest([(Op.CREATE, CreateRequest("/x", b"", WORLD, 0))]), owner=3)
    assert txn.type == Op.MULTI
    assert reply is replies.CLOSE


def test_the_owner_writes_as_usual_and_an_unowned_session_is_claimed():
    server, conn = server_with_owned_session(owner=2)
    txn, reply = submit(server, conn, Op.CREATE, CreateRequest("/x", b"", WORLD, 0), owner=2)
    assert txn.type == Op.CREATE and reply is not replies.CLOSE
    server.sessions.set_owner(SID, None)
    txn, reply = submit(server, conn, Op.CREATE, CreateRequest("/y", b"", WORLD, 0), owner=3)
    assert txn.type == Op.CREATE
    assert server.sessions.sessions[SID].owner == 3


def test_close_session_is_not_checked():
    server, conn = server_with_owned_session(owner=2)
    txn, reply = submit(server, conn, Op.CLOSE_SESSION, None, owner=3)
    assert txn.type == Op.CLOSE_SESSION
    assert reply is not replies.CLOSE
    assert SID not in server.sessions.sessions


def test_a_standalone_server_has_no_owners():
    server, conn = server_with_owned_session(owner=2)
    txn, _ = submit(server, conn, Op.CREATE, CreateRequest("/x", b"", WORLD, 0), owner=None)
    assert txn.type == Op.CREATE


def test_a_malformed_set_data_on_a_moved_session_is_moved_first():
    """ZooKeeper checks the owner before it decodes a delete, setData or
    setACL; a create or a multi it decodes first."""
    from zkpy.protocol.errors import MarshallingError
    server, conn = server_with_owned_session(owner=2)
    for op, expected in ((Op.SET_DATA, Err.SESSION_MOVED), (Op.CREATE, Err.MARSHALLING_ERROR)):
        req = Request(conn, 1, op, None, 0, MarshallingError())
        server.prep_and_log(req, owner=3)
        txn, _ = conn.applied[-1]
        assert (txn.type, txn.body) == (Op.ERROR, (expected,))
