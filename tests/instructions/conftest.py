"""Fixtures for the instructions tests: the conformance corpus and a participant directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from chain_gateway.instructions import StaticBicDirectory

#: The shared ISO 20022 conformance corpus, beside the repository (never shipped).
CONFORMANCE = Path(__file__).parents[2].parent / "shared" / "conformance" / "iso20022"

#: BICs of the test participants used by the builders in ``isobuild``.
TEST_BICS = ("BANKUS33XXX", "BANKGB22XXX", "SETLGB2LXXX", "BNPAFRPPXXX", "DEUTDEFFXXX")
#: Clearing-system member ids -> BICs (Fedwire / FedNow ABA numbers in the samples).
MEMBER_IDS = {
    "011104238": "FWBAUS33XXX",
    "021040078": "FWBCUS33XXX",
    "021307481": "FWBZUS33XXX",
    "231981435": "FWBYUS33XXX",
    "111111111": "FDNAUS33XXX",
    "333333333": "FDNCUS33XXX",
}


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample folder, or a skip that says why."""
    folder = CONFORMANCE / "samples"
    if not folder.is_dir():
        pytest.skip(f"ISO 20022 conformance corpus not found at {folder} (shared/ is not beside the repo)")
    return folder


@pytest.fixture(scope="session")
def directory() -> StaticBicDirectory:
    """Test participants plus the member ids above."""
    return StaticBicDirectory.of(TEST_BICS, MEMBER_IDS)
