"""The registry as the instruction layer sees it (a ``BicDirectory``): BIC -> address,
read from the chain and cached. Registrations are permanent on-chain, so a positive answer
never goes stale; a miss is asked again next time (the BIC may have been registered since).
"""
from __future__ import annotations

import threading

from chain_gateway.codec import bic_to_bytes11
from chain_gateway.errors import InvalidAgent
from chain_gateway.ledger import LedgerClient


class ChainDirectory:
    """BIC lookups against the on-chain registry, with an in-process cache."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._by_bic: dict[str, str] = {}
        self._lock = threading.Lock()

    def address_of(self, bic11: str) -> str | None:
        with self._lock:
            hit = self._by_bic.get(bic11)
        if hit is not None:
            return hit
        address = self._client.participant_of(bic11)
        if address is not None:
            with self._lock:
                self._by_bic[bic11] = address
        return address

    def require(self, bic11: str, *, role: str = "agent") -> str:
        address = self.address_of(bic11)
        if address is None:
            raise InvalidAgent(f"{role} {bic11} is not a registered participant", bic=bic11)
        return address

    # --- BicDirectory protocol (chain_gateway.instructions.directory) ----------------
    def is_registered(self, bic11: str) -> bool:
        return self.address_of(bic_to_bytes11(bic11).decode()) is not None

    def bic_for_member_id(self, member_id: str) -> str | None:
        return None  # clearing-system member ids are not registered on this ledger
