"""Banks' payments: prepare (for self-signing banks), submit as JSON or ISO 20022 XML,
track by UETR, list. Idempotent by UETR (API.md)."""
from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from api.deps import Bank, GatewayDep, PrincipalDep, SessionDep, ensure_can_see
from api.errors import HttpProblem, problem
from api.schemas import PaymentPublic, PaymentsPublic, PrepareResult
from chain_gateway import payments as intake
from chain_gateway import tracker
from chain_gateway.errors import DuplicateUetr, GatewayError, InvalidMessage, NotFound, Unavailable
from chain_gateway.fx import FxService
from chain_gateway.instructions.pacs import parse_payment_message
from chain_gateway.instructions.pacs002 import StatusReport, TransactionStatus, render_pacs002
from chain_gateway.instructions.request import instruction_from_request, parse_payment_request
from chain_gateway.instructions.uetr import parse_uetr

router = APIRouter(tags=["payments"])
T = TypeVar("T")
XML_TYPES = ("application/xml", "text/xml")
# The body is read raw (JSON or XML by Content-Type); this documents the JSON form in OpenAPI.
_PAYMENT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["creditor_agent", "currency", "amount"],
                                    "properties": {
                                        "uetr": {"type": "string", "format": "uuid"},
                                        "creditor_agent": {"type": "string"}, "currency": {"type": "string"},
                                        "amount": {"type": "string"}, "end_to_end_id": {"type": "string"},
                                        "remittance_info": {"type": "string"},
                                        "priority": {"type": "string", "enum": ["normal", "urgent"]},
                                        "queue_if_insufficient": {"type": "boolean"},
                                        "deadline": {"type": "string", "format": "date-time"},
                                        "signature": {"type": "string"}}}},
    "application/xml": {"schema": {"type": "string", "description": "pacs.008 or pacs.009"}}}}}
MAX_WAIT_SECONDS = 60.0


def _fx(gateway: GatewayDep) -> FxService:
    if gateway.fx is None:
        raise Unavailable("the gateway is starting")
    return gateway.fx


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _wants_xml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(t in accept for t in XML_TYPES) and "application/json" not in accept


def _prefer_wait(request: Request) -> float | None:
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(float(value.strip()), MAX_WAIT_SECONDS)
    return None


# The two POST handlers are `async` only to read the raw body; everything after it (chain
# reads, signing, SQL, `Prefer: wait`) blocks, so it runs in the thread pool. Run on the event
# loop, one payment waiting on a slow or unreachable node stalled every other request,
# /healthz included, and `Prefer: wait=N` held the whole server for N seconds.
@router.post("/v1/payments/prepare", response_model=PrepareResult, openapi_extra=_PAYMENT_BODY)
async def prepare(request: Request, gateway: GatewayDep, session: SessionDep, principal: Bank) -> PrepareResult:
    if _media_type(request) != "application/json":
        raise HttpProblem(415, "Unsupported media type", "prepare takes a JSON payment body")
    body = await request.body()
    return await run_in_threadpool(_prepare, gateway, session, principal.bic or "", body)


def _prepare(gateway: GatewayDep, session: SessionDep, bic: str, body: bytes) -> PrepareResult:
    req = parse_payment_request(body)
    instruction = instruction_from_request(req, bic, directory=gateway.directory)
    deadline = int(req.deadline.timestamp()) if req.deadline else None
    if instruction.fx is not None:  # the debtor signs an FxOrder naming the quote
        return PrepareResult(**_fx(gateway).prepare(gateway.intake_context(), session, instruction, deadline))
    return PrepareResult(**intake.prepare(gateway.intake_context(), instruction, deadline))


@router.post("/v1/payments", response_model=PaymentPublic, status_code=202,
             responses={200: {"model": PaymentPublic}, 201: {"model": PaymentPublic}}, openapi_extra=_PAYMENT_BODY)
async def submit(request: Request, gateway: GatewayDep, session: SessionDep, principal: Bank) -> Response:
    body = await request.body()
    run = _intake_runner(request)
    outcome = await run(_submit, request, gateway, session, principal, body)
    if isinstance(outcome, Response):
        return outcome
    view = outcome.view
    if outcome.wait and outcome.created:
        # Waiting for finality holds neither a thread nor a database connection: the indexer
        # wakes this request when an update names its UETR (tracker.wait_final_async).
        view = await tracker.wait_final_async(gateway, outcome.uetr, outcome.wait, current=view,
                                              version=outcome.version, run=run, intake=outcome.intake_row) or view
    if view is None:  # pragma: no cover - the row was just committed
        raise NotFound("payment vanished")
    status = 200 if not outcome.created else (201 if view.status in tracker.FINAL else 202)
    return JSONResponse(view.public(), status_code=status, headers={"Location": f"/v1/payments/{view.uetr}"})


#: Threads that may run intake at once. Intake is CPU-bound Python (one interpreter lock):
#: more threads add no throughput, only lock handoffs, which cost CPU of their own (measured:
#: 40 busy threads spent ~60% more CPU per payment than one).
INTAKE_THREADS = 8


def _intake_runner(request: Request) -> Callable[..., Awaitable[Any]]:
    """``run_in_threadpool`` with the app's own small limiter for intake (created on first use,
    on the app's event loop)."""
    limiter = getattr(request.app.state, "intake_limiter", None)
    if limiter is None:
        limiter = request.app.state.intake_limiter = anyio.CapacityLimiter(INTAKE_THREADS)

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter)
    return run


@dataclass(frozen=True)
class _Accepted:
    """A JSON payment accepted (or replayed) in the thread pool, to answer on the event loop."""

    uetr: str
    created: bool
    view: tracker.TrackerView | None
    wait: float | None
    version: int  # the change signal's version when `view` was read
    intake_row: intake.PaymentIntake | None = None  # the row written (a new payment), for the final view


def _submit(request: Request, gateway: GatewayDep, session: SessionDep, principal: Bank,
            body: bytes) -> Response | _Accepted:
    media = _media_type(request)
    ctx = gateway.intake_context()
    if media == "application/json":
        req = parse_payment_request(body)
        instruction = instruction_from_request(req, principal.bic or "", directory=gateway.directory)
        deadline = int(req.deadline.timestamp()) if req.deadline else None
        if instruction.fx is not None:  # payment-versus-payment through FxSettlement
            fx = _fx(gateway)
            accepted = _once(session, lambda: fx.accept(ctx, session, instruction, signature=req.signature_bytes(),
                                                        deadline=deadline))
            fx.notify()
        else:
            accepted = _once(session, lambda: intake.accept(ctx, session, instruction,
                                                            signature=req.signature_bytes(), deadline=deadline))
            gateway.submitter.notify()
        version = gateway.changes.version
        wait = _prefer_wait(request)
        if accepted.created and accepted.outbox is not None:
            view = tracker.view_of_accepted(session, accepted.intake, accepted.outbox, ask_mirror=not wait)
        else:
            view = tracker.view(session, str(instruction.uetr))
        session.close()  # the connection goes back to the pool before any wait for finality
        return _Accepted(str(instruction.uetr), accepted.created, view, wait, version,
                         accepted.intake if accepted.created else None)
    if media in XML_TYPES:
        return _submit_xml(request, gateway, session, principal.bic or "", body, ctx)
    raise HttpProblem(415, "Unsupported media type",
                      "send application/json, or application/xml with a pacs.008 / pacs.009 message")


def _once(session: SessionDep, accept: Callable[[], T]) -> T:
    """Accept and commit. Two requests with one UETR at the same moment both find no row and
    both insert; the loser's insert fails on the UETR key (IntegrityError, a 500 before). It
    then runs again and meets the winner's row: the same content is a replay (200), another
    one DuplicateUetr (409), exactly as if it had come second."""
    try:
        accepted = accept()
        session.commit()
    except IntegrityError:
        session.rollback()
        accepted = accept()
        session.commit()
    return accepted


def _submit_xml(request: Request, gateway: GatewayDep, session: SessionDep, bic: str, body: bytes,
                ctx: intake.IntakeContext) -> Response:
    """A pacs.008/pacs.009 of one or many transactions: schema errors reject it whole,
    business rejections are per transaction."""
    parsed = parse_payment_message(body, gateway.directory, caller_bic=bic,  # type: ignore[arg-type]
                                   max_bytes=gateway.settings.max_body_bytes)
    # One UETR on two transactions of one message is a malformed message, not a business
    # rejection of the second: refused whole (400 FF01), so the first does not pay either.
    for tx in parsed.transactions:
        if isinstance(tx.rejection, DuplicateUetr) and "first_index" in tx.rejection.fields:
            raise InvalidMessage(f"UETR {tx.uetr} appears on transactions {tx.rejection.fields['first_index'] + 1} "
                                 f"and {tx.index + 1} of this message: nothing was accepted", uetr=str(tx.uetr))
    statuses: list[TransactionStatus] = []
    items: list[dict[str, object]] = []
    for tx in parsed.transactions:
        if tx.instruction is None:
            rejection = tx.rejection
            statuses.append(TransactionStatus(status="RJCT", uetr=tx.uetr, end_to_end_id=tx.end_to_end_id,
                                              instruction_id=tx.instruction_id, transaction_id=tx.transaction_id,
                                              reason_code=tx.reason_code,
                                              additional_info=rejection.detail if rejection else None))
            items.append({"uetr": str(tx.uetr), "status": "RJCT", "reason_code": tx.reason_code,
                          "detail": rejection.detail if rejection else None})
            continue
        try:
            try:
                with session.begin_nested():
                    intake.accept(ctx, session, tx.instruction)
            except IntegrityError:  # a concurrent request stored this UETR first: replay it
                with session.begin_nested():
                    intake.accept(ctx, session, tx.instruction)
        except GatewayError as exc:
            statuses.append(TransactionStatus(status="RJCT", uetr=tx.uetr, end_to_end_id=tx.end_to_end_id,
                                              instruction_id=tx.instruction_id, transaction_id=tx.transaction_id,
                                              reason_code=exc.reason_code or "NARR", additional_info=exc.detail))
            items.append({"uetr": str(tx.uetr), "status": "RJCT", "reason_code": exc.reason_code,
                          "detail": exc.detail})
            continue
        view = tracker.view(session, str(tx.uetr))
        items.append(view.public() if view else {"uetr": str(tx.uetr), "status": "RCVD"})
        statuses.append(TransactionStatus(status="RCVD", uetr=tx.uetr, end_to_end_id=tx.end_to_end_id,
                                          instruction_id=tx.instruction_id, transaction_id=tx.transaction_id))
    session.commit()
    gateway.submitter.notify()
    any_accepted = any(s.status != "RJCT" for s in statuses)
    code = 202 if any_accepted else 422
    if _wants_xml(request):
        report = StatusReport(message_id=f"STS{uuid.uuid4().hex[:28]}", created_at=dt.datetime.now(dt.UTC),
                              original_message_id=parsed.message_id, original_message_name=parsed.version,
                              transactions=statuses)
        return Response(render_pacs002(report), status_code=code, media_type="application/xml")
    if not any_accepted:
        # Nothing accepted: an error like any other (RFC 9457), the per-transaction items kept
        # as an extension member so a client reads them exactly as in a 202.
        first = next((i for i in items if i.get("reason_code")), {})
        return problem(422, "Every transaction rejected",
                       f"none of the {len(items)} transactions of message {parsed.message_id} was accepted"
                       + (f"; the first: {first.get('detail')}" if first.get("detail") else ""),
                       reason_code=str(first.get("reason_code") or "NARR"), message_id=parsed.message_id, items=items)
    return JSONResponse({"message_id": parsed.message_id, "items": items}, status_code=code)


@router.get("/v1/payments/{uetr}", response_model=PaymentPublic)
def get_payment(uetr: str, request: Request, session: SessionDep, principal: PrincipalDep) -> Response:
    try:
        key = str(parse_uetr(uetr))
    except InvalidMessage as exc:
        raise NotFound(f"no payment {uetr[:40]}") from exc
    view = tracker.view(session, key)
    if view is None:
        raise NotFound(f"no payment {key}")
    ensure_can_see(principal, view.debtor_agent, view.creditor_agent)
    if _wants_xml(request):
        report = StatusReport(message_id=f"STS{uuid.uuid4().hex[:28]}", created_at=dt.datetime.now(dt.UTC),
                              original_message_id=view.message_id or "NOTPROVIDED",
                              original_message_name=view.message_name(),
                              transactions=[TransactionStatus(status=view.status, uetr=uuid.UUID(view.uetr),
                                                              end_to_end_id=view.end_to_end_id,
                                                              reason_code=view.reason_code)])
        return Response(render_pacs002(report), media_type="application/xml")
    return JSONResponse(view.public())


@router.get("/v1/payments", response_model=PaymentsPublic)
def list_payments(session: SessionDep, principal: PrincipalDep,
                  status: str | None = Query(default=None, max_length=4),
                  currency: str | None = Query(default=None, max_length=3),
                  counterparty: str | None = Query(default=None, max_length=11),
                  since: dt.datetime | None = None, until: dt.datetime | None = None,
                  cursor: str | None = Query(default=None, max_length=64),
                  limit: int = Query(default=100, ge=1, le=1000)) -> PaymentsPublic:
    if not principal.has("bank", "auditor", "operator"):
        from chain_gateway.errors import Forbidden
        raise Forbidden("listing payments needs a bank, auditor or operator key")
    own = None if principal.has("auditor", "operator") else principal.bic
    views, next_cursor = tracker.list_views(session, bic=own, status=status, currency=currency,
                                            counterparty=counterparty, since=since, until=until, cursor=cursor,
                                            limit=limit)
    return PaymentsPublic(items=[PaymentPublic(**v.public()) for v in views], next_cursor=next_cursor)
