"""The liquidity queue: what waits (GET /v1/queue), queue management by the debtor (cancel,
hold, release, priority) and gridlock resolution by the operator (POST /v1/queue/resolve).

Needs ``gateway.queue`` (a ``chain_gateway.queue.QueueService``), which the Gateway starts."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.deps import Bank, GatewayDep, Operator, PrincipalDep, SessionDep
from chain_gateway.errors import Forbidden, InvalidMessage, NotFound, Unavailable
from chain_gateway.instructions.currency import validate_currency
from chain_gateway.instructions.uetr import parse_uetr
from chain_gateway.onboarding import require_profile
from chain_gateway.queue import QueueService

router = APIRouter(tags=["queue"])


def get_queue(gateway: GatewayDep) -> QueueService:
    service = getattr(gateway, "queue", None)
    if not isinstance(service, QueueService):
        raise Unavailable("the queue service is not running")
    return service


QueueDep = Annotated[QueueService, Depends(get_queue)]


class QueueEntryPublic(BaseModel):
    uetr: str
    status: Literal["PDNG"]
    debtor_agent: str | None
    creditor_agent: str | None
    currency: str
    amount: str
    priority: Literal["normal", "urgent"]
    held: bool
    queue_seq: int
    tx_hash: str
    block_number: int


class QueuePublic(BaseModel):
    items: list[QueueEntryPublic]
    next_cursor: str | None = None


class QueueActionPublic(BaseModel):
    uetr: str
    status: Literal["PDNG", "CANC"]
    held: bool | None = None
    priority: Literal["normal", "urgent"] | None = None
    tx_hash: str


class PriorityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    urgent: StrictBool


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_limit_seconds: float | None = Field(default=None, gt=0, le=120)


class ResolutionPublic(BaseModel):
    block_number: int | None
    queued: int
    proposed: int
    proposed_value: dict[str, str]
    settled_count: int
    settled_value: dict[str, str]
    method: str
    solver_seconds: float
    gap: float | None
    optimal: bool
    path: str
    tx_hashes: list[str]
    gas_used: int
    gas_per_payment: int | None
    batch_id: str | None
    rejected_reason: str | None


def _uetr(value: str) -> str:
    try:
        return str(parse_uetr(value))
    except InvalidMessage as exc:
        raise NotFound(f"no payment {value[:40]}") from exc


@router.get("/v1/queue", response_model=QueuePublic)
def list_queue(queue: QueueDep, session: SessionDep, principal: PrincipalDep,
               currency: str | None = Query(default=None, max_length=3)) -> QueuePublic:
    """Queued payments, urgent first then first in first out: all for the operator and auditors,
    a bank's own (as debtor or creditor) for a bank."""
    if principal.has("operator", "auditor"):
        participant = None
    elif principal.has("bank") and principal.bic:
        participant = require_profile(session, principal.bic).address
    else:
        raise Forbidden("the queue is for banks, auditors and the operator")
    items = queue.items(session, participant=participant,
                        currency=validate_currency(currency) if currency else None)
    return QueuePublic(items=[QueueEntryPublic(**i.public()) for i in items])


@router.delete("/v1/payments/{uetr}", response_model=QueueActionPublic)
def cancel(uetr: str, queue: QueueDep, session: SessionDep, principal: Bank) -> dict[str, Any]:
    """The debtor cancels its queued payment (CANC); 409 when it is not queued."""
    return queue.cancel(session, uetr=_uetr(uetr), debtor_bic=principal.bic)


@router.post("/v1/payments/{uetr}/hold", response_model=QueueActionPublic)
def hold(uetr: str, queue: QueueDep, session: SessionDep, principal: Bank) -> dict[str, Any]:
    """The debtor holds its queued payment: it stays queued and is never settled until released."""
    return queue.hold(session, uetr=_uetr(uetr), debtor_bic=principal.bic, held=True)


@router.post("/v1/payments/{uetr}/release", response_model=QueueActionPublic)
def release(uetr: str, queue: QueueDep, session: SessionDep, principal: Bank) -> dict[str, Any]:
    """The debtor releases a held payment back into normal queue processing."""
    return queue.hold(session, uetr=_uetr(uetr), debtor_bic=principal.bic, held=False)


@router.post("/v1/payments/{uetr}/priority", response_model=QueueActionPublic)
def priority(uetr: str, body: PriorityRequest, queue: QueueDep, session: SessionDep,
             principal: Bank) -> dict[str, Any]:
    """The debtor makes its queued payment urgent (ahead of every normal payment) or normal."""
    return queue.set_priority(session, uetr=_uetr(uetr), debtor_bic=principal.bic, urgent=body.urgent)


@router.post("/v1/queue/resolve", response_model=ResolutionPublic)
def resolve(queue: QueueDep, principal: Operator, body: ResolveRequest | None = None) -> dict[str, Any]:
    """Gridlock resolution now: the largest settleable subset of the queue, settled at once."""
    return queue.resolve(time_limit=body.time_limit_seconds if body else None).public()
