"""The word-slicing decoder of static event data agrees with eth_abi."""
from __future__ import annotations

from eth_abi import decode, encode
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_gateway.indexer.events import EventDecoder, RawLog, static_data_decoder

TYPES = ["bytes3", "uint256", "bytes32", "address", "bool", "uint8", "int64", "bytes4", "uint128"]
VALUES = st.tuples(
    st.binary(min_size=3, max_size=3), st.integers(0, 2**256 - 1), st.binary(min_size=32, max_size=32),
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()), st.booleans(), st.integers(0, 255),
    st.integers(-(2**63), 2**63 - 1), st.binary(min_size=4, max_size=4), st.integers(0, 2**128 - 1))


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_events_static_decoder_agrees_with_eth_abi(values):
    data = encode(TYPES, list(values))
    fast = static_data_decoder(TYPES)
    assert fast is not None
    expected = [to_checksum_address(v) if t == "address" else v for t, v in zip(TYPES, decode(TYPES, data))]
    assert list(fast(data)) == expected


def test_events_dynamic_types_fall_back_to_eth_abi():
    assert static_data_decoder(["string"]) is None
    assert static_data_decoder(["uint256[]"]) is None
    assert static_data_decoder(["(uint256,bool)"]) is None


def test_events_decoder_reads_every_ledger_event(deployment):
    decoder = EventDecoder(deployment.abi["ParticipantRegistry"], deployment.abi["SettlementLedger"])
    names = set(decoder.by_name)
    assert {"ParticipantRegistered", "ParticipantStatusChanged", "Funded", "Defunded", "PaymentSettled",
            "PaymentQueued", "PaymentCancelled", "PaymentRejected", "PaymentHoldChanged", "PaymentPriorityChanged",
            "QueueBatchSettled", "LimitsChanged", "BilateralLimitChanged", "Paused", "Unpaused"} <= names
    spec = decoder.by_name["PaymentRejected"]
    log = RawLog(5, "0x" + "ab" * 32, 0, "0x" + "cd" * 32, "0x" + "00" * 20,
                 (spec.topic0_hex, "0x" + "11" * 16 + "00" * 16), encode(["bytes4"], [b"\xde\xad\xbe\xef"]), None)
    event = decoder.decode(log)
    assert event is not None and event.name == "PaymentRejected"
    assert event.args == {"uetr": b"\x11" * 16, "reason": b"\xde\xad\xbe\xef"}
    assert decoder.decode(log._replace(topics=("0x" + "00" * 32,))) is None
