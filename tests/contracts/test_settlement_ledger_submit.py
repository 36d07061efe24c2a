"""SettlementLedger.submitPayment: settle, queue, and every way an order is refused.

A direct submission is all or nothing: a refused order reverts, so its UETR stays unused
(status 0) and can be submitted again.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_utils import keccak

from chain_gateway.transactions import TransactionFailed

RELAYER_ROLE = keccak(text="RELAYER_ROLE")
UINT96_MAX = 2**96 - 1


# ----------------------------------------------------------------------- settle
def test_submit_payment_settles_and_emits_payment_settled(client, make_bank, make_order, events):
    a, b = make_bank(funds={"USD": 1_000}), make_bank("DE")
    order, sig = make_order(a, b, 400)
    receipt = client.submit_payment(order, sig)
    assert events(receipt, "PaymentSettled") == [{
        "uetr": order.uetr, "debtor": a.address, "creditor": b.address, "currency": b"USD", "amount": 400,
        "instructionHash": order.instruction_hash}]
    assert events(receipt, "PaymentQueued") == []
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD")) == (600, 400)
    assert client.total_supply("USD") == 1_000
    assert client.payment_status(order.uetr) == 2


def test_submit_payment_settles_the_exact_balance(client, make_bank, make_order):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 1_000)
    client.submit_payment(order, sig)
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD")) == (0, 1_000)


def test_submit_payment_settles_flagged_order_directly_when_covered(client, make_bank, make_order, events):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 1_000, flags=1)
    receipt = client.submit_payment(order, sig)
    assert len(events(receipt, "PaymentSettled")) == 1
    assert events(receipt, "PaymentQueued") == []
    assert client.payment_status(order.uetr) == 2


def test_submit_payment_settles_uint96_max_amount(client, make_bank, make_order):
    a, b = make_bank(funds={"USD": UINT96_MAX}), make_bank()
    order, sig = make_order(a, b, UINT96_MAX)
    client.submit_payment(order, sig)
    assert client.balance_of(b.address, "USD") == UINT96_MAX


def test_submit_payment_keeps_currencies_apart(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 1, "EUR")
    with reverts("InsufficientBalance", participant=a.address, currency=b"EUR", balance=0, needed=1):
        client.submit_payment(order, sig)
    assert client.balance_of(a.address, "USD") == 1_000


# ------------------------------------------------------------------------ queue
@pytest.mark.parametrize("flags", [1, 3], ids=["queue", "queue_urgent"])
def test_submit_payment_queues_flagged_order_short_of_liquidity(client, make_bank, make_order, events, flags):
    a, b = make_bank(funds={"USD": 99}), make_bank()
    order, sig = make_order(a, b, 100, flags=flags)
    receipt = client.submit_payment(order, sig)
    assert events(receipt, "PaymentQueued") == [{"uetr": order.uetr, "debtor": a.address, "creditor": b.address,
                                                 "currency": b"USD", "amount": 100, "flags": flags}]
    assert events(receipt, "PaymentSettled") == []
    assert client.payment_status(order.uetr) == 1
    assert client.queued_payment(order.uetr) == {"debtor": a.address, "creditor": b.address, "currency": b"USD",
                                                 "amount": 100, "flags": flags, "held": False, "seq": 1}
    assert client.balance_of(a.address, "USD") == 99  # nothing reserved, nothing moved


def test_submit_payment_numbers_queued_payments_in_arrival_order(client, make_bank, queue_payment):
    a, b = make_bank(), make_bank()
    seqs = [client.queued_payment(queue_payment(a, b, 10 + i).uetr)["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]


@pytest.mark.parametrize("flags", [0, 2], ids=["no_flags", "urgent_only"])
def test_submit_payment_reverts_insufficient_balance_without_queue_flag(client, make_bank, make_order, reverts, flags):
    a, b = make_bank(funds={"USD": 99}), make_bank()
    order, sig = make_order(a, b, 100, flags=flags)
    with reverts("InsufficientBalance", participant=a.address, currency=b"USD", balance=99, needed=100):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0


def test_submit_payment_refused_order_leaves_uetr_reusable(client, make_bank, make_order):
    a, b = make_bank(funds={"USD": 99}), make_bank()
    order, sig = make_order(a, b, 100)
    with pytest.raises(TransactionFailed):
        client.submit_payment(order, sig)
    client.fund(a.address, "USD", 1, b"\0" * 32)
    client.submit_payment(order, sig)  # the same signed order, now covered
    assert client.payment_status(order.uetr) == 2


# --------------------------------------------------------------------- refusals
@pytest.mark.parametrize("first_outcome", ["settled", "queued", "cancelled"])
def test_submit_payment_reverts_duplicate_uetr(client, make_bank, make_order, reverts, first_outcome):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    if first_outcome == "settled":
        first, sig = make_order(a, b, 10)
    else:
        first, sig = make_order(a, b, 5_000, flags=1)
    client.submit_payment(first, sig)
    if first_outcome == "cancelled":
        client.cancel_queued(first.uetr)
    status = client.payment_status(first.uetr)
    again, sig = make_order(a, b, 20, uetr=first.uetr)  # a new, validly signed order reusing the UETR
    with reverts("DuplicateUetr", uetr=first.uetr):
        client.submit_payment(again, sig)
    assert client.payment_status(first.uetr) == status


def test_submit_payment_reverts_invalid_signature_for_other_key(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 10, signer=b.account)
    with reverts("InvalidSignature"):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0


@pytest.mark.parametrize("party", ["debtor", "creditor"])
def test_submit_payment_reverts_not_active_for_suspended_party(client, make_bank, make_order, reverts, party):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    suspended = a if party == "debtor" else b
    client.suspend(suspended.address)
    order, sig = make_order(a, b, 10)
    with reverts("NotActive", participant=suspended.address):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0
    client.reinstate(suspended.address)
    client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 2


def test_submit_payment_reverts_not_active_for_unregistered_creditor(client, make_bank, make_order, reverts):
    a = make_bank(funds={"USD": 1_000})
    outsider = SimpleNamespace(address=Account.create().address)
    order, sig = make_order(a, outsider, 10)
    with reverts("NotActive", participant=outsider.address):
        client.submit_payment(order, sig)
    assert client.balance_of(outsider.address, "USD") == 0


def test_submit_payment_reverts_order_expired(client, make_bank, make_order, reverts, latest_timestamp):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    deadline = latest_timestamp() - 1
    order, sig = make_order(a, b, 10, deadline=deadline)
    with reverts("OrderExpired", deadline=deadline):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0


def test_submit_payment_accepts_deadline_in_the_near_future(client, make_bank, make_order, latest_timestamp):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 10, deadline=latest_timestamp() + 30)
    client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 2


@pytest.mark.parametrize(("case", "amount", "same_party"), [
    ("zero amount", 0, False),
    ("debtor is creditor", 10, True),
    ("amount above uint96", UINT96_MAX + 1, False),
    ("amount is uint256 max", 2**256 - 1, False),
])
def test_submit_payment_reverts_invalid_order(client, make_bank, make_order, reverts, case, amount, same_party):
    a = make_bank(funds={"USD": 1_000})
    b = a if same_party else make_bank()
    order, sig = make_order(a, b, amount, flags=1)  # the queue flag does not rescue an invalid order
    with reverts("InvalidOrder", uetr=order.uetr):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0
    assert client.balance_of(a.address, "USD") == 1_000


def test_submit_payment_reverts_unauthorized_for_operator(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 10)
    with reverts("AccessControlUnauthorizedAccount", account=client.operator.address, neededRole=RELAYER_ROLE):
        client.operator.transact(client.ledger, client.encode_submit(order, sig), gas=250_000)
    assert client.payment_status(order.uetr) == 0


def test_submit_payment_reverts_unauthorized_for_debtor_submitting_itself(client, make_bank, make_order, own_sender,
                                                                          reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 10)
    with reverts("AccessControlUnauthorizedAccount", account=a.address, neededRole=RELAYER_ROLE):
        own_sender(a.account).transact(client.ledger, client.encode_submit(order, sig), gas=250_000)
