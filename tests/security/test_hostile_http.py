"""Hostile input over HTTP against a gateway of the suite's own: ISO 20022 attacks, JSON
tricks, forged or replayed signatures, header and authentication abuse.

Every case must get a 4xx problem+json, move nothing (every balance and supply read on-chain
is unchanged) and write nothing (no intake or outbox row, none for the case's UETR). The
figures ("N hostile cases, N got a 4xx") are printed in the terminal summary.

Decision on a suspended bank (docs/security.md): its keys still authenticate, so it may read
its own balances, statement and payments (a bank under suspension must be able to see where
it stands), but it cannot pay (422 AC06) and nobody can pay it (422 AC06).
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chain_gateway.signing import _SECP256K1_HALF_N, sign_digest
from tests.instructions.isobuild import Agent, Msg, Tx
from tests.live import Live, wait_status
from tests.security.conftest import HostileTally, LedgerState, ledger_state

NY, FR, LN, TK = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX", "DEMOJPJTXXX"
SECP256K1_N = 2 * _SECP256K1_HALF_N + 1
MB = 1024 * 1024
PAYMENT = {"creditor_agent": FR, "currency": "USD", "amount": "10.00"}


@dataclass
class Setup:
    live: Live
    revoked_key: str
    suspended_bic: str
    suspended_key: str
    stored: dict[str, Any]  # a settled payment of NY's (a UETR to collide with)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        h = dict(headers)
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.live.url, headers=h, timeout=60)


@pytest.fixture(scope="module")
def setup(hostile: Live) -> Iterator[Setup]:
    live = hostile
    op = live.client(live.operator)
    issued = op.post(f"/v1/participants/{NY}/keys").json()
    assert op.delete(f"/v1/keys/{issued['key_id']}").status_code == 204
    reg = op.post("/v1/participants", json={"bic": "SUSPUS33", "name": "Suspended Bank", "country": "US",
                                            "roles": ["bank"]})
    assert reg.status_code == 201, reg.text
    suspended = reg.json()
    assert op.post("/v1/funding", json={"bic": "SUSPUS33", "currency": "USD", "amount": "500.00",
                                        "reference": "HOSTILE-SETUP"}).status_code == 200
    sus = live.client(suspended["api_key"])
    first = sus.post("/v1/payments", json={**PAYMENT, "amount": "1.00"})
    assert first.status_code == 202, first.text
    wait_status(sus, first.json()["uetr"], {"ACSC"})
    assert op.post("/v1/participants/SUSPUS33/suspend").status_code == 200
    ny = live.client(live.bank(NY))
    r = ny.post("/v1/payments", json={**PAYMENT, "uetr": str(uuid.uuid4()), "end_to_end_id": "STORED"})
    assert r.status_code == 202
    stored = wait_status(ny, r.json()["uetr"], {"ACSC"})
    yield Setup(live, issued["api_key"], suspended["bic"], suspended["api_key"], stored)


# ---------------------------------------------------------------------------- messages
def pacs008(*txs: Tx, **kw: Any) -> bytes:
    return Msg(txs=txs or (tx(),), **kw).bytes()


def tx(uetr: str | None = None, amount: str = "10.00", debtor: str = NY, creditor: str = FR, **kw: Any) -> Tx:
    return Tx(uetr=uetr or str(uuid.uuid4()), ccy="USD", amount=amount, instg=Agent(debtor), instd=Agent(creditor),
              dbtr_agt=Agent(debtor), cdtr_agt=Agent(creditor), **kw)


def _laughs() -> bytes:
    ents = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE Document [{ents}]><Document>&l9;</Document>'.encode()


def _quadratic() -> bytes:
    blob = "x" * 50_000
    return (f'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY a "{blob}">]><Document>'
            + "&a;" * 2_000 + "</Document>").encode()


def _utf16_xxe() -> bytes:
    return ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Document [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&e;</Document>').encode("utf-16")


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * size
        sent += size


def _two_documents() -> bytes:
    doc = Msg(txs=(tx(),)).document()
    return f'<Envelope xmlns="urn:swift:xsd:envelope">{doc}{doc}</Envelope>'.encode()


def _two_headers() -> bytes:
    m = Msg(txs=(tx(),), header="head.001.001.02")
    return f'<Envelope xmlns="urn:swift:xsd:envelope">{m.app_header()}{m.app_header()}{m.document()}</Envelope>'.encode()


def _signed(s: Setup, *, high_s: bool = False, other_key: bool = False, expired: bool = False) -> dict[str, Any]:
    """A self-signed order of NY: prepared by the gateway, signed with NY's key (held in the
    keystore), then tampered with as asked."""
    gw = s.live.gateway
    deadline = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=5)
    body = {**PAYMENT, "uetr": str(uuid.uuid4()), "deadline": deadline.isoformat().replace("+00:00", "Z")}
    prepared = s.client(s.live.bank(NY)).post("/v1/payments/prepare", json=body).json()
    with gw.require_sessions()() as session:
        from chain_gateway.access import get_profile
        ny_address = get_profile(session, NY).address  # type: ignore[union-attr]
        fr_address = get_profile(session, FR).address  # type: ignore[union-attr]
    key = bytes(gw.keystore.account(fr_address if other_key else ny_address).key)
    sig = sign_digest(key, bytes.fromhex(prepared["digest"][2:]))
    if high_s:  # the same signature, malleated: s' = n - s, v flipped
        r, s_, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
        sig = r + (SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])
    if expired:
        body["deadline"] = "2020-01-01T00:00:00Z"
    return {**body, "signature": "0x" + sig.hex()}


Send = Callable[[Setup], httpx.Response]


def _xml(body: bytes | Iterator[bytes], key: str = NY, ctype: str = "application/xml") -> Send:
    return lambda s: s.client(s.live.bank(key)).post("/v1/payments", content=body,
                                                      headers={"Content-Type": ctype})


def _json(body: dict[str, Any] | bytes | Callable[[Setup], dict[str, Any]], key: str = NY) -> Send:
    def send(s: Setup) -> httpx.Response:
        data = body(s) if callable(body) else body
        content = data if isinstance(data, bytes) else httpx.Request("POST", "/", json=data).content
        return s.client(s.live.bank(key)).post("/v1/payments", content=content,
                                                headers={"Content-Type": "application/json"})
    return send


_U = str(uuid.uuid4())
# name -> (request, acceptable 4xx statuses)
CASES: dict[str, tuple[Send, set[int]]] = {
    # --- ISO 20022 ------------------------------------------------------------------------
    "xml external entity (file)": (_xml(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                                        b'<Document>&e;</Document>'), {400}),
    "xml external parameter entity": (_xml(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM '
                                           b'"http://127.0.0.1:9/x.dtd"> %p;]><Document/>'), {400}),
    "xml external DTD": (_xml(b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://127.0.0.1:9/e.dtd">'
                              b'<Document/>'), {400}),
    "xml external entity in UTF-16": (_xml(_utf16_xxe()), {400}),
    "xml entity expansion (billion laughs)": (_xml(_laughs()), {400}),
    "xml quadratic blow-up": (_xml(_quadratic()), {400}),
    "xml XInclude": (_xml(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08" '
                          b'xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" '
                          b'parse="text"/></Document>'), {400}),
    "xml deep nesting (10,000 levels)": (_xml(b"<a>" * 10_000 + b"</a>" * 10_000), {400}),
    "xml 50 MB body": (_xml(b"<Document>" + b" " * (50 * MB) + b"</Document>"), {413}),
    "xml 50 MB chunked body (no Content-Length)": (_xml(_chunks(50 * MB)), {413}),
    "xml wrong namespace": (_xml(pacs008(tx()).replace(b"pacs.008.001.08", b"pacs.008.001.99")), {400}),
    "xml foreign namespace": (_xml(pacs008(tx()).replace(b"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08",
                                                         b"urn:example:evil")), {400}),
    "xml unsupported old version (001.02)": (_xml(Msg(version="02", txs=(tx(),)).bytes()), {400}),
    "xml AppHdr newer than Document": (_xml(Msg(txs=(tx(),), header="head.001.001.02",
                                               msg_def_idr="pacs.008.001.12").bytes()), {400}),
    "xml AppHdr naming another message": (_xml(Msg(txs=(tx(),), header="head.001.001.02",
                                                  msg_def_idr="pacs.009.001.08").bytes()), {400}),
    "xml two Documents": (_xml(_two_documents()), {400}),
    "xml two AppHdrs": (_xml(_two_headers()), {400}),
    "xml UETR collision inside one message": (_xml(pacs008(tx(_U), tx(_U, amount="20.00"))), {400}),
    "xml UETR collision, identical transactions": (_xml(pacs008(tx(_U), tx(_U))), {400}),
    "xml UETR upper case": (_xml(pacs008(tx(_U.upper()))), {400}),
    "xml NUL byte": (_xml(pacs008(tx()).replace(b"<EndToEndId>", b"<EndToEndId>\x00")), {400}),
    "xml invalid UTF-8": (_xml(pacs008(tx()).replace(b"E2E-1", b"E2E-\xff\xfe")), {400}),
    "xml declared UTF-16, sent UTF-8": (_xml(pacs008(tx()).replace(b'encoding="UTF-8"', b'encoding="UTF-16"')), {400}),
    "xml caller is not the debtor (InstgAgt spoofed)": (_xml(pacs008(tx(debtor=LN, creditor=FR))), {400, 403, 422}),
    "xml empty body": (_xml(b""), {400}),
    "xml JSON sent as application/xml": (_xml(b'{"creditor_agent": "DEMODEFF"}'), {400}),
    "xml text/plain": (_xml(pacs008(tx()), ctype="text/plain"), {415}),
    # --- JSON ---------------------------------------------------------------------------
    "json XML sent as application/json": (_xml(pacs008(tx()), ctype="application/json"), {400}),
    "json member twice (amount)": (_json(b'{"creditor_agent": "DEMODEFF", "currency": "USD", "amount": "1.00", '
                                         b'"amount": "900.00"}'), {400}),
    "json member twice (nested)": (_json(b'{"creditor_agent": "DEMODEFF", "currency": "USD", "amount": "1.00", '
                                         b'"debtor": {"name": "A", "name": "B"}}'), {400}),
    "json deep nesting (100,000 levels)": (_json(b"[" * 100_000 + b"]" * 100_000), {400}),
    "json deep nesting, no key, operator endpoint": (lambda s: s.client().post(
        "/v1/funding", content=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"}),
        {400}),
    "json 50 MB body": (_json(b'{"pad": "' + b"x" * (50 * MB) + b'"}'), {413}),
    "json debtor named in the body (spoofing)": (_json({**PAYMENT, "debtor_agent": LN}), {400}),
    "json amount as a JSON number": (_json(b'{"creditor_agent": "DEMODEFF", "currency": "USD", "amount": 1e308}'),
                                     {422}),
    "json nil UETR": (_json({**PAYMENT, "uetr": "00000000-0000-0000-0000-000000000000"}), {400}),
    "json UETR of another bank's payment": (_json(lambda s: {**PAYMENT, "uetr": s.stored["uetr"]}, key=LN), {409}),
    "json same UETR, other content": (_json(lambda s: {**PAYMENT, "uetr": s.stored["uetr"], "amount": "11.00"}),
                                      {409}),
    "json signature by another bank's key": (_json(lambda s: _signed(s, other_key=True)), {422}),
    "json malleated (high-s) signature": (_json(lambda s: _signed(s, high_s=True)), {422}),
    "json signature over an expired deadline": (_json(lambda s: _signed(s, expired=True)), {422}),
    "json remittance over 140 characters": (_json({**PAYMENT, "remittance_info": "r" * 5000}), {400}),
    # --- authentication and roles --------------------------------------------------------
    "auth no key": (lambda s: s.client().post("/v1/payments", json=PAYMENT), {401}),
    "auth Basic scheme": (lambda s: s.client(Authorization="Basic dXNlcjpwYXNz").post("/v1/payments", json=PAYMENT),
                          {401}),
    "auth 10 KB bearer token": (lambda s: s.client("k" * 10_000).post("/v1/payments", json=PAYMENT), {401}),
    "auth unknown key": (lambda s: s.client("sl_0123456789ab_notasecret").post("/v1/payments", json=PAYMENT), {401}),
    "auth revoked key": (lambda s: s.client(s.revoked_key).post("/v1/payments", json=PAYMENT), {401}),
    "auth two Authorization headers": (lambda s: httpx.post(
        s.live.url + "/v1/payments", json=PAYMENT, timeout=30,
        headers=[("Authorization", f"Bearer {s.live.auditor}"), ("Authorization", f"Bearer {s.live.bank(NY)}")]),
        {400, 401}),
    "role auditor pays": (lambda s: s.client(s.live.auditor).post("/v1/payments", json=PAYMENT), {403}),
    "role operator pays": (lambda s: s.client(s.live.operator).post("/v1/payments", json=PAYMENT), {403}),
    "role bank funds itself": (lambda s: s.client(s.live.bank(NY)).post(
        "/v1/funding", json={"bic": NY, "currency": "USD", "amount": "1000000.00", "reference": "SELF"}), {403}),
    "role bank defunds another": (lambda s: s.client(s.live.bank(NY)).post(
        "/v1/defunding", json={"bic": FR, "currency": "USD", "amount": "1.00", "reference": "GRAB"}), {403}),
    "role bank pauses the ledger": (lambda s: s.client(s.live.bank(NY)).post("/v1/system/pause"), {403}),
    "role bank registers a participant": (lambda s: s.client(s.live.bank(NY)).post(
        "/v1/participants", json={"bic": "EVILUS33", "name": "x", "country": "US", "roles": ["bank"]}), {403}),
    "role bank suspends a competitor": (lambda s: s.client(s.live.bank(NY)).post(f"/v1/participants/{FR}/suspend"),
                                        {403}),
    "role bank issues a key for another bank": (lambda s: s.client(s.live.bank(NY)).post(
        f"/v1/participants/{FR}/keys"), {403}),
    "role bank revokes another bank's key": (lambda s: s.client(s.live.bank(NY)).delete(
        f"/v1/keys/{s.live.bank(FR).split('_')[1]}"), {404}),
    "role bank reads another bank's balances": (lambda s: s.client(s.live.bank(LN)).get(
        f"/v1/accounts/{NY}/balances"), {404}),
    "role bank reads another bank's payment": (lambda s: s.client(s.live.bank(TK)).get(
        f"/v1/payments/{s.stored['uetr']}"), {404}),
    "role bank cancels another bank's payment": (lambda s: s.client(s.live.bank(LN)).delete(
        f"/v1/payments/{s.stored['uetr']}"), {403, 404, 409}),
    "suspended bank pays": (lambda s: s.client(s.suspended_key).post("/v1/payments", json=PAYMENT), {422}),
    "paying a suspended bank": (lambda s: s.client(s.live.bank(NY)).post(
        "/v1/payments", json={**PAYMENT, "creditor_agent": "SUSPUS33"}), {422}),
    # --- headers ----------------------------------------------------------------------------
    "header of 70 KB": (lambda s: s.client(s.live.bank(NY), **{"X-Junk": "a" * 70_000}).post(
        "/v1/payments", json=PAYMENT), {400, 431}),
    "500 headers": (lambda s: httpx.post(s.live.url + "/v1/payments", json=PAYMENT, timeout=30, headers=[
        ("Authorization", f"Bearer {s.live.bank(NY)}"), *((f"X-H{i}", "v") for i in range(500))]), {400, 431}),
    "path traversal in a UETR": (lambda s: s.client(s.live.bank(NY)).get("/v1/payments/..%2f..%2fetc%2fpasswd"),
                                 {400, 404}),
}
REASONS = {"suspended bank pays": "AC06", "paying a suspended bank": "AC06",
           "json signature by another bank's key": "FF01", "json malleated (high-s) signature": "FF01",
           "json signature over an expired deadline": "AB01", "json same UETR, other content": "DUPL",
           "json UETR of another bank's payment": "DUPL", "xml UETR collision inside one message": "FF01"}


def _uetrs_in(case: str) -> list[str]:
    return [_U] if "UETR collision" in case else []


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_case_gets_a_4xx_problem_and_changes_nothing(setup: Setup, tally: HostileTally, case: str) -> None:
    send, expected = CASES[case]
    before: LedgerState = ledger_state(setup.live)
    try:
        r = send(setup)
    except httpx.HTTPError as exc:  # the server hung up instead of answering: not a 4xx
        tally.add(case, 0)
        raise AssertionError(f"{case}: no answer ({exc!r})") from exc
    tally.add(case, r.status_code)
    assert r.status_code in expected, (case, r.status_code, r.text[:300])
    assert r.headers.get("content-type", "").startswith("application/problem+json"), (case, r.headers)
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"], body
    if case in REASONS:
        assert body.get("reason_code") == REASONS[case], (case, body)
    after = ledger_state(setup.live)
    assert after == before, f"{case} changed the ledger or the gateway's tables"
    for uetr in _uetrs_in(case):
        assert setup.client(setup.live.auditor).get(f"/v1/payments/{uetr}").status_code == 404


def test_a_suspended_bank_still_reads_its_own_data(setup: Setup) -> None:
    """The decision documented in docs/security.md: reads stay open, payments do not."""
    sus = setup.client(setup.suspended_key)
    balances = sus.get(f"/v1/accounts/{setup.suspended_bic}/balances")
    assert balances.status_code == 200 and balances.json()["balances"], balances.text
    assert sus.get("/v1/payments").status_code == 200
    assert sus.get(f"/v1/accounts/{setup.suspended_bic}/statement?currency=USD").status_code == 200
    assert sus.get(f"/v1/accounts/{NY}/balances").status_code == 404  # still only its own


def test_the_well_formed_twins_of_the_attacks_are_accepted(setup: Setup) -> None:
    """Controls: the same builders, untampered, do pay; so the refusals above are the attacks'."""
    ny = setup.client(setup.live.bank(NY))
    r = ny.post("/v1/payments", content=pacs008(tx(), tx()), headers={"Content-Type": "application/xml"})
    assert r.status_code == 202, r.text
    assert all(item["status"] in ("RCVD", "ACSP", "ACSC") for item in r.json()["items"]), r.text
    r = ny.post("/v1/payments", json=_signed(setup))
    assert r.status_code == 202, r.text
    wait_status(ny, r.json()["uetr"], {"ACSC"})


def test_concurrent_identical_requests_never_500(setup: Setup) -> None:
    """Ten identical requests (one UETR) at once: one 202, the others 200 replays; one payment."""
    import threading

    body = {**PAYMENT, "uetr": str(uuid.uuid4()), "amount": "3.00"}
    codes: list[int] = []
    barrier = threading.Barrier(10)

    def send() -> None:
        with setup.client(setup.live.bank(NY)) as c:
            barrier.wait()
            codes.append(c.post("/v1/payments", json=body).status_code)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 9 + [202] or sorted(codes) == [200] * 9 + [201], codes
    wait_status(setup.client(setup.live.bank(NY)), body["uetr"], {"ACSC"})
