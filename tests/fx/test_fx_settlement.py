"""FxSettlement + SettlementLedger.settleFxLegs: payment-versus-payment on eth-tester.

Exact amounts across 0-, 2- and 3-decimal currencies; every rejection leaves every balance as it
was; capacity is cumulative per quote; a relayer can neither forge nor swap a quote."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from chain_gateway.fx import (
    RATE_SCALE,
    debit_amount,
    fx_order_digest,
    fx_order_typed_data,
    quote_digest,
    quote_typed_data,
)
from chain_gateway.transactions import TransactionFailed, encode_call
from tests.fx.conftest import balances

SUPPLY_CURRENCIES = ["USD", "JPY", "EUR", "GBP", "BHD"]


def _supply(client):
    return {c: client.total_supply(c) for c in SUPPLY_CURRENCIES}


# ------------------------------------------------------------------ digests
def test_fx_digests_match_eth_account_and_the_contract(fx_env, make_bank, make_provider):
    a, b, p = make_bank(), make_bank(), make_provider()
    quote, _ = fx_env.quote(p, "USD", "JPY", 150 * RATE_SCALE // 100, 10**9)
    order, _ = fx_env.order(a, b, quote, 15_000)
    for typed, digest, fn, abi in (
            (quote_typed_data(quote, fx_env.chain_id, fx_env.fx), quote_digest(quote, fx_env.chain_id, fx_env.fx),
             "hashFxQuote((bytes32,address,bytes3,bytes3,uint256,uint256,uint64))", quote.as_tuple()),
            (fx_order_typed_data(order, fx_env.chain_id, fx_env.fx),
             fx_order_digest(order, fx_env.chain_id, fx_env.fx),
             "hashFxOrder((bytes16,address,address,bytes3,uint256,bytes32,address,bytes3,uint256,uint64,bytes32))",
             order.as_tuple())):
        signable = encode_typed_data(full_message=typed)
        assert keccak(b"\x19" + signable.version + signable.header + signable.body) == digest
        raw = fx_env.client.w3.eth.call({"to": fx_env.fx, "data": encode_call(fn, [fn[fn.index("(") + 1:-1]], [abi])})
        assert bytes(raw) == digest


# ------------------------------------------------------------------ exact amounts
@pytest.mark.parametrize(("x", "y", "rate", "amount", "debit"), [
    # 1 USD = 151.37 JPY: 151.37 JPY per 100 cents -> 1.5137 JPY minor per USD minor.
    # 1,000,000 JPY costs ceil(1,000,000 / 1.5137) = 660,633 cents = 6,606.33 USD.
    ("USD", "JPY", 15137 * 10**14, 1_000_000, 660_633),
    # 1 EUR = 0.8563 GBP (same exponent): 100.00 GBP costs ceil(10000 / 0.8563) = 11,679 cents.
    ("EUR", "GBP", 8563 * 10**14, 10_000, 11_679),
    # 1 JPY = 0.002516 BHD: 1 JPY minor = 2.516 fils. 1.000 BHD (1000 fils) costs ceil(1000/2.516) = 398 JPY.
    ("JPY", "BHD", 2516 * 10**15, 1_000, 398),
    # an exact division does not round: 2 fils per yen, 1,000 fils cost exactly 500 JPY
    ("JPY", "BHD", 2 * RATE_SCALE, 1_000, 500),
])
def test_fx_pvp_moves_exact_amounts(fx_env, make_bank, make_provider, events, x, y, rate, amount, debit):
    assert debit_amount(amount, rate) == debit
    a, b = make_bank(funds={x: 10**9}), make_bank()
    p = make_provider(funds={y: 10**9})
    parties = {"debtor": a, "creditor": b, "provider": p}
    before, supply = balances(fx_env.client, parties, [x, y]), _supply(fx_env.client)
    quote, qsig = fx_env.quote(p, x, y, rate, 10**8)
    order, sig = fx_env.order(a, b, quote, amount)
    receipt, outcomes = fx_env.settle([(order, sig, quote, qsig)])
    assert outcomes[order.uetr].kind == "settled"
    after = balances(fx_env.client, parties, [x, y])
    assert after == {**before, ("debtor", x): before[("debtor", x)] - debit,
                     ("provider", x): before[("provider", x)] + debit,
                     ("provider", y): before[("provider", y)] - amount, ("creditor", y): amount}
    assert _supply(fx_env.client) == supply  # no money created
    # rounded up: the debtor pays at least the amount's worth, and less than one X minor unit more
    assert debit * rate >= amount * RATE_SCALE > (debit - 1) * rate
    assert events(receipt, "FxSettled") == [{"uetr": order.uetr, "quoteId": quote.quote_id, "provider": p.address,
                                             "debitCurrency": x.encode(), "debitAmount": debit,
                                             "creditCurrency": y.encode(), "creditAmount": amount}]
    assert events(receipt, "PaymentSettled") == [{"uetr": order.uetr, "debtor": a.address, "creditor": b.address,
                                                  "currency": y.encode(), "amount": amount,
                                                  "instructionHash": order.instruction_hash}]
    # FxSettled comes first, so an indexer knows the payment's four legs when PaymentSettled arrives
    names = [log["topics"][0] for log in receipt["logs"]]
    assert names.index(keccak(text="FxSettled(bytes16,bytes32,address,bytes3,uint256,bytes3,uint256)")) < \
        names.index(keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)"))
    assert fx_env.client.payment_status(order.uetr) == 2
    assert fx_env.used(quote) == amount


# ------------------------------------------------------------------ rejections: nothing moves
def _rejected(fx_env, parties, currencies, items, reason, status):
    before, supply = balances(fx_env.client, parties, currencies), _supply(fx_env.client)
    _, outcomes = fx_env.settle(items)
    order = items[-1][0]
    assert (outcomes[order.uetr].kind, outcomes[order.uetr].reason) == ("rejected", reason)
    assert balances(fx_env.client, parties, currencies) == before
    assert _supply(fx_env.client) == supply
    assert fx_env.client.payment_status(order.uetr) == status
    return outcomes


def test_fx_expired_quote_is_rejected_and_nothing_moves(fx_env, make_bank, make_provider, latest_timestamp):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6, expiry=latest_timestamp() - 1)
    order, sig = fx_env.order(a, b, quote, 100)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)], "FxQuoteExpired", 4)
    assert fx_env.used(quote) == 0


def test_fx_capacity_is_cumulative_and_cannot_be_replayed_past(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 100)
    first = fx_env.order(a, b, quote, 60)
    too_much = fx_env.order(a, b, quote, 50)
    rest = fx_env.order(a, b, quote, 40)
    _, outcomes = fx_env.settle([(*first, quote, qsig), (*too_much, quote, qsig), (*rest, quote, qsig)])
    assert [outcomes[o.uetr].kind for o, _ in (first, too_much, rest)] == ["settled", "rejected", "settled"]
    assert outcomes[too_much[0].uetr].reason == "FxCapacityExceeded"
    assert fx_env.used(quote) == 100
    # the same signed quote, replayed with a fresh order, finds no capacity left
    replay = fx_env.order(a, b, quote, 1)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(*replay, quote, qsig)], "FxCapacityExceeded", 4)
    assert fx_env.client.balance_of(b.address, "EUR") == 100


def test_fx_forged_provider_signature_is_refused(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    forger = Account.create()
    quote, forged = fx_env.quote(p, "USD", "EUR", 2 * RATE_SCALE, 10**6, signer=forger)
    order, sig = fx_env.order(a, b, quote, 100)
    # a bad quote is the relayer's fault, not the debtor's: the UETR stays unused
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, forged)], "InvalidSignature", 0)


def test_fx_quote_signed_by_a_participant_without_the_fx_role_is_refused(fx_env, make_bank):
    a, b, not_fx = make_bank(funds={"USD": 10**6}), make_bank(), make_bank(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(not_fx, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    _rejected(fx_env, {"a": a, "b": b, "q": not_fx}, ["USD", "EUR"], [(order, sig, quote, qsig)], "InvalidSignature", 0)


def test_fx_provider_without_credit_currency_moves_nothing(fx_env, make_bank, make_provider):
    a, b = make_bank(funds={"USD": 10**6}), make_bank(funds={"EUR": 7})
    p = make_provider(funds={"USD": 5, "EUR": 99})  # one EUR cent short of the payment
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)],
              "InsufficientBalance", 4)
    assert fx_env.used(quote) == 0


def test_fx_debtor_without_debit_currency_moves_nothing(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 99}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)],
              "InsufficientBalance", 4)


def test_fx_relayer_cannot_swap_the_quote(fx_env, make_bank, make_provider):
    """The debtor's signature binds quote id and provider: a relayer that pairs the order with
    another (worse) quote, or edits the order to name it, is refused and nothing moves."""
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    good, good_sig = fx_env.quote(p, "USD", "EUR", 2 * RATE_SCALE, 10**6)
    worse, worse_sig = fx_env.quote(p, "USD", "EUR", RATE_SCALE // 2, 10**6)
    order, sig = fx_env.order(a, b, good, 100)
    parties = {"a": a, "b": b, "p": p}
    _rejected(fx_env, parties, ["USD", "EUR"], [(order, sig, worse, worse_sig)], "InvalidSignature", 0)
    from dataclasses import replace
    edited = replace(order, quote_id=worse.quote_id, max_debit=10**6)
    _rejected(fx_env, parties, ["USD", "EUR"], [(edited, sig, worse, worse_sig)], "InvalidSignature", 0)
    # the untouched order still settles with its own quote: 100 EUR minor at 2 per USD minor = 50
    _, outcomes = fx_env.settle([(order, sig, good, good_sig)])
    assert outcomes[order.uetr].kind == "settled"
    assert fx_env.client.balance_of(a.address, "USD") == 10**6 - 50


def test_fx_debit_above_the_debtors_maximum_is_refused(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", 3 * RATE_SCALE, 10**6)  # 100 EUR minor -> 34 USD minor
    order, sig = fx_env.order(a, b, quote, 100, max_debit=33)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)], "FxDebitAboveMax", 4)


def test_fx_expired_order_and_duplicate_uetr_change_nothing(fx_env, make_bank, make_provider, latest_timestamp):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    late = fx_env.order(a, b, quote, 100, deadline=latest_timestamp() - 1)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(*late, quote, qsig)], "OrderExpired", 0)
    order, sig = fx_env.order(a, b, quote, 100)
    fx_env.settle([(order, sig, quote, qsig)])
    again = fx_env.order(a, b, quote, 100, uetr=order.uetr)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(*again, quote, qsig)], "DuplicateUetr", 2)
    assert fx_env.used(quote) == 100


def test_fx_debtor_limits_apply_in_the_debit_currency(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    fx_env.client.set_limits(a.address, "USD", 40, 0)
    quote, qsig = fx_env.quote(p, "USD", "EUR", 2 * RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)  # costs 50 USD minor > 40
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)], "LimitExceeded", 4)


def test_fx_suspended_provider_is_refused(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    fx_env.client.suspend(p.address)
    _rejected(fx_env, {"a": a, "b": b, "p": p}, ["USD", "EUR"], [(order, sig, quote, qsig)], "NotActive", 4)


def test_fx_one_bad_item_does_not_stop_the_batch(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 150})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    items = [(*fx_env.order(a, b, quote, amount), quote, qsig) for amount in (100, 100, 50)]
    _, outcomes = fx_env.settle(items)
    assert [outcomes[i[0].uetr].kind for i in items] == ["settled", "rejected", "settled"]
    assert fx_env.client.balance_of(b.address, "EUR") == 150


# ------------------------------------------------------------------ access
def test_fx_batch_only_from_a_relayer(fx_env, make_bank, make_provider, own_sender, stranger):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    from chain_gateway.fx import encode_fx_batch
    data = encode_fx_batch([order], [sig], [quote], [qsig])
    with pytest.raises(TransactionFailed) as info:
        own_sender(stranger).transact(fx_env.fx, data, gas=1_000_000)
    assert info.value.error_name is None or info.value.error_name == "FxUnauthorized"
    assert fx_env.client.payment_status(order.uetr) == 0


def test_settle_fx_legs_only_from_the_fx_contract(fx_env, make_bank, make_provider, call_as, reverts):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    legs = (b"\x01" * 16, a.address, b.address, p.address, b"USD", 100, b"EUR", 100, b"\x02" * 32, b"\x03" * 32)
    with reverts("AccessControlUnauthorizedAccount", account=fx_env.client.relayer.address,
                 neededRole=keccak(text="FX_SETTLER_ROLE")):
        call_as(fx_env.client.relayer, "ledger",
                "settleFxLegs((bytes16,address,address,address,bytes3,uint256,bytes3,uint256,bytes32,bytes32),bytes4)",
                [legs, b"\0" * 4])
    assert fx_env.client.balance_of(a.address, "USD") == 10**6


def test_fx_batch_reverts_whole_while_paused(fx_env, make_bank, make_provider):
    a, b, p = make_bank(funds={"USD": 10**6}), make_bank(), make_provider(funds={"EUR": 10**6})
    quote, qsig = fx_env.quote(p, "USD", "EUR", RATE_SCALE, 10**6)
    order, sig = fx_env.order(a, b, quote, 100)
    fx_env.client.pause()
    with pytest.raises(TransactionFailed) as info:
        from chain_gateway.fx import encode_fx_batch
        fx_env.client.relayer.transact(fx_env.fx, encode_fx_batch([order], [sig], [quote], [qsig]), gas=1_000_000)
    assert info.value.error_name == "EnforcedPause"
    fx_env.client.unpause()
    assert fx_env.client.payment_status(order.uetr) == 0


def test_fx_contract_is_found_from_the_ledgers_role_grants(fx_env):
    from chain_gateway.fx import ensure_fx_settlement, find_fx_settlement
    assert find_fx_settlement(fx_env.client) == fx_env.fx
    assert ensure_fx_settlement(fx_env.client) == fx_env.fx  # found: nothing deployed again
