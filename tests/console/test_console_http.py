"""The console over plain HTTP: log-in sessions, security headers, read-only access through
the caller's key, assets served locally, exports."""
from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from tests.console.conftest import FR, NY, ConsoleLive

PAGES = ["/console/", "/console/balances", "/console/payments", "/console/queue", "/console/reconciliation",
         "/console/audit", "/console/exports", "/console/export/payments.csv"]


def _login(live: ConsoleLive, key: str) -> httpx.Client:
    client = live.client()
    r = client.post("/console/login", data={"api_key": key, "next": "/console/payments"},
                    headers={"Origin": live.url})
    assert r.status_code == 303 and r.headers["location"] == "/console/payments", r.text
    return client


@pytest.mark.parametrize("path", PAGES)
def test_console_pages_need_a_login(console_live: ConsoleLive, path: str) -> None:
    with console_live.client(console_live.auditor) as client:  # a Bearer header is not a console session
        r = client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=")


def test_console_session_cookie_and_security_headers(console_live: ConsoleLive) -> None:
    client = console_live.client()
    r = client.post("/console/login", data={"api_key": console_live.auditor}, headers={"Origin": console_live.url})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/console" in cookie
    assert console_live.auditor not in cookie and console_live.auditor not in r.headers["location"]
    page = client.get("/console/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert console_live.auditor not in page.text  # the key never comes back to the browser
    assert not re.search(r"<script[^>]+src=\"(https?:)?//", page.text)  # no CDN
    out = client.post("/console/logout", headers={"Origin": console_live.url})
    assert out.status_code == 303
    assert client.get("/console/").status_code == 303  # the session is gone on the server


def test_login_refuses_bad_keys_cross_site_posts_and_open_redirects(console_live: ConsoleLive) -> None:
    with console_live.client() as client:
        r = client.post("/console/login", data={"api_key": "sl_nope"}, headers={"Origin": console_live.url})
        assert r.status_code == 401 and "unknown or revoked" in r.text and "set-cookie" not in r.headers
        r = client.post("/console/login", data={"api_key": console_live.auditor},
                        headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = client.post("/console/login", data={"api_key": console_live.auditor, "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/console/"
        r = client.post("/console/login", content="&".join(f"f{i}=x" for i in range(20)),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400


def test_assets_are_served_by_the_gateway(console_live: ConsoleLive) -> None:
    with console_live.client() as client:
        js = client.get("/console/static/uPlot.iife.min.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "uPlot" in js.text
        assert client.get("/console/static/uPlot.min.css").status_code == 200
        assert client.get("/console/static/console.js").status_code == 200
        again = client.get("/console/static/console.css")
        assert client.get("/console/static/console.css",
                          headers={"If-None-Match": again.headers["etag"]}).status_code == 304
        assert client.get("/console/static/..%2Fsessions.py").status_code == 404
        assert client.get("/console/static/pyproject.toml").status_code == 404


def test_a_bank_sees_only_its_own(console_live: ConsoleLive) -> None:
    client = _login(console_live, console_live.bank(FR))
    balances = client.get("/console/balances").text
    assert FR in balances and NY not in re.sub(r"<option[^<]*</option>", "", balances.split("Balance over time")[0])
    listed = client.get("/console/payments", params={"currency": "USD"}).text
    assert console_live.payments["invoice"]["uetr"] in listed  # FR is its creditor
    assert console_live.payments["second"]["uetr"] not in listed  # NY -> London: not FR's
    detail = client.get(f"/console/payments/{console_live.payments['invoice']['uetr']}").text
    assert "needs an auditor or operator key" in detail
    other = client.get(f"/console/payments/{console_live.payments['second']['uetr']}")
    assert other.status_code == 404
    assert "may not read the reconciliation" in client.get("/console/reconciliation").text


def test_payments_csv_and_camt053_exports(console_live: ConsoleLive) -> None:
    client = _login(console_live, console_live.auditor)
    r = client.get("/console/export/payments.csv", params={"bic": NY, "currency": "USD"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    got = {row["uetr"]: row for row in rows}
    for name in ("invoice", "second", "back"):
        paid = console_live.payments[name]
        assert got[paid["uetr"]]["amount"] == paid["amount"]
        assert got[paid["uetr"]]["instruction_hash"] == paid["instruction_hash"]
        assert got[paid["uetr"]]["tx_hash"] == paid["tx_hash"]
    assert console_live.payments["eur"]["uetr"] not in got
    r = client.get("/console/export/statement.xml", params={"bic": "DEMOUS33", "currency": "USD"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert b"camt.053" in r.content and console_live.payments["invoice"]["uetr"].encode() in r.content
    assert client.get("/console/export/statement.xml", params={"bic": "NOPEXXXX", "currency": "USD"}).status_code \
        in (404, 422)


def test_search_validates_its_input(console_live: ConsoleLive) -> None:
    client = _login(console_live, console_live.auditor)
    assert "is not a date" in client.get("/console/payments", params={"date_from": "yesterday"}).text
    assert "is not an amount" in client.get("/console/payments", params={"amount": "lots"}).text
    assert "no payment with that UETR" in client.get("/console/payments", params={"uetr": "nope"}).text
    page = client.get("/console/payments", params={"uetr": console_live.payments["back"]["uetr"], "amount": "1"})
    assert "does not match the other criteria" in page.text


def test_a_revoked_key_ends_its_console_session(console_live: ConsoleLive) -> None:
    with console_live.client(str(console_live.creds["operator"])) as operator:
        issued = operator.post("/v1/participants/DEMOCHZZXXX/keys")
        assert issued.status_code == 201, issued.text
    key, key_id = issued.json()["api_key"], issued.json()["key_id"]
    client = _login(console_live, key)
    assert client.get("/console/reconciliation").status_code == 200
    with console_live.client(str(console_live.creds["operator"])) as operator:
        assert operator.delete(f"/v1/keys/{key_id}").status_code == 204
    r = client.get("/console/reconciliation")
    assert r.status_code == 303 and r.headers["location"] == "/console/login?expired=1"
    assert "revoked" in client.get("/console/login?expired=1").text
    assert client.get("/console/").status_code == 303  # the session is gone
