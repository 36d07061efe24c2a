"""A statement `since` a time: the same lines, opening and closing balances as reading the
balance's whole history (the window's first block is sought through an index, issue 7),
wherever `since` falls, on SQLite and PostgreSQL; and on SQLite a recent window is sought,
not walked to from the first line."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from chain_gateway.mirror import repository as repo
from chain_gateway.mirror.writer import T_LINES, insert_rows

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lines(n: int, *, at_of=lambda i: T0 + timedelta(seconds=i // 2)) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """`n` movements of A's USD balance (two per block, a second apart per block), plus noise
    on B and on A's EUR balance that a statement of A in USD must not show."""
    rows: list[dict[str, object]] = []
    balance = 0
    for i in range(n):
        amount = 10 + i if i % 3 else -(5 + i)
        balance += amount
        rows.append({"participant": A, "currency": "USD", "block_number": 100 + i // 2, "log_index": i % 2,
                     "kind": "CREDIT" if amount > 0 else "DEBIT", "amount": amount, "balance_after": balance,
                     "uetr": None, "counterparty": None, "reference": None, "tx_hash": "0x" + "00" * 32,
                     "at": at_of(i)})
        for who, cur in ((B, "USD"), (A, "EUR")):
            rows.append({**rows[-1], "participant": who, "currency": cur, "balance_after": i})
    return rows


def _expected(rows: list[dict[str, object]], since: datetime, limit: int) -> tuple[list[tuple[int, int]], int, int]:
    mine = sorted((r for r in rows if r["participant"] == A and r["currency"] == "USD"),
                  key=lambda r: (r["block_number"], r["log_index"]))
    window = [r for r in mine if r["at"] >= since]  # type: ignore[operator]
    before = [r for r in mine if r["at"] < since]  # type: ignore[operator]
    opening = int(before[-1]["balance_after"]) if before else 0  # type: ignore[call-overload]
    closing = int(window[-1]["balance_after"]) if window else opening  # type: ignore[call-overload]
    return [(int(r["block_number"]), int(r["log_index"])) for r in window[:limit]], opening, closing  # type: ignore[call-overload]


def _check(session, rows, since, limit=7):  # type: ignore[no-untyped-def]
    st = repo.statement(session=session, participant=A, currency="USD", since=since, limit=limit)
    positions, opening, closing = _expected(rows, since, limit)
    assert [(e.block_number, e.log_index) for e in st.items] == positions, since
    assert (st.opening_balance, st.closing_balance) == (opening, closing), since


@pytest.mark.parametrize("mirror_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_statement_since_matches_the_whole_history_wherever_since_falls(mirror_db):
    rows = _lines(120)
    with mirror_db.sessions() as session, session.begin():
        insert_rows(session.connection(), T_LINES, rows)
    with mirror_db.sessions() as session:
        last = T0 + timedelta(seconds=59)
        for since in (T0 - timedelta(days=1), T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=30),
                      T0 + timedelta(seconds=45), T0 + timedelta(seconds=57, milliseconds=500), last,
                      last + timedelta(microseconds=1), last + timedelta(days=1)):
            _check(session, rows, since)


@pytest.mark.parametrize("mirror_db", ["sqlite"], indirect=True)
def test_statement_since_is_exact_even_if_times_go_back(mirror_db):
    """Block times only grow on a chain; the bound must not depend on it."""
    back_and_forth = {70: 1, 5: 38}  # a late line stamped early, an early line stamped late
    rows = _lines(80, at_of=lambda i: T0 + timedelta(seconds=back_and_forth.get(i, i // 2)))
    with mirror_db.sessions() as session, session.begin():
        insert_rows(session.connection(), T_LINES, rows)
    with mirror_db.sessions() as session:
        for seconds in (0, 1, 2, 25, 30, 36, 38, 39):
            _check(session, rows, T0 + timedelta(seconds=seconds), limit=100)


@pytest.mark.parametrize("mirror_db", ["sqlite"], indirect=True)
def test_a_recent_window_is_sought_not_walked_to(mirror_db):
    rows = _lines(400)
    with mirror_db.sessions() as session, session.begin():
        insert_rows(session.connection(), T_LINES, rows)
    statements: list[tuple[str, object]] = []

    def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM mirror_statement_lines" in statement and "ORDER BY mirror_statement_lines.block_number," in statement:
            statements.append((statement, params))

    with mirror_db.sessions() as session:
        event.listen(mirror_db.engine, "before_cursor_execute", before)
        try:
            _check(session, rows, T0 + timedelta(seconds=190), limit=100)
        finally:
            event.remove(mirror_db.engine, "before_cursor_execute", before)
        (sql, params), = statements  # the page of lines, oldest first
        plan = " / ".join(r[3] for r in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    # a seek to the window's first block (block_number>?), not a walk from the balance's first line
    assert "(participant=? AND currency=? AND block_number>?)" in plan, plan
