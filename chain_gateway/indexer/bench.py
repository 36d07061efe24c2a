"""Indexer throughput: ~N events on a fresh anvil, then one full index into a fresh database.

    python -m chain_gateway.indexer.bench --events 10000                      # SQLite + private PostgreSQL
    python -m chain_gateway.indexer.bench --events 10000 --postgres-url URL   # an existing server

The events are PaymentSettled logs of signed orders settled with ``settleBatch`` in batches of
~100 (plus the registrations and fundings before them). The timed part is ``sync_once`` from
the deployment block to the head: eth_getLogs, decoding, and the database writes of every
range (one transaction per range), on a database already migrated.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import PROJECT_ROOT
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.deploy import deploy
from chain_gateway.indexer.core import Indexer, SyncReport
from chain_gateway.ledger import ROLE_BANK, LedgerClient
from chain_gateway.mirror.schema import upgrade_database
from chain_gateway.signing import PaymentOrder, sign_order
from chain_gateway.transactions import TxSender


@dataclass
class BenchChain:
    anvil: AnvilProcess
    client: LedgerClient
    payments: int

    def close(self) -> None:
        self.anvil.stop()


def make_bench_chain(n_events: int = 10_000, *, batch: int = 100, banks: int = 20,
                     project_root: Path = PROJECT_ROOT) -> BenchChain:
    """A fresh anvil with the contracts deployed and ~`n_events` ledger events on it."""
    anvil = AnvilProcess(anvil_binary(project_root), port=None, state_file=None, state_interval=1)
    try:
        w3 = make_web3(anvil.url, timeout=60)
        keys = dev_accounts()
        deployment = deploy(w3, keys[0], [keys[1].address], name="bench", rpc_url=anvil.url)
        client = LedgerClient(w3, deployment, operator=TxSender(w3, keys[0]), relayer=TxSender(w3, keys[1]))
        accounts: list[LocalAccount] = [Account.create() for _ in range(banks)]
        for i, acct in enumerate(accounts):
            client.register(acct.address, f"BN{i // 26 % 26 + 65:c}{i % 26 + 65:c}US33XXX", "US", ROLE_BANK)
            client.fund(acct.address, "USD", 10**15, os.urandom(32))
        payments = max(0, n_events - 2 * banks)
        deadline = int(time.time()) + 24 * 3600
        chain_id, ledger = deployment.chain_id, deployment.ledger
        last = None
        for start in range(0, payments, batch):
            orders, sigs = [], []
            for k in range(start, min(payments, start + batch)):
                debtor, creditor = accounts[k % banks], accounts[(k * 7 + 1) % banks]
                if debtor == creditor:
                    creditor = accounts[(k + 1) % banks]
                order = PaymentOrder(uuid.uuid4().bytes, debtor.address, creditor.address, b"USD", 1 + k % 997, 0,
                                     deadline, os.urandom(32))
                orders.append(order)
                sigs.append(sign_order(debtor.key, order, chain_id, ledger))
            last = client.relayer.send(ledger, client.encode_batch(orders, sigs),  # type: ignore[union-attr]
                                       gas=client.batch_gas(len(orders)))
        if last is not None:
            client.relayer.wait(last, timeout=120)  # type: ignore[union-attr]
        return BenchChain(anvil, client, payments)
    except BaseException:
        anvil.stop()
        raise


def index_into(chain: BenchChain, database_url: str, *, max_range: int = 5_000) -> SyncReport:
    """Migrate a fresh database at `database_url` and time one full index into it."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        indexer = Indexer(chain.client, make_session_factory(engine), max_range=max_range)
        return indexer.sync_once()
    finally:
        engine.dispose()


def bench_indexer(n_events: int = 10_000, database_url: str | None = None, *,
                  chain: BenchChain | None = None) -> float:
    """Events per second of a full index of ~`n_events` events into `database_url`
    (a temporary SQLite file by default); generates the chain unless one is given."""
    own = chain is None
    chain = chain or make_bench_chain(n_events)
    try:
        with _sqlite_url(database_url) as url:
            report = index_into(chain, url)
        return report.events / report.seconds
    finally:
        if own:
            chain.close()


@contextmanager
def _sqlite_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        yield f"sqlite:///{tmp}/mirror.sqlite3"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chain_gateway.indexer.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--postgres-url", help="a PostgreSQL database to index into (default: a private server)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    chain = make_bench_chain(args.events)
    print(f"chain: {chain.payments} settled payments (+ registrations, fundings) in "
          f"{time.perf_counter() - t0:.1f} s, head {chain.client.w3.eth.block_number}")
    try:
        with _sqlite_url(None) as url:
            r = index_into(chain, url)
        print(f"SQLite     : {r.events} events in {r.seconds:.2f} s = {r.events / r.seconds:,.0f} events/s")
        if not args.no_postgres:
            with _postgres(args.postgres_url) as pg_url:
                r = index_into(chain, pg_url)
            print(f"PostgreSQL : {r.events} events in {r.seconds:.2f} s = {r.events / r.seconds:,.0f} events/s")
    finally:
        chain.close()
    return 0


@contextmanager
def _postgres(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.postgres import PostgresServer  # a development checkout: the test suite's private server

    server = PostgresServer(durable=True)
    try:
        yield server.create_database("bench")
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
