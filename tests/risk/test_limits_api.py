"""PUT /v1/participants/{bic}/limits: the operator sets caps and bilateral caps; the bank itself
tightens its own limits and is refused (422 AM02) past the caps, or (403 AG01) for bilateral
caps; every change is on-chain and in the audit trail."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.audit_trail import list_entries
from chain_gateway.ledger import LedgerClient

from .conftest import Api, build_api


@pytest.fixture
def banks(make_bank: Callable[..., Any]) -> tuple[Any, Any, Any]:
    return make_bank(), make_bank(country="DE"), make_bank(country="GB")


@pytest.fixture
def api(sessions: sessionmaker[Session], client: LedgerClient, banks: tuple[Any, Any, Any]) -> Api:
    return build_api(sessions, client, {b.bic: b.address for b in banks})


def put(api: Api, who: str, bic: str, **body: Any) -> Any:
    return api.http.put(f"/v1/participants/{bic}/limits", json=body, headers=api.as_(who))


def test_the_operator_sets_caps_and_bilateral_caps(api: Api, client: LedgerClient, banks: Any,
                                                   sessions: sessionmaker[Session]) -> None:
    a, b, _ = banks
    r = put(api, "operator", a.bic[:8], currency="USD", max_per_payment="1000.00", max_daily_outflow="5000.50",
            bilateral={b.bic[:8]: "300.00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["caps"] == {"max_per_payment": "1000.00", "max_daily_outflow": "5000.50"}
    assert body["own"] == {"max_per_payment": None, "max_daily_outflow": None}
    assert body["effective"] == body["caps"] and body["bilateral"] == {b.bic: "300.00"}
    assert len(body["tx_hashes"]) == 2
    assert client.limits_of(a.address, "USD") == (100_000, 500_050)

    r = put(api, "operator", a.bic, currency="USD", max_daily_outflow="0")  # per payment unchanged, daily removed
    assert r.status_code == 200 and r.json()["caps"] == {"max_per_payment": "1000.00", "max_daily_outflow": None}
    with sessions() as s:
        rows = list_entries(s, action="limits.set_caps")[0]
    assert len(rows) == 2 and rows[0].actor.startswith("operator:") and rows[0].tx_hash == body["tx_hashes"][-1]


def test_a_bank_tightens_its_own_limits_up_to_the_cap_and_no_further(api: Api, client: LedgerClient,
                                                                     banks: Any) -> None:
    a, _, _ = banks
    client.set_limits(a.address, "USD", 100_000, 500_000)  # caps 1000.00 / 5000.00
    r = put(api, a.bic, a.bic, currency="USD", max_per_payment="999.99", max_daily_outflow="5000.00")  # under / at
    assert r.status_code == 200, r.text
    assert r.json()["own"] == {"max_per_payment": "999.99", "max_daily_outflow": "5000.00"}
    assert r.json()["effective"] == {"max_per_payment": "999.99", "max_daily_outflow": "5000.00"}
    assert put(api, a.bic, a.bic, currency="USD", max_per_payment="1000.00").status_code == 200  # at the cap

    r = put(api, a.bic, a.bic, currency="USD", max_per_payment="1000.01")  # just over
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["reason_code"] == "AM02" and problem["cap"] == "1000.00" and problem["requested"] == "1000.01"
    r = put(api, a.bic, a.bic, currency="USD", max_daily_outflow="5000.01")
    assert r.status_code == 422 and r.json()["limit"] == "max_daily_outflow"
    assert client.own_limits_of(a.address, "USD") == (100_000, 500_000)  # nothing changed on-chain
    with api.gateway.sessions() as s:
        refused = [e for e in list_entries(s, action="limits.set_own")[0] if e.outcome != "ok"]
    assert [e.outcome for e in refused] == ["error LimitExceeded AM02"] * 2 and refused[0].actor.startswith(a.bic)

    r = put(api, a.bic, a.bic, currency="USD", max_per_payment="0", max_daily_outflow="0")  # drop own limits
    assert r.status_code == 200 and r.json()["effective"] == {"max_per_payment": "1000.00",
                                                              "max_daily_outflow": "5000.00"}


def test_without_a_cap_a_bank_sets_any_own_limit(api: Api, client: LedgerClient, banks: Any) -> None:
    a, _, _ = banks
    r = put(api, a.bic, a.bic, currency="JPY", max_per_payment="1000000")
    assert r.status_code == 200 and r.json()["own"]["max_per_payment"] == "1000000"
    assert client.own_limits_of(a.address, "JPY") == (1_000_000, 0)


def test_bilateral_caps_are_the_operators(api: Api, banks: Any) -> None:
    a, b, _ = banks
    r = put(api, a.bic, a.bic, currency="USD", max_per_payment="1.00", bilateral={b.bic: "1.00"})
    assert r.status_code == 403 and r.json()["reason_code"] == "AG01"


@pytest.mark.parametrize("who", ["other-bank", "auditor"])
def test_only_the_operator_or_the_bank_itself(api: Api, banks: Any, who: str) -> None:
    a, b, _ = banks
    key = b.bic if who == "other-bank" else "auditor"
    r = put(api, key, a.bic, currency="USD", max_per_payment="1.00")
    assert r.status_code == 403 and r.json()["reason_code"] == "AG01"


@pytest.mark.parametrize("body,status,code", [
    ({"currency": "USD", "max_per_payment": "-1"}, 422, "AM12"),
    ({"currency": "USD", "max_per_payment": "1.001"}, 422, "AM12"),
    ({"currency": "USD", "max_per_payment": "1e5"}, 422, "AM12"),
    ({"currency": "USD", "max_per_payment": 100}, 400, "FF01"),
    ({"currency": "XXX", "max_per_payment": "1"}, 422, "AM03"),
    ({"currency": "USD", "bilateral": {"NOPEUS33": "1"}}, 422, "RC01"),
    ({"currency": "USD", "bilateral": {"bad bic": "1"}}, 422, "RC01"),
    ({"currency": "USD", "extra": "1"}, 400, "FF01"),
])
def test_bad_bodies_are_refused_with_no_effect(api: Api, client: LedgerClient, banks: Any, body: dict[str, Any],
                                               status: int, code: str) -> None:
    a, _, _ = banks
    r = put(api, "operator", a.bic, **body)
    assert (r.status_code, r.json().get("reason_code")) == (status, code), r.text
    assert client.limits_of(a.address, "USD") == (0, 0)


def test_unknown_participant_is_not_found(api: Api) -> None:
    assert put(api, "operator", "NOPEUS33", currency="USD", max_per_payment="1").status_code == 404
