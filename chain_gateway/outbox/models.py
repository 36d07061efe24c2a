"""The outbox table: one row per accepted payment order, written in the same SQL
transaction as the accepted instruction, read by the submitter.

States (``OutboxState``)::

    PENDING --send--> SENT --receipt--> DONE     the chain has the UETR (status != 0)
       ^                |       \\-----> FAILED   the chain can never take it (bad signature,
       |                |                        expired) or retries are exhausted
       +---- reconcile -+  (tx reverted, dropped or unknown and paymentStatus == 0)

A row whose sends keep failing for good (``max_attempts``) goes to FAILED from PENDING; one
whose transaction's receipt is there as soon as it was sent (an instant-sealing node) goes
from PENDING to DONE directly, ``tx_hash`` and ``attempts`` recorded as SENT would have.
``tx_hash`` is the last transaction that carried the row. Nothing here decides a payment's
business status (settled / queued / rejected): the indexer mirrors that from events.
"""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Enum, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chain_gateway.codec import currency_to_bytes3
from chain_gateway.db import Base, ExactInt, UTCDateTime, utcnow
from chain_gateway.signing import PaymentOrder


class OutboxState(enum.StrEnum):
    """Where an outbox row is on its way to the chain."""

    PENDING = "PENDING"  # accepted; not (known to be) on a transaction in flight
    SENT = "SENT"  # on the transaction `tx_hash`, receipt not yet processed
    DONE = "DONE"  # the chain has the UETR (paymentStatus != 0): nothing more to send
    FAILED = "FAILED"  # the chain can never take it, or retries ran out (see last_error)
    HELD = "HELD"  # held by a risk rule for the operator's decision; never sent while held
    REJECTED = "REJECTED"  # a held order the operator rejected; never sent


UNFINISHED = (OutboxState.PENDING, OutboxState.SENT)


class OutboxEntry(Base):
    """One signed payment order waiting for, or done with, its trip to the chain."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # FIFO order
    uetr: Mapped[str] = mapped_column(String(36), unique=True)  # lower-case 8-4-4-4-12
    debtor: Mapped[str] = mapped_column(String(42))  # checksum address
    creditor: Mapped[str] = mapped_column(String(42))
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217 code
    amount: Mapped[int] = mapped_column(ExactInt)  # minor units, exact
    flags: Mapped[int] = mapped_column(SmallInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)  # unix seconds
    instruction_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    state: Mapped[OutboxState] = mapped_column(
        Enum(OutboxState, name="outbox_state", native_enum=False, length=8, validate_strings=True),
        default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # transactions (or failed sends) that carried it
    tx_hash: Mapped[str | None] = mapped_column(String(66), default=None)  # last transaction that carried it
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def order(self) -> PaymentOrder:
        """The on-chain order exactly as the debtor signed it."""
        return PaymentOrder(uetr=uuid.UUID(self.uetr).bytes, debtor=self.debtor, creditor=self.creditor,
                            currency=currency_to_bytes3(self.currency), amount=self.amount, flags=self.flags,
                            deadline=self.deadline, instruction_hash=self.instruction_hash)

    def __repr__(self) -> str:
        return f"OutboxEntry(id={self.id}, uetr={self.uetr}, state={self.state}, tx_hash={self.tx_hash})"
