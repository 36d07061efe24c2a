"""Payment instructions: the canonical model and the channels that produce it.

Every payment, whether a JSON body or an ISO 20022 pacs.008 / pacs.009, becomes one
validated, frozen ``PaymentInstruction`` whose ``instruction_hash()`` the debtor bank
signs. This package is pure: no chain, no database, no HTTP. It talks to the participant
registry only through the ``BicDirectory`` protocol, and raises only ``GatewayError``s.

Modules: ``currency`` (ISO 4217, exact minor units), ``bic`` (ISO 9362), ``codec``
(bytes3 / bytes11 / bytes16 for the chain), ``uetr``, ``directory``, ``model``,
``request`` (JSON API body), ``iso20022`` (XML in and out; see its docstring).
"""
from __future__ import annotations

from .bic import is_valid_bic, normalise_bic
from .codec import (
    bic_to_bytes11,
    bytes2_to_country,
    bytes3_to_currency,
    bytes11_to_bic,
    bytes16_to_uetr,
    country_to_bytes2,
    currency_to_bytes3,
    uetr_to_bytes16,
)
from .currency import check_amount, currency_exponent, format_amount, from_minor, to_minor, validate_currency
from .directory import BicDirectory, StaticBicDirectory, require_registered
from .iso20022 import (
    CAMT053_VERSION,
    PACS002_VERSION,
    SUPPORTED_PAYMENT_MESSAGES,
    ParsedMessage,
    ParsedTransaction,
    RenderError,
    Statement,
    StatementEntry,
    StatusReport,
    TransactionStatus,
    parse_payment_message,
    read_iso_message,
    render_camt053,
    render_pacs002,
    status_report_for,
    statuses_for,
)
from .model import FxLeg, Party, PaymentInstruction
from .request import PaymentRequest, instruction_from_request, parse_payment_request
from .uetr import new_uetr, parse_uetr

__all__ = [
    "CAMT053_VERSION",
    "PACS002_VERSION",
    "SUPPORTED_PAYMENT_MESSAGES",
    "BicDirectory",
    "FxLeg",
    "ParsedMessage",
    "ParsedTransaction",
    "Party",
    "PaymentInstruction",
    "PaymentRequest",
    "RenderError",
    "Statement",
    "StatementEntry",
    "StaticBicDirectory",
    "StatusReport",
    "TransactionStatus",
    "bic_to_bytes11",
    "bytes2_to_country",
    "bytes3_to_currency",
    "bytes11_to_bic",
    "bytes16_to_uetr",
    "check_amount",
    "country_to_bytes2",
    "currency_exponent",
    "currency_to_bytes3",
    "format_amount",
    "from_minor",
    "instruction_from_request",
    "is_valid_bic",
    "new_uetr",
    "normalise_bic",
    "parse_payment_message",
    "parse_payment_request",
    "parse_uetr",
    "read_iso_message",
    "render_camt053",
    "render_pacs002",
    "require_registered",
    "status_report_for",
    "statuses_for",
    "to_minor",
    "uetr_to_bytes16",
    "validate_currency",
]
