"""Fixtures of the security suite.

* ``hostile``: a throwaway gateway of its own (managed anvil, SQLite, HTTP), so the attacks,
  the suspended bank and the revoked keys disturb no other suite; with ``ledger_state`` to
  prove an attack moved nothing (balances and supplies read on-chain) and wrote nothing
  (intake, outbox and hold rows counted).
* The contract fixtures of tests/contracts (eth-tester chain, reverts, call_as, ...).
* A terminal-summary line with the hostile-input figures: "N hostile cases, N got a 4xx".
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from chain_gateway.access import ParticipantProfile
from chain_gateway.outbox.models import OutboxEntry
from chain_gateway.payments import PaymentIntake
from tests.contracts.conftest import call_as, contracts, error_selector, events, reverts, stranger  # noqa: F401
from tests.live import Live, start_live
from tests.reliability.harness import write_figures

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")


@dataclass
class HostileTally:
    cases: list[tuple[str, int]] = field(default_factory=list)

    def add(self, name: str, status: int) -> None:
        self.cases.append((name, status))

    @property
    def four_xx(self) -> int:
        return sum(1 for _, s in self.cases if 400 <= s < 500)


TALLY = HostileTally()


@pytest.fixture(scope="session")
def tally() -> HostileTally:
    return TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_figures(terminalreporter)
    if TALLY.cases:
        others = [(n, s) for n, s in TALLY.cases if not 400 <= s < 500]
        terminalreporter.write_line(f"{len(TALLY.cases)} hostile cases, {TALLY.four_xx} got a 4xx"
                                    + (f" (not 4xx: {others[:10]})" if others else ""))


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A gateway of this suite's own."""
    with start_live(tmp_path_factory.mktemp("hostile")) as live:
        yield live


@dataclass(frozen=True)
class LedgerState:
    balances: dict[tuple[str, str], int]
    supplies: dict[str, int]
    rows: dict[str, int]


def ledger_state(live: Live) -> LedgerState:
    """Every known participant's balance and every supply (on-chain), and the gateway's
    intake and outbox row counts, once the submitter is idle (nothing of ours in flight)."""
    gw = live.gateway
    gw.submitter.wait_idle(30)
    client = gw.require_client()
    with gw.require_sessions()() as session:
        addresses = list(session.scalars(select(ParticipantProfile.address)))
        rows = {"payment_intake": int(session.scalar(select(func.count()).select_from(PaymentIntake)) or 0),
                "outbox": int(session.scalar(select(func.count()).select_from(OutboxEntry)) or 0)}
    balances = {(a, c): client.balance_of(a, c) for a in addresses for c in CURRENCIES}
    return LedgerState(balances, {c: client.total_supply(c) for c in CURRENCIES}, rows)
