"""FX quotes and FX orders: their fields, units and rounding, their EIP-712 digests and
signatures, and the call data that carries them to ``FxSettlement.settleFxBatch``."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from chain_gateway.codec import currency_to_bytes3
from chain_gateway.errors import BusinessRejection, InvalidAmount, InvalidMessage, InvalidSignature
from chain_gateway.instructions.currency import check_amount, parse_decimal, to_minor
from chain_gateway.ledger import TX_GAS_CAP
from chain_gateway.signing import recover_signer, sign_digest
from chain_gateway.transactions import encode_call

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



def capacity_minor(value: object, currency: str) -> int:
    """A capacity given as a decimal string in the creditor currency -> minor units (AM12 rules)."""
    amount = parse_decimal(value, field="capacity")
    check_amount(amount, currency, field="capacity")
    return to_minor(amount, currency)
