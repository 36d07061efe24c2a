"""The liquidity queue, as the gateway runs it: queue management for debtors, automatic
release when balances rise, and gridlock resolution.

* Management (cancel, hold, release, priority): the debtor asks over the API; the gateway
  checks on the mirror that the caller is the debtor and on the chain that the payment is
  queued, then relays ``cancelQueued`` / ``setHold`` / ``setPriority`` (the ledger lets the
  relayer manage a queued payment for its debtor).
* Automatic release: the indexer hands every committed range's ``MirrorUpdate`` to
  ``on_mirror_update``, which only records the (participant, currency) pairs that were credited
  and wakes the worker thread, so indexing never waits on a transaction. The worker walks each
  credited debtor's queue in queue order (urgent first, FIFO) against its balance, bypassing
  what does not fit (FIFO bypass), and sends what fits to ``settleQueued`` in that order; the
  contract re-checks and skips what no longer fits. Settlements credit others, whose queues
  are released in turn.
* Gridlock resolution (``resolve``: the operator's POST /v1/queue/resolve, or the worker when
  the queue has been non-empty with nothing settled for ``stuck_seconds``): the queue (from the
  mirror) and the balances (from the chain) are read at the mirror's block; ``chain_gateway.lsm
  .solve`` proposes the largest settleable subset (HiGHS MILP under a time limit, greedy
  fallback); the proposal is checked with ``lsm.is_feasible``; then it goes to the chain in one
  ``settleGridlock`` when the node's gas estimate fits one transaction, else through
  reserve-then-commit: ``reserveGridlock`` chunks, ``commitGridlock`` (which re-checks every net
  position and either applies all of them or releases the batch), ``closeGridlock`` chunks.
  The contract is the authority; the solver only proposes.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway import lsm
from chain_gateway.errors import Conflict, GatewayError, NotFound
from chain_gateway.instructions.currency import from_minor
from chain_gateway.ledger import TX_GAS_CAP, LedgerClient
from chain_gateway.mirror import repository as mirror
from chain_gateway.transactions import TransactionFailed, encode_call
from chain_gateway.worker import WorkerThread

log = logging.getLogger(__name__)

Account = tuple[str, str]  # (participant address, currency)
STATUS_QUEUED, STATUS_RESERVED = 1, 5
GRID_NONE, GRID_RESERVING, GRID_COMMITTED, GRID_RELEASED = 0, 1, 2, 3
FLAG_URGENT = 2
GRIDLOCK_COMMITTED_TOPIC = keccak(text="GridlockCommitted(bytes32,uint256,uint256)")
GRIDLOCK_RELEASED_TOPIC = keccak(text="GridlockReleased(bytes32,bytes4,address,bytes3)")
#: Most gas a single settleGridlock may be estimated at: the 16,777,216 cap less head room (the
#: estimate is exact for the state it ran on; the chain may move a little before inclusion).
SINGLE_TX_GAS = TX_GAS_CAP - 200_000


@dataclass(frozen=True)
class QueueItem:
    """One queued payment as GET /v1/queue shows it."""

    uetr: str
    debtor: str
    creditor: str
    debtor_agent: str | None
    creditor_agent: str | None
    currency: str
    amount: int  # minor units
    urgent: bool
    held: bool
    queue_seq: int
    tx_hash: str
    block_number: int

    def public(self) -> dict[str, Any]:
        return {"uetr": self.uetr, "status": "PDNG", "debtor_agent": self.debtor_agent,
                "creditor_agent": self.creditor_agent, "currency": self.currency,
                "amount": str(from_minor(self.currency, self.amount)),
                "priority": "urgent" if self.urgent else "normal", "held": self.held, "queue_seq": self.queue_seq,
                "tx_hash": self.tx_hash, "block_number": self.block_number}


@dataclass
class ResolutionReport:
    """What one gridlock resolution proposed and what the chain settled."""

    block_number: int | None = None
    queued: int = 0
    proposed: int = 0
    proposed_value: dict[str, int] = field(default_factory=dict)
    settled_count: int = 0
    settled_value: dict[str, int] = field(default_factory=dict)
    method: str = "none"
    solver_seconds: float = 0.0
    gap: float | None = None
    bound: int | None = None
    optimal: bool = False
    path: str = "none"  # "single" | "reserve-commit" | "none"
    tx_hashes: list[str] = field(default_factory=list)
    gas_used: int = 0
    batch_id: str | None = None
    rejected_reason: str | None = None
    settled_uetrs: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        def money(values: dict[str, int]) -> dict[str, str]:
            return {c: str(from_minor(c, v)) for c, v in sorted(values.items())}
        return {
            "block_number": self.block_number, "queued": self.queued, "proposed": self.proposed,
            "proposed_value": money(self.proposed_value), "settled_count": self.settled_count,
            "settled_value": money(self.settled_value), "method": self.method,
            "solver_seconds": round(self.solver_seconds, 4), "gap": self.gap, "optimal": self.optimal,
            "path": self.path, "tx_hashes": self.tx_hashes, "gas_used": self.gas_used,
            "gas_per_payment": (self.gas_used // self.settled_count) if self.settled_count else None,
            "batch_id": self.batch_id, "rejected_reason": self.rejected_reason,
        }


class QueueService(WorkerThread):
    """Queue management, automatic release and gridlock resolution for one gateway.

    The lead's Gateway holds one (``gateway.queue``); ``start()`` runs its worker thread and the
    indexer gets ``on_mirror_update`` as a hook.
    """

    def __init__(self, client: LedgerClient, sessions: sessionmaker[Session], *, time_limit: float = 10.0,
                 stuck_seconds: float | None = None, max_single: int = 1_000, reserve_chunk: int = 1_000,
                 close_chunk: int = 800, release_chunk: int = 200, poll_interval: float = 0.5,
                 mirror_wait: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.sessions = sessions
        self.time_limit = time_limit
        self.stuck_seconds = stuck_seconds
        self.max_single = max_single
        self.reserve_chunk = reserve_chunk
        self.close_chunk = close_chunk
        self.release_chunk = release_chunk
        self.poll_interval = poll_interval
        self.mirror_wait = mirror_wait
        self.clock = clock
        self._pending: set[Account] = set()
        self._unheld: set[str] = set()  # released from hold on-chain; the mirror may still say held
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        WorkerThread.__init__(self, "queue-worker")
        self._last_progress = clock()
        self.last_report: ResolutionReport | None = None
        self.released: list[str] = []  # UETRs the worker sent to settleQueued (for tests and metrics)

    # ================================================================ queue views
    def items(self, session: Session, *, participant: str | None = None, currency: str | None = None) -> list[QueueItem]:
        """Queued payments, urgent first then FIFO (queue seq); `participant` keeps its own (debtor or creditor)."""
        views = mirror.queued_payments(session=session, participant=participant, currency=currency)
        return [QueueItem(uetr=v.uetr, debtor=v.debtor or "", creditor=v.creditor or "", debtor_agent=v.debtor_bic,
                          creditor_agent=v.creditor_bic, currency=v.currency or "", amount=int(v.amount or 0),
                          urgent=bool((v.flags or 0) & FLAG_URGENT), held=v.held, queue_seq=int(v.queue_seq or 0),
                          tx_hash=v.tx_hash, block_number=v.block_number) for v in views]

    # ================================================================ management
    def _own_queued(self, session: Session, uetr: str, debtor_bic: str | None) -> mirror.PaymentView:
        """The payment, if the caller is its debtor (404 otherwise) and it is queued on-chain (409 otherwise)."""
        view = mirror.get_payment(session=session, uetr=uetr)
        if view is None or debtor_bic is None or view.debtor_bic != debtor_bic:
            raise NotFound(f"no payment {uetr} of yours")
        status = self.client.payment_status(uuid.UUID(view.uetr).bytes)
        if status != STATUS_QUEUED:
            what = {2: "settled", 3: "cancelled", 4: "rejected", 5: "reserved for a gridlock settlement"}.get(
                status, "not queued")
            raise Conflict(f"payment {view.uetr} is {what}, not queued", uetr=view.uetr, chain_status=status)
        return view

    def _relay(self, fn: Callable[[], dict[str, Any]], uetr: str) -> str:
        try:
            receipt = fn()
        except TransactionFailed as exc:
            if exc.error_name == "NotQueued":  # settled or cancelled between our check and the transaction
                raise Conflict(f"payment {uetr} is no longer queued", uetr=uetr) from exc
            raise
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def cancel(self, session: Session, *, uetr: str, debtor_bic: str | None) -> dict[str, Any]:
        """Cancel a queued payment for its debtor: CANC, nothing moves."""
        view = self._own_queued(session, uetr, debtor_bic)
        tx = self._relay(lambda: self.client.cancel_queued(uuid.UUID(view.uetr).bytes), view.uetr)
        return {"uetr": view.uetr, "status": "CANC", "tx_hash": tx}

    def hold(self, session: Session, *, uetr: str, debtor_bic: str | None, held: bool) -> dict[str, Any]:
        """Hold (never settled while held) or release a queued payment."""
        view = self._own_queued(session, uetr, debtor_bic)
        tx = self._relay(lambda: self.client.set_hold(uuid.UUID(view.uetr).bytes, held), view.uetr)
        if not held:
            with self._lock:
                self._unheld.add(view.uetr)
            self._request([(view.debtor or "", view.currency or "")])  # a released payment may fit now
        return {"uetr": view.uetr, "status": "PDNG", "held": held, "tx_hash": tx}

    def set_priority(self, session: Session, *, uetr: str, debtor_bic: str | None, urgent: bool) -> dict[str, Any]:
        """Make a queued payment urgent (ahead of every normal one) or normal again."""
        view = self._own_queued(session, uetr, debtor_bic)
        tx = self._relay(lambda: self.client.set_priority(uuid.UUID(view.uetr).bytes, urgent), view.uetr)
        return {"uetr": view.uetr, "status": "PDNG", "priority": "urgent" if urgent else "normal", "tx_hash": tx}

    # ================================================================ automatic release
    def on_mirror_update(self, update: Any) -> None:
        """Indexer hook: remember who was credited and wake the worker; never blocks."""
        if getattr(update, "uetrs", None) or getattr(update, "balances_increased", None):
            self._last_progress = self.clock()
        increased = getattr(update, "balances_increased", None)
        if increased:
            self._request(increased)

    def _request(self, accounts: Iterable[Account]) -> None:
        with self._lock:
            self._pending.update(a for a in accounts if a[0])
        self._wake.set()

    def release_pending(self) -> list[str]:
        """Release what the recorded credits allow (the worker's job; tests call it directly)."""
        with self._lock:
            accounts, self._pending = self._pending, set()
        return self.release_for(accounts) if accounts else []

    def release_for(self, accounts: Iterable[Account]) -> list[str]:
        """Settle, in queue order with FIFO bypass, what the credited debtors' balances now cover.

        Per debtor account the queue is walked urgent-first then FIFO against the chain balance;
        a payment that does not fit is bypassed. What fits goes to ``settleQueued`` in that order
        (the contract re-checks and skips what no longer fits). Returns the UETRs sent."""
        wanted = {(p, c) for p, c in accounts}
        if not wanted:
            return []
        with self.sessions() as session:
            queued = [i for i in self.items(session) if (i.debtor, i.currency) in wanted]
        with self._lock:
            unheld = set(self._unheld)
            self._unheld -= {i.uetr for i in queued if not i.held}  # the mirror has caught up with those
        items = [i for i in queued if not i.held or i.uetr in unheld]
        by_account: dict[Account, list[QueueItem]] = {}
        for item in items:  # already in queue order
            by_account.setdefault((item.debtor, item.currency), []).append(item)
        picked: list[QueueItem] = []
        for (debtor, currency), queue in by_account.items():
            available = self.client.balance_of(debtor, currency)
            for item in queue:
                if item.amount <= available:  # FIFO bypass: a head that does not fit waits
                    available -= item.amount
                    picked.append(item)
        picked.sort(key=lambda i: (not i.urgent, i.queue_seq))
        sent: list[str] = []
        for start in range(0, len(picked), self.release_chunk):
            chunk = picked[start:start + self.release_chunk]
            self.client.settle_queued([uuid.UUID(i.uetr).bytes for i in chunk])
            sent += [i.uetr for i in chunk]
        self.released += sent
        return sent

    # ================================================================ worker
    def start(self) -> None:
        """Finish any gridlock batch a crash left open, then run the worker thread."""
        try:
            self.recover()
        except GatewayError as exc:
            log.warning("gridlock batch recovery postponed: %s", exc.detail)
        self._start_thread()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.release_pending()
                self._maybe_resolve()
            except Exception:
                log.exception("queue worker step failed")
                self._stop.wait(1.0)
            self._wake.wait(self.poll_interval)

    def _maybe_resolve(self) -> ResolutionReport | None:
        """Resolve gridlock when the queue has been non-empty with nothing changing for stuck_seconds."""
        if self.stuck_seconds is None or self.clock() - self._last_progress < self.stuck_seconds:
            return None
        with self.sessions() as session:
            waiting = [i for i in self.items(session) if not i.held]
        self._last_progress = self.clock()  # try again only after another quiet period
        if not waiting:
            return None
        log.info("queue stuck for %.0f s with %d payments: resolving gridlock", self.stuck_seconds, len(waiting))
        return self.resolve()

    # ================================================================ gridlock
    def snapshot(self) -> tuple[int, list[lsm.QueuedPayment], dict[Account, int]]:
        """The queue (mirror) and the balances (chain) at the mirror's block. Held payments and
        payments of suspended participants are left out: the contract would refuse them."""
        with self.sessions() as session:
            head = mirror.mirror_head(session=session)
            if head is None:
                raise NotFound("the mirror has not indexed the ledger yet")
            block = head.block_number
            suspended = {p.address for p in mirror.list_participants(session=session, active=False)}
            items = [i for i in self.items(session)
                     if not i.held and i.debtor not in suspended and i.creditor not in suspended]
        payments = [lsm.QueuedPayment(key=i.uetr, debtor=i.debtor, creditor=i.creditor, currency=i.currency,
                                      amount=i.amount, priority=1 if i.urgent else 0, seq=i.queue_seq) for i in items]
        accounts = {p.debit_account for p in payments} | {p.credit_account for p in payments}
        balances = {(p, c): self.client.balance_of(p, c, block) for p, c in sorted(accounts)}
        return block, payments, balances

    def resolve(self, *, time_limit: float | None = None) -> ResolutionReport:
        """Find and settle the largest settleable subset of the queue (see the module docstring)."""
        with self._resolve_lock:
            self.recover()
            block, payments, balances = self.snapshot()
            report = ResolutionReport(block_number=block, queued=len(payments))
            if not payments:
                self.last_report = report
                return report
            proposal = lsm.solve(payments, balances, time_limit if time_limit is not None else self.time_limit)
            report.method, report.solver_seconds, report.gap = proposal.method, proposal.solver_seconds, proposal.gap
            report.bound, report.optimal = proposal.bound, proposal.optimal
            if not lsm.is_feasible(balances, payments, proposal.selected):
                raise lsm.LsmError("the solver proposed a set that would overdraw a participant", block=block)
            by_key = {p.key: p for p in payments}
            chosen = [by_key[k] for k in proposal.selected]
            report.proposed = len(chosen)
            report.proposed_value = _values(chosen)
            if chosen:
                self._settle(chosen, report)
            self._last_progress = self.clock()
            self.last_report = report
            return report

    def _settle(self, chosen: Sequence[lsm.QueuedPayment], report: ResolutionReport) -> None:
        uetrs = [uuid.UUID(str(p.key)).bytes for p in chosen]
        single: int | None = None
        access: list[dict[str, Any]] | None = None
        if len(uetrs) <= self.max_single:
            data = encode_call("settleGridlock(bytes16[])", ["bytes16[]"], [uetrs])
            try:
                single = self.client.estimate(data)
            except TransactionFailed as exc:
                report.rejected_reason = exc.error_name or exc.detail
                log.warning("gridlock proposal refused on-chain (%s): nothing moved", report.rejected_reason)
                return
            if single > SINGLE_TX_GAS:  # an access list pre-warms the payments' slots: ~400 gas each
                listed = self.client.access_list(data)
                if listed is not None and listed[1] <= SINGLE_TX_GAS:
                    access, single = listed
        if single is not None and single <= SINGLE_TX_GAS:
            report.path = "single"
            try:
                receipt = self.client.settle_gridlock_exact(uetrs, gas=min(int(single * 1.05) + 100_000, TX_GAS_CAP),
                                                            access_list=access)
            except TransactionFailed as exc:
                report.rejected_reason = exc.error_name or exc.detail
                return
            report.tx_hashes.append(_hash(receipt))
            report.gas_used += int(receipt["gasUsed"])
            self._settled(chosen, report)
            return
        self._reserve_commit(chosen, uetrs, report)

    def _reserve_commit(self, chosen: Sequence[lsm.QueuedPayment], uetrs: list[bytes],
                        report: ResolutionReport) -> None:
        report.path = "reserve-commit"
        batch_id = os.urandom(32)
        report.batch_id = "0x" + batch_id.hex()
        reserved = 0
        try:
            for start in range(0, len(uetrs), self.reserve_chunk):
                chunk = uetrs[start:start + self.reserve_chunk]
                gas = self._estimate(self.client.encode_reserve_gridlock(batch_id, chunk))
                receipt = self.client.reserve_gridlock(batch_id, chunk, gas=gas)
                report.tx_hashes.append(_hash(receipt))
                report.gas_used += int(receipt["gasUsed"])
                reserved += len(chunk)
        except TransactionFailed as exc:
            report.rejected_reason = exc.error_name or exc.detail
            log.warning("gridlock reservation failed (%s): releasing %d reserved payments", report.rejected_reason,
                        reserved)
            if reserved:
                self.client.release_gridlock(batch_id)
                self._close(batch_id, uetrs[:reserved], report)
            return
        accounts = len({p.debit_account for p in chosen} | {p.credit_account for p in chosen})
        receipt = self.client.commit_gridlock(batch_id, accounts)
        report.tx_hashes.append(_hash(receipt))
        report.gas_used += int(receipt["gasUsed"])
        committed = _has_topic(receipt, self.client.ledger, GRIDLOCK_COMMITTED_TOPIC)
        if not committed:
            report.rejected_reason = _released_reason(receipt, self.client)
            log.warning("gridlock commit re-check failed (%s): batch released, nothing moved", report.rejected_reason)
        self._close(batch_id, uetrs, report)
        if committed:
            self._settled(chosen, report)

    def _close(self, batch_id: bytes, uetrs: Sequence[bytes], report: ResolutionReport) -> None:
        for start in range(0, len(uetrs), self.close_chunk):
            chunk = uetrs[start:start + self.close_chunk]
            gas = self._estimate(self.client.encode_close_gridlock(batch_id, chunk))
            receipt = self.client.close_gridlock(batch_id, chunk, gas=gas)
            report.tx_hashes.append(_hash(receipt))
            report.gas_used += int(receipt["gasUsed"])

    def _estimate(self, data: bytes) -> int | None:
        """The node's gas estimate with head room, or None (the client's budget applies) when the
        node cannot estimate; a revert surfaces as TransactionFailed."""
        try:
            return int(self.client.estimate(data) * 1.2) + 50_000
        except TransactionFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - estimation is an optimisation only
            log.debug("gas estimate unavailable: %s", exc)
            return None

    @staticmethod
    def _settled(chosen: Sequence[lsm.QueuedPayment], report: ResolutionReport) -> None:
        report.settled_count = len(chosen)
        report.settled_value = _values(chosen)
        report.settled_uetrs = [str(p.key) for p in chosen]

    def recover(self) -> bool:
        """Finish a gridlock batch a crash (or a failed step) left open: release it if it was still
        reserving, then close its reserved payments. True when a batch was found."""
        batch_id, state, reserved, closed = self.client.gridlock_batch()
        if state == GRID_NONE:
            return False
        log.warning("gridlock batch 0x%s left open (state %d, %d/%d closed): finishing it", batch_id.hex(), state,
                    closed, reserved)
        if state == GRID_RESERVING:
            self.client.release_gridlock(batch_id)
        deadline = self.clock() + self.mirror_wait
        while self.client.gridlock_batch()[1] != GRID_NONE:
            with self.sessions() as session:
                candidates = [uuid.UUID(i.uetr).bytes for i in self.items(session)]
            flags = self.client.statuses(candidates)
            pending = [u for u, s in zip(candidates, flags, strict=True) if s == STATUS_RESERVED]
            for start in range(0, len(pending), self.close_chunk):
                self.client.close_gridlock(batch_id, pending[start:start + self.close_chunk])
            if self.client.gridlock_batch()[1] == GRID_NONE:
                break
            if self.clock() > deadline:
                raise Conflict("a gridlock batch is still open: its reserved payments are not all in the mirror yet",
                               batch_id="0x" + batch_id.hex())
            time.sleep(0.2)  # the mirror has not seen every reserved payment yet
        return True


def _values(payments: Iterable[lsm.QueuedPayment]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in payments:
        out[p.currency] = out.get(p.currency, 0) + p.amount
    return out


def _hash(receipt: dict[str, Any]) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _has_topic(receipt: dict[str, Any], ledger: str, topic: bytes) -> bool:
    return any(bytes(log["topics"][0]) == topic and log["address"].lower() == ledger.lower()
               for log in receipt.get("logs", ()) if log["topics"])


def _released_reason(receipt: dict[str, Any], client: LedgerClient) -> str | None:
    for entry in receipt.get("logs", ()):
        if entry["topics"] and bytes(entry["topics"][0]) == GRIDLOCK_RELEASED_TOPIC:
            selector = bytes(entry["data"])[:4]
            return client.decoder.name_of(selector) or "0x" + selector.hex()
    return None


__all__ = ["QueueItem", "QueueService", "ResolutionReport"]
