"""Currencies and money: ISO 4217 validation and exact decimal <-> minor-unit conversion.

The ledger stores ``uint256`` minor units; banks speak decimal strings. Every conversion
here is exact integer arithmetic on the decimal's digits, never on floats and never
through a ``decimal`` context (a context rounds silently once precision runs out).

Exponents come from the ``iso4217`` package (the published ISO table), not a hand list.
Codes without minor units in that table (XAU, XAG, XPT, XPD, XDR, XTS, XXX, ...) and ISO
fund codes (``IsFund="true"``: USN, CLF, ...) are not settlement currencies here and
raise :class:`~chain_gateway.errors.UnknownCurrency` (AM03).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

import iso4217

from chain_gateway.errors import InvalidAmount, UnknownCurrency

#: An amount has at most this many digits before the decimal point (CONTRACTS.md "Units").
MAX_INTEGER_DIGITS: Final = 18

_CODE = re.compile(r"[A-Z]{3}")
# Plain decimal notation only: no sign, no exponent, no spaces, no "1." or ".5".
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


@lru_cache(maxsize=1)
def _fund_codes() -> frozenset[str]:
    """ISO 4217 codes flagged ``IsFund`` in the published table (read once)."""
    codes: set[str] = set()
    for entry in iso4217.raw_xml.findall("CcyTbl/CcyNtry"):
        name, code = entry.find("CcyNm"), entry.find("Ccy")
        if name is not None and code is not None and code.text and name.get("IsFund") == "true":
            codes.add(code.text.strip())
    return frozenset(codes)


def currency_exponent(code: str) -> int:
    """Return the ISO 4217 minor-unit exponent of a settlement currency (USD 2, JPY 0, BHD 3).

    Raises UnknownCurrency (AM03) for anything that is not an active ISO 4217 code with
    minor units, including commodity and fund codes.
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise UnknownCurrency(
            f"currency {str(code)[:20]!r} is not an ISO 4217 alphabetic code "
            "(three capital letters)",
            currency=str(code)[:20],
        )
    return _exponent_of(code)


@lru_cache(maxsize=512)
def _exponent_of(code: str) -> int:
    """Cached table lookup for a syntactically valid code."""
    try:
        currency = iso4217.Currency(code)
    except ValueError:
        raise UnknownCurrency(f"currency {code} is not in ISO 4217", currency=code) from None
    exponent = currency.exponent
    if exponent is None:
        raise UnknownCurrency(
            f"currency {code} has no minor units in ISO 4217 (commodity, SDR or test code); "
            "it cannot be settled",
            currency=code,
        )
    if code in _fund_codes():
        raise UnknownCurrency(
            f"currency {code} is an ISO 4217 fund code, not a settlement currency", currency=code
        )
    return int(exponent)


def validate_currency(code: object) -> str:
    """Return ``code`` unchanged if it is a settlement currency, else raise UnknownCurrency."""
    if not isinstance(code, str):
        raise UnknownCurrency(
            f"currency must be a three-letter string, not {type(code).__name__}", currency=None
        )
    currency_exponent(code)
    return code


def decimal_places(amount: Decimal) -> int:
    """Significant decimal places of a finite decimal, exactly (``1.50`` -> 1, ``100`` -> 0)."""
    _sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def parse_decimal(value: object, *, field: str = "amount") -> Decimal:
    """Turn a decimal string, ``Decimal`` or ``int`` into a finite ``Decimal``.

    Floats (and bools) are refused: a float has already lost the money's exact value.
    Strings must be plain decimal notation (``"1250.75"``); signs and exponents are refused.
    Raises InvalidAmount (AM12).
    """
    if isinstance(value, (bool, float)):
        raise InvalidAmount(
            f"{field} must be a decimal string such as \"1250.75\", not a "
            f"{type(value).__name__}: floats are never money",
            field=field,
        )
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            hint = " and positive" if value.strip().startswith("-") else ""
            raise InvalidAmount(
                f"{field} {value[:40]!r} is not a plain decimal number: write digits with an "
                f"optional decimal point, such as \"1250.75\" (no sign, exponent or spaces){hint}",
                field=field,
            )
        try:
            result = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise InvalidAmount(f"{field} {value[:40]!r} is not a decimal number", field=field) from None
    else:
        raise InvalidAmount(
            f"{field} must be a decimal string, not {type(value).__name__}", field=field
        )
    if not result.is_finite():
        raise InvalidAmount(f"{field} must be a finite number", field=field)
    return result


def check_amount(amount: Decimal, currency: str, *, field: str = "amount") -> Decimal:
    """Check a settlement amount against its currency; return it unchanged.

    Rules (AM12): strictly positive; at most ``MAX_INTEGER_DIGITS`` integer digits; no more
    significant decimal places than the currency's exponent. Trailing zeros are not
    significant (``"100.000"`` USD is 100.00), which is also how the ISO XSDs count
    ``fractionDigits``.
    """
    exponent = currency_exponent(currency)
    if not amount.is_finite() or amount <= 0:
        raise InvalidAmount(f"{field} must be greater than zero, got {amount}", field=field)
    if amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidAmount(
            f"{field} has more than {MAX_INTEGER_DIGITS} integer digits", field=field
        )
    places = decimal_places(amount)
    if places > exponent:
        raise InvalidAmount(
            f"{field} {amount} has {places} decimal places but {currency} allows {exponent}",
            field=field,
            currency=currency,
            exponent=exponent,
        )
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """Convert a decimal amount to integer minor units exactly (``12.5`` USD -> 1250).

    Raises InvalidAmount when the amount is not a whole number of minor units.
    Negative amounts convert too (balances in statements may be signed).
    """
    exponent = currency_exponent(currency)
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount("amount must be a finite Decimal", currency=currency)
    sign, digits, exp = amount.as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - finite decimals have an int exponent
        raise InvalidAmount("amount must be finite", currency=currency)
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exp + exponent
    if shift >= 0:
        scale: int = 10**shift
        minor = magnitude * scale
    else:
        divisor: int = 10**-shift
        minor, remainder = divmod(magnitude, divisor)
        if remainder:
            raise InvalidAmount(
                f"amount {amount} is finer than one minor unit of {currency}", currency=currency
            )
    return -minor if sign else minor


def from_minor(currency: str, minor: int) -> Decimal:
    """Convert integer minor units to a ``Decimal`` with exactly the currency's decimals."""
    exponent = currency_exponent(currency)
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmount(
            f"minor units must be an int, not {type(minor).__name__}", currency=currency
        )
    digits = tuple(int(d) for d in str(abs(minor)))
    return Decimal((1 if minor < 0 else 0, digits, -exponent))


def format_amount(amount: Decimal, currency: str) -> str:
    """Render an amount as a decimal string with exactly the currency's exponent digits."""
    return format(from_minor(currency, to_minor(amount, currency)), "f")
