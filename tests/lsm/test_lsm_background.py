"""Large models: HiGHS in a worker thread alongside the neighbourhood search."""
from __future__ import annotations

import time

import numpy as np
import pytest

from chain_gateway.lsm import LsmError, QueuedPayment, is_feasible, solve_milp
from chain_gateway.lsm import solver as solver_module
from chain_gateway.lsm.heuristics import remove_until_covered
from chain_gateway.lsm.milp import ArrayModel, build_model, run_mip
from chain_gateway.lsm.model import Account
from chain_gateway.lsm.reduce import group_interchangeable, reduce_currency
from chain_gateway.lsm.search import augment, improve
from chain_gateway.lsm.ubin import random_gridlock


def gridlock_model(n_banks: int, n_payments: int, seed: int) -> tuple[ArrayModel, np.ndarray]:
    """The presolved model of a random gridlock and the greedy point on it."""
    case = random_gridlock(n_banks=n_banks, n_payments=n_payments, seed=seed)
    payments = list(case.payments)
    reduction = reduce_currency(payments, case.balances, range(len(payments)), "SGD")
    groups = group_interchangeable(payments, reduction.free)
    model = build_model(groups, reduction.residual)
    residual: dict[Account, int] = {(p, "SGD"): a for p, a in reduction.residual.items()}
    greedy = remove_until_covered(payments, residual, reduction.free)
    x = np.array([sum(1 for i in g.members if i in greedy) for g in groups], dtype=np.float64)
    return model, x


def test_run_mip_publishes_feasible_improving_incumbents() -> None:
    model, _ = gridlock_model(16, 120, 5)
    seen: list[np.ndarray] = []
    outcome = run_mip(model, None, 2.0, on_incumbent=seen.append)
    assert seen, "HiGHS published no incumbent"
    values = [float(model.cost @ x) for x in seen]
    assert values == sorted(values)
    for x in seen:
        assert model.is_feasible(x)
    assert outcome.x is not None and float(model.cost @ outcome.x) >= values[-1] - 0.5


def test_background_mip_returns_the_outcome_and_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = gridlock_model(16, 120, 5)
    outcome = solver_module._BackgroundMip(model, x, 1.0, 1e-6).result(30.0)
    assert outcome.x is not None and model.is_feasible(outcome.x)
    assert outcome.dual_bound >= float(model.cost @ outcome.x) - 1e-6

    def broken(*args: object, **kwargs: object) -> None:
        raise LsmError("HiGHS reported an error")

    monkeypatch.setattr(solver_module, "run_mip", broken)
    with pytest.raises(LsmError):
        solver_module._BackgroundMip(model, x, 1.0, 1e-6).result(30.0)


def test_improve_with_larger_sub_mips_stays_feasible_and_never_loses_value() -> None:
    model, x = gridlock_model(64, 500, 1)
    x = augment(model, x, time.perf_counter() + 1.0)
    better = improve(model, x, time.perf_counter() + 2.0, max_rounds=3, sub_mip_seconds=0.5)
    assert model.is_feasible(better)
    assert float(model.cost @ better) >= float(model.cost @ x)


def test_large_model_falls_back_to_the_search_when_highs_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise LsmError("HiGHS reported an error")

    monkeypatch.setattr(solver_module, "run_mip", broken)
    case = random_gridlock(n_banks=64, n_payments=500, seed=1)
    proposal = solve_milp(case.payments, case.balances, time_limit=1.0)
    assert proposal.method == "heuristic-fallback"
    assert not proposal.optimal
    assert proposal.value > 0 and proposal.bound is not None and proposal.bound >= proposal.value
    assert is_feasible(case.balances, case.payments, proposal.selected)


def test_large_model_that_highs_solves_is_proved_optimal() -> None:
    """25 disjoint three-bank cycles with no money: 75 columns, above the threshold
    for the background run; every cycle settles and HiGHS proves it."""
    queue = [
        QueuedPayment(f"c{c}-{leg}", f"B{c}-{leg}", f"B{c}-{(leg + 1) % 3}", "USD", 100 + c, seq=3 * c + leg)
        for c in range(25)
        for leg in range(3)
    ]
    assert len(queue) > solver_module.SEARCH_FIRST_COLUMNS
    proposal = solve_milp(queue, {}, time_limit=5.0)
    assert proposal.optimal
    assert proposal.value == proposal.bound == sum(p.amount for p in queue)
    assert set(proposal.selected) == {p.key for p in queue}
