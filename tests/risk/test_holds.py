"""Held payments: one released and another rejected (functions and HTTP), decisions taken
once, the gateway hooks called in the same transaction, and the audit trail endpoints."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.audit_trail import list_entries
from chain_gateway.db import utcnow
from chain_gateway.errors import Conflict, NotFound
from chain_gateway.risk import RiskConfig, RiskEngine, get_hold, hold, list_holds, reject, release
from chain_gateway.risk.config import OutlierRule
from chain_gateway.risk.engine import Decision
from chain_gateway.risk.holds import held_payment

from .conftest import Api, build_api, instruction, intake_row

History = Callable[..., list[str]]
DECISION = Decision("hold", "AM09", "outlier", "5000.00 EUR is above ...", ({"rule": "outlier", "mean": "100.00"},))


def _held_by_engine(sessions: sessionmaker[Session], add_history: History, n: int = 2) -> list[str]:
    """`n` payments held by the outlier rule, as intake would leave them (intake row + hold)."""
    add_history(["100.00"] * 5)
    engine = RiskEngine(RiskConfig(outlier=OutlierRule(enabled=True, history=5, k=Decimal(2))))
    uetrs = []
    for _ in range(n):
        payment = instruction(amount="5000.00")
        with sessions() as s:
            assert engine.risk_check(s, payment, None).action == "hold"
            # intake stores the held payment (its outbox row HELD); dated back so that it does not
            # enter the outlier rule's "last 5" for the next one
            s.add(intake_row(payment, utcnow() - timedelta(days=1)))
            s.commit()
        uetrs.append(str(payment.uetr))
    return uetrs


def test_one_held_payment_released_and_another_rejected(sessions: sessionmaker[Session],
                                                        add_history: History) -> None:
    a, b = _held_by_engine(sessions, add_history)
    with sessions() as s:
        pending, cursor = list_holds(s)
        assert [p.hold.uetr for p in pending] == [a, b] and cursor is None
        assert pending[0].hold.rule == "outlier" and pending[0].hold.reason_code == "AM09"
    with sessions() as s, s.begin():
        released = release(s, a, "operator:k1")
        assert (released.decision, released.decided_by) == ("released", "operator:k1")
        assert released.decided_at is not None
    with sessions() as s, s.begin():
        assert reject(s, b, "operator:k1").decision == "rejected"
    with sessions() as s:
        assert list_holds(s)[0] == []  # nothing pending
        assert [(p.hold.uetr, p.hold.decision) for p in list_holds(s, pending_only=False)[0]] == [
            (a, "released"), (b, "rejected")]
        rejected = get_hold(s, b)
        assert rejected is not None and rejected.reason_code == "AM09"  # what the tracker shows with RJCT


def test_a_decision_is_taken_once(sessions: sessionmaker[Session]) -> None:
    uetr = str(uuid.uuid4())
    with sessions() as s, s.begin():
        hold(s, uetr, DECISION)
        release(s, uetr, "operator:k1")
    for decide in (release, reject):
        with sessions() as s, s.begin(), pytest.raises(Conflict, match="already released"):
            decide(s, uetr, "operator:k2")


def test_unknown_or_malformed_uetrs_are_not_found(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        for bad in (str(uuid.uuid4()), "not-a-uetr"):
            with pytest.raises(NotFound):
                release(s, bad, "operator:k1")


def test_hold_is_idempotent_and_lists_payments_without_an_intake_row(sessions: sessionmaker[Session]) -> None:
    uetr = str(uuid.uuid4())
    with sessions() as s, s.begin():
        first = hold(s, uetr, DECISION)
        assert hold(s, uetr.upper(), DECISION) is first
    with sessions() as s:
        [item] = list_holds(s)[0]
        public = item.public()
        assert public["matched"] == [{"mean": "100.00", "rule": "outlier"}] and public["amount"] is None


def test_list_holds_pages(sessions: sessionmaker[Session]) -> None:
    uetrs = [str(uuid.uuid4()) for _ in range(5)]
    for u in uetrs:
        with sessions() as s, s.begin():
            hold(s, u, DECISION)
    with sessions() as s:
        page1, cursor = list_holds(s, limit=3)
        page2, end = list_holds(s, limit=3, after=cursor)
    assert [p.hold.uetr for p in page1 + page2] == uetrs and end is None


# --- over HTTP, with a stand-in gateway -------------------------------------------------------
@pytest.fixture
def api(sessions: sessionmaker[Session]) -> Api:
    return build_api(sessions)


def test_http_release_and_reject_call_the_gateway_and_are_audited(api: Api, sessions: sessionmaker[Session],
                                                                   add_history: History) -> None:
    a, b = _held_by_engine(sessions, add_history)
    r = api.http.get("/v1/risk/holds", headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["uetr"] for i in body["items"]] == [a, b] and body["next_cursor"] is None
    assert body["items"][0]["amount"] == "5000.00" and body["items"][0]["reason_code"] == "AM09"

    r = api.http.post(f"/v1/risk/holds/{a}/release", headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "released"
    r = api.http.post(f"/v1/risk/holds/{b}/reject", headers=api.as_("operator"))
    assert r.status_code == 200 and r.json()["decision"] == "rejected"
    assert api.gateway.calls == [("release_held", a), ("reject_held", b)]
    assert api.gateway.submitter.notified == 1

    r = api.http.post(f"/v1/risk/holds/{a}/reject", headers=api.as_("operator"))
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert api.http.post(f"/v1/risk/holds/{uuid.uuid4()}/release", headers=api.as_("operator")).status_code == 404
    with sessions() as s:
        actions = [(e.action, e.outcome) for e in list_entries(s)[0]]
    assert actions == [("risk.decision", "hold"), ("risk.decision", "hold"), ("risk.hold.release", "released"),
                       ("risk.hold.reject", "rejected")]


@pytest.mark.parametrize("who", ["auditor", "DEMOUS33XXX"])
def test_http_holds_are_the_operators(api: Api, who: str) -> None:
    r = api.http.get("/v1/risk/holds", headers=api.as_(who))
    assert r.status_code == 403 and r.json()["reason_code"] == "AG01"
    r = api.http.post(f"/v1/risk/holds/{uuid.uuid4()}/release", headers=api.as_(who))
    assert r.status_code == 403
    assert api.http.get("/v1/risk/holds").status_code == 401


def test_http_without_the_gateway_hooks_nothing_changes(api: Api, sessions: sessionmaker[Session]) -> None:
    uetr = str(uuid.uuid4())
    with sessions() as s, s.begin():
        hold(s, uetr, DECISION)
    api.gateway.release_held = None  # type: ignore[assignment, method-assign]
    r = api.http.post(f"/v1/risk/holds/{uetr}/release", headers=api.as_("operator"))
    assert r.status_code == 503 and "release_held" in r.json()["detail"]
    with sessions() as s:
        untouched = get_hold(s, uetr)
        assert untouched is not None and untouched.decision is None


def test_http_audit_trail_pages_and_verifies(api: Api, sessions: sessionmaker[Session], engine: Engine) -> None:
    from chain_gateway.audit_trail import record
    with sessions() as s, s.begin():
        for i in range(5):
            record(s, actor="operator:k1", action="participant.fund", inputs={"i": i}, outcome="ok")
    r = api.http.get("/v1/audit/trail", params={"limit": 3}, headers=api.as_("auditor"))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["seq"] for i in page["items"]] == [1, 2, 3] and page["next_cursor"] == "3"
    assert page["items"][0]["inputs"] == {"i": 0} and len(page["items"][0]["row_hash"]) == 64
    r = api.http.get("/v1/audit/trail", params={"cursor": page["next_cursor"]}, headers=api.as_("operator"))
    assert [i["seq"] for i in r.json()["items"]] == [4, 5] and r.json()["next_cursor"] is None
    r = api.http.get("/v1/audit/trail/verify", headers=api.as_("auditor"))
    assert r.json() == {"ok": True, "rows": 5, "first_broken": None, "head": r.json()["head"]}

    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_trail_no_update"))
        conn.execute(text("UPDATE audit_trail SET outcome = 'error' WHERE seq = 3"))
    r = api.http.get("/v1/audit/trail/verify", headers=api.as_("auditor"))
    assert r.json()["ok"] is False and r.json()["first_broken"]["seq"] == 3

    assert api.http.get("/v1/audit/trail", headers=api.as_("DEMOUS33XXX")).status_code == 403
    assert api.http.get("/v1/audit/trail", params={"cursor": "x"}, headers=api.as_("auditor")).status_code == 400
    r = api.http.get("/v1/audit/trail", params={"since": "2026-01-01T00:00:00"}, headers=api.as_("auditor"))
    assert r.status_code == 400 and r.json()["reason_code"] == "FF01"
    r = api.http.get("/v1/audit/trail", params={"since": "2020-01-01T00:00:00Z", "action": "participant.fund"},
                     headers=api.as_("auditor"))
    assert len(r.json()["items"]) == 5


def test_held_payment_public_view(sessions: sessionmaker[Session], add_history: History) -> None:
    [uetr] = _held_by_engine(sessions, add_history, n=1)
    with sessions() as s:
        hold_row = get_hold(s, uetr)
        assert hold_row is not None
        view = held_payment(s, hold_row).public()
    assert view["uetr"] == uetr and view["decision"] is None and view["matched"][0]["rule"] == "outlier"


def test_http_watchlist_in_force_and_reload(api: Api, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    assert api.http.get("/v1/risk/watchlist", headers=api.as_("auditor")).status_code == 503  # not wired yet
    path = tmp_path / "watch.csv"
    path.write_text("type,value,list\ncountry,KP,EU\n")
    api.gateway.risk_engine = RiskEngine(RiskConfig(watchlist_path=path, watchlist_check_interval_ms=3_600_000))
    r = api.http.get("/v1/risk/watchlist", headers=api.as_("auditor"))
    assert r.status_code == 200 and r.json()["entries"] == 1 and r.json()["source"] == str(path)

    path.write_text("type,value,list\ncountry,KP,EU\nname,Ivan Petrovich Sidorov,OFAC-SDN\n")
    assert api.http.post("/v1/risk/watchlist/reload", headers=api.as_("auditor")).status_code == 403
    r = api.http.post("/v1/risk/watchlist/reload", headers=api.as_("operator"))
    assert r.status_code == 200 and r.json()["by_type"] == {"bic": 0, "country": 1, "name": 1}

    path.write_text("type,value\ncountry,ZZ\n")
    r = api.http.post("/v1/risk/watchlist/reload", headers=api.as_("operator"))
    assert r.status_code == 409 and "previous list stays in force" in r.json()["detail"]
    r = api.http.get("/v1/risk/watchlist", headers=api.as_("operator"))
    assert r.json()["entries"] == 2 and "ZZ" in r.json()["last_error"]
    with sessions() as s:
        assert [e.outcome[:5] for e in list_entries(s, action="risk.watchlist.reload")[0]] == ["ok", "error"]
