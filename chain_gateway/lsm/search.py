"""Primal heuristics for the grouped model: cycle augmentation, exchanges, HiGHS-driven LNS.

Why they exist: in a real gridlock every queued payment is larger than its debtor's
balance, so a feasible subset must nearly balance at every participant (a
subset-sum at each row). LP rounding and removal heuristics unravel to almost
nothing there, and on 1,000-payment random gridlocks HiGHS alone spends its whole
10 s at the root without an incumbent. These supply one:

* ``augment`` adds walks that keep every participant covered: a payment whose
  debtor can afford it, or a cycle through the unused payments found by breadth-
  first search on the line graph (a step e -> f through node v is allowed when
  v's slack + a_e - a_f >= 0; the cycle closes when it can pay its first payment).
  Every walk is re-checked exactly before it is applied, so revisited nodes are
  safe.
* ``exchange`` applies value-increasing walks in the residual graph: each step adds
  an unused payment or drops a used one, so a walk can swap a small cycle for a
  larger one across the whole graph (what neither ``augment`` nor the small LNS
  neighbourhoods can do). A layered dynamic programme finds them with numpy.
* ``improve`` is a large-neighbourhood search: free the payments touching a few random
  participants, or, every other round, those between a larger random set of
  participants (internal cycles), fix the rest at the incumbent, let HiGHS solve
  that small MIP (warm-started, node-limited), keep it if better and look for
  exchanges from it. Each kind's neighbourhood grows while sub-MIPs solve to
  optimality quickly and shrinks when they do not.

All work in the model's scaled integer units; all only ever move between
feasible points. The random stream is seeded, so a run is reproducible up to the
point where the time limit cuts it off.
"""
from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections import deque

import numpy as np
from numpy.typing import NDArray

from chain_gateway.lsm.milp import ArrayModel, FloatArray, run_mip
from chain_gateway.lsm.model import LsmError

SUB_MIP_SECONDS = 0.02
"""Neighbourhoods are sized so a sub-MIP takes about this long: many small solves
beat a few large ones on these instances (measured on the Ubin-style gridlocks)."""
EXCHANGE_SECONDS = 0.2
"""Cap on one ``exchange`` pass after an LNS improvement (usually a few milliseconds)."""
WALKS_PER_PASS = 64
"""Closing walks tried per DP pass (each re-checked against the state the earlier
ones left), so one pass can apply several disjoint exchanges."""
EXCHANGE_BATCHES = 8
"""When the all-starts pass of ``exchange`` finds nothing, starts are retried in this
many batches: the DP keeps one best label per arc, so one start's walk can hide
another's."""


def augment(model: ArrayModel, x: FloatArray, deadline: float) -> FloatArray:
    """Extend the feasible point ``x`` by affordable payments and feasible cycles."""
    heads = model.index[0::2].tolist()
    tails = model.index[1::2].tolist()
    amount = [int(a) for a in model.cost.tolist()]
    cap = [int(u) for u in model.col_upper.tolist()]
    count = [int(v) for v in x.tolist()]
    slack = [int(s) for s in (model.activity(x) - model.row_lower).tolist()]
    order = sorted(range(model.num_col), key=lambda k: (-amount[k], k))
    out: list[list[int]] = [[] for _ in range(model.num_row)]
    for k in order:
        out[tails[k]].append(k)
    # Outgoing groups are sorted by amount, largest first, so the ones a node can
    # afford after receiving a_k form a suffix: found by bisection on -amount.
    out_key = [[-amount[f] for f in groups] for groups in out]

    def apply(walk: list[int]) -> bool:
        delta: dict[int, int] = {}
        use: dict[int, int] = {}
        for k in walk:
            delta[tails[k]] = delta.get(tails[k], 0) - amount[k]
            delta[heads[k]] = delta.get(heads[k], 0) + amount[k]
            use[k] = use.get(k, 0) + 1
        if any(count[k] + n > cap[k] for k, n in use.items()):
            return False
        if any(slack[v] + d < 0 for v, d in delta.items()):
            return False
        for v, d in delta.items():
            slack[v] += d
        for k, n in use.items():
            count[k] += n
        return True

    def cycle_from(first: int) -> list[int] | None:
        start = tails[first]
        previous: dict[int, int] = {first: -1}
        frontier = deque([first])
        pops = 0
        while frontier:
            pops += 1
            if pops % 1024 == 0 and time.perf_counter() >= deadline:
                return None  # a search on a dense line graph must not overrun the budget
            k = frontier.popleft()
            node = heads[k]
            if node == start:
                if slack[start] + amount[k] - amount[first] >= 0:
                    walk = []
                    while k != -1:
                        walk.append(k)
                        k = previous[k]
                    return walk
                continue
            candidates = out[node]
            for f in candidates[bisect_left(out_key[node], -(slack[node] + amount[k])) :]:
                if f not in previous and count[f] < cap[f]:
                    previous[f] = k
                    frontier.append(f)
        return None

    progress = True
    while progress and time.perf_counter() < deadline:
        progress = False
        for k in order:
            while count[k] < cap[k] and time.perf_counter() < deadline:
                if slack[tails[k]] >= amount[k]:
                    added = apply([k])
                else:
                    walk = cycle_from(k)
                    added = walk is not None and apply(walk)
                if not added:
                    break
                progress = True
    return np.array(count, dtype=np.float64)


def improve(
    model: ArrayModel,
    x: FloatArray,
    deadline: float,
    *,
    seed: int = 0,
    max_rounds: int | None = None,
    sub_mip_seconds: float = SUB_MIP_SECONDS,
) -> FloatArray:
    """Large-neighbourhood search from the feasible point ``x`` until ``deadline``.

    Neighbourhoods are sized so a sub-MIP takes about ``sub_mip_seconds``; a caller
    whose search has stalled passes more to reach moves the small ones cannot."""
    rng = random.Random(seed)
    incident: list[list[int]] = [[] for _ in range(model.num_row)]
    for k, (head, tail) in enumerate(model.index.reshape(-1, 2).tolist()):
        incident[head].append(k)
        incident[tail].append(k)
    rows = [r for r in range(model.num_row) if incident[r]]
    heads, tails = model.index[0::2], model.index[1::2]
    first = min(40.0 * max(1.0, sub_mip_seconds / SUB_MIP_SECONDS) ** 0.5, float(model.num_col))
    targets = [first, first]
    best = x.copy()
    best_value = float(model.cost @ best)
    rounds = 0
    while time.perf_counter() < deadline - 0.02 and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        kind = rounds % 2
        target = targets[kind]
        free = np.zeros(model.num_col, dtype=bool)
        chosen = np.zeros(model.num_row, dtype=bool)
        for row in rng.sample(rows, len(rows)):
            if kind == 0:
                free[incident[row]] = True
            else:
                chosen[row] = True
                free = chosen[heads] & chosen[tails]
            if free.sum() >= target:
                break
        if not free.any():
            continue
        sub = model.restricted(free, best)
        started = time.perf_counter()
        try:
            outcome = run_mip(sub, best[free], min(1.0, deadline - started), max_nodes=200)
        except LsmError:
            continue  # HiGHS refused this neighbourhood (rare): try the next one
        elapsed = time.perf_counter() - started
        if outcome.x is not None:
            value = best_value - float(model.cost[free] @ best[free]) + float(sub.cost @ outcome.x)
            if value > best_value + 0.5:
                candidate = best.copy()
                candidate[free] = outcome.x
                if model.is_feasible(candidate):
                    # An LNS step often opens a long exchange elsewhere: cheap to look.
                    best = exchange(model, candidate, min(deadline, time.perf_counter() + EXCHANGE_SECONDS))
                    best_value = float(model.cost @ best)
        if outcome.optimal and elapsed < sub_mip_seconds:
            targets[kind] = min(target * 1.1, float(model.num_col))
        elif not outcome.optimal or elapsed > 2 * sub_mip_seconds:
            targets[kind] = max(20.0, target * 0.8)
        if outcome.optimal and bool(free.all()):
            break  # the whole model was just solved to optimality: nothing left to search
    return best


_NONE = np.iinfo(np.int64).min // 4
"""Label of an arc no walk reaches yet (far below any real gain, safe to add to)."""


def _segment_ends(keys: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64],
                  limit: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each query q, the end of the prefix of keys[lo[q]:hi[q]] (sorted) that is <= limit[q]."""
    ends = np.empty(lo.size, dtype=np.int64)
    for q in range(lo.size):
        ends[q] = lo[q] + int(np.searchsorted(keys[lo[q] : hi[q]], limit[q], side="right"))
    return ends


def exchange(model: ArrayModel, x: FloatArray, deadline: float, *, max_len: int = 16) -> FloatArray:
    """Apply value-increasing exchanges (add unused, drop used payments) until none is found.

    The residual graph has an arc for each possible one-unit change: adding a payment
    moves its amount from debtor to creditor, dropping one moves it back. A walk of
    such arcs keeps every participant covered when each step e -> f through node v
    satisfies slack_v + money_e - money_f >= 0 and the walk either starts where the
    first step is affordable (an open path: its end only receives money) or returns
    to its start covering the first step (a cycle). A layered dynamic programme over
    walks of up to ``max_len`` arcs keeps, per arc, the best gain so far (value added
    minus value dropped); a walk with positive gain that closes is re-checked exactly
    (nodes or payments met twice) and applied. Moves here can cross the whole graph,
    which the LNS's small neighbourhoods cannot. Deterministic; feasible in, feasible out.
    """
    heads = model.index[0::2].astype(np.int64)
    tails = model.index[1::2].astype(np.int64)
    amount = np.rint(model.cost).astype(np.int64)
    cap = np.rint(model.col_upper).astype(np.int64)
    count = np.rint(x).astype(np.int64)
    num_row = model.num_row
    slack = np.rint(model.activity(x) - model.row_lower).astype(np.int64)
    while time.perf_counter() < deadline:
        addable, droppable = np.flatnonzero(count < cap), np.flatnonzero(count > 0)
        col = np.concatenate([addable, droppable])
        sign = np.concatenate([np.ones(addable.size, np.int64), -np.ones(droppable.size, np.int64)])
        source = np.where(sign > 0, tails[col], heads[col])  # the node that pays
        target = np.where(sign > 0, heads[col], tails[col])  # the node that receives
        money = amount[col]
        gain = sign * money
        arcs = col.size
        # Pairs (e, f) with f leaving e's target and affordable there after e.
        order = np.lexsort((money, source))
        money_sorted = money[order]
        starts = np.searchsorted(source[order], np.arange(num_row + 1))
        lo = starts[target]
        hi = _segment_ends(money_sorted, lo, starts[target + 1], slack[target] + money)
        width = hi - lo
        pair_e = np.repeat(np.arange(arcs), width)
        offset = np.arange(pair_e.size) - np.repeat(np.cumsum(width) - width, width)
        pair_f = order[np.repeat(lo, width) + offset]
        distinct = col[pair_e] != col[pair_f]
        pair_e, pair_f = pair_e[distinct], pair_f[distinct]

        affordable = slack[source] >= money
        startable = (sign > 0) | affordable
        applied = 0
        # One pass with every start; if it finds nothing (the best label per arc
        # hides other starts' walks), passes over smaller batches of starts.
        for batch in _start_batches(np.flatnonzero(startable), money):
            label = np.full(arcs, _NONE)
            label[batch] = gain[batch]
            applied = _apply_walks(
                label, max_len, pair_e, pair_f, gain, money, source, target, affordable,
                col, sign, amount, heads, tails, count, cap, slack,
            )
            if applied or time.perf_counter() >= deadline:
                break
        if not applied:
            break
    return count.astype(np.float64)


def _start_batches(starts: NDArray[np.int64], money: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """All starts, then the starts split by amount (largest first) into EXCHANGE_BATCHES."""
    by_amount = starts[np.lexsort((starts, -money[starts]))]
    return [starts, *np.array_split(by_amount, min(EXCHANGE_BATCHES, max(1, by_amount.size)))]


def _apply_walks(
    label: NDArray[np.int64],
    max_len: int,
    pair_e: NDArray[np.int64],
    pair_f: NDArray[np.int64],
    gain: NDArray[np.int64],
    money: NDArray[np.int64],
    source: NDArray[np.int64],
    target: NDArray[np.int64],
    affordable: NDArray[np.bool_],
    col: NDArray[np.int64],
    sign: NDArray[np.int64],
    amount: NDArray[np.int64],
    heads: NDArray[np.int64],
    tails: NDArray[np.int64],
    count: NDArray[np.int64],
    cap: NDArray[np.int64],
    slack: NDArray[np.int64],
) -> int:
    """The layered DP from the arcs labelled in ``label``; at the first layer where
    walks close with a positive gain, apply (to ``count`` and ``slack``, in place)
    those that still check out, best first. Returns how many were applied."""
    arcs = label.size
    origin = np.arange(arcs)
    history: list[NDArray[np.int64]] = []
    for _ in range(max_len):
        reached = label[pair_e] > _NONE
        if not reached.any():
            return 0
        e, f = pair_e[reached], pair_f[reached]
        candidate = label[e] + gain[f]
        label = np.full(arcs, _NONE)
        np.maximum.at(label, f, candidate)  # per f: the best gain ...
        tied = candidate == label[f]
        previous = np.full(arcs, arcs)
        np.minimum.at(previous, f[tied], e[tied])  # ... reached from the lowest e
        winners_f = np.flatnonzero(previous < arcs)
        winners_e = previous[winners_f]
        previous[previous == arcs] = -1
        new_origin = np.full(arcs, -1)
        new_origin[winners_f] = origin[winners_e]
        origin = new_origin
        history.append(previous)
        ends = np.flatnonzero(label > 0)
        if ends.size:
            start = origin[ends]
            closes = affordable[start] | (
                (target[ends] == source[start]) & (slack[target[ends]] + money[ends] - money[start] >= 0)
            )
            ends = ends[closes]
        applied = 0
        for end in ends[np.lexsort((ends, -label[ends]))][:WALKS_PER_PASS].tolist():
            walk = [end]
            for previous_of in reversed(history):
                walk.append(int(previous_of[walk[-1]]))
            # Checked against the current state, so walks applied before it count.
            move = _checked_move(walk, col, sign, amount, heads, tails, count, cap, slack)
            if move is not None:
                use, delta = move
                for k, n in use.items():
                    count[k] += n
                for v, d in delta.items():
                    slack[v] += d
                applied += 1
        if applied:
            return applied
    return 0


def _checked_move(
    walk: list[int],
    col: NDArray[np.int64],
    sign: NDArray[np.int64],
    amount: NDArray[np.int64],
    heads: NDArray[np.int64],
    tails: NDArray[np.int64],
    count: NDArray[np.int64],
    cap: NDArray[np.int64],
    slack: NDArray[np.int64],
) -> tuple[dict[int, int], dict[int, int]] | None:
    """The walk's net change per payment and node, if it is feasible and gains value."""
    use: dict[int, int] = {}
    delta: dict[int, int] = {}
    for arc in walk:
        k, s = int(col[arc]), int(sign[arc])
        use[k] = use.get(k, 0) + s
        a = int(amount[k])
        delta[int(tails[k])] = delta.get(int(tails[k]), 0) - s * a
        delta[int(heads[k])] = delta.get(int(heads[k]), 0) + s * a
    if sum(int(amount[k]) * n for k, n in use.items()) <= 0:
        return None
    if any(not 0 <= count[k] + n <= cap[k] for k, n in use.items()):
        return None
    if any(slack[v] + d < 0 for v, d in delta.items()):
        return None
    return use, delta
