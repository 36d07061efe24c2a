"""On-chain limits: operator caps and participant-set limits, each at, just under and just over
its boundary, the stricter of the two enforced, and the UTC day boundary (eth-tester time
travel: after ``time_travel(T)`` the next transaction is mined at exactly T)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chain_gateway.chain import ChainHandle
from chain_gateway.ledger import LedgerClient
from chain_gateway.transactions import TransactionFailed, TxSender

DAY = 86_400
FUNDS = {"USD": 10**9}


@contextlib.contextmanager
def reverts(name: str, **expected: Any) -> Iterator[None]:
    with pytest.raises(TransactionFailed) as info:
        yield
    assert info.value.error_name == name, info.value
    args = {k: (to_checksum_address(v) if isinstance(v, str) and v.startswith("0x") and len(v) == 42 else
                bytes(v) if isinstance(v, (bytes, bytearray)) else v) for k, v in info.value.error_args.items()}
    assert args == expected


@pytest.fixture
def pay(client: LedgerClient, make_order: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Submit a signed payment now (deadline far in the future, time travel included)."""
    def _pay(debtor: Any, creditor: Any, amount: int, currency: str = "USD") -> dict[str, Any]:
        order, sig = make_order(debtor, creditor, amount, currency, deadline=2**40)
        return client.submit_payment(order, sig)
    return _pay


def limit_exceeded(debtor: Any, kind: int, limit: int, would_be: int) -> contextlib.AbstractContextManager[None]:
    return reverts("LimitExceeded", participant=debtor.address, currency=b"USD", kind=kind, limit=limit,
                   wouldBe=would_be)


# --- setting own limits ---------------------------------------------------------------------
def test_a_participant_sets_its_own_limits_from_its_own_key(client: LedgerClient, make_bank: Callable[..., Any],
                                                            own_sender: Callable[..., TxSender]) -> None:
    bank = make_bank()
    receipt = own_sender(bank.account).transact(client.ledger, LedgerClient.encode_set_own_limits("USD", 500, 2000),
                                                gas=150_000)
    assert client.own_limits_of(bank.address, "USD") == (500, 2000)
    assert client.effective_limits(bank.address, "USD") == (500, 2000)
    assert client.limits_of(bank.address, "USD") == (0, 0)
    contract = client.w3.eth.contract(address=client.ledger, abi=client.deployment.abi["SettlementLedger"])
    [event] = contract.events.OwnLimitsChanged().process_receipt(receipt)
    assert dict(event["args"]) == {"participant": bank.address, "currency": b"USD", "maxPerPayment": 500,
                                   "maxDailyOutflow": 2000}


def test_the_relayer_sets_own_limits_for_a_participant_and_nobody_else_may(
        client: LedgerClient, make_bank: Callable[..., Any], own_sender: Callable[..., TxSender]) -> None:
    bank, other = make_bank(), make_bank()
    client.set_own_limits_for(bank.address, "USD", 700, 0)
    assert client.own_limits_of(bank.address, "USD") == (700, 0)
    from chain_gateway.transactions import encode_call
    data = encode_call("setOwnLimitsFor(address,bytes3,uint128,uint128)", ["address", "bytes3", "uint128", "uint128"],
                       [bank.address, b"USD", 10**12, 0])
    with pytest.raises(TransactionFailed) as info:
        own_sender(other.account).transact(client.ledger, data, gas=150_000)  # another bank cannot loosen it
    assert info.value.error_name == "AccessControlUnauthorizedAccount"
    assert client.own_limits_of(bank.address, "USD") == (700, 0)


def test_an_unregistered_account_cannot_set_own_limits(client: LedgerClient) -> None:
    stranger = Account.create()
    with reverts("NotActive", participant=stranger.address):
        client.set_own_limits_for(stranger.address, "USD", 1, 1)


@pytest.mark.parametrize("kind,field", [(1, 0), (2, 1)], ids=["per-payment", "daily"])
def test_own_limits_at_under_and_over_the_operator_cap(client: LedgerClient, make_bank: Callable[..., Any],
                                                       kind: int, field: int) -> None:
    bank = make_bank()
    client.set_limits(bank.address, "USD", 1000, 5000)
    cap = (1000, 5000)[field]

    def own(value: int) -> tuple[int, int]:
        return (value, 0) if field == 0 else (0, value)

    client.set_own_limits_for(bank.address, "USD", *own(cap - 1))  # just under: allowed
    client.set_own_limits_for(bank.address, "USD", *own(cap))  # at: allowed
    with reverts("LimitAboveCap", participant=bank.address, currency=b"USD", kind=kind, cap=cap, requested=cap + 1):
        client.set_own_limits_for(bank.address, "USD", *own(cap + 1))  # just over: refused
    assert client.own_limits_of(bank.address, "USD") == own(cap)
    client.set_own_limits_for(bank.address, "USD", 0, 0)  # 0 = no own limit: the cap alone applies
    assert client.effective_limits(bank.address, "USD") == (1000, 5000)


# --- enforcement at the boundaries -------------------------------------------------------------
@pytest.mark.parametrize("who", ["operator-cap", "own-limit"])
def test_max_per_payment_at_under_and_over(client: LedgerClient, make_bank: Callable[..., Any], pay: Any,
                                           who: str) -> None:
    a, b = make_bank(funds=FUNDS), make_bank()
    if who == "operator-cap":
        client.set_limits(a.address, "USD", 100, 0)
    else:
        client.set_own_limits_for(a.address, "USD", 100, 0)
    pay(a, b, 99)  # just under
    pay(a, b, 100)  # at
    with limit_exceeded(a, 1, 100, 101):
        pay(a, b, 101)  # just over


@pytest.mark.parametrize("who", ["operator-cap", "own-limit"])
def test_max_daily_outflow_at_under_and_over(client: LedgerClient, make_bank: Callable[..., Any], pay: Any,
                                             who: str) -> None:
    a, b = make_bank(funds=FUNDS), make_bank()
    if who == "operator-cap":
        client.set_limits(a.address, "USD", 0, 300)
    else:
        client.set_own_limits_for(a.address, "USD", 0, 300)
    pay(a, b, 200)
    pay(a, b, 99)  # 299: just under
    pay(a, b, 1)  # 300: at
    with limit_exceeded(a, 2, 300, 301):
        pay(a, b, 1)  # 301: just over


def test_bilateral_cap_at_under_and_over(client: LedgerClient, make_bank: Callable[..., Any], pay: Any) -> None:
    a, b, c = make_bank(funds=FUNDS), make_bank(), make_bank()
    client.set_bilateral_limit(a.address, b.address, "USD", 50)
    pay(a, b, 49)  # just under
    pay(a, b, 1)  # at
    with limit_exceeded(a, 3, 50, 51):
        pay(a, b, 1)  # just over
    pay(a, c, 500)  # toward another counterparty: no cap


def test_the_stricter_of_cap_and_own_limit_binds(client: LedgerClient, make_bank: Callable[..., Any],
                                                 pay: Any) -> None:
    a, b = make_bank(funds=FUNDS), make_bank()
    client.set_limits(a.address, "USD", 200, 0)
    client.set_own_limits_for(a.address, "USD", 150, 0)
    assert client.effective_limits(a.address, "USD") == (150, 0)
    pay(a, b, 150)
    with limit_exceeded(a, 1, 150, 151):
        pay(a, b, 151)
    client.set_limits(a.address, "USD", 120, 0)  # the operator lowers the cap below the own limit
    assert client.effective_limits(a.address, "USD") == (120, 0)
    pay(a, b, 120)
    with limit_exceeded(a, 1, 120, 121):
        pay(a, b, 121)
    client.set_limits(a.address, "USD", 0, 0)  # no cap any more: the own limit still holds
    with limit_exceeded(a, 1, 150, 151):
        pay(a, b, 151)


# --- the UTC day boundary --------------------------------------------------------------------
def test_daily_and_bilateral_limits_reset_at_utc_midnight(client: LedgerClient, chain: ChainHandle,
                                                          make_bank: Callable[..., Any], pay: Any) -> None:
    a, b = make_bank(funds=FUNDS), make_bank()
    client.set_own_limits_for(a.address, "USD", 0, 300)
    client.set_bilateral_limit(a.address, b.address, "USD", 250)
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    midnight = (int(chain.w3.eth.get_block("latest")["timestamp"]) // DAY + 2) * DAY
    today = midnight // DAY - 1

    tester.time_travel(midnight - 3)  # the next transactions are mined at 23:59:57, :58, :59
    pay(a, b, 200)
    pay(a, b, 50)  # bilateral at its cap, daily at 250
    with limit_exceeded(a, 3, 250, 251):
        pay(a, b, 1)  # 23:59:59, still the same UTC day
    outflow = client.w3.eth.call({"to": client.ledger, "data": _outflow_call(a.address, today)})
    assert int.from_bytes(bytes(outflow), "big") == 250

    tester.time_travel(midnight)  # 00:00:00 of the next UTC day
    pay(a, b, 250)  # both counters start again
    assert int(client.w3.eth.get_block("latest")["timestamp"]) == midnight
    with limit_exceeded(a, 3, 250, 251):
        pay(a, b, 1)
    c = make_bank()
    pay(a, c, 50)  # daily outflow now at 300: at the limit
    with limit_exceeded(a, 2, 300, 301):
        pay(a, c, 1)


def _outflow_call(participant: str, day: int) -> bytes:
    from chain_gateway.transactions import encode_call
    return encode_call("outflowOn(address,bytes3,uint64)", ["address", "bytes3", "uint64"], [participant, b"USD", day])


def test_effective_limits_follow_every_change_of_cap_or_own_limit(client: LedgerClient,
                                                                  make_bank: Callable[..., Any]) -> None:
    a = make_bank()
    steps: list[tuple[str, tuple[int, int], tuple[int, int]]] = [
        ("own", (500, 0), (500, 0)),  # own only
        ("cap", (800, 9000), (500, 9000)),  # a looser cap: own still binds per payment
        ("own", (0, 7000), (800, 7000)),  # own per-payment dropped, own daily tighter
        ("cap", (300, 0), (300, 7000)),  # cap lowered below everything
        ("cap", (0, 0), (0, 7000)),  # caps removed
        ("own", (0, 0), (0, 0)),  # nothing left
    ]
    for who, values, effective in steps:
        if who == "cap":
            client.set_limits(a.address, "USD", *values)
        else:
            client.set_own_limits_for(a.address, "USD", *values)
        assert client.effective_limits(a.address, "USD") == effective, (who, values)
