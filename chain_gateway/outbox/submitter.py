"""Outbox -> ``settleBatch`` transactions -> receipts, and start-up recovery.

One ``Submitter`` per outbox (per database). Its worker thread takes PENDING rows in FIFO
order and sends them as ``settleBatch`` transactions: a lone payment goes out at once in a
batch of one; whatever arrives while a transaction is in flight waits and goes in the next
batch (full batches may be pipelined, up to ``max_in_flight`` transactions).

Crash safety, the argument in full:

1. A row exists (committed with its instruction) before any transaction carries it.
2. Rows are marked SENT (or straight DONE, with the transaction recorded, when its receipt
   is there at once) only after the node took the transaction, so a crash can leave a
   row PENDING or SENT whatever the chain did with it; neither state is trusted.
3. ``recover()`` asks the chain: ``paymentStatus(uetr) != 0`` means the chain has the
   UETR (DONE). Status 0 means no money moved for it; if its last transaction was mined
   and rejected the item as expired or badly signed, it can never settle (FAILED);
   otherwise (tx unknown, dropped, reverted, still pending) it is sent again (PENDING).
4. Sending again can never pay twice: the contract uses a UETR at most once, and the
   later of two transactions carrying it gets ``PaymentRejected(uetr, DuplicateUetr)``.

The submitter does not decide payment statuses (the indexer mirrors them from events); it
reports what it sent and what it gave up on through ``on_sent`` / ``on_failed``.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import requests
from hexbytes import HexBytes
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from web3.exceptions import TransactionNotFound, Web3TypeError

from chain_gateway.db import transaction, utcnow
from chain_gateway.errors import ChainUnavailable, ConfigurationError, GatewayError
from chain_gateway.ledger import TX_GAS_CAP, LedgerClient
from chain_gateway.outbox.models import UNFINISHED, OutboxEntry, OutboxState
from chain_gateway.outbox.receipts import ItemOutcome, item_outcomes
from chain_gateway.transactions import TransactionFailed, TxSender, encode_call
from chain_gateway.worker import WorkerThread

log = logging.getLogger(__name__)

OnSent = Callable[[list[str], str], None]
OnFailed = Callable[[list[str], str], None]
T = TypeVar("T")

#: Whole-transaction reverts that clear up by themselves: wait, do not count an attempt.
TRANSIENT_REVERTS = frozenset({"EnforcedPause"})
#: Gas given to a batch, as a multiple of LedgerClient.batch_gas, whose per-item budget
#: covers the measured worst case (a queued item). Unused gas is not paid; an out-of-gas
#: batch raises the factor and is resent without counting an attempt.
DEFAULT_GAS_SCALE = 1.0


def is_transient(exc: BaseException) -> bool:
    """Connection refused, timeouts, an unreachable node: worth retrying as they are."""
    return isinstance(exc, (ChainUnavailable, requests.ConnectionError, requests.Timeout, ConnectionError,
                            TimeoutError))


def with_retry(fn: Callable[[], T], *, attempts: int = 6, initial: float = 0.05, cap: float = 2.0) -> T:
    """Call an idempotent chain read, retrying transient errors with exponential backoff."""
    delay = initial
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                if is_transient(exc) and not isinstance(exc, ChainUnavailable):
                    raise ChainUnavailable(f"chain node did not answer: {exc}") from exc
                raise
            time.sleep(delay)
            delay = min(cap, delay * 2)
    raise ChainUnavailable("unreachable")  # pragma: no cover - the loop returns or raises


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return f"{type(exc).__name__}: {exc.detail}"
    return f"{type(exc).__name__}: {exc}"


def _uetr_bytes(uetr: str) -> bytes:
    return uuid.UUID(uetr).bytes


def _receipt(client: LedgerClient, tx_hash: str) -> dict[str, Any] | None:
    """The receipt, or None while the node has none (pending, dropped or never seen)."""
    try:
        return dict(client.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
    except TransactionNotFound:
        return None


def _fast_receipt(client: LedgerClient, tx_hash: str) -> dict[str, Any] | None:
    """``_receipt`` through the relayer's plain JSON-RPC connection where it has one (~0.1 ms
    of CPU against ~2 ms through web3), with the fields the submitter reads in web3's types."""
    rpc = getattr(client.relayer, "rpc", None)
    if rpc is None:
        return _receipt(client, tx_hash)
    raw = rpc.request("eth_getTransactionReceipt", [tx_hash])
    if raw is None:
        return None
    return {"transactionHash": raw["transactionHash"], "status": int(raw["status"], 16),
            "blockNumber": int(raw["blockNumber"], 16), "gasUsed": int(raw["gasUsed"], 16),
            "logs": [{"address": log["address"], "topics": [bytes.fromhex(t[2:]) for t in log["topics"]],
                      "data": bytes.fromhex(log["data"][2:])} for log in raw.get("logs") or ()]}


def _batched_statuses(client: LedgerClient, uetrs: Sequence[bytes]) -> list[int] | None:
    """paymentStatus of each UETR in one JSON-RPC batch; None where the provider has no
    batches (eth-tester)."""
    try:
        batch = client.w3.batch_requests()
    except Web3TypeError:
        return None
    with batch:
        for u in uetrs:
            batch.add(client.w3.eth.call({"to": client.ledger,
                                          "data": encode_call("paymentStatus(bytes16)", ["bytes16"], [u])}))
        results: list[Any] = list(batch.execute())  # the calls' formatted results: return data as bytes
        return [int.from_bytes(bytes(raw)[:32], "big") for raw in results]


def _payment_statuses(client: LedgerClient, uetrs: Sequence[bytes], chunk: int = 200) -> list[int]:
    """paymentStatus of each UETR: batched where possible (about 3x faster on anvil)."""
    out: list[int] = []
    for i in range(0, len(uetrs), chunk):
        part = uetrs[i:i + chunk]
        batched = with_retry(partial(_batched_statuses, client, part))
        out += batched if batched is not None else [with_retry(partial(client.payment_status, u)) for u in part]
    return out


def _tx_known(client: LedgerClient, tx_hash: str) -> bool:
    try:
        client.w3.eth.get_transaction(HexBytes(tx_hash))
    except TransactionNotFound:
        return False
    return True


# --------------------------------------------------------------------------- recovery
@dataclass(frozen=True)
class RecoveryReport:
    """What ``recover()`` found for each unfinished row."""

    checked: int
    done: tuple[str, ...] = ()  # the chain has the UETR (status != 0)
    failed: Mapping[str, str] = field(default_factory=dict)  # uetr -> reason: can never settle
    requeued: tuple[str, ...] = ()  # status 0: PENDING, to be (re)sent
    unknown_txs: tuple[str, ...] = ()  # recorded tx hashes the node does not know (dropped / never sent)


@dataclass(frozen=True)
class _Row:
    id: int
    uetr: str
    state: OutboxState
    tx_hash: str | None


Decision = tuple[OutboxState, str | None]  # next state, note for last_error


def _decide(status: int | None, outcome: ItemOutcome | None) -> Decision:
    """A row's next state from the chain's answer (step 3 of the module docstring).

    `status` is paymentStatus, or None when only the row's batch receipt is at hand: an
    item's event says whether the UETR is used just as well."""
    used = outcome.uetr_used if status is None and outcome is not None else bool(status)
    if used:
        duplicate = outcome is not None and outcome.reason == "DuplicateUetr"
        return OutboxState.DONE, "DuplicateUetr: the UETR was already used on-chain" if duplicate else None
    if outcome is not None and not outcome.uetr_used:
        return OutboxState.FAILED, f"rejected on-chain: {outcome.reason}"
    return OutboxState.PENDING, None


def _reconcile(client: LedgerClient, rows: Sequence[_Row], *, pending_wait: float,
               requeue_reason: str) -> tuple[dict[int, Decision], list[str]]:
    """Decide each row from paymentStatus and its last transaction's receipt.

    Returns (row id -> (state, note), tx hashes the node does not know). Raises
    ChainUnavailable if the node stays unreachable (nothing is decided then)."""
    outcomes: dict[str, dict[bytes, ItemOutcome]] = {}
    unknown: list[str] = []
    for tx_hash in sorted({r.tx_hash for r in rows if r.tx_hash}):
        receipt = with_retry(partial(_receipt, client, tx_hash))
        if receipt is None and with_retry(partial(_tx_known, client, tx_hash)):
            deadline = time.monotonic() + pending_wait  # in the mempool: give it a moment to mine
            while receipt is None and time.monotonic() < deadline:
                time.sleep(0.05)
                receipt = with_retry(partial(_receipt, client, tx_hash))
        elif receipt is None:
            unknown.append(tx_hash)
        if receipt is not None and receipt["status"] == 1:
            outcomes[tx_hash] = item_outcomes(receipt, client.ledger, client.decoder)
    decisions: dict[int, Decision] = {}
    statuses = _payment_statuses(client, [_uetr_bytes(r.uetr) for r in rows])
    for row, status in zip(rows, statuses, strict=True):
        outcome = outcomes.get(row.tx_hash or "", {}).get(_uetr_bytes(row.uetr))
        state, note = _decide(status, outcome)
        decisions[row.id] = (state, note if state != OutboxState.PENDING else requeue_reason)
    return decisions, unknown


def _apply(session: Session, decisions: Mapping[int, Decision]) -> None:
    now = utcnow()
    for row in session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(list(decisions)))):
        state, note = decisions[row.id]
        row.state = state
        row.updated_at = now
        if note is not None:
            row.last_error = note


def recover(session_factory: sessionmaker[Session], client: LedgerClient, *,
            pending_wait: float = 5.0) -> RecoveryReport:
    """Reconcile every PENDING or SENT row with the chain (run at start-up, before sending).

    A crash at any point leaves rows PENDING or SENT; each is decided from paymentStatus and
    the receipt of its last transaction: DONE if the chain has the UETR, FAILED if that
    transaction rejected it for good (bad signature, expired), else PENDING for a resend,
    which cannot pay twice. A transaction still in the mempool gets `pending_wait` seconds
    to mine first. Raises ChainUnavailable, deciding nothing, if the node cannot be reached.
    """
    with transaction(session_factory) as session:
        rows = [_Row(r.id, r.uetr, r.state, r.tx_hash) for r in session.scalars(
            select(OutboxEntry).where(OutboxEntry.state.in_(UNFINISHED)).order_by(OutboxEntry.id))]
    if not rows:
        return RecoveryReport(checked=0)
    decisions, unknown = _reconcile(client, rows, pending_wait=pending_wait,
                                    requeue_reason="recovered: not on-chain, to be sent again")
    if unknown and client.relayer is not None:
        client.relayer.resync_nonce()  # a dropped transaction leaves a nonce gap behind it
    by_id = {r.id: r for r in rows}
    # A row that was PENDING and stays PENDING is left as it is.
    changes = {i: d for i, d in decisions.items()
               if not (d[0] == OutboxState.PENDING and by_id[i].state == OutboxState.PENDING)}
    if changes:
        with transaction(session_factory) as session:
            _apply(session, changes)
    report = RecoveryReport(
        checked=len(rows),
        done=tuple(by_id[i].uetr for i, (s, _) in decisions.items() if s == OutboxState.DONE),
        failed={by_id[i].uetr: note or "" for i, (s, note) in decisions.items() if s == OutboxState.FAILED},
        requeued=tuple(by_id[i].uetr for i, (s, _) in decisions.items() if s == OutboxState.PENDING),
        unknown_txs=tuple(unknown),
    )
    log.info("outbox recovery: %d checked, %d done, %d failed, %d to send", report.checked, len(report.done),
             len(report.failed), len(report.requeued))
    return report


# -------------------------------------------------------------------------- submitter
@dataclass
class SubmitterStats:
    """Counters since start (read them from any thread; they only grow)."""

    transactions: int = 0
    items: int = 0
    largest_batch: int = 0
    send_failures: int = 0
    reverted: int = 0


@dataclass
class _InFlight:
    ids: list[int]
    uetrs: list[str]
    tx_hash: str
    data: bytes  # the call, to replay for the custom error if the transaction reverts
    gas: int
    deadline: float  # monotonic: give up waiting for the receipt after this


class Submitter(WorkerThread):
    """Sends the outbox's PENDING rows as ``settleBatch`` transactions from the relayer key.

    Thread-safe entry points: ``notify()``, ``start()``, ``stop()``, ``wait_idle()``. ``stop()``
    stops taking new rows and finishes the transactions in flight (their receipts) before the
    thread ends; rows whose receipt does not come stay SENT for the next ``recover()``.
    Callbacks run on the worker thread; an exception in one is logged and ignored. Run one
    submitter per outbox: two would send the same rows twice (harmless on-chain, wasted gas).
    """

    def __init__(self, session_factory: sessionmaker[Session], client: LedgerClient, *,
                 max_items: int = 100, max_in_flight: int = 4, receipt_timeout: float | None = None,
                 max_attempts: int = 5, idle_poll: float = 1.0, backoff_initial: float = 0.05,
                 backoff_max: float = 5.0, gas_scale: float = DEFAULT_GAS_SCALE, on_sent: OnSent | None = None,
                 on_failed: OnFailed | None = None, name: str = "outbox-submitter",
                 on_mined: OnSent | None = None) -> None:
        if client.relayer is None:
            raise ConfigurationError("the submitter needs a LedgerClient with a relayer key")
        if max_items < 1 or max_in_flight < 1 or max_attempts < 1:
            raise ConfigurationError("max_items, max_in_flight and max_attempts must be at least 1")
        self._factory = session_factory
        self.client = client
        self._sender: TxSender = client.relayer
        self._max_items = max_items
        self._gas_limit = self._tx_gas_limit()
        self.gas_scale = gas_scale
        self.batch_size = self._fitting_batch()
        self.max_in_flight = max_in_flight
        self.receipt_timeout = receipt_timeout if receipt_timeout is not None else self._sender.receipt_timeout
        self.max_attempts = max_attempts
        self.idle_poll = idle_poll
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._backoff = backoff_initial
        self._retry_at = 0.0
        self.on_sent, self.on_failed, self.on_mined = on_sent, on_failed, on_mined
        self.name = name
        self.stats = SubmitterStats()
        self._in_flight: deque[_InFlight] = deque()
        WorkerThread.__init__(self, name)
        self._needs_recovery = False

    def _tx_gas_limit(self) -> int:
        """The most gas one transaction may have: the EIP-7825 cap, or a smaller block gas limit."""
        try:
            return min(TX_GAS_CAP, int(with_retry(lambda: self.client.w3.eth.get_block("latest"))["gasLimit"]))
        except GatewayError:
            log.warning("block gas limit unknown; sizing batches by the %d tx cap only", TX_GAS_CAP)
            return TX_GAS_CAP

    def _gas(self, n: int) -> int:
        return min(self._gas_limit, int(self.client.batch_gas(n) * self.gas_scale))

    def _fitting_batch(self) -> int:
        """Largest n <= max_items whose scaled gas fits one transaction."""
        n = self._max_items
        while n > 1 and (self.client.batch_gas(n) >= TX_GAS_CAP  # batch_gas clamps at the cap
                         or self.client.batch_gas(n) * self.gas_scale > self._gas_limit):
            n -= 1
        return n

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, recover_first: bool = True) -> RecoveryReport | None:
        """Recover (unless told not to), then start the worker thread. If the chain cannot be
        reached, returns None and the worker recovers first, before it sends anything."""
        if self._thread is not None:
            raise ConfigurationError("submitter already started")
        report = None
        self._needs_recovery = recover_first
        if recover_first:
            try:
                report = self._recover()
            except ChainUnavailable as exc:
                log.warning("outbox recovery postponed, the chain is unreachable: %s", exc.detail)
        self._start_thread()
        return report

    def _recover(self) -> RecoveryReport:
        report = recover(self._factory, self.client, pending_wait=min(5.0, self.receipt_timeout))
        self._needs_recovery = False
        for uetr, reason in report.failed.items():
            self._callback(self.on_failed, [uetr], reason)
        return report

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no row is PENDING or SENT (True), or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._unfinished():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Send in the caller's thread until no row is PENDING or in flight (scripts, tests).
        Rows waiting out a backoff count as pending; raises ChainUnavailable at `timeout`."""
        deadline = time.monotonic() + timeout
        while self._step() or self._in_flight or self._unfinished():
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"outbox not drained within {timeout} s")
            if not self._in_flight and time.monotonic() < self._retry_at:
                time.sleep(max(0.0, self._retry_at - time.monotonic()))

    def _unfinished(self) -> int:
        with transaction(self._factory) as session:
            return int(session.scalar(select(func.count()).select_from(OutboxEntry)
                                      .where(OutboxEntry.state.in_(UNFINISHED))) or 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before looking, so a notify() after the look is not lost
            try:
                if self._needs_recovery:  # start() could not reach the chain: SENT rows wait for it
                    self._recover()
                if self._step():
                    continue
            except Exception:
                log.exception("outbox submitter step failed")
                self._back_off()
                self._stop.wait(max(0.0, self._retry_at - time.monotonic()))
                continue
            # Idle (or backing off): sleep until notify(), the backoff's end or the next poll.
            now = time.monotonic()
            self._wake.wait(min(self.idle_poll, self._retry_at - now) if self._retry_at > now else self.idle_poll)
        while self._in_flight:  # graceful stop: settle what is in flight, once
            try:
                self._complete_oldest()
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping with %d transactions in flight (%s); recover() will finish them",
                            len(self._in_flight), exc)
                break

    # ------------------------------------------------------------------ one step
    def _step(self) -> bool:
        """Send what may be sent, then process the oldest receipt. True if anything happened."""
        sent = self._fill()
        if self._in_flight:
            self._complete_oldest()
            return True
        return sent > 0

    def _back_off(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff_max, self._backoff * 2)

    def _fill(self) -> int:
        sent = 0
        while len(self._in_flight) < self.max_in_flight and time.monotonic() >= self._retry_at:
            flying = {i for f in self._in_flight for i in f.ids}
            with transaction(self._factory) as session:
                rows = [r for r in session.scalars(
                    select(OutboxEntry).where(OutboxEntry.state == OutboxState.PENDING)
                    .order_by(OutboxEntry.id).limit(self.batch_size + len(flying))) if r.id not in flying]
            rows = rows[:self.batch_size]
            if not rows:
                break
            if self._in_flight and len(rows) < self.batch_size:
                break  # a partial batch waits for the transaction in flight (batching under load)
            if not self._send(rows):
                break
            sent += 1
        return sent

    def _send(self, rows: Sequence[OutboxEntry]) -> bool:
        ids, uetrs = [r.id for r in rows], [r.uetr for r in rows]
        data = LedgerClient.encode_batch([r.order() for r in rows], [r.signature for r in rows])
        gas = self._gas(len(rows))
        try:
            tx_hash = self._sender.send(self.client.ledger, data, gas=gas)
        except Exception as exc:  # noqa: BLE001 - classified below
            self.stats.send_failures += 1
            self._back_off()
            if is_transient(exc):
                log.warning("send of %d rows failed transiently, will retry: %s", len(rows), exc)
                self._note(ids, _describe(exc))
            else:
                log.error("send of %d rows failed: %s", len(rows), exc)
                self._attempt_failed(ids, _describe(exc))
            return False
        flight = _InFlight(ids, uetrs, tx_hash, data, gas, time.monotonic() + self.receipt_timeout)
        receipt = self._receipt_now(tx_hash) if not self._in_flight else None
        if receipt is not None and receipt["status"] == 1:
            # Mined already (an instant-sealing node, or a fast one): the rows go from PENDING
            # to DONE in one transaction that also records the transaction (no SENT step). A
            # crash before it leaves them PENDING, which recovery decides exactly as SENT.
            self._count(rows)
            self._callback(self.on_sent, uetrs, tx_hash)
            self._mined(flight, receipt, sent=True)
            return True
        self._in_flight.append(flight)
        with transaction(self._factory) as session:
            session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(ids)).values(
                state=OutboxState.SENT, tx_hash=tx_hash, attempts=OutboxEntry.attempts + 1, updated_at=utcnow()))
        self._count(rows)
        self._callback(self.on_sent, uetrs, tx_hash)
        return True

    def _count(self, rows: Sequence[OutboxEntry]) -> None:
        self.stats.transactions += 1
        self.stats.items += len(rows)
        self.stats.largest_batch = max(self.stats.largest_batch, len(rows))

    def _receipt_now(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt if the node has it already, else None (also if asking failed)."""
        try:
            return _fast_receipt(self.client, tx_hash)
        except Exception:  # noqa: BLE001 - the usual path (SENT, then the receipt poll) copes
            return None

    def _complete_oldest(self) -> None:
        flight = self._in_flight[0]
        receipt = self._await_receipt(flight)
        if receipt is None:
            self._receipt_timed_out(flight)
        elif receipt["status"] == 1:
            self._mined(flight, receipt)
        else:
            self._reverted(flight, receipt)
        self._in_flight.popleft()

    def _await_receipt(self, flight: _InFlight) -> dict[str, Any] | None:
        """Poll for the receipt until the flight's deadline; transient errors keep polling."""
        pause = 0.002
        while True:
            try:
                receipt = _fast_receipt(self.client, flight.tx_hash)
                if receipt is not None:
                    return receipt
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("receipt poll for %s failed transiently: %s", flight.tx_hash, exc)
                pause = max(pause, 0.1)
            if time.monotonic() >= flight.deadline:
                return None
            time.sleep(pause)
            pause = min(0.25, pause * 1.5)

    def _mined(self, flight: _InFlight, receipt: Mapping[str, Any], *, sent: bool = False) -> None:
        """`sent`: the rows were not marked SENT (mined before that): record the transaction too."""
        outcomes = item_outcomes(receipt, self.client.ledger, self.client.decoder)
        decisions: dict[int, Decision] = {}
        for row_id, uetr in zip(flight.ids, flight.uetrs, strict=True):
            outcome = outcomes.get(_uetr_bytes(uetr))
            # Every item emits an event; should one be missing, ask the chain rather than guess.
            status = None if outcome else with_retry(partial(self.client.payment_status, _uetr_bytes(uetr)))
            decisions[row_id] = _decide(status, outcome)
        self._finish(decisions, flight.uetrs, flight.ids, sent_tx=flight.tx_hash if sent else None)
        self._backoff = self._backoff_initial
        self._callback(self.on_mined, flight.uetrs, flight.tx_hash)

    def _reverted(self, flight: _InFlight, receipt: Mapping[str, Any]) -> None:
        """The whole transaction reverted: nothing changed on-chain, the rows go back."""
        self.stats.reverted += 1
        if int(receipt["gasUsed"]) >= flight.gas and flight.gas < self._gas_limit:
            # Out of gas (it burns the whole limit): our budget, not the rows, was wrong. Scale
            # from what this flight had, so several flights out of gas do not compound it.
            self.gas_scale = max(self.gas_scale, 1.5 * flight.gas / self.client.batch_gas(len(flight.ids)))
            self.batch_size = min(self.batch_size, self._fitting_batch())
            log.warning("batch %s ran out of gas (%d); gas scale now %.2f, batches of at most %d",
                        flight.tx_hash, flight.gas, self.gas_scale, self.batch_size)
            self._note(flight.ids, f"transaction {flight.tx_hash} ran out of gas ({flight.gas}); sent again "
                                   "with more", state=OutboxState.PENDING)
            return
        name, error = None, f"transaction {flight.tx_hash} reverted"
        try:  # replay at the parent block to read the custom error (as TxSender.transact does)
            self._sender.call(self.client.ledger, flight.data, block=int(receipt["blockNumber"]) - 1)
            error += " (the replay did not revert)"
        except TransactionFailed as exc:
            name, error = exc.error_name, f"transaction {flight.tx_hash} reverted: {exc.detail}"
        except GatewayError as exc:
            error += f" ({exc.detail})"
        self._back_off()
        log.error("%s", error)
        if name in TRANSIENT_REVERTS:
            self._note(flight.ids, error, state=OutboxState.PENDING)
        else:
            self._attempt_failed(flight.ids, error, counted=True)

    def _receipt_timed_out(self, flight: _InFlight) -> None:
        """No receipt in time: ask the chain, like recovery does, and resend what it lacks."""
        rows = [_Row(i, u, OutboxState.SENT, flight.tx_hash) for i, u in zip(flight.ids, flight.uetrs, strict=True)]
        decisions, unknown = _reconcile(self.client, rows, pending_wait=0.0,
                                        requeue_reason=f"no receipt for {flight.tx_hash} within "
                                                       f"{self.receipt_timeout} s; to be sent again")
        if unknown:
            self._sender.resync_nonce()
        log.warning("no receipt for %s within %.1f s (%s)", flight.tx_hash, self.receipt_timeout,
                    "dropped" if unknown else "still pending")
        self._finish(decisions, flight.uetrs, flight.ids)

    # ------------------------------------------------------------------ row updates
    def _finish(self, decisions: Mapping[int, Decision], uetrs: Sequence[str], ids: Sequence[int], *,
                sent_tx: str | None = None) -> None:
        uetr_of = dict(zip(ids, uetrs, strict=True))
        plain_done = {i for i, (s, note) in decisions.items() if s == OutboxState.DONE and note is None}
        with transaction(self._factory) as session:
            if sent_tx is not None:  # what marking them SENT would have recorded
                session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(list(ids))).values(
                    tx_hash=sent_tx, attempts=OutboxEntry.attempts + 1, updated_at=utcnow()))
            if plain_done:  # the common case, one statement
                session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(plain_done))
                                .values(state=OutboxState.DONE, updated_at=utcnow()))
            rest = {i: d for i, d in decisions.items() if i not in plain_done}
            if rest:
                _apply(session, rest)
        failed: dict[str, list[str]] = {}
        for i, (s, note) in decisions.items():
            if s == OutboxState.FAILED:
                failed.setdefault(note or "failed", []).append(uetr_of[i])
        for reason, group in failed.items():
            self._callback(self.on_failed, group, reason)

    def _note(self, ids: Sequence[int], error: str, *, state: OutboxState | None = None) -> None:
        values: dict[str, Any] = {"last_error": error, "updated_at": utcnow()}
        if state is not None:
            values["state"] = state
        with transaction(self._factory) as session:
            session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(list(ids))).values(**values))

    def _attempt_failed(self, ids: Sequence[int], error: str, *, counted: bool = False) -> None:
        """A non-transient failure: back to PENDING, or FAILED once attempts run out.
        `counted`: the attempt was already counted when the rows were marked SENT."""
        failed: list[str] = []
        with transaction(self._factory) as session:
            for row in session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(list(ids)))):
                if not counted:
                    row.attempts += 1
                row.last_error = error
                row.updated_at = utcnow()
                if row.attempts >= self.max_attempts:
                    row.state = OutboxState.FAILED
                    failed.append(row.uetr)
                else:
                    row.state = OutboxState.PENDING
        if failed:
            self._callback(self.on_failed, failed, error)

    def _callback(self, fn: Callable[[list[str], str], None] | None, uetrs: list[str], arg: str) -> None:
        if fn is None:
            return
        try:
            fn(list(uetrs), arg)
        except Exception:
            log.exception("outbox callback %r failed", fn)
