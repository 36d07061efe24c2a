"""The engine: one decision per payment, what it raises, and what it writes (audit records in
their own transaction; hold rows in the caller's)."""
from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.audit_trail import AuditEntry, verify
from chain_gateway.errors import RiskRuleRejection, ScreeningHit
from chain_gateway.payments import PaymentIntake
from chain_gateway.risk import RiskConfig, RiskEngine, WatchList
from chain_gateway.risk.config import DuplicateRule, OutlierRule, VelocityRule
from chain_gateway.risk.holds import RiskHold
from chain_gateway.risk.watchlist import parse_csv

from .conftest import instruction

History = Callable[..., list[str]]
LIST = WatchList.of(parse_csv("type,value,list,reason\nname,Ivan Petrovich Sidorov,OFAC-SDN,SDN 12345\n"
                              "country,KP,EU,sanctions\n"))


def audit_rows(sessions: sessionmaker[Session]) -> list[AuditEntry]:
    with sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_a_clean_payment_passes_and_nothing_is_written(sessions: sessionmaker[Session]) -> None:
    engine = RiskEngine(RiskConfig(duplicate=DuplicateRule(enabled=True)), watchlist=LIST)
    with sessions() as s:
        decision = engine.risk_check(s, instruction(), None)
        s.commit()
    assert decision.action == "pass" and decision.reason_code is None
    assert audit_rows(sessions) == []


def test_a_screening_hit_raises_rr04_and_its_record_survives_the_rollback(sessions: sessionmaker[Session]) -> None:
    engine = RiskEngine(watchlist=LIST)
    payment = instruction(creditor={"name": "IVAN PETROVICH SIDOROV", "country": "KP"})
    with sessions() as s:
        with pytest.raises(ScreeningHit) as info:
            engine.risk_check(s, payment, None)
        s.rollback()  # what the API does with a rejected request
    err = info.value
    assert err.reason_code == "RR04" and err.fields["uetr"] == str(payment.uetr)
    assert err.fields["matched_fields"] == ["creditor.country", "creditor.name"]
    assert "SDN 12345" not in err.detail  # the list's reason is for the operator, not the submitter
    [row] = audit_rows(sessions)
    inputs = json.loads(row.inputs)
    assert (row.actor, row.action, row.outcome) == ("system", "risk.decision", "reject")
    assert inputs["reason_code"] == "RR04" and inputs["rule"] == "watchlist"
    assert inputs["payment"]["uetr"] == str(payment.uetr)
    assert {m["field"]: m["value"] for m in inputs["matched"]} == {
        "creditor.name": "ivan petrovich sidorov", "creditor.country": "KP"}
    assert inputs["matched"][0]["entry"]["list"] in {"OFAC-SDN", "EU"}
    assert inputs["watchlist"]["sha256"] == LIST.digest
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(RiskHold)) == 0
        assert verify(s)["ok"]


def test_a_rejecting_rule_raises_its_reason_code(sessions: sessionmaker[Session], add_history: History) -> None:
    add_history(["250.00"], end_to_end_id="INV-7")
    engine = RiskEngine(RiskConfig(duplicate=DuplicateRule(enabled=True, action="reject")))
    with sessions() as s:
        with pytest.raises(RiskRuleRejection) as info:
            engine.risk_check(s, instruction(amount="250.00", end_to_end_id="INV-7"), None)
        s.rollback()
    assert info.value.reason_code == "AM05" and info.value.fields["rule"] == "duplicate"
    [row] = audit_rows(sessions)
    assert row.outcome == "reject" and json.loads(row.inputs)["reason_code"] == "AM05"


def test_a_holding_rule_writes_the_hold_with_the_request_and_the_record_on_its_own(
        sessions: sessionmaker[Session], add_history: History) -> None:
    add_history(["100.00"] * 5)
    engine = RiskEngine(RiskConfig(outlier=OutlierRule(enabled=True, history=5, k=Decimal(3))))
    held, dropped = instruction(amount="5000.00"), instruction(amount="6000.00")
    with sessions() as s:
        decision = engine.risk_check(s, held, None)
        s.commit()
    assert (decision.action, decision.rule, decision.reason_code) == ("hold", "outlier", "AM09")
    with sessions() as s:
        engine.risk_check(s, dropped, None)
        s.rollback()  # e.g. the signature check after risk failed: the hold goes, the record stays
    with sessions() as s:
        holds = list(s.scalars(select(RiskHold)))
        assert [h.uetr for h in holds] == [str(held.uetr)]
        assert holds[0].reason_code == "AM09" and holds[0].decision is None
        assert holds[0].matched_list()[0]["rule"] == "outlier"
    assert [r.outcome for r in audit_rows(sessions)] == ["hold", "hold"]


def test_reject_wins_over_hold_and_every_fired_rule_is_listed(sessions: sessionmaker[Session],
                                                             add_history: History) -> None:
    add_history(["250.00"] * 3, end_to_end_id="INV-7")
    config = RiskConfig(duplicate=DuplicateRule(enabled=True, action="hold"),
                        velocity=VelocityRule(enabled=True, max_count=2, action="reject"))
    with sessions() as s:
        decision = RiskEngine(config).evaluate(s, instruction(amount="250.00", end_to_end_id="INV-7"))
    assert (decision.action, decision.rule, decision.reason_code) == ("reject", "velocity.count", "SL15")
    assert [m["rule"] for m in decision.matched] == ["duplicate", "velocity.count"]


def test_screening_comes_before_the_rules(sessions: sessionmaker[Session], add_history: History) -> None:
    add_history(["250.00"], end_to_end_id="INV-7")
    engine = RiskEngine(RiskConfig(duplicate=DuplicateRule(enabled=True)), watchlist=LIST)
    with sessions() as s:
        decision = engine.evaluate(s, instruction(amount="250.00", end_to_end_id="INV-7",
                                                  remittance_info="for Ivan Petrovich Sidorov"))
    assert (decision.action, decision.rule, decision.reason_code) == ("reject", "watchlist", "RR04")


def test_a_rejection_inside_a_savepoint_is_recorded_after_the_outer_commit(sessions: sessionmaker[Session]) -> None:
    """The pacs.008 path: one message, several transactions, each in a savepoint; the outer
    transaction already holds SQLite's writer lock when the second one is screened out."""
    engine = RiskEngine(watchlist=LIST)
    ok, bad = instruction(), instruction(remittance_info="Ivan Petrovich Sidorov")
    with sessions() as s:
        s.add(PaymentIntake(uetr=str(ok.uetr), debtor_agent=ok.debtor_agent, creditor_agent=ok.creditor_agent,
                            currency="EUR", amount=ok.amount, amount_minor=Decimal(ok.amount_minor()),
                            instruction_hash="0x", canonical_json="{}", message_type="json", flags=0, deadline=0,
                            signed_by="bank"))
        s.flush()  # the outer transaction writes: SQLite's writer lock is taken
        with pytest.raises(ScreeningHit), s.begin_nested():
            engine.risk_check(s, bad, None)
        assert audit_rows(sessions) == []  # deferred: never waits for the lock the request holds
        s.commit()
    [row] = audit_rows(sessions)
    assert json.loads(row.inputs)["payment"]["uetr"] == str(bad.uetr)


def test_the_engine_reloads_its_watch_list_file(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "watch.jsonl"
    path.write_text('{"type": "country", "value": "KP", "list": "EU"}\n')
    engine = RiskEngine(RiskConfig(watchlist_path=path, watchlist_check_interval_ms=0))
    payment = instruction(debtor={"name": "Acme", "country": "IR"})
    with sessions() as s:
        assert engine.evaluate(s, payment).action == "pass"
        path.write_text('{"type": "country", "value": "KP", "list": "EU"}\n{"type": "country", "value": "IR"}\n')
        assert len(engine.reload_watchlist()) == 2
        assert engine.evaluate(s, payment).action == "reject"
