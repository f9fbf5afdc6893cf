"""The WGL checker on small register histories, good and bad, and against a
brute-force checker on random small histories."""

import itertools
import random

import pytest

from .linearizability import (Operation, Undecided, by_key, check, cut,
                              minimal_failing_prefix, register)


def W(inv, comp, v):
    return Operation(inv, comp, ("w", v), None)


def R(inv, comp, v):
    return Operation(inv, comp, ("r", None), v)


# --- histories that are linearizable -------------------------------------------------

def test_empty_and_sequential():
    assert check([]).ok
    h = [W(0, 1, 1), R(2, 3, 1), W(4, 5, 2), R(6, 7, 2)]
    res = check(h)
    assert res.ok and res.order == [0, 1, 2, 3]


def test_initial_value():
    assert check([R(0, 1, None)]).ok
    assert check([R(0, 1, 0)], register(0)).ok
    assert not check([R(0, 1, 0)]).ok


def test_concurrent_write_may_be_seen_or_not():
    # The read overlaps the write: either value is fine.
    assert check([W(0, 10, 1), R(5, 6, 1)]).ok
    assert check([W(0, 10, 1), R(5, 6, None)]).ok


def test_concurrent_writes_in_either_order():
    h = [W(0, 10, 1), W(1, 11, 2), R(12, 13, 1)]
    assert check(h).ok
    h = [W(0, 10, 1), W(1, 11, 2), R(12, 13, 2)]
    assert check(h).ok


def test_unknown_write_may_take_effect_late_or_never():
    # Its client lost the connection: seen long after, or never seen.
    assert check([W(0, None, 1), R(5, 6, None), R(100, 101, 1)]).ok
    assert check([W(0, None, 1), R(5, 6, None), R(100, 101, None)]).ok
    # ... but once seen it stays (no other write): a later read must see it.
    assert not check([W(0, None, 1), R(5, 6, 1), R(7, 8, None)]).ok


def test_touching_times_are_concurrent():
    # complete == invoke counts as overlapping.
    assert check([W(0, 5, 1), R(5, 6, None)]).ok
    assert not check([W(0, 5, 1), R(6, 7, None)]).ok


def test_reads_of_concurrent_writes_agree_on_one_order():
    # Two writes overlap; sequential reads during them see one order...
    h = [W(0, 10, 1), W(0, 10, 2), R(5, 6, 1), R(7, 8, 2)]
    assert check(h).ok   # order 1, 2
    # ... and once both are done, only the last of that order.
    assert not check(h + [R(11, 12, 1)]).ok


# --- histories that are not ----------------------------------------------------------

def test_stale_read_after_completed_write():
    assert not check([W(0, 1, 1), W(2, 3, 2), R(4, 5, 1)]).ok


def test_read_of_a_value_never_written():
    assert not check([W(0, 1, 1), R(2, 3, 7)]).ok


def test_read_before_the_write_was_invoked():
    assert not check([R(0, 1, 1), W(2, 3, 1)]).ok


def test_new_old_inversion():
    # Reader B sees the new value, then reader C, strictly later, sees the old.
    h = [W(0, 1, 1), W(2, 100, 2), R(10, 11, 2), R(20, 21, 1)]
    assert not check(h).ok


def test_two_readers_disagree_on_the_order_of_concurrent_writes():
    h = [W(0, 50, 1), W(0, 50, 2),
         R(51, 52, 1), R(53, 54, 2),     # says 1 before 2
         R(55, 56, 1)]                    # then back to 1: needs 2 before 1
    assert not check(h).ok


def test_unknown_write_cannot_be_seen_before_it_was_invoked():
    assert not check([R(0, 1, 5), W(2, None, 5)]).ok


def test_lost_update_shows_in_a_failing_prefix():
    h = [W(0, 1, 1), R(2, 3, 1), W(4, 5, 2), R(6, 7, 1), W(8, 9, 3), R(10, 11, 3)]
    assert not check(h).ok
    t, prefix = minimal_failing_prefix(h)
    assert t == 7
    assert not check(prefix).ok
    assert check(cut(h, 5)).ok


def test_minimal_prefix_of_a_good_history_is_none():
    assert minimal_failing_prefix([W(0, 1, 1), R(2, 3, 1)]) == (None, None)


def test_bad_times_rejected():
    with pytest.raises(ValueError):
        check([W(5, 1, 1)])


def test_budget():
    # Many overlapping writes and a read that matches none of them: the search
    # must try every order before it gives up; a tiny budget stops it.
    h = [W(0, 100, i) for i in range(12)] + [R(101, 102, 99)]
    with pytest.raises(Undecided):
        check(h, budget=50)
    assert not check(h).ok


def test_by_key():
    h = [W(0, 1, ("a", 1)), W(0, 1, ("b", 2))]
    parts = by_key(h, lambda op: op.input[1][0])
    assert sorted(parts) == ["a", "b"]


# --- against brute force --------------------------------------------------------------

def brute_force(history, init=None):
    """Try every order consistent with real time (unknown ops may be left
    out, which is the same as putting them last)."""
    n = len(history)
    known = [i for i in range(n) if history[i].complete is not None]
    unknown = [i for i in range(n) if history[i].complete is None]
    for k in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, k):
            idx = known + list(chosen)
            for perm in itertools.permutations(idx):
                ok = True
                for a in range(len(perm)):
                    for b in range(a + 1, len(perm)):
                        A, B = history[perm[a]], history[perm[b]]
                        # B placed after A: A must not start after B ended.
                        if B.complete is not None and B.complete < A.invoke:
                            ok = False
                            break
                    if not ok:
                        break
                if not ok:
                    continue
                state = init
                for i in perm:
                    op = history[i]
                    if op.input[0] == "w":
                        state = op.input[1]
                    elif op.output != state:
                        ok = False
                        break
                if ok:
                    return True
    return False


def random_history(rng, n):
    h = []
    values = [None]
    for i in range(n):
        inv = rng.randint(0, 20)
        comp = inv + rng.randint(0, 8)
        if rng.random() < 0.5:
            v = i + 1
            values.append(v)
            h.append(W(inv, None if rng.random() < 0.2 else comp, v))
        else:
            h.append(R(inv, comp, None))
    # Reads return some value written (or the initial one), often a wrong one.
    return [op._replace(output=rng.choice(values)) if op.input[0] == "r" else op for op in h]


def test_agrees_with_brute_force():
    rng = random.Random(1)
    seen = {True: 0, False: 0}
    for _ in range(600):
        h = random_history(rng, rng.randint(1, 6))
        expect = brute_force(h)
        assert check(h).ok == expect, h
        seen[expect] += 1
    # Both kinds of history were tried.
    assert seen[True] > 50 and seen[False] > 50, seen
