"""Chain faults while the gateway runs as its own process:

* the RPC path through a TCP proxy on loopback that drops, delays, resets or refuses: the
  gateway says ``degraded`` on /healthz, answers new payments with 503 problem+json and a
  Retry-After (quickly: a short RPC timeout, no hanging), keeps serving other requests, and
  resumes by itself once the node answers again;
* the anvil node itself killed (SIGKILL after a whole save: it loses the blocks mined since) or stopped
  (SIGTERM) and started again from its state file while payments flow;
* a reorganisation (evm_snapshot / evm_revert) with confirmation_depth > 0: the mirror
  follows the new chain and payments that were not final are corrected, then settle again.

Every scenario ends as the crash test does: every accepted payment final (or queued), each
UETR settled at most once on the chain, reconciliation empty, money conserved.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.harness import (
    FR,
    NY,
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
from tests.reliability.proxy import ChaosProxy

pytestmark = pytest.mark.slow

RPC_TIMEOUT = 1.0


@dataclass
class Rig:
    chain: Chain
    proxy: ChaosProxy
    gateway: GatewayProcess

    @property
    def creds(self) -> dict[str, Any]:
        return self.gateway.credentials


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    base = tmp_path_factory.mktemp("faults")
    chain = Chain(base / "chain").start()
    proxy = ChaosProxy(chain.port).start()
    gateway = GatewayProcess(base / "gateway", proxy.url, base / "deployments",
                             extra_env={"SETTLEMENT_RPC_TIMEOUT_SECONDS": str(RPC_TIMEOUT),
                                        "SETTLEMENT_RECEIPT_TIMEOUT_SECONDS": "5"})
    try:
        gateway.start()
        yield Rig(chain, proxy, gateway)
    finally:
        gateway.stop()
        proxy.close()
        chain.stop()


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.monotonic()
    return fn(), time.monotonic() - started


def _final_checks(rig: Rig, accepted: dict[str, int]) -> dict[str, str]:
    statuses = wait_all_final(rig.gateway, rig.creds["auditor"], accepted, timeout=180)
    not_done = {u: s for u, s in statuses.items() if s not in ("ACSC", "PDNG", "RJCT", "CANC")}
    assert not not_done, f"{len(not_done)} accepted payments lost or stuck: {list(not_done.items())[:10]}"
    deployment = rig.gateway.deployment()
    settled = settled_events(rig.chain, deployment.ledger, deployment.deploy_block)
    assert not [u for u, n in settled.items() if n > 1], "a UETR was paid twice"
    for uetr, status in statuses.items():
        assert (status == "ACSC") == (settled.get(uetr, 0) == 1), (uetr, status, settled.get(uetr))
    wait_reconciled(rig.gateway, rig.creds["auditor"])
    assert_money_conserved(rig.chain, deployment)
    return statuses


@pytest.mark.parametrize("mode", ["drop", "refuse", "reset", "delay"])
def test_rpc_fault_degrades_answers_503_and_resumes(rig: Rig, mode: str) -> None:
    gw, creds = rig.gateway, rig.creds
    ny = gw.client(creds["banks"][NY], timeout=30)
    # background payments keep flowing through the fault (retrying 503s with the same UETR)
    seed = {"drop": 11, "refuse": 12, "reset": 13, "delay": 14}[mode]
    load = PaymentLoad(lambda s: gw.url, creds["banks"], make_specs(60, seed=seed), workers=2,
                       time_limit=240).start()
    try:
        time.sleep(1.0)
        _fault_window(rig, ny, mode)
        # it resumes by itself
        gw.wait_serving(60)
        uetr = str(uuid.uuid4())
        r = gw.client(creds["banks"][NY], Prefer="wait=20").post(
            "/v1/payments", json={"uetr": uetr, "creditor_agent": FR, "currency": "USD", "amount": "2.00"})
        assert r.status_code == 201 and r.json()["status"] == "ACSC", r.text
        result = load.join()
    finally:
        load.stop_event.set()
    assert not result.unanswered and not result.refused, (result.unanswered[:3], list(result.refused.items())[:3])
    _final_checks(rig, {**result.accepted, uetr: 201})


def _fault_window(rig: Rig, ny: httpx.Client, mode: str) -> None:
    gw, creds = rig.gateway, rig.creds
    rig.proxy.set_mode(mode, delay=3 * RPC_TIMEOUT)  # a delay longer than the RPC timeout
    try:
        # /healthz turns degraded, and answers quickly while it does
        deadline = time.monotonic() + 30
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r, took = _timed(lambda: httpx.get(gw.url + "/healthz", timeout=30))
            health = r.json()
            assert took < 4 * RPC_TIMEOUT + 2, f"/healthz took {took:.1f} s"
            if health["status"] == "degraded":
                break
        assert health["status"] == "degraded", health

        # a new payment: 503 problem+json with Retry-After, fast, and nothing stored
        for _ in range(3):
            uetr = str(uuid.uuid4())
            r, took = _timed(lambda: ny.post("/v1/payments", json={
                "uetr": uetr, "creditor_agent": FR, "currency": "USD", "amount": "1.00"}))
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["retry-after"]) > 0
            assert took < 4 * RPC_TIMEOUT + 2, f"payment answered after {took:.1f} s"
            assert ny.get(f"/v1/payments/{uetr}").status_code == 404  # nothing half-written

        # what does not need the chain keeps working meanwhile (the tracker reads the mirror)
        r, took = _timed(lambda: httpx.get(gw.url + "/v1/payments?limit=5", timeout=30,
                                           headers={"Authorization": f"Bearer {creds['auditor']}"}))
        assert r.status_code == 200 and took < 2, (r.status_code, took)
    finally:
        rig.proxy.set_mode("pass")


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_anvil_restarted_from_its_state_while_payments_flow(rig: Rig, how: str) -> None:
    gw, creds = rig.gateway, rig.creds
    seed = {"sigkill": 101, "sigterm": 202}[how]
    specs = make_specs(1500, seed=seed, queued_every=50)
    load = PaymentLoad(lambda s: gw.url, creds["banks"], specs, workers=4, time_limit=300).start()
    try:
        while load.done < 100:
            time.sleep(0.05)
        saved = rig.chain.head()  # the state file is saved every second: this block is in it
        time.sleep(3.0)
        before = rig.chain.kill() if how == "sigkill" else rig.chain.stop()
        assert before is not None
        in_flight = load.done
        assert in_flight < len(specs), "the load ended before the node went down"
        time.sleep(2.0)
        assert gw.wait_serving(30, status=("degraded",))["status"] == "degraded"
        rig.chain.start()  # same port, same state file
        after = rig.chain.head()
        assert after >= saved, (saved, before, after)  # the persisted state came back
        rig.chain.assert_whole(after)
        if how == "sigterm":
            assert after == before, (before, after)  # saved on exit: nothing lost
        else:
            assert after < before, (saved, before, after)  # blocks the gateway had seen are gone
        gw.wait_serving(60)
        result = load.join()
    finally:
        load.stop_event.set()
    assert not result.unanswered and not result.refused, (result.unanswered[:3], list(result.refused.items())[:3])
    statuses = _final_checks(rig, result.accepted)
    report(f"anvil {how} while {in_flight} of {len(specs)} payments were in: head {before} -> {after} after restart; "
           f"{len(result.accepted)} accepted, "
          f"{sum(s == 'ACSC' for s in statuses.values())} settled, retries {dict(result.retries)}")


class Miner:
    """Mines an empty block every 0.3 s while on, so confirmations accrue."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._off = threading.Event()
        self._thread: threading.Thread | None = None

    def on(self) -> None:
        self._off.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def off(self) -> None:
        self._off.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._off.wait(0.3):
            try:
                self.chain.rpc("evm_mine")
            except Exception:  # noqa: BLE001 - the node may be between states
                pass


def _reorg(tmp_path: Path, depth: int, pay: Any, *, settle_timeout: float = 90.0) -> None:
    """Run `pay(gateway, creds) -> uetrs` after a snapshot, check the payments are settled but
    not final, revert the chain to the snapshot, and wait for the gateway to settle them again
    on the new chain, once each."""
    chain = Chain(tmp_path / "chain").start()
    gw = GatewayProcess(tmp_path / "gateway", chain.url, tmp_path / "deployments",
                        extra_env={"SETTLEMENT_CONFIRMATION_DEPTH": str(depth),
                                   "SETTLEMENT_RECEIPT_TIMEOUT_SECONDS": "5"})
    miner = Miner(chain)
    try:
        gw.start()
        creds = gw.credentials
        auditor = gw.client(creds["auditor"])
        miner.on()
        # a payment that becomes final before the fork point
        early = str(uuid.uuid4())
        gw.client(creds["banks"][NY]).post("/v1/payments", json={"uetr": early, "creditor_agent": FR,
                                                                 "currency": "USD", "amount": "5.00"})
        assert wait_all_final(gw, creds["auditor"], [early], settled={"ACSC"}, timeout=60)[early] == "ACSC"
        miner.off()
        snapshot = chain.rpc("evm_snapshot")
        fork_head = chain.head()
        late = pay(gw, creds)
        # settled on the chain but not yet final: the tracker says ACSP
        deadline = time.monotonic() + 30
        views: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            views = [auditor.get(f"/v1/payments/{u}").json() for u in late]
            if all(v["status"] == "ACSP" and v["block_number"] for v in views):
                break
            time.sleep(0.2)
        assert all(v["status"] == "ACSP" and v["block_number"] for v in views), views
        old_blocks = {v["uetr"]: v["block_number"] for v in views}
        assert all(settled_events(chain, gw.deployment().ledger, fork_head + 1)[u] == 1 for u in late)

        # the fork: everything after the snapshot vanishes, another chain grows in its place
        assert chain.rpc("evm_revert", [snapshot]) is True
        for _ in range(depth + 3):
            chain.rpc("evm_mine")
        miner.on()

        statuses = wait_all_final(gw, creds["auditor"], late + [early], settled={"ACSC"}, timeout=settle_timeout)
        assert all(s == "ACSC" for s in statuses.values()), statuses
        deployment = gw.deployment()
        settled = settled_events(chain, deployment.ledger, deployment.deploy_block)
        assert all(settled[u] == 1 for u in late + [early]), {u: settled[u] for u in late + [early]}
        history = auditor.get(f"/v1/payments/{late[0]}").json()
        report(f"reorg: fork at {fork_head}, payments first mined in {sorted(set(old_blocks.values()))}, "
              f"now in {history['block_number']}; history {[h['status'] for h in history['history']]}")
        wait_reconciled(gw, creds["auditor"])
        assert_money_conserved(chain, deployment)
        assert httpx.get(gw.url + "/healthz").json()["status"] == "ok"
    finally:
        miner.off()
        gw.stop()
        chain.stop()


def test_reorg_mirror_follows_and_non_final_statuses_are_corrected(tmp_path: Path) -> None:
    def pay(gw: GatewayProcess, creds: dict[str, Any]) -> list[str]:
        ny = gw.client(creds["banks"][NY])
        late = [str(uuid.uuid4()) for _ in range(3)]  # at most 3 blocks: none reaches depth 4
        for i, uetr in enumerate(late):
            r = ny.post("/v1/payments", json={"uetr": uetr, "creditor_agent": FR, "currency": "USD",
                                              "amount": f"{10 + i}.00"})
            assert r.status_code == 202, r.text
        return late

    _reorg(tmp_path, 4, pay)


def test_reorg_fx_payment_is_sent_again(tmp_path: Path) -> None:
    def pay(gw: GatewayProcess, creds: dict[str, Any]) -> list[str]:
        provider = next(iter(creds["fx_providers"].values()))
        quote = gw.client(provider).post("/v1/fx/quotes", json={
            "debit_currency": "USD", "credit_currency": "EUR", "rate": "900000000000000000", "capacity": "1000.00",
            "expires_in_seconds": 600})
        assert quote.status_code == 201, quote.text
        uetr = str(uuid.uuid4())
        r = gw.client(creds["banks"][NY]).post("/v1/payments", json={
            "uetr": uetr, "creditor_agent": FR, "currency": "EUR", "amount": "9.00",
            "fx": {"quote_id": quote.json()["quote_id"], "debit_currency": "USD"}})
        assert r.status_code == 202, r.text
        return [uetr]

    _reorg(tmp_path, 4, pay, settle_timeout=30)
