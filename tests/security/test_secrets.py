"""Secrets: where they come from, and that they never leak.

* Source: no module of the gateway reads the environment except ``chain_gateway/config.py``
  (the one settings object); two places that only hand the environment on to a child
  process are listed, with the reason.
* A full run (slow): ``python -m api.run`` as its own process, logging at DEBUG, with a
  random keystore passphrase and random operator and relayer keys; it registers participants
  (keys held by the gateway, and a self-custody one), pays, issues and revokes API keys,
  refuses bad input, and is restarted once with a wrong passphrase. Then its stdout and
  stderr, a dump of its database and every HTTP response are searched for the passphrases,
  every private key (the keystore's, decrypted, and the operator's and relayer's), and every
  API key secret, except in the one response that issued it. The database must hold only
  the keys' SHA-256.
"""
from __future__ import annotations

import ast
import hashlib
import json
import secrets
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from chain_gateway.config import PROJECT_ROOT
from tests.reliability.harness import FR, NY, Chain, GatewayProcess, report

# (file, why it may touch os.environ): handing the environment to a child process
ENV_PASSTHROUGH = {
    "chain_gateway/cli/chain_cmds.py": "runs the benchmarks as a child process with PYTHONPATH added",
    "scripts/bench_gateway.py": "starts gateways as child processes with extra SETTLEMENT_* variables",
}


def _environment_reads(path: Path) -> list[int]:
    """Lines that read os.environ / os.getenv / os.environb / os.putenv in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv") or isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv", "environb", "getenvb") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_read_the_environment() -> None:
    offenders: dict[str, list[int]] = {}
    for folder in ("chain_gateway", "api", "scripts"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(PROJECT_ROOT))
            if rel == "chain_gateway/config.py" or rel in ENV_PASSTHROUGH:
                continue
            found = _environment_reads(path)
            if found:
                offenders[rel] = found
    assert not offenders, f"read the environment outside chain_gateway/config.py: {offenders}"
    for rel in ENV_PASSTHROUGH:  # the exceptions only pass the environment on
        text = (PROJECT_ROOT / rel).read_text()
        assert "**os.environ" in text, rel


def test_settings_hide_their_secrets() -> None:
    from chain_gateway.config import get_settings

    key = "0x" + secrets.token_hex(32)
    settings = get_settings(environment="test", keystore_passphrase="pass-" + "q" * 20, relayer_private_key=key,
                            deployer_private_key=key)
    shown = repr(settings) + str(settings) + json.dumps(settings.model_dump(mode="json"))
    assert key not in shown and key[2:] not in shown and "q" * 20 not in shown


@pytest.mark.slow
def test_a_full_run_leaks_no_secret(tmp_path: Path) -> None:
    passphrase = "pp-" + secrets.token_urlsafe(24)
    wrong_passphrase = "wrong-" + secrets.token_urlsafe(24)
    operator_key, relayer_key = "0x" + secrets.token_hex(32), "0x" + secrets.token_hex(32)
    chain = Chain(tmp_path / "chain").start()
    env = {"SETTLEMENT_LOG_LEVEL": "DEBUG", "SETTLEMENT_KEYSTORE_PASSPHRASE": passphrase,
           "SETTLEMENT_DEPLOYER_PRIVATE_KEY": operator_key, "SETTLEMENT_RELAYER_PRIVATE_KEY": relayer_key}
    gw = GatewayProcess(tmp_path / "gateway", chain.url, tmp_path / "deployments", extra_env=env)
    exchanges: list[tuple[str, str]] = []  # (request line, everything the response carried)
    issued: dict[str, str] = {}  # API key secret -> the request line of the response that issued it

    def record(response: httpx.Response) -> None:
        response.read()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        exchanges.append((f"{response.request.method} {response.request.url}", headers + "\n" + response.text))

    def client(key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=gw.url, headers=headers, timeout=60, event_hooks={"response": [record]})

    def issue(response: httpx.Response) -> str:
        assert response.status_code == 201, response.text
        key = str(response.json()["api_key"])
        issued[key] = f"{response.request.method} {response.request.url}"
        return key

    try:
        gw.start()
        creds = gw.credentials
        op = client(creds["operator"])
        # registration: one bank whose key the gateway creates and holds, one that holds its own
        custodial = issue(op.post("/v1/participants", json={"bic": "KEEPUS33", "name": "Kept Key Bank",
                                                          "country": "US", "roles": ["bank"]}))
        own = Account.create()
        issue(op.post("/v1/participants", json={"bic": "SELFDEFF", "name": "Own Key Bank", "country": "DE",
                                                "roles": ["bank"], "address": own.address}))
        assert op.post("/v1/funding", json={"bic": "KEEPUS33", "currency": "USD", "amount": "100.00",
                                            "reference": "SECRETS"}).status_code == 200
        # payments signed with keys the gateway holds
        for key, creditor in ((creds["banks"][NY], FR), (custodial, NY)):
            r = client(key).post("/v1/payments", json={"uetr": str(uuid.uuid4()), "creditor_agent": creditor,
                                                       "currency": "USD", "amount": "7.50"},
                                 headers={"Prefer": "wait=20"})
            assert r.status_code == 201 and r.json()["status"] == "ACSC", r.text
        # keys issued by the operator and by the bank itself, one revoked
        second = issue(op.post("/v1/participants/KEEPUS33/keys"))
        third = issue(client(custodial).post("/v1/participants/KEEPUS33/keys"))
        key_id = third.split("_")[1]
        assert client(second).delete(f"/v1/keys/{key_id}").status_code == 204
        assert client(third).get("/v1/participants").status_code == 401
        # refusals and reads, so error paths log too
        ny = client(creds["banks"][NY])
        assert ny.post("/v1/payments", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
        assert ny.post("/v1/payments", json={"creditor_agent": FR, "currency": "USD", "amount": "1",
                                             "signature": "0x" + "11" * 65}).status_code == 422
        auditor = client(creds["auditor"])
        for path in ("/v1/participants", f"/v1/accounts/{NY}/balances", f"/v1/accounts/{NY}/statement",
                     "/v1/payments", "/v1/audit/ledger", "/v1/audit/reconciliation", "/healthz", "/metrics",
                     "/openapi.json"):
            assert auditor.get(path).status_code == 200, path
        # a restart with the wrong passphrase: the keystore cannot be opened, and says so without it
        gw.stop()
        gw.extra_env["SETTLEMENT_KEYSTORE_PASSPHRASE"] = wrong_passphrase
        gw.start()
        r = client(custodial).post("/v1/payments", json={"creditor_agent": NY, "currency": "USD", "amount": "1.00"})
        assert r.status_code >= 400, r.text
        time.sleep(0.5)
    finally:
        gw.stop()
        chain.stop()

    # ------------------------------------------------------------------ the secrets
    keystore = gw.data_dir / "keystore"
    private_keys = [operator_key, relayer_key]
    for path in sorted(keystore.glob("*.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        private_keys.append("0x" + bytes(Account.decrypt(json.loads(path.read_text()), passphrase)).hex())
    assert len(private_keys) >= 2 + 7  # the demo participants and KEEPUS33
    assert stat.S_IMODE((gw.data_dir / "credentials.json").stat().st_mode) == 0o600
    api_secrets = {k: k.split("_", 2)[2] for k in [*issued, creds["operator"], creds["auditor"],
                                                    *creds["banks"].values(), *creds.get("fx_providers", {}).values()]}
    needles: dict[str, str] = {"keystore passphrase": passphrase, "wrong passphrase": wrong_passphrase}
    for i, key in enumerate(private_keys):
        needles[f"private key {i}"] = key[2:].lower()
    for full, secret in api_secrets.items():
        needles[f"API key {full[:15]}…"] = secret
        needles[f"SHA-256 of API key {full[:15]}…"] = hashlib.sha256(secret.encode()).hexdigest()

    logs = {"stdout": gw.stdout_path.read_text(errors="replace"), "stderr": gw.stderr_path.read_text(errors="replace")}
    assert "DEBUG" in logs["stderr"] and "INFO" in logs["stderr"], "the run did not log at DEBUG"
    db = sqlite3.connect(gw.data_dir / "mirror.sqlite3")
    try:
        dump = "\n".join(db.iterdump())
        stored_hashes = {row[0] for row in db.execute("SELECT secret_sha256 FROM api_keys")}
    finally:
        db.close()
    leaks = []
    for name, needle in needles.items():
        low = needle.lower()
        for where, text in logs.items():
            if low in text.lower():
                leaks.append(f"{name} in {where}")
        if not name.startswith("SHA-256") and low in dump.lower():
            leaks.append(f"{name} in the database dump")
        for request_line, text in exchanges:
            full = next((k for k, s in api_secrets.items() if s == needle), None)
            if full is not None and issued.get(full) == request_line and not name.startswith("SHA-256"):
                continue  # the one response that issues a key shows it, once
            if low in text.lower():
                leaks.append(f"{name} in the response to {request_line}")
    assert not leaks, leaks
    # the database holds the keys' hashes, which authenticate nothing by themselves
    assert {hashlib.sha256(s.encode()).hexdigest() for s in api_secrets.values()} <= stored_hashes
    report(f"secrets: {len(needles)} secrets searched in {sum(len(t) for t in logs.values())} bytes of DEBUG logs, "
          f"a {len(dump)}-byte database dump and {len(exchanges)} HTTP responses: no leak")
