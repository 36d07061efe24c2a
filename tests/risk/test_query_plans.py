"""The behaviour rules' queries stay bounded as payment_intake grows: SQLite's plan for each
statement the rules really run (captured, then EXPLAIN QUERY PLAN with the same parameters)
seeks an index with the time window, never scans the debtor's whole history. Plans, not
timings: nothing here depends on the machine."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from chain_gateway.db import utcnow
from chain_gateway.risk.config import DuplicateRule, OutlierRule, VelocityRule
from chain_gateway.risk.rules import check_duplicate, check_outlier, check_velocity

from .conftest import instruction


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    out = []
    with engine.connect() as conn:
        for sql, params in statements:
            out.append(" / ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)))
    return out


def test_velocity_seeks_the_window_on_debtor_and_time(engine: Engine, session: Session,
                                                      add_history: Callable[..., list[str]]) -> None:
    add_history(["1.00"] * 5)
    add_history(["2.00"] * 5, currency="USD")
    rule = VelocityRule(enabled=True, window_seconds=60, max_count=100, max_value={"EUR": Decimal(1000)})
    with captured(engine) as statements:
        assert check_velocity(session, instruction(), rule, utcnow()) is None
    (plan,) = plans(engine, statements)
    # both columns of the index: the debtor and the start of the window (not the debtor only,
    # which read every payment the debtor ever sent)
    assert "ix_payment_intake_debtor_time (debtor_agent=? AND received_at>?)" in plan, plan


def test_duplicate_and_outlier_use_the_debtor_currency_time_index(engine: Engine, session: Session,
                                                                  add_history: Callable[..., list[str]]) -> None:
    add_history(["1.00"] * 25)
    with captured(engine) as statements:
        check_duplicate(session, instruction(), DuplicateRule(enabled=True), utcnow())
        check_outlier(session, instruction(), OutlierRule(enabled=True, history=20), utcnow() + timedelta(seconds=1))
    duplicate, outlier = plans(engine, statements)
    assert "ix_payment_intake_debtor_currency_time (debtor_agent=? AND currency=? AND received_at>?)" in duplicate
    # newest first straight off the index: no sort of the debtor's history
    assert "ix_payment_intake_debtor_currency_time (debtor_agent=? AND currency=?)" in outlier
    assert "TEMP B-TREE" not in outlier
