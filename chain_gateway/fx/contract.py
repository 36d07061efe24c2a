"""The FxSettlement contract on chain: find it, deploy it, read how much of a quote is used."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from chain_gateway.errors import ToolchainError
from chain_gateway.fx.orders import FX_CONTRACT, FX_SETTLER_ROLE, ROLE_GRANTED_TOPIC
from chain_gateway.ledger import LedgerClient
from chain_gateway.toolchain import Artifact, compile_contracts
from chain_gateway.transactions import encode_call


def quote_used(client: LedgerClient, fx_contract: str, provider: str, quote_id: bytes,
               block: Any = "latest") -> int:
    """What the quote has paid out so far (Y minor units), read from FxSettlement."""
    raw = client.w3.eth.call({"to": to_checksum_address(fx_contract), "data": encode_call(
        "quoteUsed(address,bytes32)", ["address", "bytes32"], [to_checksum_address(provider), quote_id])}, block)
    return int(abi_decode(["uint256"], bytes(raw))[0])



def fx_artifact() -> Artifact:
    """FxSettlement's compiled artifact (the toolchain builds it with the other deployables)."""
    return compile_contracts()[FX_CONTRACT]


def deploy_fx_settlement(client: LedgerClient) -> str:
    """Deploy FxSettlement for the client's ledger and grant it FX_SETTLER_ROLE (operator key)."""
    from chain_gateway.deploy import deploy_fx_contract  # deploy imports this module's neighbours

    if client.operator is None:
        raise ToolchainError("deploying FxSettlement needs the operator key")
    return deploy_fx_contract(client.operator, client.ledger)


def find_fx_settlement(client: LedgerClient) -> str | None:
    """The FxSettlement contract the ledger trusts: the latest FX_SETTLER_ROLE grantee that still holds
    the role (the ledger's RoleGranted events are the record; no manifest field needed)."""
    logs = client.w3.eth.get_logs({"address": client.ledger, "fromBlock": client.deployment.deploy_block,
                                   "toBlock": "latest", "topics": ["0x" + ROLE_GRANTED_TOPIC.hex(),
                                                                   "0x" + FX_SETTLER_ROLE.hex()]})
    for entry in reversed(list(logs)):
        account = to_checksum_address("0x" + bytes(entry["topics"][2])[-20:].hex())
        if client.has_role(client.ledger, FX_SETTLER_ROLE, account):
            return account
    return None


def ensure_fx_settlement(client: LedgerClient) -> str:
    """The ledger's FxSettlement: the manifest's while it holds its role, else the latest grantee,
    else a fresh one (deployed and granted its role)."""
    known = client.deployment.fx_settlement
    if known is not None and client.has_role(client.ledger, FX_SETTLER_ROLE, known):
        return to_checksum_address(known)
    return find_fx_settlement(client) or deploy_fx_settlement(client)
