"""The ensemble's membership as clients and operators see it: the data and
Stat of /zookeeper/config, and conf's membership part, side by side with an
Apache ZooKeeper 3.8 ensemble of the same shape (majority and hierarchical
quorums, with an observer)."""

import re

import pytest

from zkpy.protocol.opcodes import Op
from zkpy.protocol.records import PathWatchRequest
from zkpy.rawclient import RawClient
from zkpy.testing.apache import ApacheCluster, require_apache
from zkpy.testing.ensemble import Cluster, running

SHAPES = {
    "majority": dict(n=3),
    "observer": dict(n=4, observers=1),
    "hierarchical": dict(n=3, extra={"group.1": "1:2", "group.2": "3", "weight.1": "2"}),
}


def config_node(cluster, peer):
    c = RawClient(cluster.host(peer))
    try:
        c.connect()
        hdr, (data, stat) = c.request(Op.GET_DATA, PathWatchRequest("/zookeeper/config", False))
        return data.decode(), stat
    finally:
        c.close()


def shape(text: str) -> str:
    return re.sub(r":\d+", ":PORT", text)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def both(request):
    require_apache()
    kw = dict(SHAPES[request.param])
    n = kw.pop("n")
    with running(Cluster(n, **kw)) as ours, running(ApacheCluster(n, **kw)) as theirs:
        yield ours, theirs


def test_zookeeper_config_holds_the_membership(both):
    ours, theirs = both
    for peer in ours.peers:
        mine, stat = config_node(ours, peer)
        reference, ref_stat = config_node(theirs, peer)
        assert shape(mine) == shape(reference)
        assert (stat.czxid, stat.mzxid, stat.version, stat.aversion, stat.ctime) == \
            (ref_stat.czxid, ref_stat.mzxid, ref_stat.version, ref_stat.aversion,
             ref_stat.ctime)
        assert stat.mtime > 0 and stat.dataLength == len(mine.encode())


def test_conf_ends_with_the_membership(both):
    ours, theirs = both
    mine = ours.peers[1].four_letter("conf")
    reference = theirs.peers[1].four_letter("conf")
    tail = lambda text: shape(text[text.index("membership: "):])   # noqa: E731
    assert tail(mine) == tail(reference)
