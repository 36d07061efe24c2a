"""The canonical payment instruction every channel (JSON, pacs.008, pacs.009) is turned into.

One frozen model, validated on construction, so the rest of the gateway (risk, signing,
submitter, mirror) never re-checks a field. Its ``instruction_hash()`` is what the debtor
bank signs inside the EIP-712 ``PaymentOrder`` (CONTRACTS.md), so the canonical form below
is a public contract: changing it changes every hash.

Canonical dict (``canonical_dict()``), serialised with RFC 8785 (JCS) and hashed with
keccak-256. Only what the bank sent about the payment, independent of the channel that
carried it (a JSON and a pacs.008 submission of the same payment hash the same); keys with
no value are omitted; every value is a string or a bool (no JSON numbers, so no float
ambiguity):

=======================  ============================================================
key                      value
=======================  ============================================================
uetr                     lower-case 8-4-4-4-12 text
debtor_agent             BIC11
creditor_agent           BIC11
currency                 ISO 4217 code
amount                   decimal string with exactly the currency's exponent digits
end_to_end_id            as sent
remittance_info          as sent (ISO ``Ustrd`` lines joined with LF)
priority                 ``"normal"`` or ``"urgent"``
queue_if_insufficient    bool
value_date               ``YYYY-MM-DD``
debtor, creditor         ``{name, country, account, bic}`` without empty members
fx                       ``{quote_id, debit_currency}``
instructed_amount        minimal plain decimal (no exponent, no trailing zeros)
instructed_currency      three letters
exchange_rate            minimal plain decimal
=======================  ============================================================

Not hashed: ``message_id`` and ``message_type`` (channel metadata).
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any, Final, Literal

import rfc8785
from eth_utils.crypto import keccak
from pydantic import StrictBool, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chain_gateway.errors import InvalidAmount, InvalidMessage

from . import currency as money
from ._base import GatewayModel, Remittance, Text34, Text35, Text64, Text140
from .bic import is_country_code, normalise_bic
from .currency import check_amount, format_amount, parse_decimal, validate_currency
from .uetr import parse_uetr

Priority = Literal["normal", "urgent"]
MessageType = Literal["json", "pacs.008", "pacs.009"]

#: ``PaymentOrder.flags`` bits (CONTRACTS.md): bit 0 queue if short, bit 1 urgent.
FLAG_QUEUE: Final = 0x01
FLAG_URGENT: Final = 0x02

_CURRENCY_SHAPE: Final = re.compile(r"[A-Z]{3}")


def canonical_decimal(value: Decimal) -> str:
    """Minimal plain decimal text, computed exactly: ``1000.00`` -> ``"1000"``, ``0.9901`` kept."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class Party(GatewayModel):
    """A debtor or creditor as the bank described it; every field optional.

    ``bic`` is set for financial-institution parties (the ``Dbtr``/``Cdtr`` of a pacs.009).
    """

    name: Text140 | None = None
    country: str | None = None
    account: Text34 | None = None
    bic: str | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and not is_country_code(value):
            raise PydanticCustomError(
                "country", "'{value}' is not an ISO 3166 alpha-2 country code", {"value": value[:10]}
            )
        return value

    @field_validator("bic", mode="before")
    @classmethod
    def _bic(cls, value: object) -> str | None:
        return None if value is None else normalise_bic(value, role="party bic")

    def canonical(self) -> dict[str, str]:
        """The party's non-empty fields."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def coerce_nested(model: type[GatewayModel], value: object, field: str) -> object:
    """Build a nested model from a mapping, naming the field (``debtor``, ``fx``) in any error."""
    if isinstance(value, dict):
        try:
            return model(**value)
        except InvalidMessage as exc:
            raise InvalidMessage(f"{field}: {exc.detail}", **exc.fields) from exc
    return value


class FxLeg(GatewayModel):
    """Cross-currency leg: the provider's signed quote and the currency the debtor pays in."""

    quote_id: Text64
    debit_currency: str

    @field_validator("debit_currency", mode="before")
    @classmethod
    def _debit_currency(cls, value: object) -> str:
        return validate_currency(value)


class WithPartiesAndFx(GatewayModel):
    """Builds the nested ``debtor``/``creditor`` parties and ``fx`` leg of a payment, naming the
    field in any error (shared by the instruction and the JSON request)."""

    @field_validator("debtor", "creditor", mode="before", check_fields=False)
    @classmethod
    def _party(cls, value: object, info: ValidationInfo) -> object:
        return coerce_nested(Party, value, str(info.field_name))

    @field_validator("fx", mode="before", check_fields=False)
    @classmethod
    def _fx(cls, value: object) -> object:
        return coerce_nested(FxLeg, value, "fx")


class PaymentInstruction(WithPartiesAndFx):
    """A validated payment instruction; see the module docstring for the hashed form.

    Validation raises: InvalidMessage (FF01) for a bad UETR or field, InvalidAgent (RC01)
    for a malformed BIC, UnknownCurrency (AM03), InvalidAmount (AM12; floats refused).
    Registration of the agents is checked separately against a ``BicDirectory``.
    """

    uetr: uuid.UUID
    debtor_agent: str
    creditor_agent: str
    currency: str
    amount: Decimal
    end_to_end_id: Text35 = "NOTPROVIDED"
    remittance_info: Remittance | None = None
    priority: Priority = "normal"
    queue_if_insufficient: StrictBool = False
    value_date: dt.date | None = None
    debtor: Party | None = None
    creditor: Party | None = None
    instructed_amount: Decimal | None = None
    instructed_currency: str | None = None
    exchange_rate: Decimal | None = None
    fx: FxLeg | None = None
    message_id: Text35 | None = None
    message_type: MessageType = "json"

    @field_validator("uetr", mode="before")
    @classmethod
    def _uetr(cls, value: object) -> uuid.UUID:
        return parse_uetr(value)

    @field_validator("debtor_agent", "creditor_agent", mode="before")
    @classmethod
    def _agent(cls, value: object, info: ValidationInfo) -> str:
        return normalise_bic(value, role=str(info.field_name))

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: object) -> str:
        return validate_currency(value)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: object) -> Decimal:
        return parse_decimal(value, field="amount")

    @field_validator("instructed_amount", mode="before")
    @classmethod
    def _instructed_amount(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        amount = parse_decimal(value, field="instructed_amount")
        if amount < 0 or amount.adjusted() >= money.MAX_INTEGER_DIGITS:
            raise InvalidAmount(f"instructed_amount {amount} is out of range", field="instructed_amount")
        return amount

    @field_validator("exchange_rate", mode="before")
    @classmethod
    def _exchange_rate(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        rate = parse_decimal(value, field="exchange_rate")
        if rate <= 0:
            raise InvalidAmount(f"exchange_rate must be positive, got {rate}", field="exchange_rate")
        return rate

    @field_validator("instructed_currency")
    @classmethod
    def _instructed_currency(cls, value: str | None) -> str | None:
        # Recorded, not settled: any ISO-shaped code (historic codes are legal in InstdAmt).
        if value is not None and not _CURRENCY_SHAPE.fullmatch(value):
            raise PydanticCustomError("currency", "must be three capital letters")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> PaymentInstruction:
        check_amount(self.amount, self.currency)
        if (self.instructed_amount is None) != (self.instructed_currency is None):
            raise InvalidMessage(
                "instructed_amount and instructed_currency come together or not at all",
                uetr=str(self.uetr),
            )
        if self.fx is not None and self.fx.debit_currency == self.currency:
            raise InvalidMessage(
                f"fx.debit_currency equals the payment currency {self.currency}: no conversion",
                uetr=str(self.uetr),
            )
        return self

    # --- money -----------------------------------------------------------------------
    def amount_minor(self) -> int:
        """The settled amount in the currency's minor units (exact)."""
        return money.to_minor(self.amount, self.currency)

    @staticmethod
    def from_minor(currency: str, minor: int) -> Decimal:
        """Minor units back to a decimal with the currency's exponent digits."""
        return money.from_minor(currency, minor)

    def order_flags(self) -> int:
        """``PaymentOrder.flags``: bit 0 queue if liquidity is short, bit 1 urgent."""
        return (FLAG_QUEUE if self.queue_if_insufficient else 0) | (
            FLAG_URGENT if self.priority == "urgent" else 0
        )

    # --- canonical form and hash -----------------------------------------------------
    def canonical_dict(self) -> dict[str, Any]:
        """The hashed fields (module docstring); strings and bools only, None omitted."""
        out: dict[str, Any] = {
            "uetr": str(self.uetr),
            "debtor_agent": self.debtor_agent,
            "creditor_agent": self.creditor_agent,
            "currency": self.currency,
            "amount": format_amount(self.amount, self.currency),
            "end_to_end_id": self.end_to_end_id,
            "priority": self.priority,
            "queue_if_insufficient": self.queue_if_insufficient,
        }
        if self.remittance_info is not None:
            out["remittance_info"] = self.remittance_info
        if self.value_date is not None:
            out["value_date"] = self.value_date.isoformat()
        for key, party in (("debtor", self.debtor), ("creditor", self.creditor)):
            if party is not None and party.canonical():
                out[key] = party.canonical()
        if self.fx is not None:
            out["fx"] = {"quote_id": self.fx.quote_id, "debit_currency": self.fx.debit_currency}
        if self.instructed_amount is not None and self.instructed_currency is not None:
            out["instructed_amount"] = canonical_decimal(self.instructed_amount)
            out["instructed_currency"] = self.instructed_currency
        if self.exchange_rate is not None:
            out["exchange_rate"] = canonical_decimal(self.exchange_rate)
        return out

    def canonical_json(self) -> bytes:
        """RFC 8785 (JCS) serialisation of ``canonical_dict()``."""
        return rfc8785.dumps(self.canonical_dict())

    def instruction_hash(self) -> bytes:
        """keccak-256 of ``canonical_json()``: the ``instructionHash`` of the payment order."""
        return bytes(keccak(self.canonical_json()))
