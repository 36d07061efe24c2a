"""``settle``: the operator's and auditor's command line over the gateway's HTTP API.

    settle --as operator participants list
    settle --key "$KEY" --json balances DEMOUS33
    settle deploy --rpc-url http://127.0.0.1:8545 --bootstrap      # acts on a chain directly
    settle rebuild --rpc-url http://127.0.0.1:8545 --yes           # re-indexes the mirror

Global options come before the command. Errors are one line on stderr with exit code 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chain_gateway.cli import _base, chain_cmds, gateway_cmds
from chain_gateway.cli._base import DEFAULT_CREDENTIALS, DEFAULT_GATEWAY, State

app = typer.Typer(
    name="settle",
    help="Operate and audit the settlement ledger: talks to a running gateway over HTTP with an API key, "
         "or acts directly on a chain (deploy, rebuild).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    gateway: Annotated[str, typer.Option("--gateway", envvar="SETTLE_GATEWAY", metavar="URL",
                                         help="The gateway's base URL.")] = DEFAULT_GATEWAY,
    key: Annotated[str | None, typer.Option("--key", envvar="SETTLE_API_KEY", show_envvar=True,
                                            help="API key (sent as a Bearer token; never put it in a URL).")] = None,
    credentials: Annotated[Path, typer.Option("--credentials", envvar="SETTLE_CREDENTIALS", metavar="FILE",
                                              help="credentials.json written by `make run`.")] = DEFAULT_CREDENTIALS,
    as_: Annotated[str | None, typer.Option("--as", envvar="SETTLE_AS", metavar="operator|auditor|BIC",
                                            help="Take the key of this role or bank from --credentials.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="HTTP timeout in seconds.")] = 30.0,
) -> None:
    state = State(gateway=gateway, key=key, credentials=credentials, as_=as_, json=json_out, timeout=timeout)
    ctx.obj = state
    ctx.call_on_close(state.close)


gateway_cmds.register(app)
chain_cmds.register(app)

__all__ = ["_base", "app", "main"]
