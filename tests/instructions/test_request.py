"""The JSON API body (API.md "Payments") and its translation into the canonical instruction."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from chain_gateway.errors import (
    GatewayError,
    InvalidAgent,
    InvalidAmount,
    InvalidMessage,
    InvalidSignature,
    UnknownCurrency,
)
from chain_gateway.instructions import (
    PaymentInstruction,
    PaymentRequest,
    StaticBicDirectory,
    instruction_from_request,
    parse_payment_request,
)

BODY: dict[str, Any] = {
    "creditor_agent": "BNPAFRPP",
    "currency": "EUR",
    "amount": "1250.50",
    "end_to_end_id": "E2E-0001",
    "remittance_info": "Invoice 4711",
}


def body(**changes: Any) -> bytes:
    merged = {**BODY, **changes}
    return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()


def test_request_minimal_body() -> None:
    req = parse_payment_request(body())
    assert req.creditor_agent == "BNPAFRPPXXX"
    assert req.uetr is None and req.priority == "normal" and req.queue_if_insufficient is False
    assert str(req.amount) == "1250.50"


@pytest.mark.parametrize("amount", [1250.5, 1250, 0.1, 1e3, True])
def test_request_json_number_amount_is_refused(amount: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_payment_request(body(amount=amount))
    assert caught.value.reason_code == "AM12"
    assert "JSON string" in caught.value.detail and "floats are never money" in caught.value.detail


def test_request_json_number_amount_refused_even_inside_raw_text() -> None:
    raw = b'{"creditor_agent":"BNPAFRPP","currency":"EUR","amount":1250.50000000000000001}'
    with pytest.raises(InvalidAmount, match="floats are never money"):
        parse_payment_request(raw)


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"amount": "1.001"}, InvalidAmount, "AM12"),
        ({"amount": "-5"}, InvalidAmount, "AM12"),
        ({"amount": "0"}, InvalidAmount, "AM12"),
        ({"amount": "1e3"}, InvalidAmount, "AM12"),
        ({"currency": "XAU"}, UnknownCurrency, "AM03"),
        ({"currency": "ZZZ"}, UnknownCurrency, "AM03"),
        ({"creditor_agent": "BNPAFRP"}, InvalidAgent, "RC01"),
        ({"uetr": "not-a-uuid"}, InvalidMessage, "FF01"),
        ({"uetr": "6f1b7c2a-3d4e-1f5a-8b6c-7d8e9f0a1b2c"}, InvalidMessage, "FF01"),
        ({"priority": "URGT"}, InvalidMessage, "FF01"),
        ({"queue_if_insufficient": "yes"}, InvalidMessage, "FF01"),
        ({"remittance_info": "x" * 141}, InvalidMessage, "FF01"),
        ({"deadline": "2025-06-02T10:00:00"}, InvalidMessage, "FF01"),  # no offset
        ({"deadline": 1748858400}, InvalidMessage, "FF01"),  # RFC 3339 text only
        ({"signature": "0x1234"}, InvalidSignature, "FF01"),
        ({"fx": {"quote_id": "Q-1"}}, InvalidMessage, "FF01"),
        ({"fx": {"quote_id": "Q-1", "debit_currency": "XAU"}}, UnknownCurrency, "AM03"),
        ({"debtor": {"name": "A", "country": "ZZ"}}, InvalidMessage, "FF01"),
        ({"debtor_agent": "DEUTDEFF"}, InvalidMessage, "FF01"),  # the caller is the debtor
        ({"amount": ...}, InvalidMessage, "FF01"),
    ],
)
def test_request_rejections(changes: dict[str, Any], error: type[GatewayError], code: str) -> None:
    with pytest.raises(error) as caught:
        parse_payment_request(body(**changes))
    assert caught.value.reason_code == code


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"null", b"\xff\xfe", "{\"a\": 1}"])
def test_request_malformed_json_is_ff01(raw: bytes | str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_payment_request(raw)
    assert caught.value.reason_code == "FF01"


def test_request_full_body_and_signature() -> None:
    signature = "0x" + "ab" * 65
    req = parse_payment_request(
        body(
            uetr="8a562c67-ca16-48ba-b074-65581be6f011",
            priority="urgent",
            queue_if_insufficient=True,
            deadline="2025-06-02T10:05:00Z",
            fx={"quote_id": "Q-42", "debit_currency": "USD"},
            signature=signature.upper().replace("0X", "0x"),
            debtor={"name": "Acme", "country": "US", "account": "11223344"},
            creditor={"name": "Client", "country": "FR"},
        )
    )
    assert req.deadline == dt.datetime(2025, 6, 2, 10, 5, tzinfo=dt.UTC)
    assert req.signature == signature and req.signature_bytes() == bytes([0xAB]) * 65
    assert req.fx is not None and req.fx.debit_currency == "USD"


def test_instruction_from_request_debtor_is_the_caller() -> None:
    req = parse_payment_request(body(uetr="8a562c67-ca16-48ba-b074-65581be6f011"))
    instruction = instruction_from_request(req, "DEUTDEFF")
    assert instruction.debtor_agent == "DEUTDEFFXXX" and instruction.creditor_agent == "BNPAFRPPXXX"
    assert instruction.message_type == "json" and instruction.message_id is None
    assert instruction.uetr == uuid.UUID("8a562c67-ca16-48ba-b074-65581be6f011")
    assert instruction.amount_minor() == 125050


def test_instruction_from_request_generates_uetr() -> None:
    fixed = uuid.UUID("11111111-2222-4333-8444-555555555555")
    instruction = instruction_from_request(parse_payment_request(body()), "DEUTDEFF", uetr_factory=lambda: fixed)
    assert instruction.uetr == fixed
    random_one = instruction_from_request(parse_payment_request(body()), "DEUTDEFF")
    assert random_one.uetr.version == 4


def test_instruction_from_request_checks_registry() -> None:
    directory = StaticBicDirectory.of(["DEUTDEFF", "BNPAFRPP"])
    req = parse_payment_request(body())
    assert instruction_from_request(req, "DEUTDEFFXXX", directory=directory).creditor_agent == "BNPAFRPPXXX"
    with pytest.raises(InvalidAgent, match="creditor_agent BARCGB22XXX is not a registered participant"):
        instruction_from_request(parse_payment_request(body(creditor_agent="BARCGB22")), "DEUTDEFF", directory=directory)
    with pytest.raises(InvalidAgent, match="debtor_agent"):
        instruction_from_request(req, "BARCGB22", directory=directory)
    with pytest.raises(InvalidAgent):
        instruction_from_request(req, "not a bic")


def test_request_and_instruction_hash_agree_across_retries() -> None:
    """A client retrying the same body (same UETR) gets the same instruction hash."""
    raw = body(uetr="8a562c67-ca16-48ba-b074-65581be6f011", amount="1250.5")
    first = instruction_from_request(parse_payment_request(raw), "DEUTDEFF")
    again = instruction_from_request(parse_payment_request(body(uetr="8a562c67-ca16-48ba-b074-65581be6f011")), "DEUTDEFFXXX")
    assert first.instruction_hash() == again.instruction_hash()
    changed = instruction_from_request(
        parse_payment_request(body(uetr="8a562c67-ca16-48ba-b074-65581be6f011", remittance_info="other")), "DEUTDEFF"
    )
    assert changed.instruction_hash() != first.instruction_hash()


def test_request_python_construction_accepts_decimal_but_not_float() -> None:
    from decimal import Decimal

    assert PaymentRequest(creditor_agent="BNPAFRPP", currency="EUR", amount=Decimal("1.5")).amount == Decimal("1.5")
    with pytest.raises(InvalidAmount):
        PaymentRequest(creditor_agent="BNPAFRPP", currency="EUR", amount=1.5)  # type: ignore[arg-type]
    assert isinstance(instruction_from_request(
        PaymentRequest(creditor_agent="BNPAFRPP", currency="EUR", amount=Decimal("1.5")), "DEUTDEFF"
    ), PaymentInstruction)
