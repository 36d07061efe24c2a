"""Gridlock resolution entry points: exact MILP, greedy baseline, best of both.

Currencies share no constraint, so each is presolved and solved on its own and the
results add up; the time limit is shared out so the whole call ends in time.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chain_gateway.lsm.heuristics import (
    ordered_keys,
    release_in_order,
    remove_until_covered,
    solve_greedy,
)
from chain_gateway.lsm.milp import MipOutcome, build_model, run_mip
from chain_gateway.lsm.model import (
    Account,
    LsmError,
    Proposal,
    QueuedPayment,
    relative_gap,
    validate_queue,
)
from chain_gateway.lsm.reduce import Reduction, group_interchangeable, reduce_currency
from chain_gateway.lsm.search import augment, exchange, improve

__all__ = ["brute_force", "release_in_order", "solve", "solve_greedy", "solve_milp"]

log = logging.getLogger(__name__)

BRUTE_FORCE_LIMIT = 20
CONSTRUCT_SHARE = 0.3
"""Of a currency's time: at most this much for cycle augmentation and exchanges
(usually far less)."""
SEARCH_FIRST_COLUMNS = 60
"""Above this many columns the LNS runs before HiGHS. On the benchmark gridlocks
(500-1,000 payments) HiGHS's root (cuts, then its RINS/RENS) takes seconds and its
incumbent comes late or never, while LNS-first then HiGHS warm-started from the
LNS point was better on every seed tried (500 payments, seeds 1 and 6-9: 96-98%
of the bound against 91-94% with HiGHS first). Small models go straight to HiGHS,
which usually proves optimality at once."""
SEARCH_FIRST_SHARE = 0.4
"""Of a large currency's time after construction: LNS (with exchanges) before HiGHS."""
BRANCH_AND_BOUND_SHARE = 0.6
"""Of what is left when HiGHS starts: its full branch-and-bound (bound + incumbent),
warm-started from the heuristic incumbent; the rest goes to the neighbourhood search
around the best incumbent."""


@dataclass(frozen=True, slots=True)
class _CurrencyResult:
    """What one currency contributes to a proposal (indices into the payment list)."""

    selected: frozenset[int]
    value: int
    bound: int
    optimal: bool
    method: str


def _solve_currency(
    payments: Sequence[QueuedPayment],
    reduction: Reduction,
    deadline: float,
    rel_gap: float,
) -> _CurrencyResult:
    """Best selection for one presolved currency, with a proven bound.

    Pipeline: greedy on the reduced instance -> cycle augmentation -> exchanges
    (``search.exchange``: value-increasing add/drop walks) -> unless the model is
    tiny, LNS for a share of the time -> HiGHS branch-and-bound, warm-started from that
    incumbent (``setSolution``), for most of what is left (the bound; often a better
    incumbent from its root-LP-guided heuristics) -> exchanges and LNS from the
    better incumbent until the deadline, unless HiGHS proved optimality. A HiGHS
    failure leaves the heuristic incumbent and a trivial bound. The final point is
    mapped back to payments (first members of each group in queue order) and
    re-checked in exact integers; a shortfall is repaired by the greedy removal loop.
    """
    fixed = frozenset(reduction.fixed_in)
    fixed_value = sum(payments[i].amount for i in fixed)
    if not reduction.free:
        return _CurrencyResult(fixed, fixed_value, fixed_value, True, "presolve")
    groups = group_interchangeable(payments, reduction.free)
    model = build_model(groups, reduction.residual)
    residual: dict[Account, int] = {
        (party, reduction.currency): amount for party, amount in reduction.residual.items()
    }
    greedy = remove_until_covered(payments, residual, reduction.free)
    x = np.array([sum(1 for i in g.members if i in greedy) for g in groups], dtype=np.float64)
    start = time.perf_counter()
    x = augment(model, x, start + CONSTRUCT_SHARE * (deadline - start))
    x = exchange(model, x, start + CONSTRUCT_SHARE * (deadline - start))
    if model.num_col > SEARCH_FIRST_COLUMNS:
        try:
            x = improve(model, x, time.perf_counter() + SEARCH_FIRST_SHARE * (deadline - time.perf_counter()))
        except Exception:
            log.warning("neighbourhood search failed on %s", reduction.currency, exc_info=True)

    method = "milp"
    outcome = MipOutcome(None, math.inf, False)
    try:
        budget = BRANCH_AND_BOUND_SHARE * (deadline - time.perf_counter())
        outcome = run_mip(model, x if model.is_feasible(x) else None, budget, rel_gap=rel_gap)
    except Exception:
        log.warning("HiGHS failed on the %s gridlock", reduction.currency, exc_info=True)
        method = "heuristic-fallback"
    if outcome.x is not None and float(model.cost @ outcome.x) >= float(model.cost @ x):
        x = exchange(model, outcome.x, deadline) if model.is_feasible(outcome.x) else outcome.x
    if not outcome.optimal and method == "milp":
        try:
            x = improve(model, x, deadline, seed=1)
        except Exception:
            log.warning("neighbourhood search failed on %s", reduction.currency, exc_info=True)

    chosen = {i for g, k in zip(groups, x.astype(np.int64).tolist()) for i in g.members[:k]}
    repaired = remove_until_covered(payments, residual, chosen)
    if repaired != chosen:
        log.warning("%s incumbent needed repair after rounding", reduction.currency)
        chosen, method = repaired, method + "-repaired"
    value = sum(payments[i].amount for i in chosen)
    bound = sum(g.amount * len(g.members) for g in groups)
    if math.isfinite(outcome.dual_bound):
        bound = min(bound, math.floor(outcome.dual_bound + 1e-6) * model.scale)
    bound = max(bound, value)  # a float bound must never sit below a feasible value
    optimal = outcome.optimal and method == "milp"
    if optimal and bound - value < model.scale:
        bound = value
    return _CurrencyResult(
        selected=frozenset(chosen | fixed),
        value=value + fixed_value,
        bound=bound + fixed_value,
        optimal=optimal,
        method=method,
    )


def solve_milp(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    time_limit: float = 10.0,
    *,
    rel_gap: float = 1e-6,
) -> Proposal:
    """Largest-value simultaneously settleable subset, by a 0/1 (grouped integer) program.

    Each currency is presolved, then solved by HiGHS warm-started from a heuristic
    incumbent (cycle augmentation, exchanges, and on large queues neighbourhood
    search), then improved by exchanges and neighbourhood search if HiGHS did not
    prove optimality in its share of ``time_limit``. Returns the best incumbent with
    HiGHS's proven bound; where HiGHS fails, the heuristic incumbent stands
    (``method`` says so). ``optimal`` is True only if every currency was proved
    optimal within ``rel_gap``. Reproducible whenever the time limit does not bind
    (small or easy queues); otherwise how far the search got depends on the clock.
    """
    if not time_limit > 0:
        raise LsmError("time_limit must be positive", actual=time_limit)
    started = time.perf_counter()
    deadline = started + time_limit
    payments = list(payments)
    validate_queue(payments, balances)
    by_currency: dict[str, list[int]] = {}
    for index, payment in enumerate(payments):
        by_currency.setdefault(payment.currency, []).append(index)

    selected: set[int] = set()
    value = bound = 0
    optimal = True
    methods: set[str] = set()
    currencies = sorted(by_currency)
    for position, currency in enumerate(currencies):
        reduction = reduce_currency(payments, balances, by_currency[currency], currency)
        now = time.perf_counter()
        share_end = now + max(deadline - now, 0.0) / (len(currencies) - position)
        result = _solve_currency(payments, reduction, share_end, rel_gap)
        selected |= result.selected
        value += result.value
        bound += result.bound
        optimal = optimal and result.optimal
        methods.add(result.method)
    methods.discard("presolve")
    method = "+".join(sorted(methods)) or "presolve"
    return Proposal(
        selected=ordered_keys(payments, selected),
        value=value,
        bound=bound,
        method=method,
        solver_seconds=time.perf_counter() - started,
        gap=relative_gap(value, bound),
        optimal=optimal,
    )


def solve(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    time_limit: float = 10.0,
) -> Proposal:
    """Best of the MILP and the greedy, carrying the MILP's bound either way.

    The MILP pipeline starts from the greedy already, so the greedy wins only in
    degenerate cases; keeping it here makes the fallback explicit and cheap.
    """
    started = time.perf_counter()
    greedy = solve_greedy(payments, balances)
    remaining = max(time_limit - (time.perf_counter() - started), 0.01)
    milp = solve_milp(payments, balances, remaining)
    best = milp if milp.value >= greedy.value else greedy
    return Proposal(
        selected=best.selected,
        value=best.value,
        bound=milp.bound,
        method=best.method,
        solver_seconds=time.perf_counter() - started,
        gap=relative_gap(best.value, milp.bound),
        optimal=milp.optimal or best.value == milp.bound,
    )


def brute_force(
    payments: Sequence[QueuedPayment], balances: Mapping[Account, int]
) -> Proposal:
    """Exact optimum by enumerating every subset (at most 20 payments).

    Walks the subsets in Gray-code order so each step flips one payment and updates
    two positions and a count of uncovered accounts: 2**20 steps stay near a second.
    Ties between equal-value subsets go to the first one met. The reference the
    tests hold the MILP to.
    """
    started = time.perf_counter()
    payments = list(payments)
    if len(payments) > BRUTE_FORCE_LIMIT:
        raise LsmError(
            "brute force is limited to a small queue",
            actual=len(payments),
            limit=BRUTE_FORCE_LIMIT,
        )
    validate_queue(payments, balances)
    accounts = sorted({p.debit_account for p in payments} | {p.credit_account for p in payments})
    slot = {account: n for n, account in enumerate(accounts)}
    nets = [balances.get(account, 0) for account in accounts]
    debit = [slot[p.debit_account] for p in payments]
    credit = [slot[p.credit_account] for p in payments]
    amount = [p.amount for p in payments]
    uncovered = 0
    chosen = [False] * len(payments)
    value = best_value = 0
    best_mask = mask = 0
    for step in range(1, 1 << len(payments)):
        flip = (step & -step).bit_length() - 1
        sign = -1 if chosen[flip] else 1
        chosen[flip] = not chosen[flip]
        mask ^= 1 << flip
        value += sign * amount[flip]
        for account, delta in ((debit[flip], -sign * amount[flip]), (credit[flip], sign * amount[flip])):
            before = nets[account]
            nets[account] = before + delta
            uncovered += (nets[account] < 0) - (before < 0)
        if uncovered == 0 and value > best_value:
            best_value, best_mask = value, mask
    keep = [i for i in range(len(payments)) if best_mask >> i & 1]
    return Proposal(
        selected=ordered_keys(payments, keep),
        value=best_value,
        bound=best_value,
        method="brute-force",
        solver_seconds=time.perf_counter() - started,
        gap=0.0,
        optimal=True,
    )
