"""FX through the gateway: quotes published over HTTP (signed by the gateway with the provider's
key, or by the provider itself), listed for banks with their remaining capacity read from the
chain, cross-currency payments accepted against a quote, sent by the FX submitter, settled
payment-versus-payment and mirrored with their four movements."""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from chain_gateway.errors import Expired, InsufficientFunds, InvalidSignature
from chain_gateway.fx import FxService, QuoteCapacityExhausted, QuoteRejected
from chain_gateway.instructions.request import instruction_from_request, parse_payment_request
from chain_gateway.ledger import ROLE_BANK, ROLE_FX_PROVIDER

RATE_USD_JPY = "1513700000000000000"  # 1.5137 JPY minor units per USD minor unit (1 USD = 151.37 JPY)


@pytest.fixture
def fx_gw(queue_env, fx_address):
    """The queue test gateway with an FX service, an FX provider P (key held by the gateway) and
    banks A (USD) and B."""
    e = queue_env
    service = FxService(e.client, e.gateway.sessions, fx_address)
    e.gateway.fx = service
    e.bank("A", {"USD": 10_000_000})
    e.bank("B")
    from chain_gateway.access import ParticipantProfile, issue_key
    p = e.make_bank(country="SG", funds={"JPY": 50_000_000, "USD": 1}, roles=ROLE_BANK | ROLE_FX_PROVIDER)
    e.gateway.keystore.add(p.account)
    e.banks["P"] = p
    with e.gateway.sessions() as s, s.begin():
        s.add(ParticipantProfile(bic=p.bic, address=p.address, name="P", country="SG", roles="bank,fx_provider",
                                 key_custody="gateway"))
        s.flush()
        e.keys["P"] = issue_key(s, owner_bic=p.bic, roles=["bank", "fx_provider"]).api_key
    yield e
    service.stop()


def _publish(e, **overrides):
    body = {"debit_currency": "USD", "credit_currency": "JPY", "rate": RATE_USD_JPY, "capacity": "5000000",
            "expires_in_seconds": 600, **overrides}
    return e.http.post("/v1/fx/quotes", json=body, headers=e.as_("P"))


def _fx_payment(e, quote_id: str, amount: str = "1000000", *, signature: str | None = None, uetr=None):
    body = {"creditor_agent": e.banks["B"].bic, "currency": "JPY", "amount": amount,
            "fx": {"quote_id": quote_id, "debit_currency": "USD"}}
    if uetr:
        body["uetr"] = uetr
    req = parse_payment_request(json.dumps(body))
    return instruction_from_request(req, e.banks["A"].bic, directory=e.gateway.directory)


def test_quote_published_listed_and_paid_against(fx_gw):
    e = fx_gw
    r = _publish(e)
    assert r.status_code == 201, r.text
    quote = r.json()
    assert (quote["signed_by"], quote["remaining"], quote["capacity"], quote["rate"]) == (
        "gateway", "5000000", "5000000", RATE_USD_JPY)
    assert quote["rate_major"] == "151.37" and len(quote["quote_id"]) == 64
    listed = e.http.get("/v1/fx/quotes", headers=e.as_("A")).json()["items"]
    assert [q["quote_id"] for q in listed] == [quote["quote_id"]]

    instruction = _fx_payment(e, quote["quote_id"])
    with e.gateway.sessions() as s:
        accepted = e.gateway.fx.accept(e.gateway.intake_context(), s, instruction)
        s.commit()
    assert accepted.created
    e.gateway.fx.run_until_idle()
    e.sync()
    a, b, p = (e.banks[n].address for n in "ABP")
    # 1,000,000 JPY at 1.5137 JPY per cent: ceil(1e6 / 1.5137) = 660,633 cents
    assert (e.client.balance_of(a, "USD"), e.client.balance_of(p, "USD")) == (10_000_000 - 660_633, 660_634)
    assert (e.client.balance_of(p, "JPY"), e.client.balance_of(b, "JPY")) == (49_000_000, 1_000_000)
    view = e.http.get(f"/v1/payments/{instruction.uetr}", headers=e.as_("A")).json()
    assert (view["status"], view["currency"], view["amount"]) == ("ACSC", "JPY", "1000000")
    assert e.http.get("/v1/fx/quotes", headers=e.as_("A")).json()["items"][0]["remaining"] == "4000000"


def test_quote_signed_by_the_provider_itself(fx_gw):
    e = fx_gw
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).replace(microsecond=0).isoformat()
    body = {"debit_currency": "USD", "credit_currency": "JPY", "rate": RATE_USD_JPY, "capacity": "100000",
            "expiry": expiry}
    prepared = e.http.post("/v1/fx/quotes/prepare", json=body, headers=e.as_("P")).json()
    signed = Account.sign_message(encode_typed_data(full_message=prepared["typed_data"]), e.banks["P"].account.key)
    signature = "0x" + bytes(signed.signature).hex()
    forged = "0x" + bytes(Account.sign_message(encode_typed_data(full_message=prepared["typed_data"]),
                                               Account.create().key).signature).hex()
    r = e.http.post("/v1/fx/quotes", json={**body, "quote_id": prepared["quote_id"], "signature": forged},
                    headers=e.as_("P"))
    assert r.status_code == 422 and r.json()["reason_code"] == "FF01"
    r = e.http.post("/v1/fx/quotes", json={**body, "quote_id": prepared["quote_id"], "signature": signature},
                    headers=e.as_("P"))
    assert r.status_code == 201 and r.json()["signed_by"] == "provider"
    assert r.json()["signature"] == signature
    # the same id again: taken
    r = e.http.post("/v1/fx/quotes", json={**body, "quote_id": prepared["quote_id"], "signature": signature},
                    headers=e.as_("P"))
    assert r.status_code == 409


def test_quote_api_roles_and_validation(fx_gw):
    e = fx_gw
    body = {"debit_currency": "USD", "credit_currency": "JPY", "rate": RATE_USD_JPY, "capacity": "10",
            "expires_in_seconds": 60}
    assert e.http.post("/v1/fx/quotes", json=body, headers=e.as_("A")).status_code == 403
    assert e.http.get("/v1/fx/quotes").status_code == 401
    assert _publish(e, rate="1.5").status_code == 422  # the rate is the scaled integer
    assert _publish(e, capacity="1.5").status_code == 422  # JPY has no decimals
    assert _publish(e, credit_currency="USD").status_code == 422
    assert _publish(e, expires_in_seconds=None, expiry=None).status_code == 400


def test_expired_and_exhausted_quotes_are_not_listed_nor_accepted(fx_gw):
    e = fx_gw
    short = _publish(e, expires_in_seconds=1, capacity="100").json()
    small = _publish(e, capacity="100").json()
    time.sleep(1.2)
    listed = {q["quote_id"] for q in e.http.get("/v1/fx/quotes", headers=e.as_("A")).json()["items"]}
    assert listed == {small["quote_id"]}
    ctx = e.gateway.intake_context()
    with e.gateway.sessions() as s:
        with pytest.raises(Expired):
            e.gateway.fx.accept(ctx, s, _fx_payment(e, short["quote_id"], "50"))
        with pytest.raises(QuoteCapacityExhausted):
            e.gateway.fx.accept(ctx, s, _fx_payment(e, small["quote_id"], "101"))
        with pytest.raises(QuoteRejected):
            e.gateway.fx.accept(ctx, s, _fx_payment(e, "ab" * 32, "1"))
        e.gateway.fx.accept(ctx, s, _fx_payment(e, small["quote_id"], "100"))
        s.commit()
    e.gateway.fx.run_until_idle()
    assert e.http.get("/v1/fx/quotes", headers=e.as_("A")).json()["items"] == []


def test_fx_payment_signed_by_the_bank_itself(fx_gw):
    e = fx_gw
    quote = _publish(e).json()
    instruction = _fx_payment(e, quote["quote_id"], "300")
    ctx = e.gateway.intake_context()
    with e.gateway.sessions() as s:
        prepared = e.gateway.fx.prepare(ctx, s, instruction)
    assert prepared["debit_currency"] == "USD" and prepared["debit_amount"] == "1.99"  # ceil(300/1.5137) cents
    sig = bytes(Account.sign_message(encode_typed_data(full_message=prepared["typed_data"]),
                                     Account.create().key).signature)
    with e.gateway.sessions() as s, pytest.raises(InvalidSignature):
        e.gateway.fx.accept(ctx, s, instruction, signature=sig, deadline=prepared["deadline"])
    sig = bytes(Account.sign_message(encode_typed_data(full_message=prepared["typed_data"]),
                                     e.banks["A"].account.key).signature)
    with e.gateway.sessions() as s:
        e.gateway.fx.accept(ctx, s, instruction, signature=sig, deadline=prepared["deadline"])
        s.commit()
    e.gateway.fx.run_until_idle()
    assert e.client.payment_status(uuid.UUID(str(instruction.uetr)).bytes) == 2
    assert e.client.balance_of(e.banks["B"].address, "JPY") == 300


def test_fx_payment_without_the_debtors_liquidity_is_refused_at_intake(fx_gw):
    e = fx_gw
    quote = _publish(e, capacity="50000000").json()
    with e.gateway.sessions() as s:  # 20,000,000 JPY cost 132,126.58 USD; A has 100,000.00
        with pytest.raises(InsufficientFunds):
            e.gateway.fx.accept(e.gateway.intake_context(), s, _fx_payment(e, quote["quote_id"], "20000000"))
