"""Liquidity-saving mechanism: resolve gridlock in the on-chain payment queue.

The solver proposes the largest-value subset of queued payments that can settle
simultaneously; the contract re-checks the net positions and settles it atomically.
Modules: ``model`` (types, the feasibility rule), ``solver`` (MILP, greedy, brute
force), ``heuristics`` (greedy, FIFO-bypass release), ``reduce`` and ``milp``
(presolve and the HiGHS model), ``ubin`` (Project Ubin test cases).
"""
from chain_gateway.lsm.heuristics import release_in_order, solve_greedy
from chain_gateway.lsm.model import (
    Account,
    LsmError,
    PaymentKey,
    Proposal,
    QueuedPayment,
    apply_selection,
    is_feasible,
    net_positions,
    queue_order_key,
    selection_value,
)
from chain_gateway.lsm.solver import brute_force, solve, solve_milp

__all__ = [
    "Account",
    "LsmError",
    "PaymentKey",
    "Proposal",
    "QueuedPayment",
    "apply_selection",
    "brute_force",
    "is_feasible",
    "net_positions",
    "queue_order_key",
    "release_in_order",
    "selection_value",
    "solve",
    "solve_greedy",
    "solve_milp",
]
