"""schemathesis over the whole OpenAPI with the OPERATOR's key, on a gateway of its own (the
operator may suspend, defund, pause: nothing another suite relies on may be touched).

Whatever it sends: never a 5xx, and every 4xx is problem+json. (The bank's and the
auditor's keys are fuzzed by tests/e2e/test_schemathesis.py.) The ledger is resumed if a
generated call paused it, so later operations meet a running ledger too.
"""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.live import Live, start_live
from tests.reliability.harness import report

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with start_live(tmp_path_factory.mktemp("fuzzed")) as live:
        yield live


def _content_type(response: object) -> str:
    value = getattr(response, "headers", {}).get("content-type", "")
    return str(value[0] if isinstance(value, list) and value else value or "")


def test_operator_key_never_gets_a_server_error(fuzzed: Live) -> None:
    live = fuzzed
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    failures: list[str] = []
    operations = calls = 0
    headers = {"Authorization": f"Bearer {live.operator}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=live.url, headers=headers)
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where} -> {response.status_code}: {response.text[:200]}")
            elif response.status_code >= 400 and not _content_type(response).startswith("application/problem+json"):
                failures.append(f"{where} -> {response.status_code} not problem+json: {response.text[:120]}")
            if case.formatted_path.endswith("/system/pause") and response.status_code == 200:
                httpx.post(live.url + "/v1/system/resume", headers=headers, timeout=30)

        run()
    report(f"schemathesis (operator key): {operations} operations, {calls} calls, {len(failures)} failures")
    assert operations >= 15
    assert not failures, "\n".join(failures[:20])
