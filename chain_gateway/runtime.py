"""The running gateway: one object that owns the chain connection, the deployment, the
keys, the database, and the background indexer and submitter. The API holds one; tests
build one with their own settings; ``make run`` starts one with a managed anvil.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import replace
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.chain import ChainHandle, connect
from chain_gateway.config import Settings
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.deploy import bootstrap_demo, ensure_deployment, roles_for
from chain_gateway.directory import ChainDirectory
from chain_gateway.fx import FxService, ensure_fx_settlement
from chain_gateway.keys import KeyStore
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.outbox.models import OutboxState
from chain_gateway.payments import IntakeContext, _no_risk_check
from chain_gateway.queue import QueueService
from chain_gateway.risk.config import RiskConfig
from chain_gateway.risk.engine import RiskEngine
from chain_gateway.tracker import ChangeSignal
from chain_gateway.transactions import JsonRpc, TxSender, encode_call

log = logging.getLogger("gateway")


class Gateway:
    """Everything a request handler needs, started once per process."""

    def __init__(self, settings: Settings, *, chain: ChainHandle | None = None,
                 deployment: Deployment | None = None) -> None:
        self.settings = settings
        self.chain: ChainHandle | None = chain
        self._owns_chain = chain is None
        self.deployment = deployment
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        self.client: LedgerClient | None = None
        self.keystore = KeyStore(settings.keystore_dir, settings.keystore_passphrase.get_secret_value(),
                                 production=settings.environment == "production")
        self.directory: ChainDirectory | None = None
        self.risk_engine: RiskEngine | None = None
        self.indexer: Any = None
        self.submitter: Any = None
        self.fx: FxService | None = None
        self.queue: QueueService | None = None
        self._stop = threading.Event()
        self._index_wake = _WakeableStop(self._stop)
        self.changes = ChangeSignal()
        self._paused_cache: tuple[float, bool] | None = None
        self._paused_refresh = threading.Lock()
        self._rpc: JsonRpc | None = None
        self._threads: list[threading.Thread] = []
        self.started = False

    # ------------------------------------------------------------------ life
    def start(self, *, background: bool = True) -> None:
        """Connect, deploy if needed, migrate the database, start indexer and submitter."""
        from chain_gateway.indexer import Indexer
        from chain_gateway.mirror.schema import upgrade_database
        from chain_gateway.outbox import Submitter

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.chain is None:
            self.chain = connect(s)
        if self.deployment is None:
            self.deployment = ensure_deployment(s, self.chain)
        roles = roles_for(s, self.chain)
        w3 = self.chain.w3
        self.client = LedgerClient(
            w3, self.deployment,
            operator=TxSender(w3, roles.operator, gas_price_wei=s.gas_price_wei, receipt_timeout=s.receipt_timeout_seconds),
            relayer=TxSender(w3, roles.relayer, gas_price_wei=s.gas_price_wei, receipt_timeout=s.receipt_timeout_seconds),
        )
        self.directory = ChainDirectory(self.client)
        self._rpc = JsonRpc.for_web3(w3)
        self.risk_engine = RiskEngine(RiskConfig.from_settings(s))
        url = s.effective_database_url
        upgrade_database(url)
        self.engine = make_engine(url, **_engine_options(url))
        self.sessions = make_session_factory(self.engine)
        self.fx = FxService(self.client, self.sessions, ensure_fx_settlement(self.client))
        self.queue = QueueService(self.client, self.sessions, time_limit=s.gridlock_time_limit_seconds,
                                  stuck_seconds=s.gridlock_stuck_seconds)
        self.indexer = Indexer(self.client, self.sessions, confirmation_depth=s.confirmation_depth,
                               hooks=[self.changes.notify, self._after_reorg, self.queue.on_mirror_update])
        # The submitter's send wakes the indexer: on an instant-sealing node (anvil) the block
        # is there already, and the mirror (hence ACSC) follows at once instead of at the poll.
        # And so does its receipt: the block is certainly there then (a send may return before
        # the node has mined it, and the indexer would otherwise wait for its next poll).
        self.submitter = Submitter(self.sessions, self.client, on_sent=lambda _uetrs, _tx: self._index_wake.wake(),
                                   on_mined=lambda _uetrs, _tx: self._index_wake.wake())
        if background:
            self.indexer.sync_once()
            try:
                self.resend_lost()  # a fork (or a node restored from an older state) while we were down
            except Exception as exc:  # noqa: BLE001 - the background sweep checks again
                log.warning("start-up check for payments lost by the chain failed: %s", exc)
            self._spawn("indexer", lambda: self.indexer.run_forever(self._index_wake, poll_interval=0.05))
            self._spawn("outbox-lost-sweep", self._sweep_lost)
            self.submitter.start()
            self.fx.start()
            self.queue.start()
        self.started = True

    # How long a DONE outbox row may lack its mirrored payment before the chain is asked
    # whether it still has the UETR (the mirror normally follows within a poll, 50 ms).
    LOST_AFTER_SECONDS = 10.0

    def _after_reorg(self, update: Any) -> None:
        """Indexer hook: after a rewind, our transactions in the dropped blocks are gone."""
        if not getattr(update, "reorg", False):
            return
        client = self.require_client()
        for sender in (client.operator, client.relayer):
            if sender is not None:
                sender.resync_nonce()  # the fork took our nonces back: a stale counter leaves a gap
        try:
            self.resend_lost(update.uetrs)
        except Exception:
            log.exception("after a reorg: re-checking the outbox failed")

    def _sweep_lost(self) -> None:
        """Background: every few seconds, DONE rows the mirror still lacks are checked on-chain."""
        while not self._stop.wait(self.LOST_AFTER_SECONDS / 2):
            try:
                self.resend_lost(older_than=self.LOST_AFTER_SECONDS)
            except Exception as exc:  # noqa: BLE001 - chain or database down: next round
                log.warning("outbox sweep for payments lost by the chain failed: %s", exc)

    def resend_lost(self, uetrs: Any = None, *, older_than: float | None = None) -> list[str]:
        """Outbox rows marked DONE whose UETR the chain no longer has go back to PENDING, in both
        outboxes (plain payments and FX payments).

        DONE means "the chain had the UETR" when the receipt came; a reorganisation, or a
        node restored from an older state (anvil killed between two state saves), can take
        the block back, and nothing would ever send the order again: the payment would sit
        in ACSP for good. A rewind passes its UETRs; otherwise every DONE row the mirror has
        no payment for (at start-up after the first sync, and from the periodic sweep, only
        rows DONE for at least `older_than` seconds, so the mirror had time to follow) is
        checked with ``paymentStatus``: 0 means lost. Resending cannot pay twice: the chain
        takes a UETR once. Returns the UETRs sent again."""
        from chain_gateway.fx import FX_DONE, FX_PENDING, FxPaymentEntry
        from chain_gateway.outbox.models import OutboxEntry

        lost = self._resend_lost_from(OutboxEntry, OutboxState.DONE, OutboxState.PENDING, uetrs, older_than,
                                      self.submitter)
        return lost + self._resend_lost_from(FxPaymentEntry, FX_DONE, FX_PENDING, uetrs, older_than, self.fx)

    def _resend_lost_from(self, table: Any, done: str, pending: str, uetrs: Any, older_than: float | None,
                          sender: Any) -> list[str]:
        import datetime as dt
        import uuid

        from sqlalchemy import exists, select, update

        from chain_gateway.db import transaction, utcnow
        from chain_gateway.mirror.models import Payment

        client = self.require_client()
        with transaction(self.require_sessions()) as session:
            query = select(table.uetr).where(table.state == done)
            if uetrs is not None:
                query = query.where(table.uetr.in_(sorted(uetrs)))
            else:
                query = query.where(~exists().where(Payment.uetr == table.uetr))
                if older_than is not None:
                    query = query.where(table.updated_at < utcnow() - dt.timedelta(seconds=older_than))
            candidates: list[str] = list(session.scalars(query.limit(5_000)))
        if not candidates:
            return []
        statuses = client.statuses([uuid.UUID(u).bytes for u in candidates])
        lost = [u for u, status in zip(candidates, statuses, strict=True) if status == 0]
        if lost:
            with transaction(self.require_sessions()) as session:
                session.execute(update(table).where(table.uetr.in_(lost), table.state == done)
                                .values(state=pending, updated_at=utcnow(),
                                        last_error="the chain lost the block that carried it (reorganisation "
                                                   "or a node restored from older state); sent again"))
            log.warning("%d payments were lost by the chain (reorganisation or restored node); sending them "
                        "again", len(lost))
            if sender is not None:
                sender.notify()
        return lost

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._index_wake.wake()
        for service in (self.queue, self.fx, self.submitter):
            if service is not None:
                service.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.engine is not None:
            self.engine.dispose()
        if self.chain is not None and self._owns_chain:
            self.chain.close()
        self.started = False

    # -------------------------------------------------------------- helpers
    def require_sessions(self) -> sessionmaker[Session]:
        if self.sessions is None:
            from chain_gateway.errors import Unavailable
            raise Unavailable("the gateway is starting")
        return self.sessions

    def release_held(self, session: Session, uetr: str) -> None:
        """Release a risk-held order to its submitter (the caller commits, then notifies)."""
        if self.fx is not None and self.fx.release_held(session, uetr):
            return
        self._decide_held(session, uetr, OutboxState.PENDING)

    def reject_held(self, session: Session, uetr: str) -> None:
        """Reject a risk-held order for good: it never reaches the chain."""
        if self.fx is not None and self.fx.reject_held(session, uetr):
            return
        self._decide_held(session, uetr, OutboxState.REJECTED)

    def _decide_held(self, session: Session, uetr: str, state: OutboxState) -> None:
        from chain_gateway.errors import Conflict, NotFound
        from chain_gateway.outbox import get_entry

        entry = get_entry(session, uetr)
        if entry is None:
            raise NotFound(f"no held payment {uetr}")
        if entry.state != OutboxState.HELD:
            raise Conflict(f"payment {uetr} is not held (it is {entry.state})")
        entry.state = state

    def is_paused(self) -> bool:
        """The ledger's pause flag, read from the chain at most every half second.

        One thread refreshes it at a time; the others keep the last value meanwhile, so a slow
        node does not get one identical eth_call per waiting request (the chain itself refuses
        every payment while paused, so a value one round trip old only delays the 503)."""
        now = time.monotonic()
        cached = self._paused_cache
        if cached is not None and now - cached[0] < 0.5:
            return cached[1]
        if cached is None:
            self._paused_refresh.acquire()
        elif not self._paused_refresh.acquire(blocking=False):
            return cached[1]
        try:
            paused = self.require_client().paused()
            self._paused_cache = (time.monotonic(), paused)
        finally:
            self._paused_refresh.release()
        return paused

    def forget_paused(self) -> None:
        """Called after this gateway pauses or resumes the ledger."""
        self._paused_cache = None

    def mirror_block(self) -> int | None:
        """The block the mirror has reached, or None before the first sync."""
        from chain_gateway.mirror.repository import mirror_head

        with self.require_sessions()() as session:
            head = mirror_head(session=session)
        return None if head is None else head.block_number

    def require_client(self) -> LedgerClient:
        if self.client is None:
            from chain_gateway.errors import Unavailable
            raise Unavailable("the gateway is starting")
        return self.client

    def bootstrap_demo(self) -> list[Any]:
        participants = bootstrap_demo(self.require_client(), self.keystore)
        if self.deployment is not None:
            self.deployment = replace(self.deployment, participants={p.bic: p.address for p in participants})
        return participants

    def intake_context(self, group: Any = None) -> IntakeContext:
        """What intake needs. `group`, an iterable of (debtor BIC, creditor BIC, currency) of
        payments about to be accepted together: their chain reads (and the pause flag) are made
        now, in one round trip, and ``prefetch`` has nothing left to do."""
        client = self.require_client()
        directory = self.directory or ChainDirectory(client)
        from chain_gateway.outbox import enqueue

        def gateway_key(address: str) -> bytes | None:
            return bytes(self.keystore.account(address).key) if self.keystore.has(address) else None

        reads = _IntakeReads(client, self._rpc)  # one request's chain reads, in one round trip
        prefetch = reads.prefetch if self._rpc is not None else None
        if group is not None and self._rpc is not None:
            wanted = []
            for debtor_bic, creditor_bic, currency in group:
                if currency not in self.settings.enabled_currencies:
                    continue
                try:
                    debtor, creditor = directory.address_of(debtor_bic), directory.address_of(creditor_bic)
                except Exception:  # noqa: BLE001 - that payment's own checks read (and raise) again
                    continue
                if debtor is not None and creditor is not None:  # else intake raises InvalidAgent itself
                    wanted.append((debtor, creditor, currency))
            paused = reads.prefetch_group(wanted)
            if paused is not None:
                self._paused_cache = (time.monotonic(), paused)
            prefetch = None
        return IntakeContext(
            chain_id=int(self.deployment.chain_id) if self.deployment else 0,
            ledger=to_checksum_address(client.ledger),
            enabled_currencies=frozenset(self.settings.enabled_currencies),
            resolve=lambda bic: directory.require(bic),
            is_active=reads.is_active,
            balance_of=reads.balance_of,
            prefetch=prefetch,
            gateway_key=gateway_key,
            enqueue=enqueue,
            order_ttl_seconds=self.settings.order_ttl_seconds,
            is_paused=self.is_paused,
            risk_check=self.risk_engine.risk_check if self.risk_engine is not None else _no_risk_check,
        )


class _IntakeReads:
    """One intake's chain reads. `prefetch` asks for both parties' registry status and the
    debtor's balance in one JSON-RPC batch (~0.5 ms, against ~3 ms per web3 call); `is_active`
    and `balance_of` answer from it, else (not prefetched, or the batch failed) read alone as
    before, so errors surface exactly where they did."""

    def __init__(self, client: LedgerClient, rpc: JsonRpc | None) -> None:
        self._client, self._rpc = client, rpc
        self._active: dict[str, bool] = {}
        self._balances: dict[tuple[str, str], int] = {}

    def prefetch(self, debtor: str, creditor: str, currency: str) -> None:
        if self._rpc is None:
            return
        from chain_gateway.codec import currency_to_bytes3

        c = self._client
        try:
            raw = self._rpc.eth_calls([
                (c.registry, encode_call("isActive(address)", ["address"], [debtor])),
                (c.registry, encode_call("isActive(address)", ["address"], [creditor])),
                (c.ledger, encode_call("balanceOf(address,bytes3)", ["address", "bytes3"],
                                       [debtor, currency_to_bytes3(currency)])),
            ])
        except Exception as exc:  # noqa: BLE001 - the single reads run instead and raise as they always did
            log.debug("intake prefetch failed, reading one by one: %s", exc)
            return
        self._active[debtor] = int.from_bytes(raw[0][:32], "big") != 0
        self._active[creditor] = int.from_bytes(raw[1][:32], "big") != 0
        self._balances[(debtor, currency)] = int.from_bytes(raw[2][:32], "big")

    def prefetch_group(self, payments: Any) -> bool | None:
        """`prefetch` for many (debtor, creditor, currency) at once, plus the ledger's pause
        flag, in one JSON-RPC batch. Returns the pause flag (None if the batch failed: every
        read is then made alone, as without a prefetch)."""
        if self._rpc is None:
            return None
        from chain_gateway.codec import currency_to_bytes3

        c = self._client
        parties = sorted({a for d, cr, _ in payments for a in (d, cr)})
        balances = sorted({(d, cur) for d, _, cur in payments})
        calls = [(c.ledger, encode_call("paused()", [], []))]
        calls += [(c.registry, encode_call("isActive(address)", ["address"], [a])) for a in parties]
        calls += [(c.ledger, encode_call("balanceOf(address,bytes3)", ["address", "bytes3"],
                                         [d, currency_to_bytes3(cur)])) for d, cur in balances]
        try:
            raw = self._rpc.eth_calls(calls)
        except Exception as exc:  # noqa: BLE001 - the single reads run instead and raise as they always did
            log.debug("intake group prefetch failed, reading one by one: %s", exc)
            return None
        words = [int.from_bytes(r[:32], "big") for r in raw]
        for a, w in zip(parties, words[1:1 + len(parties)], strict=True):
            self._active[a] = w != 0
        for key, w in zip(balances, words[1 + len(parties):], strict=True):
            self._balances[key] = w
        return words[0] != 0

    def is_active(self, participant: str) -> bool:
        hit = self._active.get(participant)
        return self._client.is_active(participant) if hit is None else hit

    def balance_of(self, participant: str, currency: str) -> int:
        hit = self._balances.get((participant, currency))
        return self._client.balance_of(participant, currency) if hit is None else hit


class _WakeableStop:
    """The indexer loop's stop event (``run_forever`` waits on it between polls) that can also
    be woken early: ``wake()`` ends the current wait without stopping anything."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._wake = threading.Event()

    def is_set(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._wake.wait(timeout)
        self._wake.clear()
        return self._stop.is_set()


# ------------------------------------------------------------------ SQLite writers
def _engine_options(url: str) -> dict[str, Any]:
    """SQLite: enough pooled connections for the API's thread pool (40) and the background
    threads (QueuePool's default 5 + 10 made a burst of requests wait out its 30 s timeout),
    and connections that queue their writers in-process (``_GatedConnection``).
    PostgreSQL keeps make_engine's settings."""
    if not url.startswith("sqlite"):
        return {}
    gate = _WriterGate(timeout=30.0)
    factory = type("GatedConnection", (_GatedConnection,), {"gate": gate})
    return {"pool_size": 10, "max_overflow": 50,
            "connect_args": {"check_same_thread": False, "timeout": 30, "factory": factory}}


class _WriterGate:
    """SQLite (WAL) lets one transaction write at a time; the others wait in its busy handler,
    which sleeps 1, 2, 5 ... 100 ms between tries, so under concurrent intake most of a
    request's time went to naps taken while the lock was already free. With the gate, a
    transaction takes the gate at its first write statement and gives it back right
    after its COMMIT or ROLLBACK (the pool rolls back every returned connection), so a waiter
    wakes the moment the writer is done. Every write on the engine passes the gate, so
    whoever holds SQLite's write lock holds the gate first: no lock-order inversion. A wait
    longer than the busy timeout goes on without the gate and lets SQLite decide, as before
    (one thread writing on two connections at once would otherwise wait for itself).

    Intake (threads inside ``intake_writes()``) passes after the background writers that are
    waiting: the submitter marking rows SENT or DONE and the indexer writing the mirror are
    on every payment's way to ACSC, and a plain lock let a burst of intake transactions
    (a pacs.008 of 100 payments holds the gate for its whole transaction) starve them."""

    def __init__(self, timeout: float) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held = False
        self._urgent = 0  # background writers waiting
        self.timeout = timeout

    def acquire(self) -> bool:
        low = getattr(_intake_thread, "active", False)
        deadline = time.monotonic() + self.timeout
        with self._cond:
            if not low:
                self._urgent += 1
            try:
                while self._held or (low and self._urgent):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                self._held = True
                return True
            finally:
                if not low:
                    self._urgent -= 1

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


_intake_thread = threading.local()


class intake_writes:
    """Marks the current thread's SQLite writes as intake's: they wait for the background
    writers (submitter, indexer) already waiting for the gate (``_WriterGate``)."""

    def __enter__(self) -> None:
        self._before = getattr(_intake_thread, "active", False)
        _intake_thread.active = True

    def __exit__(self, *exc: object) -> None:
        _intake_thread.active = self._before


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN I")  # BEGIN IMMEDIATE takes the write lock


class _GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that passes its engine's ``_WriterGate`` before its first write
    statement and leaves it after COMMIT, ROLLBACK or close."""

    gate: _WriterGate
    holds_gate = False

    def cursor(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:  # type: ignore[override]
        kwargs.setdefault("factory", _GatedCursor)
        cursor: sqlite3.Cursor = super().cursor(*args, **kwargs)
        return cursor

    def enter_gate(self, statement: str) -> None:
        if not self.holds_gate and statement.lstrip()[:7].upper().startswith(_WRITES):
            self.holds_gate = self.gate.acquire()

    def leave_gate(self) -> None:
        if self.holds_gate:
            self.holds_gate = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_gate()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_gate()


class _GatedCursor(sqlite3.Cursor):
    connection: _GatedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _GatedCursor:
        self.connection.enter_gate(sql)
        super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _GatedCursor:
        self.connection.enter_gate(sql)
        super().executemany(sql, seq_of_parameters)
        return self
