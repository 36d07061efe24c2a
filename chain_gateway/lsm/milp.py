"""One currency's gridlock as a HiGHS integer program, built from arrays.

After presolve (``reduce``) the model is

    maximise   sum_k (amount_k / g) * x_k
    subject to sum_{k into p} (amount_k / g) x_k - sum_{k out of p} (amount_k / g) x_k
                   >= -floor(residual_p / g)                 for every participant p
               x_k integer in 0..count_k

with one column per group of interchangeable payments and one row per participant.
``g`` is the gcd of the currency's free amounts: dividing by it is exact (all
coefficients stay integers, and flooring the right-hand side is the integer
rounding of a valid inequality), and smaller coefficients help HiGHS's numerics.
The objective is then integral, so an absolute gap below 1 proves optimality.

Every column has exactly two non-zeros (+a at the creditor's row, -a at the
debtor's), so the column-wise matrix is written straight into numpy arrays.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import highspy
import numpy as np
from numpy.typing import NDArray

from chain_gateway.lsm.model import LsmError
from chain_gateway.lsm.reduce import Group

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]


class _QuietHighs(highspy.Highs):
    """``highspy.Highs`` that never writes to stdout.

    highspy registers its callback in ``__init__``, and HiGHS prints its banner on
    that registration unless output is already off, so output goes off first.
    """

    def enableCallbacks(self) -> None:
        self.setOptionValue("output_flag", False)
        super().enableCallbacks()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class ArrayModel:
    """The integer program in HiGHS's column-wise array form (two non-zeros a column)."""

    parties: tuple[str, ...]
    cost: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    index: IntArray
    value: FloatArray
    scale: int

    @property
    def num_col(self) -> int:
        return int(self.cost.size)

    @property
    def num_row(self) -> int:
        return int(self.row_lower.size)

    def activity(self, x: FloatArray) -> FloatArray:
        """Row activities A @ x (exact: integers below 2**53)."""
        rows = np.zeros(self.num_row)
        np.add.at(rows, self.index, self.value * np.repeat(x, 2))
        return rows

    def is_feasible(self, x: FloatArray) -> bool:
        return bool(np.all(self.activity(x) >= self.row_lower))

    def restricted(self, free: NDArray[np.bool_], x: FloatArray) -> ArrayModel:
        """The model over the ``free`` columns, the others fixed at their values in ``x``."""
        fixed_x = np.where(free, 0.0, x)
        pairs_index = self.index.reshape(-1, 2)[free].ravel()
        pairs_value = self.value.reshape(-1, 2)[free].ravel()
        return ArrayModel(
            parties=self.parties,
            cost=self.cost[free],
            col_upper=self.col_upper[free],
            row_lower=self.row_lower - self.activity(fixed_x),
            index=np.ascontiguousarray(pairs_index, dtype=np.int32),
            value=np.ascontiguousarray(pairs_value),
            scale=self.scale,
        )


@dataclass(frozen=True, slots=True)
class MipOutcome:
    """HiGHS's answer: incumbent (None if none), dual bound (scaled), proved optimal."""

    x: FloatArray | None
    dual_bound: float
    optimal: bool


def build_model(groups: Sequence[Group], residual: Mapping[str, int]) -> ArrayModel:
    """Arrays of the model above; rows are the participants that appear in ``groups``."""
    parties = tuple(sorted({g.debtor for g in groups} | {g.creditor for g in groups}))
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
        parties=parties,
        cost=amounts,
        col_upper=np.fromiter((len(g.members) for g in groups), dtype=np.float64, count=len(groups)),
        row_lower=np.array([-(residual[p] // scale) for p in parties], dtype=np.float64),
        index=index,
        value=value,
        scale=scale,
    )


def group_counts(groups: Sequence[Group], chosen: Collection[int]) -> FloatArray:
    """The model's point for a set of chosen payment indices: how many members of each group."""
    return np.array([sum(1 for i in g.members if i in chosen) for g in groups], dtype=np.float64)


def run_mip(
    model: ArrayModel,
    warm_start: FloatArray | None,
    time_limit: float,
    *,
    rel_gap: float = 1e-6,
    max_nodes: int | None = None,
    on_incumbent: Callable[[FloatArray], None] | None = None,
) -> MipOutcome:
    """Solve with HiGHS, optionally from a feasible warm start; LsmError if HiGHS errors.

    ``on_incumbent`` is called (from HiGHS's callback, in the solving thread) with
    each improving incumbent HiGHS finds, rounded to integers and clipped to the
    column bounds; the receiver must re-check feasibility before using it.

    ``threads`` is left at HiGHS's default on purpose: HiGHS keeps one scheduler
    per process and refuses to run (status kError) when a later solve asks for a
    different thread count, so pinning it here would break whenever another part
    of the gateway uses HiGHS differently. The MIP search is serial anyway.
    """
    highs = _QuietHighs()  # type: ignore[no-untyped-call]
    options: dict[str, float | int | bool] = {
        "output_flag": False,
        "time_limit": max(time_limit, 0.01),
        "mip_rel_gap": rel_gap,
        "mip_abs_gap": 0.999,  # integral objective: a gap below 1 is optimality
        "random_seed": 0,
    }
    if max_nodes is not None:
        options["mip_max_nodes"] = max_nodes
    for option, setting in options.items():
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
        np.arange(0, 2 * num_col + 1, 2, dtype=np.int32),
        model.index,
        model.value,
        np.full(num_col, int(highspy.HighsVarType.kInteger), dtype=np.int32),
    )
    if on_incumbent is not None:
        upper = model.col_upper

        def publish(event: highspy.HighsCallbackEvent) -> None:
            values = np.asarray(event.data_out.mip_solution, dtype=np.float64)[:num_col]
            on_incumbent(np.clip(np.rint(values), 0.0, upper))

        highs.cbMipImprovingSolution.subscribe(publish)
    if warm_start is not None:
        highs.setSolution(num_col, np.arange(num_col, dtype=np.int32), warm_start)
    if highs.run() == highspy.HighsStatus.kError:
        raise LsmError("HiGHS reported an error", status=str(highs.getModelStatus()))
    info = highs.getInfo()
    dual = float(info.mip_dual_bound)
    if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
        return MipOutcome(None, dual, False)
    incumbent = np.clip(np.rint(np.asarray(highs.getSolution().col_value)), 0.0, model.col_upper)
    optimal = highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return MipOutcome(incumbent, dual, optimal)
