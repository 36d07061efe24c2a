"""FIFO-bypass release: what the queue does on its own when a balance rises."""
from __future__ import annotations

from chain_gateway.lsm import QueuedPayment, release_in_order
from chain_gateway.lsm.model import Account

USD = "USD"


def pay(key: str, debtor: str, creditor: str, amount: int, *, seq: int, priority: int = 0) -> QueuedPayment:
    return QueuedPayment(key, debtor, creditor, USD, amount, priority=priority, seq=seq)


def test_release_in_order_bypasses_a_payment_that_does_not_fit() -> None:
    balances: dict[Account, int] = {("A", USD): 100}
    queue = [pay("big", "A", "B", 150, seq=1), pay("mid", "A", "C", 80, seq=2), pay("small", "A", "D", 30, seq=3)]
    assert release_in_order(queue, balances) == ["mid"]
    assert balances == {("A", USD): 20, ("C", USD): 80}


def test_release_in_order_settles_urgent_before_older_normal_payments() -> None:
    balances: dict[Account, int] = {("A", USD): 100}
    queue = [pay("normal", "A", "B", 60, seq=1), pay("urgent", "A", "C", 70, seq=2, priority=1)]
    assert release_in_order(queue, balances) == ["urgent"]
    assert balances[("A", USD)] == 30


def test_release_in_order_is_fifo_within_a_priority_whatever_the_input_order() -> None:
    balances: dict[Account, int] = {("A", USD): 100}
    queue = [pay("second", "A", "C", 60, seq=2), pay("first", "A", "B", 60, seq=1)]
    assert release_in_order(queue, balances) == ["first"]


def test_release_in_order_uses_credits_received_earlier_in_the_same_pass() -> None:
    balances: dict[Account, int] = {("A", USD): 100, ("B", USD): 50}
    queue = [pay("ab", "A", "B", 100, seq=1), pay("bc", "B", "C", 150, seq=2)]
    assert release_in_order(queue, balances) == ["ab", "bc"]
    assert balances == {("A", USD): 0, ("B", USD): 0, ("C", USD): 150}


def test_release_in_order_until_stable_revisits_skipped_payments() -> None:
    queue = [pay("bc", "B", "C", 150, seq=1), pay("ab", "A", "B", 100, seq=2)]
    one_pass: dict[Account, int] = {("A", USD): 100, ("B", USD): 50}
    assert release_in_order(queue, one_pass) == ["ab"]
    stable: dict[Account, int] = {("A", USD): 100, ("B", USD): 50}
    assert release_in_order(queue, stable, until_stable=True) == ["ab", "bc"]
    assert stable[("C", USD)] == 150


def test_release_in_order_leaves_a_gridlock_untouched() -> None:
    balances: dict[Account, int] = {}
    queue = [pay("ab", "A", "B", 100, seq=1), pay("ba", "B", "A", 100, seq=2)]
    assert release_in_order(queue, balances, until_stable=True) == []
    assert balances == {}
