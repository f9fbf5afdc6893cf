"""A small linearizability checker: Wing & Gong's search with Lowe's
memoisation (the algorithm Porcupine and Knossos' "wgl" use).

A history is a list of Operation(invoke, complete, input, output).  Times are
any comparable numbers; op A precedes op B in real time only when
A.complete < B.invoke (equal times count as concurrent).  complete=None means
the outcome is unknown (the client lost its connection): the op may have taken
effect at any moment after its invocation, or never.  Such an op is given an
infinite completion time, so the search may place it anywhere after its
invocation, including after every other op, which is the same as "never" for
what the others observed.

A model is (init, step): step(state, input, output) -> (ok, new_state), with
states hashable.  REGISTER is a read/write register whose inputs are
("w", value) and ("r", None) and whose read outputs are the value read.

Check one object at a time (linearizability is compositional): split a
history over several registers with by_key() first.

    check(history, REGISTER) -> Result(ok, explored, linearization | None)
    minimal_failing_prefix(history, REGISTER) -> the shortest failing prefix
"""

from collections import namedtuple

Operation = namedtuple("Operation", "invoke complete input output label", defaults=(None,))
Result = namedtuple("Result", "ok explored order")

INFINITY = float("inf")


class Undecided(Exception):
    """The search went past its budget without an answer."""


def _register_step(state, inp, out):
    if inp[0] == "w":
        return True, inp[1]
    return out == state, state


def register(init=None):
    return (init, _register_step)


REGISTER = register(None)


def check(history, model=REGISTER, budget=2_000_000) -> Result:
    """Is `history` linearizable for `model`?  On success, `order` is one
    linearization (indices into history)."""
    init, step = model
    ops = list(history)
    n = len(ops)
    if n == 0:
        return Result(True, 0, [])
    # Events: (time, 0 = call / 1 = return, op).  At equal times calls come
    # first, so ops that touch in time are concurrent (the lenient reading).
    events = []
    for i, op in enumerate(ops):
        comp = INFINITY if op.complete is None else op.complete
        if comp < op.invoke:
            raise ValueError(f"op {i} completes before it is invoked: {op}")
        events.append((op.invoke, 0, i))
        events.append((comp, 1, i))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # A doubly linked list of entries 1..2n between sentinels 0 and 2n+1.
    m = len(events)
    head, tail = 0, m + 1
    nxt = list(range(1, m + 2)) + [-1]
    prv = [-1] + list(range(0, m + 1))
    is_call = [False] * (m + 2)
    op_of = [-1] * (m + 2)
    match = [0] * (m + 2)
    call_entry = [0] * n
    for k, (_, kind, i) in enumerate(events, start=1):
        op_of[k] = i
        if kind == 0:
            is_call[k] = True
            call_entry[i] = k
        else:
            match[call_entry[i]] = k

    linearized = 0
    state = init
    stack = []          # (call entry, state before it)
    cache = set()
    explored = 0
    entry = nxt[head]
    while nxt[head] != tail:
        explored += 1
        if explored > budget:
            raise Undecided(f"no answer after {budget} search steps ({n} ops)")
        if is_call[entry]:
            i = op_of[entry]
            op = ops[i]
            ok, new_state = step(state, op.input, op.output)
            if ok:
                bits = linearized | (1 << i)
                key = (bits, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = bits
                    # lift the call and its return out of the list
                    r = match[entry]
                    prv[nxt[entry]] = prv[entry]
                    nxt[prv[entry]] = nxt[entry]
                    prv[nxt[r]] = prv[r]
                    nxt[prv[r]] = nxt[r]
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            # A return whose op is not linearized yet: undo the last choice.
            if not stack:
                return Result(False, explored, None)
            entry, state = stack.pop()
            linearized &= ~(1 << op_of[entry])
            r = match[entry]
            nxt[prv[r]] = r
            prv[nxt[r]] = r
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            entry = nxt[entry]
    return Result(True, explored, [op_of[e] for e, _ in stack])


def cut(history, t):
    """The history as an observer saw it at time t: ops invoked by t; those not
    complete by t become unknown writes, and unknown reads are left out (a
    read with no answer constrains nothing)."""
    out = []
    for op in history:
        if op.invoke > t:
            continue
        if op.complete is not None and op.complete <= t:
            out.append(op)
        elif op.input[0] != "r":
            out.append(op._replace(complete=None))
    return out


def minimal_failing_prefix(history, model=REGISTER, budget=2_000_000):
    """For a history that is not linearizable: the earliest time t at which
    cut(history, t) already fails, and that cut (linearizability is prefix
    closed, so a binary search over completion times finds it)."""
    times = sorted({op.complete for op in history if op.complete is not None})
    lo, hi = 0, len(times) - 1
    if hi < 0 or check(cut(history, times[hi]), model, budget).ok:
        return None, None
    while lo < hi:
        mid = (lo + hi) // 2
        if check(cut(history, times[mid]), model, budget).ok:
            lo = mid + 1
        else:
            hi = mid
    return times[lo], cut(history, times[lo])


def by_key(history, key):
    """Split a history into per-object histories: {key(op): [ops]}."""
    parts = {}
    for op in history:
        parts.setdefault(key(op), []).append(op)
    return parts
