"""The gpi-style tracker a bank reads: gateway-side statuses (RCVD when accepted, ACSP once
sent to the chain) merged with what the chain did, as mirrored (PDNG, ACSC, RJCT, CANC).

The mirror is the source of chain statuses; intake and outbox rows only add what happened
before the chain saw the payment.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chain_gateway.access import ParticipantProfile, get_profile
from chain_gateway.fx import FxPaymentEntry
from chain_gateway.instructions.currency import from_minor
from chain_gateway.mirror import repository as mirror
from chain_gateway.mirror.models import Payment
from chain_gateway.outbox.models import OutboxEntry, OutboxState
from chain_gateway.payments import PaymentIntake
from chain_gateway.risk.holds import get_hold

FINAL = frozenset({"ACSC", "RJCT", "CANC"})


def reference_text(ref: str | None) -> str | None:
    """A funding reference as the operator wrote it: bytes32 right-padded ASCII decoded;
    a hashed (long) reference stays hex."""
    if not ref or not ref.startswith("0x"):
        return ref
    raw = bytes.fromhex(ref[2:]).rstrip(b"\0")
    return raw.decode() if raw and raw.isascii() and raw.decode().isprintable() else ref


def _camt_reference(ref: str | None) -> str | None:
    text = reference_text(ref)
    return text if text is not None and len(text) <= 35 else None


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TrackerView:
    uetr: str
    status: str
    reason_code: str | None
    debtor_agent: str
    creditor_agent: str
    currency: str
    amount: str
    end_to_end_id: str | None = None
    instruction_hash: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    message_id: str | None = None
    message_type: str = "json"
    history: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"uetr": self.uetr, "status": self.status, "reason_code": self.reason_code,
                "debtor_agent": self.debtor_agent, "creditor_agent": self.creditor_agent,
                "currency": self.currency, "amount": self.amount, "end_to_end_id": self.end_to_end_id,
                "instruction_hash": self.instruction_hash, "tx_hash": self.tx_hash,
                "block_number": self.block_number, "history": self.history}

    def message_name(self) -> str:
        return {"pacs.008": "pacs.008.001.08", "pacs.009": "pacs.009.001.08"}.get(self.message_type,
                                                                                  "pacs.008.001.08")


def _compose(intake: PaymentIntake | None, outbox: OutboxEntry | FxPaymentEntry | None,
             chain: mirror.PaymentView | None,
             session: Session, chain_history: list[mirror.PaymentHistoryItem] | None = None) -> TrackerView | None:
    if intake is None and chain is None:
        return None
    history: list[dict[str, Any]] = []
    if intake is not None:
        history.append({"status": "RCVD", "at": _iso(intake.received_at), "reason_code": None, "tx_hash": None,
                        "block_number": None})
    if outbox is not None and outbox.tx_hash is not None:
        history.append({"status": "ACSP", "at": _iso(outbox.updated_at), "reason_code": None,
                        "tx_hash": outbox.tx_hash, "block_number": None})
    if chain is not None:
        items = chain_history if chain_history is not None else mirror.payment_history(session=session,
                                                                                    uetr=chain.uetr)
        for item in items:
            history.append({"status": item.status, "at": _iso(item.at), "reason_code": item.reason_code,
                            "tx_hash": item.tx_hash, "block_number": item.block_number})
        status, reason = chain.status, chain.reason_code
    elif outbox is not None and outbox.state in (OutboxState.HELD, OutboxState.REJECTED):
        hold = get_hold(session, outbox.uetr)
        status = "PDNG" if outbox.state == OutboxState.HELD else "RJCT"
        reason = hold.reason_code if hold is not None else None
    elif outbox is not None and outbox.state == OutboxState.FAILED:
        status, reason = "RJCT", "NARR"
    else:
        status, reason = ("ACSP" if outbox is not None and outbox.tx_hash else "RCVD"), None
    if intake is not None:
        debtor, creditor, currency = intake.debtor_agent, intake.creditor_agent, intake.currency
        amount = str(Decimal(intake.amount).quantize(from_minor(currency, 1)))
    elif chain is not None:
        debtor, creditor, currency = chain.debtor_bic or "", chain.creditor_bic or "", chain.currency or ""
        amount = str(from_minor(currency, chain.amount or 0)) if currency else "0"
    else:  # unreachable: the first line returned
        return None
    return TrackerView(
        uetr=(intake.uetr if intake else chain.uetr),  # type: ignore[union-attr]
        status=status, reason_code=reason, debtor_agent=debtor, creditor_agent=creditor, currency=currency,
        amount=amount, end_to_end_id=intake.end_to_end_id if intake else None,
        instruction_hash=intake.instruction_hash if intake else (chain.instruction_hash if chain else None),
        tx_hash=chain.tx_hash if chain else (outbox.tx_hash if outbox else None),
        block_number=chain.block_number if chain else None,
        message_id=intake.message_id if intake else None,
        message_type=intake.message_type if intake else "json", history=history,
    )


def _outbox_row(session: Session, uetr: str) -> OutboxEntry | FxPaymentEntry | None:
    """The order's row in whichever outbox carries it (FX payments have their own)."""
    row = session.scalars(select(OutboxEntry).where(OutboxEntry.uetr == uetr)).first()
    return row if row is not None else session.scalars(select(FxPaymentEntry).where(
        FxPaymentEntry.uetr == uetr)).first()


def view(session: Session, uetr: str) -> TrackerView | None:
    intake = session.get(PaymentIntake, uetr)
    outbox = _outbox_row(session, uetr)
    chain = mirror.get_payment(session=session, uetr=uetr)
    return _compose(intake, outbox, chain, session)


def view_of_accepted(session: Session, intake: PaymentIntake, outbox: OutboxEntry, *,
                     ask_mirror: bool = True) -> TrackerView | None:
    """``view`` of a payment this session just accepted, from the rows it wrote (no reads of
    intake and outbox). The mirror is asked (it may know the UETR from elsewhere) unless the
    caller is about to wait for the payment anyway (``wait_final_async`` reads it then)."""
    chain = mirror.get_payment(session=session, uetr=intake.uetr) if ask_mirror else None
    return _compose(intake, outbox, chain, session)


class ChangeSignal:
    """Wakes requests waiting for a payment to become final (fed by the indexer's hooks).

    Threads wait on a version counter (``wait``); event-loop waiters (``watch``) are woken
    only for the UETRs an update names (its payments and newly final ones), so a waiting
    request neither holds a thread nor re-reads its payment on every unrelated update."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0
        self._watchers: dict[str, set[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()

    def notify(self, update: object = None, *_: object) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()
        uetrs = getattr(update, "uetrs", None)
        with self._lock:
            if not self._watchers:
                return
            if uetrs is None:  # an update that does not say what changed: wake everyone
                woken = [f for fs in self._watchers.values() for f in fs]
            else:
                names = set(uetrs) | set(getattr(update, "finalized", ()) or ())
                woken = [f for u in names for f in self._watchers.get(u, ())]
        for fut in woken:
            fut.get_loop().call_soon_threadsafe(_resolve, fut)

    def wait(self, version: int, timeout: float) -> int:
        with self._cond:
            if self._version == version:
                self._cond.wait(timeout)
            return self._version

    def watch(self, uetr: str) -> asyncio.Future[None]:
        """A future of the running loop, resolved at the next update naming `uetr`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._watchers.setdefault(uetr, set()).add(fut)
        return fut

    def unwatch(self, uetr: str, fut: asyncio.Future[None]) -> None:
        with self._lock:
            futures = self._watchers.get(uetr)
            if futures is not None:
                futures.discard(fut)
                if not futures:
                    del self._watchers[uetr]

    @property
    def version(self) -> int:
        return self._version


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


#: How often a waiting request re-reads its payment even without an update naming it (an
#: outbox row can turn FAILED or HELD without any chain event).
RECHECK_SECONDS = 0.25


def _read_view(gateway: Any, uetr: str, intake: PaymentIntake | None = None) -> TrackerView | None:
    """``view`` in its own session; with the payment's `intake` row at hand (it never changes
    once written) only the outbox and the mirror are read."""
    with gateway.require_sessions()() as session:
        if intake is None:
            return view(session, uetr)
        return _compose(intake, _outbox_row(session, uetr), mirror.get_payment(session=session, uetr=uetr), session)


def _read_views(gateway: Any, wanted: dict[str, PaymentIntake | None]) -> dict[str, TrackerView | None]:
    """``_read_view`` of many payments in one session, with one query per table for all of
    them (the payments an indexer update made final, read for the requests waiting on them)."""
    from chain_gateway.mirror.models import PaymentEvent

    payment_select = getattr(mirror, "_payment_select", None)
    payment_view = getattr(mirror, "_payment_view", None)
    final_block = getattr(mirror, "_final_block", None)
    with gateway.require_sessions()() as session:
        if payment_select is None or payment_view is None or final_block is None:  # the mirror changed shape
            return {u: _read_view_in(session, u, i) for u, i in wanted.items()}
        keys = sorted(wanted)
        outboxes: dict[str, Any] = {r.uetr: r for r in session.scalars(
            select(OutboxEntry).where(OutboxEntry.uetr.in_(keys)))}
        missing = [u for u in keys if u not in outboxes]
        if missing:
            outboxes.update({r.uetr: r for r in session.scalars(
                select(FxPaymentEntry).where(FxPaymentEntry.uetr.in_(missing)))})
        final = final_block(session)
        chains = {row[0].uetr: payment_view(row[0], row[1], row[2], final) for row in session.execute(
            payment_select().where(Payment.uetr.in_(keys)))}
        histories: dict[str, list[mirror.PaymentHistoryItem]] = {u: [] for u in chains}
        if chains:
            for e in session.scalars(select(PaymentEvent).where(PaymentEvent.uetr.in_(sorted(chains)))
                                     .order_by(PaymentEvent.uetr, PaymentEvent.block_number, PaymentEvent.log_index)):
                histories[e.uetr].append(mirror.PaymentHistoryItem(e.status, e.at, e.reason_code, e.tx_hash,
                                                                   e.block_number, e.log_index, e.event, e.effective,
                                                                   e.held, e.flags))
        out: dict[str, TrackerView | None] = {}
        for u in keys:
            intake = wanted[u] if wanted[u] is not None else session.get(PaymentIntake, u)
            out[u] = _compose(intake, outboxes.get(u), chains.get(u), session, histories.get(u))
        return out


def _read_view_in(session: Session, uetr: str, intake: PaymentIntake | None) -> TrackerView | None:
    if intake is None:
        return view(session, uetr)
    return _compose(intake, _outbox_row(session, uetr), mirror.get_payment(session=session, uetr=uetr), session)


class GroupReads:
    """The reads of requests woken together (one indexer update finalises many payments),
    made together: one thread hop, one session, one query per table. Lives on one event
    loop; ``read`` is what ``wait_final_async`` awaits instead of a read of its own."""

    def __init__(self, gateway: Any, run: Callable[..., Awaitable[Any]]) -> None:
        self.gateway, self.run = gateway, run
        self.loop = asyncio.get_running_loop()
        self._pending: dict[str, list[tuple[asyncio.Future[TrackerView | None], PaymentIntake | None]]] = {}
        self._draining = False

    async def read(self, uetr: str, intake: PaymentIntake | None) -> TrackerView | None:
        fut: asyncio.Future[TrackerView | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(uetr, []).append((fut, intake))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # the other requests woken by the same update join this read
            while self._pending:
                batch, self._pending = self._pending, {}
                wanted = {u: next((i for _, i in waiters if i is not None), None) for u, waiters in batch.items()}
                try:
                    views = await self.run(_read_views, self.gateway, wanted)
                except BaseException as exc:  # noqa: BLE001 - each waiter gets the error
                    for waiters in batch.values():
                        for fut, _ in waiters:
                            if not fut.done():
                                fut.set_exception(exc)
                    continue
                for u, waiters in batch.items():
                    for fut, _ in waiters:
                        if not fut.done():
                            fut.set_result(views.get(u))
        finally:
            self._draining = False


def wait_final(gateway: Any, uetr: str, timeout: float) -> TrackerView | None:
    """The tracker once final, or as it stands after `timeout` seconds (Prefer: wait=N)."""
    deadline = time.monotonic() + timeout
    signal: ChangeSignal = gateway.changes
    current: TrackerView | None = None
    while True:
        version = signal.version
        current = _read_view(gateway, uetr)
        remaining = deadline - time.monotonic()
        if current is None or current.status in FINAL or remaining <= 0:
            return current
        signal.wait(version, min(remaining, RECHECK_SECONDS))


async def wait_final_async(gateway: Any, uetr: str, timeout: float, *, current: TrackerView | None,
                           version: int, run: Callable[..., Awaitable[Any]] | None = None,
                           intake: PaymentIntake | None = None, reads: GroupReads | None = None) -> TrackerView | None:
    """``wait_final`` on the event loop: no thread and no database connection is held while
    waiting. `current` is the view read when the signal was at `version` (read again if an
    update came in between, so none is missed). `run` runs the reads in a thread
    (``run_in_threadpool`` by default); `intake`, the payment's intake row if at hand; `reads`,
    a GroupReads of this loop to read together with the other waiters."""
    if run is None:
        from starlette.concurrency import run_in_threadpool as run

    async def read() -> TrackerView | None:
        if reads is not None:
            return await reads.read(uetr, intake)
        view_: TrackerView | None = await run(_read_view, gateway, uetr, intake)  # type: ignore[misc]
        return view_

    deadline = time.monotonic() + timeout
    signal: ChangeSignal = gateway.changes
    fut = signal.watch(uetr)
    try:
        if signal.version != version:
            current = await read()
        while True:
            remaining = deadline - time.monotonic()
            if current is None or current.status in FINAL or remaining <= 0:
                return current
            try:
                await asyncio.wait_for(asyncio.shield(fut), min(remaining, RECHECK_SECONDS))
            except TimeoutError:
                pass
            if fut.done():
                signal.unwatch(uetr, fut)
                fut = signal.watch(uetr)
            current = await read()
    finally:
        signal.unwatch(uetr, fut)


def list_views(session: Session, *, bic: str | None, status: str | None, currency: str | None,
               counterparty: str | None, since: dt.datetime | None, until: dt.datetime | None,
               cursor: str | None, limit: int) -> tuple[list[TrackerView], str | None]:
    """Payments from the mirror (what reached the chain), newest first, as tracker views."""
    participant = None
    if bic is not None:
        profile = get_profile(session, bic)
        if profile is None:
            return [], None
        participant = profile.address
    other = None
    if counterparty is not None:
        from chain_gateway.instructions.bic import normalise_bic
        cp = get_profile(session, normalise_bic(counterparty, role="counterparty"))
        if cp is None:
            return [], None
        other = cp.address
    page = mirror.list_payments(session=session, participant=participant, status=status, currency=currency,
                                counterparty=other, since=since, until=until, cursor=cursor, limit=limit)
    views = []
    for p in page.items:
        intake = session.get(PaymentIntake, p.uetr)
        outbox = _outbox_row(session, p.uetr)
        v = _compose(intake, outbox, p, session)
        if v is not None:
            views.append(v)
    return views, page.next_cursor


def status_counts(session: Session) -> tuple[dict[str, int], int]:
    """Payments per chain status and the outbox depth (for /metrics)."""
    rows = session.execute(select(Payment.status, func.count()).group_by(Payment.status)).all()
    depth = session.scalar(select(func.count()).select_from(OutboxEntry).where(
        OutboxEntry.state.in_([OutboxState.PENDING, OutboxState.SENT]))) or 0
    return {str(s): int(n) for s, n in rows}, int(depth)


def statement_page(session: Session, profile: ParticipantProfile, *, currency: str, since: dt.datetime | None,
                   until: dt.datetime | None, cursor: str | None, limit: int,
                   as_xml: bool = False) -> tuple[dict[str, Any], bytes | None]:
    """A statement page from the mirror: the JSON body, and its camt.053 rendering when asked."""
    import uuid

    from chain_gateway.instructions import camt053

    st = mirror.statement(session=session, participant=profile.address, currency=currency, since=since,
                          until=until, cursor=cursor, limit=limit)
    lines = [{"block_number": e.block_number, "log_index": e.log_index, "tx_hash": e.tx_hash, "at": _iso(e.at),
              "kind": e.kind, "amount": str(from_minor(currency, e.amount)),
              "balance_after": str(from_minor(currency, e.balance_after)), "uetr": e.uetr,
              "counterparty": e.counterparty_bic, "reference": reference_text(e.reference)} for e in st.items]
    body = {"bic": profile.bic, "currency": currency, "as_of_block": st.as_of_block,
            "opening_balance": str(from_minor(currency, st.opening_balance)),
            "closing_balance": str(from_minor(currency, st.closing_balance)), "items": lines,
            "next_cursor": st.next_cursor}
    if not as_xml:
        return body, None
    now = dt.datetime.now(dt.UTC)
    first = st.items[0].at if st.items else (since or now)
    last = st.items[-1].at if st.items else (until or now)
    xml = camt053.render_camt053(camt053.Statement(
        message_id=f"STM{uuid.uuid4().hex[:28]}", statement_id=f"{profile.bic}-{currency}-{st.as_of_block}",
        created_at=now, account_bic=profile.bic, currency=currency,
        opening_balance=from_minor(currency, st.opening_balance),
        closing_balance=from_minor(currency, st.closing_balance), period_start=min(first, last),
        period_end=max(first, last), as_of_block=st.as_of_block, last_page=st.next_cursor is None,
        entries=[camt053.StatementEntry(amount=abs(from_minor(currency, e.amount)), credit=e.amount > 0,
                                        booked_at=e.at, uetr=uuid.UUID(e.uetr) if e.uetr else None,
                                        reference=_camt_reference(e.reference)) for e in st.items],
    ), check_balances=st.next_cursor is None and cursor is None)
    return body, xml


__all__ = [
    "FINAL",
    "ChangeSignal",
    "GroupReads",
    "ParticipantProfile",
    "TrackerView",
    "list_views",
    "statement_page",
    "status_counts",
    "view",
    "view_of_accepted",
    "wait_final",
    "wait_final_async",
]
