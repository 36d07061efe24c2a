"""Two gateways, as two banks each running their own, against one chain (a standalone anvil):
each with its own relayer account (dev account 1 and, granted RELAYER_ROLE with
``chain_gateway.deploy.grant_relayer``, dev account 2) and its own database.

* The same payments (same UETRs) are submitted through both gateways at the same time, some
  signed by the gateways (both hold the demo banks' keys) and some signed once by the bank
  itself (prepare, sign, send the one signature to both): each UETR pays exactly once
  on-chain, and both gateways report every one settled.
* Both mirror the identical ledger: every chain-derived mirror table is compared row for row
  (local indexing bookkeeping excepted).
"""
from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select

from chain_gateway.chain import dev_accounts, make_web3
from chain_gateway.config import DEV_KEYSTORE_PASSPHRASE
from chain_gateway.deploy import RELAYER_ROLE, grant_relayer
from chain_gateway.keys import KeyStore
from chain_gateway.mirror.models import CHAIN_DERIVED
from chain_gateway.signing import sign_digest
from chain_gateway.transactions import encode_call
from tests.reliability.harness import (
    DEMO_BANKS,
    DEPLOYMENT_NAME,
    Chain,
    GatewayProcess,
    PaymentLoad,
    assert_money_conserved,
    make_specs,
    report,
    settled_events,
    wait_all_final,
    wait_reconciled,
)

pytestmark = pytest.mark.slow

SHARED_UETRS = 400
SELF_SIGNED = 40
# Columns that record when *this* gateway indexed, not what the chain holds.
LOCAL_COLUMNS = {"mirror_checkpoints": {"updated_at"}}


def _mirror_rows(db: Path) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(f"sqlite:///{db}")
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with engine.connect() as conn:
            for model in CHAIN_DERIVED:
                table = model.__table__
                skip = LOCAL_COLUMNS.get(table.name, set())
                keys = [c for c in table.primary_key.columns]
                rows = conn.execute(select(table).order_by(*keys)).mappings()
                out[table.name] = [{k: v for k, v in r.items() if k not in skip} for r in rows]
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    mirror_tables = {t for t in tables if t.startswith("mirror_")}
    assert mirror_tables <= set(out), f"mirror tables not compared: {sorted(mirror_tables - set(out))}"
    return out


def _synced(chain: Chain, *gateways: GatewayProcess, timeout: float = 60.0) -> int:
    """Until every gateway's mirror stands at the chain's head (twice in a row)."""
    deadline = time.monotonic() + timeout
    agreed = 0
    while time.monotonic() < deadline:
        head = chain.head()
        marks = [httpx.get(g.url + "/healthz", timeout=10).json()["mirror_block"] for g in gateways]
        agreed = agreed + 1 if all(m == head for m in marks) else 0
        if agreed >= 2:
            return head
        time.sleep(0.5)
    raise AssertionError(f"mirrors did not reach the head: {marks} vs {head}")


def test_two_gateways_mirror_one_ledger_and_shared_uetrs_pay_once(tmp_path: Path) -> None:
    chain = Chain(tmp_path / "chain").start()
    deployments = tmp_path / "deployments"
    gw1 = GatewayProcess(tmp_path / "bank-a", chain.url, deployments, relayer_index=1)
    gw2 = GatewayProcess(tmp_path / "bank-b", chain.url, deployments, relayer_index=2)
    loads: list[PaymentLoad] = []
    try:
        gw1.start()  # deploys, registers and funds the demo banks, writes bank-a/credentials.json
        deployment = gw1.deployment()
        w3 = make_web3(chain.url)
        operator, relayer2 = dev_accounts(3)[0], dev_accounts(3)[2]
        grant_relayer(w3, operator, deployment, relayer2.address).save(deployments / f"{DEPLOYMENT_NAME}.json")
        has_role = w3.eth.call({"to": deployment.ledger, "data": encode_call(
            "hasRole(bytes32,address)", ["bytes32", "address"], [RELAYER_ROLE, relayer2.address])})
        assert int.from_bytes(has_role, "big") == 1
        # bank B's gateway holds the demo banks' keys too (so both can sign the same payments)
        shutil.copytree(gw1.data_dir / "keystore", gw2.data_dir / "keystore")
        gw2.start()  # finds the deployment and the participants on-chain; its own keys and database
        c1, c2 = gw1.credentials, gw2.credentials
        assert c1["banks"].keys() == c2["banks"].keys() and c1["banks"] != c2["banks"]

        # 1) the same UETRs through both gateways at once, each gateway signing
        specs = make_specs(SHARED_UETRS, seed=2024, queued_every=80)
        loads = [PaymentLoad(lambda s: gw1.url, c1["banks"], specs, workers=4, time_limit=600),
                 PaymentLoad(lambda s: gw2.url, c2["banks"], specs, workers=4, time_limit=600)]
        for load in loads:
            load.start()

        # 2) meanwhile, orders the bank signed itself, one signature sent to both gateways at once
        keystore = KeyStore(gw1.data_dir / "keystore", DEV_KEYSTORE_PASSPHRASE)
        directory = {p["bic"]: p["address"] for p in
                     gw1.client(c1["auditor"]).get("/v1/participants").json()["items"]}
        self_signed: list[str] = []
        codes: list[tuple[int, int]] = []
        for i in range(SELF_SIGNED):
            debtor, creditor = DEMO_BANKS[i % 4], DEMO_BANKS[(i + 1) % 4]
            deadline = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=10)
            body = {"uetr": str(uuid.uuid4()), "creditor_agent": creditor, "currency": "EUR",
                    "amount": f"{i + 1}.25", "end_to_end_id": f"SELF-{i}",
                    "deadline": deadline.isoformat().replace("+00:00", "Z")}
            prepared = gw1.client(c1["banks"][debtor]).post("/v1/payments/prepare", json=body)
            assert prepared.status_code == 200, prepared.text
            key = bytes(keystore.account(directory[debtor]).key)
            signature = sign_digest(key, bytes.fromhex(prepared.json()["digest"][2:]))
            signed = {**body, "signature": "0x" + signature.hex()}
            answers: dict[int, int] = {}
            barrier = threading.Barrier(2)

            def send(n: int, gw: GatewayProcess, creds: dict[str, Any]) -> None:
                with gw.client(creds["banks"][debtor]) as c:
                    barrier.wait()
                    answers[n] = c.post("/v1/payments", json=signed).status_code

            threads = [threading.Thread(target=send, args=(n, gw, c)) for n, gw, c in ((1, gw1, c1), (2, gw2, c2))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes.append((answers[1], answers[2]))
            self_signed.append(body["uetr"])
        # each gateway took it as new (201 when the other's relayer had already settled it)
        assert all(a in (201, 202) and b in (201, 202) for a, b in codes), codes

        results = [load.join() for load in loads]
        for r in results:
            assert not r.unanswered and not r.refused, (r.unanswered[:3], list(r.refused.items())[:3])
            assert len(r.accepted) == SHARED_UETRS
        every = [s.uetr for s in specs] + self_signed

        # each gateway's tracker: final (or queued for liquidity), and the same answer from both
        s1 = wait_all_final(gw1, c1["auditor"], every, timeout=240)
        s2 = wait_all_final(gw2, c2["auditor"], every, timeout=240)
        assert s1 == s2, {u: (s1[u], s2.get(u)) for u in every if s1[u] != s2.get(u)}
        assert set(s1.values()) <= {"ACSC", "PDNG"}, sorted(set(s1.values()))

        # on-chain: exactly once each
        settled = settled_events(chain, deployment.ledger, deployment.deploy_block)
        twice = [u for u in every if settled.get(u, 0) > 1]
        assert not twice, twice
        assert all((settled.get(u, 0) == 1) == (s1[u] == "ACSC") for u in every)

        # both mirrors hold the identical ledger
        head = _synced(chain, gw1, gw2)
        m1, m2 = _mirror_rows(gw1.data_dir / "mirror.sqlite3"), _mirror_rows(gw2.data_dir / "mirror.sqlite3")
        for table in m1:
            assert len(m1[table]) == len(m2[table]), (table, len(m1[table]), len(m2[table]))
            diff = [(a, b) for a, b in zip(m1[table], m2[table], strict=True) if a != b]
            assert not diff, (table, diff[:3])
        rows = {t: len(v) for t, v in m1.items()}
        report(f"two gateways: {len(every)} UETRs sent through both ({SELF_SIGNED} signed by the bank), "
              f"{sum(settled.get(u, 0) for u in every)} PaymentSettled events for "
              f"{sum(s == 'ACSC' for s in s1.values())} settled; mirrors identical at block {head}: {rows}")
        for gw, creds in ((gw1, c1), (gw2, c2)):
            wait_reconciled(gw, creds["auditor"])
        assert_money_conserved(chain, deployment)
    finally:
        for load in loads:
            load.stop_event.set()
        gw1.stop()
        gw2.stop()
        chain.stop()
