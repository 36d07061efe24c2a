"""Shared pydantic plumbing: a base model whose failures are GatewayErrors, and text types.

pydantic's ``ValidationError`` subclasses ``ValueError``; letting it escape would break the
rule that domain code raises only ``GatewayError``s. ``GatewayModel`` turns it into
``InvalidMessage`` (FF01) with a detail naming each bad field. Validators that know a more
precise ISO reason (AM12, AM03, RC01) raise that ``GatewayError`` directly: pydantic lets
non-``ValueError`` exceptions through unchanged.
"""
from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Final, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from chain_gateway.errors import InvalidMessage

_MAX_REPORTED_ERRORS: Final = 5


def invalid_message_from(exc: ValidationError, what: str) -> InvalidMessage:
    """Summarise a pydantic ValidationError as one InvalidMessage (FF01)."""
    errors = [
        {"loc": ".".join(str(p) for p in err["loc"]) or "(body)", "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    parts = [f"{e['loc']}: {e['msg']}" for e in errors[:_MAX_REPORTED_ERRORS]]
    more = len(errors) - _MAX_REPORTED_ERRORS
    suffix = f" (and {more} more)" if more > 0 else ""
    return InvalidMessage(f"invalid {what}: " + "; ".join(parts) + suffix, errors=errors)


class GatewayModel(BaseModel):
    """Frozen, closed (extra fields forbidden) model that fails with GatewayErrors only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_message_from(exc, type(self).__name__) from exc

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """As pydantic's, raising InvalidMessage instead of ValidationError."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise invalid_message_from(exc, cls.__name__) from exc

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """As pydantic's, raising InvalidMessage instead of ValidationError."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise invalid_message_from(exc, cls.__name__) from exc


def _plain_text(value: str) -> str:
    """Refuse control and surrogate characters: they break XML rendering and logs."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise PydanticCustomError(
                "control_character", "must not contain control characters (found U+{code})",
                {"code": f"{ord(ch):04X}"},
            )
    return value


def _multiline_text(value: str) -> str:
    """Like ``_plain_text`` but allows line feeds (remittance lines are joined with LF)."""
    _plain_text(value.replace("\n", " "))
    return value


Text35 = Annotated[str, StringConstraints(min_length=1, max_length=35), AfterValidator(_plain_text)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_plain_text)]
Text34 = Annotated[str, StringConstraints(min_length=1, max_length=34), AfterValidator(_plain_text)]
Text140 = Annotated[str, StringConstraints(min_length=1, max_length=140), AfterValidator(_plain_text)]

#: Longest remittance text the model keeps. ISO allows many 140-character ``Ustrd`` lines;
#: the bound keeps the hashed instruction and the mirror row small.
REMITTANCE_MAX: Final = 2048
Remittance = Annotated[
    str, StringConstraints(min_length=1, max_length=REMITTANCE_MAX), AfterValidator(_multiline_text)
]
