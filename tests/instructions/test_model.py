"""PaymentInstruction: validation, canonical form, and the documented instruction hash."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak

from chain_gateway.errors import GatewayError, InvalidAgent, InvalidAmount, InvalidMessage, UnknownCurrency
from chain_gateway.instructions import FxLeg, Party, PaymentInstruction
from chain_gateway.instructions.model import FLAG_QUEUE, FLAG_URGENT, canonical_decimal

BASE: dict[str, Any] = {
    "uetr": "6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
    "debtor_agent": "DEUTDEFF",
    "creditor_agent": "BNPAFRPP",
    "currency": "USD",
    "amount": "1250.75",
}


def make(**changes: Any) -> PaymentInstruction:
    return PaymentInstruction(**{**BASE, **changes})


# --- golden hashes: changing these means every signed order changes ---------------------------
FULL_JSON = (
    '{"amount":"1250.50","creditor":{"account":"FR7630006000011234567890189","country":"FR",'
    '"name":"Société Générale Client"},"creditor_agent":"BNPAFRPPXXX","currency":"EUR",'
    '"debtor":{"account":"11223344","country":"US","name":"Acme Trading"},"debtor_agent":"BANKUS33XXX",'
    '"end_to_end_id":"E2E-0001","exchange_rate":"0.9901","fx":{"debit_currency":"USD","quote_id":"Q-42"},'
    '"instructed_amount":"1000000","instructed_currency":"USD","priority":"urgent",'
    '"queue_if_insufficient":true,"remittance_info":"Invoice 4711",'
    '"uetr":"8a562c67-ca16-48ba-b074-65581be6f011","value_date":"2025-06-02"}'
)
FULL_HASH = "8c03f502b1fc6ea68721eb61ce287c88f732736294051e13271cd1b1f69c0618"
MINIMAL_JSON = (
    '{"amount":"45000000","creditor_agent":"BNPAFRPPXXX","currency":"JPY","debtor_agent":"DEUTDEFFXXX",'
    '"end_to_end_id":"NOTPROVIDED","priority":"normal","queue_if_insufficient":false,'
    '"uetr":"6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c"}'
)
MINIMAL_HASH = "6b1a0ff2d16b9733ece3028bfb950d0fb7d3c18c8589a1f4f62b71bc4afa9246"


def full_instruction(**changes: Any) -> PaymentInstruction:
    fields: dict[str, Any] = {
        "uetr": "8A562C67-CA16-48BA-B074-65581BE6F011",  # upper case in, lower case hashed
        "debtor_agent": "BANKUS33",
        "creditor_agent": "BNPAFRPPXXX",
        "currency": "EUR",
        "amount": "1250.5",
        "end_to_end_id": "E2E-0001",
        "remittance_info": "Invoice 4711",
        "priority": "urgent",
        "queue_if_insufficient": True,
        "value_date": dt.date(2025, 6, 2),
        "debtor": {"name": "Acme Trading", "country": "US", "account": "11223344"},
        "creditor": {"name": "Société Générale Client", "country": "FR", "account": "FR7630006000011234567890189"},
        "instructed_amount": "1000000.00",
        "instructed_currency": "USD",
        "exchange_rate": "0.9901",
        "fx": {"quote_id": "Q-42", "debit_currency": "USD"},
        "message_id": "MSG-1",
        "message_type": "pacs.008",
    }
    return PaymentInstruction(**{**fields, **changes})


def test_instruction_hash_golden_full() -> None:
    instruction = full_instruction()
    assert instruction.canonical_json().decode() == FULL_JSON
    assert instruction.instruction_hash().hex() == FULL_HASH


def test_instruction_hash_golden_minimal() -> None:
    instruction = PaymentInstruction.model_validate({
        "uetr": "6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "debtor_agent": "DEUTDEFF", "creditor_agent": "BNPAFRPP",
        "currency": "JPY", "amount": "45000000",
    })
    assert instruction.canonical_json().decode() == MINIMAL_JSON
    assert instruction.instruction_hash().hex() == MINIMAL_HASH


def test_instruction_hash_is_keccak256_of_jcs() -> None:
    """Recomputed with an independent keccak: what an auditor would do."""
    instruction = full_instruction()
    digest = pycryptodome_keccak.new(digest_bits=256, data=FULL_JSON.encode("utf-8")).hexdigest()
    assert instruction.instruction_hash().hex() == digest
    assert json.loads(FULL_JSON) == instruction.canonical_dict()


def test_instruction_hash_ignores_channel_metadata() -> None:
    assert full_instruction(message_id="OTHER", message_type="json").instruction_hash().hex() == FULL_HASH


@pytest.mark.parametrize(
    "equivalent",
    [
        {"debtor_agent": "BANKUS33XXX"},  # BIC8 ≡ BIC11
        {"amount": "1250.50"},
        {"amount": Decimal("1250.500")},
        {"uetr": uuid.UUID("8a562c67-ca16-48ba-b074-65581be6f011")},
        {"instructed_amount": "1000000"},
        {"exchange_rate": "0.990100"},
    ],
)
def test_instruction_hash_stable_under_equivalent_input(equivalent: dict[str, Any]) -> None:
    assert full_instruction(**equivalent).instruction_hash().hex() == FULL_HASH


@pytest.mark.parametrize(
    "different",
    [
        {"amount": "1250.51"}, {"remittance_info": "Invoice 4712"}, {"priority": "normal"},
        {"queue_if_insufficient": False}, {"value_date": None}, {"creditor": None},
        {"debtor": {"name": "Acme Trading", "country": "US"}}, {"fx": None}, {"end_to_end_id": "E2E-0002"},
    ],
)
def test_instruction_hash_changes_with_content(different: dict[str, Any]) -> None:
    assert full_instruction(**different).instruction_hash().hex() != FULL_HASH


def test_canonical_dict_omits_none_and_empty_parties() -> None:
    canonical = make(debtor=Party()).canonical_dict()
    assert "debtor" not in canonical and "remittance_info" not in canonical and "fx" not in canonical
    assert all(isinstance(v, (str, bool, dict)) for v in canonical.values())  # no JSON numbers


@pytest.mark.parametrize(("value", "text"), [("1000.00", "1000"), ("0.9901", "0.9901"), ("0", "0"), ("0.000", "0"), ("10", "10")])
def test_canonical_decimal(value: str, text: str) -> None:
    assert canonical_decimal(Decimal(value)) == text


# --- validation ------------------------------------------------------------------------------
def test_instruction_normalises_bics_and_keeps_amount() -> None:
    instruction = make()
    assert (instruction.debtor_agent, instruction.creditor_agent) == ("DEUTDEFFXXX", "BNPAFRPPXXX")
    assert instruction.amount == Decimal("1250.75") and instruction.amount_minor() == 125075
    assert PaymentInstruction.from_minor("USD", 125075) == Decimal("1250.75")


@pytest.mark.parametrize(
    ("currency", "amount", "minor"),
    [("USD", "0.01", 1), ("JPY", "1", 1), ("BHD", "0.001", 1), ("JPY", "999999999999999999", 999999999999999999)],
)
def test_instruction_precision_edges(currency: str, amount: str, minor: int) -> None:
    assert make(currency=currency, amount=amount).amount_minor() == minor


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"amount": 1250.75}, InvalidAmount, "AM12"),
        ({"amount": "0"}, InvalidAmount, "AM12"),
        ({"amount": "-1"}, InvalidAmount, "AM12"),
        ({"amount": "1.001"}, InvalidAmount, "AM12"),
        ({"currency": "JPY", "amount": "1.5"}, InvalidAmount, "AM12"),
        ({"currency": "BHD", "amount": "1.0001"}, InvalidAmount, "AM12"),
        ({"amount": "1000000000000000000"}, InvalidAmount, "AM12"),
        ({"amount": None}, InvalidAmount, "AM12"),
        ({"currency": "XAU"}, UnknownCurrency, "AM03"),
        ({"currency": "XXX"}, UnknownCurrency, "AM03"),
        ({"currency": "usd"}, UnknownCurrency, "AM03"),
        ({"debtor_agent": "DEUTDEF"}, InvalidAgent, "RC01"),
        ({"creditor_agent": "bnpafrpp"}, InvalidAgent, "RC01"),
        ({"uetr": "6f1b7c2a-3d4e-1f5a-8b6c-7d8e9f0a1b2c"}, InvalidMessage, "FF01"),
        ({"end_to_end_id": "x" * 36}, InvalidMessage, "FF01"),
        ({"end_to_end_id": "bad\x00id"}, InvalidMessage, "FF01"),
        ({"remittance_info": "a\x07b"}, InvalidMessage, "FF01"),
        ({"priority": "high"}, InvalidMessage, "FF01"),
        ({"queue_if_insufficient": 1}, InvalidMessage, "FF01"),
        ({"message_type": "pacs.004"}, InvalidMessage, "FF01"),
        ({"unexpected": "field"}, InvalidMessage, "FF01"),
        ({"debtor": {"country": "ZZ"}}, InvalidMessage, "FF01"),
        ({"debtor": {"bic": "NOTABIC"}}, InvalidAgent, "RC01"),
        ({"instructed_amount": "10.00"}, InvalidMessage, "FF01"),
        ({"exchange_rate": "0"}, InvalidAmount, "AM12"),
        ({"exchange_rate": 1.1}, InvalidAmount, "AM12"),
        ({"fx": {"quote_id": "Q", "debit_currency": "USD"}}, InvalidMessage, "FF01"),
        ({"fx": {"quote_id": "Q", "debit_currency": "XAG"}}, UnknownCurrency, "AM03"),
    ],
)
def test_instruction_rejections(changes: dict[str, Any], error: type[GatewayError], code: str) -> None:
    with pytest.raises(error) as caught:
        make(**changes)
    assert caught.value.reason_code == code
    assert caught.value.detail


def test_instruction_field_errors_name_the_field() -> None:
    with pytest.raises(InvalidMessage, match="end_to_end_id"):
        make(end_to_end_id="x" * 36)
    with pytest.raises(InvalidMessage, match="debtor: .*country"):
        make(debtor={"country": "ZZ"})
    with pytest.raises(InvalidMessage, match="missing|Field required"):
        PaymentInstruction(**{k: v for k, v in BASE.items() if k != "creditor_agent"})


def test_instruction_amount_check_precedes_precision_by_currency() -> None:
    """A commodity currency is AM03 whatever the amount looks like."""
    with pytest.raises(UnknownCurrency):
        make(currency="XAU", amount="1.123456")


def test_model_validate_raises_gateway_errors_only() -> None:
    with pytest.raises(InvalidMessage):
        PaymentInstruction.model_validate({"uetr": BASE["uetr"]})
    with pytest.raises(InvalidMessage):
        PaymentInstruction.model_validate_json(b"{not json")
    with pytest.raises(InvalidAmount):
        PaymentInstruction.model_validate_json(json.dumps({**BASE, "amount": 12.5}))


def test_instruction_is_frozen() -> None:
    instruction = make()
    with pytest.raises(Exception):  # pydantic refuses assignment to a frozen model
        instruction.amount = Decimal(1)
    assert hash(make()) == hash(make())


def test_order_flags() -> None:
    assert make().order_flags() == 0
    assert make(queue_if_insufficient=True).order_flags() == FLAG_QUEUE
    assert make(priority="urgent", queue_if_insufficient=True).order_flags() == FLAG_QUEUE | FLAG_URGENT


def test_party_and_fx_models() -> None:
    party = Party(name="Acme", country="XK", account="DE89370400440532013000", bic="DEUTDEFF")
    assert party.bic == "DEUTDEFFXXX"
    assert party.canonical() == {"name": "Acme", "country": "XK", "account": "DE89370400440532013000", "bic": "DEUTDEFFXXX"}
    assert FxLeg(quote_id="Q", debit_currency="USD").debit_currency == "USD"
    with pytest.raises(InvalidMessage):
        Party(account="x" * 35)
