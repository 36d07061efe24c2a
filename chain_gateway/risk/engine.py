"""The risk engine: screening, then the behaviour rules, one decision per payment.

``RiskEngine(config).evaluate(session, instruction, parties)`` only reads and returns a
``Decision``: "pass", "hold" or "reject", with the deciding rule, its ISO reason code, a
sentence, and what matched. ``RiskEngine.risk_check`` has the signature of
``IntakeContext.risk_check`` and acts on the decision:

- "reject": records the decision in the audit trail (in its own transaction, written once
  the request's transaction has ended, so it survives the rollback) and raises
  ``ScreeningHit`` (RR04) or ``RiskRuleRejection`` (the rule's code); nothing is stored and
  nothing reaches the chain;
- "hold": records it in the audit trail the same way, writes the ``risk_holds`` row in the
  caller's transaction and returns the decision: intake then stores the payment with its
  outbox row in the state HELD (the submitter ignores it) until the operator decides;
- "pass": returns the decision; nothing is written.

Precedence: a watch-list hit always rejects. Otherwise every enabled rule is evaluated; a
rejecting rule wins over a holding one; among equals the first in the order duplicate,
velocity, outlier decides. Every rule that fired is listed in ``matched``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy.orm import Session

from chain_gateway.audit_trail import SYSTEM_ACTOR, record_detached
from chain_gateway.db import utcnow
from chain_gateway.errors import BusinessRejection, RiskRuleRejection, ScreeningHit
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.risk import holds
from chain_gateway.risk.config import RiskConfig
from chain_gateway.risk.rules import RuleHit, evaluate_rules
from chain_gateway.risk.watchlist import Match, WatchList, WatchListSource

DecisionAction = Literal["pass", "hold", "reject"]
SCREENING_RULE: Final = "watchlist"
SCREENING_REASON: Final = ScreeningHit.reason_code or "RR04"
AUDIT_ACTION: Final = "risk.decision"


@dataclass(frozen=True)
class Decision:
    """What the risk checks decided about one payment."""

    action: DecisionAction
    reason_code: str | None = None
    rule: str | None = None
    detail: str = ""
    matched: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.action == "pass"

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason_code": self.reason_code, "rule": self.rule, "detail": self.detail,
                "matched": list(self.matched)}


PASS: Final = Decision("pass")


def _screening_decision(matches: list[Match]) -> Decision:
    first = matches[0]
    lists = sorted({m.entry.list_name or "watch list" for m in matches})
    detail = (f"{first.field} matches a {first.entry.type} entry of {first.entry.list_name or 'the watch list'}"
              + (f" ({len(matches)} matches in all, lists: {', '.join(lists)})" if len(matches) > 1 else ""))
    return Decision("reject", SCREENING_REASON, SCREENING_RULE, detail,
                    tuple({"rule": SCREENING_RULE, **m.as_dict()} for m in matches))


def _rules_decision(hits: list[RuleHit]) -> Decision:
    deciding = next((h for h in hits if h.action == "reject"), hits[0])
    return Decision(deciding.action, deciding.reason_code, deciding.rule, deciding.detail,
                    tuple(h.as_dict() for h in hits))


def instruction_summary(instruction: PaymentInstruction) -> dict[str, Any]:
    """The payment as the audit trail records it next to a decision."""
    return {"uetr": str(instruction.uetr), "debtor_agent": instruction.debtor_agent,
            "creditor_agent": instruction.creditor_agent, "currency": instruction.currency,
            "amount": str(instruction.amount), "end_to_end_id": instruction.end_to_end_id,
            "message_type": instruction.message_type,
            "instruction_hash": "0x" + instruction.instruction_hash().hex()}


class RiskEngine:
    """Screening plus behaviour rules. Thread-safe; one per gateway."""

    def __init__(self, config: RiskConfig | None = None, *, watchlist: WatchListSource | WatchList | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config or RiskConfig()
        if isinstance(watchlist, WatchList):
            watchlist = WatchListSource.fixed(watchlist)
        self.watchlist = watchlist or WatchListSource(self.config.watchlist_path,
                                                      check_interval_ms=self.config.watchlist_check_interval_ms)
        self.clock = clock

    def reload_watchlist(self) -> WatchList:
        """Re-read the watch list file now (raises ConfigurationError, keeping the old list, if bad)."""
        return self.watchlist.reload(strict=True)

    def screen(self, instruction: PaymentInstruction) -> list[Match]:
        return self.watchlist.current().screen(instruction)

    def evaluate(self, session: Session, instruction: PaymentInstruction, parties: Any = None) -> Decision:
        """Decide about `instruction`; reads only (history from ``payment_intake``)."""
        return self._evaluate(session, instruction)[0]

    def _evaluate(self, session: Session, instruction: PaymentInstruction) -> tuple[Decision, WatchList]:
        watchlist = self.watchlist.current()
        matches = watchlist.screen(instruction)
        if matches:
            return _screening_decision(matches), watchlist
        hits = evaluate_rules(session, instruction, self.config, self.clock())
        return (_rules_decision(hits) if hits else PASS), watchlist

    def risk_check(self, session: Session, instruction: PaymentInstruction, parties: Any = None) -> Decision:
        """``IntakeContext.risk_check``: raise for "reject", record a "hold", return the decision."""
        decision, watchlist = self._evaluate(session, instruction)
        if decision.passed:
            return decision
        inputs: dict[str, Any] = {"payment": instruction_summary(instruction), "rule": decision.rule,
                                  "reason_code": decision.reason_code, "detail": decision.detail,
                                  "matched": list(decision.matched)}
        if decision.rule == SCREENING_RULE:
            inputs["watchlist"] = {"source": watchlist.source, "sha256": watchlist.digest, "entries": len(watchlist)}
        record_detached(session, actor=SYSTEM_ACTOR, action=AUDIT_ACTION, inputs=inputs, outcome=decision.action)
        if decision.action == "hold":
            holds.hold(session, str(instruction.uetr), decision)
            return decision
        raise rejection_for(decision, instruction)


def rejection_for(decision: Decision, instruction: PaymentInstruction) -> BusinessRejection:
    """The error a rejecting decision raises (422 with the decision's reason code).

    Screening tells the bank which of its payment's fields matched which list, not the list
    entry itself or its reason (those are in the audit trail for the operator).
    """
    uetr = str(instruction.uetr)
    if decision.rule == SCREENING_RULE:
        fields = sorted({str(m.get("field")) for m in decision.matched})
        lists = sorted({str((m.get("entry") or {}).get("list") or "watch list") for m in decision.matched})
        return ScreeningHit(f"the payment was stopped by regulatory screening: {', '.join(fields)} "
                            f"matched the watch list ({', '.join(lists)})", uetr=uetr, rule=SCREENING_RULE,
                            matched_fields=fields)
    return RiskRuleRejection(f"rejected by the {decision.rule} rule: {decision.detail}",
                             reason_code=decision.reason_code, uetr=uetr, rule=decision.rule)


__all__ = ["AUDIT_ACTION", "PASS", "Decision", "DecisionAction", "RiskEngine", "instruction_summary", "rejection_for"]
