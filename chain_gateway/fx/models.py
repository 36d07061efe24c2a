"""Tables of the FX path: the quote book (``fx_quotes``) and the FX outbox (``fx_payments``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from eth_utils import to_checksum_address
from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain_gateway.db import Base, ExactInt, UTCDateTime, utcnow
from chain_gateway.errors import DuplicateUetr, InvalidMessage
from chain_gateway.fx.orders import FxOrder, FxQuote


class FxQuoteRecord(Base):
    """A published quote and its provider's signature (the quote book)."""

    __tablename__ = "fx_quotes"

    quote_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # 64 lower-case hex
    provider: Mapped[str] = mapped_column(String(42), index=True)
    provider_bic: Mapped[str] = mapped_column(String(11))
    debit_currency: Mapped[str] = mapped_column(String(3))
    credit_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[int] = mapped_column(ExactInt)
    capacity: Mapped[int] = mapped_column(ExactInt)
    expiry: Mapped[int] = mapped_column(BigInteger, index=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    signed_by: Mapped[str] = mapped_column(String(8))  # "provider" | "gateway"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def quote(self) -> FxQuote:
        return FxQuote(bytes.fromhex(self.quote_id), self.provider, self.debit_currency, self.credit_currency,
                       int(self.rate), int(self.capacity), int(self.expiry))


FX_PENDING, FX_SENT, FX_DONE, FX_FAILED, FX_HELD = "PENDING", "SENT", "DONE", "FAILED", "HELD"


class FxPaymentEntry(Base):
    """The FX outbox: one debtor-signed cross-currency order on its way to FxSettlement."""

    __tablename__ = "fx_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uetr: Mapped[str] = mapped_column(String(36), unique=True)
    debtor: Mapped[str] = mapped_column(String(42))
    creditor: Mapped[str] = mapped_column(String(42))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(ExactInt)
    quote_id: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(42))
    debit_currency: Mapped[str] = mapped_column(String(3))
    max_debit: Mapped[int] = mapped_column(ExactInt)
    deadline: Mapped[int] = mapped_column(BigInteger)
    instruction_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    state: Mapped[str] = mapped_column(String(8), default=FX_PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    tx_hash: Mapped[str | None] = mapped_column(String(66), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def order(self) -> FxOrder:
        return FxOrder(uuid.UUID(self.uetr).bytes, self.debtor, self.creditor, self.currency, int(self.amount),
                       bytes.fromhex(self.quote_id), self.provider, self.debit_currency, int(self.max_debit),
                       int(self.deadline), bytes(self.instruction_hash))



def enqueue_fx(session: Session, order: FxOrder, signature: bytes) -> FxPaymentEntry:
    """Add a signed FX order to the FX outbox in the caller's transaction (never commits)."""
    uetr = str(uuid.UUID(bytes=order.uetr))
    existing = session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.uetr == uetr)).first()
    if existing is not None:
        if bytes(existing.instruction_hash) != order.instruction_hash:
            raise DuplicateUetr(f"UETR {uetr} is already queued for a different instruction", uetr=uetr)
        return existing
    if len(signature) != 65:
        raise InvalidMessage("signature must be 65 bytes")
    row = FxPaymentEntry(uetr=uetr, debtor=to_checksum_address(order.debtor),
                         creditor=to_checksum_address(order.creditor), currency=order.currency, amount=order.amount,
                         quote_id=order.quote_id.hex(), provider=to_checksum_address(order.provider),
                         debit_currency=order.debit_currency, max_debit=order.max_debit, deadline=order.deadline,
                         instruction_hash=order.instruction_hash, signature=signature, state=FX_PENDING, attempts=0)
    session.add(row)
    session.flush()
    return row
