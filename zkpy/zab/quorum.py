"""Who votes and what makes a quorum: the participants and observers of an
ensemble, and ZooKeeper's two quorum rules.

  * Majority (QuorumMaj): more than half of the participants.
  * Hierarchical (QuorumHierarchical, `group.N` and `weight.N` in zoo.cfg):
    participants fall in groups and carry weights (1 unless given; 0 for a
    participant that votes but never counts); a set is a quorum when, in
    more than half of the groups of non-zero weight, its members weigh more
    than half of the group's weight.  Integer halves, as Java divides."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QuorumConfig:
    voters: frozenset
    observers: frozenset = field(default_factory=frozenset)
    # Hierarchical quorums: ((group id, frozenset of its participants), ...)
    # and ((participant id, weight), ...); empty for a majority.
    groups: tuple = ()
    weights: tuple = ()
    # The configuration's version: the zxid of the reconfig that made it
    # (0 for a configuration from a static zoo.cfg).
    version: int = 0

    @classmethod
    def of(cls, voters, observers=(), groups=None, weights=None, version=0):
        """groups: {gid: ids} (hierarchical quorums when given); weights: {sid: w}."""
        if not groups:
            return cls(frozenset(voters), frozenset(observers), version=version)
        return cls(frozenset(voters), frozenset(observers),
                   tuple(sorted((gid, frozenset(ids)) for gid, ids in groups.items())),
                   tuple(sorted((weights or {}).items())), version)

    @property
    def members(self) -> frozenset:
        return self.voters | self.observers

    @property
    def hierarchical(self) -> bool:
        return bool(self.groups)

    def is_quorum(self, ids) -> bool:
        if not self.groups:
            return len(self.voters.intersection(ids)) * 2 > len(self.voters)
        return self._hierarchical_quorum(ids)

    def weight(self, sid) -> int:
        for s, w in self.weights:
            if s == sid:
                return w
        return 1

    def _hierarchical_quorum(self, ids) -> bool:
        ids = set(ids)
        counted = 0        # groups of non-zero weight (QuorumHierarchical.numGroups)
        majorities = 0
        for _, members in self.groups:
            total = sum(self.weight(s) for s in members)
            if total == 0:
                continue
            counted += 1
            if sum(self.weight(s) for s in members if s in ids) > total // 2:
                majorities += 1
        return bool(ids) and majorities > counted // 2

    def size(self) -> int:
        return len(self.voters)


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter
