"""Property-based fuzzing of the whole OpenAPI with schemathesis, over real HTTP: whatever
it sends, the gateway never answers 5xx. Runs with a bank's and an auditor's key (the
operator's would suspend the shared demo banks under the other tests' feet).

schemathesis' own pytest loader (`from_fixture`) does not work with this pytest, so each
operation's hypothesis strategy is driven directly.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.live import Live

EXAMPLES_PER_OPERATION = 12


@pytest.mark.parametrize("role", ["bank", "auditor"])
def test_no_server_errors(live: Live, role: str) -> None:
    key = live.bank("DEMOJPJTXXX") if role == "bank" else live.auditor
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=live.url, headers={"Authorization": f"Bearer {key}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        run()
    assert operations >= 15
    assert not failures, "\n".join(failures[:20])
