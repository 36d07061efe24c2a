"""A live gateway with the audit console mounted, and headless Chromium (Debian's package,
driven by Playwright) to look at it. Screenshots go to test-artifacts/console/."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain_gateway.runtime import Gateway
from tests.live import start_live

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                  "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
NY, FR, LDN = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX"


@dataclass
class ConsoleLive:
    url: str
    creds: dict[str, Any]
    gateway: Gateway
    payments: dict[str, dict[str, Any]]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, follow_redirects=False)

    @property
    def auditor(self) -> str:
        return str(self.creds["auditor"])

    def bank(self, bic: str) -> str:
        return str(self.creds["banks"][bic])


def _pay(client: httpx.Client, creditor: str, currency: str, amount: str, **more: Any) -> dict[str, Any]:
    r = client.post("/v1/payments", json={"uetr": str(uuid.uuid4()), "creditor_agent": creditor,
                                          "currency": currency, "amount": amount, **more},
                    headers={"Prefer": "wait=20"})
    assert r.status_code in (200, 201, 202), r.text
    return dict(r.json())


@pytest.fixture(scope="session")
def console_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleLive]:
    """A gateway of its own, seeded with known payments the pages are checked against."""
    with start_live(tmp_path_factory.mktemp("console-gateway")) as live:
        with live.client(live.bank(NY)) as ny, live.client(live.bank(FR)) as fr:
            payments = {
                "invoice": _pay(ny, FR, "USD", "1250.75", end_to_end_id="INV-2026-001",
                                remittance_info="Invoice 2026-001"),
                "second": _pay(ny, LDN, "USD", "300.00", end_to_end_id="INV-2026-002"),
                "back": _pay(fr, NY, "USD", "75.25", end_to_end_id="REFUND-7"),
                "eur": _pay(ny, FR, "EUR", "999.99", end_to_end_id="INV-EUR-1"),
            }
        yield ConsoleLive(url=live.url, creds=live.creds, gateway=live.gateway, payments=payments)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh headless Chromium profile (Debian's /usr/bin/chromium; never Playwright's download)."""
    if not CHROMIUM.is_file():
        # CI installs it (make test -> scripts/install-browser.sh): missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("Chromium is not installed: run scripts/install-browser.sh")
    from playwright import sync_api
    profile = tmp_path_factory.mktemp("chromium-profile")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1360, "height": 900}, timeout=30_000)
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A tab that records console errors and CSP violations (a test fails on any)."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    browser_context.clear_cookies()
    yield tab
    tab.close()


def shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
