"""Commands that act directly on a chain and the mirror database (no gateway, no API key):
``deploy`` the contracts, ``rebuild`` the mirror, and run the ``bench``-marks.

The chain modules are imported inside the commands so that ``settle --help`` and the
HTTP commands start fast.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from chain_gateway.cli._base import CliError, State, command, emit, key_values, state_of, stderr, table

RpcOpt = Annotated[str, typer.Option("--rpc-url", envvar="SETTLEMENT_RPC_URL", metavar="URL",
                                     help="The chain's JSON-RPC URL (`make chain` serves http://127.0.0.1:8545).")]
NameOpt = Annotated[str, typer.Option("--name", help="Deployment name: the manifest is <deployments-dir>/<name>.json.")]
DeploymentsOpt = Annotated[Path | None, typer.Option("--deployments-dir", file_okay=False,
                                                     help="Where manifests live (default: deployments/).")]


def _settings(rpc_url: str, name: str, deployments_dir: Path | None, **more: Any) -> Any:
    from chain_gateway.config import get_settings

    overrides: dict[str, Any] = {"chain": "rpc", "rpc_url": rpc_url, "deployment_name": name, **more}
    if deployments_dir is not None:
        overrides["deployments_dir"] = deployments_dir
    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


# ==================================================================== deploy
@command
def deploy(
    ctx: typer.Context,
    rpc_url: RpcOpt = "http://127.0.0.1:8545",
    name: NameOpt = "local",
    force: Annotated[bool, typer.Option("--force", help="Deploy again even if the manifest's contracts are "
                                                        "live.")] = False,
    bootstrap: Annotated[bool, typer.Option("--bootstrap", help="Register and fund the demo participants "
                                                                "(their keys go to the data folder's "
                                                                "keystore).")] = False,
    deployments_dir: DeploymentsOpt = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", file_okay=False,
                                                  help="Data folder holding the keystore (default: var/).")] = None,
) -> None:
    """Deploy the registry and the ledger to a chain and write the deployment manifest.

    Reuses the manifest's deployment when its code is still on that chain (unless --force)."""
    from chain_gateway.chain import connect
    from chain_gateway.deploy import bootstrap_demo, ensure_deployment, is_live, roles_for
    from chain_gateway.keys import KeyStore
    from chain_gateway.ledger import Deployment, LedgerClient
    from chain_gateway.transactions import TxSender

    state = state_of(ctx)
    settings = _settings(rpc_url, name, deployments_dir, data_dir=data_dir)
    chain = connect(settings)
    try:
        reused = (not force and settings.deployment_file.is_file()
                  and is_live(chain.w3, Deployment.load(settings.deployment_file)))
        deployment = ensure_deployment(settings, chain, force=force)
        participants: list[dict[str, Any]] = []
        if bootstrap:
            roles = roles_for(settings, chain)
            client = LedgerClient(chain.w3, deployment,
                                  operator=TxSender(chain.w3, roles.operator, gas_price_wei=settings.gas_price_wei))
            keystore = KeyStore(settings.keystore_dir, settings.keystore_passphrase.get_secret_value(),
                                production=settings.environment == "production")
            demo = bootstrap_demo(client, keystore)
            deployment = replace(deployment, participants={p.bic: p.address for p in demo})
            deployment.save(settings.deployment_file)
            participants = [{"bic": p.bic, "country": p.country, "name": p.name, "address": p.address}
                            for p in demo]
    finally:
        chain.close()
    body = {"name": deployment.name, "chain_id": deployment.chain_id, "rpc_url": rpc_url,
            "registry": deployment.registry, "ledger": deployment.ledger, "deploy_block": deployment.deploy_block,
            "manifest": str(settings.deployment_file), "reused": reused, "participants": participants}

    def render(c: Console) -> None:
        c.print(key_values(f"Deployment '{deployment.name}' on chain {deployment.chain_id}"
                           + (" (reused: already live)" if reused else ""), {
            "rpc url": rpc_url, "ParticipantRegistry": deployment.registry, "SettlementLedger": deployment.ledger,
            "deploy block": deployment.deploy_block, "manifest": settings.deployment_file}))
        if participants:
            c.print(table("Demo participants", ("BIC", "country", "address", "name"),
                          [[p["bic"], p["country"], p["address"], p["name"]] for p in participants]))
    emit(state, body, render)


# =================================================================== rebuild
@command
def rebuild(
    ctx: typer.Context,
    rpc_url: RpcOpt = "http://127.0.0.1:8545",
    name: NameOpt = "local",
    deployments_dir: DeploymentsOpt = None,
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="SETTLEMENT_DATABASE_URL",
                                                     help="The mirror database (default: "
                                                          "sqlite:///var/mirror.sqlite3).")] = None,
    step: Annotated[int, typer.Option("--step", min=1, max=100_000, help="Blocks per indexed range.")] = 500,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before wiping the mirror.")] = False,
) -> None:
    """Wipe the SQL mirror and index it again from the deployment block, with progress.

    Stop the gateway that uses this database first (or rebuild into a new database): the
    mirror is a copy of the chain, and this builds it anew from the chain alone."""
    from chain_gateway.chain import connect
    from chain_gateway.db import make_engine, make_session_factory, transaction
    from chain_gateway.deploy import is_live
    from chain_gateway.indexer import Indexer
    from chain_gateway.ledger import Deployment, LedgerClient
    from chain_gateway.mirror import writer
    from chain_gateway.mirror.schema import upgrade_database

    state = state_of(ctx)
    settings = _settings(rpc_url, name, deployments_dir, database_url=database_url)
    if not settings.deployment_file.is_file():
        raise CliError(f"no deployment manifest at {settings.deployment_file} (see `settle deploy`)")
    deployment = Deployment.load(settings.deployment_file)
    url = settings.effective_database_url
    if not yes:
        if state.json or not sys.stdin.isatty():
            raise CliError("rebuild wipes the mirror: pass --yes to confirm")
        typer.confirm(f"Wipe the mirror at {_redact(url)} and index it again from block {deployment.deploy_block}?",
                      abort=True)
    chain = connect(settings)
    engine = None
    try:
        if not is_live(chain.w3, deployment):
            raise CliError(f"deployment '{deployment.name}' (ledger {deployment.ledger}) is not on the chain at "
                           f"{rpc_url}")
        upgrade_database(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        indexer = Indexer(LedgerClient(chain.w3, deployment), sessions, confirmation_depth=settings.confirmation_depth,
                          max_range=step)
        started = time.perf_counter()
        with transaction(sessions) as session:
            writer.wipe(session)
        head = indexer.source.head()
        first = deployment.deploy_block
        total = max(0, head - first + 1)
        events = 0
        with Progress(TextColumn("[bold]re-indexing[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                      TextColumn("{task.fields[events]} events"), TimeElapsedColumn(), TextColumn("ETA"),
                      TimeRemainingColumn(), console=stderr(), disable=state.json, transient=False) as progress:
            task = progress.add_task("rebuild", total=total, events=0)
            for a in range(first, head + 1, step):
                b = min(head, a + step - 1)
                events += indexer.index_range(a, b)
                progress.update(task, advance=b - a + 1, events=events)
        tail = indexer.sync_once()  # blocks mined meanwhile, and finality
        events += tail.events
        seconds = time.perf_counter() - started
    finally:
        if engine is not None:
            engine.dispose()
        chain.close()
    body = {"deployment": deployment.name, "from_block": first, "to_block": tail.to_block, "blocks": total,
            "events": events, "seconds": round(seconds, 3), "database": _redact(url)}
    emit(state, body, lambda c: c.print(f"mirror rebuilt: blocks {first}..{tail.to_block}, {events} events "
                                        f"in {seconds:.1f} s ({_redact(url)})", markup=False))


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


# ===================================================================== bench
@command
def bench(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="Passed to the benchmark module.")] = None,
    module: Annotated[str, typer.Option("--module", help="The benchmark module to run.")] = "scripts.bench",
) -> None:
    """Run the benchmarks (the project's benchmark module, as `make bench` does), from the project root."""
    import os

    from chain_gateway.config import PROJECT_ROOT

    root = str(PROJECT_ROOT)
    added = root not in sys.path
    if added:  # scripts/ is not an installed package: look for it in the checkout
        sys.path.insert(0, root)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(root)
    if spec is None:
        raise CliError(f"this checkout has no benchmark module ({module}) yet: nothing to run")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with subprocess.Popen([sys.executable, "-m", module, *(args or [])], stdout=subprocess.PIPE, cwd=root, env=env,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1) as proc:
        for line in proc.stdout or ():  # streamed, so a long benchmark shows its progress
            typer.echo(line, nl=False)
        code = proc.wait()
    if code != 0:
        raise CliError(f"the benchmarks failed (exit code {code})", exit_code=code)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("rebuild")(rebuild)
    app.command("bench")(bench)


__all__ = ["State", "register"]
