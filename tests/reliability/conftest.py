"""The reliability suites' figures (payments under load, kills survived, lost, paid twice, ...)
are repeated in pytest's terminal summary, so `make test-slow` shows them without `-s`."""
from __future__ import annotations

from typing import Any

from tests.reliability.harness import write_figures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_figures(terminalreporter)
