"""SettlementLedger queue: settleQueued (FIFO bypass, holds), settleGridlock (simultaneous
net settlement), and cancelQueued / setHold / setPriority by the debtor or the relayer."""
from __future__ import annotations

import pytest
from eth_utils import keccak

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
FUND_REF = b"\0" * 32
GAS_GRIDLOCK = 3_000_000


@pytest.fixture
def gridlock(client, call_as):
    """settleGridlock from the operator with ample gas: these tests are about the contract's
    rules; LedgerClient's gas budget is checked in test_settle_gridlock_gas_fits_client_budget."""
    return lambda uetrs: call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [list(uetrs)],
                                 gas=GAS_GRIDLOCK)


# ------------------------------------------------------------------ settleQueued
def test_settle_queued_bypasses_head_that_does_not_fit(client, make_bank, queue_payment, events):
    a, b = make_bank(), make_bank()
    head = queue_payment(a, b, 100)
    later = queue_payment(a, b, 30)
    client.fund(a.address, "USD", 50, FUND_REF)

    receipt = client.settle_queued([head.uetr, later.uetr])

    assert events(receipt, "PaymentSettled") == [{"uetr": later.uetr, "debtor": a.address, "creditor": b.address,
                                                  "currency": b"USD", "amount": 30,
                                                  "instructionHash": later.instruction_hash}]
    assert events(receipt, "QueueBatchSettled") == [{"count": 1, "gridlock": False}]
    assert (client.payment_status(head.uetr), client.payment_status(later.uetr)) == (1, 2)
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD")) == (20, 30)


def test_settle_queued_settles_in_the_given_order(client, make_bank, queue_payment):
    # 100 available: the list order decides that the 70 settles and the 40 then no longer fits
    a, b = make_bank(), make_bank()
    p40, p70 = queue_payment(a, b, 40), queue_payment(a, b, 70)
    client.fund(a.address, "USD", 100, FUND_REF)
    client.settle_queued([p70.uetr, p40.uetr])
    assert (client.payment_status(p70.uetr), client.payment_status(p40.uetr)) == (2, 1)


def test_settle_queued_skips_held_payment(client, make_bank, queue_payment, events):
    a, b = make_bank(), make_bank()
    held = queue_payment(a, b, 100)
    client.set_hold(held.uetr, True)
    client.fund(a.address, "USD", 1_000, FUND_REF)
    receipt = client.settle_queued([held.uetr])
    assert client.payment_status(held.uetr) == 1
    assert events(receipt, "QueueBatchSettled") == []  # nothing settled, no batch event
    client.set_hold(held.uetr, False)
    client.settle_queued([held.uetr])
    assert client.payment_status(held.uetr) == 2


def test_settle_queued_ignores_uetrs_not_queued(client, make_bank, make_order, queue_payment):
    a, b = make_bank(funds={"USD": 100}), make_bank()
    settled, sig = make_order(a, b, 100)
    client.submit_payment(settled, sig)
    cancelled = queue_payment(a, b, 10)
    client.cancel_queued(cancelled.uetr)
    client.fund(a.address, "USD", 1_000, FUND_REF)
    client.settle_queued([settled.uetr, cancelled.uetr, b"\x42" * 16])
    assert client.payment_status(cancelled.uetr) == 3
    assert client.balance_of(b.address, "USD") == 100  # the settled one did not move again


def test_settle_queued_skips_suspended_parties(client, make_bank, queue_payment):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    client.fund(a.address, "USD", 100, FUND_REF)
    client.suspend(b.address)
    client.settle_queued([order.uetr])
    assert client.payment_status(order.uetr) == 1
    client.reinstate(b.address)
    client.settle_queued([order.uetr])
    assert client.payment_status(order.uetr) == 2


def test_settle_queued_allowed_for_operator(client, make_bank, queue_payment, call_as):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    client.fund(a.address, "USD", 100, FUND_REF)
    call_as(client.operator, "ledger", "settleQueued(bytes16[])", [[order.uetr]])
    assert client.payment_status(order.uetr) == 2


def test_settle_queued_reverts_unauthorized_for_bank(client, make_bank, queue_payment, call_as, reverts):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    client.fund(a.address, "USD", 100, FUND_REF)
    with reverts("AccessControlUnauthorizedAccount", account=b.address, neededRole=RELAYER_ROLE):
        call_as(b.account, "ledger", "settleQueued(bytes16[])", [[order.uetr]])
    assert client.payment_status(order.uetr) == 1


# ---------------------------------------------------------------- settleGridlock
def test_settle_gridlock_settles_a_b_c_a_cycle_with_zero_balances(client, make_bank, queue_payment, events, gridlock):
    a, b, c = make_bank("US"), make_bank("DE"), make_bank("GB")
    cycle = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 100)]
    uetrs = [o.uetr for o in cycle]
    client.settle_queued(uetrs)  # no single payment fits on its own
    assert [client.payment_status(u) for u in uetrs] == [1, 1, 1]

    receipt = gridlock(uetrs)

    assert [client.payment_status(u) for u in uetrs] == [2, 2, 2]
    assert [client.balance_of(x.address, "USD") for x in (a, b, c)] == [0, 0, 0]
    assert client.total_supply("USD") == 0
    assert events(receipt, "PaymentSettled") == [
        {"uetr": o.uetr, "debtor": o.debtor, "creditor": o.creditor, "currency": b"USD", "amount": 100,
         "instructionHash": o.instruction_hash} for o in cycle]
    assert events(receipt, "QueueBatchSettled") == [{"count": 3, "gridlock": True}]


def test_settle_gridlock_uses_balances_for_net_positions(client, make_bank, queue_payment, gridlock):
    # A owes 100 and is owed 80: its 20 of balance covers its net position exactly
    a, b = make_bank(funds={"USD": 20}), make_bank()
    ab, ba = queue_payment(a, b, 100), queue_payment(b, a, 80)
    gridlock([ab.uetr, ba.uetr])
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD")) == (0, 20)


def test_settle_gridlock_reverts_infeasible_and_moves_nothing(client, make_bank, queue_payment, reverts, gridlock):
    # A pays 100 but receives only 50: A's net position is -50
    a, b, c = make_bank(), make_bank(), make_bank()
    ab, bc, ca = queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 50)
    uetrs = [ab.uetr, bc.uetr, ca.uetr]
    with reverts("GridlockInfeasible", participant=a.address, currency=b"USD", available=50, needed=100):
        gridlock(uetrs)
    assert [client.payment_status(u) for u in uetrs] == [1, 1, 1]
    assert [client.balance_of(x.address, "USD") for x in (a, b, c)] == [0, 0, 0]


def test_settle_gridlock_reverts_item_invalid_for_held_payment(client, make_bank, queue_payment, reverts, gridlock):
    a, b = make_bank(), make_bank()
    ab, ba = queue_payment(a, b, 100), queue_payment(b, a, 100)
    client.set_hold(ba.uetr, True)
    with reverts("GridlockItemInvalid", uetr=ba.uetr):
        gridlock([ab.uetr, ba.uetr])
    assert (client.payment_status(ab.uetr), client.payment_status(ba.uetr)) == (1, 1)


@pytest.mark.parametrize("state", ["unknown", "settled", "cancelled"])
def test_settle_gridlock_reverts_item_invalid_for_non_queued(client, make_bank, make_order, queue_payment, reverts,
                                                             state, gridlock):
    a, b = make_bank(funds={"USD": 100}), make_bank()
    queued = queue_payment(a, b, 500)
    if state == "unknown":
        other = b"\x07" * 16
    elif state == "settled":
        order, sig = make_order(a, b, 100)
        client.submit_payment(order, sig)
        other = order.uetr
    else:
        other = queue_payment(b, a, 500).uetr
        client.cancel_queued(other)
    with reverts("GridlockItemInvalid", uetr=other):
        gridlock([queued.uetr, other])
    assert client.payment_status(queued.uetr) == 1


def test_settle_gridlock_reverts_uetr_listed_twice(client, make_bank, queue_payment, reverts, gridlock):
    # listed twice, A's 100 would be credited to B twice
    a, b = make_bank(funds={"USD": 200}), make_bank()
    order = queue_payment(a, b, 300)
    client.fund(a.address, "USD", 100, FUND_REF)  # covers one settlement, not two
    with reverts("GridlockItemInvalid", uetr=order.uetr):
        gridlock([order.uetr, order.uetr])
    assert client.payment_status(order.uetr) == 1
    assert client.balance_of(b.address, "USD") == 0


@pytest.mark.parametrize("party", ["debtor", "creditor"])
def test_settle_gridlock_reverts_not_active_for_suspended_party(client, make_bank, queue_payment, reverts, party,
                                                                gridlock):
    a, b = make_bank(), make_bank()
    ab, ba = queue_payment(a, b, 100), queue_payment(b, a, 100)
    suspended = a if party == "debtor" else b
    client.suspend(suspended.address)
    with reverts("NotActive", participant=suspended.address):
        gridlock([ab.uetr, ba.uetr])
    assert (client.payment_status(ab.uetr), client.payment_status(ba.uetr)) == (1, 1)


def test_settle_gridlock_respects_limits(client, make_bank, queue_payment, reverts, gridlock):
    a, b = make_bank(), make_bank()
    ab, ba = queue_payment(a, b, 100), queue_payment(b, a, 100)
    client.set_limits(b.address, "USD", 0, 99)
    with reverts("LimitExceeded", participant=b.address, currency=b"USD", kind=2, limit=99, wouldBe=100):
        gridlock([ab.uetr, ba.uetr])
    assert client.payment_status(ab.uetr) == 1


def test_settle_gridlock_reverts_unauthorized_for_relayer(client, make_bank, queue_payment, call_as, reverts):
    a, b = make_bank(), make_bank()
    ab, ba = queue_payment(a, b, 100), queue_payment(b, a, 100)
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", "settleGridlock(bytes16[])", [[ab.uetr, ba.uetr]])
    assert client.payment_status(ab.uetr) == 1


# ---------------------------------------------- cancelQueued / setHold / setPriority
CANCEL = "cancelQueued(bytes16)"
HOLD = "setHold(bytes16,bool)"
PRIORITY = "setPriority(bytes16,bool)"


@pytest.mark.parametrize("by", ["debtor", "relayer"])
def test_cancel_queued_cancels_and_emits_payment_cancelled(client, make_bank, queue_payment, call_as, events, by):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    who = a.account if by == "debtor" else client.relayer
    receipt = call_as(who, "ledger", CANCEL, [order.uetr])
    assert events(receipt, "PaymentCancelled") == [{"uetr": order.uetr}]
    assert client.payment_status(order.uetr) == 3
    client.fund(a.address, "USD", 1_000, FUND_REF)
    client.settle_queued([order.uetr])  # a cancelled payment never settles
    assert client.balance_of(b.address, "USD") == 0


@pytest.mark.parametrize("by", ["debtor", "relayer"])
def test_set_hold_holds_and_releases(client, make_bank, queue_payment, call_as, events, by):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    who = a.account if by == "debtor" else client.relayer
    receipt = call_as(who, "ledger", HOLD, [order.uetr, True])
    assert events(receipt, "PaymentHoldChanged") == [{"uetr": order.uetr, "held": True}]
    assert client.queued_payment(order.uetr)["held"] is True
    receipt = call_as(who, "ledger", HOLD, [order.uetr, False])
    assert events(receipt, "PaymentHoldChanged") == [{"uetr": order.uetr, "held": False}]
    assert client.queued_payment(order.uetr)["held"] is False


@pytest.mark.parametrize("by", ["debtor", "relayer"])
def test_set_priority_sets_and_clears_urgent_bit(client, make_bank, queue_payment, call_as, events, by):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)  # flags 1
    who = a.account if by == "debtor" else client.relayer
    receipt = call_as(who, "ledger", PRIORITY, [order.uetr, True])
    assert events(receipt, "PaymentPriorityChanged") == [{"uetr": order.uetr, "flags": 3}]
    assert client.queued_payment(order.uetr)["flags"] == 3
    receipt = call_as(who, "ledger", PRIORITY, [order.uetr, False])
    assert events(receipt, "PaymentPriorityChanged") == [{"uetr": order.uetr, "flags": 1}]
    assert client.queued_payment(order.uetr)["flags"] == 1


@pytest.mark.parametrize(("signature", "args"), [(CANCEL, []), (HOLD, [True]), (PRIORITY, [True])],
                         ids=["cancelQueued", "setHold", "setPriority"])
@pytest.mark.parametrize("who", ["creditor", "stranger", "operator"])
def test_queue_management_reverts_not_debtor(client, make_bank, queue_payment, call_as, reverts, stranger,
                                             signature, args, who):
    a, b = make_bank(), make_bank()
    order = queue_payment(a, b, 100)
    caller = {"creditor": b.account, "stranger": stranger, "operator": client.operator}[who]
    with reverts("NotDebtor", uetr=order.uetr, caller=caller.address):
        call_as(caller, "ledger", signature, [order.uetr, *args])
    assert client.payment_status(order.uetr) == 1
    assert client.queued_payment(order.uetr)["held"] is False
    assert client.queued_payment(order.uetr)["flags"] == 1


@pytest.mark.parametrize(("signature", "args"), [(CANCEL, []), (HOLD, [True]), (PRIORITY, [True])],
                         ids=["cancelQueued", "setHold", "setPriority"])
@pytest.mark.parametrize("state", ["unknown", "settled", "cancelled", "rejected"])
def test_queue_management_reverts_not_queued(client, make_bank, make_order, queue_payment, call_as, reverts,
                                             signature, args, state):
    a, b = make_bank(funds={"USD": 100}), make_bank()
    if state == "unknown":
        uetr = b"\x09" * 16
    elif state == "settled":
        order, sig = make_order(a, b, 100)
        client.submit_payment(order, sig)
        uetr = order.uetr
    elif state == "cancelled":
        uetr = queue_payment(a, b, 500).uetr
        client.cancel_queued(uetr)
    else:
        order, sig = make_order(a, b, 500)
        client.settle_batch([order], [sig])
        uetr = order.uetr
        assert client.payment_status(uetr) == 4
    with reverts("NotQueued", uetr=uetr):
        call_as(client.relayer, "ledger", signature, [uetr, *args])
