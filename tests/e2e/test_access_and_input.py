"""Who may do what (each role against each endpoint, bank A against bank B), idempotency
by UETR (also two identical requests in flight at once), and bad input: every case a 4xx
problem+json that changes nothing."""
from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from tests.live import Live, wait_status

NY, FR, LN = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX"


def _problem(r: Any, status: int, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if reason is not None:
        assert body.get("reason_code") == reason, body
    return body


# ------------------------------------------------------------------ authorization
ENDPOINTS = [  # method, path, body, roles allowed (besides nothing)
    ("POST", "/v1/participants", {"bic": "ZZZZUS33", "name": "x", "country": "US", "roles": ["bank"]}, {"operator"}),
    ("POST", "/v1/funding", {"bic": NY, "currency": "USD", "amount": "1.00", "reference": "AUTHZ"}, {"operator"}),
    ("POST", "/v1/defunding", {"bic": NY, "currency": "USD", "amount": "1.00", "reference": "AUTHZ"}, {"operator"}),
    ("POST", f"/v1/participants/{LN}/suspend", None, {"operator"}),
    ("GET", "/v1/audit/reconciliation", None, {"auditor", "operator"}),
    ("GET", "/v1/audit/ledger", None, {"auditor", "operator"}),
    ("POST", "/v1/payments", {"creditor_agent": FR, "currency": "USD", "amount": "1.00"}, {"bank"}),
    ("GET", "/v1/participants", None, {"bank", "auditor", "operator"}),
]


@pytest.mark.parametrize("method,path,body,allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
@pytest.mark.parametrize("role", ["bank", "auditor", "none"])
def test_role_matrix(live: Live, method: str, path: str, body: Any, allowed: set[str], role: str) -> None:
    key = {"bank": live.bank(NY), "auditor": live.auditor, "none": None}[role]
    r = live.client(key).request(method, path, json=body)
    if role == "none":
        _problem(r, 401)
    elif role in allowed:
        assert r.status_code < 400, r.text
    else:
        _problem(r, 403, "AG01")


def test_operator_may_not_pay(live: Live) -> None:
    r = live.client(live.operator).post("/v1/payments", json={"creditor_agent": FR, "currency": "USD", "amount": "1"})
    _problem(r, 403, "AG01")


def test_bank_cannot_see_another_banks_money_or_payments(live: Live) -> None:
    ny, ln = live.client(live.bank(NY), Prefer="wait=10"), live.client(live.bank(LN))
    r = ny.post("/v1/payments", json={"creditor_agent": FR, "currency": "USD", "amount": "3.00"})
    uetr = r.json()["uetr"]
    _problem(ln.get(f"/v1/payments/{uetr}"), 404)
    _problem(ln.get(f"/v1/accounts/{NY}/balances"), 404)
    _problem(ln.get(f"/v1/accounts/{NY}/statement"), 404)
    assert all(p["debtor_agent"] == LN or p["creditor_agent"] == LN for p in ln.get("/v1/payments").json()["items"])
    assert live.client(live.auditor).get(f"/v1/payments/{uetr}").status_code == 200


def test_revoked_key_is_refused(live: Live) -> None:
    op = live.client(live.operator)
    issued = op.post(f"/v1/participants/{LN}/keys").json()
    c = live.client(issued["api_key"])
    assert c.get("/v1/participants").status_code == 200
    assert c.delete(f"/v1/keys/{issued['key_id']}").status_code == 204
    _problem(c.get("/v1/participants"), 401)
    _problem(live.client("sl_nope_nope").get("/v1/participants"), 401)
    _problem(live.client("garbage").get("/v1/participants"), 401)


# ------------------------------------------------------------------- idempotency
def test_same_uetr_same_content_returns_first_answer(live: Live) -> None:
    ny = live.client(live.bank(NY))
    body = {"uetr": str(uuid.uuid4()), "creditor_agent": FR, "currency": "EUR", "amount": "7.00"}
    first = ny.post("/v1/payments", json=body)
    assert first.status_code == 202
    again = ny.post("/v1/payments", json=body)
    assert again.status_code == 200 and again.json()["uetr"] == body["uetr"]
    _problem(ny.post("/v1/payments", json={**body, "amount": "7.01"}), 409, "DUPL")
    wait_status(ny, body["uetr"], {"ACSC"})


def test_two_identical_requests_in_flight_pay_once(live: Live) -> None:
    body = {"uetr": str(uuid.uuid4()), "creditor_agent": FR, "currency": "EUR", "amount": "11.00"}
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        with live.client(live.bank(NY)) as c:
            barrier.wait()
            codes.append(c.post("/v1/payments", json=body).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 202], codes  # one accepts, the other gets the first answer again
    wait_status(live.client(live.bank(NY)), body["uetr"], {"ACSC"})
    events = live.client(live.auditor).get("/v1/audit/ledger").json()["items"]
    settled = [e for e in events if e["event"] == "PaymentSettled" and e["args"]["uetr"] == "0x" + uuid.UUID(body["uetr"]).hex]
    assert len(settled) == 1


# ------------------------------------------------------------------------ bad input
BAD_JSON = [
    (b"{not json", 400, "FF01"),
    (b"[]", 400, "FF01"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "1.001"}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "-5.00"}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "0"}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "1234567890123456789.00"}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": 12.5}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "JPY", "amount": "1.5"}', 422, "AM12"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "XAU", "amount": "1"}', 422, "AM03"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "ZZZ", "amount": "1"}', 422, "AM03"),
    (b'{"creditor_agent": "NOPEXX99", "currency": "EUR", "amount": "1"}', 422, "RC01"),
    (b'{"creditor_agent": "BAD", "currency": "EUR", "amount": "1"}', 422, "RC01"),
    (b'{"uetr": "not-a-uuid", "creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "1"}', 400, "FF01"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "999999999.00"}', 422, "AM04"),
    (b'{"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "1", "signature": "0x1234"}', 422, "FF01"),
]


@pytest.mark.parametrize("body,status,reason", BAD_JSON, ids=[b.decode()[:60] for b, _, _ in BAD_JSON])
def test_bad_json_payment_is_refused_and_changes_nothing(live: Live, body: bytes, status: int, reason: str) -> None:
    ny = live.client(live.bank(NY))
    before = ny.get(f"/v1/accounts/{NY}/balances").json()["balances"]
    _problem(ny.post("/v1/payments", content=body, headers={"Content-Type": "application/json"}), status, reason)
    assert ny.get(f"/v1/accounts/{NY}/balances").json()["balances"] == before


BAD_XML = [
    b"<Document><unclosed>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Document>&e;</Document>',
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Document>&b;</Document>',
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><Nope/></Document>',
    b'<Document xmlns="urn:example:wrong"/>',
    b"<a>" * 5000 + b"</a>" * 5000,
]


@pytest.mark.parametrize("body", BAD_XML, ids=["malformed", "xxe", "entity-expansion", "schema-invalid", "namespace",
                                               "deep-nesting"])
def test_bad_xml_is_refused(live: Live, body: bytes) -> None:
    r = live.client(live.bank(NY)).post("/v1/payments", content=body, headers={"Content-Type": "application/xml"})
    _problem(r, 400, "FF01")


def test_unsupported_media_type_and_oversize(live: Live) -> None:
    ny = live.client(live.bank(NY))
    _problem(ny.post("/v1/payments", content=b"x", headers={"Content-Type": "text/plain"}), 415)
    big = b"{" + b" " * (6 * 1024 * 1024) + b"}"
    _problem(ny.post("/v1/payments", content=big, headers={"Content-Type": "application/json"}), 413)


def test_unknown_payment_and_path(live: Live) -> None:
    ny = live.client(live.bank(NY))
    _problem(ny.get(f"/v1/payments/{uuid.uuid4()}"), 404)
    _problem(ny.get("/v1/payments/not-a-uetr"), 404)
    _problem(ny.get("/v1/nothing-here"), 404)
