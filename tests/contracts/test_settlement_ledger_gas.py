"""LedgerClient gives gas explicitly (no estimation): check its budgets cover what the
contract really burns, in the cheap steady state and in the worst case (first payment to a
creditor, first outflow of the day, queued items that write three new slots).

gasUsed is net of refunds; a transaction needs its gas limit to cover the gross figure,
so the worst cases are run through LedgerClient itself rather than compared to gasUsed.
"""
from __future__ import annotations

import pytest

from chain_gateway.ledger import GAS_BATCH_ITEM, GAS_SUBMIT, LedgerClient


def test_submit_payment_gas_fits_client_budget_in_steady_state(client, make_bank, make_order):
    a, b = make_bank(funds={"USD": 10_000}), make_bank(funds={"USD": 1})
    warm_up, sig = make_order(a, b, 1)
    client.submit_payment(warm_up, sig)  # today's outflow counter exists
    order, sig = make_order(a, b, 100)
    used = client.submit_payment(order, sig)["gasUsed"]
    assert used < 100_000, f"submitPayment used {used} gas"


@pytest.mark.parametrize("flags", [0, 1], ids=["settle", "queue"])
def test_submit_payment_gas_fits_client_budget_worst_case(client, make_bank, make_order, flags):
    a = make_bank(funds={} if flags else {"USD": 10_000})  # no outflow recorded today yet
    b = make_bank()  # never paid before: a fresh balance slot
    order, sig = make_order(a, b, 100, flags=flags)
    used = client.submit_payment(order, sig)["gasUsed"]
    assert client.payment_status(order.uetr) == (1 if flags else 2)
    assert used < GAS_SUBMIT


def test_settle_batch_gas_per_item_fits_client_budget_in_steady_state(client, make_bank, make_order):
    banks = [make_bank(funds={"USD": 10_000}) for _ in range(4)]
    warm = [make_order(banks[i], banks[(i + 1) % 4], 1) for i in range(4)]
    client.settle_batch([o for o, _ in warm], [s for _, s in warm])
    signed = [make_order(banks[i % 4], banks[(i + 1) % 4], 10 + i) for i in range(20)]
    receipt = client.settle_batch([o for o, _ in signed], [s for _, s in signed])
    assert all(client.payment_status(o.uetr) == 2 for o, _ in signed)
    per_item = (receipt["gasUsed"] - 21_000) / len(signed)
    assert per_item < GAS_BATCH_ITEM, f"settleBatch used {per_item:.0f} gas per item"


def test_settle_batch_gas_fits_client_budget_for_fresh_creditors(client, make_bank, make_order):
    n = 20
    debtors = [make_bank(funds={"USD": 100}) for _ in range(n)]
    creditors = [make_bank() for _ in range(n)]
    signed = [make_order(debtors[i], creditors[i], 10) for i in range(n)]
    client.settle_batch([o for o, _ in signed], [s for _, s in signed])
    assert all(client.payment_status(o.uetr) == 2 for o, _ in signed)


def test_settle_batch_gas_fits_client_budget_for_queued_items(client, make_bank, make_order):
    a, b = make_bank(), make_bank()
    signed = [make_order(a, b, 10, flags=1) for _ in range(5)]
    client.settle_batch([o for o, _ in signed], [s for _, s in signed])
    assert all(client.payment_status(o.uetr) == 1 for o, _ in signed)


def test_settle_queued_gas_fits_client_budget_for_fresh_creditors(client, make_bank, queue_payment):
    n = 10
    debtors = [make_bank() for _ in range(n)]
    queued = [queue_payment(debtors[i], make_bank(), 10) for i in range(n)]
    for d in debtors:
        client.fund(d.address, "USD", 10, b"\0" * 32)
    client.settle_queued([o.uetr for o in queued])
    assert all(client.payment_status(o.uetr) == 2 for o in queued)


def test_settle_gridlock_gas_fits_client_budget_for_a_b_c_a_cycle(client: LedgerClient, make_bank, queue_payment):
    a, b, c = make_bank(), make_bank(), make_bank()
    cycle = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 100)]
    client.settle_gridlock([o.uetr for o in cycle])
    assert all(client.payment_status(o.uetr) == 2 for o in cycle)


def test_settle_gridlock_gas_fits_client_budget_for_ten_bank_ring(client: LedgerClient, make_bank, queue_payment):
    # bank i pays bank i+1 (1000 + i): every bank but the first is 1 short, and no bank has
    # paid anything today yet (fresh outflow counters): ~50k gas per payment
    n = 10
    ring = [make_bank(funds={"USD": 1}) for _ in range(n)]
    queued = [queue_payment(ring[i], ring[(i + 1) % n], 1_000 + i) for i in range(n)]
    client.settle_gridlock([o.uetr for o in queued])
    assert all(client.payment_status(o.uetr) == 2 for o in queued)

