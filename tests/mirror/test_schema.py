"""The Alembic migration creates exactly the mirror's models, on SQLite and PostgreSQL."""
from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, text

from chain_gateway.db import make_engine
from chain_gateway.indexer.core import Indexer
from chain_gateway.mirror import writer
from chain_gateway.mirror.models import CHAIN_DERIVED
from chain_gateway.mirror.schema import downgrade_database, upgrade_database
from chain_gateway.mirror.writer import T_PAYMENTS, insert_rows
from chain_gateway.models_all import metadata

MIRROR_TABLES = {m.__tablename__ for m in CHAIN_DERIVED}


@pytest.mark.parametrize("mirror_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_migrations_match_the_models(mirror_db):
    with mirror_db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert MIRROR_TABLES <= tables
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    mine = [d for d in diff if any(t in repr(d) for t in MIRROR_TABLES)]
    assert mine == []


@pytest.mark.parametrize("mirror_db", ["sqlite"], indirect=True)
def test_upgrade_is_idempotent(mirror_db):
    upgrade_database(mirror_db.url)  # already at head: nothing to do, no error
    with mirror_db.engine.connect() as conn:
        assert MIRROR_TABLES <= set(inspect(conn).get_table_names())


def test_upgrade_creates_a_new_sqlite_file(tmp_path):
    path = tmp_path / "sub" / "mirror.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    assert path.is_file()


# --- 0005: indexes for queries that grew with the ledger (issue 7) ---------------------------
def _index_sql(conn, backend: str, name: str) -> str | None:  # type: ignore[no-untyped-def]
    query = ("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n" if backend == "sqlite"
             else "SELECT indexdef FROM pg_indexes WHERE indexname = :n")
    return conn.execute(text(query), {"n": name}).scalar_one_or_none()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0005_upgrades_a_filled_database_and_goes_back(backend, tmp_path, request):
    with ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(request.getfixturevalue("postgres_server").database())
        else:
            url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
        upgrade_database(url, "0004_fx")
        engine = make_engine(url)
        stack.callback(engine.dispose)
        with engine.begin() as conn:  # rows already there: the new indexes are built over them
            insert_rows(conn, T_PAYMENTS, [_payment(i, queue_seq=i if i % 2 else None) for i in range(1, 50)])
        upgrade_database(url)
        with engine.connect() as conn:
            assert _index_sql(conn, backend, "ix_mirror_payments_status") is None
            assert "status, block_number" in _index_sql(conn, backend, "ix_mirror_payments_status_block")
            assert "queue_seq IS NOT NULL" in _index_sql(conn, backend, "ix_mirror_payments_queue_seq")
            assert "debtor_agent, received_at" in _index_sql(conn, backend, "ix_payment_intake_debtor_time")
            assert conn.execute(text("SELECT count(*) FROM mirror_payments")).scalar_one() == 49
        downgrade_database(url, "0004_fx")
        with engine.connect() as conn:
            assert _index_sql(conn, backend, "ix_mirror_payments_status") is not None
            for gone in ("ix_mirror_payments_status_block", "ix_mirror_payments_queue_seq",
                         "ix_payment_intake_debtor_time"):
                assert _index_sql(conn, backend, gone) is None
        upgrade_database(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert [d for d in diff if "mirror_payments" in repr(d) or "payment_intake" in repr(d)] == []


def _payment(i: int, *, status: str = "ACSC", queue_seq: int | None = None) -> dict[str, object]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return {"uetr": f"00000000-0000-4000-8000-{i:012d}", "debtor": None, "creditor": None, "currency": "USD",
            "amount": i, "flags": 0, "held": False, "queue_seq": queue_seq, "instruction_hash": None,
            "fx_quote_id": None, "fx_provider": None, "debit_currency": None, "debit_amount": None,
            "status": status, "chain_status": 2, "reason_code": None, "reject_selector": None,
            "tx_hash": "0x" + "00" * 32, "block_number": i, "log_index": 0, "first_block": i, "first_log_index": 0,
            "last_block": i, "created_at": at, "updated_at": at}


def _plans_of(session, run) -> list[str]:  # type: ignore[no-untyped-def]
    """EXPLAIN QUERY PLAN of every SELECT `run()` sends, with its own parameters (SQLite)."""
    statements: list[tuple[str, object]] = []

    def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", before)
    try:
        result = run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    conn = session.connection()
    return [result, [" / ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
                     for sql, params in statements]]


@pytest.mark.parametrize("mirror_db", ["sqlite"], indirect=True)
def test_finalized_and_next_queue_seq_seek_indexes_not_the_whole_table(mirror_db):
    """The two indexer queries that read every mirrored payment before 0005: the final
    statuses of a block range (after every committed range) and the next queue sequence."""
    with mirror_db.sessions() as session, session.begin():
        rows = [_payment(i, status="ACSC" if i % 3 else "PDNG", queue_seq=i if i % 3 == 0 else None)
                for i in range(1, 301)]
        insert_rows(session.connection(), T_PAYMENTS, rows)
        finalized, (plan,) = _plans_of(session, lambda: Indexer._finalized(None, session, 100, 110))  # type: ignore[arg-type]
        assert finalized == {r["uetr"] for r in rows if 100 < r["block_number"] <= 110 and r["status"] == "ACSC"}
        assert "ix_mirror_payments_status_block (status=? AND block_number>? AND block_number<?)" in plan, plan
        fold = writer.RangeFold(session, [], {})
        seq, (plan,) = _plans_of(session, fold._next_queue_seq)
        assert seq == 301  # the largest queue_seq (300) + 1, as before: NULLs never counted
        assert "COVERING INDEX ix_mirror_payments_queue_seq" in plan, plan
