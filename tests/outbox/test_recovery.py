"""Crash at every point of a row's trip, restart, recover(): each UETR is paid exactly once
(counted from PaymentSettled events on-chain) and every row ends DONE or FAILED. The crash
points run on SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import pytest
from eth_account import Account
from sqlalchemy import update

from chain_gateway.db import transaction
from chain_gateway.errors import ChainUnavailable
from chain_gateway.ledger import LedgerClient
from chain_gateway.outbox import OutboxEntry, OutboxState, recover
from chain_gateway.transactions import TxSender
from tests.outbox.outbox_helpers import put, rows, settled_counts


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the submitter catches it)."""


def restarted(client: LedgerClient) -> LedgerClient:
    """What a new process has: a fresh relayer sender that knows no nonce yet."""
    return LedgerClient(client.w3, client.deployment, relayer=TxSender(client.w3, client.relayer.account))


def crash_at(point: str, sub, m) -> None:
    sender = sub.client.relayer
    real_send = sender.send
    if point == "before_send":
        m.setattr(sender, "send", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    elif point == "after_send_before_db":  # tx mined, rows still PENDING
        def send_then_die(*a, **k):
            real_send(*a, **k)
            raise Crash
        m.setattr(sender, "send", send_then_die)
    elif point == "after_sent_before_receipt":  # rows SENT, tx mined, receipt never read
        # as on a node that seals later: no receipt right after the send, so the rows go SENT
        m.setattr(sub, "_receipt_now", lambda _tx: None)
        m.setattr(sub, "_complete_oldest", lambda: (_ for _ in ()).throw(Crash()))
    elif point == "after_receipt_before_db":  # receipt read (at once: rows still PENDING), DONE never written
        m.setattr(sub, "_finish", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    else:  # pragma: no cover
        raise AssertionError(point)


POINTS = ["before_send", "after_send_before_db", "after_sent_before_receipt", "after_receipt_before_db"]
EXPECTED_STATE_AT_CRASH = {"before_send": OutboxState.PENDING, "after_send_before_db": OutboxState.PENDING,
                           "after_sent_before_receipt": OutboxState.SENT, "after_receipt_before_db": OutboxState.SENT}


@pytest.mark.parametrize("point", POINTS)
def test_crash_then_recover_pays_each_uetr_once(point, client, banks, make_order, any_db, submitters,
                                                monkeypatch):
    a, b = banks
    orders = [make_order(a, b, 5) for _ in range(30)]
    put(any_db, orders)
    sub = submitters(any_db, max_items=20)
    with monkeypatch.context() as m:
        crash_at(point, sub, m)
        with pytest.raises(Crash):
            sub.run_until_idle()
    assert {r.state for r in rows(any_db)} <= {EXPECTED_STATE_AT_CRASH[point], OutboxState.PENDING}
    on_chain = point != "before_send"

    fresh = restarted(client)
    report = recover(any_db, fresh)
    assert report.checked == 30
    assert len(report.done) == (20 if on_chain else 0)  # the first batch of 20 reached the chain
    assert len(report.requeued) == 30 - len(report.done) and not report.failed

    submitters(any_db, client=fresh).run_until_idle()
    counts = settled_counts(client)
    assert [counts[o.uetr] for o, _ in orders] == [1] * 30
    assert {r.state for r in rows(any_db)} == {OutboxState.DONE}
    assert client.balance_of(b.address, "USD") == 150


def test_recover_each_unfinished_shape(client, banks, make_order, outbox_db, submitters):
    """Rows left by hand in each shape a crash can leave, reconciled in one recover()."""
    a, b = banks
    mined_pending = make_order(a, b, 1)  # sent by hand, row never updated: PENDING
    mined_sent = make_order(a, b, 2)  # sent, marked SENT, receipt never processed
    never_sent = make_order(a, b, 4)  # PENDING, never sent
    lost_tx = make_order(a, b, 8)  # marked SENT with a tx the chain never saw
    forged = make_order(a, b, 16, signer=Account.create())  # SENT, mined, rejected for good
    put(outbox_db, [mined_pending, mined_sent, never_sent, lost_tx, forged])
    receipt = client.settle_batch(*zip(mined_pending, mined_sent, forged, strict=True))
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()

    def mark_sent(item, tx):
        with transaction(outbox_db) as s:
            s.execute(update(OutboxEntry).where(OutboxEntry.uetr == str(uuid.UUID(bytes=item[0].uetr)))
                      .values(state=OutboxState.SENT, tx_hash=tx, attempts=1))

    mark_sent(mined_sent, tx_hash)
    mark_sent(forged, tx_hash)
    mark_sent(lost_tx, "0x" + "cd" * 32)

    report = recover(outbox_db, client)
    u = {name: str(uuid.UUID(bytes=item[0].uetr)) for name, item in [
        ("mined_pending", mined_pending), ("mined_sent", mined_sent), ("never_sent", never_sent),
        ("lost_tx", lost_tx), ("forged", forged)]}
    assert report.checked == 5
    assert sorted(report.done) == sorted([u["mined_pending"], u["mined_sent"]])
    assert sorted(report.requeued) == sorted([u["never_sent"], u["lost_tx"]])
    assert list(report.failed) == [u["forged"]] and "InvalidSignature" in report.failed[u["forged"]]
    assert report.unknown_txs == ("0x" + "cd" * 32,)

    submitters().run_until_idle()
    counts = settled_counts(client)
    assert [counts[x[0].uetr] for x in (mined_pending, mined_sent, never_sent, lost_tx, forged)] == [1, 1, 1, 1, 0]
    states = {r.uetr: r.state for r in rows(outbox_db)}
    assert states[u["forged"]] == OutboxState.FAILED
    assert [states[u[k]] for k in ("mined_pending", "mined_sent", "never_sent", "lost_tx")] == [OutboxState.DONE] * 4
    assert client.balance_of(b.address, "USD") == 15


def test_recover_with_nothing_to_do(outbox_db, client):
    assert recover(outbox_db, client).checked == 0


def test_start_recovers_first_and_reports_failures(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    forged = make_order(a, b, 1, signer=Account.create())
    put(outbox_db, [forged])
    receipt = client.settle_batch([forged[0]], [forged[1]])
    with transaction(outbox_db) as s:
        s.execute(update(OutboxEntry).values(state=OutboxState.SENT,
                                             tx_hash="0x" + bytes(receipt["transactionHash"]).hex()))
    failed: list[tuple[list[str], str]] = []
    report = submitters(on_failed=lambda uetrs, err: failed.append((uetrs, err))).start()
    assert report is not None and len(report.failed) == 1
    assert failed and failed[0][0] == [rows(outbox_db)[0].uetr]


def test_start_with_chain_down_recovers_before_sending(client, banks, make_order, outbox_db, submitters,
                                                       monkeypatch):
    """No sending until recovery has run: a SENT row whose tx was mined must be found DONE."""
    import chain_gateway.outbox.submitter as submitter_module

    a, b = banks
    mined, fresh = make_order(a, b, 1), make_order(a, b, 2)
    put(outbox_db, [mined, fresh])
    receipt = client.settle_batch([mined[0]], [mined[1]])
    with transaction(outbox_db) as s:
        s.execute(update(OutboxEntry).where(OutboxEntry.uetr == str(uuid.UUID(bytes=mined[0].uetr))).values(
            state=OutboxState.SENT, tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), attempts=1))
    real = submitter_module._payment_statuses
    outage = iter([ChainUnavailable("connection refused")])

    def down_once(*args, **kwargs):
        for exc in outage:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(submitter_module, "_payment_statuses", down_once)
    sub = submitters(backoff_initial=0.01)
    assert sub.start() is None  # postponed
    assert sub.wait_idle(10)
    by_uetr = {r.uetr: r for r in rows(outbox_db)}
    assert by_uetr[str(uuid.UUID(bytes=mined[0].uetr))].attempts == 1  # never resent
    assert sub.stats.transactions == 1
    counts = settled_counts(client)
    assert counts[mined[0].uetr] == counts[fresh[0].uetr] == 1
