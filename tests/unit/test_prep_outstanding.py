"""Prep's outstanding changes: what a path will look like once the txns
prepped but not yet applied are applied, and when prep may forget them."""

import pytest

from zkpy.datatree.tree import DataTree
from zkpy.datatree.txn import Txn
from zkpy.protocol.errors import Err, KeeperError
from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import OPEN_ACL_UNSAFE, CreateRequest, SetDataRequest
from zkpy.server.prep import Prep

SID = 0x1234


def prep_and_commit(prep, zxid, op, record):
    overlay = {}
    body = prep.prep_op(op, record, SID, (), overlay)
    prep.commit_overlay(overlay, zxid)
    return Txn(SID, zxid, zxid, 0, op, body)


def test_a_change_survives_the_apply_of_an_earlier_txn_on_the_same_path():
    tree = DataTree()
    prep = Prep(tree)
    t1 = prep_and_commit(prep, 1, Op.CREATE, CreateRequest("/a", b"", list(OPEN_ACL_UNSAFE), 0))
    t2 = prep_and_commit(prep, 2, Op.SET_DATA, SetDataRequest("/a", b"x", 0))
    tree.apply(t1)
    prep.applied(1)
    # txn 2 is not applied: the version it set (1) must still be what prep sees.
    assert prep.outstanding["/a"][0] == 2
    prep_and_commit(prep, 3, Op.SET_DATA, SetDataRequest("/a", b"y", 1))
    with pytest.raises(KeeperError) as e:
        prep.prep_op(Op.SET_DATA, SetDataRequest("/a", b"z", 1), SID, (), {})
    assert e.value.code == Err.BAD_VERSION
    tree.apply(t2)
    prep.applied(2)
    assert prep.outstanding["/a"][0] == 3


def test_every_change_is_forgotten_once_its_txn_is_applied():
    tree = DataTree()
    prep = Prep(tree)
    txns = [prep_and_commit(prep, 1, Op.CREATE, CreateRequest("/a", b"", list(OPEN_ACL_UNSAFE), 0))]
    for z in range(2, 6):
        txns.append(prep_and_commit(prep, z, Op.SET_DATA, SetDataRequest("/a", b"", z - 2)))
    for t in txns:
        tree.apply(t)
    prep.applied(3)
    assert set(prep.outstanding) == {"/a"}
    prep.applied(5)
    assert prep.outstanding == {}
    assert not prep.changes
    # With nothing outstanding prep reads the tree: version 4 now.
    prep_and_commit(prep, 6, Op.SET_DATA, SetDataRequest("/a", b"", 4))


def test_reset_forgets_everything():
    prep = Prep(DataTree())
    prep_and_commit(prep, 1, Op.CREATE, CreateRequest("/a", b"", list(OPEN_ACL_UNSAFE), 0))
    prep.reset()
    assert prep.outstanding == {} and not prep.changes
    with pytest.raises(KeeperError) as e:
        prep.prep_op(Op.SET_DATA, SetDataRequest("/a", b"", -1), SID, (), {})
    assert e.value.code == Err.NO_NODE
