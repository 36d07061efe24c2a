"""Behaviour rules over the debtor's history in ``payment_intake``: velocity, suspected
duplicate, amount outlier. Each returns a ``RuleHit`` (the rule fired) or None.

History is what the gateway accepted (``payment_intake``), by debtor agent (BIC11) and
received time; the payment being judged is not in it yet. Money stays exact: amounts are
integer minor units; the outlier statistics use ``Decimal`` at 40 significant digits.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Final

from sqlalchemy import Index, func, select
from sqlalchemy.orm import Session

from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.payments import PaymentIntake
from chain_gateway.risk.config import Action, DuplicateRule, OutlierRule, RiskConfig, VelocityRule

_STATS: Final = Context(prec=40)
# Core columns: these queries run on every payment, so they skip the ORM layer (about 3x less
# overhead per statement). An index on payment_intake (debtor_agent, currency, received_at)
# serves the duplicate and outlier rules (docs/risk.md).
_T: Final = PaymentIntake.__table__.c
# The velocity rule counts the debtor's payments in every currency within the window: on the
# index above only its debtor prefix applies (currency sits between debtor and time), so it
# read the debtor's whole history on every payment. This one bounds it to the window. It is
# declared here, beside the query it serves (intake owns the model; importing the risk
# package, as models_all does, attaches it to the table); migration 0005 creates it.
Index("ix_payment_intake_debtor_time", _T.debtor_agent, _T.received_at)


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired: what to do, the ISO reason code, a sentence, and the evidence."""

    rule: str  # "velocity.count" | "velocity.value" | "duplicate" | "outlier"
    action: Action
    reason_code: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "reason_code": self.reason_code, "detail": self.detail,
                **self.evidence}


def _int(value: Any) -> int:
    """An exact int from a NUMERIC result (Decimal, int; SQLite may hand back a float)."""
    return int(Decimal(str(value))) if value is not None else 0


def check_velocity(session: Session, instruction: PaymentInstruction, rule: VelocityRule,
                   now: datetime) -> RuleHit | None:
    """Count (all currencies) and value (this currency) of the debtor's payments in the window,
    this one included, against ``max_count`` and ``max_value``."""
    since = now - timedelta(seconds=rule.window_seconds)
    base = (_T.debtor_agent == instruction.debtor_agent, _T.received_at >= since)
    limit_value = rule.max_value_minor(instruction.currency)
    conn = session.connection()
    if limit_value is not None:
        value_col = func.coalesce(func.sum(_T.amount_minor).filter(_T.currency == instruction.currency), 0)
        row = conn.execute(select(func.count(), value_col).where(*base)).one()
        count, value = int(row[0]), _int(row[1])
    else:
        count, value = int(conn.execute(select(func.count()).where(*base)).scalar_one()), 0
    window = {"window_seconds": rule.window_seconds, "since": since.isoformat()}
    if rule.max_count is not None and count + 1 > rule.max_count:
        return RuleHit("velocity.count", rule.action, rule.count_reason_code,
                       f"{instruction.debtor_agent} would send {count + 1} payments within {rule.window_seconds} s; "
                       f"the limit is {rule.max_count}",
                       {**window, "count": count + 1, "max_count": rule.max_count})
    if limit_value is not None:
        total = value + instruction.amount_minor()
        if total > limit_value:
            cur = instruction.currency
            total_text = str(PaymentInstruction.from_minor(cur, total))
            return RuleHit("velocity.value", rule.action, rule.value_reason_code,
                           f"{instruction.debtor_agent} would send {total_text} {cur} within {rule.window_seconds} s; "
                           f"the limit is {rule.max_value[cur]}",
                           {**window, "currency": cur, "total": total_text, "max_value": str(rule.max_value[cur])})
    return None


def check_duplicate(session: Session, instruction: PaymentInstruction, rule: DuplicateRule,
                    now: datetime) -> RuleHit | None:
    """An earlier payment in the window with the same debtor, creditor, currency, amount and
    end-to-end id under another UETR (end-to-end ids meaning "none" are ignored)."""
    e2e = instruction.end_to_end_id
    if not e2e or e2e in rule.ignored_end_to_end_ids:
        return None
    since = now - timedelta(seconds=rule.window_seconds)
    uetr = str(instruction.uetr)
    earlier = session.connection().execute(
        select(_T.uetr, _T.received_at).where(
            _T.debtor_agent == instruction.debtor_agent,
            _T.creditor_agent == instruction.creditor_agent,
            _T.currency == instruction.currency,
            _T.end_to_end_id == e2e,
            _T.amount_minor == Decimal(instruction.amount_minor()),
            _T.received_at >= since,
            _T.uetr != uetr,
        ).order_by(_T.received_at.desc()).limit(1)).first()
    if earlier is None:
        return None
    return RuleHit("duplicate", rule.action, rule.reason_code,
                   f"suspected duplicate of {earlier[0]}: same debtor, creditor, amount {instruction.amount} "
                   f"{instruction.currency} and end-to-end id {e2e!r} within {rule.window_seconds} s",
                   {"duplicate_of": earlier[0], "first_received_at": earlier[1].isoformat(), "end_to_end_id": e2e,
                    "window_seconds": rule.window_seconds})


def outlier_threshold(amounts: Sequence[int], k: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(mean, population standard deviation, mean + k * stddev) of minor-unit amounts, in Decimal."""
    n = Decimal(len(amounts))
    mean = _STATS.divide(sum((Decimal(a) for a in amounts), Decimal(0)), n)
    variance = _STATS.divide(sum(((Decimal(a) - mean) ** 2 for a in amounts), Decimal(0)), n)
    stddev = variance.sqrt(_STATS)
    return mean, stddev, _STATS.add(mean, _STATS.multiply(k, stddev))


def check_outlier(session: Session, instruction: PaymentInstruction, rule: OutlierRule,
                  now: datetime) -> RuleHit | None:
    """Amount above mean + k * stddev of the debtor's last N payments in this currency
    (inactive while there are fewer than N)."""
    rows: Sequence[Any] = session.connection().execute(
        select(_T.amount_minor).where(
            _T.debtor_agent == instruction.debtor_agent,
            _T.currency == instruction.currency,
        ).order_by(_T.received_at.desc()).limit(rule.history)).scalars().all()
    if len(rows) < rule.history:
        return None
    amounts = [_int(r) for r in rows]
    mean, stddev, threshold = outlier_threshold(amounts, rule.k)
    amount = instruction.amount_minor()
    if Decimal(amount) <= threshold:
        return None
    cur = instruction.currency

    def major(minor: Decimal) -> str:
        return str(PaymentInstruction.from_minor(cur, int(minor.to_integral_value())))

    return RuleHit("outlier", rule.action, rule.reason_code,
                   f"{instruction.amount} {cur} is above the mean {major(mean)} + {rule.k} x stddev {major(stddev)} "
                   f"of the debtor's last {rule.history} {cur} payments (threshold {major(threshold)})",
                   {"currency": cur, "history": rule.history, "k": str(rule.k), "mean": major(mean),
                    "stddev": major(stddev), "threshold": major(threshold)})


def evaluate_rules(session: Session, instruction: PaymentInstruction, config: RiskConfig,
                   now: datetime) -> list[RuleHit]:
    """Every enabled rule that fires, in a fixed order: duplicate, velocity, outlier."""
    hits: list[RuleHit] = []
    if config.duplicate.enabled and (hit := check_duplicate(session, instruction, config.duplicate, now)):
        hits.append(hit)
    if config.velocity.enabled and (hit := check_velocity(session, instruction, config.velocity, now)):
        hits.append(hit)
    if config.outlier.enabled and (hit := check_outlier(session, instruction, config.outlier, now)):
        hits.append(hit)
    return hits


__all__ = ["RuleHit", "check_duplicate", "check_outlier", "check_velocity", "evaluate_rules", "outlier_threshold"]
