"""The operator's participant administration, keys, and funding."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import GatewayDep, Operator, PrincipalDep, SessionDep
from api.schemas import (
    FundingPublic,
    FundingRequest,
    KeyIssued,
    ParticipantCreate,
    ParticipantCreated,
    ParticipantPublic,
    ParticipantsPublic,
    StatusChanged,
)
from chain_gateway.access import issue_key, list_profiles, revoke_key
from chain_gateway.audit_trail import audited
from chain_gateway.errors import Forbidden
from chain_gateway.onboarding import move_reserves, register_participant, require_profile, set_active

router = APIRouter(tags=["participants"])


@router.post("/v1/participants", response_model=ParticipantCreated, status_code=201)
@audited("participant.register")
def register(body: ParticipantCreate, gateway: GatewayDep, session: SessionDep, _: Operator) -> ParticipantCreated:
    done = register_participant(session, gateway.require_client(), gateway.keystore, bic=body.bic, name=body.name,
                                country=body.country, roles=list(body.roles), address=body.address)
    session.commit()
    return ParticipantCreated(bic=done.profile.bic, address=done.profile.address, api_key=done.key.api_key,
                              key_id=done.key.key_id, tx_hash=done.tx_hash)


@router.get("/v1/participants", response_model=ParticipantsPublic)
def directory(gateway: GatewayDep, session: SessionDep, _: PrincipalDep) -> ParticipantsPublic:
    client = gateway.require_client()
    items = [ParticipantPublic(bic=p.bic, name=p.name, country=p.country, roles=p.roles.split(","),
                               status="active" if client.is_active(p.address) else "suspended",
                               address=p.address, key_custody=p.key_custody) for p in list_profiles(session)]
    return ParticipantsPublic(items=items)


@router.post("/v1/participants/{bic}/suspend", response_model=StatusChanged)
@audited("participant.suspend")
def suspend(bic: str, gateway: GatewayDep, session: SessionDep, _: Operator) -> StatusChanged:
    tx = set_active(session, gateway.require_client(), bic=bic, active=False)
    return StatusChanged(bic=require_profile(session, bic).bic, status="suspended", tx_hash=tx)


@router.post("/v1/participants/{bic}/reinstate", response_model=StatusChanged)
@audited("participant.reinstate")
def reinstate(bic: str, gateway: GatewayDep, session: SessionDep, _: Operator) -> StatusChanged:
    tx = set_active(session, gateway.require_client(), bic=bic, active=True)
    return StatusChanged(bic=require_profile(session, bic).bic, status="active", tx_hash=tx)


@router.post("/v1/participants/{bic}/keys", response_model=KeyIssued, status_code=201)
@audited("key.issue")
def new_key(bic: str, session: SessionDep, principal: PrincipalDep) -> KeyIssued:
    profile = require_profile(session, bic)
    if not (principal.has("operator") or principal.bic == profile.bic):
        raise Forbidden("only the operator or the participant itself may issue its keys")
    issued = issue_key(session, owner_bic=profile.bic, roles=profile.roles.split(","), label="issued")
    session.commit()
    return KeyIssued(key_id=issued.key_id, api_key=issued.api_key)


@router.delete("/v1/keys/{key_id}", status_code=204)
@audited("key.revoke")
def delete_key(key_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    revoke_key(session, key_id=key_id, by=principal)
    session.commit()
    return Response(status_code=204)


def _funding(body: FundingRequest, gateway: GatewayDep, session: SessionDep, fund: bool) -> FundingPublic:
    m = move_reserves(session, gateway.require_client(), bic=body.bic, currency=body.currency, amount=body.amount,
                      reference=body.reference, fund=fund)
    return FundingPublic(bic=m.bic, currency=m.currency, amount=str(m.amount), reference=m.reference,
                         tx_hash=m.tx_hash, block_number=m.block_number, balance=str(m.balance))


@router.post("/v1/funding", response_model=FundingPublic)
@audited("reserves.fund")
def funding(body: FundingRequest, gateway: GatewayDep, session: SessionDep, _: Operator) -> FundingPublic:
    return _funding(body, gateway, session, fund=True)


@router.post("/v1/defunding", response_model=FundingPublic)
@audited("reserves.defund")
def defunding(body: FundingRequest, gateway: GatewayDep, session: SessionDep, _: Operator) -> FundingPublic:
    return _funding(body, gateway, session, fund=False)
