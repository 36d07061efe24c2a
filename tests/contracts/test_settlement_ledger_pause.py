"""SettlementLedger pause / unpause: every entry point that moves money or changes a payment
reverts with EnforcedPause; views still answer; unpause restores service."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from eth_utils import keccak

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
REF = b"\0" * 32


@pytest.fixture
def paused(client, make_bank, make_order, queue_payment):
    """A funded bank, a queued payment, a signed order not yet submitted; then paused."""
    a, b = make_bank(funds={"USD": 500}), make_bank()
    queued = queue_payment(a, b, 10_000)
    back = queue_payment(b, a, 9_800)  # with `queued`, a feasible gridlock pair
    order, sig = make_order(a, b, 100)
    receipt = client.pause()
    return SimpleNamespace(a=a, b=b, queued=queued, back=back, order=order, sig=sig, receipt=receipt)


ENTRY_POINTS = {
    "fund": lambda c, w, call_as: c.fund(w.a.address, "USD", 1, REF),
    "defund": lambda c, w, call_as: c.defund(w.a.address, "USD", 1, REF),
    "submitPayment": lambda c, w, call_as: c.submit_payment(w.order, w.sig),
    "settleBatch": lambda c, w, call_as: c.settle_batch([w.order], [w.sig]),
    "settleQueued": lambda c, w, call_as: c.settle_queued([w.queued.uetr]),
    "settleGridlock": lambda c, w, call_as: c.settle_gridlock([w.queued.uetr, w.back.uetr]),
    "cancelQueued": lambda c, w, call_as: c.cancel_queued(w.queued.uetr),
    "setHold": lambda c, w, call_as: c.set_hold(w.queued.uetr, True),
    "setPriority": lambda c, w, call_as: c.set_priority(w.queued.uetr, True),
    "cancelQueued by debtor": lambda c, w, call_as: call_as(w.a.account, "ledger", "cancelQueued(bytes16)",
                                                            [w.queued.uetr]),
}


def _snapshot(client, w):
    return ([client.balance_of(x.address, "USD") for x in (w.a, w.b)], client.total_supply("USD"),
            [client.payment_status(u) for u in (w.queued.uetr, w.back.uetr, w.order.uetr)],
            client.queued_payment(w.queued.uetr))


def test_pause_emits_paused(paused, events, client):
    assert events(paused.receipt, "Paused") == [{"account": client.operator.address}]
    assert client.paused() is True


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_entry_point_reverts_enforced_pause(client, paused, reverts, call_as, entry_point):
    before = _snapshot(client, paused)
    with reverts("EnforcedPause"):
        ENTRY_POINTS[entry_point](client, paused, call_as)
    assert _snapshot(client, paused) == before


def test_views_answer_while_paused(client, paused, contracts):
    assert client.balance_of(paused.a.address, "USD") == 500
    assert client.total_supply("USD") == 500
    assert client.payment_status(paused.queued.uetr) == 1
    assert client.queued_payment(paused.queued.uetr)["amount"] == 10_000
    assert len(client.hash_payment_order(paused.order)) == 32
    assert tuple(contracts["ledger"].functions.limitsOf(paused.a.address, b"USD").call()) == (0, 0)
    assert client.is_active(paused.a.address) is True


def test_unpause_emits_unpaused_and_restores_payments(client, paused, events):
    receipt = client.unpause()
    assert events(receipt, "Unpaused") == [{"account": client.operator.address}]
    assert client.paused() is False
    client.submit_payment(paused.order, paused.sig)
    assert client.payment_status(paused.order.uetr) == 2


def test_pause_reverts_enforced_pause_when_already_paused(client, paused, reverts):
    with reverts("EnforcedPause"):
        client.pause()


def test_unpause_reverts_expected_pause_when_not_paused(client, reverts):
    with reverts("ExpectedPause"):
        client.unpause()


@pytest.mark.parametrize("action", ["pause()", "unpause()"])
def test_pause_and_unpause_revert_unauthorized_for_relayer(client, call_as, reverts, action):
    if action == "unpause()":
        client.pause()
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=OPERATOR_ROLE):
        call_as(client.relayer, "ledger", action, [])
