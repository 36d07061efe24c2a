"""The one table from the ledger's custom errors to ISO 20022 external status reason codes.

``PaymentRejected(uetr, reason)`` carries the 4-byte selector of the custom error that
stopped the order; ``reason_code_for_selector`` turns it into the code a tracker, a pacs.002
or a problem+json shows. Selectors are computed from the error signatures in
``ISettlementLedger`` (``error_selectors_from_abi`` checks them against a compiled ABI).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils import function_signature_to_4byte_selector

# Custom error signature -> ISO 20022 ExternalStatusReason1Code.
ERROR_REASON_CODES: Mapping[str, str] = {
    "DuplicateUetr(bytes16)": "DUPL",  # duplicate payment
    "InvalidSignature()": "FF01",  # invalid file format / signature does not verify
    "OrderExpired(uint64)": "AB01",  # aborted: timeout
    "NotActive(address)": "AC06",  # blocked account
    "InsufficientBalance(address,bytes3,uint256,uint256)": "AM04",  # insufficient funds
    "LimitExceeded(address,bytes3,uint8,uint256,uint256)": "AM02",  # not allowed amount
    "InvalidOrder(bytes16)": "AM12",  # invalid amount (zero, too large, or debtor == creditor)
    "FxQuoteExpired(bytes32,uint64)": "AB01",  # aborted: the FX quote expired
    "FxCapacityExceeded(bytes32,uint256,uint256)": "AM02",  # not allowed amount: over the quote's capacity
    "FxDebitAboveMax(bytes16,uint256,uint256)": "AM09",  # wrong amount: the debit exceeds the debtor's maximum
}
UNKNOWN_REASON_CODE = "MS03"  # reason not specified (an error this table does not know)

# Rejections that leave the UETR untouched on-chain (status stays 0, or the earlier
# payment's): the ledger checks these before it consumes a UETR (SettlementLedger._process).
NON_CONSUMING_ERRORS = frozenset({"DuplicateUetr", "OrderExpired", "InvalidSignature"})


def _name(signature: str) -> str:
    return signature.split("(", 1)[0]


SELECTOR_TO_ERROR: Mapping[bytes, str] = {
    function_signature_to_4byte_selector(sig): _name(sig) for sig in ERROR_REASON_CODES
}
_SELECTOR_TO_CODE: Mapping[bytes, str] = {
    function_signature_to_4byte_selector(sig): code for sig, code in ERROR_REASON_CODES.items()
}
ERROR_TO_CODE: Mapping[str, str] = {_name(sig): code for sig, code in ERROR_REASON_CODES.items()}


def reason_code_for_selector(selector: bytes) -> str:
    """ISO 20022 reason code of a rejection's error selector (MS03 when unknown)."""
    return _SELECTOR_TO_CODE.get(bytes(selector)[:4], UNKNOWN_REASON_CODE)


def reason_code_for_error(name: str) -> str:
    """ISO 20022 reason code of a custom error by name (as ``TransactionFailed.error_name``)."""
    return ERROR_TO_CODE.get(name, UNKNOWN_REASON_CODE)


def error_name_for_selector(selector: bytes) -> str | None:
    return SELECTOR_TO_ERROR.get(bytes(selector)[:4])


def consumes_uetr(selector: bytes) -> bool:
    """Whether a rejection with this selector marks the UETR as used (ledger status 4)."""
    return error_name_for_selector(selector) not in NON_CONSUMING_ERRORS


def error_selectors_from_abi(abi: Iterable[Mapping[str, Any]]) -> dict[str, bytes]:
    """Custom error name -> selector, from a compiled ABI (to check the table above)."""
    out: dict[str, bytes] = {}
    for item in abi:
        if item.get("type") == "error":
            types = ",".join(str(i["type"]) for i in item["inputs"])
            out[str(item["name"])] = function_signature_to_4byte_selector(f"{item['name']}({types})")
    return out
