"""Shared fixtures of the LSM tests: the Ubin ring (derived CSV and, when present, the workbook)."""
from __future__ import annotations

from pathlib import Path

import pytest

from chain_gateway.lsm.ubin import WORKBOOK_NAME, GridlockCase, load_ubin_ring_csv

DATA_DIR = Path(__file__).parent / "data"
WORKBOOK = Path("/work/shared/conformance/lsm") / WORKBOOK_NAME


@pytest.fixture(scope="session")
def ubin_ring() -> GridlockCase:
    return load_ubin_ring_csv(DATA_DIR / "ubin_ring_5000.csv", DATA_DIR / "ubin_ring_balances.csv")


@pytest.fixture(scope="session")
def ubin_workbook() -> Path:
    """The original workbook; tests that need it skip where /work/shared is absent."""
    pytest.importorskip("openpyxl")
    if not WORKBOOK.is_file():
        pytest.skip(f"Ubin workbook not present at {WORKBOOK}")
    return WORKBOOK
