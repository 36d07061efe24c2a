"""Cross-currency (PvP) settlements and gridlock batch events, folded from synthetic logs
(the events of the FX / gridlock contract work), on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from eth_utils import to_checksum_address

from chain_gateway.db import transaction
from chain_gateway.indexer.events import DecodedEvent, RawLog
from chain_gateway.mirror import repository as repo
from chain_gateway.mirror import writer

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
DEBTOR, CREDITOR, PROVIDER = (to_checksum_address("0x" + c * 40) for c in "abc")


def _ev(name: str, block: int, index: int, **args: object) -> DecodedEvent:
    log = RawLog(block, "0x" + f"{block:064x}", index, "0x" + f"{block * 100 + index:064x}", "0x" + "00" * 20, (), b"",
                 1_700_000_000 + block)
    return DecodedEvent(name, dict(args), log)


def _apply(sessions, events):
    times = {e.log.block_number: e.log.timestamp for e in events}
    with transaction(sessions) as session:
        return writer.apply_events(session, events=events, timestamps=times)


@pytest.mark.parametrize("mirror_db", BACKENDS, indirect=True)
@pytest.mark.parametrize("provider", [PROVIDER, DEBTOR], ids=["provider", "provider-is-debtor"])
def test_writer_fx_books_four_movements(mirror_db, provider):
    uetr = uuid.uuid4()
    _apply(mirror_db.sessions, [
        _ev("Funded", 1, 0, participant=DEBTOR, currency=b"EUR", amount=1_000, ref=b"\0" * 32),
        _ev("Funded", 1, 1, participant=provider, currency=b"USD", amount=5_000, ref=b"\0" * 32),
    ])
    effects = _apply(mirror_db.sessions, [
        _ev("FxSettled", 2, 0, uetr=uetr.bytes, quoteId=b"\x07" * 32, provider=provider, debitCurrency=b"EUR",
            debitAmount=92, creditCurrency=b"USD", creditAmount=100),
        _ev("PaymentSettled", 2, 1, uetr=uetr.bytes, debtor=DEBTOR, creditor=CREDITOR, currency=b"USD", amount=100,
            instructionHash=b"\x01" * 32),
    ])
    assert str(uetr) in effects.uetrs and (CREDITOR, "USD") in effects.balances_increased
    with mirror_db.sessions() as session:
        p = repo.get_payment(session=session, uetr=uetr)
        assert (p.status, p.final, p.chain_status, p.currency, p.amount) == ("ACSP", False, 2, "USD", 100)  # no checkpoint: not final
        assert (p.fx_provider, p.debit_currency, p.debit_amount, p.fx_quote_id) == (
            provider, "EUR", 92, "0x" + "07" * 32)
        def bal(who, cur):
            return {b.currency: b.amount for b in repo.balances(session=session, participant=who).balances}.get(cur)
        if provider == PROVIDER:
            assert (bal(DEBTOR, "EUR"), bal(PROVIDER, "EUR"), bal(PROVIDER, "USD"), bal(CREDITOR, "USD")) == (
                908, 92, 4_900, 100)
            lines = repo.statement(session=session, participant=PROVIDER, currency="EUR").items
            assert [(x.kind, x.amount, x.balance_after, x.counterparty) for x in lines] == [
                ("CREDIT", 92, 92, DEBTOR)]
        else:  # the debtor is its own provider: its EUR leg nets to zero in one line
            assert (bal(DEBTOR, "EUR"), bal(DEBTOR, "USD"), bal(CREDITOR, "USD")) == (1_000, 4_900, 100)
            lines = repo.statement(session=session, participant=DEBTOR, currency="EUR").items
            assert [(x.kind, x.amount, x.balance_after) for x in lines] == [("FUND", 1_000, 1_000),
                                                                          ("DEBIT", 0, 1_000)]
        for who in {DEBTOR, PROVIDER, CREDITOR, provider}:
            for b in repo.balances(session=session, participant=who).balances:
                st = repo.statement(session=session, participant=who, currency=b.currency)
                assert st.closing_balance == b.amount == sum(x.amount for x in st.items)
    # a rewind below the FX block restores the funded balances exactly
    with transaction(mirror_db.sessions) as session:
        writer.rewind(session, fork_block=1)
    with mirror_db.sessions() as session:
        assert repo.get_payment(session=session, uetr=uetr) is None
        assert {b.currency: b.amount for b in repo.balances(session=session, participant=DEBTOR).balances} == (
            {"EUR": 1_000} if provider == PROVIDER else {"EUR": 1_000, "USD": 5_000})


@pytest.mark.parametrize("mirror_db", BACKENDS, indirect=True)
def test_writer_gridlock_events_keep_their_arguments(mirror_db):
    _apply(mirror_db.sessions, [
        _ev("GridlockReserved", 3, 0, batchId=b"\x09" * 32, count=4, reserved=4),
        _ev("GridlockReleased", 3, 1, batchId=b"\x09" * 32, reason=b"\xde\xad\xbe\xef", participant=DEBTOR,
            currency=b"USD"),
        _ev("QueueBatchSettled", 3, 2, count=4, gridlock=True),
    ])
    from sqlalchemy import select

    from chain_gateway.mirror.models import SystemEvent
    with mirror_db.sessions() as session:
        rows = session.execute(select(SystemEvent).order_by(SystemEvent.log_index)).scalars().all()
        assert [r.event for r in rows] == ["GridlockReserved", "GridlockReleased", "QueueBatchSettled"]
        assert json.loads(rows[1].detail) == {"batchId": "0x" + "09" * 32, "currency": "0x555344",
                                              "participant": DEBTOR, "reason": "0xdeadbeef"}
        assert rows[2].count == 4 and rows[2].gridlock is True
        assert rows[0].at == datetime.fromtimestamp(1_700_000_003, UTC)
