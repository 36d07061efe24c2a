"""Gridlock resolution entry points: exact MILP, greedy baseline, best of both.

Currencies share no constraint, so each is presolved and solved on its own and the
results add up; the time limit is shared out so the whole call ends in time.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chain_gateway.lsm.heuristics import (
    ordered_keys,
    release_in_order,
    remove_until_covered,
    solve_greedy,
)
from chain_gateway.lsm.milp import ArrayModel, FloatArray, MipOutcome, build_model, group_counts, run_mip
from chain_gateway.lsm.model import (
    Account,
    LsmError,
    Proposal,
    QueuedPayment,
    relative_gap,
    validate_queue,
)
from chain_gateway.lsm.reduce import Group, Reduction, group_interchangeable, reduce_currency
from chain_gateway.lsm.search import SUB_MIP_SECONDS, augment, exchange, improve

__all__ = ["brute_force", "release_in_order", "solve", "solve_greedy", "solve_milp"]

log = logging.getLogger(__name__)

BRUTE_FORCE_LIMIT = 20
CONSTRUCT_SHARE = 0.3
"""Of a currency's time: at most this much for cycle augmentation and exchanges
(usually far less)."""
SEARCH_FIRST_COLUMNS = 60
"""Above this many columns HiGHS runs on the whole model in a worker thread while
the LNS searches in this one (``_search_with_background_mip``). On the benchmark
gridlocks (500-1,000 payments) HiGHS's incumbent comes late or never and its bound
is nearly final after the root, so the search needs the whole budget; before,
LNS then HiGHS in turn (40/60 of the time) reached 92-97% of the bound where
both at once reached 95.6-98.3% on the default benchmark (seeds 1-3, 10 s, a
loaded 2-core machine). Small models go straight to HiGHS, which usually proves
optimality at once."""
BRANCH_AND_BOUND_SHARE = 0.6
"""Of what is left when HiGHS starts: its full branch-and-bound (bound + incumbent),
warm-started from the heuristic incumbent; the rest goes to the neighbourhood search
around the best incumbent."""
LNS_RESTART_SECONDS = 2.0
"""On large models the neighbourhood search restarts with a fresh random stream
this often (a single stream tends to stall in one region of the gridlock)."""
STALL_GROWTH = 4.0
MAX_SUB_MIP_SECONDS = 0.5
"""After an LNS round without progress the next round's sub-MIPs may take
``STALL_GROWTH`` times longer (larger neighbourhoods), up to this."""
JOIN_GRACE_SECONDS = 1.0
"""How long past the deadline to wait for the background HiGHS run to honour its
own time limit before its result is given up (then the bound is the trivial one)."""


class _BackgroundMip:
    """HiGHS's branch-and-bound on the whole model in a worker thread.

    ``Highs.run`` releases the GIL and HiGHS gives each calling thread its own task
    scheduler, so the global solve (its root cuts give the proven bound) runs
    alongside the neighbourhood search's small sub-MIPs in the main thread instead
    of taking a slice of the time from them. On the 500- and 1,000-payment
    gridlocks the global run's bound is nearly final after its root (1-2 s) and it
    rarely improves the warm start, so the search keeps the whole budget.
    """

    def __init__(self, model: ArrayModel, warm_start: FloatArray | None, time_limit: float,
                 rel_gap: float) -> None:
        self.outcome: MipOutcome | None = None
        self.error: BaseException | None = None
        self.incumbent: FloatArray | None = None
        """HiGHS's latest improving incumbent, published from its callback."""
        self._thread = threading.Thread(
            target=self._run, args=(model, warm_start, time_limit, rel_gap), name="lsm-highs", daemon=True
        )
        self._thread.start()

    def _run(self, model: ArrayModel, warm_start: FloatArray | None, time_limit: float, rel_gap: float) -> None:
        try:
            self.outcome = run_mip(model, warm_start, time_limit, rel_gap=rel_gap, on_incumbent=self._publish)
        except Exception as error:  # noqa: BLE001 - reported by result(), in the caller's thread
            self.error = error

    def _publish(self, x: FloatArray) -> None:
        self.incumbent = x  # one reference swap: safe to read from the other thread

    def proved_optimal(self) -> bool:
        return not self._thread.is_alive() and self.outcome is not None and self.outcome.optimal

    def result(self, timeout: float) -> MipOutcome:
        """The outcome; LsmError if HiGHS failed or overran ``timeout``."""
        self._thread.join(max(timeout, 0.0))
        if self._thread.is_alive():
            raise LsmError("HiGHS overran its time limit")
        if self.error is not None:
            raise LsmError("HiGHS failed", error=repr(self.error)) from self.error
        if self.outcome is None:
            raise LsmError("HiGHS returned no outcome")
        return self.outcome


@dataclass(frozen=True, slots=True)
class _CurrencyResult:
    """What one currency contributes to a proposal (indices into the payment list)."""

    selected: frozenset[int]
    value: int
    bound: int
    optimal: bool
    method: str


def _solve_currency(
    payments: Sequence[QueuedPayment],
    reduction: Reduction,
    deadline: float,
    rel_gap: float,
) -> _CurrencyResult:
    """Best selection for one presolved currency, with a proven bound.

    Large models (over ``SEARCH_FIRST_COLUMNS`` columns): see
    ``_search_with_background_mip``. Small ones: greedy on the reduced instance ->
    cycle augmentation -> exchanges (``search.exchange``: value-increasing add/drop
    walks) -> HiGHS branch-and-bound, warm-started from that incumbent
    (``setSolution``), for most of what is left -> exchanges and LNS from the
    better incumbent until the deadline, unless HiGHS proved optimality. A HiGHS
    failure leaves the heuristic incumbent and a trivial bound. The final point is
    mapped back to payments (first members of each group in queue order) and
    re-checked in exact integers; a shortfall is repaired by the greedy removal loop.
    """
    fixed = frozenset(reduction.fixed_in)
    fixed_value = sum(payments[i].amount for i in fixed)
    if not reduction.free:
        return _CurrencyResult(fixed, fixed_value, fixed_value, True, "presolve")
    groups = group_interchangeable(payments, reduction.free)
    model = build_model(groups, reduction.residual)
    residual: dict[Account, int] = {
        (party, reduction.currency): amount for party, amount in reduction.residual.items()
    }
    greedy = remove_until_covered(payments, residual, reduction.free)
    x = group_counts(groups, greedy)
    start = time.perf_counter()
    if model.num_col > SEARCH_FIRST_COLUMNS:
        return _finish(payments, groups, model, residual, fixed, fixed_value,
                       *_search_with_background_mip(model, x, start, deadline, rel_gap))
    x = augment(model, x, start + CONSTRUCT_SHARE * (deadline - start))
    x = exchange(model, x, start + CONSTRUCT_SHARE * (deadline - start))

    method = "milp"
    outcome = MipOutcome(None, math.inf, False)
    try:
        budget = BRANCH_AND_BOUND_SHARE * (deadline - time.perf_counter())
        outcome = run_mip(model, x if model.is_feasible(x) else None, budget, rel_gap=rel_gap)
    except Exception:
        log.warning("HiGHS failed on the %s gridlock", reduction.currency, exc_info=True)
        method = "heuristic-fallback"
    if outcome.x is not None and float(model.cost @ outcome.x) >= float(model.cost @ x):
        x = exchange(model, outcome.x, deadline) if model.is_feasible(outcome.x) else outcome.x
    if not outcome.optimal and method == "milp":
        try:
            x = improve(model, x, deadline, seed=1)
        except Exception:
            log.warning("neighbourhood search failed on %s", reduction.currency, exc_info=True)

    return _finish(payments, groups, model, residual, fixed, fixed_value, x, outcome, method)


def _search_with_background_mip(
    model: ArrayModel, x: FloatArray, start: float, deadline: float, rel_gap: float
) -> tuple[FloatArray, MipOutcome, str]:
    """Large models: HiGHS on the whole model in a worker thread (``_BackgroundMip``)
    from the greedy point, while this thread runs cycle augmentation, exchanges and
    then the LNS (restarted every ``LNS_RESTART_SECONDS`` from the better of its own
    point and HiGHS's latest published incumbent, with larger neighbourhoods after a
    round without progress) until the deadline or until HiGHS proves optimality.
    HiGHS's final incumbent is taken if it is better; a HiGHS failure leaves the
    search's point and a trivial bound (``heuristic-fallback``)."""
    method = "milp"
    outcome = MipOutcome(None, math.inf, False)
    background = _BackgroundMip(model, x, max(deadline - time.perf_counter() - 0.05, 0.01), rel_gap)
    x = augment(model, x, start + CONSTRUCT_SHARE * (deadline - start))
    x = exchange(model, x, start + CONSTRUCT_SHARE * (deadline - start))
    seed = 0
    sub_mip_seconds = SUB_MIP_SECONDS
    while time.perf_counter() < deadline - 0.05 and not background.proved_optimal():
        published = background.incumbent
        if (
            published is not None
            and float(model.cost @ published) > float(model.cost @ x)
            and model.is_feasible(published)
        ):
            x = published  # HiGHS found better (its root heuristics): search around that
        before = float(model.cost @ x)
        try:
            x = improve(
                model, x, min(deadline, time.perf_counter() + LNS_RESTART_SECONDS),
                seed=seed, sub_mip_seconds=sub_mip_seconds,
            )
        except Exception:
            log.warning("neighbourhood search failed on a gridlock", exc_info=True)
            break
        seed += 1
        # Stalled: the incumbent is optimal for every neighbourhood of this size,
        # so the next round tries larger ones; any progress goes back to small ones.
        stalled = float(model.cost @ x) <= before + 0.5
        sub_mip_seconds = min(sub_mip_seconds * STALL_GROWTH, MAX_SUB_MIP_SECONDS) if stalled else SUB_MIP_SECONDS
    try:
        outcome = background.result(deadline - time.perf_counter() + JOIN_GRACE_SECONDS)
    except LsmError:
        log.warning("HiGHS failed on a gridlock", exc_info=True)
        method = "heuristic-fallback"
    if outcome.x is not None and model.is_feasible(outcome.x) and float(model.cost @ outcome.x) > float(model.cost @ x):
        x = outcome.x
    return x, outcome, method


def _finish(
    payments: Sequence[QueuedPayment],
    groups: Sequence[Group],
    model: ArrayModel,
    residual: Mapping[Account, int],
    fixed: frozenset[int],
    fixed_value: int,
    x: FloatArray,
    outcome: MipOutcome,
    method: str,
) -> _CurrencyResult:
    """Map the point back to payments, re-check it exactly, attach the bound."""
    chosen = {i for g, k in zip(groups, x.astype(np.int64).tolist()) for i in g.members[:k]}
    repaired = remove_until_covered(payments, residual, chosen)
    if repaired != chosen:
        log.warning("incumbent needed repair after rounding")
        chosen, method = repaired, method + "-repaired"
    value = sum(payments[i].amount for i in chosen)
    bound = sum(g.amount * len(g.members) for g in groups)
    if math.isfinite(outcome.dual_bound):
        bound = min(bound, math.floor(outcome.dual_bound + 1e-6) * model.scale)
    bound = max(bound, value)  # a float bound must never sit below a feasible value
    optimal = outcome.optimal and method == "milp"
    if optimal and bound - value < model.scale:
        bound = value
    return _CurrencyResult(
        selected=frozenset(chosen | fixed),
        value=value + fixed_value,
        bound=bound + fixed_value,
        optimal=optimal,
        method=method,
    )


def solve_milp(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    time_limit: float = 10.0,
    *,
    rel_gap: float = 1e-6,
) -> Proposal:
    """Largest-value simultaneously settleable subset, by a 0/1 (grouped integer) program.

    Each currency is presolved, then solved by HiGHS warm-started from a heuristic
    incumbent (cycle augmentation, exchanges, and on large queues neighbourhood
    search), then improved by exchanges and neighbourhood search if HiGHS did not
    prove optimality in its share of ``time_limit``. Returns the best incumbent with
    HiGHS's proven bound; where HiGHS fails, the heuristic incumbent stands
    (``method`` says so). ``optimal`` is True only if every currency was proved
    optimal within ``rel_gap``. Reproducible whenever the time limit does not bind
    (small or easy queues); otherwise how far the search got depends on the clock.
    """
    if not time_limit > 0:
        raise LsmError("time_limit must be positive", actual=time_limit)
    started = time.perf_counter()
    deadline = started + time_limit
    payments = list(payments)
    validate_queue(payments, balances)
    by_currency: dict[str, list[int]] = {}
    for index, payment in enumerate(payments):
        by_currency.setdefault(payment.currency, []).append(index)

    selected: set[int] = set()
    value = bound = 0
    optimal = True
    methods: set[str] = set()
    currencies = sorted(by_currency)
    for position, currency in enumerate(currencies):
        reduction = reduce_currency(payments, balances, by_currency[currency], currency)
        now = time.perf_counter()
        share_end = now + max(deadline - now, 0.0) / (len(currencies) - position)
        result = _solve_currency(payments, reduction, share_end, rel_gap)
        selected |= result.selected
        value += result.value
        bound += result.bound
        optimal = optimal and result.optimal
        methods.add(result.method)
    methods.discard("presolve")
    method = "+".join(sorted(methods)) or "presolve"
    return Proposal(
        selected=ordered_keys(payments, selected),
        value=value,
        bound=bound,
        method=method,
        solver_seconds=time.perf_counter() - started,
        gap=relative_gap(value, bound),
        optimal=optimal,
    )


def solve(
    payments: Sequence[QueuedPayment],
    balances: Mapping[Account, int],
    time_limit: float = 10.0,
) -> Proposal:
    """Best of the MILP and the greedy, carrying the MILP's bound either way.

    The MILP pipeline starts from the greedy already, so the greedy wins only in
    degenerate cases; keeping it here makes the fallback explicit and cheap.
    """
    started = time.perf_counter()
    greedy = solve_greedy(payments, balances)
    remaining = max(time_limit - (time.perf_counter() - started), 0.01)
    milp = solve_milp(payments, balances, remaining)
    best = milp if milp.value >= greedy.value else greedy
    return Proposal(
        selected=best.selected,
        value=best.value,
        bound=milp.bound,
        method=best.method,
        solver_seconds=time.perf_counter() - started,
        gap=relative_gap(best.value, milp.bound),
        optimal=milp.optimal or best.value == milp.bound,
    )


def brute_force(
    payments: Sequence[QueuedPayment], balances: Mapping[Account, int]
) -> Proposal:
    """Exact optimum by enumerating every subset (at most 20 payments).

    Walks the subsets in Gray-code order so each step flips one payment and updates
    two positions and a count of uncovered accounts: 2**20 steps stay near a second.
    Ties between equal-value subsets go to the first one met. The reference the
    tests hold the MILP to.
    """
    started = time.perf_counter()
    payments = list(payments)
    if len(payments) > BRUTE_FORCE_LIMIT:
        raise LsmError(
            "brute force is limited to a small queue",
            actual=len(payments),
            limit=BRUTE_FORCE_LIMIT,
        )
    validate_queue(payments, balances)
    accounts = sorted({p.debit_account for p in payments} | {p.credit_account for p in payments})
    slot = {account: n for n, account in enumerate(accounts)}
    nets = [balances.get(account, 0) for account in accounts]
    debit = [slot[p.debit_account] for p in payments]
    credit = [slot[p.credit_account] for p in payments]
    amount = [p.amount for p in payments]
    uncovered = 0
    chosen = [False] * len(payments)
    value = best_value = 0
    best_mask = mask = 0
    for step in range(1, 1 << len(payments)):
        flip = (step & -step).bit_length() - 1
        sign = -1 if chosen[flip] else 1
        chosen[flip] = not chosen[flip]
        mask ^= 1 << flip
        value += sign * amount[flip]
        for account, delta in ((debit[flip], -sign * amount[flip]), (credit[flip], sign * amount[flip])):
            before = nets[account]
            nets[account] = before + delta
            uncovered += (nets[account] < 0) - (before < 0)
        if uncovered == 0 and value > best_value:
            best_value, best_mask = value, mask
    keep = [i for i in range(len(payments)) if best_mask >> i & 1]
    return Proposal(
        selected=ordered_keys(payments, keep),
        value=best_value,
        bound=best_value,
        method="brute-force",
        solver_seconds=time.perf_counter() - started,
        gap=0.0,
        optimal=True,
    )
