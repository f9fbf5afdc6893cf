"""enableEagerACLCheck with real processes, compared with Apache ZooKeeper
3.8: a 3-peer zkpy ensemble and a 3-peer Apache ZooKeeper ensemble with the
same keys and the same raw clients, on the leader and on a follower.

With the check on, a create, delete, setData or setACL the ACLs forbid (or
whose new ACL is invalid) is answered by the peer the client is on, NoAuth or
InvalidACL with zxid 0, and uses up no zxid; a write refused for another
reason (a missing parent) still goes to the leader and uses one up.  Without
it, every refusal does.  Observations are error codes, whether the reply's
zxid is 0 and how far the ensemble's zxid moved -- never absolute zxids."""

import pytest

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import ACL, OPEN_ACL_UNSAFE, CreateRequest, SetACLRequest, \
    SetDataRequest
from zkpy.rawclient import RawClient
from zkpy.testing.apache import ApacheCluster, require_apache
from zkpy.testing.ensemble import Cluster, running

LOCKED = (ACL(31, "digest", "someone:AAAAAAAAAAAAAAAAAAAAAAAAAAA="),)


def scenario(cluster) -> list:
    leader = cluster.wait_ready()
    follower = min(i for i in cluster.peers if i != leader)
    setup = RawClient("127.0.0.1", cluster.peers[leader].client_port)
    setup.connect()
    setup.request(Op.CREATE, CreateRequest("/locked", b"", LOCKED, 0))
    setup.request(Op.CREATE, CreateRequest("/open", b"", OPEN_ACL_UNSAFE, 0))
    cluster.wait_caught_up()
    seen = []
    for where, peer in (("leader", leader), ("follower", follower)):
        c = RawClient("127.0.0.1", cluster.peers[peer].client_port)
        c.connect()
        for name, op, rec in (
            ("setData", Op.SET_DATA, SetDataRequest("/locked", b"x", -1)),
            ("create under", Op.CREATE, CreateRequest("/locked/c", b"", OPEN_ACL_UNSAFE, 0)),
            ("setACL", Op.SET_ACL, SetACLRequest("/locked", OPEN_ACL_UNSAFE, -1)),
            ("empty ACL", Op.CREATE, CreateRequest("/open/e", b"", (), 0)),
            ("no parent", Op.CREATE, CreateRequest("/none/c", b"", OPEN_ACL_UNSAFE, 0)),
            ("allowed", Op.CREATE, CreateRequest(f"/open/{where}", b"", OPEN_ACL_UNSAFE, 0)),
        ):
            cluster.wait_caught_up()
            before = cluster.peers[leader].zxid()
            hdr, _ = c.request(op, rec)
            cluster.wait_caught_up()
            moved = cluster.peers[leader].zxid() - before
            seen.append((where, name, hdr.err, hdr.zxid == 0, moved))
        c.close()
    setup.close()
    return seen


@pytest.mark.parametrize("eager", [True, False])
def test_eager_acl_check_like_apache(eager):
    require_apache()
    keys = {"enableEagerACLCheck": "true" if eager else "false"}
    results = {}
    for kind in (ApacheCluster, Cluster):
        with running(kind(3, tick_time=300, init_limit=10, sync_limit=5, extra=keys)) as c:
            results[kind.__name__] = scenario(c)
    assert results["Cluster"] == results["ApacheCluster"]
    refused_here = [(w, n) for w, n, err, zero, moved in results["Cluster"] if zero]
    if eager:
        assert refused_here == [(w, n) for w in ("leader", "follower")
                                for n in ("setData", "create under", "setACL", "empty ACL")]
    else:
        assert refused_here == []
