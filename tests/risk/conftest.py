"""Risk fixtures: a fresh SQLite database per test (every gateway table plus the risk and
audit tables), payment instructions, history rows in payment_intake, and a faucet for banks
that send their own transactions (eth-tester has a non-zero base fee)."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import chain_gateway.audit_trail
import chain_gateway.models_all
import chain_gateway.risk.holds  # noqa: F401 - risk_holds
from chain_gateway.db import Base, make_engine, make_session_factory, utcnow
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.ledger import LedgerClient
from chain_gateway.payments import PaymentIntake

NY, FR, GB = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'risk.sqlite3'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


def instruction(**overrides: Any) -> PaymentInstruction:
    """A valid instruction NY -> FR, 100.00 EUR, with whatever fields the test sets."""
    fields: dict[str, Any] = {"uetr": uuid.uuid4(), "debtor_agent": NY, "creditor_agent": FR, "currency": "EUR",
                              "amount": "100.00", "end_to_end_id": "E2E-1"}
    fields.update(overrides)
    return PaymentInstruction(**fields)


@pytest.fixture
def make_instruction() -> Callable[..., PaymentInstruction]:
    return instruction


def intake_row(ins: PaymentInstruction, received_at: datetime | None = None) -> PaymentIntake:
    """The payment_intake row intake stores for an accepted instruction."""
    return PaymentIntake(
        uetr=str(ins.uetr), debtor_agent=ins.debtor_agent, creditor_agent=ins.creditor_agent, currency=ins.currency,
        amount=ins.amount, amount_minor=Decimal(ins.amount_minor()),
        instruction_hash="0x" + ins.instruction_hash().hex(),
        canonical_json=json.dumps(ins.canonical_dict(), sort_keys=True), message_type="json", message_id=None,
        end_to_end_id=ins.end_to_end_id, flags=0, deadline=0, signed_by="gateway", received_at=received_at or utcnow())


@pytest.fixture
def add_history(sessions: sessionmaker[Session]) -> Callable[..., list[str]]:
    """Store past payments in payment_intake: `add_history(["10.00", "12.00"], at=..., step=...)`."""
    def _add(amounts: list[str], *, debtor: str = NY, creditor: str = FR, currency: str = "EUR",
             end_to_end_id: str = "E2E-H", at: datetime | None = None, step: timedelta = timedelta(seconds=1),
             ) -> list[str]:
        start = at or utcnow() - step * (len(amounts) + 1)
        uetrs = []
        with sessions() as s, s.begin():
            for n, amount in enumerate(amounts):
                ins = instruction(debtor_agent=debtor, creditor_agent=creditor, currency=currency, amount=amount,
                                  end_to_end_id=end_to_end_id)
                s.add(intake_row(ins, start + step * n))
                uetrs.append(str(ins.uetr))
        return uetrs
    return _add




# --- a small app serving api/routes/risk.py over a stand-in gateway --------------------------
class StubSubmitter:
    def __init__(self) -> None:
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1


class StubGateway:
    """What the risk router needs of the Gateway: sessions, the chain client, and the two
    hooks the lead provides (``release_held``, ``reject_held``), recorded here."""

    started = True

    def __init__(self, sessions: sessionmaker[Session], client: LedgerClient | None = None) -> None:
        self.sessions = sessions
        self.client = client
        self.submitter = StubSubmitter()
        self.fx: Any = None  # no FX outbox in these tests
        self.calls: list[tuple[str, str]] = []
        self.risk_engine: Any = None  # the lead's Gateway holds a RiskEngine here

    def require_sessions(self) -> sessionmaker[Session]:
        return self.sessions

    def require_client(self) -> LedgerClient:
        assert self.client is not None
        return self.client

    def release_held(self, session: Session, uetr: str) -> None:
        self.calls.append(("release_held", uetr))

    def reject_held(self, session: Session, uetr: str) -> None:
        self.calls.append(("reject_held", uetr))


@dataclass
class Api:
    http: Any  # fastapi.testclient.TestClient
    gateway: StubGateway
    keys: dict[str, str]  # "operator", "auditor", BIC11 -> api key

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def build_api(sessions: sessionmaker[Session], client: LedgerClient | None = None,
              banks: dict[str, str] | None = None) -> Api:
    """An app with the risk router and the real error mapping and auth; `banks` BIC11 -> address."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import errors
    from api.deps import RateLimiter
    from api.routes import risk
    from chain_gateway.access import ParticipantProfile, issue_key

    gateway = StubGateway(sessions, client)
    app = FastAPI()
    app.state.gateway = gateway
    app.state.rate_limiter = RateLimiter(10_000, 10_000)
    errors.install(app)
    app.include_router(risk.router)
    keys: dict[str, str] = {}
    with sessions() as s, s.begin():
        for bic, address in (banks or {NY: "0x" + "11" * 20, FR: "0x" + "22" * 20}).items():
            s.add(ParticipantProfile(bic=bic, address=address, name=bic, country=bic[4:6], roles="bank",
                                     key_custody="gateway"))
            s.flush()
            keys[bic] = issue_key(s, owner_bic=bic, roles=["bank"]).api_key
        keys["operator"] = issue_key(s, owner_bic=None, roles=["operator"]).api_key
        keys["auditor"] = issue_key(s, owner_bic=None, roles=["auditor"]).api_key
    return Api(http=TestClient(app), gateway=gateway, keys=keys)
