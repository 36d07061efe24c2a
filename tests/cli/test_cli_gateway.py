"""Every HTTP command of `settle` against a live gateway, --json parsed and asserted."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from chain_gateway.mirror.models import Balance
from tests.cli.conftest import Settle, invoke, one_line_error, out
from tests.live import Live

NY, FR, LDN, TYO = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX", "DEMOJPJTXXX"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "pacs008-demo.xml"


def _balance(settle: Settle, live: Live, bic: str, currency: str) -> Decimal:
    body = out(settle("balances", bic, key=live.auditor))
    return next((Decimal(b["amount"]) for b in body["balances"] if b["currency"] == currency), Decimal(0))


def test_participants_list(settle: Settle, live: Live) -> None:
    body = out(settle("participants", "list", key=live.auditor))
    bics = {p["bic"]: p for p in body["items"]}
    assert {NY, FR, LDN, TYO} <= set(bics)
    assert bics[NY]["status"] == "active" and "bank" in bics[NY]["roles"]
    human = settle("participants", "list", key=live.auditor, as_json=False)
    assert human.exit_code == 0 and NY in human.stdout and "Participants" in human.stdout


def test_register_suspend_and_reinstate(settle: Settle, live: Live) -> None:
    created = out(settle("participants", "register", "--bic", "CLITUS33", "--name", "CLI Test Bank",
                         "--country", "us", "--role", "bank", key=live.operator))
    assert created["bic"] == "CLITUS33XXX" and created["api_key"] and created["address"].startswith("0x")
    listed = {p["bic"]: p for p in out(settle("participants", "list", key=created["api_key"]))["items"]}
    assert listed["CLITUS33XXX"]["status"] == "active"

    assert out(settle("participants", "suspend", "CLITUS33", key=live.operator))["status"] == "suspended"
    line = one_line_error(settle("pay", "--to", "CLITUS33", "--currency", "USD", "--amount", "1.00",
                                 key=live.bank(NY)))
    assert "[AC06]" in line and "(HTTP 422)" in line
    assert out(settle("participants", "reinstate", "CLITUS33XXX", key=live.operator))["status"] == "active"
    human = settle("participants", "suspend", "CLITUS33", key=live.operator, as_json=False)
    assert human.exit_code == 0 and "is now suspended" in human.stdout
    out(settle("participants", "reinstate", "CLITUS33", key=live.operator))
    # a bank key cannot register: one line, the problem's title and reason code
    line = one_line_error(settle("participants", "register", "--bic", "CLIXUS33", "--name", "X", "--country", "US",
                                 key=live.bank(NY)))
    assert "[AG01]" in line and "(HTTP 403)" in line


def test_fund_and_defund(settle: Settle, live: Live) -> None:
    before = _balance(settle, live, LDN, "GBP")
    funded = out(settle("fund", "DEMOGB2L", "--currency", "gbp", "--amount", "500.25", "--reference", "CLI-TOPUP-1",
                        key=live.operator))
    assert funded["bic"] == LDN and Decimal(funded["balance"]) == before + Decimal("500.25")
    assert funded["tx_hash"].startswith("0x") and funded["block_number"] > 0
    defunded = out(settle("defund", LDN, "-c", "GBP", "-a", "0.25", "-r", "CLI-WITHDRAW-1", key=live.operator))
    assert Decimal(defunded["balance"]) == before + Decimal("500.00")
    assert _balance(settle, live, LDN, "GBP") == before + Decimal("500.00")
    line = one_line_error(settle("fund", LDN, "-c", "GBP", "-a", "1.234", "-r", "X", key=live.operator))
    assert "[AM12]" in line


def test_pay_with_flags_then_status_timeline(settle: Settle, live: Live) -> None:
    uetr = str(uuid.uuid4())
    paid = out(settle("pay", "--to", "DEMODEFF", "--currency", "EUR", "--amount", "42.10", "--e2e", "CLI-E2E-1",
                      "--remittance", "Invoice CLI-1", "--urgent", "--uetr", uetr, key=live.bank(NY)))
    assert paid["uetr"] == uetr and paid["status"] == "ACSC" and paid["amount"] == "42.10"
    assert paid["debtor_agent"] == NY and paid["creditor_agent"] == FR and paid["end_to_end_id"] == "CLI-E2E-1"
    again = out(settle("pay", "--to", "DEMODEFF", "--currency", "EUR", "--amount", "42.10", "--e2e", "CLI-E2E-1",
                       "--remittance", "Invoice CLI-1", "--urgent", "--uetr", uetr, key=live.bank(NY)))
    assert again["uetr"] == uetr  # idempotent: the same answer, not a second payment

    tracked = out(settle("status", uetr, key=live.bank(FR)))
    statuses = [h["status"] for h in tracked["history"]]
    assert statuses[0] == "RCVD" and statuses[-1] == "ACSC"
    assert tracked["tx_hash"] == paid["tx_hash"] and tracked["instruction_hash"].startswith("0x")
    human = settle("status", uetr, key=live.auditor, as_json=False)
    assert human.exit_code == 0
    assert "Tracker" in human.stdout and "RCVD" in human.stdout and "settled, final" in human.stdout

    queued = out(settle("pay", "--to", "DEMOGB2L", "--currency", "USD", "--amount", "1.00", "--queue", "--wait", "0",
                        key=live.bank(NY)))
    assert queued["status"] in {"RCVD", "ACSP", "ACSC"}
    human = settle("pay", "--to", "DEMOGB2L", "-c", "USD", "-a", "2.00", key=live.bank(NY), as_json=False)
    assert human.exit_code == 0 and "ACSC" in human.stdout


def test_pay_errors_are_one_line(settle: Settle, live: Live) -> None:
    assert "[AM12]" in one_line_error(settle("pay", "--to", FR, "-c", "EUR", "-a", "-5", key=live.bank(NY)))
    assert "[AM03]" in one_line_error(settle("pay", "--to", FR, "-c", "XXQ", "-a", "5", key=live.bank(NY)))
    assert "[RC01]" in one_line_error(settle("pay", "--to", "NOPEZZ99", "-c", "EUR", "-a", "5", key=live.bank(NY)))
    assert "missing --amount" in one_line_error(settle("pay", "--to", FR, "-c", "EUR", key=live.bank(NY)))
    assert "not a decimal amount" in one_line_error(settle("pay", "--to", FR, "-c", "EUR", "-a", "ten",
                                                           key=live.bank(NY)))
    assert "(HTTP 404)" in one_line_error(settle("status", str(uuid.uuid4()), key=live.bank(NY)))


def test_pay_from_a_pacs008_file(settle: Settle, live: Live, tmp_path: Path) -> None:
    uetr = str(uuid.uuid4())
    message = tmp_path / "pacs008.xml"
    message.write_text(EXAMPLE.read_text().replace("5e1c3d52-6f6a-4f59-9b2c-2f1f2d0b7a11", uetr)
                       .replace("MSG-0001", "MSG-CLI-0001"))
    body = out(settle("pay", "--file", str(message), key=live.bank(NY)))
    assert body["message_id"] == "MSG-CLI-0001"
    assert [i["uetr"] for i in body["items"]] == [uetr] and body["items"][0]["status"] != "RJCT"
    # the creditor cannot send it (the InstgAgt must be the caller): every transaction rejected
    rejected = settle("pay", "--file", str(message), key=live.bank(FR))
    assert rejected.exit_code == 1 and "rejected" in rejected.stderr
    broken = tmp_path / "broken.xml"
    broken.write_text("<Document>nope")
    assert "[FF01]" in one_line_error(settle("pay", "--file", str(broken), key=live.bank(NY)))
    assert "not both" in one_line_error(settle("pay", "--file", str(message), "--to", FR, key=live.bank(NY)))


def test_balances(settle: Settle, live: Live) -> None:
    body = out(settle("balances", "DEMOUS33", key=live.bank(NY)))
    assert body["bic"] == NY and body["block_number"] > 0
    assert {b["currency"] for b in body["balances"]} >= {"USD", "EUR", "GBP", "JPY"}
    earlier = out(settle("balances", NY, "--block", str(body["block_number"] - 1), key=live.auditor))
    assert earlier["block_number"] == body["block_number"] - 1
    assert "(HTTP 404)" in one_line_error(settle("balances", FR, key=live.bank(NY)))  # another bank's account
    assert "is not a BIC" in one_line_error(settle("balances", "NY", key=live.bank(NY)))
    human = settle("balances", NY, key=live.bank(NY), as_json=False)
    assert human.exit_code == 0 and "USD" in human.stdout and "at block" in human.stdout


def test_statement_pages_and_camt053(settle: Settle, live: Live, tmp_path: Path) -> None:
    for i in range(3):
        out(settle("pay", "--to", TYO, "-c", "JPY", "-a", str(100 + i), key=live.bank(NY)))
    page = out(settle("statement", NY, "--currency", "JPY", "--limit", "2", key=live.bank(NY)))
    assert len(page["items"]) == 2 and page["next_cursor"]
    full = out(settle("statement", NY, "-c", "JPY", "--limit", "2", "--all", key=live.bank(NY)))
    assert len(full["items"]) >= 4 and full["next_cursor"] is None
    assert full["items"][-1]["balance_after"] == full["closing_balance"]
    running = Decimal(full["opening_balance"])
    for line in full["items"]:
        running += Decimal(line["amount"])
        assert Decimal(line["balance_after"]) == running

    target = tmp_path / "statement.xml"
    info = out(settle("statement", NY, "-c", "JPY", "--all", "--camt053", str(target), key=live.auditor))
    assert info["file"] == str(target) and info["bytes"] == target.stat().st_size
    xml = target.read_text()
    assert "camt.053" in xml and "<Stmt>" in xml
    human = settle("statement", NY, "-c", "JPY", "--limit", "2", key=live.bank(NY), as_json=False)
    assert human.exit_code == 0 and "more lines: use --all" in human.stdout


def test_queue_and_resolve(settle: Settle, live: Live) -> None:
    listed = settle("queue", key=live.auditor)
    if listed.exit_code == 0:  # a gateway that serves the queue
        body = json.loads(listed.stdout)
        assert "items" in body
        assert out(settle("queue", "list", key=live.auditor)) == body
        resolved = settle("queue", "resolve", key=live.operator)
        assert resolved.exit_code == 0, resolved.stderr
        json.loads(resolved.stdout)
        return
    line = one_line_error(listed)
    assert "does not serve the payment queue yet" in line
    assert "does not serve the payment queue yet" in one_line_error(settle("queue", "list", key=live.auditor))
    assert "does not serve queue resolution yet" in one_line_error(settle("resolve", key=live.operator))
    assert "does not serve queue resolution yet" in one_line_error(settle("queue", "resolve", key=live.operator))


def test_reconcile_consistent_then_a_difference(settle: Settle, live: Live) -> None:
    body = out(settle("reconcile", key=live.auditor))
    assert body["differences"] == [] and body["checked"]["payments"] >= 1
    human = settle("reconcile", key=live.auditor, as_json=False)
    assert human.exit_code == 0 and "consistent at block" in human.stdout

    address = out(settle("participants", "list", key=live.auditor))["items"]
    tokyo = next(p["address"] for p in address if p["bic"] == TYO)
    sessions = live.gateway.require_sessions()
    with sessions() as session, session.begin():
        row = session.execute(select(Balance).where(Balance.participant == tokyo, Balance.currency == "GBP")
                              ).scalar_one()
        original = row.amount
        row.amount = original + 1  # the mirror now disagrees with the chain
    try:
        broken = settle("reconcile", key=live.auditor)
        assert broken.exit_code == 1
        diffs = json.loads(broken.stdout)["differences"]
        assert any(d["kind"] == "balance" and d["key"] == f"{tokyo}/GBP" for d in diffs)
        assert "differs from the chain" in broken.stderr
        human = settle("reconcile", key=live.auditor, as_json=False)
        assert human.exit_code == 1 and "difference(s)" in human.stdout
    finally:
        with sessions() as session, session.begin():
            session.execute(select(Balance).where(Balance.participant == tokyo, Balance.currency == "GBP")
                            ).scalar_one().amount = original
    assert out(settle("reconcile", key=live.auditor))["differences"] == []
    assert "[AG01]" in one_line_error(settle("reconcile", key=live.bank(NY)))


def test_audit_verify_and_trail(settle: Settle, live: Live) -> None:
    settle("fund", NY, "--currency", "USD", "--amount", "1.00", "--reference", "AUDIT-CLI", key=live.operator)
    verified = out(settle("audit", "verify", key=live.auditor))
    assert verified["ok"] is True and verified["rows"] >= 1 and verified["first_broken"] is None
    trail = out(settle("audit", "trail", key=live.auditor))
    items = trail["items"] if isinstance(trail, dict) else trail
    assert any(e["action"] == "reserves.fund" for e in items)
    assert "[AG01]" in one_line_error(settle("audit", "verify", key=live.bank(NY)))


def test_credentials_file_and_key_errors(live: Live, tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(live.creds))
    base = ["--gateway", live.url, "--credentials", str(creds), "--json"]
    assert out(invoke(*base, "--as", "DEMOUS33", "balances", NY))["bic"] == NY
    assert out(invoke(*base, "--as", "operator", "participants", "list"))["items"]
    assert out(invoke(*base, "balances", FR, env={"SETTLE_AS": "DEMODEFFXXX"}))["bic"] == FR
    assert out(invoke("--json", "balances", NY, env={"SETTLE_GATEWAY": live.url,
                                                     "SETTLE_API_KEY": live.bank(NY)}))["bic"] == NY
    assert "no key for 'ZZZZZZ99'" in one_line_error(invoke(*base, "--as", "ZZZZZZ99", "balances", NY))
    assert "no credentials file" in one_line_error(invoke("--gateway", live.url, "--credentials",
                                                          str(tmp_path / "none.json"), "--as", "operator",
                                                          "participants", "list"))
    assert "no API key" in one_line_error(invoke("--gateway", live.url, "participants", "list"))
    line = one_line_error(invoke("--gateway", live.url, "--key", "sl_wrong", "participants", "list"))
    assert line == "error: Unauthorized: the API key is unknown or revoked (HTTP 401)"
    assert "cannot reach the gateway" in one_line_error(invoke("--gateway", "http://127.0.0.1:9", "--key", "k",
                                                               "participants", "list"))
