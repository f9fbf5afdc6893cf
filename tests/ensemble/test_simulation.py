"""The ensemble simulation over many seeds.  ZKPY_SIM_SEEDS widens the run
(e.g. ZKPY_SIM_SEEDS=5000); a failure prints the seed and the trace to replay:
    Simulation(seed).run(steps).settle()"""

import os

import pytest

from .sim import Simulation

SEEDS = int(os.environ.get("ZKPY_SIM_SEEDS", "2000"))
STEPS = int(os.environ.get("ZKPY_SIM_STEPS", "2500"))


@pytest.mark.parametrize("chunk", range(10))
def test_three_peers(chunk):
    for seed in range(chunk, SEEDS, 10):
        sim = Simulation(seed).run(STEPS).settle()
        assert sim.G, f"seed {seed}: nothing was ever committed"


@pytest.mark.parametrize("chunk", range(4))
def test_five_peers_and_an_observer(chunk):
    for seed in range(10_000 + chunk, 10_000 + SEEDS // 3, 4):
        Simulation(seed, n=5, observers=1).run(STEPS).settle()


def test_no_faults_commits_everything_and_converges():
    sim = Simulation(7, faults=False).run(3000).settle()
    applied = {n.id: n.prev_applied for n in sim.nodes.values()}
    assert set(applied.values()) == {sim.G[-1].zxid}, applied
    assert sim.proposed == len(sim.G)


def test_invariant_checker_catches_a_lost_commit():
    """The checker itself must fail when a committed txn disappears."""
    sim = Simulation(3, faults=False).run(1500)
    leader = next(n for n in sim.nodes.values() if n.peer.role == "LEADING")
    victim = sim.G[-1]
    # Forge a leader that commits a txn after skipping the last committed one.
    from zkpy.datatree.txn import Txn
    forged = Txn(1, 0, victim.zxid + 1000, 0, victim.type, victim.body)
    leader.prev_applied = sim.G[-2].zxid
    with pytest.raises(AssertionError, match="committed txn was lost"):
        sim.check_apply(leader, forged)
