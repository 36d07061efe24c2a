"""Balances (from the chain, at a stated block) and statements (from the mirror)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import GatewayDep, PrincipalDep, SessionDep, ensure_can_see
from api.schemas import BalanceLine, BalancesPublic
from chain_gateway import tracker
from chain_gateway.errors import InvalidMessage
from chain_gateway.instructions.currency import from_minor, validate_currency
from chain_gateway.onboarding import require_profile

router = APIRouter(tags=["accounts"])


@router.get("/v1/accounts/{bic}/balances", response_model=BalancesPublic)
def balances(bic: str, gateway: GatewayDep, session: SessionDep, principal: PrincipalDep,
             block: int | None = Query(default=None, ge=0, le=2**63 - 1)) -> BalancesPublic:
    profile = require_profile(session, bic)
    ensure_can_see(principal, profile.bic)
    client = gateway.require_client()
    head = int(client.w3.eth.block_number)
    if block is not None and block > head:
        raise InvalidMessage(f"block {block} is beyond the chain head {head}")
    if block is not None and block < client.deployment.deploy_block:
        raise InvalidMessage(f"block {block} is before the ledger was deployed (block "
                             f"{client.deployment.deploy_block})")
    at = head if block is None else block
    lines = []
    for currency in gateway.settings.enabled_currencies:
        minor = client.balance_of(profile.address, currency, at)
        if minor:
            lines.append(BalanceLine(currency=currency, amount=str(from_minor(currency, minor))))
    return BalancesPublic(bic=profile.bic, block_number=at, balances=lines)


@router.get("/v1/accounts/{bic}/statement")
def statement(bic: str, request: Request, session: SessionDep, principal: PrincipalDep,
              currency: str = Query(default="USD", max_length=3), since: dt.datetime | None = None,
              until: dt.datetime | None = None, cursor: str | None = Query(default=None, max_length=128),
              limit: int = Query(default=100, ge=1, le=1000)) -> Response:
    profile = require_profile(session, bic)
    ensure_can_see(principal, profile.bic)
    as_xml = "application/xml" in request.headers.get("accept", "")
    body, xml = tracker.statement_page(session, profile, currency=validate_currency(currency), since=since,
                                       until=until, cursor=cursor, limit=limit, as_xml=as_xml)
    if xml is not None:
        return Response(xml, media_type="application/xml")
    return JSONResponse(body)
