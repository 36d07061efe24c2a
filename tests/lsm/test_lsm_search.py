"""The primal heuristics stay feasible and never lose value."""
from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_gateway.lsm import QueuedPayment, brute_force, solve_greedy
from chain_gateway.lsm.heuristics import remove_until_covered
from chain_gateway.lsm.milp import build_model
from chain_gateway.lsm.model import Account
from chain_gateway.lsm.reduce import group_interchangeable
from chain_gateway.lsm.search import augment, exchange, improve
from chain_gateway.lsm.ubin import random_gridlock

BANKS = ["A", "B", "C", "D"]


@st.composite
def queues(draw: st.DrawFn) -> tuple[list[QueuedPayment], dict[Account, int]]:
    size = draw(st.integers(min_value=1, max_value=12))
    queue = []
    for n in range(size):
        debtor, creditor = draw(st.lists(st.sampled_from(BANKS), min_size=2, max_size=2, unique=True))
        queue.append(QueuedPayment(f"k{n}", debtor, creditor, "USD", draw(st.sampled_from([10, 20, 30, 45])), seq=n))
    balances = {(bank, "USD"): draw(st.integers(0, 40)) for bank in BANKS}
    return queue, balances


@settings(max_examples=40, deadline=None)
@given(queues())
def test_augment_and_improve_stay_feasible_and_below_the_optimum(
    case: tuple[list[QueuedPayment], dict[Account, int]],
) -> None:
    queue, balances = case
    groups = group_interchangeable(queue, range(len(queue)))
    model = build_model(groups, {bank: balances[(bank, "USD")] for bank in BANKS})
    start = np.zeros(model.num_col)
    built = augment(model, start, time.perf_counter() + 1.0)
    assert model.is_feasible(built) and np.all(built <= model.col_upper)
    better = improve(model, built, time.perf_counter() + 1.0, max_rounds=3)
    assert model.is_feasible(better)
    optimum = brute_force(queue, balances).value
    value = float(model.cost @ better) * model.scale
    assert float(model.cost @ built) * model.scale <= value <= optimum


def test_augment_finds_cycles_in_a_random_gridlock_where_greedy_removal_finds_none() -> None:
    case = random_gridlock(n_banks=16, n_payments=80, seed=2)
    groups = group_interchangeable(case.payments, range(len(case.payments)))
    parties = {g.debtor for g in groups} | {g.creditor for g in groups}
    model = build_model(groups, {bank: case.balances[(bank, "SGD")] for bank in parties})
    built = augment(model, np.zeros(model.num_col), time.perf_counter() + 2.0)
    assert model.is_feasible(built) and float(model.cost @ built) > 0
    assert solve_greedy(case.payments, case.balances).value == 0


@settings(max_examples=60, deadline=None)
@given(queues(), st.data())
def test_exchange_never_breaks_coverage_or_loses_value(
    case: tuple[list[QueuedPayment], dict[Account, int]], data: st.DataObject
) -> None:
    """From any feasible start (here: a random subset repaired by the greedy removal),
    exchange returns a feasible point worth at least as much and at most the optimum."""
    queue, balances = case
    groups = group_interchangeable(queue, range(len(queue)))
    model = build_model(groups, {bank: balances[(bank, "USD")] for bank in BANKS})
    picked = data.draw(st.sets(st.sampled_from(range(len(queue)))))
    kept = remove_until_covered(queue, balances, picked)
    start = np.array([sum(1 for i in g.members if i in kept) for g in groups], dtype=np.float64)
    assert model.is_feasible(start)
    after = exchange(model, start, time.perf_counter() + 5.0)
    assert model.is_feasible(after)
    assert np.all(after >= 0) and np.all(after <= model.col_upper)
    assert np.array_equal(after, np.rint(after))
    optimum = brute_force(queue, balances).value
    assert float(model.cost @ start) <= float(model.cost @ after) <= optimum / model.scale


def test_exchange_is_deterministic_and_improves_a_gridlock_after_augment() -> None:
    case = random_gridlock(n_banks=16, n_payments=120, seed=3)
    groups = group_interchangeable(case.payments, range(len(case.payments)))
    parties = {g.debtor for g in groups} | {g.creditor for g in groups}
    model = build_model(groups, {bank: case.balances[(bank, "SGD")] for bank in parties})
    built = augment(model, np.zeros(model.num_col), time.perf_counter() + 5.0)
    first = exchange(model, built, time.perf_counter() + 30.0)
    second = exchange(model, built, time.perf_counter() + 30.0)
    assert np.array_equal(first, second)
    assert model.is_feasible(first)
    assert float(model.cost @ first) > float(model.cost @ built)


def test_exchange_drops_a_payment_to_close_a_longer_cycle() -> None:
    """Nobody holds anything; A<->B (10 each way) is selected. The 3-cycle A->B->C->A
    settles more, but B cannot pay both B->A and B->C: the move adds B->C and C->A
    and drops B->A, which no pure addition (augment) can do."""
    queue = [
        QueuedPayment("ab", "A", "B", "USD", 10, seq=1),
        QueuedPayment("ba", "B", "A", "USD", 10, seq=2),
        QueuedPayment("bc", "B", "C", "USD", 10, seq=3),
        QueuedPayment("ca", "C", "A", "USD", 10, seq=4),
    ]
    groups = group_interchangeable(queue, range(len(queue)))
    model = build_model(groups, {"A": 0, "B": 0, "C": 0})
    start = np.array([1.0 if (g.debtor, g.creditor) in {("A", "B"), ("B", "A")} else 0.0 for g in groups])
    assert model.is_feasible(start)
    assert np.array_equal(augment(model, start, time.perf_counter() + 5.0), start)
    after = exchange(model, start, time.perf_counter() + 5.0)
    assert model.is_feasible(after)
    assert float(model.cost @ after) * model.scale == brute_force(queue, {}).value == 30
