"""ISO 20022 facade: the one import the API needs for XML in and out.

The work is split by concern: ``xmlsafe`` (hardened parsing), ``schemas`` (shipped XSDs),
``isoread`` (locate header and document, cross-check, validate), ``pacs`` (pacs.008 /
pacs.009 -> instructions), ``pacs002`` and ``camt053`` (rendering).
"""
from __future__ import annotations

from .camt053 import CAMT053_VERSION, Statement, StatementEntry, render_camt053
from .isoread import AppHeader, IsoMessage, read_iso_message
from .pacs import SUPPORTED_PAYMENT_MESSAGES, ParsedMessage, ParsedTransaction, parse_payment_message
from .pacs002 import (
    PACS002_VERSION,
    TX_STATUS_CODES,
    StatusReport,
    TrackerStatus,
    TransactionStatus,
    render_pacs002,
    status_report_for,
    statuses_for,
)
from .schemas import MessageId
from .xmlbuild import RenderError
from .xmlsafe import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH

__all__ = [
    "CAMT053_VERSION",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "PACS002_VERSION",
    "SUPPORTED_PAYMENT_MESSAGES",
    "TX_STATUS_CODES",
    "AppHeader",
    "IsoMessage",
    "MessageId",
    "ParsedMessage",
    "ParsedTransaction",
    "RenderError",
    "Statement",
    "StatementEntry",
    "StatusReport",
    "TrackerStatus",
    "TransactionStatus",
    "parse_payment_message",
    "read_iso_message",
    "render_camt053",
    "render_pacs002",
    "status_report_for",
    "statuses_for",
]
