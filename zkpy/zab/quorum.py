"""Who votes: the participants and observers of an ensemble, and what makes a
quorum (a strict majority of the participants)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QuorumConfig:
    voters: frozenset
    observers: frozenset = field(default_factory=frozenset)

    @classmethod
    def of(cls, voters, observers=()):
        return cls(frozenset(voters), frozenset(observers))

    @property
    def members(self) -> frozenset:
        return self.voters | self.observers

    def is_quorum(self, ids) -> bool:
        return len(self.voters.intersection(ids)) * 2 > len(self.voters)

    def size(self) -> int:
        return len(self.voters)


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter
