"""Sound presolve for one currency: fix payments every optimal selection agrees on,
and merge interchangeable payments into one integer variable.

Both rules hold for *every* optimal selection (the empty selection is feasible and
amounts are positive, so optima exist), which is what lets them chain:

* Rule IN - if a participant is covered even when all its undecided outgoing
  payments settle (residual - free_out >= 0), each of them can be added to any
  selection that respects earlier fixings without breaking its own debtor, and it
  only helps its creditor; leaving one out loses value, so every optimum has it.
* Rule OUT - if a payment exceeds what its debtor could ever hold (residual plus
  every undecided incoming payment), no feasible selection respecting earlier
  fixings contains it.

``residual`` = balance + fixed-in incoming - fixed-in outgoing, and stays >= 0:
Rule IN fixes a participant's outgoing only when the residual covers them all.

Aggregation: payments with equal (debtor, creditor, amount) are interchangeable in
the model, so they become one integer variable 0..count. That removes the symmetry
that makes a branch-and-bound re-prove the same thing for every permutation (the
Ubin ring has 1,249 identical payments per leg). Which members settle is decided
afterwards, in queue order.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain_gateway.lsm.model import Account, QueuedPayment, queue_order_key


@dataclass(frozen=True, slots=True)
class Reduction:
    """The outcome of presolve for one currency (indices into the payment list)."""

    currency: str
    fixed_in: tuple[int, ...]
    fixed_out: tuple[int, ...]
    free: tuple[int, ...]
    residual: dict[str, int]


@dataclass(frozen=True, slots=True)
class Group:
    """Interchangeable free payments: same debtor, creditor and amount, in queue order."""

    debtor: str
    creditor: str
    amount: int
    members: tuple[int, ...]


def reduce_currency(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    indices: Sequence[int],
    currency: str,
) -> Reduction:
    """Apply Rule IN and Rule OUT to a fixpoint over one currency's payments."""
    residual: dict[str, int] = {}
    free_out: dict[str, set[int]] = {}
    free_in: dict[str, set[int]] = {}
    out_sum: dict[str, int] = {}
    in_sum: dict[str, int] = {}
    for index in indices:
        payment = payments[index]
        for party in (payment.debtor, payment.creditor):
            if party not in residual:
                residual[party] = balances.get((party, currency), 0)
                free_out[party], free_in[party] = set(), set()
                out_sum[party], in_sum[party] = 0, 0
        free_out[payment.debtor].add(index)
        out_sum[payment.debtor] += payment.amount
        free_in[payment.creditor].add(index)
        in_sum[payment.creditor] += payment.amount

    fixed_in: list[int] = []
    fixed_out: list[int] = []
    work = sorted(residual)
    queued = set(work)
    while work:
        party = work.pop()
        queued.discard(party)
        touched: list[str] = []
        if free_out[party] and residual[party] - out_sum[party] >= 0:  # Rule IN
            for index in sorted(free_out[party]):
                payment = payments[index]
                residual[party] -= payment.amount
                residual[payment.creditor] += payment.amount
                free_in[payment.creditor].discard(index)
                in_sum[payment.creditor] -= payment.amount
                fixed_in.append(index)
                touched.append(payment.creditor)
            free_out[party].clear()
            out_sum[party] = 0
        ceiling = residual[party] + in_sum[party]
        for index in sorted(free_out[party]):  # Rule OUT
            payment = payments[index]
            if payment.amount > ceiling:
                free_out[party].discard(index)
                out_sum[party] -= payment.amount
                free_in[payment.creditor].discard(index)
                in_sum[payment.creditor] -= payment.amount
                fixed_out.append(index)
                touched.extend((party, payment.creditor))
        for other in touched:
            if other not in queued:
                queued.add(other)
                work.append(other)

    free = tuple(sorted(i for party in sorted(free_out) for i in free_out[party]))
    return Reduction(
        currency=currency,
        fixed_in=tuple(sorted(fixed_in)),
        fixed_out=tuple(sorted(fixed_out)),
        free=free,
        residual=residual,
    )


def group_interchangeable(payments: Sequence[QueuedPayment], free: Sequence[int]) -> list[Group]:
    """Merge free payments with equal (debtor, creditor, amount); members in queue order."""
    buckets: dict[tuple[str, str, int], list[int]] = {}
    for index in free:
        payment = payments[index]
        buckets.setdefault((payment.debtor, payment.creditor, payment.amount), []).append(index)
    groups = []
    for (debtor, creditor, amount), members in sorted(buckets.items()):
        members.sort(key=lambda i: (queue_order_key(payments[i]), i))
        groups.append(Group(debtor, creditor, amount, tuple(members)))
    return groups
