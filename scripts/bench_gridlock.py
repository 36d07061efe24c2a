"""Benchmark of gridlock resolution on the chain: queue on-chain, resolve through the gateway's
QueueService (mirror snapshot -> chain_gateway.lsm.solve -> settleGridlock or reserve-then-commit).

    .venv/bin/python scripts/bench_gridlock.py [--time-limit 10] [--seeds 1] [--sizes 500 1000] [--skip-solver]

Cases, each on a fresh managed anvil with the contracts deployed:

* ``ubin-ring-4x5000``: Project Ubin's 4-bank ring (``chain_gateway.lsm.ubin``; 5,000 payments,
  the starting balances of the workbook's row 3; amounts used as minor units, as the workbook
  states them). All 5,000 are queued on-chain (debtor-signed orders with the queue flag, in
  ``settleBatch`` transactions sized by gas, before the banks are funded), then resolved. The
  workbook's expected result, also the proven optimum: 4,500 payments and 31,132,000. 4,500
  payments exceed one transaction's 16,777,216 gas, so this goes through reserve-then-commit.
* ``cycle-4x1000``: 1,000 payments around 4 banks with zero balances: everything settles in one
  ``settleGridlock`` transaction; gas per settled payment.
* ``random-64x1000-seed<N>`` (on-chain): a random gridlock as Ubin's simulator builds them
  (64 banks, balances uniform in 0.8-1.4 million, payments up to 1 million), resolved on-chain;
  gas per settled payment, and whether the selection fit one transaction.
* solver only (``scripts/bench_lsm.run``, the LSM engineer's): random 64-bank gridlocks of 500
  and 1,000 payments: value settled by the MILP (time limit) and by the TARGET2-style greedy, as
  a share of the MILP's proven bound, with solver time and gap.

``run()`` returns the rows as dicts (``make bench``); ``main()`` prints two tables.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import PROJECT_ROOT
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.deploy import deploy
from chain_gateway.indexer import Indexer
from chain_gateway.ledger import ROLE_BANK, TX_GAS_CAP, LedgerClient
from chain_gateway.lsm import QueuedPayment
from chain_gateway.lsm.ubin import GridlockCase, load_ubin_ring_csv, random_gridlock
from chain_gateway.mirror.schema import upgrade_database
from chain_gateway.queue import QueueService
from chain_gateway.signing import FLAG_QUEUE, PaymentOrder, sign_order
from chain_gateway.transactions import TxSender

DATA = REPO / "tests" / "lsm" / "data"
UBIN_EXPECTED = {"count": 4_500, "value": 31_132_000}
QUEUED_ITEM_GAS = 125_000  # a queued settleBatch item writes four fresh slots and an event
CURRENCY = "SGD"


class OnChain:
    """A fresh anvil with the contracts deployed, a mirror and the queue service."""

    def __init__(self, workdir: Path, *, time_limit: float) -> None:
        self.anvil = AnvilProcess(anvil_binary(PROJECT_ROOT), port=None, state_file=None, state_interval=1)
        self.w3 = make_web3(self.anvil.url, timeout=120)
        keys = dev_accounts()
        deployment = deploy(self.w3, keys[0], [keys[1].address], name="bench", rpc_url=self.anvil.url,
                            gas_price_wei=0)
        self.client = LedgerClient(self.w3, deployment,
                                   operator=TxSender(self.w3, keys[0], gas_price_wei=0, receipt_timeout=120),
                                   relayer=TxSender(self.w3, keys[1], gas_price_wei=0, receipt_timeout=120))
        url = f"sqlite:///{workdir / 'mirror.sqlite3'}"
        upgrade_database(url)
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.indexer = Indexer(self.client, self.sessions)
        self.queue = QueueService(self.client, self.sessions, time_limit=time_limit, mirror_wait=120)
        self.accounts: dict[str, LocalAccount] = {}

    def close(self) -> None:
        self.engine.dispose()
        self.anvil.stop()

    def register(self, names: Sequence[str]) -> None:
        for n, name in enumerate(names):
            account: LocalAccount = Account.create()
            bic = (name + "XXX") if len(name) == 8 else f"BN{n // 26 % 26 + 65:c}{n % 26 + 65:c}SGSGXXX"
            self.client.register(account.address, bic, "SG", ROLE_BANK)
            self.accounts[name] = account

    def queue_all(self, payments: Sequence[QueuedPayment]) -> tuple[int, float]:
        """Queue every payment on-chain (debtors have no balance yet); (transactions, seconds)."""
        started = time.perf_counter()
        deadline = int(time.time()) + 24 * 3600
        per_tx = max(1, (TX_GAS_CAP - 200_000) // QUEUED_ITEM_GAS)
        signed = []
        for p in payments:
            debtor, creditor = self.accounts[p.debtor], self.accounts[p.creditor]
            order = PaymentOrder(uuid.uuid4().bytes, debtor.address, creditor.address, p.currency.encode(), p.amount,
                                 FLAG_QUEUE, deadline, os.urandom(32))
            signed.append((order, sign_order(debtor.key, order, self.client.deployment.chain_id,
                                             self.client.ledger)))
        self.uetr_of = {p.key: str(uuid.UUID(bytes=o.uetr)) for p, (o, _) in zip(payments, signed, strict=True)}
        relayer = self.client.relayer
        assert relayer is not None
        hashes = []
        # One transaction at a time: each takes most of anvil's 30M block, and anvil's automine
        # leaves what does not fit the block pending until the next arrival (a stall when several
        # are sent together; see scripts/bench_chain.Rig.send_mined).
        for start in range(0, len(signed), per_tx):
            part = signed[start:start + per_tx]
            data = LedgerClient.encode_batch([o for o, _ in part], [s for _, s in part])
            tx = relayer.send(self.client.ledger, data, gas=min(TX_GAS_CAP, 200_000 + QUEUED_ITEM_GAS * len(part)))
            if relayer.wait(tx)["status"] != 1:
                raise SystemExit(f"queuing transaction {tx} failed")
            hashes.append(tx)
        queued = self.client.statuses([o.uetr for o, _ in signed])
        if any(s != 1 for s in queued):
            raise SystemExit(f"{sum(s != 1 for s in queued)} payments did not queue")
        return len(hashes), time.perf_counter() - started

    def fund(self, balances: dict[tuple[str, str], int]) -> None:
        for (name, currency), amount in balances.items():
            if amount:
                self.client.fund(self.accounts[name].address, currency, amount, b"BENCH".ljust(32, b"\0"))

    def resolve(self) -> dict[str, Any]:
        self.indexer.sync_once()
        started = time.perf_counter()
        report = self.queue.resolve()
        return {**report.public(), "seconds": time.perf_counter() - started, "report": report}


def _onchain_case(case: GridlockCase, workdir: Path, *, time_limit: float, max_single: int = 1_000,
                  check: dict[str, int] | None = None) -> dict[str, Any]:
    chain = OnChain(workdir, time_limit=time_limit)
    try:
        chain.queue.max_single = max_single
        chain.register(sorted({p.debtor for p in case.payments} | {p.creditor for p in case.payments}))
        txs, seconds = chain.queue_all(case.payments)
        chain.fund(case.balances)
        result = chain.resolve()
        report = result["report"]
        settled = [uuid.UUID(u).bytes for u in report.settled_uetrs]
        statuses = chain.client.statuses(settled)
        if any(s != 2 for s in statuses):
            raise SystemExit(f"{case.name}: {sum(s != 2 for s in statuses)} reported payments are not settled")
        value = sum(report.settled_value.values())
        row = {
            "case": case.name, "where": "on-chain", "participants": len(chain.accounts),
            "payments": len(case.payments), "queue_txs": txs, "queue_seconds": round(seconds, 1),
            "settled_count": report.settled_count, "settled_value": value, "method": report.method,
            "solver_seconds": report.solver_seconds, "gap": report.gap, "optimal": report.optimal,
            "path": report.path, "settle_txs": len(report.tx_hashes), "gas_used": report.gas_used,
            "gas_per_payment": report.gas_used // report.settled_count if report.settled_count else None,
            "resolve_seconds": round(result["seconds"], 2), "rejected_reason": report.rejected_reason,
        }
        if check is not None:
            row["expected_count"], row["expected_value"] = check["count"], check["value"]
            row["matches_expected"] = (report.settled_count, value) == (check["count"], check["value"])
        return row
    finally:
        chain.close()


def _cycle_case(n: int = 1_000, banks: int = 4) -> GridlockCase:
    names = [f"CYC{i}" for i in range(banks)]
    payments = tuple(QueuedPayment(key=f"C{i:05d}", debtor=names[i % banks], creditor=names[(i + 1) % banks],
                                   currency=CURRENCY, amount=1_000 + i % 7, seq=i + 1) for i in range(n))
    # every bank pays and receives 250 payments; amounts differ slightly, so give each bank what it
    # is short of on net, no more: the whole cycle is exactly settleable, one by one nothing is.
    nets = {name: 0 for name in names}
    for p in payments:
        nets[p.debtor] -= p.amount
        nets[p.creditor] += p.amount
    balances = {(name, CURRENCY): max(0, -net) for name, net in nets.items()}
    return GridlockCase(name=f"cycle-{banks}x{n}", payments=payments, balances=balances)


def run(time_limit: float = 10.0, seeds: Sequence[int] = (1,), sizes: Sequence[int] = (500, 1000),
        onchain_random: bool = True, solver: bool = True) -> list[dict[str, Any]]:
    """Rows: the on-chain cases, then the solver-only rows of scripts/bench_lsm.py."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gridlock-") as tmp:
        ring = load_ubin_ring_csv(DATA / "ubin_ring_5000.csv", DATA / "ubin_ring_balances.csv")
        work = Path(tmp)
        (work / "ring").mkdir()
        rows.append(_onchain_case(ring, work / "ring", time_limit=time_limit, check=UBIN_EXPECTED))
        (work / "cycle").mkdir()
        rows.append(_onchain_case(_cycle_case(), work / "cycle", time_limit=time_limit))
        if onchain_random:
            for seed in seeds:
                case = random_gridlock(64, 1_000, seed)
                (work / case.name).mkdir()
                rows.append(_onchain_case(case, work / case.name, time_limit=time_limit))
    if solver:
        from scripts.bench_lsm import run as solver_rows

        for r in solver_rows(time_limit=time_limit, seeds=seeds, sizes=sizes, banks=64):
            rows.append({**r, "where": "solver"})
    return rows


def format_tables(rows: Sequence[dict[str, Any]]) -> str:
    onchain = [r for r in rows if r.get("where") == "on-chain"]
    head = (f"{'case':<24} {'n':>5} {'settled':>7} {'value':>12} {'path':<14} {'txs':>3} {'gas':>11} "
            f"{'gas/pay':>7} {'solver':<12} {'s':>5} {'gap':>6}  expected")
    out = ["On-chain gridlock resolution (QueueService on a fresh anvil)", head, "-" * len(head)]
    for r in onchain:
        expected = ""
        if "expected_value" in r:
            expected = (f"{r['expected_count']} / {r['expected_value']:,} "
                        f"{'OK' if r['matches_expected'] else 'MISMATCH'}")
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
        out.append(f"{r['case']:<24} {r['payments']:>5} {r['settled_count']:>7} {r['settled_value']:>12,} "
                   f"{r['path']:<14} {r['settle_txs']:>3} {r['gas_used']:>11,} "
                   f"{r['gas_per_payment'] or 0:>7,} {r['method']:<12} {r['solver_seconds']:>5.2f} {gap:>6}  "
                   f"{expected}")
    solver = [r for r in rows if r.get("where") == "solver"]
    if solver:
        from scripts.bench_lsm import format_table

        out += ["", "Solver only (scripts/bench_lsm.py): value as a share of the MILP's proven bound",
                format_table(solver)]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=10.0, help="MILP limit per case, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--skip-solver", action="store_true", help="only the on-chain cases")
    parser.add_argument("--skip-random", action="store_true", help="no on-chain random gridlock")
    args = parser.parse_args(argv)
    rows = run(args.time_limit, args.seeds, args.sizes, onchain_random=not args.skip_random,
               solver=not args.skip_solver)
    print(format_tables(rows))
    print("\ngas/pay: gas of every transaction of the settlement (reserve, commit, close, or the one\n"
          "settleGridlock) divided by the payments settled. The Ubin ring's expected result is the\n"
          "workbook's own (4,500 payments, 31,132,000), which an exact MILP confirms is optimal.")


if __name__ == "__main__":
    main()
