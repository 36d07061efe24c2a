"""Slither over the contracts: no high or medium finding left unexplained, and the external
calls are what the security argument says they are (docs/security.md).

Slither runs in a virtualenv of its own (build/slither-venv, created here when missing:
slither-analyzer 0.11 requires web3 < 8, the gateway web3 8). It is fed the standard-JSON
input of the project's own compile through crytic-compile's ``solc-json`` platform
(tests/security/slither_run.py), compiled by the project's compiler (native solc at the pin
or the solcjs wrapper): no compiler download, no ``--combined-json``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chain_gateway.config import PROJECT_ROOT
from chain_gateway.toolchain import _compiler, _standard_input, collect_sources
from tests.reliability.harness import report

pytestmark = pytest.mark.slow

SLITHER_REQUIREMENT = "slither-analyzer==0.11.6"
VENV = PROJECT_ROOT / "build" / "slither-venv"
OUT = PROJECT_ROOT / "build" / "slither"
DOC = PROJECT_ROOT / "docs" / "security.md"

# Every high or medium finding in our contracts, by "check: Contract.function" (or the local
# variable's function), with the one-line reason; docs/security.md explains each at length.
EXPLAINED: dict[str, str] = {
    "incorrect-equality: SettlementLedger._limitCheck": "day-bucket comparison of two day numbers, not a balance",
    "incorrect-equality: SettlementLedger._recordOutflow": "day-bucket comparison (same as _limitCheck)",
    "incorrect-equality: SettlementLedger._addOutflow": "day-bucket comparison (same as _limitCheck)",
    "incorrect-equality: SettlementLedger._netLimitCheck": "day-bucket comparison (same as _limitCheck)",
    "incorrect-equality: SettlementLedger._bilateralSpend": "day-bucket comparison (same as _limitCheck)",
    "incorrect-equality: SettlementLedger._bilateralRefund": "day-bucket comparison (same as _limitCheck)",
    "uninitialized-local: settleQueued.settled": "a counter Solidity zero-initialises; read only after ++",
    "uninitialized-local: closeGridlock.closed": "a counter Solidity zero-initialises; read only after ++",
    "unused-return: SettlementLedger._process": "ECDSA.tryRecover's third value (the error argument) is not needed",
    "unused-return: SettlementLedger.commitGridlock": "NetPositions.find's 'added' flag: each account is new there",
    "unused-return: FxSettlement._signedBy": "ECDSA.tryRecover's third value (the error argument) is not needed",
    "divide-before-multiply: FxSettlement._check": "ceil division: the product only tests whether it was exact",
    "reentrancy-no-eth: FxSettlement.settleFxBatch": "the callee is the trusted ledger, which calls nothing back "
                                                     "(its only external calls are STATICCALLs); see the proposal",
}
# OpenZeppelin's own code (node_modules): audited upstream, findings known false positives.
DEPENDENCY_CHECKS = {"incorrect-exp", "divide-before-multiply"}


def _slither_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "slither").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", SLITHER_REQUIREMENT],
                       check=True, timeout=900)
    return python


def _key(finding: dict[str, Any]) -> str:
    first = finding["elements"][0]
    return f"{finding['check']}: {first['contract']}.{first['name']}"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    python = _slither_python()
    OUT.mkdir(parents=True, exist_ok=True)
    standard = _standard_input(collect_sources(PROJECT_ROOT))
    standard["settings"].pop("outputSelection")  # crytic-compile asks for the AST and source maps itself
    (OUT / "standard-input.json").write_text(json.dumps(standard))
    run = subprocess.run([str(python), str(Path(__file__).with_name("slither_run.py")),
                          str(OUT / "standard-input.json"), str(_compiler(PROJECT_ROOT)), str(OUT / "result.json")],
                         capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return dict(json.loads((OUT / "result.json").read_text()))


def test_no_high_or_medium_finding_is_left_unexplained(result: dict[str, Any]) -> None:
    ours, dependencies, unexplained = [], [], []
    for f in result["findings"]:
        if f["impact"] not in ("High", "Medium"):
            continue
        files = {e["file"] or "" for e in f["elements"]}
        if files and all(p.startswith("node_modules/") for p in files):
            dependencies.append(f)
            if f["check"] not in DEPENDENCY_CHECKS:
                unexplained.append(f"{_key(f)} (OpenZeppelin): {f['description'][:300]}")
            continue
        ours.append(f)
        if _key(f) not in EXPLAINED:
            unexplained.append(f"{_key(f)}: {f['description'][:300]}")
    counts = {impact: sum(f["impact"] == impact for f in result["findings"])
              for impact in ("High", "Medium", "Low", "Informational", "Optimization")}
    report(f"slither: {len(result['findings'])} results {counts}; high/medium: {len(ours)} in our contracts "
          f"(all explained), {len(dependencies)} in OpenZeppelin")
    assert not unexplained, "explain (docs/security.md and EXPLAINED) or fix:\n" + "\n".join(unexplained)
    stale = set(EXPLAINED) - {_key(f) for f in ours}
    assert not stale, f"explained findings Slither no longer reports (remove them): {sorted(stale)}"


def test_docs_explain_every_finding() -> None:
    text = DOC.read_text()
    missing = [k for k in EXPLAINED if k not in text]
    assert not missing, f"docs/security.md lacks: {missing}"


def test_the_ledger_calls_out_only_read_only(result: dict[str, Any]) -> None:
    """SettlementLedger and ParticipantRegistry make no external call but STATICCALLs to the
    registry's views; FxSettlement's only state-changing call is the ledger's settleFxLegs."""
    calls = result["calls"]
    assert calls, "no external call found at all: the analysis did not run"
    for c in calls:
        if c["contract"] in ("SettlementLedger", "ParticipantRegistry"):
            assert c["kind"] == "high-level" and c["static"] and c["target"] == "IParticipantRegistry", c
        else:
            assert c["static"] or (c["target"], c["called"]) == ("ISettlementLedger", "settleFxLegs"), c
    assert not [c for c in calls if c["kind"] == "low-level"]
