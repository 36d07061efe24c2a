"""Submit -> ACSC latency for one client on an idle gateway (managed anvil, SQLite), over HTTP
with `Prefer: wait`: the figure issue 4 asks for. Run from the project root:

    .venv/bin/python -m scripts.bench_latency [N]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.live import start_live


def run(n: int = 300) -> dict[str, float]:
    with start_live(Path(tempfile.mkdtemp(prefix="bench-latency-"))) as live:
        client = live.client(live.bank("DEMOUS33XXX"), Prefer="wait=10")
        for _ in range(10):  # warm-up: connections, caches
            client.post("/v1/payments", json={"creditor_agent": "DEMODEFF", "currency": "EUR", "amount": "1.00"})
        latencies = []
        for _ in range(n):
            start = time.perf_counter()
            r = client.post("/v1/payments", json={"uetr": str(uuid.uuid4()), "creditor_agent": "DEMODEFF",
                                                  "currency": "EUR", "amount": "1.00"})
            latencies.append((time.perf_counter() - start) * 1000)
            if r.status_code != 201 or r.json()["status"] != "ACSC":
                raise SystemExit(f"payment not final in the answer: {r.status_code} {r.text}")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"payments": n, "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": statistics.mean(latencies)}


if __name__ == "__main__":
    r = run(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
    print(f"{r['payments']} payments, 1 client, submit -> ACSC: p50 {r['p50_ms']:.1f} ms, "
          f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms (mean {r['mean_ms']:.1f} ms)")
