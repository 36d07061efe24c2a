"""Cross-currency payments, payment-versus-payment: FX quotes, FX orders, the quote book, the
FX outbox and its submitter.

On-chain (contracts/FxSettlement.sol, EIP-712 domain "SettlementLedger FX" / "1" / its address):

* ``FxQuote(bytes32 quoteId,address provider,bytes3 debitCurrency,bytes3 creditCurrency,
  uint256 rate,uint256 capacity,uint64 expiry)`` is signed by the FX provider;
* ``FxOrder(bytes16 uetr,address debtor,address creditor,bytes3 currency,uint256 amount,
  bytes32 quoteId,address provider,bytes3 debitCurrency,uint256 maxDebit,uint64 deadline,
  bytes32 instructionHash)`` is signed by the debtor; it names the quote, so a relayer cannot
  swap quotes, and bounds what the debtor pays.

Units (API.md "Cross-currency"): ``rate`` is creditor-currency (Y) minor units per
debit-currency (X) minor unit, as an integer scaled by 10^18; the creditor receives exactly
``amount`` (Y minor units); the debtor pays ``debit_amount(amount, rate)`` = ceil(amount *
10^18 / rate) X minor units; capacity counts Y, cumulatively per (provider, quote id).

A quote id is 32 bytes; in JSON it is 64 lower-case hex characters without ``0x`` (it fits
the payment body's ``fx.quote_id``; ``0x``-prefixed ids are accepted where quotes are read).

Cross-currency payments never queue: they settle at once or are rejected (the quote expires).
They leave the gateway through their own small outbox (``fx_payments``) and submitter, which
sends ``FxSettlement.settleFxBatch``; the ledger emits their outcome like any payment's
(``FxSettled`` + ``PaymentSettled``, or ``PaymentRejected``).
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from chain_gateway.codec import currency_to_bytes3
from chain_gateway.db import Base, ExactInt, UTCDateTime, transaction, utcnow
from chain_gateway.errors import (
    BusinessRejection,
    ChainUnavailable,
    Conflict,
    DuplicateUetr,
    Expired,
    GatewayError,
    InsufficientFunds,
    InvalidAmount,
    InvalidMessage,
    InvalidSignature,
    NotFound,
    ToolchainError,
    UnknownCurrency,
)
from chain_gateway.instructions.currency import check_amount, from_minor, parse_decimal, to_minor, validate_currency
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.ledger import TX_GAS_CAP, LedgerClient
from chain_gateway.outbox.receipts import item_outcomes
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
from chain_gateway.signing import recover_signer, sign_digest
from chain_gateway.toolchain import Artifact, compile_contracts
from chain_gateway.transactions import TxSender, encode_call

log = logging.getLogger(__name__)

FX_CONTRACT = "FxSettlement"
FX_DOMAIN_NAME = "SettlementLedger FX"
FX_DOMAIN_VERSION = "1"
RATE_SCALE = 10**18
FX_QUOTE_TYPE = ("FxQuote(bytes32 quoteId,address provider,bytes3 debitCurrency,bytes3 creditCurrency,uint256 rate,"
                 "uint256 capacity,uint64 expiry)")
FX_ORDER_TYPE = ("FxOrder(bytes16 uetr,address debtor,address creditor,bytes3 currency,uint256 amount,bytes32 quoteId,"
                 "address provider,bytes3 debitCurrency,uint256 maxDebit,uint64 deadline,bytes32 instructionHash)")
FX_QUOTE_TYPEHASH = keccak(text=FX_QUOTE_TYPE)
FX_ORDER_TYPEHASH = keccak(text=FX_ORDER_TYPE)
QUOTE_ABI_TYPE = "(bytes32,address,bytes3,bytes3,uint256,uint256,uint64)"
FX_ORDER_ABI_TYPE = "(bytes16,address,address,bytes3,uint256,bytes32,address,bytes3,uint256,uint64,bytes32)"
FX_SETTLER_ROLE = keccak(text="FX_SETTLER_ROLE")
ROLE_GRANTED_TOPIC = keccak(text="RoleGranted(bytes32,address,address)")
_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_QUOTE_ID = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_RATE = re.compile(r"[0-9]{1,78}")
GAS_FX_BASE = 80_000
GAS_FX_ITEM = 160_000  # two signature recoveries, the ledger call, four balance writes (fresh slots worst)
MAX_QUOTE_SECONDS = 7 * 24 * 3600


class QuoteRejected(BusinessRejection):
    """Raised when a quote is malformed, unknown, not the provider's, or does not fit the payment."""

    reason_code = "FF01"
    title = "FX quote rejected"


class QuoteCapacityExhausted(BusinessRejection):
    """Raised when a payment would take a quote past its remaining capacity."""

    reason_code = "AM02"
    title = "FX quote capacity exhausted"


# ------------------------------------------------------------------ types, digests, rounding
@dataclass(frozen=True)
class FxQuote:
    """A quote, field for field as the provider signs it (currencies as ISO codes)."""

    quote_id: bytes  # 32 bytes
    provider: str
    debit_currency: str  # X
    credit_currency: str  # Y
    rate: int  # Y minor per X minor, scaled by 1e18
    capacity: int  # Y minor units
    expiry: int  # unix seconds

    def as_tuple(self) -> tuple[bytes, str, bytes, bytes, int, int, int]:
        return (self.quote_id, to_checksum_address(self.provider), currency_to_bytes3(self.debit_currency),
                currency_to_bytes3(self.credit_currency), self.rate, self.capacity, self.expiry)

    @property
    def quote_id_text(self) -> str:
        return self.quote_id.hex()


@dataclass(frozen=True)
class FxOrder:
    """A cross-currency order, field for field as the debtor signs it."""

    uetr: bytes  # 16 bytes
    debtor: str
    creditor: str
    currency: str  # Y: what the creditor receives
    amount: int  # Y minor units
    quote_id: bytes
    provider: str
    debit_currency: str  # X
    max_debit: int  # X minor units
    deadline: int
    instruction_hash: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.uetr, to_checksum_address(self.debtor), to_checksum_address(self.creditor),
                currency_to_bytes3(self.currency), self.amount, self.quote_id, to_checksum_address(self.provider),
                currency_to_bytes3(self.debit_currency), self.max_debit, self.deadline, self.instruction_hash)


def debit_amount(amount: int, rate: int) -> int:
    """What the debtor pays in X minor units for `amount` Y minor units: ceil(amount * 1e18 / rate),
    exactly as FxSettlement computes it (rounded up: no money is created)."""
    if rate <= 0 or amount <= 0:
        raise InvalidAmount("rate and amount must be positive", rate=rate, amount=amount)
    return -(-amount * RATE_SCALE // rate)


def parse_rate(value: object) -> int:
    """The API's `rate`: Y minor units per X minor unit scaled by 1e18, as an integer string."""
    if not isinstance(value, str) or not _RATE.fullmatch(value):
        raise InvalidAmount("rate must be a string of digits: Y minor units per X minor unit scaled by 10^18, "
                            "e.g. \"1500000000000000000\" for 1.5", field="rate")
    rate = int(value)
    if not 0 < rate < 2**256:
        raise InvalidAmount("rate must be positive and below 2^256", field="rate")
    return rate


def rate_major(rate: int, debit_currency: str, credit_currency: str) -> str:
    """The rate in major units (Y per X), for people: rate / 1e18 * 10^(eX - eY)."""
    from chain_gateway.instructions.currency import currency_exponent

    shift = currency_exponent(debit_currency) - currency_exponent(credit_currency)
    value = Decimal(rate).scaleb(shift - 18)
    text = format(value.normalize(), "f")
    return text


def parse_quote_id(value: object) -> bytes:
    """64 hex characters (optionally 0x-prefixed) -> 32 bytes; InvalidMessage otherwise."""
    if not isinstance(value, str) or not _QUOTE_ID.fullmatch(value):
        raise InvalidMessage("a quote id is 64 hexadecimal characters", field="quote_id")
    return bytes.fromhex(value[-64:])


def new_quote_id() -> bytes:
    return secrets.token_bytes(32)


@lru_cache(maxsize=64)
def fx_domain_separator(chain_id: int, fx_contract: str) -> bytes:
    return keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [_DOMAIN_TYPEHASH, keccak(text=FX_DOMAIN_NAME), keccak(text=FX_DOMAIN_VERSION), chain_id,
         to_checksum_address(fx_contract)]))


def quote_digest(quote: FxQuote, chain_id: int, fx_contract: str) -> bytes:
    """The EIP-712 digest the provider signs (FxSettlement.hashFxQuote)."""
    struct_hash = keccak(abi_encode(["bytes32", "bytes32", "address", "bytes3", "bytes3", "uint256", "uint256",
                                     "uint64"], [FX_QUOTE_TYPEHASH, *quote.as_tuple()]))
    return keccak(b"\x19\x01" + fx_domain_separator(chain_id, fx_contract) + struct_hash)


def fx_order_digest(order: FxOrder, chain_id: int, fx_contract: str) -> bytes:
    """The EIP-712 digest the debtor signs (FxSettlement.hashFxOrder)."""
    struct_hash = keccak(abi_encode(["bytes32", "bytes16", "address", "address", "bytes3", "uint256", "bytes32",
                                     "address", "bytes3", "uint256", "uint64", "bytes32"],
                                    [FX_ORDER_TYPEHASH, *order.as_tuple()]))
    return keccak(b"\x19\x01" + fx_domain_separator(chain_id, fx_contract) + struct_hash)


def _domain(chain_id: int, fx_contract: str) -> dict[str, Any]:
    return {"name": FX_DOMAIN_NAME, "version": FX_DOMAIN_VERSION, "chainId": chain_id,
            "verifyingContract": to_checksum_address(fx_contract)}


_DOMAIN_FIELDS = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                  {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]


def _fields(type_string: str) -> list[dict[str, str]]:
    inner = type_string[type_string.index("(") + 1:-1]
    return [{"name": part.split(" ")[1], "type": part.split(" ")[0]} for part in inner.split(",")]


def quote_typed_data(quote: FxQuote, chain_id: int, fx_contract: str) -> dict[str, Any]:
    """The full EIP-712 message of a quote (eth_signTypedData_v4), for providers that sign themselves."""
    qid, provider, x, y, rate, capacity, expiry = quote.as_tuple()
    return {"types": {"EIP712Domain": _DOMAIN_FIELDS, "FxQuote": _fields(FX_QUOTE_TYPE)}, "primaryType": "FxQuote",
            "domain": _domain(chain_id, fx_contract),
            "message": {"quoteId": "0x" + qid.hex(), "provider": provider, "debitCurrency": "0x" + x.hex(),
                        "creditCurrency": "0x" + y.hex(), "rate": rate, "capacity": capacity, "expiry": expiry}}


def fx_order_typed_data(order: FxOrder, chain_id: int, fx_contract: str) -> dict[str, Any]:
    """The full EIP-712 message of a cross-currency order, for banks that sign themselves."""
    t = order.as_tuple()
    return {"types": {"EIP712Domain": _DOMAIN_FIELDS, "FxOrder": _fields(FX_ORDER_TYPE)}, "primaryType": "FxOrder",
            "domain": _domain(chain_id, fx_contract),
            "message": {"uetr": "0x" + t[0].hex(), "debtor": t[1], "creditor": t[2], "currency": "0x" + t[3].hex(),
                        "amount": t[4], "quoteId": "0x" + t[5].hex(), "provider": t[6],
                        "debitCurrency": "0x" + t[7].hex(), "maxDebit": t[8], "deadline": t[9],
                        "instructionHash": "0x" + t[10].hex()}}


def sign_quote(private_key: bytes, quote: FxQuote, chain_id: int, fx_contract: str) -> bytes:
    return sign_digest(private_key, quote_digest(quote, chain_id, fx_contract))


def sign_fx_order(private_key: bytes, order: FxOrder, chain_id: int, fx_contract: str) -> bytes:
    return sign_digest(private_key, fx_order_digest(order, chain_id, fx_contract))


def verify_quote(quote: FxQuote, signature: bytes, chain_id: int, fx_contract: str) -> None:
    """InvalidSignature unless `signature` is the provider's over exactly this quote."""
    signer = recover_signer(quote_digest(quote, chain_id, fx_contract), signature)
    if signer.lower() != quote.provider.lower():
        raise InvalidSignature("the quote is not signed by the provider's key", expected=quote.provider, actual=signer)


def verify_fx_order(order: FxOrder, signature: bytes, chain_id: int, fx_contract: str) -> None:
    """InvalidSignature unless `signature` is the debtor's over exactly this order."""
    signer = recover_signer(fx_order_digest(order, chain_id, fx_contract), signature)
    if signer.lower() != order.debtor.lower():
        raise InvalidSignature("the order is not signed by the debtor's key", expected=order.debtor, actual=signer)


def encode_fx_batch(orders: Sequence[FxOrder], signatures: Sequence[bytes], quotes: Sequence[FxQuote],
                    quote_signatures: Sequence[bytes]) -> bytes:
    """Call data of FxSettlement.settleFxBatch."""
    return encode_call(f"settleFxBatch({FX_ORDER_ABI_TYPE}[],bytes[],{QUOTE_ABI_TYPE}[],bytes[])",
                       [f"{FX_ORDER_ABI_TYPE}[]", "bytes[]", f"{QUOTE_ABI_TYPE}[]", "bytes[]"],
                       [[o.as_tuple() for o in orders], list(signatures), [q.as_tuple() for q in quotes],
                        list(quote_signatures)])


def fx_batch_gas(n: int) -> int:
    return min(TX_GAS_CAP, GAS_FX_BASE + GAS_FX_ITEM * n)


def quote_used(client: LedgerClient, fx_contract: str, provider: str, quote_id: bytes,
               block: Any = "latest") -> int:
    """What the quote has paid out so far (Y minor units), read from FxSettlement."""
    raw = client.w3.eth.call({"to": to_checksum_address(fx_contract), "data": encode_call(
        "quoteUsed(address,bytes32)", ["address", "bytes32"], [to_checksum_address(provider), quote_id])}, block)
    return int(abi_decode(["uint256"], bytes(raw))[0])


# ------------------------------------------------------------------ the FxSettlement contract
def fx_artifact() -> Artifact:
    """FxSettlement's compiled artifact (the toolchain builds it with the other deployables)."""
    return compile_contracts()[FX_CONTRACT]


def deploy_fx_settlement(client: LedgerClient) -> str:
    """Deploy FxSettlement for the client's ledger and grant it FX_SETTLER_ROLE (operator key)."""
    from chain_gateway.deploy import deploy_fx_contract  # deploy imports this module's neighbours

    if client.operator is None:
        raise ToolchainError("deploying FxSettlement needs the operator key")
    return deploy_fx_contract(client.operator, client.ledger)


def find_fx_settlement(client: LedgerClient) -> str | None:
    """The FxSettlement contract the ledger trusts: the latest FX_SETTLER_ROLE grantee that still holds
    the role (the ledger's RoleGranted events are the record; no manifest field needed)."""
    logs = client.w3.eth.get_logs({"address": client.ledger, "fromBlock": client.deployment.deploy_block,
                                   "toBlock": "latest", "topics": ["0x" + ROLE_GRANTED_TOPIC.hex(),
                                                                   "0x" + FX_SETTLER_ROLE.hex()]})
    for entry in reversed(list(logs)):
        account = to_checksum_address("0x" + bytes(entry["topics"][2])[-20:].hex())
        if client.has_role(client.ledger, FX_SETTLER_ROLE, account):
            return account
    return None


def ensure_fx_settlement(client: LedgerClient) -> str:
    """The ledger's FxSettlement: the manifest's while it holds its role, else the latest grantee,
    else a fresh one (deployed and granted its role)."""
    known = client.deployment.fx_settlement
    if known is not None and client.has_role(client.ledger, FX_SETTLER_ROLE, known):
        return to_checksum_address(known)
    return find_fx_settlement(client) or deploy_fx_settlement(client)


# ------------------------------------------------------------------ tables
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


# ------------------------------------------------------------------ views
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


# ------------------------------------------------------------------ the service
class FxService:
    """Quote book, FX intake and the FX submitter of one gateway.

    The lead's Gateway holds one (``gateway.fx``), started after the ledger client.
    """

    def __init__(self, client: LedgerClient, sessions: sessionmaker[Session], fx_contract: str, *,
                 sender: TxSender | None = None, batch_size: int = 50, max_attempts: int = 5,
                 receipt_timeout: float = 30.0, idle_poll: float = 0.5) -> None:
        self.client = client
        self.sessions = sessions
        self.fx_contract = to_checksum_address(fx_contract)
        self.chain_id = int(client.deployment.chain_id)
        self.sender = sender or client.relayer
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.receipt_timeout = receipt_timeout
        self.idle_poll = idle_poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.transactions = 0

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

    # ---------------------------------------------------------------- submitter
    def start(self, *, recover_first: bool = True) -> None:
        if recover_first:
            self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fx-submitter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.step():
                    continue
            except Exception as exc:
                log.exception("FX submitter step failed: %s", exc)
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


def capacity_minor(value: object, currency: str) -> int:
    """A capacity given as a decimal string in the creditor currency -> minor units (AM12 rules)."""
    amount = parse_decimal(value, field="capacity")
    check_amount(amount, currency, field="capacity")
    return to_minor(amount, currency)


__all__ = [
    "FX_CONTRACT",
    "FX_ORDER_TYPE",
    "FX_QUOTE_TYPE",
    "FX_SETTLER_ROLE",
    "RATE_SCALE",
    "FxOrder",
    "FxPaymentEntry",
    "FxQuote",
    "FxQuoteRecord",
    "FxService",
    "NotFound",
    "QuoteCapacityExhausted",
    "QuoteRejected",
    "QuoteView",
    "capacity_minor",
    "debit_amount",
    "deploy_fx_settlement",
    "encode_fx_batch",
    "enqueue_fx",
    "ensure_fx_settlement",
    "find_fx_settlement",
    "fx_artifact",
    "fx_order_digest",
    "fx_order_typed_data",
    "new_quote_id",
    "parse_quote_id",
    "parse_rate",
    "quote_digest",
    "quote_typed_data",
    "quote_used",
    "rate_major",
    "sign_fx_order",
    "sign_quote",
    "verify_fx_order",
    "verify_quote",
]
