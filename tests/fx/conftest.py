"""FX fixtures: FxSettlement deployed once per session on the shared eth-tester chain (before any
test's snapshot, so reverts keep it), an FX provider, quotes and debtor orders signed with the
participants' own keys, and a helper that sends one FX batch and reads back its outcome."""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chain_gateway.fx import (
    FxOrder,
    FxQuote,
    debit_amount,
    encode_fx_batch,
    ensure_fx_settlement,
    fx_batch_gas,
    new_quote_id,
    quote_used,
    sign_fx_order,
    sign_quote,
)
from chain_gateway.ledger import ROLE_BANK, ROLE_FX_PROVIDER, LedgerClient
from chain_gateway.outbox.receipts import item_outcomes
from tests.contracts.conftest import (  # noqa: F401
    call_as,
    contracts,
    events,
    latest_timestamp,
    queue_payment,
    reverts,
    stranger,
)
from tests.queue.conftest import queue_env, template_db, wait_for  # noqa: F401

RATE = 10**18  # scale of a rate: 1 Y minor unit per X minor unit


@pytest.fixture(scope="session")
def fx_address(session_client: LedgerClient) -> str:
    """The session ledger's FxSettlement (deployed with it and granted FX_SETTLER_ROLE)."""
    return ensure_fx_settlement(session_client)


@dataclass
class FxEnv:
    client: LedgerClient
    fx: str
    chain_id: int

    def quote(self, provider: Any, x: str, y: str, rate: int, capacity: int, *, expiry: int | None = None,
              quote_id: bytes | None = None, signer: Any = None) -> tuple[FxQuote, bytes]:
        q = FxQuote(quote_id or new_quote_id(), provider.address, x, y, rate, capacity,
                    expiry if expiry is not None else int(time.time()) + 3600)
        return q, sign_quote((signer or provider.account).key, q, self.chain_id, self.fx)

    def order(self, debtor: Any, creditor: Any, quote: FxQuote, amount: int, *, max_debit: int | None = None,
              deadline: int | None = None, uetr: bytes | None = None, signer: Any = None) -> tuple[FxOrder, bytes]:
        o = FxOrder(uetr or uuid.uuid4().bytes, debtor.address, creditor.address, quote.credit_currency, amount,
                    quote.quote_id, quote.provider, quote.debit_currency,
                    max_debit if max_debit is not None else debit_amount(amount, quote.rate),
                    deadline if deadline is not None else int(time.time()) + 3600, os.urandom(32))
        return o, sign_fx_order((signer or debtor.account).key, o, self.chain_id, self.fx)

    def settle(self, items: list[tuple[FxOrder, bytes, FxQuote, bytes]]) -> tuple[dict[str, Any], dict[bytes, Any]]:
        """Send one settleFxBatch from the relayer; the receipt and each UETR's outcome."""
        data = encode_fx_batch([i[0] for i in items], [i[1] for i in items], [i[2] for i in items],
                               [i[3] for i in items])
        receipt = self.client.relayer.transact(self.fx, data, gas=fx_batch_gas(len(items)), simulate=False)  # type: ignore[union-attr]
        return receipt, item_outcomes(receipt, self.client.ledger, self.client.decoder)

    def used(self, quote: FxQuote) -> int:
        return quote_used(self.client, self.fx, quote.provider, quote.quote_id)


@pytest.fixture
def fx_env(fx_address: str, client: LedgerClient, chain: Any) -> FxEnv:
    return FxEnv(client, fx_address, chain.chain_id)


@pytest.fixture
def make_provider(make_bank: Callable[..., Any]) -> Callable[..., Any]:
    """A registered FX provider (bank + FX provider roles), funded as asked."""
    def _make(funds: dict[str, int] | None = None, country: str = "SG") -> Any:
        return make_bank(country=country, funds=funds, roles=ROLE_BANK | ROLE_FX_PROVIDER)
    return _make


def balances(client: LedgerClient, parties: dict[str, Any], currencies: list[str]) -> dict[tuple[str, str], int]:
    """Every (party name, currency) balance: the tests compare all of them, before and after."""
    return {(name, c): client.balance_of(p.address, c) for name, p in parties.items() for c in currencies}
