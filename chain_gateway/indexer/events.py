"""Decode the registry's and the ledger's logs by topic0, from their ABI.

web3's ``contract.events.X().process_log`` costs ~40x more per log (ABI lookups and
AttributeDict building on every call); here the ABI is read once into a table from topic0
to the event's indexed and data types, and a log is one dict lookup plus the decoding of its
data: by slicing 32-byte words when every data type is a static one-word type (all of the
ledger's events; ~10x faster than ``eth_abi.decode``, and checked against it), else with
``eth_abi.decode``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    topics: tuple[str, ...]  # 0x + lower-case hex, 32 bytes each
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


def _decode_topic(abi_type: str, topic: str) -> Any:
    """One indexed value from its topic (0x-hex text of 32 bytes)."""
    if abi_type == "address":
        return checksum("0x" + topic[26:66])
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return bytes.fromhex(topic[2:2 + 2 * int(abi_type[5:])])
    if abi_type == "bool":
        return int(topic, 16) != 0
    if abi_type.startswith("uint"):
        return int(topic, 16)
    if abi_type.startswith("int"):
        return int.from_bytes(bytes.fromhex(topic[2:]), "big", signed=True)
    return bytes.fromhex(topic[2:])  # dynamic types are indexed by their hash


def _canonical_type(inp: Mapping[str, Any]) -> str:
    if str(inp["type"]).startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in inp["components"])
        return f"({inner}){str(inp['type'])[5:]}"
    return str(inp["type"])


_STATIC_WORD = re.compile(r"^(address|bool|bytes([1-9]|[12][0-9]|3[0-2])|u?int(8|16|24|32|40|48|56|64|72|80|88|96|104|112|"
                          r"120|128|136|144|152|160|168|176|184|192|200|208|216|224|232|240|248|256)?)$")


def _word_decoder(abi_type: str) -> Callable[[bytes], Any]:
    """Decoder of one static, one-word ABI value (what eth_abi returns for it)."""
    if abi_type == "address":
        return lambda w: checksum("0x" + w[12:32].hex())
    if abi_type == "bool":
        return lambda w: w[31] != 0
    if abi_type.startswith("bytes"):
        n = int(abi_type[5:])
        return lambda w: w[:n]
    if abi_type.startswith("uint"):
        return lambda w: int.from_bytes(w[:32], "big")
    return lambda w: int.from_bytes(w[:32], "big", signed=True)


def static_data_decoder(types: Sequence[str]) -> Callable[[bytes], tuple[Any, ...]] | None:
    """A decoder of `types` that slices 32-byte words, when every type is one static word
    (all of our events' data); None otherwise (eth_abi decodes those). Agrees with
    ``eth_abi.decode`` on every well-formed encoding (tests/mirror/test_events.py)."""
    if not all(_STATIC_WORD.match(t) for t in types):
        return None
    decoders = tuple(_word_decoder(t) for t in types)
    size = 32 * len(decoders)

    def decode(data: bytes) -> tuple[Any, ...]:
        if len(data) < size:
            return tuple(abi_decode(list(types), data))  # eth_abi raises its precise error
        return tuple(d(data[32 * i:32 * i + 32]) for i, d in enumerate(decoders))
    return decode


@dataclass(frozen=True)
class EventSpec:
    name: str
    signature: str
    topic0: bytes
    topic0_hex: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    fast: Callable[[bytes], tuple[Any, ...]] | None = None


class EventDecoder:
    """topic0 -> event spec, built from one or more contract ABIs."""

    def __init__(self, *abis: Iterable[Mapping[str, Any]]) -> None:
        self.specs: dict[str, EventSpec] = {}  # by 0x-hex topic0
        for abi in abis:
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                inputs: Sequence[Mapping[str, Any]] = item["inputs"]
                signature = f"{item['name']}({','.join(_canonical_type(i) for i in inputs)})"
                topic0 = keccak(text=signature)
                self.specs["0x" + topic0.hex()] = EventSpec(
                    name=str(item["name"]), signature=signature, topic0=topic0, topic0_hex="0x" + topic0.hex(),
                    indexed=tuple((str(i["name"]), _canonical_type(i)) for i in inputs if i.get("indexed")),
                    data_names=tuple(str(i["name"]) for i in inputs if not i.get("indexed")),
                    data_types=tuple(_canonical_type(i) for i in inputs if not i.get("indexed")),
                    fast=static_data_decoder([_canonical_type(i) for i in inputs if not i.get("indexed")]),
                )
        self.by_name: dict[str, EventSpec] = {s.name: s for s in self.specs.values()}

    def topic0(self, name: str) -> bytes:
        return self.by_name[name].topic0

    def decode(self, log: RawLog) -> DecodedEvent | None:
        """The event of a log, or None for an event this decoder does not know."""
        if not log.topics:
            return None
        spec = self.specs.get(log.topics[0].lower())
        if spec is None or len(log.topics) != len(spec.indexed) + 1:
            return None
        args: dict[str, Any] = {}
        for (name, abi_type), topic in zip(spec.indexed, log.topics[1:], strict=True):
            args[name] = _decode_topic(abi_type, topic)
        if spec.fast is not None:
            for name, value in zip(spec.data_names, spec.fast(log.data), strict=True):
                args[name] = value
        elif spec.data_types:
            values = abi_decode(spec.data_types, log.data)
            for name, abi_type, value in zip(spec.data_names, spec.data_types, values, strict=True):
                args[name] = checksum(value.lower()) if abi_type == "address" else value
        return DecodedEvent(spec.name, args, log)
