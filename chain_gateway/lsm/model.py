"""Value types of the liquidity-saving mechanism and the feasibility rule.

The solver only *proposes* a subset of queued payments; the contract re-checks the
same rule before it settles the subset atomically. ``is_feasible`` is that rule in
Python, so the gateway can refuse to submit a proposal the chain would revert.

Invariant (per participant and currency, independently):
    balance + incoming(selected) - outgoing(selected) >= 0
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chain_gateway.errors import DuplicateUetr, GatewayError, InvalidAgent, InvalidAmount

PaymentKey = bytes | str
"""A queued payment's identity: its UETR (bytes on chain, str in messages)."""

Account = tuple[str, str]
"""(participant, currency): the unit a balance and a net position belong to."""


class LsmError(GatewayError):
    """Raised when the liquidity-saving mechanism is asked something it cannot do."""

    title = "Liquidity-saving mechanism error"


@dataclass(frozen=True, slots=True)
class QueuedPayment:
    """One payment waiting in the on-chain queue for liquidity.

    ``priority``: higher is more urgent (0 = normal); ``seq``: the queue's arrival
    counter. Together they define queue order: urgent first, FIFO within a priority.
    """

    key: PaymentKey
    debtor: str
    creditor: str
    currency: str
    amount: int
    priority: int = 0
    seq: int = 0

    @property
    def debit_account(self) -> Account:
        return (self.debtor, self.currency)

    @property
    def credit_account(self) -> Account:
        return (self.creditor, self.currency)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A subset of the queue that can settle at once, and how good it is known to be.

    ``bound`` is a proven upper bound on the best achievable value (None when the
    method proves nothing, e.g. the greedy); ``gap`` = (bound - value) / bound.
    ``optimal`` means the solver proved ``value`` maximal (within its relative gap).
    """

    selected: tuple[PaymentKey, ...]
    value: int
    bound: int | None
    method: str
    solver_seconds: float
    gap: float | None
    optimal: bool


def queue_order_key(payment: QueuedPayment) -> tuple[int, int]:
    """Sort key of queue order: urgent first, then FIFO by ``seq``."""
    return (-payment.priority, payment.seq)


def relative_gap(value: int, bound: int | None) -> float | None:
    """(bound - value) / bound, 0.0 for an empty bound, None without a bound."""
    if bound is None:
        return None
    if bound <= 0:
        return 0.0
    return (bound - value) / bound


def validate_queue(
    payments: Sequence[QueuedPayment], balances: Mapping[Account, int]
) -> None:
    """Reject inputs the optimisation model does not describe.

    Amounts must be positive ints, debtor and creditor distinct, keys unique, and
    every balance non-negative (otherwise even settling nothing breaks the rule).
    """
    seen: set[PaymentKey] = set()
    for payment in payments:
        if isinstance(payment.amount, bool) or not isinstance(payment.amount, int):
            raise InvalidAmount(
                "queued payment amount must be an int in minor units",
                uetr=payment.key,
                actual=payment.amount,
            )
        if payment.amount <= 0:
            raise InvalidAmount(
                "queued payment amount must be positive", uetr=payment.key, actual=payment.amount
            )
        if payment.debtor == payment.creditor:
            raise InvalidAgent(
                "queued payment has the same debtor and creditor",
                uetr=payment.key,
                participant=payment.debtor,
            )
        if payment.key in seen:
            raise DuplicateUetr("queued payment key appears twice", uetr=payment.key)
        seen.add(payment.key)
    for (participant, currency), balance in balances.items():
        if balance < 0:
            raise InvalidAmount(
                "settlement balance is negative",
                participant=participant,
                currency=currency,
                actual=balance,
            )


def net_positions(
    payments: Iterable[QueuedPayment], selected: Iterable[PaymentKey]
) -> dict[Account, int]:
    """Incoming minus outgoing of the selected payments, per (participant, currency).

    Only accounts touched by the queue appear (with 0 when they net out). Keys that
    name no queued payment are ignored here; ``is_feasible`` rejects them.
    """
    chosen = set(selected)
    nets: dict[Account, int] = {}
    for payment in payments:
        nets.setdefault(payment.debit_account, 0)
        nets.setdefault(payment.credit_account, 0)
        if payment.key in chosen:
            nets[payment.debit_account] -= payment.amount
            nets[payment.credit_account] += payment.amount
    return nets


def is_feasible(
    balances: Mapping[Account, int],
    payments: Iterable[QueuedPayment],
    selected: Iterable[PaymentKey],
) -> bool:
    """True when the selected payments can settle simultaneously.

    False also when ``selected`` names a key twice or a key that is not queued: the
    contract would revert such a batch, so the gateway must not submit it.
    """
    payment_list = list(payments)
    chosen = list(selected)
    queued = {payment.key for payment in payment_list}
    if len(set(chosen)) != len(chosen) or not queued.issuperset(chosen):
        return False
    nets = net_positions(payment_list, chosen)
    return all(balances.get(account, 0) + net >= 0 for account, net in nets.items())


def selection_value(payments: Iterable[QueuedPayment], selected: Iterable[PaymentKey]) -> int:
    """Total amount of the selected payments (summed across currencies)."""
    chosen = set(selected)
    return sum(payment.amount for payment in payments if payment.key in chosen)


def apply_selection(
    balances: Mapping[Account, int],
    payments: Iterable[QueuedPayment],
    selected: Iterable[PaymentKey],
) -> dict[Account, int]:
    """Balances after settling the selection (a copy; the input is not changed)."""
    after = dict(balances)
    for account, net in net_positions(payments, selected).items():
        after[account] = after.get(account, 0) + net
    return after
