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
  sub-MIPs solve to optimality and shrinks when they do not.

Both work in the model's scaled integer units; both only ever move between
feasible points. The random stream is seeded, so a run is reproducible up to the
point where the time limit cuts it off.
"""
from __future__ import annotations

import random
import time
from collections import deque

import numpy as np

from chain_gateway.lsm.milp import ArrayModel, FloatArray, run_mip


def augment(model: ArrayModel, x: FloatArray, deadline: float) -> FloatArray:
    """Extend the feasible point ``x`` by affordable payments and feasible cycles."""
    heads = model.index[0::2].tolist()
    tails = model.index[1::2].tolist()
    amount = [int(a) for a in model.cost.tolist()]
    cap = [int(u) for u in model.col_upper.tolist()]
    count = [int(v) for v in x.tolist()]
    slack = [int(s) for s in (model.activity(x) - model.row_lower).tolist()]
    out: list[list[int]] = [[] for _ in range(model.num_row)]
    for k in sorted(range(model.num_col), key=lambda k: (-amount[k], k)):
        out[tails[k]].append(k)

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
        while frontier:
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
            for f in out[node]:
                if f not in previous and count[f] < cap[f] and slack[node] + amount[k] - amount[f] >= 0:
                    previous[f] = k
                    frontier.append(f)
        return None

    order = sorted(range(model.num_col), key=lambda k: (-amount[k], k))
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
    target = min(60.0, float(model.num_col))
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
        remaining = deadline - time.perf_counter()
        outcome = run_mip(sub, best[free], min(1.0, remaining), max_nodes=200)
        if outcome.x is not None:
            value = best_value - float(model.cost[free] @ best[free]) + float(sub.cost @ outcome.x)
            if value > best_value + 0.5:
                candidate = best.copy()
                candidate[free] = outcome.x
                if model.is_feasible(candidate):
                    best, best_value = candidate, value
        grow = outcome.optimal and outcome.x is not None
        target = min(target * 1.1, float(model.num_col)) if grow else max(20.0, target * 0.8)
        if target >= model.num_col and outcome.optimal:
            break  # the whole model was solved to optimality: nothing left to search
    return best
