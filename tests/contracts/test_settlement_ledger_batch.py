"""SettlementLedger.settleBatch: item-by-item settlement where one bad item never reverts the
others, each rejection is a PaymentRejected event carrying the custom error's selector, and
only items the debtor really signed consume their UETR."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from eth_utils import keccak

RELAYER_ROLE = keccak(text="RELAYER_ROLE")


@pytest.fixture
def mixed_batch(client, make_bank, make_order, latest_timestamp):
    """One batch holding two good items and one item for every rejection reason."""
    a, b, c = make_bank(funds={"USD": 1_000}), make_bank("DE"), make_bank("GB")
    suspended = make_bank("JP")
    client.suspend(suspended.address)
    items = {}
    items["good1"] = make_order(a, b, 100)
    items["bad_signature"] = make_order(a, b, 50, signer=b.account)
    items["insufficient"] = make_order(a, b, 5_000)
    items["queued"] = make_order(a, b, 5_000, flags=1)
    items["duplicate"] = make_order(a, b, 10, uetr=items["good1"][0].uetr)
    items["expired"] = make_order(a, b, 10, deadline=latest_timestamp() - 1)
    items["not_active"] = make_order(a, suspended, 10)
    items["invalid_order"] = make_order(a, b, 0)
    items["good2"] = make_order(a, c, 200)
    orders = [o for o, _ in items.values()]
    signatures = [s for _, s in items.values()]
    receipt = client.settle_batch(orders, signatures)
    return SimpleNamespace(a=a, b=b, c=c, items={k: o for k, (o, _) in items.items()},
                           sigs={k: s for k, (_, s) in items.items()}, receipt=receipt)


def test_settle_batch_settles_good_items_next_to_bad_ones(client, mixed_batch, events):
    m = mixed_batch
    assert m.receipt["status"] == 1
    settled = events(m.receipt, "PaymentSettled")
    assert [e["uetr"] for e in settled] == [m.items["good1"].uetr, m.items["good2"].uetr]
    assert settled[1] == {"uetr": m.items["good2"].uetr, "debtor": m.a.address, "creditor": m.c.address,
                          "currency": b"USD", "amount": 200, "instructionHash": m.items["good2"].instruction_hash}
    assert [e["uetr"] for e in events(m.receipt, "PaymentQueued")] == [m.items["queued"].uetr]
    assert client.balance_of(m.a.address, "USD") == 700
    assert client.balance_of(m.b.address, "USD") == 100
    assert client.balance_of(m.c.address, "USD") == 200
    assert client.total_supply("USD") == 1_000


def test_settle_batch_emits_payment_rejected_with_error_selector(mixed_batch, events, error_selector):
    m = mixed_batch
    assert events(m.receipt, "PaymentRejected") == [
        {"uetr": m.items["bad_signature"].uetr, "reason": error_selector("InvalidSignature")},
        {"uetr": m.items["insufficient"].uetr, "reason": error_selector("InsufficientBalance")},
        {"uetr": m.items["duplicate"].uetr, "reason": error_selector("DuplicateUetr")},
        {"uetr": m.items["expired"].uetr, "reason": error_selector("OrderExpired")},
        {"uetr": m.items["not_active"].uetr, "reason": error_selector("NotActive")},
        {"uetr": m.items["invalid_order"].uetr, "reason": error_selector("InvalidOrder")},
    ]


def test_settle_batch_sets_each_items_status(client, mixed_batch):
    statuses = {name: client.payment_status(o.uetr) for name, o in mixed_batch.items.items()}
    assert statuses == {
        "good1": 2,
        "bad_signature": 0,  # not signed by the debtor: changes nothing
        "insufficient": 4,  # signed, refused: the UETR is used up
        "queued": 1,
        "duplicate": 2,  # still good1's status: the duplicate changed nothing
        "expired": 0,
        "not_active": 4,
        "invalid_order": 4,
        "good2": 2,
    }


def test_settle_batch_bad_signature_item_does_not_consume_uetr(client, mixed_batch, make_order):
    m = mixed_batch
    uetr = m.items["bad_signature"].uetr
    order, sig = make_order(m.a, m.b, 50, uetr=uetr)  # now really signed by the debtor
    client.submit_payment(order, sig)
    assert client.payment_status(uetr) == 2


def test_settle_batch_insufficient_item_consumes_uetr(client, mixed_batch, reverts):
    m = mixed_batch
    client.fund(m.a.address, "USD", 10_000, b"\0" * 32)
    with reverts("DuplicateUetr", uetr=m.items["insufficient"].uetr):
        client.submit_payment(m.items["insufficient"], m.sigs["insufficient"])
    assert client.payment_status(m.items["insufficient"].uetr) == 4


def test_settle_batch_rejects_second_item_with_same_uetr(client, make_bank, make_order, events, error_selector):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    first, sig1 = make_order(a, b, 100)
    second, sig2 = make_order(a, b, 100, uetr=first.uetr)
    receipt = client.settle_batch([first, second], [sig1, sig2])
    assert events(receipt, "PaymentRejected") == [{"uetr": first.uetr, "reason": error_selector("DuplicateUetr")}]
    assert client.balance_of(b.address, "USD") == 100  # moved once


def test_settle_batch_items_see_earlier_items_balances(client, make_bank, make_order):
    # B is paid by the first item and spends it in the second
    a, b, c = make_bank(funds={"USD": 100}), make_bank(), make_bank()
    first, sig1 = make_order(a, b, 100)
    second, sig2 = make_order(b, c, 100)
    client.settle_batch([first, second], [sig1, sig2])
    assert [client.balance_of(x.address, "USD") for x in (a, b, c)] == [0, 0, 100]


def test_settle_batch_empty_batch_emits_nothing(client):
    receipt = client.settle_batch([], [])
    assert receipt["status"] == 1
    assert receipt["logs"] == []


@pytest.mark.parametrize(("n_orders", "n_signatures"), [(2, 1), (1, 2), (0, 1)])
def test_settle_batch_reverts_length_mismatch(client, make_bank, make_order, reverts, n_orders, n_signatures):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    signed = [make_order(a, b, 10) for _ in range(max(n_orders, n_signatures))]
    orders = [o for o, _ in signed[:n_orders]]
    sigs = [s for _, s in signed[:n_signatures]]
    with reverts("LengthMismatch", orders=n_orders, signatures=n_signatures):
        client.settle_batch(orders, sigs)
    assert all(client.payment_status(o.uetr) == 0 for o, _ in signed)


def test_settle_batch_reverts_unauthorized_for_operator(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 10)
    with reverts("AccessControlUnauthorizedAccount", account=client.operator.address, neededRole=RELAYER_ROLE):
        client.operator.transact(client.ledger, client.encode_batch([order], [sig]), gas=300_000)
    assert client.payment_status(order.uetr) == 0
