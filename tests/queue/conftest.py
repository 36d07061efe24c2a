"""Queue fixtures: a gateway wired by hand on the session's eth-tester chain (the test's own
LedgerClient, so nonces stay in one place), a migrated SQLite mirror per test, the queue
service, and an HTTP app with the lead's routers plus the queue and FX routers.

Payments are queued through the real intake (POST /v1/payments) or straight on-chain; the
mirror is brought up to date with ``env.sync()`` (submitter, then indexer) since no background
thread runs here."""
from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chain_gateway.config import Settings
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.ledger import ROLE_BANK, LedgerClient
from chain_gateway.mirror.schema import upgrade_database
from chain_gateway.queue import QueueService
from tests.contracts.conftest import call_as, contracts, events, latest_timestamp, queue_payment, reverts, stranger  # noqa: F401

FUND_REF = b"\0" * 32


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("queue-template") / "gateway.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    return path


@dataclass
class QueueEnv:
    client: LedgerClient
    gateway: Any
    queue: QueueService
    settings: Settings
    make_bank: Callable[..., Any]
    banks: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    _http: Any = None

    # ------------------------------------------------------------ participants
    def bank(self, name: str, funds: dict[str, int] | None = None, *, api: bool = True) -> Any:
        """A registered bank whose key the gateway holds, with a profile and an API key."""
        from chain_gateway.access import ParticipantProfile, issue_key

        bank = self.make_bank(funds=funds)
        self.gateway.keystore.add(bank.account)
        self.banks[name] = bank
        if api:
            with self.gateway.sessions() as s, s.begin():
                s.add(ParticipantProfile(bic=bank.bic, address=bank.address, name=name, country=bank.country,
                                         roles="bank", key_custody="gateway"))
                s.flush()
                self.keys[name] = issue_key(s, owner_bic=bank.bic, roles=["bank"]).api_key
        return bank

    def role_key(self, role: str) -> str:
        from chain_gateway.access import issue_key

        if role not in self.keys:
            with self.gateway.sessions() as s, s.begin():
                self.keys[role] = issue_key(s, owner_bic=None, roles=[role]).api_key
        return self.keys[role]

    # ------------------------------------------------------------ chain and mirror
    def queue_onchain(self, make_order: Callable[..., Any], debtor: Any, creditor: Any, amount: int,
                      currency: str = "USD", *, urgent: bool = False) -> bytes:
        order, sig = make_order(debtor, creditor, amount, currency, flags=1 | (2 if urgent else 0))
        self.client.submit_payment(order, sig)
        assert self.client.payment_status(order.uetr) == 1, "the debtor could cover it: not queued"
        return order.uetr

    def sync(self) -> None:
        self.gateway.submitter.run_until_idle(timeout=60)
        self.gateway.indexer.sync_once()

    def balance(self, name: str, currency: str = "USD") -> int:
        return self.client.balance_of(self.banks[name].address, currency)

    def status(self, uetr: bytes | str) -> int:
        return self.client.payment_status(uuid.UUID(str(uetr)).bytes if isinstance(uetr, str) else uetr)

    # ------------------------------------------------------------ HTTP
    @property
    def http(self) -> Any:
        if self._http is None:
            from fastapi.testclient import TestClient

            from api.app import create_app
            from api.routes import fx, queue

            app = create_app(self.settings, self.gateway)
            paths = {getattr(r, "path", None) for r in app.routes}
            if "/v1/queue" not in paths:  # until the lead includes them in create_app
                app.include_router(queue.router)
                app.include_router(fx.router)
            self._http = TestClient(app)
        return self._http

    def as_(self, who: str) -> dict[str, str]:
        key = self.keys[who] if who in self.keys else self.role_key(who)
        return {"Authorization": f"Bearer {key}"}

    def pay(self, debtor: str, creditor: str, amount: str, currency: str = "USD", *, queue: bool = True,
            urgent: bool = False) -> str:
        """POST /v1/payments as the debtor; the UETR (the payment is then sent and mirrored)."""
        body = {"creditor_agent": self.banks[creditor].bic, "currency": currency, "amount": amount,
                "queue_if_insufficient": queue, "priority": "urgent" if urgent else "normal"}
        r = self.http.post("/v1/payments", json=body, headers=self.as_(debtor))
        assert r.status_code in (201, 202), r.text
        self.sync()
        return str(r.json()["uetr"])


@pytest.fixture
def queue_env(settings: Settings, chain: Any, deployment: Any, client: LedgerClient, make_bank: Callable[..., Any],
              template_db: Path, tmp_path: Path) -> Iterator[QueueEnv]:
    from chain_gateway.directory import ChainDirectory
    from chain_gateway.indexer import Indexer
    from chain_gateway.outbox import Submitter
    from chain_gateway.runtime import Gateway

    db = tmp_path / "gateway.sqlite3"
    shutil.copy(template_db, db)
    test_settings = settings.model_copy(update={"data_dir": tmp_path, "database_url": f"sqlite:///{db}"})
    gateway = Gateway(test_settings, chain=chain, deployment=deployment)
    gateway.client = client
    gateway.directory = ChainDirectory(client)
    gateway.engine = make_engine(f"sqlite:///{db}")
    gateway.sessions = make_session_factory(gateway.engine)
    gateway.indexer = Indexer(client, gateway.sessions, hooks=[gateway.changes.notify])
    gateway.submitter = Submitter(gateway.sessions, client)
    gateway.started = True
    service = QueueService(client, gateway.sessions, time_limit=5.0)
    gateway.queue = service
    gateway.indexer.add_hook(service.on_mirror_update)
    env = QueueEnv(client=client, gateway=gateway, queue=service, settings=test_settings, make_bank=make_bank)
    try:
        yield env
    finally:
        service.stop()
        if env._http is not None:
            env._http.close()
        gateway.submitter.stop(timeout=5)
        gateway.engine.dispose()


@pytest.fixture
def wait_for() -> Callable[..., None]:
    def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.05)
    return _wait


__all__ = ["FUND_REF", "ROLE_BANK", "QueueEnv"]
