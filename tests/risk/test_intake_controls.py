"""Payments stopped by a risk control never reach the chain: intake with the engine as its
``risk_check``, the real outbox and submitter on eth-tester, and the chain as the oracle."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.audit_trail import list_entries
from chain_gateway.chain import ChainHandle
from chain_gateway.errors import GatewayError, RiskRuleRejection, ScreeningHit
from chain_gateway.instructions.model import PaymentInstruction
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.outbox import OutboxEntry, Submitter, enqueue
from chain_gateway.payments import IntakeContext, PaymentIntake, accept
from chain_gateway.risk import RiskConfig, RiskEngine, WatchList
from chain_gateway.risk.config import VelocityRule
from chain_gateway.risk.watchlist import parse_csv

SETTLED = "0x" + keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)").hex()
LIST = WatchList.of(parse_csv("type,value,list\nname,Ivan Petrovich Sidorov,OFAC-SDN\ncountry,KP,EU\n"))


@pytest.fixture
def setup(client: LedgerClient, chain: ChainHandle, deployment: Deployment, make_bank: Callable[..., Any],
          sessions: sessionmaker[Session]) -> tuple[Callable[[RiskEngine], IntakeContext], Any, Any]:
    a, b = make_bank(funds={"USD": 10**9}), make_bank(country="DE")
    addresses = {a.bic: a.address, b.bic: b.address}
    keys = {a.address: bytes(a.account.key)}

    def context(engine: RiskEngine) -> IntakeContext:
        return IntakeContext(chain_id=chain.chain_id, ledger=deployment.ledger,
                             enabled_currencies=frozenset({"USD"}), resolve=addresses.__getitem__,
                             is_active=client.is_active, balance_of=client.balance_of, gateway_key=keys.get,
                             enqueue=enqueue, risk_check=engine.risk_check)  # type: ignore[arg-type]
    return context, a, b


def _payment(a: Any, b: Any, **fields: Any) -> PaymentInstruction:
    return PaymentInstruction(uetr=uuid.uuid4(), debtor_agent=a.bic, creditor_agent=b.bic, currency="USD",
                              amount=fields.pop("amount", "10.00"), **fields)


def _submit(ctx: IntakeContext, sessions: sessionmaker[Session], payment: PaymentInstruction) -> GatewayError | None:
    """What the API does: accept and commit, or roll back and answer the rejection."""
    with sessions() as s:
        try:
            accept(ctx, s, payment)
        except GatewayError as exc:
            s.rollback()
            return exc
        s.commit()
    return None


def _settled_uetrs(client: LedgerClient) -> set[str]:
    logs = client.w3.eth.get_logs({"address": client.ledger, "fromBlock": client.deployment.deploy_block,
                                   "toBlock": "latest", "topics": [SETTLED]})
    return {str(uuid.UUID(bytes=bytes(log["topics"][1])[:16])) for log in logs}


def _run_submitter(sessions: sessionmaker[Session], client: LedgerClient) -> None:
    submitter = Submitter(sessions, client)
    submitter.start()
    try:
        assert submitter.wait_idle(30)
    finally:
        submitter.stop(10)


def test_screened_payments_never_reach_the_chain(setup: Any, client: LedgerClient,
                                                 sessions: sessionmaker[Session]) -> None:
    context, a, b = setup
    ctx = context(RiskEngine(watchlist=LIST))
    clean = _payment(a, b, remittance_info="Invoice 2026-001")
    stopped = [
        _payment(a, b, remittance_info="on behalf of IVAN-PETROVICH SIDOROV"),
        _payment(a, b, creditor={"name": "Trading Co", "country": "KP"}),
        _payment(a, b, debtor={"name": "ivan petrovich sidorov"}),
    ]
    assert _submit(ctx, sessions, clean) is None
    for payment in stopped:
        err = _submit(ctx, sessions, payment)
        assert isinstance(err, ScreeningHit) and err.reason_code == "RR04"
    _run_submitter(sessions, client)

    settled = _settled_uetrs(client)
    assert str(clean.uetr) in settled
    for payment in stopped:
        assert str(payment.uetr) not in settled
        assert client.payment_status(payment.uetr.bytes) == 0  # the chain never saw the UETR
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEntry)) == 1
        assert s.scalar(select(func.count()).select_from(PaymentIntake)) == 1
        decisions = list_entries(s, action="risk.decision")[0]
    assert len(decisions) == 3 and {d.outcome for d in decisions} == {"reject"}


def test_payments_rejected_by_a_rule_never_reach_the_chain(setup: Any, client: LedgerClient,
                                                          sessions: sessionmaker[Session]) -> None:
    context, a, b = setup
    ctx = context(RiskEngine(RiskConfig(velocity=VelocityRule(enabled=True, window_seconds=3600, max_count=2,
                                                              action="reject"))))
    payments = [_payment(a, b) for _ in range(4)]
    results = [_submit(ctx, sessions, p) for p in payments]
    assert results[:2] == [None, None]
    assert all(isinstance(r, RiskRuleRejection) and r.reason_code == "SL15" for r in results[2:])
    _run_submitter(sessions, client)
    settled = _settled_uetrs(client)
    assert {str(p.uetr) for p in payments[:2]} <= settled
    for p in payments[2:]:
        assert str(p.uetr) not in settled and client.payment_status(p.uetr.bytes) == 0
