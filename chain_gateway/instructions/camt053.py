"""Rendering camt.053.001.08 (BkToCstmrStmt) for ``GET /v1/accounts/{bic}/statement``.

One statement of one participant's settlement balance in one currency. The account is
identified by the participant's BIC11 (``Acct/Id/Othr/Id``) plus ``Acct/Ccy``, and owned by
that BIC. Balances are booked opening (OPBD) and closing (CLBD) at the period's bounds;
entries are booked (BOOK) with the payment's UETR and end-to-end id. Amounts carry exactly
the currency's decimals; a negative balance is rendered as DBIT (amounts are unsigned in
ISO). The opening balance plus the entries must equal the closing balance: a statement
that does not add up is refused (RenderError) rather than sent.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from lxml import etree

from chain_gateway.errors import GatewayError

from .bic import normalise_bic
from .currency import check_amount, format_amount, validate_currency
from .xmlbuild import Builder, RenderError, app_header, check_rendered, iso_datetime, serialise

CAMT053_VERSION: Final = "camt.053.001.08"
_MAX_INFO: Final = 500
_MAX_REF: Final = 35


@dataclass(frozen=True)
class StatementEntry:
    """One booked movement on the account.

    ``reference`` becomes ``AcctSvcrRef`` when it fits that Max35Text field; a longer one
    (a ``bytes32`` hex reference or a transaction hash is 66 characters) is carried at the
    start of ``AddtlNtryInf`` instead, so no reference is ever cut.
    """

    amount: Decimal
    credit: bool
    booked_at: dt.datetime
    uetr: uuid.UUID | None = None
    end_to_end_id: str | None = None
    reference: str | None = None
    value_date: dt.date | None = None
    additional_info: str | None = None
    bank_transaction_code: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Statement:
    """A statement page: the account, its balances and the entries between them."""

    message_id: str
    statement_id: str
    created_at: dt.datetime
    account_bic: str
    currency: str
    opening_balance: Decimal
    closing_balance: Decimal
    period_start: dt.datetime
    period_end: dt.datetime
    entries: Sequence[StatementEntry] = ()
    as_of_block: int | None = None
    page_number: int | None = None
    last_page: bool = True


def render_camt053(
    statement: Statement,
    *,
    with_header: bool = False,
    sender_bic: str | None = None,
    check_balances: bool = True,
) -> bytes:
    """Render and XSD-validate a camt.053.001.08; RenderError on an invalid or unbalanced one.

    ``with_header`` adds a head.001.001.02 AppHdr from ``sender_bic`` (the settlement
    agent) to the account owner, both inside a SWIFT ``Envelope``.
    """
    try:
        account = normalise_bic(statement.account_bic, role="account_bic")
        currency = validate_currency(statement.currency)
        for entry in statement.entries:
            check_amount(entry.amount, currency, field="entry amount")
    except GatewayError as exc:
        raise RenderError(f"cannot render statement: {exc.detail}", **exc.fields) from exc
    if check_balances:
        _check_balances(statement)
    b = Builder(CAMT053_VERSION)
    document = b.root("Document")
    root = b.sub(document, "BkToCstmrStmt")
    group = b.sub(root, "GrpHdr")
    b.sub(group, "MsgId", statement.message_id)
    b.sub(group, "CreDtTm", iso_datetime(statement.created_at, field="created_at"))
    stmt = b.sub(root, "Stmt")
    b.sub(stmt, "Id", statement.statement_id)
    if statement.page_number is not None:
        pagination = b.sub(stmt, "StmtPgntn")
        b.sub(pagination, "PgNb", str(statement.page_number))
        b.sub(pagination, "LastPgInd", "true" if statement.last_page else "false")
    b.sub(stmt, "CreDtTm", iso_datetime(statement.created_at, field="created_at"))
    period = b.sub(stmt, "FrToDt")
    b.sub(period, "FrDtTm", iso_datetime(statement.period_start, field="period_start"))
    b.sub(period, "ToDtTm", iso_datetime(statement.period_end, field="period_end"))
    acct = b.sub(stmt, "Acct")
    b.sub(acct, "Id/Othr/Id", account)
    b.sub(acct, "Ccy", currency)
    b.sub(acct, "Ownr/Id/OrgId/AnyBIC", account)
    _balance(b, stmt, "OPBD", statement.opening_balance, currency, statement.period_start)
    _balance(b, stmt, "CLBD", statement.closing_balance, currency, statement.period_end)
    for entry in statement.entries:
        _entry(b, stmt, entry, currency)
    if statement.as_of_block is not None:
        b.sub(stmt, "AddtlStmtInf", f"as_of_block={statement.as_of_block}")
    check_rendered(document, CAMT053_VERSION)
    header = None
    if with_header:
        if sender_bic is None:
            raise RenderError("a statement header needs sender_bic")
        header = app_header(
            from_bic=sender_bic,
            to_bic=account,
            business_message_id=statement.message_id,
            message_definition_id=CAMT053_VERSION,
            created_at=statement.created_at,
        )
    return serialise(document, header)


def _check_balances(statement: Statement) -> None:
    """Opening + credits - debits must equal closing, exactly."""
    moved = sum((e.amount if e.credit else -e.amount for e in statement.entries), Decimal(0))
    if statement.opening_balance + moved != statement.closing_balance:
        raise RenderError(
            f"statement does not add up: opening {statement.opening_balance} + entries {moved} "
            f"!= closing {statement.closing_balance}",
            expected=str(statement.opening_balance + moved),
            actual=str(statement.closing_balance),
        )


def _balance(b: Builder, stmt: etree._Element, code: str, amount: Decimal, currency: str, at: dt.datetime) -> None:
    """One ``Bal``: type, unsigned amount, CRDT/DBIT, date-time."""
    bal = b.sub(stmt, "Bal")
    b.sub(bal, "Tp/CdOrPrtry/Cd", code)
    b.sub(bal, "Amt", format_amount(abs(amount), currency), Ccy=currency)
    b.sub(bal, "CdtDbtInd", "CRDT" if amount >= 0 else "DBIT")
    b.sub(bal, "Dt/DtTm", iso_datetime(at, field=f"{code} date"))


def _entry(b: Builder, stmt: etree._Element, entry: StatementEntry, currency: str) -> None:
    """One ``Ntry`` with its transaction references, in schema order."""
    amount = format_amount(entry.amount, currency)
    indicator = "CRDT" if entry.credit else "DBIT"
    ntry = b.sub(stmt, "Ntry")
    b.sub(ntry, "Amt", amount, Ccy=currency)
    b.sub(ntry, "CdtDbtInd", indicator)
    b.sub(ntry, "Sts/Cd", "BOOK")
    b.sub(ntry, "BookgDt/DtTm", iso_datetime(entry.booked_at, field="booked_at"))
    value_date = entry.value_date or entry.booked_at.astimezone(dt.UTC).date()
    b.sub(ntry, "ValDt/Dt", value_date.isoformat())
    short_reference = entry.reference if entry.reference and len(entry.reference) <= _MAX_REF else None
    b.opt(ntry, "AcctSvcrRef", short_reference)
    domain, family, sub_family = entry.bank_transaction_code or (
        "PMNT", "RCDT" if entry.credit else "ICDT", "XBCT"
    )
    domn = b.sub(ntry, "BkTxCd/Domn")
    b.sub(domn, "Cd", domain)
    fmly = b.sub(domn, "Fmly")
    b.sub(fmly, "Cd", family)
    b.sub(fmly, "SubFmlyCd", sub_family)
    if entry.uetr is not None or entry.end_to_end_id is not None:
        tx = b.sub(ntry, "NtryDtls/TxDtls")
        refs = b.sub(tx, "Refs")
        b.opt(refs, "EndToEndId", entry.end_to_end_id)
        b.opt(refs, "UETR", None if entry.uetr is None else str(entry.uetr))
        b.sub(tx, "Amt", amount, Ccy=currency)
        b.sub(tx, "CdtDbtInd", indicator)
    notes = [f"reference {entry.reference}"] if entry.reference and short_reference is None else []
    notes += [entry.additional_info] if entry.additional_info else []
    if notes:
        b.sub(ntry, "AddtlNtryInf", "; ".join(notes)[:_MAX_INFO])
