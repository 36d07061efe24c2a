"""The mirror's behaviour, written once (``MirrorContract``) and run on SQLite and on
PostgreSQL: indexing, exactly-once, resume, rebuild, reorganisations, finality, reconciliation
and the repository's reads."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from chain_gateway.errors import ReorgDetected
from chain_gateway.indexer import MirrorUpdate
from chain_gateway.mirror import repository as repo
from chain_gateway.mirror import writer
from chain_gateway.mirror.models import Balance, Payment, ProcessedBlock
from chain_gateway.mirror.writer import record_processed
from chain_gateway.reconcile import reconcile
from tests.mirror.scenario import dump, more_payments


def _bytes16(uetr: str) -> bytes:
    return bytes.fromhex(uetr.replace("-", ""))


class MirrorContract:
    """Abstract: subclasses set `backend`."""

    backend: str

    # ------------------------------------------------------------ indexing
    def test_indexer_mirrors_the_ledger(self, client, scenario, make_order, make_indexer, mirror_db):
        s = scenario
        updates: list[MirrorUpdate] = []
        report = make_indexer(hooks=[updates.append]).sync_once()
        assert report.to_block == client.w3.eth.block_number and report.events > 30 and report.ranges == 1
        u = s.uetrs
        with mirror_db.sessions() as session:
            expect = {"settled": ("ACSC", None), "queued": ("ACSC", None), "cancelled": ("CANC", None),
                      "held": ("PDNG", None), "euro": ("ACSC", None), "insufficient": ("RJCT", "AM04"),
                      "bad_signature": ("RJCT", "FF01"), "expired": ("RJCT", "AB01"), "over_limit": ("RJCT", "AM02"),
                      "invalid": ("RJCT", "AM12"), "not_active": ("RJCT", "AC06"), "small": ("ACSC", None)}
            for label, (status, reason) in expect.items():
                view = repo.get_payment(session=session, uetr=u[label])
                assert view is not None, label
                assert (view.status, view.reason_code) == (status, reason), label
                assert view.chain_status == client.payment_status(_bytes16(u[label])), label
            held = repo.get_payment(session=session, uetr=u["held"])
            assert held.held and held.queue_seq == 3 and held.debtor_bic == s.banks["c"].bic
            queued = repo.get_payment(session=session, uetr=u["queued"])
            assert queued.queue_seq == 1 and queued.flags == 3 and queued.amount == 5_000_00 and queued.final
            history = repo.payment_history(session=session, uetr=u["queued"])
            assert [h.event for h in history] == ["PaymentQueued", "PaymentPriorityChanged", "PaymentSettled"]
            assert [h.status for h in history] == ["PDNG", "PDNG", "ACSC"]
            # the duplicate submission is in the history but did not touch the settled payment
            dup = repo.payment_history(session=session, uetr=u["settled"])
            assert [(h.status, h.reason_code, h.effective) for h in dup] == [("ACSC", None, True),
                                                                             ("RJCT", "DUPL", False)]
            # balances equal the chain's, statements run to them
            for bank in s.banks.values():
                mirrored = repo.balances(session=session, participant=bank.address)
                assert mirrored.block_number == report.to_block
                for bal in mirrored.balances:
                    assert bal.amount == client.balance_of(bank.address, bal.currency)
                    st = repo.statement(session=session, participant=bank.address, currency=bal.currency)
                    running = 0
                    for line in st.items:
                        running += line.amount
                        assert line.balance_after == running
                    assert running == bal.amount == st.closing_balance
            a = s.banks["a"].address
            usd = repo.statement(session=session, participant=a, currency="USD")
            assert [ln.kind for ln in usd.items] == ["FUND", "DEBIT", "DEBIT", "FUND", "DEBIT"]
            assert usd.items[1].counterparty_bic == s.banks["b"].bic and usd.items[1].uetr == u["settled"]
            assert usd.items[3].reference == "0x" + "04" * 32
            # participants, funding, limits
            people = repo.list_participants(session=session)
            assert [p.address for p in people] == [b.address for b in s.banks.values()]
            assert all(p.active for p in people)
            c = repo.get_participant(session=session, bic=s.banks["c"].bic[:8])
            assert c is not None and c.country == "GB"
            funding = repo.funding_records(session=session, participant=a)
            assert [(f.kind, f.currency, f.amount) for f in funding.items] == [
                ("FUND", "USD", 1_000_00), ("FUND", "EUR", 500_00), ("DEFUND", "EUR", 100_00),
                ("FUND", "USD", 10_000_00)]
            assert [(lim.currency, lim.max_per_payment) for lim in
                    repo.limits(session=session, participant=s.banks["c"].address)] == [("USD", 20_00)]
            assert [(x.creditor, x.max_daily) for x in repo.bilateral_limits(session=session, debtor=a)] == [
                (s.banks["b"].address, 1_000_00)]
            assert [p.uetr for p in repo.queued_payments(session=session)] == [u["held"]]
            assert reconcile(session, client).differences == []
        # hooks: one committed range, with what it touched
        assert len(updates) == 1
        assert set(u.values()) <= updates[0].uetrs
        assert (a, "USD") in updates[0].balances_increased
        assert u["settled"] in updates[0].finalized and u["held"] not in updates[0].finalized

    def test_indexer_resumes_from_its_checkpoint(self, client, small_scenario, make_order, make_indexer, mirror_db):
        s = small_scenario
        first = make_indexer().sync_once()
        more_payments(client, make_order, s, 3)
        second = make_indexer(max_range=2).sync_once()  # a new instance after a "restart"
        assert second.from_block == first.to_block + 1 and second.to_block == client.w3.eth.block_number
        assert second.events == 3 and second.ranges == 2
        with mirror_db.sessions() as session:
            page = repo.list_payments(session=session, limit=1000)
            assert len(page.items) == len({p.uetr for p in page.items}) == len(s.uetrs)
            assert reconcile(session, client).differences == []

    def test_a_range_is_never_applied_twice(self, client, small_scenario, make_order, make_indexer, mirror_db,
                                            deployment):
        indexer = make_indexer()
        report = indexer.sync_once()
        before = dump(mirror_db.sessions)
        assert indexer.index_range(deployment.deploy_block, report.to_block) == 0
        assert indexer.index_range(report.to_block, report.to_block) == 0
        assert indexer.sync_once().events == 0
        assert dump(mirror_db.sessions) == before
        # the unique processed-block key itself refuses a second application
        logs = indexer.source.logs(deployment.deploy_block, report.to_block, indexer.addresses)

        with pytest.raises(IntegrityError), mirror_db.sessions() as session, session.begin():
            record_processed(session, chain_id=indexer.chain_id, logs=logs[-1:])
        assert dump(mirror_db.sessions) == before

    def test_rebuild_equals_incremental(self, client, scenario, make_order, make_indexer, mirror_db, monkeypatch):
        indexer = make_indexer(max_range=3)
        s = scenario
        indexer.sync_once()
        more_payments(client, make_order, s, 2)
        indexer.sync_once()
        client.settle_queued([_bytes16(s.uetrs["held"])])  # held: skipped, nothing moves
        client.set_hold(_bytes16(s.uetrs["held"]), False)
        indexer.sync_once()
        incremental = dump(mirror_db.sessions)
        monkeypatch.setattr(writer, "COPY_THRESHOLD", 1)  # PostgreSQL: the rebuild writes with COPY
        report = indexer.rebuild()
        assert report.from_block == client.deployment.deploy_block
        assert dump(mirror_db.sessions) == incremental
        assert sum(len(rows) for rows in incremental.values()) > 100

    # ------------------------------------------------------------ reorganisations
    def test_reorg_mirror_follows_the_new_chain(self, chain, client, small_scenario, make_order, make_indexer, mirror_db):
        tester = chain.w3.provider.ethereum_tester
        s = small_scenario
        updates: list[MirrorUpdate] = []
        indexer = make_indexer(hooks=[updates.append])
        indexer.sync_once()
        fork = tester.take_snapshot()
        fork_block = client.w3.eth.block_number
        more_payments(client, make_order, s, 3, tag="old")
        indexer.sync_once()
        with mirror_db.sessions() as session:
            assert repo.get_payment(session=session, uetr=s.uetrs["old0"]) is not None
        tester.revert_to_snapshot(fork)
        _reset_nonces(client)
        more_payments(client, make_order, s, 4, tag="new")  # longer, different blocks at the same heights
        report = indexer.sync_once()
        assert report.reorgs == 1 and report.to_block == client.w3.eth.block_number
        assert any(up.reorg and up.from_block == fork_block + 1 for up in updates)
        with mirror_db.sessions() as session:
            for i in range(3):
                assert repo.get_payment(session=session, uetr=s.uetrs[f"old{i}"]) is None
            for i in range(4):
                assert repo.get_payment(session=session, uetr=s.uetrs[f"new{i}"]).status == "ACSC"
            assert reconcile(session, client).differences == []
        after_reorg = dump(mirror_db.sessions)
        indexer.rebuild()
        assert dump(mirror_db.sessions) == after_reorg

    def test_reorg_to_a_shorter_chain(self, chain, client, small_scenario, make_order, make_indexer, mirror_db):
        tester = chain.w3.provider.ethereum_tester
        s = small_scenario
        fork = tester.take_snapshot()
        more_payments(client, make_order, s, 3, tag="gone")
        indexer = make_indexer()
        indexer.sync_once()
        tester.revert_to_snapshot(fork)
        _reset_nonces(client)
        more_payments(client, make_order, s, 1, tag="kept")
        assert indexer.sync_once().reorgs == 1
        with mirror_db.sessions() as session:
            assert repo.get_payment(session=session, uetr=s.uetrs["gone0"]) is None
            assert repo.get_payment(session=session, uetr=s.uetrs["kept0"]) is not None
            assert reconcile(session, client).differences == []

    def test_reorg_detection_reports_both_hashes(self, chain, client, small_scenario, make_order, make_indexer):
        tester = chain.w3.provider.ethereum_tester
        s = small_scenario
        fork = tester.take_snapshot()
        more_payments(client, make_order, s, 1, tag="x")
        indexer = make_indexer(max_reorg_retries=0)
        indexer.sync_once()
        tester.revert_to_snapshot(fork)
        _reset_nonces(client)
        more_payments(client, make_order, s, 1, tag="y")
        with pytest.raises(ReorgDetected) as err:
            indexer.sync_once()
        fields = err.value.fields
        assert fields["block_number"] == client.w3.eth.block_number
        assert fields["expected"] != fields["actual"] and fields["fork_block"] == fields["block_number"] - 1

    def test_run_forever_follows_the_chain_and_stops(self, client, make_bank, make_order, make_indexer, mirror_db):
        import threading

        seen = threading.Event()
        a, b = make_bank(funds={"USD": 100}), make_bank()
        order, sig = make_order(a, b, 10)
        uetr = str(uuid.UUID(bytes=order.uetr))
        indexer = make_indexer(hooks=[lambda up: seen.set() if uetr in up.uetrs else None])
        client.submit_payment(order, sig)  # before the thread starts: eth-tester is not thread-safe
        stop = threading.Event()
        worker = threading.Thread(target=indexer.run_forever, args=(stop, 0.02), daemon=True)
        worker.start()
        try:
            assert seen.wait(10)
        finally:
            stop.set()
            worker.join(5)
        assert not worker.is_alive()
        with mirror_db.sessions() as session:
            assert repo.get_payment(session=session, uetr=uetr).status == "ACSC"

    def test_own_limits_are_mirrored_apart_from_the_operators(self, client, make_bank, make_indexer, mirror_db):
        a = make_bank(funds={"USD": 100})
        client.set_limits(a.address, "USD", 500, 5_000)
        client.set_own_limits_for(a.address, "USD", 200, 1_000)
        client.set_own_limits_for(a.address, "USD", 150, 1_000)
        make_indexer().sync_once()
        with mirror_db.sessions() as session:
            operator = repo.limits(session=session, participant=a.address)
            own = repo.limits(session=session, participant=a.address, kind="own")
        assert [(x.currency, x.max_per_payment, x.max_daily_outflow) for x in operator] == [("USD", 500, 5_000)]
        assert [(x.currency, x.max_per_payment, x.max_daily_outflow) for x in own] == [("USD", 150, 1_000)]

    # ------------------------------------------------------------ finality
    def test_confirmation_depth(self, client, make_bank, make_order, make_indexer, mirror_db):
        a, b = make_bank(funds={"USD": 100}), make_bank()
        order, sig = make_order(a, b, 10)
        client.submit_payment(order, sig)
        updates: list[MirrorUpdate] = []
        indexer = make_indexer(confirmation_depth=2, hooks=[updates.append])
        indexer.sync_once()
        uetr = str(uuid.UUID(bytes=order.uetr))
        with mirror_db.sessions() as session:
            view = repo.get_payment(session=session, uetr=uetr)
            assert (view.status, view.final) == ("ACSP", False)
            assert [p.uetr for p in repo.list_payments(session=session, status="ACSP").items] == [uetr]
        client.fund(a.address, "USD", 1, b"\0" * 32)
        client.fund(a.address, "USD", 1, b"\0" * 32)
        indexer.sync_once()
        with mirror_db.sessions() as session:
            view = repo.get_payment(session=session, uetr=uetr)
            assert (view.status, view.final) == ("ACSC", True)
            assert repo.list_payments(session=session, status="ACSP").items == []
        assert uetr in set().union(*(up.finalized for up in updates))

    # ------------------------------------------------------------ reconciliation
    def test_reconciliation_catches_each_corruption(self, client, scenario, make_order, make_indexer, mirror_db):
        s = scenario
        indexer = make_indexer()
        indexer.sync_once()
        a = s.banks["a"].address
        corruptions: dict[str, Any] = {
            "balance": update(Balance).where(Balance.participant == a, Balance.currency == "USD")
            .values(amount=1),
            "missing_payment": delete(Payment).where(Payment.uetr == s.uetrs["euro"]),
            "extra_payment": insert(Payment).values(
                uetr="00000000-0000-4000-8000-000000000000", status="ACSC", chain_status=2, held=False,
                tx_hash="0x" + "0" * 64, block_number=1, log_index=0, first_block=1, first_log_index=0,
                last_block=1, created_at=datetime.now(UTC), updated_at=datetime.now(UTC)),
            "payment_status": update(Payment).where(Payment.uetr == s.uetrs["settled"]).values(status="PDNG"),
        }
        with mirror_db.sessions() as session:
            clean = reconcile(session, client)
            assert clean.differences == [] and clean.checked["balances"] >= 5 and clean.checked["payments"] == 12
        for kind, statement in corruptions.items():
            with mirror_db.sessions() as session:
                session.execute(statement)
                result = reconcile(session, client)
                kinds = {d.kind for d in result.differences}
                assert kind in kinds, (kind, result.differences)
                session.rollback()
        with mirror_db.sessions() as session:
            assert reconcile(session, client).as_dict()["differences"] == []

    def test_reconciliation_at_an_earlier_block(self, client, small_scenario, make_order, make_indexer, mirror_db):
        s = small_scenario
        middle = client.w3.eth.block_number
        more_payments(client, make_order, s, 2)
        make_indexer().sync_once()
        with mirror_db.sessions() as session:
            result = reconcile(session, client, block=middle)
            assert result.block_number == middle and result.differences == []
            assert result.checked["payments"] == 2

    # ------------------------------------------------------------ repository
    def test_repository_filters_and_pages(self, client, scenario, make_order, make_indexer, mirror_db):
        s = scenario
        more_payments(client, make_order, s, 5)
        make_indexer().sync_once()
        a, b, c = (s.banks[k].address for k in "abc")
        with mirror_db.sessions() as session:
            everything = repo.list_payments(session=session, limit=1000).items
            assert len(everything) == len(s.uetrs)
            seen, cursor = [], None
            while True:
                page = repo.list_payments(session=session, participant=a, cursor=cursor, limit=4)
                seen += [p.uetr for p in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            mine = [p.uetr for p in everything if a in (p.debtor, p.creditor)]
            assert seen == mine and len(seen) > 8  # newest first, no gaps, no repeats
            eur = repo.list_payments(session=session, currency="EUR").items
            assert [p.uetr for p in eur] == [s.uetrs["euro"]]
            rejected = repo.list_payments(session=session, status="RJCT").items
            assert len(rejected) == 6
            with_c = repo.list_payments(session=session, participant=a, counterparty=c).items
            assert {p.uetr for p in with_c} == {s.uetrs[k] for k in ("cancelled", "held")}
            assert repo.list_payments(session=session, participant=b, counterparty=c).items == []
            newest = everything[0]
            assert repo.list_payments(session=session, since=newest.created_at).items[0].uetr == newest.uetr
            assert all(p.created_at < newest.created_at for p in
                       repo.list_payments(session=session, until=newest.created_at).items)
            # statement pages and as_of_block
            full = repo.statement(session=session, participant=a, currency="USD")
            paged, cursor = [], None
            while True:
                st = repo.statement(session=session, participant=a, currency="USD", cursor=cursor, limit=2)
                paged += st.items
                cursor = st.next_cursor
                if cursor is None:
                    break
            assert paged == full.items
            cut = full.items[2].block_number
            earlier = repo.statement(session=session, participant=a, currency="USD", as_of_block=cut)
            assert earlier.as_of_block == cut and earlier.closing_balance == client.balance_of(a, "USD", cut)
            since = full.items[3].at
            window = repo.statement(session=session, participant=a, currency="USD", since=since)
            assert window.opening_balance == full.items[2].balance_after or window.items[0].at == since
            assert window.opening_balance + sum(x.amount for x in window.items) == window.closing_balance
            with pytest.raises(repo.InvalidCursor):
                repo.list_payments(session=session, cursor="bogus")
            with pytest.raises(repo.InvalidCursor):
                repo.list_payments(session=session, cursor=st_cursor(full))
            head = repo.mirror_head(session=session)
            assert head is not None and head.block_number == client.w3.eth.block_number
            assert repo.get_payment(session=session, uetr="6f0b3c1e-0000-4000-8000-000000000000") is None

    def test_rebuild_wipes_only_chain_state(self, client, small_scenario, make_order, make_indexer, mirror_db):
        indexer = make_indexer()
        indexer.sync_once()
        with mirror_db.sessions() as session, session.begin():
            session.execute(delete(ProcessedBlock))  # damage: the rebuild must not need it
        indexer.rebuild()
        with mirror_db.sessions() as session:
            assert reconcile(session, client).differences == []


def st_cursor(statement: repo.Statement) -> str:
    """A statement cursor, which a payment list must refuse."""
    from chain_gateway.mirror.repository import _encode_cursor
    return _encode_cursor("s", [statement.items[0].block_number, 0])


def _reset_nonces(client: Any) -> None:
    for sender in (client.operator, client.relayer):
        if sender is not None:
            sender._nonce = None  # the chain was rewound under them


class TestMirrorOnSQLite(MirrorContract):
    backend = "sqlite"


@pytest.mark.postgres
class TestMirrorOnPostgres(MirrorContract):
    backend = "postgresql"

