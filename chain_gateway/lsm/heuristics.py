"""Fast, deterministic heuristics: TARGET2-style partial optimisation and FIFO bypass.

The greedy is the baseline the MILP is measured against, the MILP pipeline's starting
point and ``solve``'s fallback; ``remove_until_covered`` also repairs a MILP incumbent
that floating-point rounding left a unit short. ``release_in_order`` is what the queue does on its own
whenever a balance rises, before any gridlock resolution is needed.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Literal

from chain_gateway.lsm.model import (
    Account,
    LsmError,
    PaymentKey,
    Proposal,
    QueuedPayment,
    queue_order_key,
    validate_queue,
)

Drop = Literal["largest", "latest"]
"""Which payment an uncovered participant gives up first: its largest (the default:
each removal frees the most liquidity) or its latest in queue order (least urgent,
most recently queued)."""


def _removal_key(payments: Sequence[QueuedPayment], index: int, drop: Drop) -> tuple[int, ...]:
    """Order in which a debtor gives up payments; ties go to the least urgent, then
    the latest queued, so the result never depends on dict or input accidents."""
    payment = payments[index]
    if drop == "latest":
        return (payment.priority, -payment.seq, -index)
    return (-payment.amount, payment.priority, -payment.seq, -index)


def remove_until_covered(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    start: Iterable[int],
    *,
    drop: Drop = "largest",
) -> set[int]:
    """Indices left after removing payments until every account is covered.

    While some (participant, currency) has a negative position, take the most
    negative one (ties: by name) and drop its largest (or, with ``drop="latest"``,
    its last-queued) selected outgoing payment in that currency. An uncovered
    account always has an outgoing payment left (with none, its position is
    balance + incoming >= 0), so the loop ends; the result is feasible whenever
    balances are non-negative.
    """
    selected = set(start)
    nets: dict[Account, int] = {}
    outgoing: dict[Account, list[int]] = {}
    for index in sorted(selected):
        payment = payments[index]
        debit, credit = payment.debit_account, payment.credit_account
        nets[debit] = nets.get(debit, balances.get(debit, 0)) - payment.amount
        nets[credit] = nets.get(credit, balances.get(credit, 0)) + payment.amount
        outgoing.setdefault(debit, []).append(index)
    for indices in outgoing.values():
        indices.sort(key=lambda i: _removal_key(payments, i, drop))
    next_out = dict.fromkeys(outgoing, 0)
    negative = {account for account, net in nets.items() if net < 0}
    while negative:
        account = min(negative, key=lambda a: (nets[a], a))
        index = outgoing[account][next_out[account]]
        next_out[account] += 1
        selected.discard(index)
        payment = payments[index]
        nets[account] += payment.amount
        nets[payment.credit_account] -= payment.amount
        if nets[account] >= 0:
            negative.discard(account)
        if nets[payment.credit_account] < 0:
            negative.add(payment.credit_account)
    return selected


def ordered_keys(payments: Sequence[QueuedPayment], indices: Iterable[int]) -> tuple[PaymentKey, ...]:
    """Keys of the chosen payments in queue order, so proposals are reproducible."""
    chosen = sorted(indices, key=lambda i: (queue_order_key(payments[i]), i))
    return tuple(payments[i].key for i in chosen)


def solve_greedy(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    *,
    drop: Drop = "largest",
) -> Proposal:
    """TARGET2-style partial optimisation: start from the whole queue, then drop the
    most uncovered participant's largest (or latest) payment until everyone is covered.

    Fast and simple, but on a true gridlock each removal can uncover the creditor and
    the removals cascade (see the benchmark). No bound is proven, except when nothing
    had to be dropped (then it is optimal).
    """
    started = time.perf_counter()
    if drop not in ("largest", "latest"):
        raise LsmError("unknown greedy drop order", actual=drop)
    payments = list(payments)
    validate_queue(payments, balances)
    kept = remove_until_covered(payments, balances, range(len(payments)), drop=drop)
    value = sum(payments[i].amount for i in kept)
    everything = len(kept) == len(payments)
    return Proposal(
        selected=ordered_keys(payments, kept),
        value=value,
        bound=value if everything else None,
        method="greedy" if drop == "largest" else f"greedy-{drop}",
        solver_seconds=time.perf_counter() - started,
        gap=0.0 if everything else None,
        optimal=everything,
    )


def release_in_order(
    queue_sorted: Sequence[QueuedPayment],
    balances: MutableMapping[Account, int],
    *,
    until_stable: bool = False,
) -> list[PaymentKey]:
    """Settle queued payments one by one in queue order, bypassing those that do not fit.

    Called when a balance rises. The queue is (stably) re-sorted urgent first, FIFO
    within a priority, so a caller's ordering slip cannot change the outcome. A
    payment settles when its debtor's current balance covers it; one that does not
    fit is skipped and later payments may settle (FIFO bypass). ``balances`` is
    updated in place, as the contract's balances would be. With ``until_stable`` the
    pass repeats while it settles something, because a later credit can make an
    earlier skipped payment fit. Returns the settled keys in settlement order.
    """
    pending = sorted(queue_sorted, key=queue_order_key)
    validate_queue(pending, {})
    settled: list[PaymentKey] = []
    while True:
        skipped: list[QueuedPayment] = []
        for payment in pending:
            debit, credit = payment.debit_account, payment.credit_account
            available = balances.get(debit, 0)
            if available >= payment.amount:
                balances[debit] = available - payment.amount
                balances[credit] = balances.get(credit, 0) + payment.amount
                settled.append(payment.key)
            else:
                skipped.append(payment)
        if not until_stable or len(skipped) == len(pending):
            return settled
        pending = skipped
