"""Risk and compliance: participant limits, payments held by a risk rule, the audit trail.

- PUT /v1/participants/{bic}/limits: the operator sets caps (and bilateral caps); the bank
  itself sets its own limits within the caps (422 AM02 if looser, 403 AG01 for bilateral).
- GET /v1/risk/holds, POST /v1/risk/holds/{uetr}/release and /reject: the operator decides
  about payments a rule held; the gateway's ``release_held`` / ``reject_held`` move the
  payment's outbox row on in the same transaction.
- GET /v1/risk/watchlist, POST /v1/risk/watchlist/reload: which watch list is in force
  (file, SHA-256, entry counts, last reload error); reload it now (operator).
- GET /v1/audit/trail and /v1/audit/trail/verify: auditors and the operator read the
  hash-chained trail and have it recomputed.

Every change here is written to the audit trail in the transaction that makes it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Auditor, GatewayDep, Operator, PrincipalDep, SessionDep
from chain_gateway import audit_trail
from chain_gateway.errors import ConfigurationError, Conflict, Forbidden, GatewayError, InvalidMessage
from chain_gateway.onboarding import require_profile
from chain_gateway.risk import holds, limits

router = APIRouter(tags=["risk"])
_AMOUNT = Field(default=None, max_length=40, description='decimal string, "0" = no limit; omitted = unchanged')


# ------------------------------------------------------------------------- schemas
class LimitsUpdate(BaseModel):
    """Body of PUT /v1/participants/{bic}/limits."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(min_length=3, max_length=3)
    max_per_payment: str | None = _AMOUNT
    max_daily_outflow: str | None = _AMOUNT
    bilateral: dict[str, str] | None = Field(default=None, max_length=200,
                                             description="counterparty BIC -> daily cap (operator only)")


class LimitPair(BaseModel):
    max_per_payment: str | None
    max_daily_outflow: str | None


class LimitsPublic(BaseModel):
    bic: str
    currency: str
    caps: LimitPair
    own: LimitPair
    effective: LimitPair
    bilateral: dict[str, str | None]
    tx_hashes: list[str]


class HoldPublic(BaseModel):
    uetr: str
    rule: str
    reason_code: str
    detail: str
    matched: list[Any]
    created_at: datetime
    decision: Literal["released", "rejected"] | None
    decided_by: str | None
    decided_at: datetime | None
    debtor_agent: str | None
    creditor_agent: str | None
    currency: str | None
    amount: str | None
    end_to_end_id: str | None


class HoldsPublic(BaseModel):
    items: list[HoldPublic]
    next_cursor: str | None


class WatchListPublic(BaseModel):
    source: str
    sha256: str
    entries: int
    by_type: dict[str, int]
    loaded_at: str
    last_error: str | None


class AuditEntryPublic(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    inputs: dict[str, Any]
    outcome: str
    tx_hash: str | None
    prev_hash: str
    row_hash: str


class AuditTrailPublic(BaseModel):
    items: list[AuditEntryPublic]
    next_cursor: str | None


class BrokenLink(BaseModel):
    seq: int
    kind: Literal["content", "link", "sequence"]
    expected: str
    actual: str


class AuditHead(BaseModel):
    seq: int
    row_hash: str


class AuditVerifyPublic(BaseModel):
    ok: bool
    rows: int
    first_broken: BrokenLink | None
    head: AuditHead | None


# -------------------------------------------------------------------------- limits
@router.put("/v1/participants/{bic}/limits", response_model=LimitsPublic)
def put_limits(bic: str, body: LimitsUpdate, gateway: GatewayDep, session: SessionDep,
               principal: PrincipalDep) -> LimitsPublic:
    profile = require_profile(session, bic)
    client = gateway.require_client()
    kwargs: dict[str, Any] = {"bic": profile.bic, "currency": body.currency, "max_per_payment": body.max_per_payment,
                              "max_daily_outflow": body.max_daily_outflow, "bilateral": body.bilateral}
    actor = audit_trail.actor_of(principal)
    if principal.has("operator"):
        action, change = "limits.set_caps", limits.set_caps
    elif principal.has("bank") and principal.bic == profile.bic:
        action, change = "limits.set_own", limits.set_own
    else:
        raise Forbidden("only the operator, or the bank itself within the operator's caps, sets these limits")
    try:
        view = change(session, client, **kwargs)
    except GatewayError as exc:  # a refused change is on the record too (a bank trying to loosen, ...)
        outcome = f"error {type(exc).__name__} {exc.reason_code or ''}".strip()
        audit_trail.record_detached(session, actor=actor, action=action,
                                    inputs={**body.model_dump(), "bic": profile.bic}, outcome=outcome)
        raise
    audit_trail.record(session, actor=actor, action=action,
                       inputs={**body.model_dump(), "bic": profile.bic, "result": view.public()},
                       outcome="ok", tx_hash=view.tx_hashes[-1] if view.tx_hashes else None)
    session.commit()
    return LimitsPublic.model_validate(view.public())


# --------------------------------------------------------------------------- holds
def _gateway_hook(gateway: Any, name: str) -> Any:
    hook = getattr(gateway, name, None)
    if not callable(hook):
        raise ConfigurationError(f"this gateway cannot act on held payments yet (Gateway.{name} is missing)")
    return hook


@router.get("/v1/risk/holds", response_model=HoldsPublic)
def get_holds(session: SessionDep, _: Operator, pending_only: bool = Query(default=True),
              limit: int = Query(default=100, ge=1, le=1000),
              cursor: str | None = Query(default=None, max_length=40)) -> HoldsPublic:
    items, next_cursor = holds.list_holds(session, pending_only, limit=limit, after=cursor)
    return HoldsPublic(items=[HoldPublic.model_validate(i.public()) for i in items], next_cursor=next_cursor)


def _decide(uetr: str, gateway: GatewayDep, session: SessionDep, principal: Operator, release: bool) -> HoldPublic:
    hook = _gateway_hook(gateway, "release_held" if release else "reject_held")
    actor = audit_trail.actor_of(principal)
    row = (holds.release if release else holds.reject)(session, uetr, actor)
    hook(session, row.uetr)
    audit_trail.record(session, actor=actor, action="risk.hold.release" if release else "risk.hold.reject",
                       inputs={"uetr": row.uetr, "rule": row.rule, "reason_code": row.reason_code},
                       outcome=row.decision or "")
    session.commit()
    if release:
        for sender in (gateway.submitter, gateway.fx):  # a held order is in one of the two outboxes
            if sender is not None:
                sender.notify()
    return HoldPublic.model_validate(holds.held_payment(session, row).public())


@router.post("/v1/risk/holds/{uetr}/release", response_model=HoldPublic)
def release_hold(uetr: str, gateway: GatewayDep, session: SessionDep, principal: Operator) -> HoldPublic:
    return _decide(uetr, gateway, session, principal, release=True)


@router.post("/v1/risk/holds/{uetr}/reject", response_model=HoldPublic)
def reject_hold(uetr: str, gateway: GatewayDep, session: SessionDep, principal: Operator) -> HoldPublic:
    return _decide(uetr, gateway, session, principal, release=False)


# ------------------------------------------------------------------------ watch list
def _risk_engine(gateway: Any) -> Any:
    engine = getattr(gateway, "risk_engine", None)
    if engine is None:
        raise ConfigurationError("this gateway has no risk engine yet (Gateway.risk_engine is missing)")
    return engine


def _watchlist_view(engine: Any) -> WatchListPublic:
    return WatchListPublic(**engine.watchlist.current().summary(), last_error=engine.watchlist.last_error)


@router.get("/v1/risk/watchlist", response_model=WatchListPublic)
def watchlist(gateway: GatewayDep, _: Auditor) -> WatchListPublic:
    return _watchlist_view(_risk_engine(gateway))


@router.post("/v1/risk/watchlist/reload", response_model=WatchListPublic)
def reload_watchlist(gateway: GatewayDep, session: SessionDep, principal: Operator) -> WatchListPublic:
    """Re-read the watch-list file now; a file that does not parse is refused (409) and the
    previous list stays in force."""
    engine = _risk_engine(gateway)
    actor = audit_trail.actor_of(principal)
    try:
        loaded = engine.reload_watchlist()
    except ConfigurationError as exc:
        audit_trail.record_detached(session, actor=actor, action="risk.watchlist.reload", inputs={},
                                    outcome=f"error {exc.detail}"[:200])
        raise Conflict(f"the watch list was not reloaded, the previous list stays in force: {exc.detail}") from exc
    audit_trail.record(session, actor=actor, action="risk.watchlist.reload", inputs=loaded.summary(), outcome="ok")
    session.commit()
    return _watchlist_view(engine)


# ----------------------------------------------------------------------- audit trail
@router.get("/v1/audit/trail", response_model=AuditTrailPublic)
def trail(session: SessionDep, _: Auditor, cursor: str | None = Query(default=None, max_length=20),
          limit: int = Query(default=100, ge=1, le=1000), action: str | None = Query(default=None, max_length=64),
          actor: str | None = Query(default=None, max_length=64), since: datetime | None = None,
          until: datetime | None = None) -> AuditTrailPublic:
    if cursor is not None and not cursor.isdigit():
        raise InvalidMessage(f"cursor {cursor!r} is not one this endpoint returned")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidMessage(f"{name} needs a time zone (RFC 3339, e.g. 2026-01-31T00:00:00Z)")
    rows, next_seq = audit_trail.list_entries(session, after=int(cursor or 0), limit=limit, action=action,
                                              actor=actor, since=since, until=until)
    return AuditTrailPublic(items=[AuditEntryPublic.model_validate(r.public()) for r in rows],
                            next_cursor=None if next_seq is None else str(next_seq))


@router.get("/v1/audit/trail/verify", response_model=AuditVerifyPublic)
def trail_verify(session: SessionDep, _: Auditor) -> AuditVerifyPublic:
    return AuditVerifyPublic.model_validate(audit_trail.verify(session))
