"""SettlementLedger operator functions: fund, defund, setLimits, setBilateralLimit, and the
three LimitExceeded kinds at, just under and just over the limit."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
REF = keccak(text="nostro-credit-0001")
UINT96_MAX = 2**96 - 1
DAY = 86_400


def _limits(contracts, participant, currency=b"USD"):
    return tuple(contracts["ledger"].functions.limitsOf(participant, currency).call())


def _outflow_today(contracts, latest_timestamp, participant, currency=b"USD"):
    return contracts["ledger"].functions.outflowOn(participant, currency, latest_timestamp() // DAY).call()


# ------------------------------------------------------------------------- fund
def test_fund_credits_balance_and_supply_and_emits_funded(client, make_bank, events):
    bank = make_bank()
    receipt = client.fund(bank.address, "USD", 12_345, REF)
    assert events(receipt, "Funded") == [
        {"participant": bank.address, "currency": b"USD", "amount": 12_345, "ref": REF}]
    assert client.balance_of(bank.address, "USD") == 12_345
    assert client.total_supply("USD") == 12_345
    assert client.balance_of(bank.address, "EUR") == 0
    assert client.total_supply("EUR") == 0


def test_fund_accumulates_across_participants(client, make_bank):
    a, b = make_bank(funds={"USD": 100}), make_bank(funds={"USD": 250})
    client.fund(a.address, "USD", 1, REF)
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD")) == (101, 250)
    assert client.total_supply("USD") == 351


def test_fund_reverts_invalid_funding_for_zero_amount(client, make_bank, reverts):
    bank = make_bank()
    with reverts("InvalidFunding", participant=bank.address, currency=b"USD", amount=0):
        client.fund(bank.address, "USD", 0, REF)


def test_fund_reverts_invalid_funding_for_unregistered_participant(client, reverts):
    unknown = Account.create().address
    with reverts("InvalidFunding", participant=unknown, currency=b"USD", amount=500):
        client.fund(unknown, "USD", 500, REF)
    assert client.total_supply("USD") == 0


def test_fund_allows_suspended_participant(client, make_bank):
    # reserves may still move in for a suspended bank (it cannot pay or be paid)
    bank = make_bank()
    client.suspend(bank.address)
    client.fund(bank.address, "USD", 10, REF)
    assert client.balance_of(bank.address, "USD") == 10


def test_fund_reverts_unauthorized_for_relayer(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", "fund(address,bytes3,uint256,bytes32)", [bank.address, b"USD", 1, REF])
    assert client.total_supply("USD") == 0


def test_fund_reverts_unauthorized_for_bank_funding_itself(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=bank.address, neededRole=OPERATOR_ROLE):
        call_as(bank.account, "ledger", "fund(address,bytes3,uint256,bytes32)", [bank.address, b"USD", 10**6, REF])
    assert client.balance_of(bank.address, "USD") == 0


# ----------------------------------------------------------------------- defund
def test_defund_debits_balance_and_supply_and_emits_defunded(client, make_bank, events):
    bank = make_bank(funds={"USD": 1_000})
    receipt = client.defund(bank.address, "USD", 400, REF)
    assert events(receipt, "Defunded") == [{"participant": bank.address, "currency": b"USD", "amount": 400, "ref": REF}]
    assert client.balance_of(bank.address, "USD") == 600
    assert client.total_supply("USD") == 600


def test_defund_takes_the_whole_balance(client, make_bank):
    bank = make_bank(funds={"USD": 1_000})
    client.defund(bank.address, "USD", 1_000, REF)
    assert client.balance_of(bank.address, "USD") == 0
    assert client.total_supply("USD") == 0


def test_defund_reverts_insufficient_balance_one_over(client, make_bank, reverts):
    bank = make_bank(funds={"USD": 1_000})
    with reverts("InsufficientBalance", participant=bank.address, currency=b"USD", balance=1_000, needed=1_001):
        client.defund(bank.address, "USD", 1_001, REF)
    assert client.balance_of(bank.address, "USD") == 1_000


def test_defund_reverts_insufficient_balance_in_other_currency(client, make_bank, reverts):
    bank = make_bank(funds={"USD": 1_000})
    with reverts("InsufficientBalance", participant=bank.address, currency=b"EUR", balance=0, needed=1):
        client.defund(bank.address, "EUR", 1, REF)


def test_defund_reverts_invalid_funding_for_zero_amount(client, make_bank, reverts):
    bank = make_bank(funds={"USD": 1_000})
    with reverts("InvalidFunding", participant=bank.address, currency=b"USD", amount=0):
        client.defund(bank.address, "USD", 0, REF)


def test_defund_reverts_unauthorized_for_relayer(client, make_bank, call_as, reverts):
    bank = make_bank(funds={"USD": 1_000})
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", "defund(address,bytes3,uint256,bytes32)", [bank.address, b"USD", 1, REF])
    assert client.balance_of(bank.address, "USD") == 1_000


# -------------------------------------------------------------------- setLimits
def test_set_limits_stores_limits_and_emits_limits_changed(client, make_bank, events, contracts):
    bank = make_bank()
    receipt = client.set_limits(bank.address, "USD", 500, 2_000)
    assert events(receipt, "LimitsChanged") == [{"participant": bank.address, "currency": b"USD",
                                                  "maxPerPayment": 500, "maxDailyOutflow": 2_000}]
    assert _limits(contracts, bank.address) == (500, 2_000)
    assert _limits(contracts, bank.address, b"EUR") == (0, 0)


def test_set_limits_reverts_unauthorized_for_relayer(client, make_bank, call_as, reverts, contracts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", "setLimits(address,bytes3,uint128,uint128)", [bank.address, b"USD", 1, 1])
    assert _limits(contracts, bank.address) == (0, 0)


@pytest.mark.parametrize("amount", [100, 99], ids=["at", "just_under"])
def test_submit_payment_settles_within_per_payment_limit(client, make_bank, make_order, amount):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_limits(a.address, "USD", 100, 0)
    order, sig = make_order(a, b, amount)
    client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 2


@pytest.mark.parametrize("flags", [0, 1], ids=["plain", "queue_flag"])
def test_submit_payment_reverts_limit_exceeded_kind1_just_over(client, make_bank, make_order, reverts, flags):
    # a per-payment limit can never be met later, so even a queue-flagged order is refused
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_limits(a.address, "USD", 100, 0)
    order, sig = make_order(a, b, 101, flags=flags)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=1, limit=100, wouldBe=101):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0
    assert client.balance_of(a.address, "USD") == 1_000


def test_submit_payment_daily_limit_at_just_under_and_just_over(client, make_bank, make_order, reverts, contracts,
                                                               latest_timestamp):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_limits(a.address, "USD", 0, 300)
    first, sig = make_order(a, b, 299)  # just under
    client.submit_payment(first, sig)
    at, sig = make_order(a, b, 1)  # exactly at the limit
    client.submit_payment(at, sig)
    assert _outflow_today(contracts, latest_timestamp, a.address) == 300
    over, sig = make_order(a, b, 1)  # just over
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=2, limit=300, wouldBe=301):
        client.submit_payment(over, sig)
    assert client.balance_of(a.address, "USD") == 700
    assert client.payment_status(over.uetr) == 0


def test_submit_payment_queues_flagged_order_over_daily_limit(client, make_bank, make_order, events):
    # a daily limit can be met later (next day, or a raised limit), so a flagged order waits
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_limits(a.address, "USD", 0, 300)
    order, sig = make_order(a, b, 301, flags=1)
    receipt = client.submit_payment(order, sig)
    assert [e["uetr"] for e in events(receipt, "PaymentQueued")] == [order.uetr]
    assert client.balance_of(a.address, "USD") == 1_000
    client.settle_queued([order.uetr])  # still over the limit: skipped
    assert client.payment_status(order.uetr) == 1
    client.set_limits(a.address, "USD", 0, 301)
    client.settle_queued([order.uetr])
    assert client.payment_status(order.uetr) == 2


def test_daily_outflow_counts_payments_made_before_the_limit_was_set(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    paid, sig = make_order(a, b, 250)
    client.submit_payment(paid, sig)
    client.set_limits(a.address, "USD", 0, 300)
    order, sig = make_order(a, b, 51)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=2, limit=300, wouldBe=301):
        client.submit_payment(order, sig)


# ------------------------------------------------------------- setBilateralLimit
def test_set_bilateral_limit_emits_bilateral_limit_changed(client, make_bank, events):
    a, b = make_bank(), make_bank()
    receipt = client.set_bilateral_limit(a.address, b.address, "USD", 200)
    assert events(receipt, "BilateralLimitChanged") == [
        {"debtor": a.address, "creditor": b.address, "currency": b"USD", "maxDaily": 200}]


def test_submit_payment_bilateral_limit_at_just_under_and_just_over(client, make_bank, make_order, reverts):
    a, b, c = make_bank(funds={"USD": 1_000}), make_bank(), make_bank()
    client.set_bilateral_limit(a.address, b.address, "USD", 200)
    for amount in (199, 1):  # just under, then exactly at the cap
        order, sig = make_order(a, b, amount)
        client.submit_payment(order, sig)
        assert client.payment_status(order.uetr) == 2
    over, sig = make_order(a, b, 1)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=3, limit=200, wouldBe=201):
        client.submit_payment(over, sig)
    # the cap is per creditor and per currency
    other, sig = make_order(a, c, 500)
    client.submit_payment(other, sig)
    assert client.balance_of(c.address, "USD") == 500


def test_set_bilateral_limit_zero_removes_the_cap(client, make_bank, make_order):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_bilateral_limit(a.address, b.address, "USD", 10)
    client.set_bilateral_limit(a.address, b.address, "USD", 0)
    order, sig = make_order(a, b, 900)
    client.submit_payment(order, sig)
    assert client.balance_of(b.address, "USD") == 900


def test_set_bilateral_limit_reverts_invalid_funding_above_uint96(client, make_bank, reverts):
    a, b = make_bank(), make_bank()
    with reverts("InvalidFunding", participant=a.address, currency=b"USD", amount=UINT96_MAX + 1):
        client.set_bilateral_limit(a.address, b.address, "USD", UINT96_MAX + 1)
    client.set_bilateral_limit(a.address, b.address, "USD", UINT96_MAX)  # the maximum itself is fine


def test_set_bilateral_limit_reverts_unauthorized_for_relayer(client, make_bank, call_as, reverts):
    a, b = make_bank(), make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", "setBilateralLimit(address,address,bytes3,uint256)",
                [a.address, b.address, b"USD", 1])


def test_settle_batch_rejects_limit_exceeded_with_selector(client, make_bank, make_order, events, error_selector):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    client.set_limits(a.address, "USD", 100, 0)
    ok, ok_sig = make_order(a, b, 100)
    over, over_sig = make_order(a, b, 101)
    receipt = client.settle_batch([ok, over], [ok_sig, over_sig])
    assert events(receipt, "PaymentRejected") == [{"uetr": over.uetr, "reason": error_selector("LimitExceeded")}]
    assert (client.payment_status(ok.uetr), client.payment_status(over.uetr)) == (2, 4)
