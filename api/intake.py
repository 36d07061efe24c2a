"""Group commit for JSON payment intake (``POST /v1/payments`` with a JSON body).

Requests that arrive together are accepted together, by one intake thread:

1. every body is parsed and translated (pydantic, BIC checks) as before;
2. the chain reads the checks need, for the whole group, go in ONE JSON-RPC batch: both
   parties' registry status, each debtor's balance, the ledger's pause flag;
3. ``payments.precheck`` does each payment's checks that need no database (parties,
   liquidity, deadline, the signature verified or made) before the write lock is taken;
   its errors are kept and raised by ``accept`` where they would have been raised;
4. one SQLite transaction (``BEGIN IMMEDIATE``, so the write lock is taken once, up front)
   runs ``payments.accept`` for each payment in a savepoint of its own (idempotency by
   UETR, risk rules, the intake and outbox rows): a payment that fails a check (signature,
   limits, risk, duplicate UETR...) rolls back its own savepoint and answers with its own
   error, exactly as it would have alone;
5. one COMMIT; only then is any request answered and the submitter woken, so an accepted
   instruction is durably in the outbox before its 202/201 and before any transaction
   carries it (as before, one commit per request).

Why: under load the per-request path spent most of its time not working but waiting, for
the database's write lock (each request's transaction took it) and for the interpreter
lock (8 intake threads, the event loop, the indexer and the submitter taking turns, each
hand-off up to 5 ms). One thread with one transaction per group takes the write lock once
per group and makes one chain round trip per group.

Anything the group path does not handle (an FX payment, a database error in the group
transaction) is accepted alone, in this thread, exactly as before (``accept_alone``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chain_gateway import payments as intake
from chain_gateway import tracker
from chain_gateway.errors import GatewayError, Unavailable
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.instructions.request import PaymentRequest, instruction_from_request, parse_payment_request
from chain_gateway.runtime import intake_writes

log = logging.getLogger("api.intake")

#: At most this many payments in one group transaction (it holds the write lock meanwhile).
MAX_GROUP = 128


@dataclass(frozen=True)
class Accepted:
    """A JSON payment accepted (or replayed), to answer on the event loop."""

    uetr: str
    created: bool
    view: tracker.TrackerView | None
    wait: float | None
    version: int  # the change signal's version when `view` was read
    intake_row: intake.PaymentIntake | None = None  # the row written (a new payment), for the final view


@dataclass
class _Job:
    bic: str
    body: bytes
    wait: float | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    # filled in by the intake thread
    req: PaymentRequest | None = None
    instruction: PaymentInstruction | None = None
    deadline: int | None = None
    prechecked: intake.Prechecked | None = None
    acceptance: intake.Acceptance | None = None
    result: Any = None
    error: BaseException | None = None
    alone: bool = False  # to be accepted on its own (FX payment, or the group path could not)


def accept_alone(gateway: Any, session: Session, bic: str, body: bytes, wait: float | None,
                 req: PaymentRequest | None = None, instruction: PaymentInstruction | None = None) -> Accepted:
    """One JSON payment in its own transaction (the path every payment took before groups)."""
    from api.routes.payments import _fx, _once

    ctx = gateway.intake_context()
    if req is None or instruction is None:
        req = parse_payment_request(body)
        instruction = instruction_from_request(req, bic, directory=gateway.directory)
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
    if accepted.created and accepted.outbox is not None:
        view = tracker.view_of_accepted(session, accepted.intake, accepted.outbox, ask_mirror=not wait)
    else:
        view = tracker.view(session, str(instruction.uetr))
    session.close()  # the connection goes back to the pool before any wait for finality
    return Accepted(str(instruction.uetr), accepted.created, view, wait, version,
                    accepted.intake if accepted.created else None)


class IntakeGroups:
    """The intake thread and its queue (one per app). ``submit`` is called on the event loop."""

    def __init__(self, gateway: Any, *, max_group: int = MAX_GROUP) -> None:
        self.gateway = gateway
        self.max_group = max_group
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.groups = 0  # counters, for benchmarks and tests
        self.payments = 0

    async def submit(self, bic: str, body: bytes, wait: float | None) -> Accepted:
        loop = asyncio.get_running_loop()
        job = _Job(bic, body, wait, loop, loop.create_future())
        with self._cond:
            if self._stopped:
                raise Unavailable("the gateway is stopping")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intake-groups", daemon=True)
                self._thread.start()
            self._jobs.append(job)
            self._cond.notify()
        return await job.future  # type: ignore[no-any-return]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        with intake_writes():  # the submitter's and indexer's writes go first
            self._loop()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stopped:
                    self._cond.wait()
                if not self._jobs:
                    return
                jobs = [self._jobs.popleft() for _ in range(min(self.max_group, len(self._jobs)))]
            try:
                self._group(jobs)
            except BaseException as exc:
                log.exception("intake group failed")
                for job in jobs:
                    if job.result is None and job.error is None:
                        job.error = exc
            self._answer(jobs)

    @staticmethod
    def _answer(jobs: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, group)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _group(self, jobs: list[_Job]) -> None:
        gateway = self.gateway
        if not gateway.started or gateway.sessions is None:
            raise Unavailable("the gateway is starting")
        for job in jobs:
            try:
                job.req = parse_payment_request(job.body)
                job.instruction = instruction_from_request(job.req, job.bic, directory=gateway.directory)
                job.deadline = int(job.req.deadline.timestamp()) if job.req.deadline else None
                job.alone = job.instruction.fx is not None
            except Exception as exc:  # noqa: BLE001 - answered as that request's own error
                job.error = exc
        group = [j for j in jobs if j.error is None and not j.alone]
        if group:
            self._accept_group(group)
        for job in jobs:
            if job.error is None and job.result is None:
                self._accept_alone(job)
        self.groups += 1
        self.payments += len(jobs)

    def _accept_alone(self, job: _Job) -> None:
        try:
            with self.gateway.require_sessions()() as session:
                job.result = accept_alone(self.gateway, session, job.bic, job.body, job.wait, job.req,
                                          job.instruction)
        except Exception as exc:  # noqa: BLE001 - answered as that request's own error
            job.error = exc

    def _accept_group(self, jobs: list[_Job]) -> None:
        gateway = self.gateway
        ctx = gateway.intake_context(group=[(j.instruction.debtor_agent, j.instruction.creditor_agent,  # type: ignore[union-attr]
                                             j.instruction.currency) for j in jobs])  # type: ignore[union-attr]
        for job in jobs:  # the checks and signatures, before the write lock is taken
            try:
                job.prechecked = intake.precheck(ctx, job.instruction,  # type: ignore[arg-type]
                                                 signature=job.req.signature_bytes(),  # type: ignore[union-attr]
                                                 deadline=job.deadline)
            except Exception as exc:  # noqa: BLE001 - not a business error (a node down...): that request's
                job.error = exc
        jobs = [j for j in jobs if j.error is None]
        if not jobs:
            return
        session = gateway.require_sessions()()
        try:
            try:
                if session.get_bind().dialect.name == "sqlite":
                    # take the write lock now, once for the group: a deferred transaction that
                    # reads first could not upgrade after another writer's commit (SQLITE_BUSY)
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
                # idempotency by UETR: which of the group's UETRs have an intake row, in one query
                # (SQLite: under the write lock, none can appear before this transaction ends;
                # elsewhere a concurrent insert fails on the key and that payment goes alone)
                uetrs = [str(j.instruction.uetr) for j in jobs]  # type: ignore[union-attr]
                known = set(session.scalars(select(intake.PaymentIntake.uetr)
                                            .where(intake.PaymentIntake.uetr.in_(uetrs))))
                seen: set[str] = set()
                for job, uetr in zip(jobs, uetrs, strict=True):
                    if job.prechecked is not None:
                        job.prechecked.new_uetr = uetr not in known and uetr not in seen
                    seen.add(uetr)
                for job in jobs:
                    try:
                        with session.begin_nested():
                            job.acceptance = intake.accept(ctx, session, job.instruction,  # type: ignore[arg-type]
                                                           deadline=job.deadline, prechecked=job.prechecked)
                    except GatewayError as exc:
                        job.error = exc
                    except IntegrityError:
                        job.alone = True  # a concurrent writer of the same UETR: alone, as before
                session.commit()
            except Exception:
                session.rollback()
                log.warning("group intake of %d payments failed; accepting them one by one", len(jobs),
                            exc_info=True)
                for job in jobs:
                    job.acceptance, job.error, job.alone = None, None, True
                return
            if any(j.acceptance is not None and j.acceptance.created for j in jobs):
                gateway.submitter.notify()
            version = gateway.changes.version
            for job in jobs:
                accepted = job.acceptance
                if accepted is None or job.instruction is None:
                    continue
                try:
                    if accepted.created and accepted.outbox is not None:
                        view = tracker.view_of_accepted(session, accepted.intake, accepted.outbox,
                                                        ask_mirror=not job.wait)
                    else:
                        view = tracker.view(session, str(job.instruction.uetr))
                    job.result = Accepted(str(job.instruction.uetr), accepted.created, view, job.wait, version,
                                          accepted.intake if accepted.created else None)
                except Exception as exc:  # noqa: BLE001 - stored and committed; the view failed
                    job.error = exc
        finally:
            session.close()


def _resolve_all(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


__all__ = ["Accepted", "IntakeGroups", "accept_alone"]
