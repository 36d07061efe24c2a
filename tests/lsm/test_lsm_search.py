"""The primal heuristics stay feasible and never lose value."""
from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_gateway.lsm import QueuedPayment, brute_force, solve_greedy
from chain_gateway.lsm.milp import build_model
from chain_gateway.lsm.model import Account
from chain_gateway.lsm.reduce import group_interchangeable
from chain_gateway.lsm.search import augment, improve
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
