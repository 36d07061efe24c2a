"""Rendering pacs.002.001.10 (FIToFIPmtStsRpt): one ``TxInfAndSts`` per transaction.

Version 001.10 is the one CBPR+, Fedwire and FedNow use (and most samples in the
conformance set). The shape follows the CBPR+ samples: original group information inside
each ``TxInfAndSts`` (``OrgnlGrpInf``), then the original ids, ``OrgnlUETR``, ``TxSts``,
``StsRsnInf/Rsn/Cd`` and the instructing/instructed agents.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from .bic import normalise_bic
from .pacs import ParsedMessage
from .xmlbuild import Builder, RenderError, app_header, check_rendered, iso_datetime, serialise

PACS002_VERSION: Final = "pacs.002.001.10"

TrackerStatus = Literal["RCVD", "ACSP", "PDNG", "ACSC", "RJCT", "CANC"]

#: Gateway tracker status (API.md) -> ExternalPaymentTransactionStatus1Code. All six are
#: codes of the ISO external list, so the mapping is the identity, written out so that a
#: new tracker status cannot slip into a report unmapped.
TX_STATUS_CODES: Final[Mapping[str, str]] = {
    "RCVD": "RCVD",  # Received
    "ACSP": "ACSP",  # AcceptedSettlementInProcess
    "PDNG": "PDNG",  # Pending
    "ACSC": "ACSC",  # AcceptedSettlementCompleted
    "RJCT": "RJCT",  # Rejected
    "CANC": "CANC",  # Cancelled
}
_REASON: Final = re.compile(r"[A-Z0-9]{4}")
_MAX_ADDITIONAL_INFO: Final = 105


@dataclass(frozen=True)
class TransactionStatus:
    """The status of one original transaction."""

    status: TrackerStatus
    uetr: uuid.UUID | None = None
    end_to_end_id: str | None = None
    instruction_id: str | None = None
    transaction_id: str | None = None
    reason_code: str | None = None
    additional_info: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """Everything a pacs.002 says; agents are BIC8 or BIC11."""

    message_id: str
    created_at: dt.datetime
    original_message_id: str
    original_message_name: str
    transactions: Sequence[TransactionStatus]
    original_created_at: dt.datetime | str | None = None  # str: the original CreDtTm as sent
    instructing_agent: str | None = None
    instructed_agent: str | None = None


def statuses_for(parsed: ParsedMessage, *, accepted_status: TrackerStatus = "RCVD") -> list[TransactionStatus]:
    """Intake statuses: ``accepted_status`` for instructions, RJCT with the reason otherwise."""
    statuses = []
    for tx in parsed.transactions:
        rejected = tx.rejection is not None
        statuses.append(
            TransactionStatus(
                status="RJCT" if rejected else accepted_status,
                uetr=tx.uetr,
                end_to_end_id=tx.end_to_end_id,
                instruction_id=tx.instruction_id,
                transaction_id=tx.transaction_id,
                reason_code=tx.reason_code if rejected else None,
                additional_info=tx.rejection.detail if tx.rejection is not None else None,
            )
        )
    return statuses


def status_report_for(
    parsed: ParsedMessage,
    *,
    message_id: str,
    created_at: dt.datetime,
    instructing_agent: str | None = None,
    instructed_agent: str | None = None,
    accepted_status: TrackerStatus = "RCVD",
) -> StatusReport:
    """The intake report for a parsed message: one status per transaction, in message order.

    ``instructing_agent`` is the gateway's own BIC (the settlement agent); the report goes
    back to ``instructed_agent``, by default the sender named in the message's AppHdr.
    """
    return StatusReport(
        message_id=message_id,
        created_at=created_at,
        original_message_id=parsed.message_id,
        original_message_name=parsed.version,
        original_created_at=parsed.created_at,
        transactions=statuses_for(parsed, accepted_status=accepted_status),
        instructing_agent=instructing_agent,
        instructed_agent=instructed_agent or (parsed.header.from_bic if parsed.header else None),
    )


def render_pacs002(report: StatusReport, *, with_header: bool = False) -> bytes:
    """Render and XSD-validate a pacs.002.001.10; RenderError if the result is invalid.

    ``with_header`` wraps AppHdr (head.001.001.02, from ``instructing_agent`` to
    ``instructed_agent``) and Document in a SWIFT ``Envelope``.
    """
    b = Builder(PACS002_VERSION)
    document = b.root("Document")
    report_el = b.sub(document, "FIToFIPmtStsRpt")
    group = b.sub(report_el, "GrpHdr")
    b.sub(group, "MsgId", report.message_id)
    b.sub(group, "CreDtTm", iso_datetime(report.created_at, field="created_at"))
    if not report.transactions:
        raise RenderError("a status report needs at least one transaction")
    for tx in report.transactions:
        _transaction(b, report_el, report, tx)
    check_rendered(document, PACS002_VERSION)
    header = None
    if with_header:
        if report.instructing_agent is None or report.instructed_agent is None:
            raise RenderError("a header needs instructing_agent and instructed_agent")
        header = app_header(
            from_bic=report.instructing_agent,
            to_bic=report.instructed_agent,
            business_message_id=report.message_id,
            message_definition_id=PACS002_VERSION,
            created_at=report.created_at,
        )
    return serialise(document, header)


def _transaction(b: Builder, parent: etree._Element, report: StatusReport, tx: TransactionStatus) -> None:
    """One ``TxInfAndSts`` in schema order."""
    code = TX_STATUS_CODES.get(tx.status)
    if code is None:
        raise RenderError(f"tracker status {tx.status!r} has no pacs.002 code", status=tx.status)
    if tx.status == "RJCT" and tx.reason_code is None:
        raise RenderError("a rejected transaction needs a reason code", uetr=str(tx.uetr))
    if tx.reason_code is not None and not _REASON.fullmatch(tx.reason_code):
        raise RenderError(f"reason code {tx.reason_code!r} is not a 4-character ISO code")
    el = b.sub(parent, "TxInfAndSts")
    original = b.sub(el, "OrgnlGrpInf")
    b.sub(original, "OrgnlMsgId", report.original_message_id)
    b.sub(original, "OrgnlMsgNmId", report.original_message_name)
    created = report.original_created_at
    if isinstance(created, dt.datetime):
        created = iso_datetime(created, field="original_created_at")
    b.opt(original, "OrgnlCreDtTm", created)
    b.opt(el, "OrgnlInstrId", tx.instruction_id)
    b.opt(el, "OrgnlEndToEndId", tx.end_to_end_id)
    b.opt(el, "OrgnlTxId", tx.transaction_id)
    b.opt(el, "OrgnlUETR", None if tx.uetr is None else str(tx.uetr))
    b.sub(el, "TxSts", code)
    if tx.reason_code is not None or tx.additional_info is not None:
        reason = b.sub(el, "StsRsnInf")
        b.opt(reason, "Rsn/Cd", tx.reason_code)
        if tx.additional_info is not None:
            b.sub(reason, "AddtlInf", _shorten(tx.additional_info))
    if report.instructing_agent is not None:
        b.sub(el, "InstgAgt/FinInstnId/BICFI", normalise_bic(report.instructing_agent, role="instructing_agent"))
    if report.instructed_agent is not None:
        b.sub(el, "InstdAgt/FinInstnId/BICFI", normalise_bic(report.instructed_agent, role="instructed_agent"))


def _shorten(text: str) -> str:
    """Fit free text into Max105Text."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ADDITIONAL_INFO else text[: _MAX_ADDITIONAL_INFO - 1] + "…"
