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
    core = {"DuplicateUetr": "DUPL", "InvalidSignature": "FF01", "OrderExpired": "AB01", "NotActive": "AC06",
            "InsufficientBalance": "AM04", "LimitExceeded": "AM02", "InvalidOrder": "AM12"}
    fx = {"FxQuoteExpired": "AB01", "FxCapacityExceeded": "AM02", "FxDebitAboveMax": "AM09"}
    assert len(ERROR_REASON_CODES) == len(core) + len(fx)
    assert set(core) <= set(from_abi)
    for name, code in {**core, **fx}.items():
        assert reason_code_for_error(name) == code
        if name in from_abi:  # the FX errors exist once the ledger has PvP settlement
            assert reason_code_for_selector(from_abi[name]) == code, name


def test_reason_codes_unknown_selector():
    assert reason_code_for_selector(b"\xde\xad\xbe\xef") == UNKNOWN_REASON_CODE
    assert reason_code_for_error("Nope") == UNKNOWN_REASON_CODE


def test_reason_codes_consumption(deployment):
    from_abi = error_selectors_from_abi(deployment.abi["SettlementLedger"])
    for name in ("InsufficientBalance", "LimitExceeded", "InvalidOrder", "NotActive"):
        assert consumes_uetr(from_abi[name])
    for name in NON_CONSUMING_ERRORS:
        assert not consumes_uetr(from_abi[name])
