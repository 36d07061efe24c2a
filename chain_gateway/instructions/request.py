"""The JSON body of ``POST /v1/payments`` (API.md "Payments") and its translation.

The debtor is the caller, so the body has no debtor agent; ``instruction_from_request``
takes it from the authenticated participant. Amounts must be JSON strings: a JSON number
has already been through a binary float in most clients, and floats are never money.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from pydantic import AwareDatetime, StrictBool, field_validator, model_validator

from chain_gateway.errors import InvalidAmount, InvalidMessage, InvalidSignature

from ._base import Text35, Text140
from .bic import normalise_bic
from .currency import check_amount, parse_decimal, validate_currency
from .directory import BicDirectory, require_registered
from .model import FxLeg, Party, PaymentInstruction, Priority, WithPartiesAndFx
from .uetr import new_uetr, parse_uetr

# 65-byte secp256k1 signature (r, s, v) as 0x-prefixed hex.
_SIGNATURE: Final = re.compile(r"0x[0-9a-fA-F]{130}")


class PaymentRequest(WithPartiesAndFx):
    """Request body of ``POST /v1/payments`` (and ``/v1/payments/prepare``)."""

    uetr: uuid.UUID | None = None
    creditor_agent: str
    currency: str
    amount: Decimal
    end_to_end_id: Text35 = "NOTPROVIDED"
    remittance_info: Text140 | None = None
    debtor: Party | None = None
    creditor: Party | None = None
    priority: Priority = "normal"
    queue_if_insufficient: StrictBool = False
    deadline: AwareDatetime | None = None
    fx: FxLeg | None = None
    signature: str | None = None

    @field_validator("uetr", mode="before")
    @classmethod
    def _uetr(cls, value: object) -> uuid.UUID | None:
        return None if value is None else parse_uetr(value)

    @field_validator("creditor_agent", mode="before")
    @classmethod
    def _creditor_agent(cls, value: object) -> str:
        return normalise_bic(value, role="creditor_agent")

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: object) -> str:
        return validate_currency(value)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: object) -> Decimal:
        if isinstance(value, (int, float)):  # bool is an int too
            raise InvalidAmount(
                f"amount must be a JSON string such as \"1250.75\", not the JSON "
                f"{'boolean' if isinstance(value, bool) else 'number'} {value!r}: "
                "floats are never money",
                field="amount",
            )
        return parse_decimal(value, field="amount")

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: object) -> object:
        # RFC 3339 text (or a datetime from Python callers); a bare number is ambiguous.
        if value is not None and not isinstance(value, (str, dt.datetime)):
            raise InvalidMessage(
                "deadline must be an RFC 3339 time with an offset, e.g. 2025-06-02T10:05:00Z",
                field="deadline",
            )
        return value

    @field_validator("signature", mode="before")
    @classmethod
    def _signature(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _SIGNATURE.fullmatch(value):
            raise InvalidSignature(
                "signature must be the 65-byte EIP-712 signature as 0x-prefixed hex "
                "(132 characters)",
                field="signature",
            )
        return value.lower()

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> PaymentRequest:
        check_amount(self.amount, self.currency)
        return self

    def signature_bytes(self) -> bytes | None:
        """The signature as 65 raw bytes, or None."""
        return None if self.signature is None else bytes.fromhex(self.signature[2:])


def parse_payment_request(body: bytes | str) -> PaymentRequest:
    """Parse a JSON body; any problem is a GatewayError (FF01, AM12, AM03, RC01).

    A member named twice is refused (FF01): a JSON parser keeps one of them (pydantic the
    last, others the first), so a body like ``{"amount": "1.00", "amount": "900.00"}`` reads
    differently to the bank's systems and to the gateway (I-JSON, RFC 7493, forbids it)."""
    _refuse_duplicate_members(body)
    return PaymentRequest.model_validate_json(body)


MAX_JSON_DEPTH: Final = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes | str) -> int:
    """How deep `body`'s arrays and objects nest (brackets inside strings not counted): cheap
    for ordinary bodies, C-speed passes for the rest. Checked before the standard library's
    ``json`` reads untrusted input: it recurses in C once per level, and the gateway process
    runs with a recursion limit of 100,000 (py_ecc and py-evm raise it when imported), so
    ~100,000 nested brackets overflow the C stack and kill the process."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    bound = raw.count(b"[") + raw.count(b"{")
    if bound <= MAX_JSON_DEPTH:
        return bound  # an upper bound, and already small enough
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _refuse_duplicate_members(body: bytes | str) -> None:
    if json_depth(body) > MAX_JSON_DEPTH:
        raise InvalidMessage(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        names = [name for name, _ in items]
        if len(names) != len(set(names)):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidMessage(f"JSON member named more than once: {', '.join(twice)[:100]}", field=twice[0][:64])
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # not JSON at all: the model's own parse says why
        return


def instruction_from_request(
    req: PaymentRequest,
    debtor_bic: str,
    *,
    directory: BicDirectory | None = None,
    uetr_factory: Callable[[], uuid.UUID] = new_uetr,
) -> PaymentInstruction:
    """Translate a request from the participant ``debtor_bic`` into the canonical instruction.

    A missing UETR is generated (``uetr_factory``). With a ``directory``, both agents must be
    registered participants (InvalidAgent RC01). ``deadline`` and ``signature`` belong to the
    signed order, not to the instruction, and are left on the request.
    """
    debtor_agent = normalise_bic(debtor_bic, role="debtor_agent")
    creditor_agent = req.creditor_agent
    if directory is not None:
        require_registered(debtor_agent, directory, role="debtor_agent")
        require_registered(creditor_agent, directory, role="creditor_agent")
    return PaymentInstruction(
        uetr=req.uetr if req.uetr is not None else uetr_factory(),
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        currency=req.currency,
        amount=req.amount,
        end_to_end_id=req.end_to_end_id,
        remittance_info=req.remittance_info,
        priority=req.priority,
        queue_if_insufficient=req.queue_if_insufficient,
        debtor=req.debtor,
        creditor=req.creditor,
        fx=req.fx,
        message_type="json",
    )
