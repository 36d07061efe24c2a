"""Gridlock resolution entry points: exact MILP, greedy baseline, best of both.

Currencies share no constraint, so each is presolved and solved on its own and the
results add up; the time limit is shared out so the whole call ends in time.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from chain_gateway.lsm.heuristics import ordered_keys, release_in_order, solve_greedy
from chain_gateway.lsm.milp import deadline_share, solve_currency
from chain_gateway.lsm.model import (
    Account,
    LsmError,
    Proposal,
    QueuedPayment,
    relative_gap,
    validate_queue,
)
from chain_gateway.lsm.reduce import reduce_currency

__all__ = ["brute_force", "release_in_order", "solve", "solve_greedy", "solve_milp"]

BRUTE_FORCE_LIMIT = 20


def solve_milp(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    time_limit: float = 10.0,
    *,
    rel_gap: float = 1e-6,
) -> Proposal:
    """Largest-value simultaneously settleable subset, by a 0/1 (grouped integer) program.

    Returns HiGHS's incumbent with its proven bound; a currency where HiGHS fails or
    finds nothing falls back to the greedy (method says so). ``optimal`` is True
    only if every currency was proved optimal within ``rel_gap``.
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
        share = deadline_share(deadline, len(currencies) - position)
        result = solve_currency(payments, reduction, share, rel_gap)
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

    The MILP is warm-started with a greedy already, so the greedy wins only if
    HiGHS failed; keeping it here makes that fallback explicit and cheap.
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
