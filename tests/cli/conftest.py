"""The `settle` command line against a real gateway (the e2e `live` fixture: anvil,
SQLite, indexer and submitter, uvicorn on a loopback port), invoked in-process."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from chain_gateway.cli import app
from tests.live import Live

# The CLI's own environment variables must not leak in from the developer's shell.
CLEAN_ENV = {name: None for name in ("SETTLE_GATEWAY", "SETTLE_API_KEY", "SETTLE_CREDENTIALS", "SETTLE_AS",
                                     "SETTLEMENT_RPC_URL", "SETTLEMENT_DATABASE_URL", "SETTLEMENT_DEPLOYER_PRIVATE_KEY",
                                     "SETTLEMENT_RELAYER_PRIVATE_KEY")}
Settle = Callable[..., Result]


def invoke(*args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})}, input=input)


@pytest.fixture
def settle(live: Live) -> Settle:
    """settle(*args, key=..., json=True): the CLI against the live gateway."""
    def _run(*args: str, key: str | None = None, as_json: bool = True, **kw: Any) -> Result:
        base = ["--gateway", live.url]
        if key:
            base += ["--key", key]
        if as_json:
            base.append("--json")
        return invoke(*base, *args, **kw)
    return _run


def out(result: Result) -> Any:
    """The command's --json output, asserting it succeeded."""
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    """A failure: exit code 1, one line on stderr, no traceback."""
    assert result.exit_code == 1, f"exit {result.exit_code}: {result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
