"""The commands that act on a chain directly: deploy (on a fresh managed anvil), rebuild
(the live gateway's chain into a new mirror database), and bench."""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chain_gateway.chain import AnvilProcess, anvil_binary
from chain_gateway.config import PROJECT_ROOT
from chain_gateway.db import make_engine
from chain_gateway.mirror.models import Payment, StatementLine
from tests.cli.conftest import invoke, one_line_error, out
from tests.live import Live


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilProcess]:
    node = AnvilProcess(anvil_binary(PROJECT_ROOT), port=None, state_file=None, state_interval=1,
                        log_file=tmp_path / "anvil.log")
    yield node
    node.stop()


def test_deploy_bootstrap_reuse_and_force(anvil: AnvilProcess, tmp_path: Path) -> None:
    where = ["--rpc-url", anvil.url, "--name", "clitest", "--deployments-dir", str(tmp_path / "deployments"),
             "--data-dir", str(tmp_path / "data")]
    first = out(invoke("--json", "deploy", *where, "--bootstrap"))
    assert first["chain_id"] == 31337 and first["reused"] is False
    assert first["ledger"].startswith("0x") and first["registry"].startswith("0x") and first["deploy_block"] >= 1
    manifest = Path(first["manifest"])
    assert manifest == tmp_path / "deployments" / "clitest.json" and manifest.is_file()
    assert {p["bic"] for p in first["participants"]} >= {"DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX", "DEMOJPJTXXX"}
    assert '"DEMOUS33XXX"' in manifest.read_text()

    again = out(invoke("--json", "deploy", *where))
    assert again["reused"] is True and again["ledger"] == first["ledger"]
    forced = invoke("deploy", *where, "--force")
    assert forced.exit_code == 0, forced.output
    assert "SettlementLedger" in forced.stdout and first["ledger"] not in forced.stdout


def test_deploy_to_an_unreachable_chain_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(invoke("deploy", "--rpc-url", "http://127.0.0.1:9", "--deployments-dir", str(tmp_path)))
    assert "cannot reach the chain" in line


def test_rebuild_a_new_mirror_from_the_chain(live: Live, tmp_path: Path) -> None:
    assert live.gateway.chain is not None and live.gateway.chain.rpc_url
    with live.client(live.bank("DEMOUS33XXX"), Prefer="wait=20") as ny:
        r = ny.post("/v1/payments", json={"creditor_agent": "DEMODEFF", "currency": "USD", "amount": "12.34"})
        assert r.status_code == 201 and r.json()["status"] == "ACSC", r.text
    database = f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}"
    where = ["--rpc-url", live.gateway.chain.rpc_url, "--name", live.gateway.settings.deployment_name, "--deployments-dir",
             str(live.data_dir / "deployments"), "--database-url", database]
    assert "pass --yes" in one_line_error(invoke("--json", "rebuild", *where))

    body = out(invoke("--json", "rebuild", *where, "--yes", "--step", "7"))
    assert body["events"] > 0 and body["blocks"] >= body["to_block"] - body["from_block"]
    rebuilt, original = make_engine(database), live.gateway.engine
    assert original is not None
    try:
        with rebuilt.connect() as new, original.connect() as old:
            for table in (Payment, StatementLine):
                count = select(func.count()).select_from(table).where(table.block_number <= body["to_block"])
                assert new.execute(count).scalar() == old.execute(count).scalar()
                assert (new.execute(count).scalar() or 0) > 0
    finally:
        rebuilt.dispose()

    human = invoke("rebuild", *where, "--yes")  # again, with the progress bar over blocks and its ETA
    assert human.exit_code == 0, human.output
    assert "mirror rebuilt: blocks" in human.stdout
    assert "re-indexing" in human.stderr and "blocks" in human.stderr


def test_rebuild_needs_a_manifest(tmp_path: Path) -> None:
    line = one_line_error(invoke("rebuild", "--rpc-url", "http://127.0.0.1:9", "--deployments-dir", str(tmp_path),
                                 "--yes"))
    assert "no deployment manifest" in line


def test_bench_runs_the_benchmark_module_or_says_there_is_none() -> None:
    ran = invoke("bench", "--module", "tests.cli.fake_bench", "--", "--quick")
    assert ran.exit_code == 0, ran.output
    assert "bench: 3 payments/s (fake)" in ran.stdout and "args: --quick" in ran.stdout
    failed = invoke("bench", "--module", "tests.cli.fake_bench", "--", "--fail")
    assert failed.exit_code == 3 and "the benchmarks failed (exit code 3)" in failed.stderr
    assert "has no benchmark module" in one_line_error(invoke("bench", "--module", "scripts.no_such_bench"))
    if importlib.util.find_spec("scripts.bench") is None:
        assert "no benchmark module (scripts.bench) yet" in one_line_error(invoke("bench"))
