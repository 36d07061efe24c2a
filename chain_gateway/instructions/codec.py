"""Fixed-width on-chain encodings of BICs, currencies, countries and UETRs (CONTRACTS.md "Units").

- BIC: ``bytes11``, ASCII, BIC8 padded with ``XXX``.
- Currency: ``bytes3``, the ISO 4217 alphabetic code in ASCII (``"USD"`` = ``0x555344``).
- Country: ``bytes2``, ISO 3166 alpha-2 in ASCII.
- UETR: ``bytes16``, the UUID's 16 bytes in network (big-endian) order.

Encoding validates fully (the value is about to be signed); decoding only checks the
shape, because the chain is the book of record and a code that left ISO 4217 since it was
written must still be readable.
"""
from __future__ import annotations

import re
from typing import Final
from uuid import UUID

from chain_gateway.errors import GatewayError, InvalidAgent, InvalidMessage, UnknownCurrency

from .bic import BIC_PATTERN, is_country_code, normalise_bic
from .currency import validate_currency

_CURRENCY_SHAPE: Final = re.compile(r"[A-Z]{3}")
_COUNTRY_SHAPE: Final = re.compile(r"[A-Z]{2}")


def _ascii(raw: object, size: int, what: str, error: type[GatewayError]) -> str:
    """Decode exactly ``size`` ASCII bytes or raise ``error``."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != size:
        raise error(f"{what} must be exactly {size} bytes", size=size)
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise error(f"{what} is not ASCII: 0x{bytes(raw).hex()}") from None


def bic_to_bytes11(bic: str) -> bytes:
    """Encode a BIC8 or BIC11 as ``bytes11`` (normalised to BIC11)."""
    return normalise_bic(bic).encode("ascii")


def bytes11_to_bic(raw: bytes) -> str:
    """Decode ``bytes11`` into a BIC11 string."""
    text = _ascii(raw, 11, "a bytes11 BIC", InvalidAgent)
    if not BIC_PATTERN.fullmatch(text):
        raise InvalidAgent(f"bytes11 value {text!r} is not a BIC11", bic=text)
    return text


def currency_to_bytes3(code: str) -> bytes:
    """Encode a settlement currency as ``bytes3``; raises UnknownCurrency (AM03)."""
    return validate_currency(code).encode("ascii")


def bytes3_to_currency(raw: bytes) -> str:
    """Decode ``bytes3`` into a three-letter currency code."""
    text = _ascii(raw, 3, "a bytes3 currency", UnknownCurrency)
    if not _CURRENCY_SHAPE.fullmatch(text):
        raise UnknownCurrency(f"bytes3 value {text!r} is not a currency code", currency=text)
    return text


def country_to_bytes2(country: str) -> bytes:
    """Encode an ISO 3166 alpha-2 country as ``bytes2``."""
    if not is_country_code(country):
        raise InvalidMessage(f"{str(country)[:10]!r} is not an ISO 3166 alpha-2 country code")
    return country.encode("ascii")


def bytes2_to_country(raw: bytes) -> str:
    """Decode ``bytes2`` into a two-letter country code."""
    text = _ascii(raw, 2, "a bytes2 country", InvalidMessage)
    if not _COUNTRY_SHAPE.fullmatch(text):
        raise InvalidMessage(f"bytes2 value {text!r} is not a country code")
    return text


def uetr_to_bytes16(uetr: UUID) -> bytes:
    """Encode a UETR as its 16 bytes in network order."""
    if not isinstance(uetr, UUID):
        raise InvalidMessage(f"UETR must be a UUID, not {type(uetr).__name__}")
    return uetr.bytes


def bytes16_to_uetr(raw: bytes) -> UUID:
    """Decode ``bytes16`` into a UUID (no version check: the chain's value is authoritative)."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 16:
        raise InvalidMessage("a bytes16 UETR must be exactly 16 bytes")
    return UUID(bytes=bytes(raw))
