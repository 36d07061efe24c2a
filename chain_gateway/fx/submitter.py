"""The FX outbox's submitter: debtor-signed FX orders to the chain, each row settled by its receipt."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.db import transaction, utcnow
from chain_gateway.errors import ChainUnavailable, GatewayError
from chain_gateway.fx.models import FX_DONE, FX_FAILED, FX_PENDING, FX_SENT, FxPaymentEntry, FxQuoteRecord
from chain_gateway.fx.orders import encode_fx_batch, fx_batch_gas
from chain_gateway.ledger import LedgerClient
from chain_gateway.outbox.receipts import item_outcomes
from chain_gateway.transactions import TxSender
from chain_gateway.worker import WorkerThread

log = logging.getLogger(__name__)


class FxSubmitter(WorkerThread):
    """Sends the FX outbox (``fx_payments``) to ``FxSettlement.settleFxBatch`` in batches, in its own thread,
    and settles each row by its receipt: DONE when the ledger used the UETR, FAILED when it rejected the
    order, PENDING again (up to ``max_attempts``) when the transaction failed; ``recover`` finishes rows a
    crash left SENT from the chain's own record of the UETR."""

    def __init__(self, client: LedgerClient, sessions: sessionmaker[Session], fx_contract: str, *,
                 sender: TxSender | None = None, batch_size: int = 50, max_attempts: int = 5,
                 receipt_timeout: float = 30.0, idle_poll: float = 0.5) -> None:
        self.client = client
        self.sessions = sessions
        self.fx_contract = to_checksum_address(fx_contract)
        self.sender = sender or client.relayer
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.receipt_timeout = receipt_timeout
        self.idle_poll = idle_poll
        self.transactions = 0
        WorkerThread.__init__(self, "fx-submitter")

    def start(self, *, recover_first: bool = True) -> None:
        if recover_first:
            self.recover()
        self._start_thread()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.step():
                    continue
            except Exception:
                log.exception("FX submitter step failed")
                self._stop.wait(1.0)
                continue
            self._wake.wait(self.idle_poll)

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Send in the caller's thread until no row is PENDING (scripts, tests)."""
        deadline = time.monotonic() + timeout
        while self.step():
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"FX outbox not drained within {timeout} s")

    def recover(self) -> None:
        """Rows left SENT by a crash: DONE when the chain has the UETR, else PENDING again."""
        with transaction(self.sessions) as session:
            rows = list(session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.state == FX_SENT)))
            for row in rows:
                status = self.client.payment_status(uuid.UUID(row.uetr).bytes)
                row.state = FX_DONE if status != 0 else FX_PENDING

    def step(self) -> bool:
        """Send one batch of PENDING rows and process its receipt. True if anything was sent."""
        with transaction(self.sessions) as session:
            rows = list(session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.state == FX_PENDING)
                                        .order_by(FxPaymentEntry.id).limit(self.batch_size)))
            quotes = {r.quote_id: session.get(FxQuoteRecord, r.quote_id) for r in rows}
        if not rows:
            return False
        usable = [r for r in rows if quotes.get(r.quote_id) is not None]
        missing = [r.id for r in rows if quotes.get(r.quote_id) is None]
        if missing:
            self._mark(missing, FX_FAILED, "the quote is no longer in the quote book")
        if not usable:
            return True
        records = [quotes[r.quote_id] for r in usable]
        data = encode_fx_batch([r.order() for r in usable], [bytes(r.signature) for r in usable],
                               [q.quote() for q in records if q is not None],
                               [bytes(q.signature) for q in records if q is not None])
        ids = [r.id for r in usable]
        if self.sender is None:
            raise ChainUnavailable("the FX submitter has no relayer key")
        try:
            tx_hash = self.sender.send(self.fx_contract, data, gas=fx_batch_gas(len(usable)))
        except GatewayError as exc:
            self._failed_attempt(ids, f"send failed: {exc.detail}")
            return True
        self._mark(ids, FX_SENT, None, tx_hash=tx_hash, attempt=True)
        self.transactions += 1
        try:
            receipt = self.sender.wait(tx_hash, timeout=self.receipt_timeout)
        except ChainUnavailable:
            self.recover()
            return True
        if receipt["status"] != 1:
            self._failed_attempt(ids, f"transaction {tx_hash} reverted", counted=True)
            return True
        outcomes = item_outcomes(receipt, self.client.ledger, self.client.decoder)
        done: list[int] = []
        failed: list[int] = []
        for row in usable:
            outcome = outcomes.get(uuid.UUID(row.uetr).bytes)
            used = outcome.uetr_used if outcome else self.client.payment_status(uuid.UUID(row.uetr).bytes) != 0
            (done if used else failed).append(row.id)
        if done:
            self._mark(done, FX_DONE, None)
        if failed:
            self._mark(failed, FX_FAILED, "rejected on-chain without using the UETR (expired or badly signed)")
        return True

    def _mark(self, ids: Sequence[int], state: str, error: str | None, *, tx_hash: str | None = None,
              attempt: bool = False) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
        if error is not None:
            values["last_error"] = error
        if tx_hash is not None:
            values["tx_hash"] = tx_hash
        if attempt:
            values["attempts"] = FxPaymentEntry.attempts + 1
        with transaction(self.sessions) as session:
            session.execute(update(FxPaymentEntry).where(FxPaymentEntry.id.in_(list(ids))).values(**values))

    def _failed_attempt(self, ids: Sequence[int], error: str, *, counted: bool = False) -> None:
        with transaction(self.sessions) as session:
            for row in session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.id.in_(list(ids)))):
                if not counted:
                    row.attempts += 1
                row.last_error = error
                row.state = FX_FAILED if row.attempts >= self.max_attempts else FX_PENDING
        log.warning("FX batch failed: %s", error)
        self._stop.wait(0.5)
