"""The console's main paths in headless Chromium: log in, search a payment, open its
on-chain proof, see the balance chart render; screenshots in test-artifacts/console/."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tests.console.conftest import LDN, NY, ConsoleLive, shot


def login(page: Any, live: ConsoleLive, key: str, then: str = "/console/") -> None:
    page.goto(live.url + then)
    assert "/console/login" in page.url  # every page asks for a log-in first
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/console/login" not in page.url, page.content()[:500]
    assert key not in page.url


def test_login_rejects_a_bad_key_then_shows_participants(page: Any, console_live: ConsoleLive) -> None:
    page.goto(console_live.url + "/console/")
    page.fill("#api_key", "not-a-key")
    shot(page, "01-login")
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text().startswith("That API key is unknown")
    page.fill("#api_key", console_live.auditor)
    page.click("button[type=submit]")
    page.wait_for_selector("#participants")
    rows = page.locator("#participants tbody tr")
    assert rows.count() >= 6
    text = page.locator("#participants").inner_text()
    for bic in (NY, "DEMODEFFXXX", LDN, "DEMOJPJTXXX"):
        assert bic in text
    assert "active" in text
    assert "ok" in page.locator("dl.facts").first.inner_text()
    shot(page, "02-overview")
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "settle_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert console_live.auditor not in session["value"]
    assert page.evaluate("document.cookie") == ""  # invisible to scripts
    assert [e for e in page.errors if "status of 401" not in e] == []


def test_search_by_uetr_and_open_the_proof(page: Any, console_live: ConsoleLive) -> None:
    paid = console_live.payments["invoice"]
    login(page, console_live, console_live.auditor, "/console/payments")
    page.fill("input[name=uetr]", paid["uetr"])
    page.click("form[role=search] button[type=submit]")
    page.wait_for_selector("#result-count")
    assert page.locator("#result-count").inner_text().startswith("1 payment found")
    shot(page, "03-search-uetr")
    page.click(f"a.uetr:has-text('{paid['uetr']}')")
    page.wait_for_selector("#hash-check")
    timeline = page.locator("#timeline").inner_text()
    assert timeline.index("RCVD") < timeline.index("ACSC")
    events = page.locator("#proof-events").inner_text()
    assert "PaymentSettled" in events
    assert paid["tx_hash"] in events and str(paid["block_number"]) in events
    assert re.search(r"PaymentSettled\s+\d+\s+0x[0-9a-f]{64}\s+\d+", events)  # block, tx hash, log index
    signed = page.locator("#signed-hash").inner_text().strip()
    chain = page.locator("#chain-hash").inner_text().strip()
    assert signed == paid["instruction_hash"] and signed.lower() == chain.lower()
    assert "Match" in page.locator("#hash-verdict").inner_text()
    shot(page, "04-payment-proof")
    assert page.errors == []


def test_search_by_bic_amount_and_date(page: Any, console_live: ConsoleLive) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    login(page, console_live, console_live.auditor, "/console/payments")
    page.fill("input[name=bic]", "DEMOGB2L")
    page.fill("input[name=amount]", "300")
    page.fill("input[name=date_from]", today)
    page.fill("input[name=date_to]", today)
    page.click("form[role=search] button[type=submit]")
    page.wait_for_selector("#result-count")
    assert page.locator("#result-count").inner_text().startswith("1 payment found")
    assert console_live.payments["second"]["uetr"] in page.locator("table").inner_text()
    shot(page, "05-search-bic-amount-date")
    page.fill("input[name=amount]", "")
    page.fill("input[name=bic]", NY)
    page.click("form[role=search] button[type=submit]")
    page.wait_for_selector("#result-count")
    found = page.locator("table").inner_text()
    assert all(p["uetr"] in found for p in console_live.payments.values())


def test_balance_chart_renders(page: Any, console_live: ConsoleLive) -> None:
    login(page, console_live, console_live.auditor, f"/console/balances?bic={NY}&currency=USD")
    page.wait_for_selector("#balance-chart[data-rendered=true]")
    assert page.locator("#balances tbody tr").count() >= 4
    chart = page.locator("#balance-chart")
    assert int(chart.get_attribute("data-points") or 0) >= 4  # funding + three payments
    assert chart.locator("canvas").count() >= 1
    painted = page.evaluate("""() => {
        const c = document.querySelector('#balance-chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; }""")
    assert painted > 500  # the line and its points were drawn
    assert "USD" in page.locator(".u-legend").inner_text()
    shot(page, "06-balances-chart")
    page.select_option("select[name=x]", "time")
    page.click("#chart form button[type=submit]")
    page.wait_for_selector("#balance-chart[data-rendered=true]")
    assert "time on the horizontal axis" in page.locator("#chart-status").inner_text()
    assert page.errors == []


def test_queue_reconciliation_audit_and_exports(page: Any, console_live: ConsoleLive) -> None:
    login(page, console_live, console_live.auditor, "/console/reconciliation")
    assert "Consistent" in page.locator("#rec-verdict").inner_text()
    shot(page, "07-reconciliation")
    page.click("nav >> text=Queue")
    page.wait_for_load_state()
    text = page.locator("main").inner_text()
    assert "waiting in the queue" in text or "does not serve the payment queue yet" in text
    shot(page, "08-queue")
    page.click("nav >> text=Audit trail")
    page.wait_for_load_state()
    text = page.locator("main").inner_text()
    assert "audit trail verifies" in page.locator("#trail-verdict").inner_text()
    shot(page, "09-audit-trail")
    page.click("nav >> text=Exports")
    page.wait_for_load_state()
    shot(page, "10-exports")
    with page.expect_download() as csv_download:
        page.click("text=Download CSV")
    csv_text = open(csv_download.value.path(), encoding="utf-8").read()
    assert csv_text.startswith("uetr,status,")
    assert all(p["uetr"] in csv_text for p in console_live.payments.values())
    page.select_option("select[name=bic]", NY)
    page.select_option("select[name=currency]", "USD")
    with page.expect_download() as camt_download:
        page.click("text=Download camt.053")
    xml = open(camt_download.value.path(), encoding="utf-8").read()
    assert "camt.053" in xml and console_live.payments["invoice"]["uetr"] in xml
    assert page.errors == []
