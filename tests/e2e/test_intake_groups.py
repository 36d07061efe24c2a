"""Requests that arrive together are accepted in one group transaction (api/intake.py): each
still gets its own answer, a failing one neither stores anything nor harms the others, a
replay and a reused UETR inside one group answer as they would alone, and the bank's
signature is checked per payment."""
from __future__ import annotations

import threading
import uuid
from typing import Any

from tests.live import Live, wait_status

NY, FR, LN = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX"


def _send_together(live: Live, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """POST every body at the same moment (one thread and connection each)."""
    results: list[tuple[int, dict[str, Any]] | None] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        with live.client(live.bank(NY)) as c:
            barrier.wait()
            r = c.post("/v1/payments", json=bodies[i])
            results[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_a_group_answers_each_request_as_alone(live: Live) -> None:
    ny = live.client(live.bank(NY))
    earlier = {"uetr": str(uuid.uuid4()), "creditor_agent": FR, "currency": "EUR", "amount": "3.00"}
    assert ny.post("/v1/payments", json=earlier).status_code == 202
    reused = str(uuid.uuid4())
    good = [{"uetr": str(uuid.uuid4()), "creditor_agent": FR if i % 2 else LN, "currency": "EUR",
             "amount": f"1.{i:02d}"} for i in range(12)]
    bad = {
        "replay": earlier,
        "reused_uetr": {**earlier, "amount": "3.01"},
        "no_liquidity": {"uetr": str(uuid.uuid4()), "creditor_agent": FR, "currency": "EUR",
                         "amount": "999999999.00"},
        "unknown_agent": {"uetr": str(uuid.uuid4()), "creditor_agent": "NOPEXX99", "currency": "EUR", "amount": "1"},
        "forged_signature": {"uetr": str(uuid.uuid4()), "creditor_agent": FR, "currency": "EUR", "amount": "2.00",
                             "signature": "0x" + "11" * 64 + "1b"},
        "first_of_two": {"uetr": reused, "creditor_agent": FR, "currency": "EUR", "amount": "4.00"},
        "second_of_two": {"uetr": reused, "creditor_agent": FR, "currency": "EUR", "amount": "4.00"},
    }
    names = list(bad)
    results = _send_together(live, good + [bad[n] for n in names])
    for (status, body), sent in zip(results[:len(good)], good, strict=True):
        assert status == 202, body
        assert body["uetr"] == sent["uetr"] and body["status"] in ("RCVD", "ACSP", "ACSC")
    by_name = dict(zip(names, results[len(good):], strict=True))
    assert by_name["replay"][0] == 200 and by_name["replay"][1]["uetr"] == earlier["uetr"]
    assert by_name["reused_uetr"][0] == 409 and by_name["reused_uetr"][1]["reason_code"] == "DUPL"
    assert by_name["no_liquidity"][0] == 422 and by_name["no_liquidity"][1]["reason_code"] == "AM04"
    assert by_name["unknown_agent"][0] == 422 and by_name["unknown_agent"][1]["reason_code"] == "RC01"
    assert by_name["forged_signature"][0] == 422, by_name["forged_signature"]
    # one UETR twice at once: one accepts, the other gets the first answer again
    assert sorted([by_name["first_of_two"][0], by_name["second_of_two"][0]]) == [200, 202]
    for name in ("no_liquidity", "unknown_agent", "forged_signature"):  # a failing payment stored nothing
        assert ny.get(f"/v1/payments/{bad[name]['uetr']}").status_code == 404
    for sent in good + [earlier, bad["first_of_two"]]:
        assert wait_status(ny, sent["uetr"], {"ACSC"})["amount"] == sent["amount"]
