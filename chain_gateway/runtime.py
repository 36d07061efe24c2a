"""The running gateway: one object that owns the chain connection, the deployment, the
keys, the database, and the background indexer and submitter. The API holds one; tests
build one with their own settings; ``make run`` starts one with a managed anvil.
"""
from __future__ import annotations

import logging
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
from chain_gateway.keys import KeyStore
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.fx import FxService, ensure_fx_settlement
from chain_gateway.outbox.models import OutboxState
from chain_gateway.queue import QueueService
from chain_gateway.payments import IntakeContext, _no_risk_check
from chain_gateway.risk.config import RiskConfig
from chain_gateway.risk.engine import RiskEngine
from chain_gateway.tracker import ChangeSignal
from chain_gateway.transactions import TxSender

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
        self.changes = ChangeSignal()
        self._paused_cache: tuple[float, bool] | None = None
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
        self.risk_engine = RiskEngine(RiskConfig.from_settings(s))
        url = s.effective_database_url
        upgrade_database(url)
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.fx = FxService(self.client, self.sessions, ensure_fx_settlement(self.client))
        self.queue = QueueService(self.client, self.sessions, time_limit=s.gridlock_time_limit_seconds,
                                  stuck_seconds=s.gridlock_stuck_seconds)
        self.indexer = Indexer(self.client, self.sessions, confirmation_depth=s.confirmation_depth,
                               hooks=[self.changes.notify, self._after_reorg, self.queue.on_mirror_update])
        self.submitter = Submitter(self.sessions, self.client)
        if background:
            self.indexer.sync_once()
            self.resend_lost()  # a fork (or a node restored from an older state) while we were down
            self._spawn("indexer", lambda: self.indexer.run_forever(self._stop, poll_interval=0.05))
            self.submitter.start()
            self.fx.start()
            self.queue.start()
        self.started = True

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
        except Exception:  # noqa: BLE001 - start() checks again; a hook must not stop the indexer
            log.exception("after a reorg: re-checking the outbox failed")

    def resend_lost(self, uetrs: Any = None) -> list[str]:
        """Outbox rows marked DONE whose UETR the chain no longer has go back to PENDING.

        DONE means "the chain has the UETR" when the receipt came; a reorganisation, or a node
        restored from an older state (anvil killed between two state saves), can take the
        block back, and nothing would ever send the order again: the payment would sit in
        ACSP for good. Checks the given UETRs (a rewind's), or every DONE row the mirror has
        no payment for (at start-up, after the first sync). Resending cannot pay twice: the
        chain takes a UETR once. Returns the UETRs sent again."""
        import uuid

        from sqlalchemy import select, update

        from chain_gateway.db import transaction, utcnow
        from chain_gateway.mirror.models import Payment
        from chain_gateway.outbox.models import OutboxEntry

        client = self.require_client()
        with transaction(self.require_sessions()) as session:
            query = select(OutboxEntry.uetr).where(OutboxEntry.state == OutboxState.DONE)
            if uetrs is None:
                query = query.where(OutboxEntry.uetr.not_in(select(Payment.uetr)))
            else:
                query = query.where(OutboxEntry.uetr.in_(sorted(uetrs)))
            candidates = list(session.scalars(query))
        if not candidates:
            return []
        statuses = client.statuses([uuid.UUID(u).bytes for u in candidates])
        lost = [u for u, status in zip(candidates, statuses, strict=True) if status == 0]
        if lost:
            with transaction(self.require_sessions()) as session:
                session.execute(update(OutboxEntry).where(OutboxEntry.uetr.in_(lost),
                                                          OutboxEntry.state == OutboxState.DONE)
                                .values(state=OutboxState.PENDING, updated_at=utcnow(),
                                        last_error="the chain lost the block that carried it (reorganisation); "
                                                   "sent again"))
            log.warning("%d payments were dropped by a chain reorganisation; sending them again", len(lost))
            if self.submitter is not None:
                self.submitter.notify()
        return lost

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
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
        """The ledger's pause flag, read from the chain at most every half second."""
        now = time.monotonic()
        cached = self._paused_cache
        if cached is not None and now - cached[0] < 0.5:
            return cached[1]
        paused = self.require_client().paused()
        self._paused_cache = (now, paused)
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

    def intake_context(self) -> IntakeContext:
        client = self.require_client()
        directory = self.directory or ChainDirectory(client)
        from chain_gateway.outbox import enqueue

        def gateway_key(address: str) -> bytes | None:
            return bytes(self.keystore.account(address).key) if self.keystore.has(address) else None

        return IntakeContext(
            chain_id=int(self.deployment.chain_id) if self.deployment else 0,
            ledger=to_checksum_address(client.ledger),
            enabled_currencies=frozenset(self.settings.enabled_currencies),
            resolve=lambda bic: directory.require(bic),
            is_active=client.is_active,
            balance_of=client.balance_of,
            gateway_key=gateway_key,
            enqueue=enqueue,
            order_ttl_seconds=self.settings.order_ttl_seconds,
            is_paused=self.is_paused,
            risk_check=self.risk_engine.risk_check if self.risk_engine is not None else _no_risk_check,
        )
