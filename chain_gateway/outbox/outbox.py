"""Writing to the outbox: ``enqueue`` runs inside the caller's SQL transaction, so an
accepted instruction and its outbox row commit (or roll back) together, and nothing is
ever sent for an instruction that was not stored.

Idempotent by UETR, also between concurrent transactions: the row is inserted with
``ON CONFLICT (uetr) DO NOTHING`` (SQLite and PostgreSQL), so a second writer of the same
UETR waits for the first, inserts nothing and reads the winner's row; the unique key,
not a read-then-write, decides.
"""
from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from eth_utils import is_address, to_checksum_address
from sqlalchemy import Insert, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from chain_gateway.codec import bytes3_to_currency, bytes16_to_uetr
from chain_gateway.db import utcnow
from chain_gateway.errors import Conflict, DuplicateUetr, InvalidMessage
from chain_gateway.outbox.models import OutboxEntry, OutboxState
from chain_gateway.signing import PaymentOrder

_MAX_DEADLINE = 2**63 - 1  # BIGINT; a uint64 deadline beyond it is no real deadline


def _check(order: PaymentOrder, signature: bytes) -> None:
    """Shape checks only (the chain judges signature, deadline and balances)."""
    problems = []
    if len(order.uetr) != 16:
        problems.append("uetr must be 16 bytes")
    if len(order.currency) != 3 or not bytes(order.currency).isascii():
        problems.append("currency must be 3 ASCII bytes")
    if not (0 < order.amount < 2**256):
        problems.append("amount must be a positive uint256")
    if not (0 <= order.flags < 256):
        problems.append("flags must be a uint8")
    if not (0 <= order.deadline <= _MAX_DEADLINE):
        problems.append("deadline out of range")
    if len(order.instruction_hash) != 32:
        problems.append("instruction hash must be 32 bytes")
    if len(signature) != 65:
        problems.append("signature must be 65 bytes")
    if not (is_address(order.debtor) and is_address(order.creditor)):
        problems.append("debtor and creditor must be addresses")
    if problems:
        raise InvalidMessage("payment order cannot be queued: " + "; ".join(problems),
                             uetr=str(bytes16_to_uetr(order.uetr)) if len(order.uetr) == 16 else None)


# Built once (a statement built per call cost more than its execution); values are bound per call.
_UPSERTS: dict[str, Insert] = {
    "sqlite": sqlite.insert(OutboxEntry).on_conflict_do_nothing(index_elements=["uetr"]),
    "postgresql": postgresql.insert(OutboxEntry).on_conflict_do_nothing(index_elements=["uetr"]),
}
_BY_UETR = select(OutboxEntry).where(OutboxEntry.uetr == bindparam("uetr"))
_checksum = lru_cache(maxsize=4096)(to_checksum_address)


def _insert_ignoring_duplicate(session: Session, values: dict[str, Any]) -> None:
    upsert = _UPSERTS.get(session.get_bind().dialect.name)
    if upsert is not None:
        session.execute(upsert, values)
        return
    # no portable upsert: the unique key still refuses a second row (IntegrityError at flush)
    exists = session.scalar(select(OutboxEntry.id).where(OutboxEntry.uetr == values["uetr"]))
    if exists is not None:
        return
    session.execute(insert(OutboxEntry).values(**values))


def enqueue(session: Session, order: PaymentOrder, signature: bytes) -> OutboxEntry:
    """Add the signed order to the outbox in `session`'s transaction (never commits).

    Returns the row. The same UETR with the same instruction hash is a no-op returning the
    existing row (whatever its state); with a different hash it raises DuplicateUetr.
    Call ``Submitter.notify()`` after the caller's commit to send at once.
    """
    _check(order, signature)
    uetr = str(bytes16_to_uetr(order.uetr))
    now = utcnow()
    _insert_ignoring_duplicate(session, {
        "uetr": uetr, "debtor": _checksum(order.debtor), "creditor": _checksum(order.creditor),
        "currency": bytes3_to_currency(order.currency), "amount": order.amount, "flags": order.flags,
        "deadline": order.deadline, "instruction_hash": bytes(order.instruction_hash),
        "signature": bytes(signature), "state": OutboxState.PENDING, "attempts": 0,
        "created_at": now, "updated_at": now,
    })
    row = session.scalars(_BY_UETR, {"uetr": uetr}).one_or_none()
    if row is None:  # PostgreSQL REPEATABLE READ: the winner's row is not in our snapshot
        raise Conflict(f"UETR {uetr} is being queued by a concurrent transaction; retry", uetr=uetr)
    if row.instruction_hash != bytes(order.instruction_hash):
        raise DuplicateUetr(f"UETR {uetr} is already queued for a different instruction", uetr=uetr,
                            expected="0x" + row.instruction_hash.hex(),
                            actual="0x" + bytes(order.instruction_hash).hex())
    return row


def get_entry(session: Session, uetr: uuid.UUID | str) -> OutboxEntry | None:
    """The outbox row of a UETR, if any."""
    try:
        key = str(uetr if isinstance(uetr, uuid.UUID) else uuid.UUID(uetr))
    except ValueError as exc:
        raise InvalidMessage(f"UETR {uetr!r} is not a UUID", field="uetr") from exc
    return session.scalars(select(OutboxEntry).where(OutboxEntry.uetr == key)).one_or_none()
