"""Column sizes of the mirror (addresses, hashes, UETRs); exact integers are ``db.ExactInt``."""
from __future__ import annotations

from chain_gateway.db import ExactInt

ADDRESS_LEN = 42  # 0x + 40 hex, EIP-55 checksummed
HASH_LEN = 66  # 0x + 64 hex
UETR_LEN = 36  # canonical UUID text, lower case

__all__ = ["ADDRESS_LEN", "HASH_LEN", "UETR_LEN", "ExactInt"]
