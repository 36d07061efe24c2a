"""UETRs: parse strictly, generate, and enforce the version-4 rule.

A UETR (SWIFT gpi Unique End-to-end Transaction Reference) is a version-4 RFC 4122 UUID;
CONTRACTS.md fixes v4 and the ISO XSDs' ``UUIDv4Identifier`` type enforces it too, so the
gateway requires v4 on every channel (every published sample in the conformance set
carries a v4 UETR, so no relaxation is needed for ISO input).
"""
from __future__ import annotations

import re
import uuid
from typing import Final

from chain_gateway.errors import InvalidMessage

# Canonical 8-4-4-4-12 text only; uuid.UUID() alone would also take braces, "urn:uuid:"
# prefixes and hyphen-less hex, which are not UETRs.
_CANONICAL: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def parse_uetr(value: object) -> uuid.UUID:
    """Return the UUID for a UETR given as ``UUID`` or canonical text; raise InvalidMessage (FF01).

    Upper-case hex is accepted and normalised (a UUID's text form is case-insensitive).
    """
    if isinstance(value, uuid.UUID):
        result = value
    elif isinstance(value, str) and _CANONICAL.fullmatch(value):
        result = uuid.UUID(value)
    else:
        shown = value[:50] if isinstance(value, str) else type(value).__name__
        raise InvalidMessage(
            f"UETR {shown!r} is not a UUID in 8-4-4-4-12 form", field="uetr"
        )
    if result.variant != uuid.RFC_4122 or result.version != 4:
        raise InvalidMessage(
            f"UETR {result} is not a version-4 RFC 4122 UUID", field="uetr", uetr=str(result)
        )
    return result


def new_uetr() -> uuid.UUID:
    """A fresh random UETR (uuid4)."""
    return uuid.uuid4()
