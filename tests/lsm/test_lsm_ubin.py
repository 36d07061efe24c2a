"""Project Ubin's 4-bank ring (workbook and derived fixture) and random gridlocks."""
from __future__ import annotations

from pathlib import Path

from chain_gateway.lsm import apply_selection, is_feasible, release_in_order, solve_greedy, solve_milp
from chain_gateway.lsm.ubin import (
    RING_BANKS,
    GridlockCase,
    load_ubin_elimination_counts,
    load_ubin_ring_xlsx,
    random_gridlock,
)

RING_VALUE = 31_132_000  # SOURCES.md: 4500 payments settle, 500 are eliminated
RING_FINAL = (4_134_000, 1_000, 1_000, 0)


def test_ubin_ring_fixture_has_the_documented_shape(ubin_ring: GridlockCase) -> None:
    assert len(ubin_ring.payments) == 5000
    assert sum(p.amount for p in ubin_ring.payments) == 32_510_000
    assert [ubin_ring.balances[(bank, "SGD")] for bank in RING_BANKS] == [800_000, 800_000, 1_201_000, 1_335_000]
    assert ubin_ring.payments[0].key == "R20160216C35001" and ubin_ring.payments[-1].key == "R20160216C40000"


def test_ubin_ring_fixture_equals_the_workbook(ubin_ring: GridlockCase, ubin_workbook: Path) -> None:
    assert load_ubin_ring_xlsx(ubin_workbook) == ubin_ring


def test_solve_milp_ubin_ring_reaches_the_workbook_optimum(ubin_ring: GridlockCase) -> None:
    proposal = solve_milp(ubin_ring.payments, ubin_ring.balances)
    assert proposal.value == RING_VALUE
    assert len(proposal.selected) == 4500
    assert proposal.optimal and proposal.bound == RING_VALUE and proposal.gap == 0.0
    assert is_feasible(ubin_ring.balances, ubin_ring.payments, proposal.selected)
    final = apply_selection(ubin_ring.balances, ubin_ring.payments, proposal.selected)
    assert tuple(final[(bank, "SGD")] for bank in RING_BANKS) == RING_FINAL


def test_solve_milp_ubin_ring_eliminates_as_many_per_bank_as_the_workbook(
    ubin_ring: GridlockCase, ubin_workbook: Path
) -> None:
    proposal = solve_milp(ubin_ring.payments, ubin_ring.balances)
    settled = set(proposal.selected)
    ours = {bank: 0 for bank in RING_BANKS}
    for payment in ubin_ring.payments:
        if payment.key not in settled:
            ours[payment.debtor] += 1
    assert ours == load_ubin_elimination_counts(ubin_workbook) == {
        "ZYECHKH0": 0,
        "ZYETSGS0": 227,
        "ZYEUSGS0": 168,
        "ZYFISGS0": 105,
    }


def test_solve_greedy_ubin_ring_is_feasible_but_far_from_optimal(ubin_ring: GridlockCase) -> None:
    proposal = solve_greedy(ubin_ring.payments, ubin_ring.balances)
    assert is_feasible(ubin_ring.balances, ubin_ring.payments, proposal.selected)
    assert 0 < proposal.value < RING_VALUE


def test_solve_greedy_dropping_latest_first_happens_to_solve_the_ring(ubin_ring: GridlockCase) -> None:
    """The workbook's blocks queue the big payment first, so dropping the latest small
    ones is exactly the optimal elimination; on random gridlocks it helps no more."""
    proposal = solve_greedy(ubin_ring.payments, ubin_ring.balances, drop="latest")
    assert proposal.value == RING_VALUE and proposal.method == "greedy-latest"


def test_random_gridlock_is_deterministic_and_truly_gridlocked() -> None:
    case = random_gridlock(n_banks=16, n_payments=120, seed=3)
    assert case == random_gridlock(n_banks=16, n_payments=120, seed=3)
    assert case != random_gridlock(n_banks=16, n_payments=120, seed=4)
    assert len(case.payments) == 120
    assert all(case.balances[p.debit_account] < p.amount for p in case.payments)
    assert all(1 <= p.amount <= 1_000_000 for p in case.payments)
    assert min(case.balances.values()) >= 0
    assert release_in_order(case.payments, dict(case.balances), until_stable=True) == []
    assert case.notes["arrivals"] == case.notes["settled_one_by_one"] + 120


def test_random_gridlock_conserves_money() -> None:
    small = random_gridlock(n_banks=8, n_payments=1, seed=11)
    bigger = random_gridlock(n_banks=8, n_payments=40, seed=11)
    # Same seed, same opening balances: settling moves money, never creates it.
    assert sum(small.balances.values()) == sum(bigger.balances.values())


def test_solve_milp_resolves_part_of_a_random_gridlock() -> None:
    case = random_gridlock(n_banks=16, n_payments=60, seed=5)
    proposal = solve_milp(case.payments, case.balances, time_limit=5.0)
    assert is_feasible(case.balances, case.payments, proposal.selected)
    assert proposal.value > 0
    assert proposal.value >= solve_greedy(case.payments, case.balances).value
