"""Shared fixtures: one eth-tester chain with the contracts deployed per test session,
reverted to a snapshot after every test, so each test starts from the same clean ledger.
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_gateway.chain import ChainHandle, connect
from chain_gateway.config import Settings, get_settings
from chain_gateway.deploy import ensure_deployment, roles_for
from chain_gateway.ledger import ROLE_BANK, Deployment, LedgerClient
from chain_gateway.signing import PaymentOrder, sign_order
from chain_gateway.transactions import TxSender
from tests.live import Live, start_live
from tests.postgres import postgres_server  # noqa: F401 - one private PostgreSQL server per session

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return get_settings(environment="test", chain="eth-tester", data_dir=data, deployments_dir=data / "deployments")


@pytest.fixture(scope="session")
def chain(settings: Settings) -> Iterator[ChainHandle]:
    handle = connect(settings)
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def deployment(settings: Settings, chain: ChainHandle) -> Deployment:
    return ensure_deployment(settings, chain, save=False)


@pytest.fixture(scope="session")
def session_client(settings: Settings, chain: ChainHandle, deployment: Deployment) -> LedgerClient:
    roles = roles_for(settings, chain)
    return LedgerClient(chain.w3, deployment, operator=TxSender(chain.w3, roles.operator),
                        relayer=TxSender(chain.w3, roles.relayer))


@pytest.fixture
def client(chain: ChainHandle, session_client: LedgerClient) -> Iterator[LedgerClient]:
    """The ledger client, with the chain reverted to its pre-test state afterwards."""
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    snapshot = tester.take_snapshot()
    yield session_client
    tester.revert_to_snapshot(snapshot)
    for sender in (session_client.operator, session_client.relayer):
        if sender is not None:
            sender._nonce = None  # nonces rewound with the chain


@dataclass
class Bank:
    account: LocalAccount
    bic: str
    country: str

    @property
    def address(self) -> str:
        return self.account.address


@pytest.fixture
def make_bank(client: LedgerClient) -> Callable[..., Bank]:
    """Register a fresh bank (random key, unique BIC) and optionally fund it."""
    counter = iter(range(10_000))

    def _make(country: str = "US", funds: dict[str, int] | None = None, roles: int = ROLE_BANK) -> Bank:
        n = next(counter)
        account = Account.create()
        bic = f"TB{chr(65 + n // 26 % 26)}{chr(65 + n % 26)}{country}2L"
        client.register(account.address, bic, country, roles)
        for currency, amount in (funds or {}).items():
            client.fund(account.address, currency, amount, b"\0" * 32)
        return Bank(account, bic + "XXX", country)

    return _make


FAUCET_KEY_INDEX = 9  # dev account 0 is the operator, 1 the relayer; 9 only pays gas money


@pytest.fixture
def own_sender(client: LedgerClient, chain: ChainHandle) -> Callable[[LocalAccount], TxSender]:
    """A TxSender for any key (a bank's own, a stranger's), given 1 ETH for gas first: eth-tester
    has a base fee, so a key with no ether cannot send."""
    faucet = TxSender(chain.w3, chain.dev_keys[FAUCET_KEY_INDEX])
    funded: dict[str, TxSender] = {}

    def _sender(account: LocalAccount) -> TxSender:
        if account.address not in funded:
            faucet.wait(faucet.send(account.address, b"", gas=21_000, value=10**18))
            funded[account.address] = TxSender(chain.w3, account, decoder=client.decoder)
        return funded[account.address]
    return _sender


@pytest.fixture
def make_order(chain: ChainHandle, deployment: Deployment) -> Callable[..., tuple[PaymentOrder, bytes]]:
    """Build and sign a payment order (the debtor's own key unless `signer` is given)."""
    def _order(debtor: Bank, creditor: Bank, amount: int, currency: str = "USD", *, flags: int = 0,
               deadline: int | None = None, uetr: bytes | None = None, signer: LocalAccount | None = None,
               chain_id: int | None = None, ledger: str | None = None) -> tuple[PaymentOrder, bytes]:
        order = PaymentOrder(uetr=uetr or uuid.uuid4().bytes, debtor=debtor.address, creditor=creditor.address,
                             currency=currency.encode(), amount=amount, flags=flags,
                             deadline=deadline if deadline is not None else int(time.time()) + 3600,
                             instruction_hash=os.urandom(32))
        key = (signer or debtor.account).key
        return order, sign_order(key, order, chain_id or chain.chain_id, ledger or deployment.ledger)
    return _order


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One real gateway over HTTP for the whole session (e2e, CLI and risk suites)."""
    with start_live(tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway
