"""Helpers for the outbox tests: enqueue as the API does, and count settlements on-chain
(the oracle of "paid exactly once", independent of the code under test)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from eth_utils import keccak
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.db import transaction
from chain_gateway.ledger import LedgerClient
from chain_gateway.outbox import OutboxEntry, enqueue
from chain_gateway.signing import PaymentOrder

SETTLED_TOPIC = "0x" + keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)").hex()


def put(factory: sessionmaker[Session], items: Sequence[tuple[PaymentOrder, bytes]]) -> None:
    """Enqueue and commit in one transaction, as the API does."""
    with transaction(factory) as session:
        for order, sig in items:
            enqueue(session, order, sig)


def settled_counts(client: LedgerClient) -> Counter[bytes]:
    """UETR (16 bytes) -> number of PaymentSettled events on the chain."""
    logs = client.w3.eth.get_logs({"address": client.ledger, "fromBlock": client.deployment.deploy_block,
                                   "toBlock": "latest", "topics": [SETTLED_TOPIC]})
    return Counter(bytes(log["topics"][1])[:16] for log in logs)


def rows(factory: sessionmaker[Session]) -> list[OutboxEntry]:
    with transaction(factory) as session:
        return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
