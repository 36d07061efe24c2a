"""Queue over HTTP: payments queued through POST /v1/payments, managed by their debtor
(DELETE, /hold, /release, /priority), listed (GET /v1/queue) and resolved by the operator
(POST /v1/queue/resolve). Others get 404, wrong roles 403, a payment not queued 409."""
from __future__ import annotations

import uuid

import pytest

from tests.queue.conftest import FUND_REF


def _status(env, uetr: str) -> int:
    return env.status(uuid.UUID(uetr).bytes)


def test_api_classic_cycle_resolves(queue_env):
    e = queue_env
    for name in "ABC":
        e.bank(name)
    cycle = [e.pay("A", "B", "1.00"), e.pay("B", "C", "1.00"), e.pay("C", "A", "1.00")]
    assert [_status(e, u) for u in cycle] == [1, 1, 1]
    listed = e.http.get("/v1/queue", headers=e.as_("operator")).json()["items"]
    assert [i["uetr"] for i in listed] == cycle
    assert {i["status"] for i in listed} == {"PDNG"}
    r = e.http.post("/v1/queue/resolve", json={"time_limit_seconds": 5}, headers=e.as_("operator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["proposed"], body["settled_count"], body["settled_value"], body["path"]) == (
        3, 3, {"USD": "3.00"}, "single")
    assert body["method"] and body["solver_seconds"] >= 0 and body["gap"] == 0 and len(body["tx_hashes"]) == 1
    e.sync()
    assert e.http.get("/v1/queue", headers=e.as_("operator")).json()["items"] == []
    assert e.http.get(f"/v1/payments/{cycle[0]}", headers=e.as_("A")).json()["status"] == "ACSC"


def test_api_resolve_is_for_the_operator(queue_env):
    e = queue_env
    e.bank("A")
    for who in ("A", "auditor"):
        r = e.http.post("/v1/queue/resolve", headers=e.as_(who))
        assert r.status_code == 403 and r.json()["reason_code"] == "AG01"
    assert e.http.post("/v1/queue/resolve").status_code == 401


def test_api_queue_views_by_role_and_order(queue_env):
    e = queue_env
    e.bank("A"), e.bank("B"), e.bank("C")
    first = e.pay("A", "B", "5.00")
    second = e.pay("C", "A", "6.00")
    third = e.pay("B", "C", "7.00", urgent=True)
    everyone = [i["uetr"] for i in e.http.get("/v1/queue", headers=e.as_("auditor")).json()["items"]]
    assert everyone == [third, first, second]  # urgent first, then first in first out
    mine = e.http.get("/v1/queue", headers=e.as_("A")).json()["items"]
    assert [i["uetr"] for i in mine] == [first, second]  # as debtor or creditor
    assert mine[0] == {**mine[0], "debtor_agent": e.banks["A"].bic, "creditor_agent": e.banks["B"].bic,
                       "currency": "USD", "amount": "5.00", "priority": "normal", "held": False}
    assert [i["uetr"] for i in e.http.get("/v1/queue?currency=EUR", headers=e.as_("operator")).json()["items"]] == []


def test_api_cancel_by_the_debtor_only(queue_env):
    e = queue_env
    e.bank("A"), e.bank("B"), e.bank("C")
    u = e.pay("A", "B", "9.00")
    for who in ("B", "C"):  # the creditor and a stranger bank: not theirs
        assert e.http.delete(f"/v1/payments/{u}", headers=e.as_(who)).status_code == 404
    for who in ("auditor", "operator"):  # right key, wrong role
        assert e.http.delete(f"/v1/payments/{u}", headers=e.as_(who)).status_code == 403
    assert e.http.delete(f"/v1/payments/{uuid.uuid4()}", headers=e.as_("A")).status_code == 404
    assert e.http.delete("/v1/payments/not-a-uetr", headers=e.as_("A")).status_code == 404
    r = e.http.delete(f"/v1/payments/{u}", headers=e.as_("A"))
    assert r.status_code == 200 and r.json()["status"] == "CANC"
    assert _status(e, u) == 3
    e.sync()
    assert e.http.get(f"/v1/payments/{u}", headers=e.as_("A")).json()["status"] == "CANC"
    again = e.http.delete(f"/v1/payments/{u}", headers=e.as_("A"))
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_api_hold_release_and_priority(queue_env):
    e = queue_env
    a, _ = e.bank("A"), e.bank("B")
    u = e.pay("A", "B", "4.00")
    r = e.http.post(f"/v1/payments/{u}/hold", headers=e.as_("A"))
    assert r.status_code == 200 and r.json()["held"] is True
    assert e.client.queued_payment(uuid.UUID(u).bytes)["held"] is True
    e.client.fund(a.address, "USD", 400, FUND_REF)
    e.sync()
    assert e.queue.release_pending() == [] and _status(e, u) == 1  # held: not released
    r = e.http.post(f"/v1/payments/{u}/priority", json={"urgent": True}, headers=e.as_("A"))
    assert r.status_code == 200 and r.json()["priority"] == "urgent"
    assert e.client.queued_payment(uuid.UUID(u).bytes)["flags"] & 2
    assert e.http.post(f"/v1/payments/{u}/priority", json={"urgent": "yes"}, headers=e.as_("A")).status_code in (
        400, 422)
    assert e.http.post(f"/v1/payments/{u}/priority", json={"urgent": False}, headers=e.as_("B")).status_code == 404
    r = e.http.post(f"/v1/payments/{u}/release", headers=e.as_("A"))
    assert r.status_code == 200 and r.json()["held"] is False
    assert e.queue.release_pending() == [u]  # the release asked for the debtor's queue to be looked at
    assert _status(e, u) == 2
    for action in ("hold", "release"):
        assert e.http.post(f"/v1/payments/{u}/{action}", headers=e.as_("A")).status_code == 409
    assert e.http.post(f"/v1/payments/{u}/priority", json={"urgent": True}, headers=e.as_("A")).status_code == 409


@pytest.mark.parametrize("path", ["hold", "release"])
def test_api_queue_management_of_a_settled_payment_is_409(queue_env, path):
    e = queue_env
    e.bank("A", {"USD": 1_000}), e.bank("B")
    u = e.pay("A", "B", "1.00", queue=False)
    assert _status(e, u) == 2
    r = e.http.post(f"/v1/payments/{u}/{path}", headers=e.as_("A"))
    assert r.status_code == 409 and r.json()["status"] == 409
