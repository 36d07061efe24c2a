"""The README's curl walk-through, step by step, over real HTTP."""
from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from lxml import etree

from tests.live import Live, wait_status

NY, FR = "DEMOUS33XXX", "DEMODEFFXXX"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "pacs008-demo.xml"


def _balance(live: Live, key: str, bic: str, currency: str) -> Decimal:
    r = live.client(key).get(f"/v1/accounts/{bic}/balances")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["block_number"] > 0
    return next((Decimal(b["amount"]) for b in body["balances"] if b["currency"] == currency), Decimal(0))


def test_readme_walkthrough(live: Live) -> None:
    op, ny, fr = live.client(live.operator), live.client(live.bank(NY)), live.client(live.bank(FR))
    ny_before = _balance(live, live.bank(NY), NY, "EUR")
    fr_before = _balance(live, live.bank(FR), FR, "EUR")

    r = op.post("/v1/funding", json={"bic": "DEMOUS33", "currency": "EUR", "amount": "1000.00",
                                     "reference": "TOPUP-0001"})
    assert r.status_code == 200, r.text
    assert Decimal(r.json()["balance"]) == ny_before + Decimal("1000.00")

    uetr = str(uuid.uuid4())
    r = ny.post("/v1/payments", json={"uetr": uetr, "creditor_agent": "DEMODEFF", "currency": "EUR",
                                      "amount": "250.75", "end_to_end_id": "INV-2026-001",
                                      "remittance_info": "Invoice 2026-001"})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/payments/{uetr}"
    assert r.json()["status"] in {"RCVD", "ACSP", "ACSC"}

    tracker = wait_status(ny, uetr, {"ACSC"})
    assert tracker["amount"] == "250.75" and tracker["tx_hash"] and tracker["block_number"]
    assert next(h["status"] for h in tracker["history"]) == "RCVD"
    assert tracker["history"][-1]["status"] == "ACSC"

    assert _balance(live, live.bank(NY), NY, "EUR") == ny_before + Decimal("1000.00") - Decimal("250.75")
    assert _balance(live, live.bank(FR), FR, "EUR") == fr_before + Decimal("250.75")
    assert fr.get(f"/v1/payments/{uetr}").status_code == 200  # the creditor sees it too

    r = live.client(live.bank(NY), Accept="application/xml").post(
        "/v1/payments", content=EXAMPLE.read_bytes(), headers={"Content-Type": "application/xml"})
    assert r.status_code in (200, 202), r.text
    report = etree.fromstring(r.content)
    assert report.tag.endswith("Document") and "pacs.002" in report.tag
    ns = {"p": report.tag[1:].split("}")[0]}
    assert report.findtext(".//p:TxInfAndSts/p:OrgnlUETR", namespaces=ns) == "5e1c3d52-6f6a-4f59-9b2c-2f1f2d0b7a11"
    wait_status(ny, "5e1c3d52-6f6a-4f59-9b2c-2f1f2d0b7a11", {"ACSC"})

    r = ny.get("/v1/payments/5e1c3d52-6f6a-4f59-9b2c-2f1f2d0b7a11", headers={"Accept": "application/xml"})
    assert r.status_code == 200 and b"ACSC" in r.content

    audit = live.client(live.auditor)
    r = audit.get("/v1/audit/reconciliation")
    assert r.status_code == 200, r.text
    assert r.json()["differences"] == [] and r.json()["checked"]["payments"] >= 2


def test_prefer_wait_answers_when_final(live: Live) -> None:
    ny = live.client(live.bank(NY), Prefer="wait=10")
    r = ny.post("/v1/payments", json={"creditor_agent": "DEMOGB2L", "currency": "GBP", "amount": "10.00"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "ACSC"


def test_statement_and_camt053(live: Live) -> None:
    ny = live.client(live.bank(NY), Prefer="wait=10")
    ny.post("/v1/payments", json={"creditor_agent": "DEMOGB2L", "currency": "USD", "amount": "5.00"})
    r = ny.get(f"/v1/accounts/{NY}/statement", params={"currency": "USD"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["items"] and body["items"][0]["kind"] == "FUND"
    running = Decimal(body["opening_balance"])
    for line in body["items"]:
        running += Decimal(line["amount"])
        assert Decimal(line["balance_after"]) == running
    r = ny.get(f"/v1/accounts/{NY}/statement", params={"currency": "USD"}, headers={"Accept": "application/xml"})
    assert r.status_code == 200 and b"camt.053" in r.content


def test_audit_ledger_lists_events(live: Live) -> None:
    r = live.client(live.auditor).get("/v1/audit/ledger")
    assert r.status_code == 200, r.text
    names = {i["event"] for i in r.json()["items"]}
    assert {"ParticipantRegistered", "Funded"} <= names
    assert all("tx_hash" in i and "log_index" in i for i in r.json()["items"])


def test_healthz_and_metrics(live: Live) -> None:
    c = live.client()
    h = c.get("/healthz").json()
    assert h["status"] == "ok" and h["chain_id"] == 31337 and h["mirror_lag_blocks"] is not None
    m = c.get("/metrics")
    assert m.status_code == 200 and "gateway_requests_total" in m.text
