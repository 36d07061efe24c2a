"""The indexer: follows the registry's and the ledger's events from the deployment block
into the SQL mirror, reorganisation-safe and exactly once.

One cycle (``sync_once``):

1. re-check the hashes of the last N applied blocks (``mirror_blocks``) against the chain;
   a mismatch is a ``ReorgDetected(block_number, expected, actual)``: the mirror is rewound
   to the last good block (``writer.rewind``) and the cycle starts again (bounded retries);
   a reorganisation deeper than the window rebuilds the mirror from the deployment block;
2. for each block range from the checkpoint to the head (``max_range`` blocks at most): one
   ``eth_getLogs`` for both contract addresses, decoding by topic0 with eth_abi, then one
   database transaction holding the range's effects, its processed-block keys (unique:
   a range cannot be applied twice), the new checkpoint ``(block_number, block_hash)``
   (moved with an optimistic ``WHERE block_number = from_block - 1``) and the hashes of the
   last N blocks. The range's first block must descend from the checkpoint's hash, and
   every log's block hash must match the header fetched with it, or nothing is written;
3. after each committed range the notification hooks get a ``MirrorUpdate``.

Statuses are mirrored as the chain made them; whether they are final depends on the
confirmation depth (``Checkpoint.final_block = head - depth``), which the repository uses.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.db import transaction, utcnow
from chain_gateway.errors import ChainUnavailable, ConfigurationError, GatewayError, ReorgDetected
from chain_gateway.indexer.events import DecodedEvent, EventDecoder, RawLog
from chain_gateway.indexer.source import BlockHeader, ChainSource, RpcError, make_source
from chain_gateway.ledger import LedgerClient
from chain_gateway.mirror import writer
from chain_gateway.mirror.models import Checkpoint, MirrorBlock, Payment

log = logging.getLogger(__name__)


class RangeAlreadyApplied(GatewayError):
    """Raised when a block range's logs (or its checkpoint step) were applied before."""

    title = "Block range already applied"


@dataclass(frozen=True)
class SyncReport:
    """What one ``sync_once`` did."""

    from_block: int
    to_block: int  # the checkpoint after the cycle (from_block - 1 when nothing was new)
    events: int
    seconds: float
    ranges: int = 0
    reorgs: int = 0
    head_block: int = 0
    final_block: int = 0


@dataclass(frozen=True)
class MirrorUpdate:
    """Handed to every hook after a committed range or a rewind."""

    from_block: int
    to_block: int
    uetrs: frozenset[str]
    """Payments with a new event (or, after a reorg, whose state was rewound)."""
    participants: frozenset[str]
    """Addresses whose balance, payments or registration changed."""
    balances_increased: frozenset[tuple[str, str]]
    """(participant, currency) credited in the range: queued payments may now fit."""
    finalized: frozenset[str] = frozenset()
    """UETRs whose final status (ACSC, RJCT, CANC) reached the confirmation depth."""
    reorg: bool = False


Hook = Callable[[MirrorUpdate], None]


@dataclass(frozen=True)
class _Window:
    chain_id: int
    ledger: str
    block_number: int
    block_hash: str
    final_block: int
    hashes: dict[int, str] = field(default_factory=dict)


class Indexer:
    """Mirror one deployment (the client's) into the database behind `session_factory`."""

    def __init__(self, client: LedgerClient, session_factory: sessionmaker[Session], *,
                 confirmation_depth: int = 0, hash_window: int = 12, max_range: int = 5_000,
                 max_reorg_retries: int = 3, hooks: Iterable[Hook] = (), source: ChainSource | None = None) -> None:
        if confirmation_depth < 0 or hash_window < 1 or max_range < 1 or max_reorg_retries < 0:
            raise ConfigurationError("indexer: depth >= 0, hash window >= 1, range >= 1, retries >= 0")
        self.client = client
        self.deployment = client.deployment
        self.sessions = session_factory
        self.source = source or make_source(client.w3)
        self.decoder = EventDecoder(self.deployment.abi["ParticipantRegistry"], self.deployment.abi["SettlementLedger"])
        self.addresses = [client.registry, client.ledger]
        self.chain_id = int(self.deployment.chain_id)
        self.ledger = client.ledger
        self.confirmation_depth = confirmation_depth
        self.hash_window = hash_window
        self.max_range = max_range
        self.max_reorg_retries = max_reorg_retries
        self.hooks: list[Hook] = list(hooks)

    # ---------------------------------------------------------------- public
    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)

    def sync_once(self) -> SyncReport:
        """Bring the mirror up to the chain's head; rewinds and retries on a reorganisation."""
        started = time.perf_counter()
        reorgs = conflicts = 0
        progress = [0, 0]  # events, ranges committed in this call (a reorg may interrupt a cycle)
        first: int | None = None
        while True:
            try:
                window = self._load_or_init()
                if first is None:
                    first = window.block_number + 1
                self._check_window(window)
                head = self.source.head()
                window = self._follow(window, head, progress)
                return SyncReport(first, window.block_number, progress[0], time.perf_counter() - started,
                                  progress[1], reorgs, head, window.final_block)
            except ReorgDetected as exc:
                reorgs += 1
                if reorgs > self.max_reorg_retries:
                    raise
                log.warning("reorg: %s (%s)", exc.detail, exc.fields)
                fork = exc.fields.get("fork_block")
                if fork is not None:
                    self.rewind(int(fork))
                elif exc.fields.get("deep"):
                    self._wipe()
            except RangeAlreadyApplied:
                conflicts += 1  # another indexer moved the checkpoint: start the cycle again
                if conflicts > self.max_reorg_retries:
                    raise

    def run_forever(self, stop_event: threading.Event, poll_interval: float = 1.0) -> None:
        """Sync, then wait `poll_interval` seconds, until `stop_event` is set; never dies on a
        chain or database hiccup (it logs and tries again)."""
        backoff = poll_interval
        while not stop_event.is_set():
            try:
                self.sync_once()
                backoff = poll_interval
            except (ChainUnavailable, RpcError) as exc:
                log.warning("indexer: chain unavailable: %s", exc)
                backoff = min(max(backoff * 2, poll_interval), 30.0)
            except GatewayError as exc:
                log.error("indexer: %s %s", exc.detail, exc.fields)
                backoff = min(max(backoff * 2, poll_interval), 30.0)
            except Exception:
                log.exception("indexer cycle failed")
                backoff = min(max(backoff * 2, poll_interval), 30.0)
            stop_event.wait(backoff)

    def rebuild(self) -> SyncReport:
        """Wipe every chain-derived table and index again from the deployment block."""
        self._wipe()
        return self.sync_once()

    def rewind(self, fork_block: int) -> MirrorUpdate:
        """Undo every mirrored effect above `fork_block` (which must be in the hash window)."""
        with transaction(self.sessions) as session:
            cp = self._checkpoint(session)
            if cp is None:
                raise ConfigurationError("nothing to rewind: the mirror has no checkpoint")
            old_to = cp.block_number
            fork_hash = session.execute(select(MirrorBlock.block_hash).where(
                MirrorBlock.chain_id == self.chain_id, MirrorBlock.block_number == fork_block)).scalar_one_or_none()
            if fork_hash is None and fork_block == cp.block_number:
                fork_hash = cp.block_hash
            if fork_hash is None and fork_block == cp.deploy_block - 1:
                fork_hash = self._header(fork_block).hash
            if fork_hash is None:
                raise ReorgDetected(f"cannot rewind to block {fork_block}: outside the hash window",
                                    block_number=fork_block, deep=True)
            effects = writer.rewind(session, fork_block=fork_block)
            cp.block_number, cp.block_hash = fork_block, fork_hash
            cp.final_block = min(cp.final_block, fork_block)
            cp.updated_at = utcnow()
        update_ = MirrorUpdate(fork_block + 1, old_to, frozenset(effects.uetrs), frozenset(effects.participants),
                               frozenset(), reorg=True)
        self._notify(update_)
        return update_

    def index_range(self, from_block: int, to_block: int) -> int:
        """Apply one block range in one transaction; returns the events applied, 0 when the
        range was applied before (its processed-block keys or checkpoint step already exist)."""
        window = self._load_or_init()
        try:
            n, _ = self._apply_range(window, from_block, to_block, max(to_block, self.source.head()))
        except RangeAlreadyApplied as exc:
            log.info("range %d-%d not applied: %s", from_block, to_block, exc.detail)
            return 0
        return n

    # ---------------------------------------------------------------- internals
    def _checkpoint(self, session: Session) -> Checkpoint | None:
        rows = session.execute(select(Checkpoint)).scalars().all()
        for cp in rows:
            if cp.chain_id == self.chain_id and cp.ledger == self.ledger:
                return cp
        if rows:
            raise ConfigurationError(
                f"this mirror database holds another deployment (chain {rows[0].chain_id}, ledger {rows[0].ledger}); "
                "use another database or rebuild it")
        return None

    def _header(self, number: int) -> BlockHeader:
        header = self.source.headers([number])[number]
        if header is None:
            raise ChainUnavailable(f"block {number} not found on the chain")
        return header

    def _load_or_init(self) -> _Window:
        with transaction(self.sessions) as session:
            cp = self._checkpoint(session)
            if cp is None:
                start = self.deployment.deploy_block - 1
                header = self._header(start)
                cp = Checkpoint(chain_id=self.chain_id, ledger=self.ledger, registry_address=self.client.registry,
                                deploy_block=self.deployment.deploy_block, block_number=start,
                                block_hash=header.hash, head_block=start, final_block=start,
                                confirmation_depth=self.confirmation_depth, updated_at=utcnow())
                session.add(cp)
            hashes = dict(session.execute(select(MirrorBlock.block_number, MirrorBlock.block_hash)
                                          .where(MirrorBlock.chain_id == self.chain_id)).tuples().all())
            hashes[cp.block_number] = cp.block_hash
            return _Window(self.chain_id, self.ledger, cp.block_number, cp.block_hash, cp.final_block, hashes)

    def _check_window(self, window: _Window) -> None:
        numbers = sorted(window.hashes)
        chain = self.source.headers(numbers)
        for n in numbers:
            header = chain[n]
            if header is not None and header.hash == window.hashes[n]:
                continue
            lower = n - 1
            deep = lower not in window.hashes and lower != self.deployment.deploy_block - 1
            raise ReorgDetected(
                f"block {n}: the mirror has {window.hashes[n]}, the chain {header.hash if header else 'nothing'}",
                block_number=n, expected=window.hashes[n], actual=header.hash if header else None,
                fork_block=None if deep else lower, deep=deep)

    def _follow(self, window: _Window, head: int, progress: list[int]) -> _Window:
        start = window.block_number + 1
        applied = False
        while start <= head:
            end = min(head, start + self.max_range - 1)
            n, window = self._apply_range(window, start, end, head)
            progress[0] += n
            progress[1] += 1
            applied = True
            start = end + 1
        if not applied and head - self.confirmation_depth > window.final_block:
            window = self._advance_final(window, head)
        return window

    def _fetch_logs(self, from_block: int, to_block: int) -> list[RawLog]:
        """eth_getLogs for both contracts; halves the range when the node refuses its size."""
        try:
            return self.source.logs(from_block, to_block, self.addresses)
        except RpcError:
            if from_block == to_block:
                raise
            mid = (from_block + to_block) // 2
            return self._fetch_logs(from_block, mid) + self._fetch_logs(mid + 1, to_block)

    def _apply_range(self, window: _Window, a: int, b: int, head: int) -> tuple[int, _Window]:
        logs = self._fetch_logs(a, b)
        keep_from = max(a, b - self.hash_window + 1)
        wanted = set(range(keep_from, b + 1)) | {a}
        wanted.update(lg.block_number for lg in logs if lg.timestamp is None)
        fetched = self.source.headers(sorted(wanted))
        headers: dict[int, BlockHeader] = {}
        for n, maybe in fetched.items():
            if maybe is None:
                raise ReorgDetected(f"block {n} vanished while reading {a}-{b}", block_number=n, fork_block=None)
            headers[n] = maybe
        first = headers[a]
        if a == window.block_number + 1 and first.parent_hash != window.block_hash:
            raise ReorgDetected(f"block {a} does not descend from the checkpoint {window.block_number}",
                                block_number=window.block_number, expected=window.block_hash,
                                actual=first.parent_hash, fork_block=None)
        for n in range(keep_from + 1, b + 1):
            if headers[n].parent_hash != headers[n - 1].hash:
                raise ReorgDetected(f"chain moved while reading {a}-{b}", block_number=n, fork_block=None)
        timestamps: dict[int, int] = {}
        for lg in logs:
            header = headers.get(lg.block_number)
            if header is not None and header.hash != lg.block_hash:
                raise ReorgDetected(f"log of block {lg.block_number} from another fork", block_number=lg.block_number,
                                    expected=header.hash, actual=lg.block_hash, fork_block=None)
            if lg.timestamp is not None:
                timestamps[lg.block_number] = lg.timestamp
            elif header is not None:
                timestamps[lg.block_number] = header.timestamp
        decoded: list[DecodedEvent] = [ev for lg in logs if (ev := self.decoder.decode(lg)) is not None]
        last = headers[b]
        final_block = max(min(head - self.confirmation_depth, b), window.final_block)

        try:
            with transaction(self.sessions) as session:
                writer.record_processed(session, chain_id=self.chain_id, logs=logs)
                effects = writer.apply_events(session, events=decoded, timestamps=timestamps)
                moved = session.execute(
                    update(Checkpoint)
                    .where(Checkpoint.chain_id == self.chain_id, Checkpoint.ledger == self.ledger,
                           Checkpoint.block_number == a - 1)
                    .values(block_number=b, block_hash=last.hash, head_block=head, final_block=final_block,
                            confirmation_depth=self.confirmation_depth, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
                if moved.rowcount != 1:  # type: ignore[attr-defined]
                    raise RangeAlreadyApplied(f"checkpoint is not at block {a - 1}", from_block=a, to_block=b)
                session.execute(delete(MirrorBlock).where(MirrorBlock.chain_id == self.chain_id,
                                                          MirrorBlock.block_number >= keep_from))
                session.execute(delete(MirrorBlock).where(MirrorBlock.chain_id == self.chain_id,
                                                          MirrorBlock.block_number <= b - self.hash_window))
                session.add_all(MirrorBlock(chain_id=self.chain_id, block_number=n, block_hash=h.hash,
                                            parent_hash=h.parent_hash, timestamp=datetime.fromtimestamp(h.timestamp, UTC))
                                for n in range(keep_from, b + 1) for h in (headers[n],))
                finalized = self._finalized(session, window.final_block, final_block)
        except IntegrityError as exc:
            raise RangeAlreadyApplied(f"logs of blocks {a}-{b} were applied before", from_block=a,
                                      to_block=b) from exc
        hashes = {n: h for n, h in window.hashes.items() if b - self.hash_window < n < keep_from}
        hashes.update({n: headers[n].hash for n in range(keep_from, b + 1)})
        self._notify(MirrorUpdate(a, b, frozenset(effects.uetrs), frozenset(effects.participants),
                                  frozenset(effects.balances_increased), finalized))
        return len(decoded), _Window(self.chain_id, self.ledger, b, last.hash, final_block, hashes)

    def _finalized(self, session: Session, old_final: int, new_final: int) -> frozenset[str]:
        if new_final <= old_final:
            return frozenset()
        return frozenset(session.execute(
            select(Payment.uetr).where(Payment.block_number > old_final, Payment.block_number <= new_final,
                                       Payment.status.in_(writer.FINAL_STATUSES))).scalars())

    def _advance_final(self, window: _Window, head: int) -> _Window:
        final_block = min(head - self.confirmation_depth, window.block_number)
        if final_block <= window.final_block:
            return window
        with transaction(self.sessions) as session:
            session.execute(update(Checkpoint).where(Checkpoint.chain_id == self.chain_id,
                                                     Checkpoint.ledger == self.ledger)
                            .values(head_block=head, final_block=final_block, updated_at=utcnow())
                            .execution_options(synchronize_session=False))
            finalized = self._finalized(session, window.final_block, final_block)
        if finalized:
            self._notify(MirrorUpdate(window.final_block + 1, final_block, frozenset(), frozenset(), frozenset(),
                                      finalized))
        return _Window(window.chain_id, window.ledger, window.block_number, window.block_hash, final_block,
                       window.hashes)

    def _wipe(self) -> None:
        with transaction(self.sessions) as session:
            writer.wipe(session)

    def _notify(self, update_: MirrorUpdate) -> None:
        for hook in list(self.hooks):
            try:
                hook(update_)
            except Exception:
                log.exception("indexer hook %r failed", hook)

