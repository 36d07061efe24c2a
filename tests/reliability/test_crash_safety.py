"""Crash safety: at least 2,000 payments over HTTP while the gateway process is SIGKILLed at
random moments (at least five times) and started again on the same data folder.

The chain is a standalone anvil, separate from the gateway as in production; the gateway
(`python -m api.run`) reaches it through ``SETTLEMENT_CHAIN=rpc`` with the development keys
0 (operator) and 1 (relayer). The client records every payment the API accepted (2xx) and
retries whatever failed by connection error with the same body and UETR.

Afterwards every accepted payment must end ACSC, PDNG, CANC or RJCT (none lost, none stuck
in RCVD/ACSP), no UETR may have more than one PaymentSettled event on the chain, the
reconciliation must be empty, and sum(balances) == totalSupply in every currency.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
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

PAYMENTS = int(os.environ.get("CRASH_PAYMENTS", "2000"))
KILLS = int(os.environ.get("CRASH_KILLS", "8"))
WORKERS = 8


def test_sigkilled_gateway_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    chain = Chain(tmp_path / "chain").start()
    gateway = GatewayProcess(tmp_path / "gateway", chain.url, tmp_path / "deployments")
    load: PaymentLoad | None = None
    try:
        gateway.start()
        creds = gateway.credentials
        specs = make_specs(PAYMENTS, seed=seed, queued_every=100)  # 1 % are queued for good (PDNG)
        load = PaymentLoad(lambda spec: gateway.url, creds["banks"], specs, workers=WORKERS, time_limit=1200).start()

        # Kill at random points of the run: progress thresholds drawn at random, then a random
        # extra moment, so kills land in intake, in submission and in indexing alike.
        thresholds = sorted(rnd.uniform(0.04, 0.9) for _ in range(KILLS))
        kills, downtime = 0, 0.0
        for fraction in thresholds:
            while load.done < fraction * PAYMENTS and any(t.is_alive() for t in load._threads):
                time.sleep(0.05)
            time.sleep(rnd.uniform(0.0, 1.5))
            gateway.sigkill()
            kills += 1
            down = time.monotonic()
            time.sleep(rnd.uniform(0.0, 1.0))
            gateway.start(wait=False)
            gateway.wait_serving(180)
            downtime += time.monotonic() - down
        result = load.join()

        assert not result.unanswered, f"{len(result.unanswered)} payments got no answer in time"
        assert not result.refused, f"valid payments refused: {list(result.refused.items())[:5]}"
        accepted = result.accepted
        statuses = wait_all_final(gateway, creds["auditor"], accepted, timeout=300)
        lost = sorted(u for u in accepted if statuses.get(u, "").startswith("HTTP"))
        stuck = sorted(u for u in accepted if statuses.get(u) in ("RCVD", "ACSP"))

        deployment = gateway.deployment()
        settled = settled_events(chain, deployment.ledger, deployment.deploy_block)
        paid_twice = sorted(u for u, n in settled.items() if n > 1)
        acsc = {u for u, s in statuses.items() if s == "ACSC"}
        wrong = sorted(u for u in accepted if (settled.get(u, 0) == 1) != (u in acsc))

        by_status: dict[str, int] = {}
        for s in statuses.values():
            by_status[s] = by_status.get(s, 0) + 1
        report(f"crash safety (seed {seed}): payments sent {result.sent}, accepted {len(accepted)}, "
              f"kills survived {kills} (gateway down {downtime:.1f} s in all), lost {len(lost)}, "
              f"stuck {len(stuck)}, paid twice {len(paid_twice)}; statuses {by_status}; "
              f"client retries {dict(result.retries)}")

        assert kills >= 5
        assert result.sent >= 2000 or PAYMENTS < 2000
        assert len(accepted) == result.sent
        assert not lost, f"lost: {lost[:10]}"
        assert not stuck, f"stuck: {[(u, statuses[u]) for u in stuck[:10]]}"
        assert not paid_twice, f"paid twice: {paid_twice[:10]}"
        assert not wrong, f"tracker and chain disagree: {[(u, statuses.get(u), settled.get(u)) for u in wrong[:10]]}"
        assert by_status.get("ACSC", 0) >= 0.95 * len(accepted)
        wait_reconciled(gateway, creds["auditor"])
        assert_money_conserved(chain, deployment)
    finally:
        if load is not None:
            load.stop_event.set()
        gateway.stop()
        chain.stop()


def test_make_run_mode_managed_anvil_keeps_the_ledger_across_gateway_kills(tmp_path: Path) -> None:
    """`make run`'s own set-up: the gateway starts anvil itself (SETTLEMENT_CHAIN=anvil, a fixed
    SETTLEMENT_ANVIL_PORT, state under the data folder). A SIGKILLed gateway takes its anvil
    down too (PR_SET_PDEATHSIG sends it SIGTERM, and anvil saves its state on SIGTERM): the
    restarted gateway's anvil must load the same ledger, and nothing accepted may be lost."""
    from tests.reliability.harness import FR, NY, free_port

    gateway = GatewayProcess(tmp_path / "gateway", "http://unused", tmp_path / "deployments",
                             extra_env={"SETTLEMENT_CHAIN": "anvil", "SETTLEMENT_ANVIL_PORT": str(free_port())})
    try:
        gateway.start()
        creds = gateway.credentials
        accepted: list[str] = []
        heads = []
        for round_ in range(3):
            with gateway.client(creds["banks"][NY]) as ny:
                for i in range(30):
                    r = ny.post("/v1/payments", json={"creditor_agent": FR, "currency": "USD", "amount": f"{i + 1}.00",
                                                      "end_to_end_id": f"R{round_}-{i}"})
                    assert r.status_code == 202, r.text
                    accepted.append(r.json()["uetr"])
            heads.append(gateway.wait_serving(30)["latest_block"])
            gateway.sigkill()
            gateway.start()
            assert gateway.wait_serving(30)["latest_block"] >= heads[-1], heads  # the chain came back
        statuses = wait_all_final(gateway, creds["auditor"], accepted, timeout=120)
        assert set(statuses.values()) == {"ACSC"}, {s for s in statuses.values()}
        wait_reconciled(gateway, creds["auditor"])
        report(f"make-run mode: 3 gateway kills with its managed anvil, chain heads {heads} kept, "
               f"{len(accepted)} payments all settled")
    finally:
        gateway.stop()
