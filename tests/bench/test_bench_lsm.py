"""scripts/bench_lsm.py's reference figures: the warm-started long HiGHS run that proved the
recorded optima, and the check that a recorded optimum never contradicts a run."""
from __future__ import annotations

import pytest

from chain_gateway.lsm import brute_force, solve_milp
from chain_gateway.lsm.ubin import random_gridlock
from scripts import bench_lsm

SMALL = random_gridlock(8, 14, 1)
"""Small enough for brute force (14 payments), built the benchmark's way."""


def test_highs_alone_from_the_pipeline_proves_the_brute_force_optimum() -> None:
    value, bound, optimal = bench_lsm.highs_alone(SMALL, 10.0, warm_start=0.5)
    exact = brute_force(SMALL.payments, SMALL.balances).value
    assert exact > 0
    assert optimal and value == exact and bound >= value


def test_a_recorded_optimum_is_reported_beside_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = solve_milp(SMALL.payments, SMALL.balances, 5.0)
    assert exact.optimal
    monkeypatch.setitem(bench_lsm.PROVEN_OPTIMA, SMALL.name, exact.value)
    rows = bench_lsm.run(time_limit=2.0, seeds=(1,), sizes=(14,), banks=8)
    row = next(r for r in rows if r["case"] == SMALL.name)
    assert row["optimum"] == exact.value and row["milp_pct_optimum"] == pytest.approx(100.0)
    assert f"{SMALL.name}: proven optimum {exact.value:,}" in bench_lsm.format_table(rows)


def test_a_recorded_optimum_below_a_settled_value_stops_the_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = solve_milp(SMALL.payments, SMALL.balances, 5.0)
    monkeypatch.setitem(bench_lsm.PROVEN_OPTIMA, SMALL.name, exact.value - 1)
    with pytest.raises(SystemExit, match="contradicts"):
        bench_lsm.run(time_limit=2.0, seeds=(1,), sizes=(14,), banks=8)
