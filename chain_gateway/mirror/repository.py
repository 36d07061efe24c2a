"""Read side of the mirror: the only place the API's payment, statement, participant and
funding reads touch SQL. Every function takes keyword-only arguments and returns frozen
views, never ORM objects; lists page with an opaque cursor (``Page(items, next_cursor)``).

Finality: a settled payment reads ``ACSC`` only once its block is at or below the mirror's
``final_block`` (head - confirmation depth); before that it reads ``ACSP`` with
``final=False``.
"""
from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from chain_gateway.errors import InvalidMessage, NotFound
from chain_gateway.mirror.models import (
    Balance,
    BilateralLimitChange,
    Checkpoint,
    Funding,
    LimitChange,
    Participant,
    Payment,
    PaymentEvent,
    StatementLine,
)

T = TypeVar("T")
MAX_LIMIT = 1000
_FINAL_CAPABLE = ("ACSC", "RJCT", "CANC")


class InvalidCursor(InvalidMessage):
    """Raised when a pagination cursor was not produced by this repository (or is corrupt)."""

    title = "Invalid cursor"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class MirrorHead:
    chain_id: int
    ledger: str
    registry: str
    deploy_block: int
    block_number: int
    block_hash: str
    head_block: int
    final_block: int
    confirmation_depth: int
    updated_at: datetime


@dataclass(frozen=True)
class PaymentView:
    uetr: str
    status: str  # tracker status: ACSP while a settlement is not yet final
    final: bool
    chain_status: int
    reason_code: str | None
    debtor: str | None
    creditor: str | None
    debtor_bic: str | None
    creditor_bic: str | None
    currency: str | None
    amount: int | None  # minor units
    flags: int | None
    held: bool
    queue_seq: int | None
    instruction_hash: str | None
    tx_hash: str
    block_number: int
    created_at: datetime
    updated_at: datetime
    fx_quote_id: str | None = None
    fx_provider: str | None = None
    debit_currency: str | None = None  # cross-currency: what the debtor paid, in its currency
    debit_amount: int | None = None


@dataclass(frozen=True)
class PaymentHistoryItem:
    status: str
    at: datetime
    reason_code: str | None
    tx_hash: str
    block_number: int
    log_index: int
    event: str
    effective: bool
    held: bool | None
    flags: int | None


@dataclass(frozen=True)
class BalanceView:
    currency: str
    amount: int
    block_number: int  # block of the last movement


@dataclass(frozen=True)
class Balances:
    participant: str
    block_number: int  # the mirror's checkpoint: balances are as of this block
    balances: list[BalanceView]


@dataclass(frozen=True)
class StatementEntry:
    block_number: int
    log_index: int
    tx_hash: str
    at: datetime
    kind: str  # FUND, DEFUND, DEBIT, CREDIT
    amount: int  # signed minor units
    balance_after: int
    uetr: str | None
    counterparty: str | None
    counterparty_bic: str | None
    reference: str | None


@dataclass(frozen=True)
class Statement:
    participant: str
    currency: str
    as_of_block: int
    opening_balance: int  # before the first line of the window (since / start)
    closing_balance: int  # after the last line of the window (until / as_of_block)
    items: list[StatementEntry]
    next_cursor: str | None


@dataclass(frozen=True)
class ParticipantView:
    address: str
    bic: str
    country: str
    roles: int
    active: bool
    registered_block: int
    registered_at: datetime


@dataclass(frozen=True)
class FundingView:
    block_number: int
    log_index: int
    participant: str
    currency: str
    kind: str  # FUND or DEFUND
    amount: int
    reference: str
    tx_hash: str
    at: datetime


@dataclass(frozen=True)
class LimitsView:
    currency: str
    max_per_payment: int  # 0 = no limit
    max_daily_outflow: int
    block_number: int


@dataclass(frozen=True)
class BilateralLimitView:
    creditor: str
    currency: str
    max_daily: int
    block_number: int


# ------------------------------------------------------------------ helpers
def normalize_uetr(uetr: str | uuid.UUID) -> str:
    """Canonical lower-case UUID text; a malformed UETR is bad input (FF01)."""
    try:
        return str(uetr if isinstance(uetr, uuid.UUID) else uuid.UUID(str(uetr)))
    except ValueError as exc:
        raise InvalidMessage(f"not a UETR: {uetr!r}") from exc


def _encode_cursor(kind: str, values: Sequence[Any]) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str, n: int) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    if not isinstance(data, list) or len(data) != n + 1 or data[0] != kind or not all(
            isinstance(v, int) for v in data[1:]):
        raise InvalidCursor("cursor does not belong to this list")
    return data[1:]


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidMessage(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def mirror_head(*, session: Session) -> MirrorHead | None:
    """The mirror's checkpoint (None before the indexer's first cycle)."""
    cp = session.execute(select(Checkpoint).limit(1)).scalar_one_or_none()
    if cp is None:
        return None
    return MirrorHead(cp.chain_id, cp.ledger, cp.registry_address, cp.deploy_block, cp.block_number,
                      cp.block_hash, cp.head_block, cp.final_block, cp.confirmation_depth, cp.updated_at)


def _final_block(session: Session) -> int:
    value = session.execute(select(Checkpoint.final_block).limit(1)).scalar_one_or_none()
    return -1 if value is None else int(value)


# ------------------------------------------------------------------ payments
_Debtor = aliased(Participant)
_Creditor = aliased(Participant)


def _payment_select() -> Select[Payment, str, str]:
    return (select(Payment, _Debtor.bic, _Creditor.bic)
            .outerjoin(_Debtor, _Debtor.address == Payment.debtor)
            .outerjoin(_Creditor, _Creditor.address == Payment.creditor))


def _payment_view(p: Payment, debtor_bic: str | None, creditor_bic: str | None, final_block: int) -> PaymentView:
    final = p.status in _FINAL_CAPABLE and p.block_number <= final_block
    status = "ACSP" if p.status == "ACSC" and not final else p.status
    return PaymentView(
        uetr=p.uetr, status=status, final=final, chain_status=p.chain_status, reason_code=p.reason_code,
        debtor=p.debtor, creditor=p.creditor, debtor_bic=debtor_bic, creditor_bic=creditor_bic,
        currency=p.currency, amount=p.amount, flags=p.flags, held=p.held, queue_seq=p.queue_seq,
        instruction_hash=p.instruction_hash, tx_hash=p.tx_hash, block_number=p.block_number,
        created_at=p.created_at, updated_at=p.updated_at, fx_quote_id=p.fx_quote_id, fx_provider=p.fx_provider,
        debit_currency=p.debit_currency, debit_amount=p.debit_amount)


def get_payment(*, session: Session, uetr: str | uuid.UUID) -> PaymentView | None:
    """The payment as the mirror has it, or None."""
    row = session.execute(_payment_select().where(Payment.uetr == normalize_uetr(uetr))).first()
    if row is None:
        return None
    return _payment_view(row[0], row[1], row[2], _final_block(session))


def payment_history(*, session: Session, uetr: str | uuid.UUID) -> list[PaymentHistoryItem]:
    """Every chain event of the UETR, oldest first (empty when the mirror does not know it)."""
    rows = session.execute(select(PaymentEvent).where(PaymentEvent.uetr == normalize_uetr(uetr))
                           .order_by(PaymentEvent.block_number, PaymentEvent.log_index)).scalars()
    return [PaymentHistoryItem(e.status, e.at, e.reason_code, e.tx_hash, e.block_number, e.log_index, e.event,
                               e.effective, e.held, e.flags) for e in rows]


def _status_clause(status: str, final_block: int) -> ColumnElement[bool]:
    if status == "ACSC":
        return and_(Payment.status == "ACSC", Payment.block_number <= final_block)
    if status == "ACSP":
        return or_(Payment.status == "ACSP", and_(Payment.status == "ACSC", Payment.block_number > final_block))
    return Payment.status == status


def list_payments(*, session: Session, participant: str | None = None, status: str | Sequence[str] | None = None,
                  currency: str | None = None, counterparty: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, cursor: str | None = None, limit: int = 50) -> Page[PaymentView]:
    """Payments newest first (by first chain event). `participant` keeps those it pays or
    receives; `counterparty` those with that other party; `since` <= created_at < `until`."""
    limit = _limit(limit)
    final_block = _final_block(session)
    stmt = _payment_select()
    if participant is not None:
        stmt = stmt.where(or_(Payment.debtor == participant, Payment.creditor == participant))
    if counterparty is not None:
        if participant is not None:
            stmt = stmt.where(or_(and_(Payment.debtor == participant, Payment.creditor == counterparty),
                                  and_(Payment.creditor == participant, Payment.debtor == counterparty)))
        else:
            stmt = stmt.where(or_(Payment.debtor == counterparty, Payment.creditor == counterparty))
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        stmt = stmt.where(or_(*(_status_clause(s, final_block) for s in statuses)))
    if currency is not None:
        stmt = stmt.where(Payment.currency == currency)
    if since is not None:
        stmt = stmt.where(Payment.created_at >= since)
    if until is not None:
        stmt = stmt.where(Payment.created_at < until)
    if cursor is not None:
        block, log_index = _decode_cursor(cursor, "p", 2)
        stmt = stmt.where(tuple_(Payment.first_block, Payment.first_log_index) < tuple_(block, log_index))
    rows = session.execute(stmt.order_by(Payment.first_block.desc(), Payment.first_log_index.desc())
                           .limit(limit + 1)).all()
    items = [_payment_view(r[0], r[1], r[2], final_block) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = _encode_cursor("p", [last.first_block, last.first_log_index])
    return Page(items, next_cursor)


def queued_payments(*, session: Session, participant: str | None = None,
                    currency: str | None = None) -> list[PaymentView]:
    """Payments waiting in the ledger's queue, urgent first, then in queue order."""
    final_block = _final_block(session)
    stmt = _payment_select().where(Payment.status == "PDNG")
    if participant is not None:
        stmt = stmt.where(or_(Payment.debtor == participant, Payment.creditor == participant))
    if currency is not None:
        stmt = stmt.where(Payment.currency == currency)
    rows = session.execute(stmt.order_by(Payment.queue_seq)).all()
    views = [_payment_view(r[0], r[1], r[2], final_block) for r in rows]
    return sorted(views, key=lambda v: (not ((v.flags or 0) & 2), v.queue_seq or 0))


# ------------------------------------------------------------------ balances and statements
def balances(*, session: Session, participant: str) -> Balances:
    """The participant's balances per currency as of the mirror's checkpoint."""
    head = mirror_head(session=session)
    rows = session.execute(select(Balance).where(Balance.participant == participant)
                           .order_by(Balance.currency)).scalars()
    return Balances(participant, head.block_number if head else -1,
                    [BalanceView(b.currency, b.amount, b.block_number) for b in rows])


def _last_balance(session: Session, participant: str, currency: str,
                  conditions: Sequence[ColumnElement[bool]]) -> int | None:
    value = session.execute(
        select(StatementLine.balance_after)
        .where(StatementLine.participant == participant, StatementLine.currency == currency, *conditions)
        .order_by(StatementLine.block_number.desc(), StatementLine.log_index.desc()).limit(1)).scalar_one_or_none()
    return None if value is None else int(value)


def _since_bound(session: Session, participant: str, currency: str, since: datetime) -> ColumnElement[bool] | None:
    """A condition on the block number that every line at or after `since` meets, so the
    lines of a recent window are sought, not found by walking the balance's whole history
    from its first line (lines are read in chain order; `since` is a time, which the primary
    key cannot seek). It adds no row and drops none: the bound is the smallest block holding
    a line at or after `since` (index ``ix_mirror_statement_lines_time``), or "none" when
    there is no such line. Finding that block reads the window's index entries, so it is done
    only for a window in the later half of the history (the usual "movements since ...");
    for an earlier `since` the plain scan reaches the window soon and None is returned."""
    key = (StatementLine.participant == participant, StatementLine.currency == currency)
    first = session.execute(select(func.min(StatementLine.at)).where(*key)).scalar_one_or_none()
    if first is None or since <= first:
        return None  # no history, or the window is all of it
    last = session.execute(select(func.max(StatementLine.at)).where(*key)).scalar_one()
    if since > last:
        return false()  # nothing at or after `since`
    if since - first < last - since:
        return None
    low = session.execute(select(func.min(StatementLine.block_number))
                          .where(*key, StatementLine.at >= since)).scalar_one()
    return StatementLine.block_number >= low


def statement(*, session: Session, participant: str, currency: str, since: datetime | None = None,
              until: datetime | None = None, as_of_block: int | None = None, cursor: str | None = None,
              limit: int = 100) -> Statement:
    """Movements of one balance, oldest first, each with the running balance after it.

    `as_of_block` (default: the mirror's checkpoint) leaves out later blocks, so a statement
    can be reproduced; `since` <= line time < `until`.
    """
    limit = _limit(limit)
    head = mirror_head(session=session)
    block = as_of_block if as_of_block is not None else (head.block_number if head else None)
    if head is not None and block is not None and block > head.block_number:
        raise NotFound(f"the mirror has reached block {head.block_number}, not {block}", block_number=block)
    up_to: list[ColumnElement[bool]] = [] if block is None else [StatementLine.block_number <= block]
    window = list(up_to)
    if since is not None:
        window.append(StatementLine.at >= since)
        bound = _since_bound(session, participant, currency, since)
        if bound is not None:
            window.append(bound)
    if until is not None:
        window.append(StatementLine.at < until)
    opening = 0
    if since is not None:
        opening = _last_balance(session, participant, currency,
                                [*up_to, StatementLine.at < since]) or 0
    closing = _last_balance(session, participant, currency, window)
    if closing is None:
        closing = opening  # no movement in the window
    stmt = select(StatementLine).where(StatementLine.participant == participant, StatementLine.currency == currency,
                                       *window)
    if cursor is not None:
        b, li = _decode_cursor(cursor, "s", 2)
        stmt = stmt.where(tuple_(StatementLine.block_number, StatementLine.log_index) > tuple_(b, li))
    lines = list(session.execute(stmt.order_by(StatementLine.block_number, StatementLine.log_index)
                                 .limit(limit + 1)).scalars())
    bics = _bics(session, {ln.counterparty for ln in lines[:limit] if ln.counterparty})
    items = [StatementEntry(ln.block_number, ln.log_index, ln.tx_hash, ln.at, ln.kind, ln.amount, ln.balance_after,
                            ln.uetr, ln.counterparty, bics.get(ln.counterparty or ""), ln.reference)
             for ln in lines[:limit]]
    next_cursor = None
    if len(lines) > limit:
        next_cursor = _encode_cursor("s", [lines[limit - 1].block_number, lines[limit - 1].log_index])
    return Statement(participant, currency, -1 if block is None else block, opening, closing, items, next_cursor)


def _bics(session: Session, addresses: set[str]) -> dict[str, str]:
    if not addresses:
        return {}
    return dict(session.execute(select(Participant.address, Participant.bic)
                                .where(Participant.address.in_(sorted(addresses)))).tuples().all())


# ------------------------------------------------------------------ participants
def _participant_view(p: Participant) -> ParticipantView:
    return ParticipantView(p.address, p.bic, p.country, p.roles, p.active, p.registered_block, p.registered_at)


def list_participants(*, session: Session, active: bool | None = None) -> list[ParticipantView]:
    """Every registered participant in registration order."""
    stmt = select(Participant).order_by(Participant.registered_block, Participant.registered_log_index)
    if active is not None:
        stmt = stmt.where(Participant.active == active)
    return [_participant_view(p) for p in session.execute(stmt).scalars()]


def get_participant(*, session: Session, address: str | None = None, bic: str | None = None) -> ParticipantView | None:
    """A participant by address or by BIC (BIC8 means BIC8 + "XXX")."""
    if (address is None) == (bic is None):
        raise InvalidMessage("give exactly one of address or bic")
    if bic is not None:
        bic = bic.upper()
        bic = bic + "XXX" if len(bic) == 8 else bic
        p = session.execute(select(Participant).where(Participant.bic == bic)).scalar_one_or_none()
    else:
        p = session.get(Participant, address)
    return None if p is None else _participant_view(p)


# ------------------------------------------------------------------ funding and limits
def funding_records(*, session: Session, participant: str | None = None, currency: str | None = None,
                    cursor: str | None = None, limit: int = 100) -> Page[FundingView]:
    """Funding and defunding by the operator, oldest first."""
    limit = _limit(limit)
    stmt = select(Funding)
    if participant is not None:
        stmt = stmt.where(Funding.participant == participant)
    if currency is not None:
        stmt = stmt.where(Funding.currency == currency)
    if cursor is not None:
        b, li = _decode_cursor(cursor, "f", 2)
        stmt = stmt.where(tuple_(Funding.block_number, Funding.log_index) > tuple_(b, li))
    rows = list(session.execute(stmt.order_by(Funding.block_number, Funding.log_index).limit(limit + 1)).scalars())
    items = [FundingView(f.block_number, f.log_index, f.participant, f.currency, f.kind, f.amount, f.reference,
                         f.tx_hash, f.at) for f in rows[:limit]]
    next_cursor = _encode_cursor("f", [rows[limit - 1].block_number, rows[limit - 1].log_index]) \
        if len(rows) > limit else None
    return Page(items, next_cursor)


def limits(*, session: Session, participant: str, kind: str = "operator") -> list[LimitsView]:
    """The limits in force for the participant, per currency: the operator's (``operator``) or
    those the bank set itself (``own``)."""
    rows = session.execute(select(LimitChange).where(LimitChange.participant == participant, LimitChange.kind == kind)
                           .order_by(LimitChange.block_number, LimitChange.log_index)).scalars()
    current: dict[str, LimitsView] = {}
    for r in rows:
        current[r.currency] = LimitsView(r.currency, r.max_per_payment, r.max_daily_outflow, r.block_number)
    return [current[c] for c in sorted(current)]


def bilateral_limits(*, session: Session, debtor: str) -> list[BilateralLimitView]:
    """The debtor's bilateral daily caps in force (a cap set to 0 is removed)."""
    rows = session.execute(select(BilateralLimitChange).where(BilateralLimitChange.debtor == debtor)
                           .order_by(BilateralLimitChange.block_number, BilateralLimitChange.log_index)).scalars()
    current: dict[tuple[str, str], BilateralLimitView] = {}
    for r in rows:
        current[(r.creditor, r.currency)] = BilateralLimitView(r.creditor, r.currency, r.max_daily, r.block_number)
    return [v for _, v in sorted(current.items()) if v.max_daily != 0]


def require_payment(*, session: Session, uetr: str | uuid.UUID) -> PaymentView:
    """Like ``get_payment`` but raises NotFound."""
    view = get_payment(session=session, uetr=uetr)
    if view is None:
        raise NotFound(f"no payment {uetr}", uetr=str(uetr))
    return view
