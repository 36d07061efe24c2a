"""FX quotes: providers publish signed quotes (POST /v1/fx/quotes), banks list the live ones
(GET /v1/fx/quotes). Cross-currency payments themselves go through POST /v1/payments with `fx`.

Body of a quote (API.md units): `rate` is the creditor-currency (Y) minor units per
debit-currency (X) minor unit, scaled by 10^18, as a string of digits ("1513700000000000000"
is 1.5137 Y minor units per X minor unit); `capacity` is a decimal string in Y (major units,
"250000.00"); the expiry is `expires_in_seconds` or an RFC 3339 `expiry` (whole seconds).
The gateway signs with the provider's key when it holds it; a provider that keeps its key
gets the typed data from POST /v1/fx/quotes/prepare and sends `quote_id`, `expiry` and
`signature` with the same values.

Needs ``gateway.fx`` (a ``chain_gateway.fx.FxService``), which the Gateway starts."""
from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import FxProvider, GatewayDep, PrincipalDep, SessionDep
from chain_gateway.errors import Forbidden, InvalidMessage, InvalidSignature, Unavailable
from chain_gateway.fx import FxQuote, FxService, capacity_minor, parse_quote_id, parse_rate
from chain_gateway.instructions.currency import validate_currency
from chain_gateway.onboarding import require_profile

router = APIRouter(tags=["fx"])
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")


def get_fx(gateway: GatewayDep) -> FxService:
    service = getattr(gateway, "fx", None)
    if not isinstance(service, FxService):
        raise Unavailable("the FX service is not running")
    return service


FxDep = Annotated[FxService, Depends(get_fx)]


class QuoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    debit_currency: str = Field(max_length=3)
    credit_currency: str = Field(max_length=3)
    rate: str = Field(max_length=78, description="Y minor units per X minor unit scaled by 10^18, digits only")
    capacity: str = Field(max_length=40, description="the most the quote pays out, decimal string in Y")
    expires_in_seconds: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    expiry: AwareDatetime | None = None
    quote_id: str | None = Field(default=None, max_length=66, description="64 hex characters; generated if absent")
    signature: str | None = Field(default=None, max_length=132)


class QuotePublic(BaseModel):
    quote_id: str
    provider_bic: str
    provider: str
    debit_currency: str
    credit_currency: str
    rate: str
    rate_major: str
    capacity: str
    remaining: str | None
    expiry: str
    signature: str
    signed_by: str
    fx_contract: str


class QuotesPublic(BaseModel):
    items: list[QuotePublic]
    next_cursor: str | None = None


class QuotePrepared(BaseModel):
    quote_id: str
    expiry: int
    digest: str
    typed_data: dict[str, Any]


def _quote(body: QuoteCreate, fx: FxService, provider: str) -> FxQuote:
    if (body.expires_in_seconds is None) == (body.expiry is None):
        raise InvalidMessage("give exactly one of expires_in_seconds and expiry")
    if body.expiry is not None:
        if body.expiry.microsecond:
            raise InvalidMessage("expiry is signed as whole unix seconds: no fractions of a second")
        expiry = int(body.expiry.timestamp())
    else:
        expiry = int(time.time()) + int(body.expires_in_seconds or 0)
    y = validate_currency(body.credit_currency)
    return fx.build_quote(provider=provider, debit_currency=validate_currency(body.debit_currency), credit_currency=y,
                          rate=parse_rate(body.rate), capacity=capacity_minor(body.capacity, y), expiry=expiry,
                          quote_id=parse_quote_id(body.quote_id) if body.quote_id else None)


@router.post("/v1/fx/quotes/prepare", response_model=QuotePrepared)
def prepare_quote(body: QuoteCreate, fx: FxDep, session: SessionDep, principal: FxProvider) -> QuotePrepared:
    """The EIP-712 typed data of a quote, for a provider that signs with its own key."""
    profile = require_profile(session, principal.bic or "")
    quote = _quote(body, fx, profile.address)
    from chain_gateway.fx import quote_digest
    return QuotePrepared(quote_id=quote.quote_id_text, expiry=quote.expiry,
                         digest="0x" + quote_digest(quote, fx.chain_id, fx.fx_contract).hex(),
                         typed_data=fx.quote_typed_data(quote))


@router.post("/v1/fx/quotes", response_model=QuotePublic, status_code=201)
def publish_quote(body: QuoteCreate, gateway: GatewayDep, fx: FxDep, session: SessionDep,
                  principal: FxProvider) -> JSONResponse:
    """Publish a quote signed by the provider (or by the gateway with the provider's key)."""
    profile = require_profile(session, principal.bic or "")
    signature = None
    if body.signature is not None:
        if not _SIGNATURE.fullmatch(body.signature):
            raise InvalidSignature("signature must be the 65-byte EIP-712 signature as 0x-prefixed hex")
        if body.quote_id is None or body.expiry is None:
            raise InvalidMessage("a signed quote gives the quote_id and expiry it signed")
        signature = bytes.fromhex(body.signature[2:])
    quote = _quote(body, fx, profile.address)
    key = None
    if signature is None and gateway.keystore.has(profile.address):
        key = bytes(gateway.keystore.account(profile.address).key)
    view = fx.publish(session, quote=quote, provider_bic=profile.bic, signature=signature, provider_key=key)
    session.commit()
    return JSONResponse(view.public(fx.fx_contract), status_code=201,
                        headers={"Location": f"/v1/fx/quotes?quote_id={quote.quote_id_text}"})


@router.get("/v1/fx/quotes", response_model=QuotesPublic)
def list_quotes(fx: FxDep, session: SessionDep, principal: PrincipalDep,
                debit_currency: str | None = Query(default=None, max_length=3),
                credit_currency: str | None = Query(default=None, max_length=3)) -> QuotesPublic:
    """Live quotes: not expired, with capacity left (remaining read from the chain)."""
    if not principal.has("bank", "fx_provider", "auditor", "operator"):
        raise Forbidden("quotes are for banks, FX providers, auditors and the operator")
    views = fx.live_quotes(session, debit_currency=debit_currency, credit_currency=credit_currency)
    return QuotesPublic(items=[QuotePublic(**v.public(fx.fx_contract)) for v in views])


__all__ = ["router"]
