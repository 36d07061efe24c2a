"""The FX service: the quote book (publish, list) and the intake of cross-currency payments."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain_gateway.errors import (
    Conflict,
    Expired,
    InsufficientFunds,
    InvalidAmount,
    InvalidMessage,
    InvalidSignature,
    UnknownCurrency,
)
from chain_gateway.fx.contract import quote_used
from chain_gateway.fx.models import FX_FAILED, FX_HELD, FX_PENDING, FxPaymentEntry, FxQuoteRecord, enqueue_fx
from chain_gateway.fx.orders import (
    MAX_QUOTE_SECONDS,
    FxOrder,
    FxQuote,
    QuoteCapacityExhausted,
    QuoteRejected,
    debit_amount,
    fx_order_digest,
    fx_order_typed_data,
    new_quote_id,
    parse_quote_id,
    quote_typed_data,
    rate_major,
    sign_quote,
    verify_quote,
)
from chain_gateway.fx.submitter import FxSubmitter
from chain_gateway.instructions.currency import from_minor, validate_currency
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.payments import (
    Acceptance,
    IntakeContext,
    Parties,
    check_instruction,
    ensure_open,
    order_deadline,
    replayed,
    signed,
    store_intake,
)


@dataclass(frozen=True)
class QuoteView:
    """A quote as the API shows it."""

    quote: FxQuote
    provider_bic: str
    signature: bytes
    signed_by: str
    remaining: int | None  # Y minor units, from the chain (None when not read)

    def public(self, fx_contract: str) -> dict[str, Any]:
        q = self.quote
        return {
            "quote_id": q.quote_id_text, "provider_bic": self.provider_bic, "provider": q.provider,
            "debit_currency": q.debit_currency, "credit_currency": q.credit_currency, "rate": str(q.rate),
            "rate_major": rate_major(q.rate, q.debit_currency, q.credit_currency),
            "capacity": str(from_minor(q.credit_currency, q.capacity)),
            "remaining": None if self.remaining is None else str(from_minor(q.credit_currency, self.remaining)),
            "expiry": datetime.fromtimestamp(q.expiry, tz=UTC).isoformat().replace("+00:00", "Z"),
            "signature": "0x" + self.signature.hex(), "signed_by": self.signed_by, "fx_contract": fx_contract,
        }



class FxService(FxSubmitter):
    """Quote book and FX intake of one gateway, and (inherited from ``FxSubmitter``) its FX submitter.

    The lead's Gateway holds one (``gateway.fx``), started after the ledger client.
    """

    @property
    def chain_id(self) -> int:
        """The chain the EIP-712 domain names (quotes and orders signed for another chain fail)."""
        return int(self.client.deployment.chain_id)

    # ---------------------------------------------------------------- quotes
    def build_quote(self, *, provider: str, debit_currency: str, credit_currency: str, rate: int, capacity: int,
                    expiry: int, quote_id: bytes | None = None) -> FxQuote:
        """A validated quote (currencies distinct and valid, positive rate and capacity, future expiry)."""
        x, y = validate_currency(debit_currency), validate_currency(credit_currency)
        if x == y:
            raise QuoteRejected(f"a quote converts between two currencies, got {x} twice")
        if not 0 < rate < 2**256 or not 0 < capacity < 2**256:
            raise InvalidAmount("rate and capacity must be positive", field="rate")
        now = int(time.time())
        if expiry <= now:
            raise Expired("the quote's expiry has passed", expiry=expiry)
        if expiry > now + MAX_QUOTE_SECONDS:
            raise QuoteRejected(f"a quote lives at most {MAX_QUOTE_SECONDS} seconds", expiry=expiry)
        return FxQuote(quote_id or new_quote_id(), to_checksum_address(provider), x, y, rate, capacity, expiry)

    def quote_typed_data(self, quote: FxQuote) -> dict[str, Any]:
        return quote_typed_data(quote, self.chain_id, self.fx_contract)

    def publish(self, session: Session, *, quote: FxQuote, provider_bic: str, signature: bytes | None,
                provider_key: bytes | None) -> QuoteView:
        """Store a quote: verified against the provider's signature, or signed with the key the
        gateway holds for the provider. Raises InvalidSignature (neither), Conflict (id taken)."""
        if signature is not None:
            verify_quote(quote, signature, self.chain_id, self.fx_contract)
            signed_by = "provider"
        elif provider_key is not None:
            signature = sign_quote(provider_key, quote, self.chain_id, self.fx_contract)
            signed_by = "gateway"
        else:
            raise InvalidSignature(f"{provider_bic} signs its own quotes: sign the FxQuote typed data "
                                   "(POST /v1/fx/quotes/prepare) and send its signature")
        if session.get(FxQuoteRecord, quote.quote_id_text) is not None:
            raise Conflict(f"quote id {quote.quote_id_text} is taken", quote_id=quote.quote_id_text)
        session.add(FxQuoteRecord(quote_id=quote.quote_id_text, provider=quote.provider, provider_bic=provider_bic,
                                  debit_currency=quote.debit_currency, credit_currency=quote.credit_currency,
                                  rate=quote.rate, capacity=quote.capacity, expiry=quote.expiry, signature=signature,
                                  signed_by=signed_by))
        session.flush()
        return QuoteView(quote, provider_bic, signature, signed_by, quote.capacity - self.used(quote))

    def used(self, quote: FxQuote) -> int:
        return quote_used(self.client, self.fx_contract, quote.provider, quote.quote_id)

    def get(self, session: Session, quote_id: str | bytes) -> FxQuoteRecord:
        key = quote_id.hex() if isinstance(quote_id, bytes) else parse_quote_id(quote_id).hex()
        record = session.get(FxQuoteRecord, key)
        if record is None:
            raise QuoteRejected(f"no quote {key}", quote_id=key)
        return record

    def live_quotes(self, session: Session, *, debit_currency: str | None = None,
                    credit_currency: str | None = None, now: int | None = None) -> list[QuoteView]:
        """Quotes not expired with capacity left (remaining read from the chain), soonest expiry last."""
        now = int(time.time()) if now is None else now
        stmt = select(FxQuoteRecord).where(FxQuoteRecord.expiry > now)
        if debit_currency:
            stmt = stmt.where(FxQuoteRecord.debit_currency == validate_currency(debit_currency))
        if credit_currency:
            stmt = stmt.where(FxQuoteRecord.credit_currency == validate_currency(credit_currency))
        views = []
        for record in session.scalars(stmt.order_by(FxQuoteRecord.created_at, FxQuoteRecord.quote_id)):
            quote = record.quote()
            remaining = quote.capacity - self.used(quote)
            if remaining > 0:
                views.append(QuoteView(quote, record.provider_bic, bytes(record.signature), record.signed_by,
                                       remaining))
        return views

    # ---------------------------------------------------------------- intake
    def _order(self, ctx: IntakeContext, session: Session, instruction: PaymentInstruction,
               deadline: int | None) -> tuple[FxOrder, FxQuoteRecord]:
        fx = instruction.fx
        if fx is None:
            raise InvalidMessage("not a cross-currency instruction (no fx)")
        if fx.debit_currency not in ctx.enabled_currencies:
            raise UnknownCurrency(f"currency {fx.debit_currency} is not enabled on this ledger",
                                  currency=fx.debit_currency)
        parties = check_instruction(ctx, instruction)
        record = self.get(session, fx.quote_id)
        quote = record.quote()
        if (quote.debit_currency, quote.credit_currency) != (fx.debit_currency, instruction.currency):
            raise QuoteRejected(f"quote {quote.quote_id_text} converts {quote.debit_currency} to "
                                f"{quote.credit_currency}, not {fx.debit_currency} to {instruction.currency}")
        if quote.expiry <= int(time.time()):
            raise Expired(f"quote {quote.quote_id_text} expired", quote_id=quote.quote_id_text, expiry=quote.expiry)
        amount = instruction.amount_minor()
        order = FxOrder(uetr=instruction.uetr.bytes, debtor=parties.debtor, creditor=parties.creditor,
                        currency=instruction.currency, amount=amount, quote_id=quote.quote_id, provider=quote.provider,
                        debit_currency=quote.debit_currency, max_debit=debit_amount(amount, quote.rate),
                        deadline=order_deadline(ctx, deadline), instruction_hash=instruction.instruction_hash())
        return order, record

    def prepare(self, ctx: IntakeContext, session: Session, instruction: PaymentInstruction,
                deadline: int | None = None) -> dict[str, Any]:
        """The FxOrder typed data (and instruction hash, debit) for a bank that signs itself."""
        order, _ = self._order(ctx, session, instruction, deadline)
        return {
            "uetr": str(instruction.uetr), "instruction_hash": "0x" + order.instruction_hash.hex(),
            "canonical_instruction": instruction.canonical_dict(),
            "digest": "0x" + fx_order_digest(order, self.chain_id, self.fx_contract).hex(),
            "deadline": order.deadline, "typed_data": fx_order_typed_data(order, self.chain_id, self.fx_contract),
            "debit_currency": order.debit_currency,
            "debit_amount": str(from_minor(order.debit_currency, order.max_debit)),
        }

    def accept(self, ctx: IntakeContext, session: Session, instruction: PaymentInstruction, *,
               signature: bytes | None = None, deadline: int | None = None) -> Acceptance:
        """As ``payments.accept`` for a cross-currency instruction: validate against the quote (currencies,
        expiry, remaining capacity, the debtor's liquidity in X), sign or verify the FxOrder, and store the
        intake row and the FX outbox row in the caller's transaction. FX payments never queue."""
        replay = replayed(session, instruction)
        if replay is not None:
            return replay
        ensure_open(ctx)
        order, record = self._order(ctx, session, instruction, deadline)
        quote = record.quote()
        if order.amount > quote.capacity - self.used(quote):
            raise QuoteCapacityExhausted(f"quote {quote.quote_id_text} has less than {instruction.amount} "
                                         f"{instruction.currency} left", quote_id=quote.quote_id_text)
        if ctx.balance_of(order.debtor, order.debit_currency) < order.max_debit:
            raise InsufficientFunds(f"{instruction.debtor_agent} lacks the {order.debit_currency} this payment "
                                    "costs; cross-currency payments never queue", uetr=str(instruction.uetr))
        decision = ctx.risk_check(session, instruction, Parties(order.debtor, order.creditor))  # raises to reject
        signature, signed_by = signed(ctx, instruction, order.debtor,
                                      fx_order_digest(order, self.chain_id, self.fx_contract), signature)
        intake = store_intake(session, instruction, amount_minor=order.amount, flags=instruction.order_flags(),
                              deadline=order.deadline, signed_by=signed_by)
        entry = enqueue_fx(session, order, signature)
        if decision is not None and getattr(decision, "action", None) == "hold":
            entry.state = FX_HELD  # waits for the operator, like a held outbox row; the submitter skips it
        return Acceptance(intake=intake, created=True, order=None, signature=signature)

    def release_held(self, session: Session, uetr: str) -> bool:
        """A risk hold lifted: the held FX order goes to the chain. False if `uetr` is no held FX order."""
        row = session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.uetr == uetr)).first()
        if row is None or row.state != FX_HELD:
            return False
        row.state = FX_PENDING
        return True

    def reject_held(self, session: Session, uetr: str) -> bool:
        """A risk hold turned into a rejection: the held FX order is never sent."""
        row = session.scalars(select(FxPaymentEntry).where(FxPaymentEntry.uetr == uetr)).first()
        if row is None or row.state != FX_HELD:
            return False
        row.state, row.last_error = FX_FAILED, "rejected by the operator (risk hold)"
        return True
