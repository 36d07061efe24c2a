"""Typed SQLAlchemy 2 models of the mirror (every table prefixed ``mirror_``).

Two kinds of table:

* event logs, one row per chain log, keyed by the log's position ``(block_number,
  log_index)``: ``mirror_participant_events``, ``mirror_payment_events``,
  ``mirror_statement_lines``, ``mirror_funding``, ``mirror_limits``,
  ``mirror_bilateral_limits``, ``mirror_system_events``;
* current state folded from them: ``mirror_participants``, ``mirror_balances``,
  ``mirror_payments``.

A reorganisation rewinds by deleting log rows above the fork and folding the state of the
touched keys again from what is left, so the current state never needs an undo log.
Bookkeeping: ``mirror_checkpoints`` (one row per deployment: the last applied block and its
hash), ``mirror_blocks`` (the hashes of the last N applied blocks, re-checked every cycle)
and ``mirror_processed_blocks`` (the unique key that stops a block's logs being applied
twice, written in the same transaction as their effects).

Amounts are exact integers in minor units (``ExactInt``), addresses EIP-55 checksummed,
hashes ``0x``-prefixed lower-case hex, UETRs canonical lower-case UUID text, times the
block's timestamp in UTC.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from chain_gateway.db import Base, UTCDateTime
from chain_gateway.mirror.types import ADDRESS_LEN, HASH_LEN, UETR_LEN, ExactInt

PAYMENT_STATUSES = ("ACSP", "PDNG", "ACSC", "RJCT", "CANC")


# ------------------------------------------------------------------ bookkeeping
class Checkpoint(Base):
    """How far the mirror of one deployment has applied the chain."""

    __tablename__ = "mirror_checkpoints"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ledger: Mapped[str] = mapped_column(String(ADDRESS_LEN), primary_key=True)
    registry_address: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    deploy_block: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    """Last block whose logs are applied (deploy_block - 1 before the first range)."""
    block_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    head_block: Mapped[int] = mapped_column(BigInteger)
    """The chain's head when the mirror last synced."""
    final_block: Mapped[int] = mapped_column(BigInteger)
    """head_block - confirmation depth: effects at or below it are final."""
    confirmation_depth: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MirrorBlock(Base):
    """The hash of one of the last N applied blocks, re-checked against the chain every cycle."""

    __tablename__ = "mirror_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    parent_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class ProcessedBlock(Base):
    """A block whose logs are all in the mirror; the key makes a second application fail.

    The processed position of every log ``(chain_id, block_hash, log_index)`` is claimed per
    block: the indexer applies a block's logs only all together, in one transaction with this
    row, so claiming ``(chain_id, block_hash)`` claims each of its logs (``log_count`` of them)
    at a hundredth of the rows.
    """

    __tablename__ = "mirror_processed_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(HASH_LEN), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    log_count: Mapped[int] = mapped_column(Integer)


# ------------------------------------------------------------------ participants
class Participant(Base):
    """A registered participant as the registry knows it."""

    __tablename__ = "mirror_participants"

    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), primary_key=True)
    bic: Mapped[str] = mapped_column(String(11), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    roles: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean)
    registered_block: Mapped[int] = mapped_column(BigInteger, index=True)
    registered_log_index: Mapped[int] = mapped_column(Integer)
    registered_tx: Mapped[str] = mapped_column(String(HASH_LEN))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_block: Mapped[int] = mapped_column(BigInteger, index=True)
    """Block of the participant's latest event (registration or status change)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParticipantEvent(Base):
    """ParticipantRegistered / ParticipantStatusChanged, one row per log."""

    __tablename__ = "mirror_participant_events"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), index=True)
    event: Mapped[str] = mapped_column(String(32))
    bic: Mapped[str | None] = mapped_column(String(11))
    country: Mapped[str | None] = mapped_column(String(2))
    roles: Mapped[int | None] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean)
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


# ------------------------------------------------------------------ money
class Balance(Base):
    """A participant's settlement balance in one currency, after the mirror's last block."""

    __tablename__ = "mirror_balances"

    participant: Mapped[str] = mapped_column(String(ADDRESS_LEN), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[int] = mapped_column(ExactInt)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    """Block of the last movement."""
    log_index: Mapped[int] = mapped_column(Integer)


class StatementLine(Base):
    """One movement of one balance: signed amount and the running balance after it."""

    __tablename__ = "mirror_statement_lines"

    participant: Mapped[str] = mapped_column(String(ADDRESS_LEN), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    """FUND, DEFUND, DEBIT (payment out) or CREDIT (payment in)."""
    amount: Mapped[int] = mapped_column(ExactInt)
    """Signed: credits positive, debits negative."""
    balance_after: Mapped[int] = mapped_column(ExactInt)
    uetr: Mapped[str | None] = mapped_column(String(UETR_LEN))
    counterparty: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    reference: Mapped[str | None] = mapped_column(String(HASH_LEN))
    """The funding reference (bytes32 hex) of FUND / DEFUND lines."""
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_mirror_statement_lines_block", "block_number"),
        # a statement `since` a time: the first block of the window (repository._since_bound)
        Index("ix_mirror_statement_lines_time", "participant", "currency", "at", "block_number"),
    )


class Funding(Base):
    """Funded / Defunded by the operator (reserves moving in or out of the system)."""

    __tablename__ = "mirror_funding"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant: Mapped[str] = mapped_column(String(ADDRESS_LEN), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(8))
    """FUND or DEFUND."""
    amount: Mapped[int] = mapped_column(ExactInt)
    """Unsigned, as in the event."""
    reference: Mapped[str] = mapped_column(String(HASH_LEN))
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class LimitChange(Base):
    """LimitsChanged (``kind`` operator) or OwnLimitsChanged (``kind`` own): a participant's
    limits in a currency from this log on. The chain applies the tighter of the two."""

    __tablename__ = "mirror_limits"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    currency: Mapped[str] = mapped_column(String(3))
    max_per_payment: Mapped[int] = mapped_column(ExactInt)
    max_daily_outflow: Mapped[int] = mapped_column(ExactInt)
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(8), server_default="operator", default="operator")

    __table_args__ = (Index("ix_mirror_limits_participant_currency", "participant", "currency"),)


class BilateralLimitChange(Base):
    """BilateralLimitChanged: a debtor's daily cap towards one creditor (0 removes it)."""

    __tablename__ = "mirror_bilateral_limits"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    debtor: Mapped[str] = mapped_column(String(ADDRESS_LEN), index=True)
    creditor: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    currency: Mapped[str] = mapped_column(String(3))
    max_daily: Mapped[int] = mapped_column(ExactInt)
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


# ------------------------------------------------------------------ payments
class Payment(Base):
    """A UETR as the chain left it (folded from ``mirror_payment_events``).

    ``status`` is the ISO 20022 / gpi status the chain's state maps to (queued PDNG, settled
    ACSC, cancelled CANC, rejected RJCT); ``chain_status`` is the ledger's raw code (0 for a
    rejection that consumed nothing: bad signature, expired order). Whether an ACSC is final
    depends on the confirmation depth: see ``Checkpoint.final_block``.
    Parties and amount are unknown (NULL) for a rejection, whose event carries only the UETR.
    """

    __tablename__ = "mirror_payments"

    uetr: Mapped[str] = mapped_column(String(UETR_LEN), primary_key=True)
    debtor: Mapped[str | None] = mapped_column(String(ADDRESS_LEN), index=True)
    creditor: Mapped[str | None] = mapped_column(String(ADDRESS_LEN), index=True)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[int | None] = mapped_column(ExactInt)
    flags: Mapped[int | None] = mapped_column(SmallInteger)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    queue_seq: Mapped[int | None] = mapped_column(BigInteger)
    instruction_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    fx_quote_id: Mapped[str | None] = mapped_column(String(HASH_LEN))
    """Cross-currency (PvP) payments: the quote, its provider and the debtor's leg."""
    fx_provider: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    debit_currency: Mapped[str | None] = mapped_column(String(3))
    debit_amount: Mapped[int | None] = mapped_column(ExactInt)
    status: Mapped[str] = mapped_column(String(4))
    chain_status: Mapped[int] = mapped_column(SmallInteger)
    reason_code: Mapped[str | None] = mapped_column(String(4))
    reject_selector: Mapped[str | None] = mapped_column(String(10))
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    """Transaction of the latest status change."""
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    first_block: Mapped[int] = mapped_column(BigInteger)
    first_log_index: Mapped[int] = mapped_column(Integer)
    last_block: Mapped[int] = mapped_column(BigInteger)
    """Block of the latest event of any kind (hold and priority changes included)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("status IN ('ACSP', 'PDNG', 'ACSC', 'RJCT', 'CANC')", name="status"),
        Index("ix_mirror_payments_position", "first_block", "first_log_index"),
        # (status, block_number), not status alone: the indexer asks after every range for the
        # final statuses in blocks (a, b] (Indexer._finalized); with a status-only index SQLite
        # walked every ACSC row ever mirrored for it (O(ledger)), with this one it seeks each
        # status's block range. Lists and counts by status use the prefix.
        Index("ix_mirror_payments_status_block", "status", "block_number"),
        # MAX(queue_seq) for the next PaymentQueued (writer._next_queue_seq) without a table
        # scan; partial: only queued payments carry a sequence number.
        Index("ix_mirror_payments_queue_seq", "queue_seq", sqlite_where=text("queue_seq IS NOT NULL"),
              postgresql_where=text("queue_seq IS NOT NULL")),
    )


class PaymentEvent(Base):
    """One payment log (queued, settled, cancelled, rejected, hold, priority) with every field
    needed to fold ``mirror_payments`` again; also the tracker's history."""

    __tablename__ = "mirror_payment_events"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    uetr: Mapped[str] = mapped_column(String(UETR_LEN), index=True)
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(4))
    """The payment's status after this event."""
    effective: Mapped[bool] = mapped_column(Boolean)
    """False for a rejection that did not touch the UETR's state (a duplicate submission)."""
    reason_code: Mapped[str | None] = mapped_column(String(4))
    reject_selector: Mapped[str | None] = mapped_column(String(10))
    debtor: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    creditor: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[int | None] = mapped_column(ExactInt)
    flags: Mapped[int | None] = mapped_column(SmallInteger)
    held: Mapped[bool | None] = mapped_column(Boolean)
    queue_seq: Mapped[int | None] = mapped_column(BigInteger)
    instruction_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    fx_quote_id: Mapped[str | None] = mapped_column(String(HASH_LEN))
    """Cross-currency (PvP) payments: the quote, its provider and the debtor's leg."""
    fx_provider: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    debit_currency: Mapped[str | None] = mapped_column(String(3))
    debit_amount: Mapped[int | None] = mapped_column(ExactInt)
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("status IN ('ACSP', 'PDNG', 'ACSC', 'RJCT', 'CANC')", name="status"),)


class SystemEvent(Base):
    """Ledger-wide events: Paused, Unpaused, QueueBatchSettled and the gridlock batch's
    GridlockReserved / Committed / Released / Closed (every argument in ``detail``, JSON)."""

    __tablename__ = "mirror_system_events"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    count: Mapped[int | None] = mapped_column(BigInteger)
    gridlock: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


# Tables a rebuild wipes (everything here: the mirror holds nothing the chain does not).
CHAIN_DERIVED = (
    ProcessedBlock, MirrorBlock, ParticipantEvent, Participant, Balance, StatementLine, Funding,
    LimitChange, BilateralLimitChange, PaymentEvent, Payment, SystemEvent, Checkpoint,
)
# Event-log tables keyed by chain position: a rewind deletes their rows above the fork.
POSITIONAL = (ProcessedBlock, MirrorBlock, ParticipantEvent, StatementLine, Funding, LimitChange,
              BilateralLimitChange, PaymentEvent, SystemEvent)
