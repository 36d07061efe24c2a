"""``make bench``: the whole benchmark suite in one run, one table, and docs/benchmarks.md.

    .venv/bin/python -m scripts.bench            # full run (~15-20 min on 2 cores)
    .venv/bin/python -m scripts.bench --quick    # a few minutes, small sizes
    .venv/bin/python -m scripts.bench --only raw gas toolchain   # some phases

Phases (issue 7), each on its own fresh anvil:

* ``toolchain``: unchanged contracts rebuild (artifact cache), in-process and as the command;
* ``raw``: the chain's ceiling without the gateway: pre-signed settlements one per transaction
  and ``settleBatch`` of 100 bank-signed orders, sent as JSON-RPC batch arrays;
* ``gas``: submitPayment; settleBatch of 100 between existing accounts, with a per-item
  breakdown from crafted batches that stop at each check; FX PvP and gridlock settlement;
* ``gateway``: end to end over HTTP (submit -> ACSC in the mirror) with 1, 8 and 32 clients,
  banks signing before the timed window; then the gateway holding the keys and signing;
  mirror lag sampled under the 32-client load; gateway peak RSS;
* ``indexer``: ``chain_gateway.indexer.bench`` into SQLite and a private PostgreSQL;
* ``scale``: per-payment time through the gateway with 1k, 10k and 100k payments already in
  the ledger (built with settleBatch directly), a statement query for a bank with 100k
  movements, the gateway's peak RSS;
* ``lsm``, ``risk``, ``gridlock``: the other engineers' benchmarks (their own tables).

Nothing here asserts: figures are printed beside their targets and written to
docs/benchmarks.md (generated; never edit it by hand).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from chain_gateway.config import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
BESU_QBFT = "520-645 ERC-20 transfers/s (Hyperledger Besu QBFT, published)"
PHASES = ("toolchain", "raw", "gas", "gateway", "indexer", "scale", "lsm", "risk", "gridlock")


@dataclass(frozen=True)
class Sizes:
    raw_singles: int
    raw_batch: int
    idle: int
    c8: int
    c32: int
    gateway_signs: int
    indexer_events: int
    scale_points: tuple[int, ...]
    scale_measure: int
    statement_samples: int
    lsm_seeds: tuple[int, ...]
    lsm_sizes: tuple[int, ...]
    gridlock_random: bool


FULL = Sizes(raw_singles=5_000, raw_batch=20_000, idle=300, c8=2_000, c32=20_000, gateway_signs=5_000,
             indexer_events=10_000, scale_points=(1_000, 10_000, 100_000), scale_measure=2_000,
             statement_samples=200, lsm_seeds=(1, 2, 3), lsm_sizes=(500, 1000), gridlock_random=True)
QUICK = Sizes(raw_singles=1_000, raw_batch=3_000, idle=60, c8=400, c32=2_000, gateway_signs=600,
              indexer_events=3_000, scale_points=(1_000, 5_000), scale_measure=500,
              statement_samples=60, lsm_seeds=(1,), lsm_sizes=(500,), gridlock_random=False)
TINY = Sizes(raw_singles=100, raw_batch=300, idle=5, c8=16, c32=64, gateway_signs=32, indexer_events=300,
             scale_points=(200, 400), scale_measure=64, statement_samples=6, lsm_seeds=(1,), lsm_sizes=(),
             gridlock_random=False)


@dataclass
class Row:
    """One line of the summary: a figure, its target and whether it meets it."""

    section: str
    name: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (title, preformatted text)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(section, name, value, target, ok))
        mark = "" if ok is None else ("  [met]" if ok else "  [SHORT]")
        print(f"  {name:<58} {value:>26}   {target}{mark}", flush=True)


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.1f} ms"


# ------------------------------------------------------------------------------ phases
def phase_toolchain(res: Results, sizes: Sizes) -> None:
    from chain_gateway.toolchain import compile_contracts

    compile_contracts()  # make sure the cache is there
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        compile_contracts()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chain_gateway.toolchain"], cwd=PROJECT_ROOT, check=True,
                   capture_output=True)
    command = time.perf_counter() - t0
    res.add("toolchain", "unchanged contracts rebuild: `python -m chain_gateway.toolchain`", f"{command:.3f} s",
            "< 0.5 s", command < 0.5)
    res.add("toolchain", "  of which compile_contracts() (cache hit, median of 5)",
            f"{statistics.median(times) * 1000:.1f} ms")


def phase_raw(res: Results, sizes: Sizes) -> None:
    from scripts.bench_chain import raw_batch, raw_single, start_rig, warm_up

    rig = start_rig(16)
    try:
        warm_up(rig)
        single = raw_single(rig, sizes.raw_singles)
    finally:
        rig.close()
    rig = start_rig(16)  # the batch ceiling on a fresh chain of its own
    try:
        warm_up(rig)
        batch = raw_batch(rig, sizes.raw_batch)
    finally:
        rig.close()
    res.data["raw_single"] = single.rate
    res.data["raw_batch"] = batch.rate
    res.add("raw", f"pre-signed submitPayment, 1 per tx ({single.payments:,}, JSON-RPC arrays)",
            f"{single.rate:,.0f} payments/s")
    res.add("raw", f"settleBatch of 100 ({batch.payments:,} bank-signed; encode+sign+send+mine)",
            f"{batch.rate:,.0f} payments/s")


def phase_gas(res: Results, sizes: Sizes) -> None:
    from scripts.bench_chain import measure_fx_gas, measure_gas, start_rig

    rig = start_rig(8)
    try:
        gas = measure_gas(rig)
        fx = measure_fx_gas(rig)
    finally:
        rig.close()
    res.data["gas"] = gas.batch_per_payment
    res.data["fx_gas"] = fx.per_payment
    res.add("gas", "submitPayment (one signed payment, steady state)", f"{gas.single_submit:,} gas")
    res.add("gas", "settleBatch of 100, existing accounts, per payment", f"{gas.batch_per_payment:,.0f} gas",
            "<= 40,000", gas.batch_per_payment <= 40_000)
    lines = [f"{label:<62} {value:>8,.0f}" for label, value in gas.breakdown]
    lines.append(f"{'sum (= measured per payment)':<62} {sum(v for _, v in gas.breakdown):>8,.0f}")
    lines.append("")
    lines.append("Crafted batches of 100 (gasUsed / 100): " + ", ".join(
        f"{k} {v:,.0f}" for k, v in gas.variants.items()))
    lines.append("Each stops at one check, with the full batch's 8 pairs: expired at the deadline; badsig after\n"
                 "ecrecover; limit1/limit2 at a per-payment/daily limit of 1 (after the registry); insufficient\n"
                 "after the balance check (debtors defunded); full settles. Parts are differences of these,\n"
                 "calldata counted apart (see scripts/bench_chain.measure_gas); events and the new-slot write\n"
                 "are EVM schedule constants (LOG4 with 96 data bytes: 2,643; LOG2 with 32: 1,381;\n"
                 "SSTORE 0->x on a warm slot: 20,000; cold SLOAD: 2,100).")
    res.tables.append(("Gas per item of a settleBatch of 100 (8 banks, existing balances)", "\n".join(lines)))
    res.add("gas", f"FX PvP settlement (settleFxBatch of {fx.batch}, USD->EUR, existing accounts), per payment",
            f"{fx.per_payment:,.0f} gas")
    res.add("gas", "FX PvP settlement, settleFxBatch of 1", f"{fx.single:,} gas")
    if not isinstance(res.data.get("gridlock_gas"), int):  # measured by the gridlock phase, which adds its row
        res.add("gas", "gridlock settlement (settleGridlock), per payment", "see the gridlock phase (not run)")


def phase_gateway(res: Results, sizes: Sizes, profile: str | None = None) -> None:
    from scripts.bench_chain import start_rig
    from scripts.bench_gateway import (
        build_bulk_requests,
        build_requests,
        launch_gateway,
        percentile,
        run_bulk,
        run_load,
    )

    rig = start_rig(32)
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        gw = launch_gateway(rig, Path(tmp), profile=profile)
        try:
            raw = res.data.get("raw_batch")
            for clients, n in ((1, sizes.idle), (8, sizes.c8), (32, sizes.c32)):
                reqs = build_requests(rig, gw.api_keys, n, clients=clients)
                if clients == 1:
                    time.sleep(0.5)  # idle: nothing else in flight
                r = run_load(gw, reqs, rig=rig if clients == 32 else None)
                res.data[f"gateway_{clients}"] = r.rate
                errs = f"; errors {sum(r.errors.values())}" if sum(r.errors.values()) else ""
                res.add("gateway", f"{clients:>2} client{'s' if clients > 1 else ''}: {r.payments:,} payments, "
                        "submit -> ACSC", f"{r.rate:,.0f} payments/s{errs}")
                ok50 = r.pct(50) <= 50 if clients == 1 else None
                ok99 = r.pct(99) <= 200 if clients == 1 else None
                res.add("gateway", "    latency p50", _ms(r.pct(50)), "<= 50 ms (1 client, idle)" if clients == 1
                        else "", ok50)
                res.add("gateway", "    latency p95", _ms(r.pct(95)))
                res.add("gateway", "    latency p99", _ms(r.pct(99)), "<= 200 ms (1 client, idle)" if clients == 1
                        else "", ok99)
                if r.errors:
                    res.tables.append((f"Gateway errors ({clients} clients)", "\n".join(
                        f"{v:>6}  {k}" for k, v in r.errors.most_common(10))))
                if clients == 32:
                    if raw:
                        ratio = r.rate / raw
                        res.add("gateway", "    ratio gateway / raw settleBatch ceiling (same run)",
                                f"{ratio:.3f}x", ">= 0.6x", ratio >= 0.6)
                    res.add("gateway", "    beside Besu QBFT", f"{r.rate:,.0f}/s", BESU_QBFT)
                    if r.lag_blocks:
                        res.add("gateway", "    mirror lag under load, p50 / p95 / max (blocks)",
                                f"{percentile(r.lag_blocks, 50):.0f} / {percentile(r.lag_blocks, 95):.0f} / "
                                f"{max(r.lag_blocks)}")
                        res.add("gateway", "    mirror lag under load, p50 / p95 (ms)",
                                f"{percentile(r.lag_seconds, 50) * 1000:.0f} / "
                                f"{percentile(r.lag_seconds, 95) * 1000:.0f} ms")
            reqs = build_requests(rig, gw.api_keys, sizes.gateway_signs, clients=32, signed=False)
            r = run_load(gw, reqs)
            res.data["gateway_signs"] = r.rate
            errs = f"; errors {sum(r.errors.values())}" if sum(r.errors.values()) else ""
            res.add("gateway", f"32 clients, the gateway holds the keys and signs ({r.payments:,})",
                    f"{r.rate:,.0f} payments/s{errs}")
            res.add("gateway", "    latency p50 / p99", f"{r.pct(50):,.1f} / {r.pct(99):,.1f} ms")
            bulk = build_bulk_requests(rig, gw.api_keys, sizes.gateway_signs, clients=32, per_message=100)
            r = run_bulk(gw, bulk)
            res.data["gateway_bulk"] = r.rate
            errs = f"; errors {sum(r.errors.values())}" if sum(r.errors.values()) else ""
            res.add("gateway", f"32 clients, pacs.008 messages of 100 transactions, the gateway signs ({r.payments:,})",
                    f"{r.rate:,.0f} payments/s{errs}")
            res.add("gateway", "    message submit -> every transaction ACSC, p50 / p99",
                    f"{r.pct(50):,.1f} / {r.pct(99):,.1f} ms")
            res.add("gateway", "gateway peak RSS (this phase)", f"{gw.rss_mb():,.0f} MB")
        finally:
            gw.stop()
            rig.close()


def phase_indexer(res: Results, sizes: Sizes) -> None:
    from chain_gateway.indexer.bench import _postgres, _sqlite_url, index_into, make_bench_chain

    chain = make_bench_chain(sizes.indexer_events)
    try:
        with _sqlite_url(None) as url:
            r = index_into(chain, url)
        rate = r.events / r.seconds
        res.add("indexer", f"indexer into SQLite ({r.events:,} events)", f"{rate:,.0f} events/s", ">= 8,000",
                rate >= 8_000)
        try:
            with _postgres(None) as pg:
                r = index_into(chain, pg)
            rate = r.events / r.seconds
            res.add("indexer", f"indexer into PostgreSQL ({r.events:,} events)", f"{rate:,.0f} events/s",
                    ">= 5,000", rate >= 5_000)
        except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: say so, keep the rest
            res.add("indexer", "indexer into PostgreSQL", f"not measured ({type(exc).__name__})", ">= 5,000")
    finally:
        chain.close()


def phase_scale(res: Results, sizes: Sizes) -> None:
    from scripts.bench_chain import start_rig
    from scripts.bench_gateway import (
        build_requests,
        launch_gateway,
        preload,
        raw_chain_per_payment,
        run_load,
        statement_p95,
    )

    rig = start_rig(32)
    per_payment: dict[int, float] = {}
    chain: dict[int, float] = {}  # the chain alone at the same size: separates its slowdown from the gateway's
    blocks_made: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        gw = launch_gateway(rig, Path(tmp))
        try:
            in_ledger = 0
            start = 0
            for point in sizes.scale_points:
                t0 = time.perf_counter()
                block = preload(rig, point - in_ledger, pivot=0)
                waited = gw.wait_mirror(block)
                in_ledger = point
                print(f"  (ledger at {point:,} payments: built in {time.perf_counter() - t0:.1f} s, "
                      f"mirror caught up {waited:.1f} s after the last block)", flush=True)
                reqs = build_requests(rig, gw.api_keys, sizes.scale_measure, clients=32,
                                      debtors=range(1, len(rig.banks)), start=start)
                start += sizes.scale_measure
                head = int(rig.rpc.call("eth_blockNumber"), 16)
                r = run_load(gw, reqs)
                blocks = int(rig.rpc.call("eth_blockNumber"), 16) - head  # automine: one per gateway batch
                in_ledger += r.payments
                per_payment[point] = r.seconds / max(1, r.payments) * 1000
                res.add("scale", f"per-payment time, {point:,} payments in the ledger (32 clients)",
                        f"{per_payment[point]:.3f} ms ({r.rate:,.0f}/s)")
                # the chain alone at this size: blocks of 32 settlements from the bench, no gateway
                chain[point] = raw_chain_per_payment(rig, sizes.scale_measure, batch=32, start=start) * 32
                in_ledger += sizes.scale_measure
                res.add("scale", "  the chain alone: block of 32 settlements (same ledger, no gateway)",
                        f"{chain[point]:.1f} ms ({chain[point] / 32:.3f} ms/payment)")
                res.add("scale", "  gateway / chain alone, per payment", f"{per_payment[point] / (chain[point] / 32):.1f}x")
                res.add("scale", "  blocks the gateway's load made (automine: one per batch)",
                        f"{blocks:,} ({r.payments / max(1, blocks):.1f} payments a block)")
                blocks_made[point] = blocks
            first, last = sizes.scale_points[0], sizes.scale_points[-1]
            ratio = per_payment[last] / per_payment[first]
            res.add("scale", f"  ratio {last:,} / {first:,}", f"{ratio:.2f}x", "<= 1.25x", ratio <= 1.25)
            res.add("scale", f"  the chain alone (block of 32), ratio {last:,} / {first:,}",
                    f"{chain[last] / chain[first]:.2f}x")
            res.data["scale"] = {"per_payment_ms": per_payment, "chain_block_ms": chain, "blocks": blocks_made}
            p50, p95, _lines = statement_p95(gw, rig, 0, samples=sizes.statement_samples)
            res.add("scale", f"statement query, bank with {sizes.scale_points[-1]:,}+ movements, p95",
                    _ms(p95), "<= 50 ms", p95 <= 50)
            res.add("scale", "  p50", _ms(p50))
            rss = gw.rss_mb()
            res.add("scale", f"gateway peak RSS over {in_ledger:,} payments", f"{rss:,.0f} MB", "<= 500 MB",
                    rss <= 500)
        finally:
            gw.stop()
            rig.close()


def phase_lsm(res: Results, sizes: Sizes) -> None:
    from scripts.bench_lsm import format_table, run

    if not sizes.lsm_sizes:
        rows = run(time_limit=2.0, seeds=(), sizes=())
    else:
        rows = run(time_limit=10.0, seeds=sizes.lsm_seeds, sizes=sizes.lsm_sizes)
    res.tables.append(("LSM: gridlock resolution, MILP vs greedy (scripts/bench_lsm.py run())", format_table(rows)))
    res.add("lsm", "LSM cases run (table below)", f"{len(rows)}")


def phase_risk(res: Results, sizes: Sizes) -> None:
    from scripts import bench_risk

    args = ["--entries", "10000", "--payments", "5000", "--history", "20000"]
    if sizes is not FULL:
        args = ["--entries", "2000", "--payments", "500", "--history", "2000"]
    out = io.StringIO()
    argv = sys.argv
    sys.argv = ["bench_risk", *args]
    try:
        with contextlib.redirect_stdout(out):
            bench_risk.main()
    finally:
        sys.argv = argv
    res.tables.append(("Risk checks per payment (scripts/bench_risk.py " + " ".join(args) + ")", out.getvalue()))
    res.add("risk", "risk checks (table below)", "ok")


def phase_gridlock(res: Results, sizes: Sizes) -> None:
    try:
        from scripts import bench_gridlock
    except ImportError:
        res.add("gridlock", "gridlock settlement", "n/a (not built)")
        return
    rows = bench_gridlock.run(time_limit=10.0, seeds=(1,), sizes=(), onchain_random=sizes.gridlock_random,
                              solver=False)
    res.tables.append(("Gridlock on-chain (scripts/bench_gridlock.py run())", bench_gridlock.format_tables(rows)))
    cycle = [r for r in rows if str(r.get("case", "")).startswith("cycle")]
    if cycle and cycle[0].get("gas_per_payment"):
        res.data["gridlock_gas"] = int(cycle[0]["gas_per_payment"])
        res.add("gas", f"gridlock settlement (settleGridlock, one transaction), per payment ({cycle[0]['case']})",
                f"{int(cycle[0]['gas_per_payment']):,} gas")


# ------------------------------------------------------------------------------ report
def versions() -> list[tuple[str, str]]:
    out = [("python", platform.python_version())]
    for pkg in ("web3", "eth-account", "eth-abi", "coincurve", "fastapi", "starlette", "uvicorn", "sqlalchemy",
                "pydantic", "psycopg", "uvloop", "httptools"):
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            out.append((pkg, "not installed"))
    try:
        from chain_gateway.chain import anvil_binary

        v = subprocess.run([str(anvil_binary(PROJECT_ROOT)), "--version"], capture_output=True, text=True,
                           check=False).stdout.splitlines()[0]
        out.append(("anvil", v.replace("anvil Version: ", "")))
    except Exception:  # noqa: BLE001
        out.append(("anvil", "unknown"))
    try:
        from chain_gateway.toolchain import compile_contracts

        out.append(("solc", compile_contracts()["SettlementLedger"].compiler_version))
    except Exception:  # noqa: BLE001
        out.append(("solc", "unknown"))
    pg = Path("/usr/lib/postgresql/15/bin/postgres")
    if pg.exists():
        out.append(("postgresql", subprocess.run([str(pg), "--version"], capture_output=True, text=True,
                                                 check=False).stdout.strip()))
    return out


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def render(res: Results, *, command: str, started: float, quick: bool) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    total = time.time() - started
    out = ["# Benchmarks", "",
           "GENERATED by `make bench` (scripts/bench.py): do not edit by hand; run it again.", "",
           f"- command: `{command}`{' (quick: small sizes, not the reference run)' if quick else ''}",
           f"- run: {when}, {total / 60:.1f} min",
           f"- machine: {machine()}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in versions()), "",
           "Every figure is from this one run; each phase starts its own fresh anvil. Latency is "
           "submit -> ACSC as an HTTP client sees it (POST with `Prefer: wait=30`, orders signed by the "
           "banks before the timed window). Besu QBFT's published figure is "
           f"{BESU_QBFT}, for comparison with the absolute gateway rate.", ""]
    sections: dict[str, list[Row]] = {}
    for row in res.rows:
        sections.setdefault(row.section, []).append(row)
    out += ["| phase | figure | measured | target | |", "|---|---|---|---|---|"]
    for section, rows in sections.items():
        for r in rows:
            mark = "" if r.ok is None else ("met" if r.ok else "**short**")
            name = r.name.replace("|", "/")
            out.append(f"| {section} | {name.strip()} | {r.value} | {r.target} | {mark} |")
    for title, text in res.tables:
        out += ["", f"## {title}", "", "```", text.rstrip(), "```"]
    if res.failures:
        out += ["", "## Phases that failed", ""]
        for phase, err in res.failures:
            out += [f"### {phase}", "", "```", err.rstrip()[-3000:], "```"]
    out += ["", "## Phase times", "", ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items()), ""]
    loads = res.data.get("load_average") or {}
    if loads:
        out += [f"1-minute load average when each phase started ({os.cpu_count()} cores; above ~1 means other work "
                "shared the machine): " + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the smoke test's sizes
    parser.add_argument("--only", nargs="+", choices=PHASES, help="run only these phases")
    parser.add_argument("--skip", nargs="+", choices=PHASES, default=[], help="leave these phases out")
    parser.add_argument("--out", type=Path, default=DOC, help="the Markdown report (default docs/benchmarks.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--profile", metavar="LABEL",
                        help="pyinstrument the gateway during the gateway phase: test-artifacts/profiles/LABEL-*")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    phases = [p for p in (args.only or PHASES) if p not in args.skip]
    if "gateway" in phases and "raw" not in phases and not args.only:
        phases.insert(0, "raw")
    # gridlock runs before gas so its gas figure lands in the gas section
    order = ["toolchain", "raw", "gridlock", "gas", "gateway", "indexer", "scale", "lsm", "risk"]
    phases = [p for p in order if p in phases]
    started = time.time()
    res = Results()
    runners: dict[str, Callable[[Results, Sizes], None]] = {
        "toolchain": phase_toolchain, "raw": phase_raw, "gas": phase_gas,
        "gateway": lambda r, s: phase_gateway(r, s, profile=args.profile),
        "indexer": phase_indexer, "scale": phase_scale, "lsm": phase_lsm, "risk": phase_risk,
        "gridlock": phase_gridlock,
    }
    loads: dict[str, float] = {}
    for phase in phases:
        print(f"== {phase}", flush=True)
        loads[phase] = os.getloadavg()[0]  # other work on the machine skews the figures: shown in the report
        t0 = time.perf_counter()
        try:
            runners[phase](res, sizes)
        except Exception:  # noqa: BLE001 - one phase failing must not lose the others' figures
            err = traceback.format_exc()
            res.failures.append((phase, err))
            res.add(phase, f"{phase} phase", "FAILED (see the report)")
            print(err, file=sys.stderr, flush=True)
        res.seconds[phase] = time.perf_counter() - t0
    res.data["load_average"] = loads
    command = "make bench" if not (args.quick or args.tiny or args.only or args.skip) else \
        "python -m scripts.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render(res, command=command, started=started, quick=args.quick or args.tiny)
    print()
    for title, text in res.tables:
        print(f"-- {title}\n{text.rstrip()}\n")
    print(f"total {(time.time() - started) / 60:.1f} min")
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.__dict__ for r in res.rows], "data": res.data,
                                         "seconds": res.seconds}, indent=2, default=str))
    return 1 if res.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
