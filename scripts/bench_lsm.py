"""Benchmark of gridlock resolution: MILP pipeline against the TARGET2-style greedy.

    .venv/bin/python scripts/bench_lsm.py [--time-limit 10] [--seeds 1 2 3] [--sizes 500 1000] [--banks 64]
    .venv/bin/python scripts/bench_lsm.py --highs-alone 300 --seeds 1 --sizes 500   # the reference run
    .venv/bin/python scripts/bench_lsm.py --highs-alone 1800 --warm-start 90 --seeds 1 --sizes 500   # the proof

Cases: Project Ubin's 4-bank ring (5000 payments, known optimum 31,132,000) and
random gridlocks built like Ubin's simulator (``chain_gateway.lsm.ubin.random_gridlock``).
For each: value settled by ``solve_milp`` (with the time limit) and by ``solve_greedy``,
each as a percentage of the MILP's proven upper bound, solver time, gap, optimality,
then per queue size the worst seed against the issue-5 target (>= 99% of the bound).
``--highs-alone S`` instead runs plain HiGHS (no heuristics of ours) for S seconds on each
random case: how close a long run gets, beside what the pipeline reaches in its limit.
With ``--warm-start T`` the pipeline runs T seconds first and HiGHS starts from its
subset: given long enough, that run proves the optimum (how ``PROVEN_OPTIMA`` was found).
Prints figures only; nothing is asserted (times depend on the machine and its load).
``run()`` returns the rows as dicts for ``make bench``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chain_gateway.lsm import is_feasible, solve_greedy, solve_milp
from chain_gateway.lsm.milp import build_model, group_counts, run_mip
from chain_gateway.lsm.reduce import group_interchangeable, reduce_currency
from chain_gateway.lsm.ubin import GridlockCase, load_ubin_ring_csv, random_gridlock

DATA = REPO / "tests" / "lsm" / "data"
TARGET_PCT = 99.0
"""Issue 5: the MILP's value should reach this share of its proven bound on every seed."""
PROVEN_OPTIMA: dict[str, int] = {
    "random-64x500-seed1": 172_219_329,
    "random-64x500-seed2": 183_941_747,
    "random-64x500-seed3": 177_611_992,
}
"""Optimal values proved by ``--highs-alone 1800 --warm-start 90 --sizes 500`` (HiGHS
status Optimal, its dual bound within 200 units, a relative gap below 1e-6; 2026-11-29,
seed 1 in 595 s). They show how far the 10-s bound sits above the truth: on seed 1 the
optimum itself is 98.7% of that bound, so no algorithm can reach the 99% target against
it there; on seeds 2 and 3 the optimum is 99.2% and 99.0% of it. The 1,000-payment
cases are not proved: on seed 2 a 300-s pipeline run ended at 411.2M under a bound
of 417.3M, the bound having moved 0.2% from the 10-s one."""


def _cases(seeds: Sequence[int], sizes: Sequence[int], banks: int) -> list[GridlockCase]:
    ring = load_ubin_ring_csv(DATA / "ubin_ring_5000.csv", DATA / "ubin_ring_balances.csv")
    return [ring] + [random_gridlock(banks, size, seed) for size in sizes for seed in seeds]


def _percent(value: int, bound: int | None) -> float | None:
    return None if not bound else 100.0 * value / bound


def run(
    time_limit: float = 10.0,
    seeds: Sequence[int] = (1, 2, 3),
    sizes: Sequence[int] = (500, 1000),
    banks: int = 64,
) -> list[dict[str, Any]]:
    """One row per case: MILP and greedy results, percentages of the MILP bound."""
    rows: list[dict[str, Any]] = []
    for case in _cases(seeds, sizes, banks):
        milp = solve_milp(case.payments, case.balances, time_limit)
        greedy = solve_greedy(case.payments, case.balances)
        latest = solve_greedy(case.payments, case.balances, drop="latest")
        for proposal in (milp, greedy, latest):
            if not is_feasible(case.balances, case.payments, proposal.selected):
                raise SystemExit(f"{case.name}: {proposal.method} proposed an infeasible subset")
        optimum = PROVEN_OPTIMA.get(case.name)
        if optimum is not None and not milp.value <= optimum <= (milp.bound or optimum):
            raise SystemExit(f"{case.name}: recorded optimum {optimum:,} contradicts value "
                             f"{milp.value:,} / bound {milp.bound:,}")
        rows.append(
            {
                "case": case.name,
                "participants": len({account[0] for account in case.balances}),
                "payments": len(case.payments),
                "queued_value": sum(p.amount for p in case.payments),
                "bound": milp.bound,
                "milp_value": milp.value,
                "milp_count": len(milp.selected),
                "milp_pct_bound": _percent(milp.value, milp.bound),
                "optimum": optimum,
                "milp_pct_optimum": _percent(milp.value, optimum),
                "optimum_pct_bound": _percent(optimum, milp.bound) if optimum else None,
                "milp_seconds": milp.solver_seconds,
                "gap": milp.gap,
                "optimal": milp.optimal,
                "method": milp.method,
                "greedy_value": greedy.value,
                "greedy_count": len(greedy.selected),
                "greedy_pct_bound": _percent(greedy.value, milp.bound),
                "greedy_seconds": greedy.solver_seconds,
                "greedy_latest_value": latest.value,
                "greedy_latest_pct_bound": _percent(latest.value, milp.bound),
            }
        )
    return rows


def highs_alone(case: GridlockCase, seconds: float, warm_start: float = 0.0) -> tuple[int, int, bool]:
    """(value, bound, proved optimal) of plain HiGHS on the presolved single-currency case
    after ``seconds``; from the pipeline's subset after ``warm_start`` seconds if > 0."""
    payments = list(case.payments)
    reduction = reduce_currency(payments, case.balances, range(len(payments)), payments[0].currency)
    fixed = sum(payments[i].amount for i in reduction.fixed_in)
    groups = group_interchangeable(payments, reduction.free)
    model = build_model(groups, reduction.residual)
    start = None
    if warm_start > 0:
        keys = set(solve_milp(payments, case.balances, warm_start).selected)
        start = group_counts(groups, {i for i, p in enumerate(payments) if p.key in keys})
    outcome = run_mip(model, start, seconds)
    value = 0 if outcome.x is None else round(float(model.cost @ outcome.x)) * model.scale
    return fixed + value, fixed + int(outcome.dual_bound) * model.scale, outcome.optimal


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width text table of ``run()``'s rows, then the worst seed per queue size."""
    header = (
        f"{'case':<26} {'n':>5} {'queued':>12} {'bound':>12} {'MILP value':>12} {'count':>5} "
        f"{'%bound':>7} {'time s':>6} {'gap':>7} {'opt':>3} "
        f"{'greedy value':>12} {'count':>5} {'%bound':>7} {'latest %':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['case']:<26} {r['payments']:>5} {r['queued_value']:>12,} {r['bound']:>12,} "
            f"{r['milp_value']:>12,} {r['milp_count']:>5} {r['milp_pct_bound']:>6.2f}% {r['milp_seconds']:>6.2f} "
            f"{100 * r['gap']:>6.2f}% {'yes' if r['optimal'] else 'no':>3} "
            f"{r['greedy_value']:>12,} {r['greedy_count']:>5} {r['greedy_pct_bound']:>6.2f}% "
            f"{r['greedy_latest_pct_bound']:>7.2f}%"
        )
    proven = [
        f"{r['case']}: proven optimum {r['optimum']:,}; the MILP reached {r['milp_pct_optimum']:.2f}% of it, "
        f"and the optimum itself is {r['optimum_pct_bound']:.2f}% of this run's bound"
        for r in rows
        if r.get("optimum")
    ]
    worst = summary(rows)
    return "\n".join(lines + (["", worst] if worst else []) + (["", *proven] if proven else []))


def summary(rows: Sequence[dict[str, Any]], target_pct: float = TARGET_PCT) -> str:
    """One line per queue size of the random gridlocks: the worst seed's figures."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if str(r["case"]).startswith("random-"):
            by_size.setdefault(int(r["payments"]), []).append(r)
    lines = []
    for size, group in sorted(by_size.items()):
        worst = min(r["milp_pct_bound"] for r in group)
        lines.append(
            f"min over {len(group)} seeds, {size} payments: MILP {worst:.2f}% of bound "
            f"(target >= {target_pct:.0f}%: {'met' if worst >= target_pct else 'SHORT'}), "
            f"greedy {min(r['greedy_pct_bound'] for r in group):.2f}%, "
            f"max time {max(r['milp_seconds'] for r in group):.2f} s, "
            f"max gap {100 * max(r['gap'] for r in group):.2f}%, "
            f"proven optimal {sum(1 for r in group if r['optimal'])}/{len(group)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=10.0, help="MILP limit per case, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--banks", type=int, default=64)
    parser.add_argument("--highs-alone", type=float, metavar="S", help="plain HiGHS for S seconds per random case")
    parser.add_argument("--warm-start", type=float, default=0.0, metavar="T",
                        help="with --highs-alone: start HiGHS from the pipeline's subset after T seconds")
    args = parser.parse_args(argv)
    if args.highs_alone:
        for case in _cases(args.seeds, args.sizes, args.banks)[1:]:
            value, bound, optimal = highs_alone(case, args.highs_alone, args.warm_start)
            print(f"{case.name}: HiGHS alone, {args.highs_alone:g} s"
                  f"{f' from the pipeline after {args.warm_start:g} s' if args.warm_start else ''}: "
                  f"value {value:,} bound {bound:,} = {_percent(value, bound) or 0:.2f}%"
                  f"{' (proved optimal)' if optimal else ''}")
        return
    rows = run(args.time_limit, args.seeds, args.sizes, args.banks)
    print(format_table(rows))
    print(
        "\n%bound: value / the MILP's proven upper bound on the best settleable value (100% = optimal).\n"
        "greedy: TARGET2-style partial optimisation, the most uncovered participant drops its largest\n"
        "payment first; latest %: the same greedy dropping its latest-queued payment first."
    )


if __name__ == "__main__":
    main()
