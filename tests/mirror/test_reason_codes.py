"""The error -> ISO 20022 reason code table agrees with the compiled ledger."""
from __future__ import annotations

from chain_gateway.reason_codes import (
    ERROR_REASON_CODES,
    NON_CONSUMING_ERRORS,
    UNKNOWN_REASON_CODE,
    consumes_uetr,
    error_selectors_from_abi,
    reason_code_for_error,
    reason_code_for_selector,
)


def test_reason_codes_selectors_match_the_abi(deployment):
    from_abi = error_selectors_from_abi(deployment.abi["SettlementLedger"])
    expected = {"DuplicateUetr": "DUPL", "InvalidSignature": "FF01", "OrderExpired": "AB01", "NotActive": "AC06",
                "InsufficientBalance": "AM04", "LimitExceeded": "AM02", "InvalidOrder": "AM12"}
    assert len(ERROR_REASON_CODES) == len(expected)
    for name, code in expected.items():
        assert reason_code_for_selector(from_abi[name]) == code, name
        assert reason_code_for_error(name) == code


def test_reason_codes_unknown_selector():
    assert reason_code_for_selector(b"\xde\xad\xbe\xef") == UNKNOWN_REASON_CODE
    assert reason_code_for_error("Nope") == UNKNOWN_REASON_CODE


def test_reason_codes_consumption(deployment):
    from_abi = error_selectors_from_abi(deployment.abi["SettlementLedger"])
    for name in ("InsufficientBalance", "LimitExceeded", "InvalidOrder", "NotActive"):
        assert consumes_uetr(from_abi[name])
    for name in NON_CONSUMING_ERRORS:
        assert not consumes_uetr(from_abi[name])
