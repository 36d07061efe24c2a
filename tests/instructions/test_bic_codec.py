"""BICs (ISO 9362, BIC8 ≡ BIC8+XXX), UETRs and the fixed-width on-chain encodings."""
from __future__ import annotations

import uuid

import pytest

from chain_gateway.errors import InvalidAgent, InvalidMessage, UnknownCurrency
from chain_gateway.instructions import (
    StaticBicDirectory,
    bic_to_bytes11,
    bytes2_to_country,
    bytes3_to_currency,
    bytes11_to_bic,
    bytes16_to_uetr,
    country_to_bytes2,
    currency_to_bytes3,
    is_valid_bic,
    normalise_bic,
    parse_uetr,
    require_registered,
    uetr_to_bytes16,
)
from chain_gateway.instructions.bic import bic8, same_institution_branch
from chain_gateway.instructions.directory import resolve_member_id


@pytest.mark.parametrize(
    ("given", "bic11"),
    [("DEUTDEFF", "DEUTDEFFXXX"), ("DEUTDEFFXXX", "DEUTDEFFXXX"), ("DEUTDEFF500", "DEUTDEFF500"),
     ("1234GB22", "1234GB22XXX"), ("BANKXK22", "BANKXK22XXX")],
)
def test_bic_normalised_to_bic11(given: str, bic11: str) -> None:
    assert normalise_bic(given) == bic11


def test_bic8_and_bic11_head_office_are_equivalent() -> None:
    assert normalise_bic("DEUTDEFF") == normalise_bic("DEUTDEFFXXX")
    assert same_institution_branch("DEUTDEFF", "DEUTDEFFXXX")
    assert not same_institution_branch("DEUTDEFF", "DEUTDEFF500")
    assert bic8("DEUTDEFF500") == "DEUTDEFF"
    assert bic_to_bytes11("DEUTDEFF") == bic_to_bytes11("DEUTDEFFXXX") == b"DEUTDEFFXXX"


@pytest.mark.parametrize(
    "bad",
    ["deutdeff", "DEUTDEF", "DEUTDEFF5", "DEUTDEFF50", "DEUTDEFF5000", "DEUT1EFF", "DEUTZZFF", "DEUT DEFF",
     " DEUTDEFF", "DEUTDEFF\n", "", "DEUTDÉFF", "WRONGUS33XXX"],
)
def test_bic_malformed_is_rc01(bad: str) -> None:
    with pytest.raises(InvalidAgent) as caught:
        normalise_bic(bad, role="creditor_agent")
    assert caught.value.reason_code == "RC01"
    assert "creditor_agent" in caught.value.detail
    assert not is_valid_bic(bad)


@pytest.mark.parametrize("bad", [None, 12345678, b"DEUTDEFF"])
def test_bic_non_string_is_rc01(bad: object) -> None:
    with pytest.raises(InvalidAgent):
        normalise_bic(bad)


def test_bic_country_checked_against_pycountry() -> None:
    with pytest.raises(InvalidAgent, match="not an ISO 3166 country"):
        normalise_bic("DEUTQQFF")
    assert is_valid_bic("BANKXK22")  # Kosovo: SWIFT's XK, documented exception


def test_directory_lookups() -> None:
    directory = StaticBicDirectory.of(["DEUTDEFF"], {"021000021": "CHASUS33"})
    assert require_registered("DEUTDEFFXXX", directory, role="creditor_agent") == "DEUTDEFFXXX"
    assert resolve_member_id("021000021", directory, role="debtor_agent") == "CHASUS33XXX"
    with pytest.raises(InvalidAgent, match="not a registered participant"):
        require_registered("BNPAFRPP", directory, role="creditor_agent")
    with pytest.raises(InvalidAgent, match="member id '999'"):
        resolve_member_id("999", directory, role="debtor_agent")


# --- codec --------------------------------------------------------------------------------------
def test_codec_round_trips() -> None:
    assert currency_to_bytes3("USD") == bytes.fromhex("555344")
    assert bytes3_to_currency(b"USD") == "USD"
    assert bytes11_to_bic(bic_to_bytes11("BNPAFRPP")) == "BNPAFRPPXXX"
    assert bytes2_to_country(country_to_bytes2("DE")) == "DE"
    uetr = uuid.UUID("6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c")
    raw = uetr_to_bytes16(uetr)
    assert raw == bytes.fromhex("6f1b7c2a3d4e4f5a8b6c7d8e9f0a1b2c")  # network order
    assert bytes16_to_uetr(raw) == uetr


def test_codec_encode_validates() -> None:
    with pytest.raises(UnknownCurrency):
        currency_to_bytes3("XAU")
    with pytest.raises(InvalidAgent):
        bic_to_bytes11("DEUTDEF")
    with pytest.raises(InvalidMessage):
        country_to_bytes2("ZZ")
    with pytest.raises(InvalidMessage):
        uetr_to_bytes16("6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decode", "raw", "error"),
    [
        (bytes11_to_bic, b"DEUTDEFF", InvalidAgent),
        (bytes11_to_bic, b"deutdeffxxx", InvalidAgent),
        (bytes11_to_bic, b"\xff" * 11, InvalidAgent),
        (bytes3_to_currency, b"US", UnknownCurrency),
        (bytes3_to_currency, b"\x00\x00\x00", UnknownCurrency),
        (bytes2_to_country, b"D", InvalidMessage),
        (bytes16_to_uetr, b"\x00" * 15, InvalidMessage),
        (bytes16_to_uetr, "not bytes", InvalidMessage),
    ],
)
def test_codec_decode_refuses_bad_widths(decode: object, raw: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(raw)  # type: ignore[operator]


def test_bytes3_decode_keeps_codes_that_left_iso4217() -> None:
    assert bytes3_to_currency(b"DEM") == "DEM"  # chain data stays readable


# --- UETR ---------------------------------------------------------------------------------------
def test_uetr_v4_required() -> None:
    assert parse_uetr("6F1B7C2A-3D4E-4F5A-8B6C-7D8E9F0A1B2C") == uuid.UUID("6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c")
    for bad in (
        "6f1b7c2a-3d4e-1f5a-8b6c-7d8e9f0a1b2c",  # version 1
        "00000000-0000-0000-0000-000000000000",  # nil
        "6f1b7c2a-3d4e-4f5a-cb6c-7d8e9f0a1b2c",  # Microsoft variant
        "{6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c}",
        "urn:uuid:6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "6f1b7c2a3d4e4f5a8b6c7d8e9f0a1b2c",
        "not-a-uuid",
    ):
        with pytest.raises(InvalidMessage) as caught:
            parse_uetr(bad)
        assert caught.value.reason_code == "FF01"
    with pytest.raises(InvalidMessage):
        parse_uetr(uuid.uuid1())
    with pytest.raises(InvalidMessage):
        parse_uetr(12)
