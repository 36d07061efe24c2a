"""Payment intake and tracking: the one path every channel (JSON, pacs.008, pacs.009)
takes from a validated instruction to an outbox row, and the tracker a bank reads back.

Order of checks (cheap and local first, chain reads last): agents registered, debtor is
the caller, currency enabled, parties active, liquidity (when not queuing), risk; then
idempotency by UETR, the signed order (verified, or signed with the key the gateway holds),
and one DB transaction that stores the intake row and the outbox row together.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, Numeric, String, Text, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain_gateway.codec import currency_to_bytes3
from chain_gateway.db import Base, ExactInt, UTCDateTime, utcnow
from chain_gateway.errors import (
    DuplicateUetr,
    Expired,
    GatewayError,
    InsufficientFunds,
    InvalidSignature,
    LedgerPaused,
    ParticipantInactive,
    UnknownCurrency,
)
from chain_gateway.instructions.currency import from_minor
from chain_gateway.instructions.model import FLAG_QUEUE, FLAG_URGENT, PaymentInstruction
from chain_gateway.outbox.models import OutboxState
from chain_gateway.signing import PaymentOrder, order_digest, recover_signer, sign_digest, typed_data

if TYPE_CHECKING:  # the risk package reads intake history, so it imports this module
    from chain_gateway.risk.engine import Decision


class PaymentIntake(Base):
    """An accepted instruction as the bank sent it, and the gateway-side statuses (RCVD, ACSP)."""

    __tablename__ = "payment_intake"
    # the risk rules read a debtor's recent payments in one currency
    __table_args__ = (Index("ix_payment_intake_debtor_currency_time", "debtor_agent", "currency", "received_at"),)

    uetr: Mapped[str] = mapped_column(String(36), primary_key=True)
    debtor_agent: Mapped[str] = mapped_column(String(11), index=True)
    creditor_agent: Mapped[str] = mapped_column(String(11), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Numeric(40, 18))
    amount_minor: Mapped[int] = mapped_column(ExactInt)
    instruction_hash: Mapped[str] = mapped_column(String(66))
    canonical_json: Mapped[str] = mapped_column(Text)
    message_type: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end_to_end_id: Mapped[str | None] = mapped_column(String(35), nullable=True)
    flags: Mapped[int] = mapped_column()
    deadline: Mapped[int] = mapped_column()
    signed_by: Mapped[str] = mapped_column(String(8))  # "bank" | "gateway"
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _no_risk_check(session: Session, instruction: PaymentInstruction, parties: Any) -> Decision | None:
    """No risk engine: every payment passes."""
    return None


@dataclass(frozen=True)
class Parties:
    """The on-chain addresses of an instruction's debtor and creditor."""

    debtor: str
    creditor: str


@dataclass
class Acceptance:
    """What intake decided: the stored row and whether it is new (202) or a replay (200)."""

    intake: PaymentIntake
    created: bool
    order: PaymentOrder | None = None
    signature: bytes | None = None
    outbox: Any = None  # the outbox row written with it (a new plain payment), for its first view


@dataclass
class IntakeContext:
    """What intake needs from the running gateway (kept small so tests can build one)."""

    chain_id: int
    ledger: str
    enabled_currencies: frozenset[str]
    resolve: Callable[[str], str]  # BIC11 -> address, InvalidAgent if unknown
    is_active: Callable[[str], bool]
    balance_of: Callable[[str, str], int]
    gateway_key: Callable[[str], bytes | None]  # address -> private key the gateway holds, or None
    enqueue: Callable[[Session, PaymentOrder, bytes], Any]
    risk_check: Callable[[Session, PaymentInstruction, Parties], Decision | None] = _no_risk_check
    is_paused: Callable[[], bool] = lambda: False
    order_ttl_seconds: int = 300
    extra: dict[str, Any] = field(default_factory=dict)
    #: Optional: read both parties' registry status and the debtor's balance in one round
    #: trip before `is_active` / `balance_of` are asked (they then answer from it).
    prefetch: Callable[[str, str, str], None] | None = None


def build_order(instruction: PaymentInstruction, parties: Parties, deadline: int, *,
                instruction_hash: bytes | None = None) -> PaymentOrder:
    """The on-chain order (`instruction_hash`: the instruction's, if the caller has it already)."""
    flags = (FLAG_QUEUE if instruction.queue_if_insufficient else 0) | (
        FLAG_URGENT if instruction.priority == "urgent" else 0)
    return PaymentOrder(uetr=instruction.uetr.bytes, debtor=parties.debtor, creditor=parties.creditor,
                        currency=currency_to_bytes3(instruction.currency), amount=instruction.amount_minor(),
                        flags=flags, deadline=deadline,
                        instruction_hash=instruction_hash or instruction.instruction_hash())


def check_instruction(ctx: IntakeContext, instruction: PaymentInstruction) -> Parties:
    """Business checks that need the ledger; raise the fitting BusinessRejection."""
    if instruction.currency not in ctx.enabled_currencies:
        raise UnknownCurrency(f"currency {instruction.currency} is not enabled on this ledger",
                              currency=instruction.currency)
    parties = Parties(debtor=ctx.resolve(instruction.debtor_agent), creditor=ctx.resolve(instruction.creditor_agent))
    for role, bic, address in (("debtor", instruction.debtor_agent, parties.debtor),
                               ("creditor", instruction.creditor_agent, parties.creditor)):
        if not ctx.is_active(address):
            raise ParticipantInactive(f"the {role} {bic} is suspended", bic=bic)
    return parties


def prepare(ctx: IntakeContext, instruction: PaymentInstruction, deadline: int | None = None) -> dict[str, Any]:
    """The EIP-712 typed data (and instruction hash) for a bank that signs itself."""
    parties = check_instruction(ctx, instruction)
    order = build_order(instruction, parties, deadline or int(time.time()) + ctx.order_ttl_seconds)
    return {
        "uetr": str(instruction.uetr),
        "instruction_hash": "0x" + order.instruction_hash.hex(),
        "canonical_instruction": instruction.canonical_dict(),
        "digest": "0x" + order_digest(order, ctx.chain_id, ctx.ledger).hex(),
        "deadline": order.deadline,
        "typed_data": typed_data(order, ctx.chain_id, ctx.ledger),
    }


def replayed(session: Session, instruction: PaymentInstruction, *,
             instruction_hash: bytes | None = None) -> Acceptance | None:
    """Idempotency by UETR: the stored acceptance for the same instruction hash, None for a new
    UETR; DuplicateUetr (409) when the UETR was used for a different instruction."""
    uetr = str(instruction.uetr)
    existing = session.get(PaymentIntake, uetr)
    if existing is None:
        return None
    if existing.instruction_hash != "0x" + (instruction_hash or instruction.instruction_hash()).hex():
        raise DuplicateUetr(f"UETR {uetr} was already used for a different instruction", uetr=uetr)
    return Acceptance(intake=existing, created=False)


def ensure_open(ctx: IntakeContext) -> None:
    """LedgerPaused (503) while the operator has paused the ledger."""
    if ctx.is_paused():
        raise LedgerPaused("the ledger is paused by the operator: no payment is accepted until it resumes")


def order_deadline(ctx: IntakeContext, deadline: int | None) -> int:
    """The bank's deadline (Expired if already past) or now + the order time-to-live."""
    now = int(time.time())
    if deadline is not None and deadline <= now:
        raise Expired(f"the order's deadline {deadline} has passed", deadline=deadline)
    return deadline or now + ctx.order_ttl_seconds


def signed(ctx: IntakeContext, instruction: PaymentInstruction, debtor: str, digest: bytes,
           signature: bytes | None) -> tuple[bytes, str]:
    """The debtor's signature over an EIP-712 `digest`: the bank's own, verified (InvalidSignature
    unless it recovers to the debtor), or made with the key the gateway holds for it.
    Returns (signature, "bank" | "gateway")."""
    if signature is not None:
        signer = recover_signer(digest, signature)
        if signer.lower() != debtor.lower():
            raise InvalidSignature("the order is not signed by the debtor's key", expected=debtor, actual=signer)
        return signature, "bank"
    key = ctx.gateway_key(debtor)
    if key is None:
        raise InvalidSignature(f"{instruction.debtor_agent} signs its own orders: prepare the order "
                               "(POST /v1/payments/prepare) and send its signature with the payment")
    return sign_digest(key, digest), "gateway"


def store_intake(session: Session, instruction: PaymentInstruction, *, amount_minor: int, flags: int,
                 deadline: int, signed_by: str, instruction_hash: bytes | None = None) -> PaymentIntake:
    """The accepted instruction's row; flushed, so a concurrent duplicate UETR fails here,
    before any outbox row is written."""
    intake = PaymentIntake(
        uetr=str(instruction.uetr), debtor_agent=instruction.debtor_agent, creditor_agent=instruction.creditor_agent,
        currency=instruction.currency, amount=instruction.amount, amount_minor=amount_minor,
        instruction_hash="0x" + (instruction_hash or instruction.instruction_hash()).hex(),
        canonical_json=json.dumps(instruction.canonical_dict(), sort_keys=True),
        message_type=instruction.message_type, message_id=instruction.message_id,
        end_to_end_id=instruction.end_to_end_id, flags=flags, deadline=deadline, signed_by=signed_by,
    )
    session.add(intake)
    session.flush()
    return intake


def _insert_intake(session: Session, instruction: PaymentInstruction, *, amount_minor: int, flags: int,
                   deadline: int, signed_by: str, instruction_hash: bytes) -> PaymentIntake:
    """``store_intake`` for the hot path: the row goes in with one Core INSERT (the ORM's flush
    cost more than the statement), executed at once, so a concurrent duplicate UETR fails
    here as it does there. The returned row is not attached to the session (read it back with
    ``session.get``); it carries every column as stored."""
    values = {
        "uetr": str(instruction.uetr), "debtor_agent": instruction.debtor_agent,
        "creditor_agent": instruction.creditor_agent,
        "currency": instruction.currency, "amount": instruction.amount, "amount_minor": amount_minor,
        "instruction_hash": "0x" + instruction_hash.hex(),
        "canonical_json": json.dumps(instruction.canonical_dict(), sort_keys=True),
        "message_type": instruction.message_type, "message_id": instruction.message_id,
        "end_to_end_id": instruction.end_to_end_id, "flags": flags, "deadline": deadline, "signed_by": signed_by,
        "received_at": utcnow(),
    }
    session.connection().execute(_INTAKE_INSERT, values)
    return PaymentIntake(**values)


_INTAKE_INSERT = insert(PaymentIntake.__table__)  # type: ignore[arg-type]


@dataclass
class Prechecked:
    """What ``precheck`` found without the database: the checks and signature work of ``accept``
    done ahead (outside the write transaction), their errors kept to be raised by ``accept`` in
    the place it would have raised them (after the idempotency check; a signature or deadline
    error after the risk check)."""

    instruction_hash: bytes
    error: GatewayError | None = None  # open, agents, currency, parties, liquidity
    parties: Parties | None = None
    minor: int = 0
    late_error: GatewayError | None = None  # deadline, signature: raised after the risk check
    order: PaymentOrder | None = None
    signature: bytes | None = None
    signed_by: str = "bank"
    #: Set by a caller that found, in the transaction ``accept`` runs in, that no intake row has
    #: this UETR (one query for a whole group): ``accept`` then skips its own look-up.
    new_uetr: bool = False


def _check_parties(ctx: IntakeContext, instruction: PaymentInstruction) -> tuple[Parties, int]:
    ensure_open(ctx)
    if ctx.prefetch is not None and instruction.currency in ctx.enabled_currencies:
        ctx.prefetch(ctx.resolve(instruction.debtor_agent), ctx.resolve(instruction.creditor_agent),
                     instruction.currency)
    parties = check_instruction(ctx, instruction)
    minor = instruction.amount_minor()
    if not instruction.queue_if_insufficient and ctx.balance_of(parties.debtor, instruction.currency) < minor:
        raise InsufficientFunds(f"{instruction.debtor_agent} lacks {instruction.currency} liquidity for this "
                                "payment and did not ask to queue", uetr=str(instruction.uetr))
    return parties, minor


def _signed_order(ctx: IntakeContext, instruction: PaymentInstruction, parties: Parties, deadline: int | None,
                  signature: bytes | None, instruction_hash: bytes) -> tuple[PaymentOrder, bytes, str]:
    order = build_order(instruction, parties, order_deadline(ctx, deadline), instruction_hash=instruction_hash)
    signature, signed_by = signed(ctx, instruction, parties.debtor,
                                  order_digest(order, ctx.chain_id, ctx.ledger), signature)
    return order, signature, signed_by


def precheck(ctx: IntakeContext, instruction: PaymentInstruction, *, signature: bytes | None = None,
             deadline: int | None = None) -> Prechecked:
    """``accept``'s checks that need no database (chain reads, signature), made ahead; never raises
    a GatewayError (``accept(..., prechecked=...)`` raises it, where it would have)."""
    pre = Prechecked(instruction.instruction_hash())
    try:
        pre.parties, pre.minor = _check_parties(ctx, instruction)
    except GatewayError as exc:
        pre.error = exc
        return pre
    try:
        pre.order, pre.signature, pre.signed_by = _signed_order(ctx, instruction, pre.parties, deadline, signature,
                                                                pre.instruction_hash)
    except GatewayError as exc:
        pre.late_error = exc
    return pre


def accept(ctx: IntakeContext, session: Session, instruction: PaymentInstruction, *,
           signature: bytes | None = None, deadline: int | None = None,
           prechecked: Prechecked | None = None) -> Acceptance:
    """Validate, sign or verify, and store intake + outbox rows in the caller's transaction.

    Idempotent by UETR: the same instruction hash returns the stored row (created=False);
    a different one raises DuplicateUetr (409). Raises a BusinessRejection (422) and writes
    nothing when a check fails. `prechecked`: ``precheck``'s result for this instruction
    (same outcome; the work was done before the caller's transaction).
    """
    instruction_hash = prechecked.instruction_hash if prechecked else instruction.instruction_hash()
    if prechecked is None or not prechecked.new_uetr:
        replay = replayed(session, instruction, instruction_hash=instruction_hash)
        if replay is not None:
            return replay
    if prechecked is None:
        parties, minor = _check_parties(ctx, instruction)
    elif prechecked.error is not None:
        raise prechecked.error
    else:
        parties, minor = prechecked.parties, prechecked.minor  # type: ignore[assignment]
    decision = ctx.risk_check(session, instruction, parties)  # raises for a rejecting rule
    if prechecked is None:
        order, sig, signed_by = _signed_order(ctx, instruction, parties, deadline, signature, instruction_hash)
    elif prechecked.late_error is not None:
        raise prechecked.late_error
    else:
        order, sig, signed_by = prechecked.order, prechecked.signature, prechecked.signed_by  # type: ignore[assignment]
    intake = _insert_intake(session, instruction, amount_minor=minor, flags=order.flags, deadline=order.deadline,
                            signed_by=signed_by, instruction_hash=instruction_hash)
    entry = ctx.enqueue(session, order, sig)
    if decision is not None and decision.action == "hold":
        entry.state = OutboxState.HELD  # waits for the operator (/v1/risk/holds); the submitter skips it
    return Acceptance(intake=intake, created=True, order=order, signature=sig, outbox=entry)


def amount_text(currency: str, minor: int) -> str:
    """Minor units -> decimal string with the currency's exponent ("1250.75")."""
    return str(from_minor(currency, minor))


__all__ = [
    "Acceptance",
    "IntakeContext",
    "Parties",
    "PaymentIntake",
    "Prechecked",
    "accept",
    "amount_text",
    "build_order",
    "check_instruction",
    "ensure_open",
    "order_deadline",
    "precheck",
    "prepare",
    "replayed",
    "signed",
    "store_intake",
]
