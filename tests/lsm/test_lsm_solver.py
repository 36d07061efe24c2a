"""Gridlock resolution: MILP against brute force, greedy baseline, presolve soundness."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_gateway.lsm import (
    LsmError,
    Proposal,
    QueuedPayment,
    brute_force,
    is_feasible,
    selection_value,
    solve,
    solve_greedy,
    solve_milp,
)
from chain_gateway.lsm import solver as solver_module
from chain_gateway.lsm.milp import build_model, run_mip
from chain_gateway.lsm.model import Account
from chain_gateway.lsm.reduce import group_interchangeable, reduce_currency
from chain_gateway.lsm.ubin import random_gridlock

USD, EUR = "USD", "EUR"


def pay(key: str, debtor: str, creditor: str, amount: int, currency: str = USD, **kw: int) -> QueuedPayment:
    return QueuedPayment(key, debtor, creditor, currency, amount, **kw)


CYCLE = [pay("ab", "A", "B", 100), pay("bc", "B", "C", 100), pay("ca", "C", "A", 100)]


def assert_consistent(proposal: Proposal, queue: list[QueuedPayment], balances: dict[Account, int]) -> None:
    assert is_feasible(balances, queue, proposal.selected)
    assert proposal.value == selection_value(queue, proposal.selected)
    if proposal.bound is not None:
        assert proposal.bound >= proposal.value


@pytest.mark.parametrize("method", [solve_milp, solve_greedy, solve, brute_force])
def test_solve_cycle_with_zero_balances_settles_all_three(method: object) -> None:
    proposal = method(CYCLE, {})  # type: ignore[operator]
    assert set(proposal.selected) == {"ab", "bc", "ca"}
    assert proposal.value == 300
    assert proposal.optimal


def test_solve_milp_cycle_plus_uncoverable_payment_leaves_it_queued() -> None:
    queue = [*CYCLE, pay("ad", "A", "D", 50)]
    proposal = solve_milp(queue, {})
    assert set(proposal.selected) == {"ab", "bc", "ca"}
    assert (proposal.value, proposal.bound, proposal.optimal) == (300, 300, True)


def test_solve_greedy_unravels_the_cycle_plus_uncoverable_payment() -> None:
    """The TARGET2-style rule drops A's *largest* payment first, which breaks the cycle:
    why the greedy is only a baseline and a fallback."""
    queue = [*CYCLE, pay("ad", "A", "D", 50)]
    proposal = solve_greedy(queue, {})
    assert proposal.selected == ()
    assert solve(queue, {}).value == 300


def test_solve_milp_multi_currency_gridlocks_are_independent() -> None:
    queue = [
        *CYCLE,
        pay("eur-ab", "A", "B", 70, EUR),
        pay("eur-bc", "B", "C", 70, EUR),
        pay("eur-ca", "C", "A", 80, EUR),  # C's 10 EUR cover the difference
        pay("eur-big", "C", "B", 500, EUR),  # C holds 10 EUR and can never receive 490 more
    ]
    balances = {("C", EUR): 10, ("A", USD): 0}
    proposal = solve_milp(queue, balances)
    assert set(proposal.selected) == {"ab", "bc", "ca", "eur-ab", "eur-bc", "eur-ca"}
    assert proposal.value == 300 + 220
    assert proposal.optimal
    assert_consistent(proposal, queue, balances)


def test_solve_milp_settles_interchangeable_payments_in_queue_order() -> None:
    queue = [
        pay("late", "A", "B", 100, seq=3),
        pay("early", "A", "B", 100, seq=1),
        pay("urgent", "A", "B", 100, seq=9, priority=2),
        pay("other", "A", "C", 100, seq=2),
    ]
    proposal = solve_milp(queue, {("A", USD): 250})
    assert proposal.value == 200
    # The A->B group is one integer variable; whichever of A's two payments settle,
    # within the group the urgent one goes before FIFO order.
    assert "urgent" in proposal.selected
    assert proposal.selected[0] == "urgent"


def test_reduce_currency_fixes_covered_and_uncoverable_payments() -> None:
    queue = [
        pay("rich", "R", "A", 500),  # R can pay everything it owes: in every optimum
        pay("ab", "A", "B", 400),
        pay("ba", "B", "A", 300),
        pay("huge", "B", "C", 10_000),  # B can never hold 10,000
    ]
    reduction = reduce_currency(queue, {("R", USD): 500}, range(len(queue)), USD)
    assert [queue[i].key for i in reduction.fixed_in] == ["rich", "ab", "ba"]
    assert [queue[i].key for i in reduction.fixed_out] == ["huge"]
    assert reduction.free == ()
    proposal = solve_milp(queue, {("R", USD): 500})
    assert (proposal.value, proposal.method, proposal.optimal) == (1_200, "presolve", True)


def test_group_interchangeable_merges_equal_payments() -> None:
    queue = [pay(f"p{i}", "A", "B", 10, seq=10 - i) for i in range(5)] + [pay("q", "A", "B", 11)]
    groups = group_interchangeable(queue, range(len(queue)))
    assert [(g.amount, len(g.members)) for g in groups] == [(10, 5), (11, 1)]
    assert [queue[i].seq for i in groups[0].members] == [6, 7, 8, 9, 10]


# --- against brute force --------------------------------------------------------------
PARTIES = ["A", "B", "C", "D", "E"]


@st.composite
def gridlocks(draw: st.DrawFn) -> tuple[list[QueuedPayment], dict[Account, int]]:
    """Up to 15 payments among 5 banks in 1-2 currencies; amounts from a small set so
    equal payments (grouping) and ties both occur; balances small enough to bind."""
    size = draw(st.integers(min_value=1, max_value=15))
    queue = []
    for n in range(size):
        debtor, creditor = draw(st.lists(st.sampled_from(PARTIES), min_size=2, max_size=2, unique=True))
        queue.append(
            QueuedPayment(
                key=f"k{n}",
                debtor=debtor,
                creditor=creditor,
                currency=draw(st.sampled_from([USD, USD, EUR])),
                amount=draw(st.sampled_from([5, 10, 10, 25, 40, 55, 70, 100])),
                priority=draw(st.integers(0, 1)),
                seq=n,
            )
        )
    balances = {
        (party, currency): draw(st.integers(min_value=0, max_value=60))
        for party in PARTIES
        for currency in (USD, EUR)
    }
    return queue, balances


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gridlocks())
def test_solve_milp_value_equals_brute_force_optimum(
    case: tuple[list[QueuedPayment], dict[Account, int]],
) -> None:
    queue, balances = case
    best = brute_force(queue, balances)
    milp = solve_milp(queue, balances, time_limit=5.0)
    greedy = solve_greedy(queue, balances)
    combined = solve(queue, balances, time_limit=5.0)
    for proposal in (best, milp, greedy, combined):
        assert_consistent(proposal, queue, balances)
    assert milp.value == best.value  # subsets may differ on ties, values may not
    assert milp.optimal and milp.bound == best.value and milp.gap == 0.0
    assert combined.value == best.value
    assert greedy.value <= best.value


def naive_greedy(queue: list[QueuedPayment], balances: dict[Account, int]) -> set[str]:
    """The greedy's specification, recomputed from scratch at every step."""
    kept = list(queue)
    while True:
        nets: dict[Account, int] = {}
        for p in kept:
            nets[p.debit_account] = nets.get(p.debit_account, balances.get(p.debit_account, 0)) - p.amount
            nets[p.credit_account] = nets.get(p.credit_account, balances.get(p.credit_account, 0)) + p.amount
        short = [(net, account) for account, net in nets.items() if net < 0]
        if not short:
            return {str(p.key) for p in kept}
        _, account = min(short)
        mine = [p for p in kept if p.debit_account == account]
        drop = min(mine, key=lambda p: (-p.amount, p.priority, -p.seq, -queue.index(p)))
        kept.remove(drop)


@settings(max_examples=50, deadline=None)
@given(gridlocks())
def test_solve_greedy_matches_its_specification(
    case: tuple[list[QueuedPayment], dict[Account, int]],
) -> None:
    queue, balances = case
    assert set(solve_greedy(queue, balances).selected) == naive_greedy(queue, balances)


# --- limits, fallbacks, speed ---------------------------------------------------------
def test_brute_force_refuses_large_queues() -> None:
    queue = [pay(f"p{i}", "A", "B", 1) for i in range(21)]
    with pytest.raises(LsmError):
        brute_force(queue, {})


def test_solve_greedy_rejects_an_unknown_drop_order() -> None:
    with pytest.raises(LsmError):
        solve_greedy(CYCLE, {}, drop="smallest")  # type: ignore[arg-type]


def test_solve_milp_rejects_non_positive_time_limit() -> None:
    with pytest.raises(LsmError):
        solve_milp(CYCLE, {}, time_limit=0)


def test_solve_milp_falls_back_to_heuristics_when_highs_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise LsmError("HiGHS reported an error")

    monkeypatch.setattr(solver_module, "run_mip", broken)
    queue = [*CYCLE, pay("ad", "A", "D", 50)]
    proposal = solve_milp(queue, {})
    assert proposal.method == "heuristic-fallback"
    assert proposal.value == 300  # the cycle augmentation still finds the cycle
    assert not proposal.optimal
    assert_consistent(proposal, queue, {})


def test_build_model_for_thousands_of_payments_is_fast() -> None:
    case = random_gridlock(n_banks=64, n_payments=500, seed=7)
    payments = list(case.payments) * 10
    payments = [
        QueuedPayment(f"{n}", p.debtor, p.creditor, p.currency, p.amount + n, seq=n) for n, p in enumerate(payments)
    ]
    started = time.perf_counter()
    reduction = reduce_currency(payments, case.balances, range(len(payments)), "SGD")
    model = build_model(group_interchangeable(payments, reduction.free), reduction.residual)
    elapsed = time.perf_counter() - started
    assert model.num_col == len(reduction.free) > 4_000
    assert elapsed < 1.0, f"model build took {elapsed:.2f}s"


def test_solve_milp_respects_its_time_limit_on_a_hard_gridlock() -> None:
    case = random_gridlock(n_banks=64, n_payments=500, seed=1)
    proposal = solve_milp(case.payments, case.balances, time_limit=1.0)
    assert proposal.solver_seconds < 2.5
    assert_consistent(proposal, list(case.payments), case.balances)
    assert proposal.value > 0 and proposal.bound is not None and proposal.gap is not None


def test_solve_milp_warm_starts_highs_from_a_feasible_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """The heuristic incumbent handed to HiGHS (setSolution) satisfies every row, so
    HiGHS accepts it as its first incumbent; its bound never sits below our value."""
    seen: list[tuple[object, object]] = []
    real = run_mip

    def recording(model: object, warm_start: object, *args: object, **kwargs: object) -> object:
        seen.append((model, warm_start))
        return real(model, warm_start, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(solver_module, "run_mip", recording)
    case = random_gridlock(n_banks=16, n_payments=120, seed=5)
    proposal = solve_milp(case.payments, case.balances, time_limit=2.0)
    assert seen, "HiGHS was not called"
    for model, warm_start in seen:
        assert warm_start is not None
        assert model.is_feasible(warm_start)  # type: ignore[attr-defined]
    assert_consistent(proposal, list(case.payments), case.balances)
    assert proposal.bound is not None and proposal.bound >= proposal.value > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=20, max_value=60))
def test_solve_milp_proposals_on_random_gridlocks_are_feasible_and_bounded(seed: int, size: int) -> None:
    """Whatever mix of construction, exchanges, HiGHS and LNS produced it, the proposal
    settles, its value is what it claims and the bound is at least the value."""
    case = random_gridlock(n_banks=8, n_payments=size, seed=seed)
    proposal = solve_milp(case.payments, case.balances, time_limit=0.5)
    assert_consistent(proposal, list(case.payments), case.balances)
    assert proposal.gap is not None and 0.0 <= proposal.gap <= 1.0
