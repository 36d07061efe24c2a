"""Health, metrics, and the operator's emergency stop."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import GatewayDep, Operator
from api.errors import HttpProblem
from api.schemas import Health, SystemState
from chain_gateway.audit_trail import audited
from chain_gateway.errors import Conflict

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    gateway = request.app.state.gateway
    try:
        client = gateway.require_client()
        latest = int(client.w3.eth.block_number)
        paused = client.paused()
        chain_id = int(gateway.deployment.chain_id)
    except Exception:  # noqa: BLE001 - any chain failure is "degraded", never a 500
        return Health(status="degraded", chain_id=None, latest_block=None, mirror_block=None, mirror_lag_blocks=None)
    mirror = gateway.mirror_block()
    lag = None if mirror is None else max(0, latest - mirror)
    return Health(status="paused" if paused else "ok", chain_id=chain_id, latest_block=latest, mirror_block=mirror, mirror_lag_blocks=lag)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    host = request.client.host if request.client else ""
    if host not in ("127.0.0.1", "::1", "localhost", "testclient"):
        raise HttpProblem(403, "Forbidden", "metrics are served on loopback only")
    request.app.state.metrics.refresh(request.app.state.gateway)
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/system/pause", response_model=SystemState)
@audited("system.pause")
def pause(gateway: GatewayDep, _: Operator) -> SystemState:
    client = gateway.require_client()
    if client.paused():
        raise Conflict("the ledger is already paused")
    receipt = client.pause()
    gateway.forget_paused()
    return SystemState(paused=True, tx_hash="0x" + bytes(receipt["transactionHash"]).hex())


@router.post("/v1/system/resume", response_model=SystemState)
@audited("system.resume")
def resume(gateway: GatewayDep, _: Operator) -> SystemState:
    client = gateway.require_client()
    if not client.paused():
        raise Conflict("the ledger is not paused")
    receipt = client.unpause()
    gateway.forget_paused()
    return SystemState(paused=False, tx_hash="0x" + bytes(receipt["transactionHash"]).hex())
