"""Emergency stop over real HTTP: while the operator has paused the ledger, new payments get
503 problem+json saying so (with Retry-After) and reach neither the outbox nor the chain;
reads keep working; after resume, payments settle again.

Uses the end-to-end gateway of tests/e2e (managed anvil, uvicorn on a free port)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.live import Live, wait_status

NY, FR = "DEMOUS33XXX", "DEMODEFFXXX"


@pytest.fixture
def paused(live: Live) -> Iterator[Live]:
    op = live.client(live.operator)
    r = op.post("/v1/system/pause")
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["tx_hash"]
    try:
        yield live
    finally:
        r = op.post("/v1/system/resume")  # never leave the shared gateway paused
        assert r.status_code in (200, 409), r.text


def test_payments_are_refused_with_503_while_paused_and_reads_work(paused: Live) -> None:
    live = paused
    ny = live.client(live.bank(NY))
    uetr = str(uuid.uuid4())
    r = ny.post("/v1/payments", json={"uetr": uetr, "creditor_agent": "DEMODEFF", "currency": "EUR",
                                      "amount": "1.00", "end_to_end_id": "PAUSED-1"})
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) > 0
    problem = r.json()
    assert problem["status"] == 503 and "paused" in (problem["title"] + problem["detail"]).lower()

    assert ny.get(f"/v1/payments/{uetr}").status_code == 404  # nothing was stored
    chain = live.gateway.require_client()
    assert chain.paused() and chain.payment_status(uuid.UUID(uetr).bytes) == 0  # nor sent

    assert ny.get("/v1/payments").status_code == 200
    r = ny.get(f"/v1/accounts/{NY}/balances")
    assert r.status_code == 200 and r.json()["balances"]
    assert ny.get(f"/v1/accounts/{NY}/statement", params={"currency": "EUR"}).status_code == 200
    assert live.client(live.auditor).get("/v1/audit/reconciliation").status_code == 200
    assert live.client().get("/healthz").json()["status"] == "paused"

    r = live.client(live.operator).post("/v1/system/pause")
    assert r.status_code == 409  # already paused: no second transaction


def test_payments_settle_again_after_resume(live: Live) -> None:
    op, ny = live.client(live.operator), live.client(live.bank(NY))
    assert op.post("/v1/system/pause").status_code == 200
    try:
        r = op.post("/v1/system/resume")
        assert r.status_code == 200 and r.json()["paused"] is False
    finally:
        if live.gateway.require_client().paused():
            op.post("/v1/system/resume")
    assert live.client().get("/healthz").json()["status"] == "ok"
    uetr = str(uuid.uuid4())
    r = ny.post("/v1/payments", json={"uetr": uetr, "creditor_agent": "DEMODEFF", "currency": "EUR",
                                      "amount": "1.00", "end_to_end_id": "RESUMED-1"})
    assert r.status_code == 202, r.text
    assert wait_status(ny, uetr, {"ACSC"})["status"] == "ACSC"
