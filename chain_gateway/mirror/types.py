"""Column types of the mirror: exact integers of any size, addresses, hashes, UETRs."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

ADDRESS_LEN = 42  # 0x + 40 hex, EIP-55 checksummed
HASH_LEN = 66  # 0x + 64 hex
UETR_LEN = 36  # canonical UUID text, lower case


class ExactInt(TypeDecorator[int]):
    """A Python ``int`` of up to 78 digits (uint256), stored exactly, never as a float.

    PostgreSQL keeps it as ``NUMERIC(78, 0)`` (so SQL can sum and compare); SQLite, whose
    NUMERIC affinity turns integers above 2**63 into REALs, keeps the decimal text.
    Signed values (statement lines) are allowed.
    """

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)
