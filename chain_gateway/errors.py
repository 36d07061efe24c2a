"""The gateway's one exception tree.

Every domain failure is a ``GatewayError`` carrying an ISO 20022 external status
reason code (where one fits) and a sentence a human understands. The API maps the
classes to HTTP statuses in one place (``api.errors``); domain code never knows about
HTTP.
"""
from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    reason_code: str | None = None
    title: str = "Gateway error"

    def __init__(self, detail: str, *, reason_code: str | None = None, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason_code is not None:
            self.reason_code = reason_code
        # Structured context (uetr, block_number, expected, actual, ...) for logs and clients.
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.detail


# --- bad input (400) -------------------------------------------------------------
class InvalidMessage(GatewayError):
    """Raised when a message is malformed, schema-invalid or of an unsupported version."""

    reason_code = "FF01"
    title = "Invalid message"


# --- business rejections (422) ------------------------------------------------------
class BusinessRejection(GatewayError):
    """Raised when a well-formed instruction breaks a business rule; nothing moves."""

    title = "Instruction rejected"


class InvalidAmount(BusinessRejection):
    """Raised when an amount is not positive, too precise for its currency, or too large."""

    reason_code = "AM12"
    title = "Invalid amount"


class UnknownCurrency(BusinessRejection):
    """Raised when a currency is not an ISO 4217 code or not enabled on the ledger."""

    reason_code = "AM03"
    title = "Unknown or disabled currency"


class InvalidAgent(BusinessRejection):
    """Raised when a BIC is malformed or names no registered participant."""

    reason_code = "RC01"
    title = "Invalid or unknown agent"


class ParticipantInactive(BusinessRejection):
    """Raised when the debtor or creditor participant is suspended."""

    reason_code = "AC06"
    title = "Participant suspended"


class LimitExceeded(BusinessRejection):
    """Raised when a payment would exceed a per-payment, daily or bilateral limit."""

    reason_code = "AM02"
    title = "Limit exceeded"


class InsufficientFunds(BusinessRejection):
    """Raised when the debtor lacks liquidity and did not ask to queue."""

    reason_code = "AM04"
    title = "Insufficient funds"


class ScreeningHit(BusinessRejection):
    """Raised when a payment matches the watch list."""

    reason_code = "RR04"
    title = "Regulatory screening hit"


class RiskRuleRejection(BusinessRejection):
    """Raised when a behaviour rule (velocity, duplicate, outlier) rejects a payment."""

    title = "Rejected by a risk rule"


class InvalidSignature(BusinessRejection):
    """Raised when a payment order's or quote's signature does not verify."""

    reason_code = "FF01"
    title = "Invalid signature"


class Expired(BusinessRejection):
    """Raised when an order's deadline or a quote's expiry has passed."""

    reason_code = "AB01"
    title = "Expired"


class DuplicateUetr(GatewayError):
    """Raised when a UETR is reused with a different instruction hash."""

    reason_code = "DUPL"
    title = "Duplicate UETR"


# --- access --------------------------------------------------------------------------
class NotFound(GatewayError):
    """Raised when a resource does not exist or is not the caller's to see."""

    title = "Not found"


class Forbidden(GatewayError):
    """Raised when the caller's key lacks the role the action needs."""

    reason_code = "AG01"
    title = "Forbidden"


class Conflict(GatewayError):
    """Raised when an action does not fit the resource's state (e.g. cancel a settled payment)."""

    title = "Conflict"


# --- system state (503) --------------------------------------------------------------
class Unavailable(GatewayError):
    """Raised when the ledger is paused or the chain cannot be reached."""

    title = "Service unavailable"


class LedgerPaused(Unavailable):
    """Raised when the operator has paused the ledger."""

    title = "Ledger paused"


class ChainUnavailable(Unavailable):
    """Raised when the chain node does not answer."""

    title = "Chain unavailable"


# --- internal consistency -------------------------------------------------------------
class ReorgDetected(GatewayError):
    """Raised when a checkpointed block hash no longer matches the chain."""

    title = "Chain reorganisation detected"


class ToolchainError(GatewayError):
    """Raised when the Solidity compiler or a chain binary cannot be found or fails."""

    title = "Toolchain error"


class ConfigurationError(GatewayError):
    """Raised when settings are missing or unsafe."""

    title = "Configuration error"
