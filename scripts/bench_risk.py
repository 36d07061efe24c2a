"""Benchmark of the pre-submission risk checks: what they add per payment.

    .venv/bin/python scripts/bench_risk.py [--entries 10000] [--payments 5000] [--history 20000]

Prints p50 / p95 / p99 (milliseconds) of
1. screening alone against a watch list of `--entries` entries (names, BICs, countries);
2. the whole engine (screening + duplicate, velocity and outlier rules, all enabled) on a
   SQLite file holding `--history` past payments of 50 debtors, as ``RiskEngine.evaluate``
   runs inside intake.
The claim to check: the risk checks add < 1 ms per payment at p95 with 10,000 entries.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import chain_gateway.audit_trail
import chain_gateway.models_all  # noqa: F401
from chain_gateway.db import Base, make_engine, make_session_factory, utcnow
from chain_gateway.instructions.model import Party, PaymentInstruction
from chain_gateway.payments import PaymentIntake
from chain_gateway.risk import RiskConfig, RiskEngine, WatchList
from chain_gateway.risk.config import DuplicateRule, OutlierRule, VelocityRule
from chain_gateway.risk.watchlist import WatchEntry, normalise_name

SYLLABLES = ["al", "an", "bar", "bek", "dan", "dor", "el", "far", "gan", "ha", "ib", "ka", "lev", "mar", "mo", "nad",
             "or", "pet", "ra", "sa", "sid", "tar", "ul", "vo", "ya", "zar", "ko", "ri", "su", "te"]
LISTED_COUNTRIES = ["KP", "IR", "SY", "CU", "BY", "MM", "VE", "SD", "SS", "LY", "SO", "YE", "ZW", "NI", "ML", "CF",
                    "CD", "IQ", "LB", "AF"]
CLEAN_COUNTRIES = ["US", "DE", "GB", "JP", "FR", "CH", "SG", "NL", "CA", "AU"]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def make_list(n: int, rng: random.Random) -> WatchList:
    entries: list[WatchEntry] = []
    for i, country in enumerate(LISTED_COUNTRIES[:min(len(LISTED_COUNTRIES), n // 100 or 1)]):
        entries.append(WatchEntry("country", country, "BENCH", "", country, i + 1))
    while len(entries) < n:
        line = len(entries) + 1
        if len(entries) % 4 == 0:
            bic = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + rng.choice(LISTED_COUNTRIES) \
                + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(2))
            entries.append(WatchEntry("bic", bic, "BENCH", "", bic, line))
        else:
            name = " ".join(word(rng) for _ in range(rng.randint(2, 4)))
            entries.append(WatchEntry("name", name, "BENCH", "", normalise_name(name), line))
    return WatchList.of(entries[:n], source="bench")


def bic(rng: random.Random, country: str) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + country + "2L"


def make_payments(n: int, debtors: list[str], creditors: list[str], wl: WatchList,
                  rng: random.Random) -> list[PaymentInstruction]:
    names = [e.value for e in wl.entries if e.type == "name"]
    out = []
    for i in range(n):
        hit = rng.random() < 0.01
        creditor_name = rng.choice(names) if hit else " ".join(word(rng) for _ in range(3)) + " Ltd"
        out.append(PaymentInstruction(
            uetr=uuid.uuid4(), debtor_agent=rng.choice(debtors), creditor_agent=rng.choice(creditors),
            currency="USD", amount=Decimal(f"{rng.randint(100, 99_999)}.{rng.randint(0, 99):02d}"),
            end_to_end_id=f"E2E-{i}", remittance_info=f"Invoice {i} {word(rng)} {word(rng)} services rendered",
            debtor=Party(name=" ".join(word(rng) for _ in range(3)), country=rng.choice(CLEAN_COUNTRIES)),
            creditor=Party(name=creditor_name, country=rng.choice(CLEAN_COUNTRIES))))
    return out


def percentiles(samples_ns: list[int]) -> str:
    ms = sorted(s / 1e6 for s in samples_ns)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {q[49]:.3f} ms   p95 {q[94]:.3f} ms   p99 {q[98]:.3f} ms   max {ms[-1]:.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--payments", type=int, default=5_000)
    parser.add_argument("--history", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    wl = make_list(args.entries, rng)
    build_ms = (time.perf_counter() - started) * 1000
    debtors = [bic(rng, rng.choice(CLEAN_COUNTRIES)) for _ in range(50)]
    creditors = [bic(rng, rng.choice(CLEAN_COUNTRIES)) for _ in range(50)]
    payments = make_payments(args.payments, debtors, creditors, wl, rng)
    print(f"watch list: {len(wl)} entries {wl.summary()['by_type']} indexed in {build_ms:.0f} ms; "
          f"{len(payments)} payments, ~1% naming a listed party")

    for p in payments[:200]:
        wl.screen(p)
    samples, hits = [], 0
    for p in payments:
        t0 = time.perf_counter_ns()
        found = wl.screen(p)
        samples.append(time.perf_counter_ns() - t0)
        hits += bool(found)
    print(f"screening only                 : {percentiles(samples)}   ({hits} hits)")

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        Base.metadata.create_all(engine)
        sessions = make_session_factory(engine)
        now = utcnow()
        with sessions() as s, s.begin():
            rows = []
            for i in range(args.history):
                minor = rng.randint(10_000, 9_999_999)
                rows.append(PaymentIntake(
                    uetr=str(uuid.uuid4()), debtor_agent=debtors[i % len(debtors)],
                    creditor_agent=rng.choice(creditors), currency="USD", amount=Decimal(minor) / 100,
                    amount_minor=Decimal(minor), instruction_hash="0x", canonical_json="{}", message_type="json",
                    end_to_end_id=f"H-{i}", flags=0, deadline=0, signed_by="gateway",
                    received_at=now - timedelta(seconds=(args.history - i) * 2)))
            s.add_all(rows)
        config = RiskConfig(velocity=VelocityRule(enabled=True, window_seconds=3600, max_count=10_000,
                                                  max_value={"USD": Decimal(1000000000)}),
                            duplicate=DuplicateRule(enabled=True, window_seconds=86_400),
                            outlier=OutlierRule(enabled=True, history=20, k=Decimal(3)))
        risk = RiskEngine(config, watchlist=wl)
        for label, ddl in (("screening + 3 rules (SQLite)   ", None),
                           ("  + index (debtor, currency, at)",
                            "CREATE INDEX ix_bench_intake ON payment_intake (debtor_agent, currency, received_at)")):
            if ddl:
                with engine.begin() as conn:
                    conn.exec_driver_sql(ddl)
            samples, actions = [], {"pass": 0, "hold": 0, "reject": 0}
            with sessions() as s:
                for p in payments[:200]:
                    risk.evaluate(s, p)
                for p in payments:
                    t0 = time.perf_counter_ns()
                    decision = risk.evaluate(s, p)
                    samples.append(time.perf_counter_ns() - t0)
                    actions[decision.action] += 1
            print(f"{label}: {percentiles(samples)}   {actions}")
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
