"""Decode the registry's and the ledger's logs with eth_abi, by topic0.

web3's ``contract.events.X().process_log`` costs ~40x more per log (ABI lookups and
AttributeDict building on every call); here the ABI is read once into a table from topic0
to the event's indexed and data types, and a log is one dict lookup plus one
``eth_abi.decode`` of its data.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address


class RawLog(NamedTuple):
    """One log as the node returned it, normalised."""

    block_number: int
    block_hash: str  # 0x + lower-case hex
    log_index: int
    tx_hash: str  # 0x + lower-case hex
    address: str  # lower-case hex
    topics: tuple[bytes, ...]
    data: bytes
    timestamp: int | None  # the block's timestamp when the node includes it (anvil does)


class DecodedEvent(NamedTuple):
    name: str
    args: dict[str, Any]
    log: RawLog


@lru_cache(maxsize=65_536)
def checksum(address_hex: str) -> str:
    """EIP-55 form of a lower-case hex address (cached: the same parties recur)."""
    return to_checksum_address(address_hex)


def _decode_topic(abi_type: str, topic: bytes) -> Any:
    if abi_type == "address":
        return checksum("0x" + topic[12:].hex())
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return topic[: int(abi_type[5:])]
    if abi_type == "bool":
        return topic[31] != 0
    if abi_type.startswith("uint"):
        return int.from_bytes(topic, "big")
    if abi_type.startswith("int"):
        return int.from_bytes(topic, "big", signed=True)
    return topic  # dynamic types are indexed by their hash


def _canonical_type(inp: Mapping[str, Any]) -> str:
    if str(inp["type"]).startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in inp["components"])
        return f"({inner}){str(inp['type'])[5:]}"
    return str(inp["type"])


@dataclass(frozen=True)
class EventSpec:
    name: str
    signature: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]


class EventDecoder:
    """topic0 -> event spec, built from one or more contract ABIs."""

    def __init__(self, *abis: Iterable[Mapping[str, Any]]) -> None:
        self.specs: dict[bytes, EventSpec] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                inputs: Sequence[Mapping[str, Any]] = item["inputs"]
                signature = f"{item['name']}({','.join(_canonical_type(i) for i in inputs)})"
                topic0 = keccak(text=signature)
                self.specs[topic0] = EventSpec(
                    name=str(item["name"]), signature=signature, topic0=topic0,
                    indexed=tuple((str(i["name"]), _canonical_type(i)) for i in inputs if i.get("indexed")),
                    data_names=tuple(str(i["name"]) for i in inputs if not i.get("indexed")),
                    data_types=tuple(_canonical_type(i) for i in inputs if not i.get("indexed")),
                )
        self.by_name: dict[str, EventSpec] = {s.name: s for s in self.specs.values()}

    def topic0(self, name: str) -> bytes:
        return self.by_name[name].topic0

    def decode(self, log: RawLog) -> DecodedEvent | None:
        """The event of a log, or None for an event this decoder does not know."""
        if not log.topics:
            return None
        spec = self.specs.get(log.topics[0])
        if spec is None or len(log.topics) != len(spec.indexed) + 1:
            return None
        args: dict[str, Any] = {}
        for (name, abi_type), topic in zip(spec.indexed, log.topics[1:], strict=True):
            args[name] = _decode_topic(abi_type, topic)
        if spec.data_types:
            values = abi_decode(spec.data_types, log.data)
            for name, abi_type, value in zip(spec.data_names, spec.data_types, values, strict=True):
                args[name] = checksum(value.lower()) if abi_type == "address" else value
        return DecodedEvent(spec.name, args, log)
