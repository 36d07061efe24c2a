"""BIC (ISO 9362) parsing and normalisation.

The ledger keys participants by an 11-character BIC (``bytes11`` on-chain), so every BIC
that enters the gateway is normalised to BIC11 here: a BIC8 means the head office, i.e.
BIC8 + ``"XXX"`` (API.md: "BIC8 ≡ BIC8 + XXX"). Matching is exact and case-sensitive:
ISO 9362 BICs are upper case, and a lower-case string is not a BIC.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import pycountry

from chain_gateway.errors import InvalidAgent

#: ISO 9362 (2014+) pattern, the same as the ``BICFIDec2014Identifier`` XSD type:
#: 4 party prefix, 2 country, 2 suffix, optional 3 branch.
BIC_PATTERN: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
HEAD_OFFICE_BRANCH: Final = "XXX"

# SWIFT issues BICs for Kosovo under the user-assigned code XK, which ISO 3166 (and so
# pycountry) does not list.
_EXTRA_BIC_COUNTRIES: Final = frozenset({"XK"})


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes known to pycountry, plus SWIFT's extra codes."""
    return frozenset(c.alpha_2 for c in pycountry.countries) | _EXTRA_BIC_COUNTRIES


def is_country_code(code: str) -> bool:
    """True for an ISO 3166-1 alpha-2 code (or XK) in upper case."""
    return isinstance(code, str) and code in _countries()


def normalise_bic(value: object, *, role: str = "agent") -> str:
    """Return the BIC11 form of a BIC8 or BIC11, or raise InvalidAgent (RC01).

    ``role`` only names the field in the error detail (``"creditor_agent"``...).
    """
    if not isinstance(value, str):
        raise InvalidAgent(f"{role} must be a BIC string, not {type(value).__name__}", role=role)
    if not BIC_PATTERN.fullmatch(value):
        raise InvalidAgent(
            f"{role} {value[:40]!r} is not a BIC (ISO 9362: 8 or 11 capital letters/digits, "
            "e.g. DEUTDEFF or DEUTDEFF500)",
            role=role,
            bic=value[:40],
        )
    country = value[4:6]
    if country not in _countries():
        raise InvalidAgent(
            f"{role} {value} has country code {country}, which is not an ISO 3166 country",
            role=role,
            bic=value,
        )
    return value if len(value) == 11 else value + HEAD_OFFICE_BRANCH


def is_valid_bic(value: object) -> bool:
    """True when ``value`` is a well-formed BIC8 or BIC11 with a known country."""
    try:
        normalise_bic(value)
    except InvalidAgent:
        return False
    return True


def bic8(bic: str) -> str:
    """The institution part (first 8 characters) of a valid BIC."""
    return normalise_bic(bic)[:8]


def same_institution_branch(a: str, b: str) -> bool:
    """True when two BICs name the same branch (BIC8 ≡ BIC8 + XXX)."""
    return normalise_bic(a) == normalise_bic(b)
