"""One currency's gridlock as a HiGHS integer program, built from arrays.

After presolve (``reduce``) the model is

    maximise   sum_k (amount_k / g) * x_k
    subject to sum_{k in p} (amount_k / g) - sum_{k out of p} (amount_k / g) >= -floor(residual_p / g)
               x_k integer in 0..count_k

with one column per group of interchangeable payments and one row per participant.
``g`` is the gcd of the currency's free amounts: dividing by it is exact (all
coefficients stay integers, and floor on the right-hand side is the integer
rounding of a valid inequality), and small coefficients help HiGHS's numerics.
The objective is then integral, so an absolute gap below 1 proves optimality.

Every column has exactly two non-zeros (+a at the creditor's row, -a at the
debtor's), so the column-wise matrix is written straight into numpy arrays.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highspy
import numpy as np

from chain_gateway.lsm.heuristics import remove_until_covered
from chain_gateway.lsm.model import Account, QueuedPayment
from chain_gateway.lsm.reduce import Group, Reduction, group_interchangeable

log = logging.getLogger(__name__)


class _QuietHighs(highspy.Highs):
    """``highspy.Highs`` that never writes to stdout.

    highspy registers its callback in ``__init__``, and HiGHS prints its banner on
    that registration unless output is already off, so output is switched off
    first.
    """

    def enableCallbacks(self) -> None:  # noqa: N802 - highspy's name
        self.setOptionValue("output_flag", False)
        super().enableCallbacks()


@dataclass(frozen=True, slots=True)
class ArrayModel:
    """The integer program in HiGHS's column-wise array form."""

    cost: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    scale: int

    @property
    def num_col(self) -> int:
        return int(self.cost.size)

    @property
    def num_row(self) -> int:
        return int(self.row_lower.size)


@dataclass(frozen=True, slots=True)
class CurrencyResult:
    """What one currency contributes to a proposal (indices into the payment list)."""

    selected: frozenset[int]
    value: int
    bound: int
    optimal: bool
    method: str


def build_model(groups: Sequence[Group], residual: Mapping[str, int]) -> ArrayModel:
    """Arrays of the model above; rows are the participants that appear in ``groups``."""
    parties = sorted({g.debtor for g in groups} | {g.creditor for g in groups})
    row_of = {party: row for row, party in enumerate(parties)}
    scale = math.gcd(*(g.amount for g in groups)) or 1
    amounts = np.fromiter((g.amount // scale for g in groups), dtype=np.float64, count=len(groups))
    index = np.empty(2 * len(groups), dtype=np.int32)
    index[0::2] = [row_of[g.creditor] for g in groups]
    index[1::2] = [row_of[g.debtor] for g in groups]
    value = np.empty(2 * len(groups), dtype=np.float64)
    value[0::2] = amounts
    value[1::2] = -amounts
    return ArrayModel(
        cost=amounts,
        col_upper=np.fromiter((len(g.members) for g in groups), dtype=np.float64, count=len(groups)),
        row_lower=np.array([-(residual[p] // scale) for p in parties], dtype=np.float64),
        start=np.arange(0, 2 * len(groups) + 1, 2, dtype=np.int32),
        index=index,
        value=value,
        scale=scale,
    )


def _run_highs(
    model: ArrayModel, warm_start: np.ndarray, time_limit: float, rel_gap: float
) -> tuple[np.ndarray | None, float, bool]:
    """Solve; return (incumbent or None, dual bound in scaled units, proved optimal)."""
    highs = _QuietHighs()
    for option, setting in (
        ("output_flag", False),
        ("time_limit", max(time_limit, 0.01)),
        ("mip_rel_gap", rel_gap),
        ("mip_abs_gap", 0.999),  # integral objective: a gap below 1 is optimality
        ("threads", 1),  # deterministic, and the gateway has other work for the cores
        ("random_seed", 0),
    ):
        highs.setOptionValue(option, setting)
    num_col = model.num_col
    highs.passModel(
        num_col,
        model.num_row,
        2 * num_col,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMaximize),
        0.0,
        model.cost,
        np.zeros(num_col),
        model.col_upper,
        model.row_lower,
        np.full(model.num_row, highspy.kHighsInf),
        model.start,
        model.index,
        model.value,
        np.full(num_col, int(highspy.HighsVarType.kInteger), dtype=np.int32),
    )
    highs.setSolution(num_col, np.arange(num_col, dtype=np.int32), warm_start)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    dual = float(info.mip_dual_bound)
    if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
        return None, dual, False
    incumbent = np.asarray(highs.getSolution().col_value, dtype=np.float64)
    return incumbent, dual, status == highspy.HighsModelStatus.kOptimal


def solve_currency(
    payments: Sequence[QueuedPayment],
    reduction: Reduction,
    time_limit: float,
    rel_gap: float,
) -> CurrencyResult:
    """Best selection HiGHS finds for one reduced currency, with a proven bound.

    The greedy on the reduced instance is passed in as a warm start, so the MILP
    never does worse than it. A rounded incumbent that misses a row by a rounding
    unit is repaired by the same removal loop; the bound stays valid either way.
    """
    fixed = frozenset(reduction.fixed_in)
    fixed_value = sum(payments[i].amount for i in fixed)
    if not reduction.free:
        return CurrencyResult(fixed, fixed_value, fixed_value, True, "presolve")
    groups = group_interchangeable(payments, reduction.free)
    model = build_model(groups, reduction.residual)
    residual_balances: dict[Account, int] = {
        (party, reduction.currency): amount for party, amount in reduction.residual.items()
    }
    greedy = remove_until_covered(payments, residual_balances, reduction.free)
    warm = np.array([sum(1 for i in g.members if i in greedy) for g in groups], dtype=np.float64)
    trivial_bound = sum(g.amount * len(g.members) for g in groups)

    incumbent: np.ndarray | None
    try:
        incumbent, dual, optimal = _run_highs(model, warm, time_limit, rel_gap)
    except Exception:  # noqa: BLE001 - any solver failure falls back to the greedy
        log.warning("HiGHS failed on %s gridlock; using the greedy", reduction.currency, exc_info=True)
        incumbent, dual, optimal = None, math.inf, False

    method = "milp"
    if incumbent is None:
        chosen, method, optimal = set(greedy), "greedy-fallback", False
    else:
        counts = np.clip(np.rint(incumbent), 0, model.col_upper).astype(np.int64)
        chosen = {i for g, k in zip(groups, counts.tolist()) for i in g.members[:k]}
        repaired = remove_until_covered(payments, residual_balances, chosen)
        if repaired != chosen:
            log.warning("MILP incumbent for %s needed repair after rounding", reduction.currency)
            chosen, method, optimal = repaired, "milp-repaired", False
    value = sum(payments[i].amount for i in chosen)
    bound = trivial_bound
    if math.isfinite(dual):
        bound = min(bound, math.floor(dual + 1e-6) * model.scale)
    bound = max(bound, value)  # the dual bound is a float; never report it below a feasible value
    if optimal:
        bound = value if bound - value < model.scale else bound
    return CurrencyResult(
        selected=frozenset(chosen | fixed),
        value=value + fixed_value,
        bound=bound + fixed_value,
        optimal=optimal,
        method=method,
    )


def deadline_share(deadline: float, parts_left: int) -> float:
    """Time for the next of ``parts_left`` solves so all finish by ``deadline``."""
    return max(deadline - time.perf_counter(), 0.0) / max(parts_left, 1)
