"""The audit trail: the hash chain, its verification naming the first broken row, the
append-only triggers, serialised appends, redaction, and the one-line decorator."""
from __future__ import annotations

import hashlib
import threading
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from api.deps import Operator, SessionDep
from chain_gateway.access import Principal
from chain_gateway.audit_trail import (
    GENESIS_HASH,
    AuditEntry,
    actor_of,
    audited,
    canonical_inputs,
    format_at,
    list_entries,
    record,
    record_detached,
    record_now,
    verify,
)
from chain_gateway.errors import Conflict

from .conftest import build_api


class Suspension(BaseModel):
    reason: str


OPERATOR = Principal(key_id="k0p3r4t0r000", bic=None, roles=frozenset({"operator"}))
BANK = Principal(key_id="b4nk00000001", bic="DEMOUS33XXX", roles=frozenset({"bank"}))


def _fill(sessions: sessionmaker[Session], n: int) -> None:
    with sessions() as s, s.begin():
        for i in range(n):
            record(s, actor="operator:k1", action="participant.fund", inputs={"bic": "DEMOUS33XXX", "n": i,
                                                                             "amount": Decimal("10.00")},
                   outcome="ok", tx_hash=f"0x{i:064x}")


def _tamper(engine: Engine, sql: str) -> None:
    """What only someone with full database rights can do: drop the triggers, then edit."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_trail_no_update"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_trail_no_delete"))
        conn.execute(text(sql))


def test_rows_chain_from_the_genesis_hash(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 3)
    with sessions() as s:
        rows, cursor = list_entries(s)
    assert [r.seq for r in rows] == [1, 2, 3] and cursor is None
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    body: dict[str, Any] = {
        "seq": 2, "at": format_at(rows[1].at), "actor": "operator:k1", "action": "participant.fund",
        "inputs": rows[1].inputs, "outcome": "ok", "tx_hash": f"0x{1:064x}", "prev_hash": rows[0].row_hash}
    assert rows[1].row_hash == hashlib.sha256(rfc8785.dumps(body)).hexdigest()  # the documented formula
    assert rows[1].inputs == '{"amount":"10.00","bic":"DEMOUS33XXX","n":1}'  # canonical: sorted, no floats


def test_verify_on_an_intact_trail(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert verify(s) == {"ok": True, "rows": 0, "first_broken": None, "head": None}
    _fill(sessions, 5)
    with sessions() as s:
        result = verify(s)
        last = list_entries(s, after=4)[0][0]
    assert result["ok"] and result["rows"] == 5 and result["first_broken"] is None
    assert result["head"] == {"seq": 5, "row_hash": last.row_hash}


def test_tampering_with_one_row_is_detected_at_that_row(sessions: sessionmaker[Session], engine: Engine) -> None:
    _fill(sessions, 6)
    with sessions() as s:
        stored = s.get(AuditEntry, 4)
        assert stored is not None
        original_hash = stored.row_hash
    _tamper(engine, "UPDATE audit_trail SET outcome = 'error Forbidden AG01' WHERE seq = 4")
    with sessions() as s:
        result = verify(s)
    assert not result["ok"] and result["rows"] == 6
    broken = result["first_broken"]
    assert broken["seq"] == 4 and broken["kind"] == "content"
    assert broken["actual"] == original_hash and broken["expected"] != original_hash


def test_rewriting_a_row_with_a_fresh_hash_breaks_the_next_link(sessions: sessionmaker[Session],
                                                                engine: Engine) -> None:
    _fill(sessions, 4)
    _tamper(engine, "UPDATE audit_trail SET inputs = '{}', row_hash = 'f00d' WHERE seq = 2")
    with sessions() as s:
        assert verify(s)["first_broken"]["seq"] == 2  # its content no longer hashes to 'f00d'
    with sessions() as s:
        row = s.get(AuditEntry, 2)
        assert row is not None
        from chain_gateway.audit_trail import row_digest
        fresh = row_digest(seq=2, at=row.at, actor=row.actor, action=row.action, inputs=row.inputs,
                           outcome=row.outcome, tx_hash=row.tx_hash, prev_hash=row.prev_hash)
    _tamper(engine, f"UPDATE audit_trail SET row_hash = '{fresh}' WHERE seq = 2")
    with sessions() as s:
        broken = verify(s)["first_broken"]
    assert broken["seq"] == 3 and broken["kind"] == "link" and broken["expected"] == fresh


def test_a_deleted_row_is_detected_at_the_next_row(sessions: sessionmaker[Session], engine: Engine) -> None:
    _fill(sessions, 4)
    _tamper(engine, "DELETE FROM audit_trail WHERE seq = 2")
    with sessions() as s:
        result = verify(s)
    assert result["rows"] == 3 and result["first_broken"]["seq"] == 3 and result["first_broken"]["kind"] == "link"


def test_the_table_refuses_updates_and_deletes(sessions: sessionmaker[Session], engine: Engine) -> None:
    _fill(sessions, 1)
    for sql in ("UPDATE audit_trail SET outcome = 'x'", "DELETE FROM audit_trail"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with sessions() as s:
        assert verify(s)["ok"]


@pytest.mark.parametrize("own_transactions", [True, False], ids=["record_now", "record-in-caller-session"])
def test_concurrent_appends_keep_one_chain(sessions: sessionmaker[Session], engine: Engine,
                                           own_transactions: bool) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                if own_transactions:
                    record_now(engine, actor=f"t{n}", action="test", inputs={"i": i}, outcome="ok")
                else:  # no process lock: only the database serialises these
                    with sessions() as s, s.begin():
                        record(s, actor=f"t{n}", action="test", inputs={"i": i}, outcome="ok")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as s:
        result = verify(s)
    assert result["ok"] and result["rows"] == 40


def test_record_detached_survives_the_callers_rollback(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        s.execute(text("SELECT 1"))  # a transaction is open
        record_detached(s, actor="system", action="risk.decision", inputs={"uetr": "u"}, outcome="reject")
        record(s, actor="system", action="in.request", inputs={}, outcome="ok")
        s.rollback()
    with sessions() as s:
        assert [(r.seq, r.action) for r in list_entries(s)[0]] == [(1, "risk.decision")]
        assert verify(s)["ok"]


def test_inputs_are_canonical_and_secrets_are_redacted() -> None:
    text_ = canonical_inputs({"b": 1, "a": {"api_key": "sl_x_secret", "Signature": "0xabc", "amount": Decimal("1.50"),
                                            "big": 2**70, "raw": b"\x01\x02", "when": None}})
    assert text_ == ('{"a":{"Signature":"[redacted]","amount":"1.50","api_key":"[redacted]",'
                     '"big":"1180591620717411303424","raw":"0x0102","when":null},"b":1}')


def test_actor_names_the_key_and_its_owner() -> None:
    assert actor_of(OPERATOR) == "operator:k0p3r4t0r000"
    assert actor_of(BANK) == "DEMOUS33XXX:b4nk00000001"
    assert actor_of(None) == "system"


def test_list_entries_pages_and_filters(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions() as s, s.begin():
        record(s, actor="DEMOUS33XXX:b1", action="limits.set_own", inputs={}, outcome="ok")
    with sessions() as s:
        page1, cursor = list_entries(s, limit=4)
        page2, end = list_entries(s, after=cursor or 0, limit=4)
        own, _ = list_entries(s, action="limits.set_own")
    assert [r.seq for r in page1] == [1, 2, 3, 4] and cursor == 4
    assert [r.seq for r in page2] == [5, 6] and end is None
    assert [r.actor for r in own] == ["DEMOUS33XXX:b1"]


# --- the decorator ------------------------------------------------------------------------
def test_audited_records_success_with_inputs_and_tx_hash(sessions: sessionmaker[Session]) -> None:
    class Funding(BaseModel):
        bic: str
        amount: str
        api_key: str = "never stored"

    @audited("participant.fund")
    def handler(body: Funding, session: Session, _: Principal, bic: str = "DEMOUS33XXX") -> dict[str, Any]:
        session.commit()
        return {"tx_hash": "0x" + "ab" * 32}

    with sessions() as s:
        handler(body=Funding(bic="DEMOUS33", amount="5.00"), session=s, _=OPERATOR, bic="DEMOUS33XXX")
    with sessions() as s:
        [row] = list_entries(s)[0]
    assert (row.actor, row.action, row.outcome, row.tx_hash) == ("operator:k0p3r4t0r000", "participant.fund", "ok",
                                                                "0x" + "ab" * 32)
    assert row.public()["inputs"] == {"amount": "5.00", "api_key": "[redacted]", "bic": "DEMOUS33XXX"}


def test_audited_records_a_failed_action_after_the_request_rolled_back(sessions: sessionmaker[Session]) -> None:
    @audited("participant.suspend")
    def handler(bic: str, session: Session, principal: Principal) -> None:
        session.execute(text("SELECT 1"))
        raise Conflict(f"{bic} is already suspended")

    with sessions() as s:
        with pytest.raises(Conflict):
            handler(bic="DEMOUS33XXX", session=s, principal=OPERATOR)
        s.rollback()
    with sessions() as s:
        [row] = list_entries(s)[0]
    assert row.outcome == "error Conflict" and row.public()["inputs"] == {"bic": "DEMOUS33XXX"}


def test_audited_works_on_async_handlers(sessions: sessionmaker[Session]) -> None:
    import asyncio

    @audited("system.pause")
    async def handler(session: Session, _: Principal) -> dict[str, str]:
        return {"tx_hash": "0x01"}

    with sessions() as s:
        # on a thread of its own: the console tests' sync Playwright keeps a loop running here
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(asyncio.run, handler(session=s, _=OPERATOR)).result()
        assert result == {"tx_hash": "0x01"}
    with sessions() as s:
        assert [r.action for r in list_entries(s)[0]] == ["system.pause"]


def test_audited_on_a_real_fastapi_route(sessions: sessionmaker[Session]) -> None:
    """FastAPI still sees the handler's own parameters (dependencies, path, body) through the wrapper."""
    api = build_api(sessions)

    @api.http.app.post("/test/participants/{bic}/suspend")
    @audited("participant.suspend")
    def suspend(bic: str, body: Suspension, session: SessionDep, principal: Operator) -> dict[str, str]:
        if bic == "FAILXXXX":
            raise Conflict(f"{bic} is already suspended")
        return {"bic": bic, "tx_hash": "0x" + "cd" * 32}

    r = api.http.post("/test/participants/DEMOUS33/suspend", json={"reason": "fraud"}, headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    r = api.http.post("/test/participants/FAILXXXX/suspend", json={"reason": "x"}, headers=api.as_("operator"))
    assert r.status_code == 409
    assert api.http.post("/test/participants/DEMOUS33/suspend", json={"reason": "x"},
                         headers=api.as_("auditor")).status_code == 403  # refused before the handler ran
    with sessions() as s:
        rows = list_entries(s)[0]
    assert [(r.action, r.outcome, r.tx_hash) for r in rows] == [
        ("participant.suspend", "ok", "0x" + "cd" * 32), ("participant.suspend", "error Conflict", None)]
    assert rows[0].actor.startswith("operator:") and rows[0].public()["inputs"] == {"bic": "DEMOUS33",
                                                                                   "reason": "fraud"}
