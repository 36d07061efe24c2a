"""Byte encodings of the on-chain units (CONTRACTS.md "Units"): no validation here, the
instruction model validates before anything is encoded."""
from __future__ import annotations

import uuid


def currency_to_bytes3(code: str) -> bytes:
    """"USD" -> b"USD" (0x555344)."""
    return code.encode("ascii")


def bytes3_to_currency(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii")


def bic_to_bytes11(bic: str) -> bytes:
    """BIC8 is padded with "XXX" to BIC11, so both spell the same participant."""
    bic = bic.upper()
    return (bic + "XXX" if len(bic) == 8 else bic).encode("ascii")


def bytes11_to_bic(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii")


def country_to_bytes2(country: str) -> bytes:
    return country.upper().encode("ascii")


def uetr_to_bytes16(uetr: uuid.UUID | str) -> bytes:
    return (uetr if isinstance(uetr, uuid.UUID) else uuid.UUID(str(uetr))).bytes


def bytes16_to_uetr(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(raw))
