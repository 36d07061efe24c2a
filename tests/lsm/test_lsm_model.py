"""The feasibility rule the gateway checks before submitting, and input validation."""
from __future__ import annotations

import pytest

from chain_gateway.errors import DuplicateUetr, GatewayError, InvalidAgent, InvalidAmount
from chain_gateway.lsm import (
    QueuedPayment,
    apply_selection,
    is_feasible,
    net_positions,
    selection_value,
    solve_greedy,
)

USD = "USD"


def pay(key: str, debtor: str, creditor: str, amount: int, currency: str = USD, **kw: int) -> QueuedPayment:
    return QueuedPayment(key, debtor, creditor, currency, amount, **kw)


QUEUE = [pay("p1", "A", "B", 100), pay("p2", "B", "C", 40), pay("p3", "A", "C", 7, currency="EUR")]


def test_net_positions_count_only_selected_payments_per_currency() -> None:
    assert net_positions(QUEUE, ["p1", "p3"]) == {
        ("A", USD): -100,
        ("B", USD): 100,
        ("C", USD): 0,
        ("A", "EUR"): -7,
        ("C", "EUR"): 7,
    }


def test_is_feasible_checks_every_participant_and_currency() -> None:
    balances = {("A", USD): 100, ("A", "EUR"): 6}
    assert is_feasible(balances, QUEUE, ["p1", "p2"])
    assert not is_feasible(balances, QUEUE, ["p1", "p3"])  # EUR short by 1
    assert is_feasible(balances, QUEUE, [])


def test_is_feasible_rejects_unknown_or_repeated_keys() -> None:
    balances = {("A", USD): 1_000}
    assert not is_feasible(balances, QUEUE, ["p1", "p1"])
    assert not is_feasible(balances, QUEUE, ["nope"])


def test_apply_selection_and_value() -> None:
    balances = {("A", USD): 100}
    assert apply_selection(balances, QUEUE, ["p1", "p2"]) == {
        ("A", USD): 0,
        ("B", USD): 60,
        ("C", USD): 40,
        ("A", "EUR"): 0,
        ("C", "EUR"): 0,
    }
    assert selection_value(QUEUE, ["p1", "p3"]) == 107


def test_uetr_keys_may_be_bytes() -> None:
    uetr = bytes.fromhex("eb6305c9" + "1f7f49de" + "aed0" * 4)
    queue = [QueuedPayment(uetr, "A", "B", USD, 5)]
    assert solve_greedy(queue, {("A", USD): 5}).selected == (uetr,)


@pytest.mark.parametrize(
    ("queue", "balances", "error"),
    [
        ([pay("p", "A", "B", 0)], {}, InvalidAmount),
        ([pay("p", "A", "B", -5)], {}, InvalidAmount),
        ([QueuedPayment("p", "A", "B", USD, True)], {}, InvalidAmount),  # bool is not an amount
        ([QueuedPayment("p", "A", "B", USD, 1.5)], {}, InvalidAmount),  # type: ignore[arg-type]
        ([pay("p", "A", "A", 5)], {}, InvalidAgent),
        ([pay("p", "A", "B", 5), pay("p", "B", "A", 5)], {}, DuplicateUetr),
        ([pay("p", "A", "B", 5)], {("A", USD): -1}, InvalidAmount),
    ],
)
def test_solvers_reject_inputs_outside_the_model(
    queue: list[QueuedPayment], balances: dict[tuple[str, str], int], error: type[GatewayError]
) -> None:
    with pytest.raises(error) as raised:
        solve_greedy(queue, balances)
    assert isinstance(raised.value, GatewayError)
