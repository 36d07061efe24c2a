"""Payments held by a risk rule, waiting for the operator's decision.

This table records the hold and the decision; the payment itself stays where intake put it
(its intake row, and its outbox row in the state HELD that the submitter ignores). The API
(``api/routes/risk.py``) pairs each decision with the gateway's ``release_held`` /
``reject_held``, which move the outbox row on (HELD -> PENDING, or a terminal rejection
shown as RJCT with the hold's reason code).

Decisions: ``None`` while pending, then ``"released"`` or ``"rejected"``; a decided hold is
never decided again (Conflict, 409).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain_gateway.audit_trail import jsonable
from chain_gateway.db import Base, UTCDateTime, utcnow
from chain_gateway.errors import Conflict, InvalidMessage, NotFound
from chain_gateway.instructions.uetr import parse_uetr
from chain_gateway.payments import PaymentIntake

if TYPE_CHECKING:  # pragma: no cover
    from chain_gateway.risk.engine import Decision

RELEASED: Final = "released"
REJECTED: Final = "rejected"
HoldDecision = Literal["released", "rejected"]


class RiskHold(Base):
    """One payment held by a risk rule, and the operator's decision on it."""

    __tablename__ = "risk_holds"

    uetr: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str] = mapped_column(String(4))
    detail: Mapped[str] = mapped_column(Text)
    matched: Mapped[str] = mapped_column(Text)  # JSON list: the evidence of every rule that fired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(8), nullable=True, index=True)

    @property
    def pending(self) -> bool:
        return self.decision is None

    def matched_list(self) -> list[Any]:
        value = json.loads(self.matched)
        return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class HeldPayment:
    """A hold with the payment's main fields (from its intake row, when there is one)."""

    hold: RiskHold
    debtor_agent: str | None
    creditor_agent: str | None
    currency: str | None
    amount: Decimal | None
    end_to_end_id: str | None

    def public(self) -> dict[str, Any]:
        h = self.hold
        return {"uetr": h.uetr, "rule": h.rule, "reason_code": h.reason_code, "detail": h.detail,
                "matched": h.matched_list(), "created_at": h.created_at, "decision": h.decision,
                "decided_by": h.decided_by, "decided_at": h.decided_at, "debtor_agent": self.debtor_agent,
                "creditor_agent": self.creditor_agent, "currency": self.currency,
                "amount": None if self.amount is None or self.currency is None else _amount(self.amount, self.currency),
                "end_to_end_id": self.end_to_end_id}


def _amount(amount: Decimal, currency: str) -> str:
    from chain_gateway.instructions.currency import format_amount

    return format_amount(amount, currency)


def _key(uetr: str) -> str:
    try:
        return str(parse_uetr(uetr))
    except InvalidMessage as exc:
        raise NotFound(f"no hold for {uetr[:40]}") from exc


def hold(session: Session, uetr: str, decision: Decision) -> RiskHold:
    """Record that `uetr` is held by `decision` (in the caller's transaction). Idempotent:
    a second call for the same UETR returns the existing row."""
    key = _key(uetr)
    existing = session.get(RiskHold, key)
    if existing is not None:
        return existing
    row = RiskHold(uetr=key, rule=decision.rule or "unknown", reason_code=decision.reason_code or "NARR",
                   detail=decision.detail, matched=json.dumps(jsonable(list(decision.matched)), sort_keys=True),
                   created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def get_hold(session: Session, uetr: str) -> RiskHold | None:
    """The hold of `uetr`, decided or not (the tracker reads its reason code), or None."""
    return session.get(RiskHold, _key(uetr))


def _held(session: Session, rows: list[RiskHold]) -> list[HeldPayment]:
    intakes = {i.uetr: i for i in session.scalars(
        select(PaymentIntake).where(PaymentIntake.uetr.in_([r.uetr for r in rows])))} if rows else {}
    out = []
    for r in rows:
        i = intakes.get(r.uetr)
        out.append(HeldPayment(hold=r, debtor_agent=i.debtor_agent if i else None,
                               creditor_agent=i.creditor_agent if i else None, currency=i.currency if i else None,
                               amount=i.amount if i else None, end_to_end_id=i.end_to_end_id if i else None))
    return out


def list_holds(session: Session, pending_only: bool = True, *, limit: int = 100,
               after: str | None = None) -> tuple[list[HeldPayment], str | None]:
    """Holds oldest first (pending only by default); one page and the next page's cursor."""
    query = select(RiskHold)
    if pending_only:
        query = query.where(RiskHold.decision.is_(None))
    if after is not None:
        anchor = session.get(RiskHold, _key(after))
        if anchor is None:
            raise InvalidMessage(f"unknown cursor {after[:40]}")
        query = query.where((RiskHold.created_at > anchor.created_at)
                            | ((RiskHold.created_at == anchor.created_at) & (RiskHold.uetr > anchor.uetr)))
    rows = list(session.scalars(query.order_by(RiskHold.created_at, RiskHold.uetr).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return _held(session, rows), (rows[-1].uetr if more and rows else None)


def _decide(session: Session, uetr: str, by: str, decision: HoldDecision) -> RiskHold:
    row = session.get(RiskHold, _key(uetr), with_for_update=True)
    if row is None:
        raise NotFound(f"no payment {uetr[:40]} is held by a risk rule")
    if row.decision is not None:
        raise Conflict(f"the hold of {row.uetr} was already {row.decision} by {row.decided_by}", uetr=row.uetr,
                       decision=row.decision)
    row.decision, row.decided_by, row.decided_at = decision, by[:64], utcnow()
    session.flush()
    return row


def release(session: Session, uetr: str, by: str) -> RiskHold:
    """Mark a pending hold released by `by` (the caller then releases the outbox row)."""
    return _decide(session, uetr, by, RELEASED)


def reject(session: Session, uetr: str, by: str) -> RiskHold:
    """Mark a pending hold rejected by `by` (the caller then ends the payment as RJCT)."""
    return _decide(session, uetr, by, REJECTED)


def held_payment(session: Session, hold_row: RiskHold) -> HeldPayment:
    return _held(session, [hold_row])[0]


__all__ = ["REJECTED", "RELEASED", "HeldPayment", "RiskHold", "get_hold", "held_payment", "hold", "list_holds",
           "reject", "release"]
