"""What a ``settleBatch`` receipt says about each of its items.

Every item of a batch emits exactly one of ``PaymentSettled``, ``PaymentQueued`` or
``PaymentRejected(uetr, reason)`` (CONTRACTS.md), so a receipt answers for all its items
without one ``paymentStatus`` call each. Whether the UETR was consumed follows from the
contract's ``_process``: duplicates, expired orders and bad signatures change nothing
(status stays 0, or keeps its earlier value for a duplicate); every other rejection sets
status 4.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from eth_utils import keccak, to_checksum_address

from chain_gateway.transactions import ErrorDecoder

PAYMENT_SETTLED_TOPIC = keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)")
PAYMENT_QUEUED_TOPIC = keccak(text="PaymentQueued(bytes16,address,address,bytes3,uint256,uint8)")
PAYMENT_REJECTED_TOPIC = keccak(text="PaymentRejected(bytes16,bytes4)")

#: Rejections that leave the UETR unused and can never succeed on a resend of the same order.
FINAL_UNUSED_REJECTIONS = frozenset({"InvalidSignature", "OrderExpired"})

OutcomeKind = Literal["settled", "queued", "rejected"]


@dataclass(frozen=True)
class ItemOutcome:
    """One batch item's event: its kind and, for a rejection, the custom error's name."""

    kind: OutcomeKind
    reason: str | None = None

    @property
    def uetr_used(self) -> bool:
        """The chain holds the UETR after this item (paymentStatus != 0)."""
        return self.kind != "rejected" or self.reason not in FINAL_UNUSED_REJECTIONS


_checksum = lru_cache(maxsize=1024)(to_checksum_address)


def item_outcomes(receipt: Mapping[str, Any], ledger: str, decoder: ErrorDecoder) -> dict[bytes, ItemOutcome]:
    """UETR (16 bytes) -> outcome, for the ledger's payment events in `receipt`."""
    ledger = _checksum(ledger)
    out: dict[bytes, ItemOutcome] = {}
    for log in receipt.get("logs", ()):
        topics = log["topics"]
        if not topics or _checksum(log["address"]) != ledger:
            continue
        topic0 = bytes(topics[0])
        if topic0 == PAYMENT_SETTLED_TOPIC:
            out[bytes(topics[1])[:16]] = ItemOutcome("settled")
        elif topic0 == PAYMENT_QUEUED_TOPIC:
            out[bytes(topics[1])[:16]] = ItemOutcome("queued")
        elif topic0 == PAYMENT_REJECTED_TOPIC:
            selector = bytes(log["data"])[:4]
            out[bytes(topics[1])[:16]] = ItemOutcome("rejected", decoder.name_of(selector) or "0x" + selector.hex())
    return out
