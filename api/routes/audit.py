"""Auditors' read-only views: the on-chain event log and the mirror's reconciliation."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.deps import Auditor, GatewayDep, SessionDep
from chain_gateway.errors import InvalidMessage
from chain_gateway.indexer import EventDecoder, make_source
from chain_gateway.reconcile import reconcile

router = APIRouter(tags=["audit"])
MAX_LEDGER_BLOCKS = 10_000


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        text = raw.rstrip(b"\0")
        return text.decode() if text and text.isascii() and text.decode().isprintable() and len(raw) <= 11 \
            else "0x" + raw.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value > 2**53 else value
    return value


@router.get("/v1/audit/ledger")
def ledger(gateway: GatewayDep, _: Auditor, from_block: int | None = Query(default=None, ge=0),
           to_block: int | None = Query(default=None, ge=0)) -> dict[str, Any]:
    """Every registry and ledger event in a block range, with tx hash and log index."""
    client = gateway.require_client()
    head = int(client.w3.eth.block_number)
    start = from_block if from_block is not None else client.deployment.deploy_block
    end = min(to_block if to_block is not None else head, head)
    if start > end:
        raise InvalidMessage(f"from_block {start} is after to_block {end}")
    if end - start > MAX_LEDGER_BLOCKS:
        raise InvalidMessage(f"ask for at most {MAX_LEDGER_BLOCKS} blocks at a time")
    decoder = EventDecoder(client.deployment.abi["ParticipantRegistry"], client.deployment.abi["SettlementLedger"])
    items = []
    for raw in make_source(client.w3).logs(start, end, [client.registry, client.ledger]):
        event = decoder.decode(raw)
        if event is None:
            continue
        items.append({"event": event.name, "block_number": raw.block_number, "block_hash": raw.block_hash,
                      "tx_hash": raw.tx_hash, "log_index": raw.log_index, "address": raw.address,
                      "args": {k: _jsonable(v) for k, v in event.args.items()}})
    return {"from_block": start, "to_block": end, "items": items}


@router.get("/v1/audit/reconciliation")
def reconciliation(gateway: GatewayDep, session: SessionDep, _: Auditor,
                   block: int | None = Query(default=None, ge=0)) -> dict[str, Any]:
    return reconcile(session, gateway.require_client(), block).as_dict()
