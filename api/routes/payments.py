"""Banks' payments: prepare (for self-signing banks), submit as JSON or ISO 20022 XML,
track by UETR, list. Idempotent by UETR (API.md)."""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from api.deps import Bank, GatewayDep, PrincipalDep, SessionDep, ensure_can_see
from api.errors import HttpProblem, problem
from api.intake import IntakeGroups
from api.schemas import PaymentPublic, PaymentsPublic, PrepareResult
from chain_gateway import payments as intake
from chain_gateway import tracker
from chain_gateway.errors import DuplicateUetr, GatewayError, InvalidMessage, NotFound, Unavailable
from chain_gateway.fx import FxService
from chain_gateway.instructions.pacs import parse_payment_message
from chain_gateway.instructions.pacs002 import StatusReport, TrackerStatus, TransactionStatus, render_pacs002
from chain_gateway.instructions.request import instruction_from_request, parse_payment_request
from chain_gateway.instructions.uetr import parse_uetr
from chain_gateway.runtime import intake_writes

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
# reads, signing, SQL) blocks, so it runs off the event loop: in the thread pool, or for a
# JSON payment in the intake thread (api/intake.py, group commit). Run on the event loop, one
# payment waiting on a slow or unreachable node stalled every other request, /healthz
# included. `Prefer: wait=N` waits on the event loop without holding a thread.
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
async def submit(request: Request, gateway: GatewayDep, principal: Bank) -> Response:
    body = await request.body()
    media = _media_type(request)
    run = _intake_runner(request)
    if media == "application/json":
        # accepted together with whatever arrived at the same time: one transaction, one
        # commit, one chain round trip for the group (api/intake.py)
        outcome = await _intake_groups(request, gateway).submit(principal.bic or "", body, _prefer_wait(request))
    elif media in XML_TYPES:
        return await run(_submit_xml_alone, request, gateway, principal.bic or "", body)  # type: ignore[no-any-return]
    else:
        raise HttpProblem(415, "Unsupported media type",
                          "send application/json, or application/xml with a pacs.008 / pacs.009 message")
    view = outcome.view
    if outcome.wait and outcome.created:
        # Waiting for finality holds neither a thread nor a database connection: the indexer
        # wakes this request when an update names its UETR (tracker.wait_final_async).
        view = await tracker.wait_final_async(gateway, outcome.uetr, outcome.wait, current=view,
                                              version=outcome.version, run=run, intake=outcome.intake_row,
                                              reads=_group_reads(request, gateway, run)) or view
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


def _intake_groups(request: Request, gateway: GatewayDep) -> IntakeGroups:
    groups: IntakeGroups | None = getattr(request.app.state, "intake_groups", None)
    if groups is None or groups.gateway is not gateway:
        groups = request.app.state.intake_groups = IntakeGroups(gateway)
    return groups


def _group_reads(request: Request, gateway: GatewayDep, run: Callable[..., Awaitable[Any]]) -> tracker.GroupReads:
    reads: tracker.GroupReads | None = getattr(request.app.state, "group_reads", None)
    if reads is None or reads.gateway is not gateway or reads.loop is not asyncio.get_running_loop():
        reads = request.app.state.group_reads = tracker.GroupReads(gateway, run)
    return reads


def _submit_xml_alone(request: Request, gateway: GatewayDep, bic: str, body: bytes) -> Response:
    with intake_writes(), gateway.require_sessions()() as session:
        try:
            return _submit_xml(request, gateway, session, bic, body)
        except Exception:
            session.rollback()
            raise


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


def _submit_xml(request: Request, gateway: GatewayDep, session: SessionDep, bic: str, body: bytes) -> Response:
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
    # As for JSON groups (api/intake.py): the chain reads of all transactions in one round trip,
    # each one's checks and signature before the write lock, which is then taken once.
    valid = [tx.instruction for tx in parsed.transactions if tx.instruction is not None]
    ctx = gateway.intake_context(group=[(i.debtor_agent, i.creditor_agent, i.currency) for i in valid])
    prechecked = {id(i): intake.precheck(ctx, i) for i in valid}
    if valid and session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
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
        pre = prechecked[id(tx.instruction)]
        try:
            try:
                with session.begin_nested():
                    accepted = intake.accept(ctx, session, tx.instruction, prechecked=pre)
            except IntegrityError:  # a concurrent request stored this UETR first: replay it
                with session.begin_nested():
                    accepted = intake.accept(ctx, session, tx.instruction, prechecked=pre)
        except GatewayError as exc:
            statuses.append(TransactionStatus(status="RJCT", uetr=tx.uetr, end_to_end_id=tx.end_to_end_id,
                                              instruction_id=tx.instruction_id, transaction_id=tx.transaction_id,
                                              reason_code=exc.reason_code or "NARR", additional_info=exc.detail))
            items.append({"uetr": str(tx.uetr), "status": "RJCT", "reason_code": exc.reason_code,
                          "detail": exc.detail})
            continue
        if accepted.created and accepted.outbox is not None:
            view = tracker.view_of_accepted(session, accepted.intake, accepted.outbox)
        else:
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
async def get_payment(uetr: str, request: Request, gateway: GatewayDep, principal: PrincipalDep) -> Response:
    try:
        key = str(parse_uetr(uetr))
    except InvalidMessage as exc:
        raise NotFound(f"no payment {uetr[:40]}") from exc
    # read together with the other requests reading payments at this moment (one thread hop,
    # one session, one query per table), as the requests waiting for finality do
    run = _intake_runner(request)
    view = await _group_reads(request, gateway, run).read(key, None)
    if view is None:
        raise NotFound(f"no payment {key}")
    ensure_can_see(principal, view.debtor_agent, view.creditor_agent)
    if _wants_xml(request):
        report = StatusReport(message_id=f"STS{uuid.uuid4().hex[:28]}", created_at=dt.datetime.now(dt.UTC),
                              original_message_id=view.message_id or "NOTPROVIDED",
                              original_message_name=view.message_name(),
                              transactions=[TransactionStatus(status=cast(TrackerStatus, view.status), uetr=uuid.UUID(view.uetr),
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
