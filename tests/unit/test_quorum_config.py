"""ZooKeeper's two quorum rules (zkpy/zab/quorum.py): a majority of the
participants, and hierarchical quorums (group.N / weight.N) as
QuorumHierarchical decides them."""

from zkpy.zab.quorum import QuorumConfig


def test_majority():
    q = QuorumConfig.of([1, 2, 3, 4, 5], [6])
    assert q.is_quorum({1, 2, 3}) and not q.is_quorum({1, 2})
    assert not q.is_quorum({1, 2, 6})            # observers never count


def test_hierarchical_needs_a_majority_of_groups_each_by_weight():
    # Three groups of three: two groups with two members each is a quorum.
    q = QuorumConfig.of(range(1, 10), (),
                        groups={1: (1, 2, 3), 2: (4, 5, 6), 3: (7, 8, 9)})
    assert q.is_quorum({1, 2, 4, 5})
    assert not q.is_quorum({1, 2, 4})             # one group only
    assert not q.is_quorum({1, 4, 7})             # no group by majority
    assert q.is_quorum({1, 2, 3, 7, 8, 9})


def test_weights_and_integer_halves():
    q = QuorumConfig.of([1, 2, 3], (), groups={1: (1, 2, 3)}, weights={1: 3})
    assert q.is_quorum({1})                       # 3 > 5 // 2
    assert not q.is_quorum({2, 3})                # 2 > 2 is false
    # Two groups: more than 2 // 2 = 1 group is both of them.
    q2 = QuorumConfig.of([1, 2, 3, 4], (), groups={1: (1, 2), 2: (3, 4)})
    assert not q2.is_quorum({1, 2})
    assert q2.is_quorum({1, 2, 3, 4})


def test_zero_weight_groups_do_not_count():
    q = QuorumConfig.of([1, 2, 3, 4], (), groups={1: (1, 2, 3), 2: (4,)}, weights={4: 0})
    assert q.is_quorum({1, 2})          # the only group that counts, by majority
    assert not q.is_quorum({4})
    assert not q.is_quorum(set())
