"""Primal heuristics for the grouped model: cycle augmentation and HiGHS-driven LNS.

Why they exist: in a real gridlock every queued payment is larger than its debtor's
balance, so a feasible subset must nearly balance at every participant (a
subset-sum at each row). LP rounding and removal heuristics unravel to almost
nothing there, and on 1,000-payment random gridlocks HiGHS alone spends its whole
10 s at the root without an incumbent. These two supply one:

* ``augment`` adds walks that keep every participant covered: a payment whose
  debtor can afford it, or a cycle through the unused payments found by breadth-
  first search on the line graph (a step e -> f through node v is allowed when
  v's slack + a_e - a_f >= 0; the cycle closes when it can pay its first payment).
  Every walk is re-checked exactly before it is applied, so revisited nodes are
  safe.
* ``improve`` is a large-neighbourhood search: free the payments of a few random
  participants, fix the rest at the incumbent, let HiGHS solve that small MIP
  (warm-started, node-limited), keep it if better. The neighbourhood grows while
  sub-MIPs solve to optimality quickly and shrinks when they do not.

Both work in the model's scaled integer units; both only ever move between
feasible points. The random stream is seeded, so a run is reproducible up to the
point where the time limit cuts it off.
"""
from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections import deque

import numpy as np

from chain_gateway.lsm.milp import ArrayModel, FloatArray, run_mip

SUB_MIP_SECONDS = 0.02
"""Neighbourhoods are sized so a sub-MIP takes about this long: many small solves
beat a few large ones on these instances (measured on the Ubin-style gridlocks)."""


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
) -> FloatArray:
    """Large-neighbourhood search from the feasible point ``x`` until ``deadline``."""
    rng = random.Random(seed)
    incident: list[list[int]] = [[] for _ in range(model.num_row)]
    for k, (head, tail) in enumerate(model.index.reshape(-1, 2).tolist()):
        incident[head].append(k)
        incident[tail].append(k)
    rows = [r for r in range(model.num_row) if incident[r]]
    target = min(40.0, float(model.num_col))
    best = x.copy()
    best_value = float(model.cost @ best)
    rounds = 0
    while time.perf_counter() < deadline - 0.02 and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        free = np.zeros(model.num_col, dtype=bool)
        for row in rng.sample(rows, len(rows)):
            free[incident[row]] = True
            if free.sum() >= target:
                break
        sub = model.restricted(free, best)
        started = time.perf_counter()
        outcome = run_mip(sub, best[free], min(1.0, deadline - started), max_nodes=200)
        elapsed = time.perf_counter() - started
        if outcome.x is not None:
            value = best_value - float(model.cost[free] @ best[free]) + float(sub.cost @ outcome.x)
            if value > best_value + 0.5:
                candidate = best.copy()
                candidate[free] = outcome.x
                if model.is_feasible(candidate):
                    best, best_value = candidate, value
        if outcome.optimal and elapsed < SUB_MIP_SECONDS:
            target = min(target * 1.1, float(model.num_col))
        elif not outcome.optimal or elapsed > 2 * SUB_MIP_SECONDS:
            target = max(20.0, target * 0.8)
        if outcome.optimal and bool(free.all()):
            break  # the whole model was just solved to optimality: nothing left to search
    return best
