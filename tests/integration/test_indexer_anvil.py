"""The indexer against a real node: anvil started by chain_gateway.chain.AnvilProcess, the
contracts deployed with chain_gateway.deploy, payments, a full index (plain JSON-RPC with
batches), reconciliation, and a reorganisation made with evm_snapshot / evm_revert.
Runs on SQLite and on the private PostgreSQL server."""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import Settings
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.deploy import deploy
from chain_gateway.indexer import Indexer, JsonRpcSource
from chain_gateway.indexer.bench import bench_indexer, make_bench_chain
from chain_gateway.ledger import ROLE_BANK, LedgerClient
from chain_gateway.mirror import repository as repo
from chain_gateway.mirror.schema import upgrade_database
from chain_gateway.mirror.writer import uetr_text
from chain_gateway.reconcile import reconcile
from chain_gateway.signing import FLAG_QUEUE, PaymentOrder, sign_order
from chain_gateway.transactions import TxSender
from tests.postgres import PostgresServer

pytestmark = pytest.mark.anvil


@dataclass
class Node:
    anvil: AnvilProcess
    client: LedgerClient
    banks: list[LocalAccount]

    def order(self, debtor: int, creditor: int, amount: int, flags: int = 0) -> tuple[PaymentOrder, bytes]:
        d, c = self.banks[debtor], self.banks[creditor]
        o = PaymentOrder(uuid.uuid4().bytes, d.address, c.address, b"USD", amount, flags, int(time.time()) + 3600,
                         os.urandom(32))
        return o, sign_order(d.key, o, self.client.deployment.chain_id, self.client.ledger)

    def rpc(self, method: str, params: list) -> object:
        return JsonRpcSource(self.anvil.url).rpc(method, params)

    def reset_nonces(self) -> None:
        for sender in (self.client.operator, self.client.relayer):
            sender._nonce = None  # type: ignore[union-attr] # the chain was rewound under them


@pytest.fixture(scope="module")
def node(settings: Settings) -> Iterator[Node]:
    anvil = AnvilProcess(anvil_binary(settings.project_root), port=None, state_file=None, state_interval=1)
    try:
        w3 = make_web3(anvil.url)
        operator, relayer = dev_accounts()[0], dev_accounts()[1]
        deployment = deploy(w3, operator, [relayer.address], name="indexer-anvil", rpc_url=anvil.url)
        client = LedgerClient(w3, deployment, operator=TxSender(w3, operator), relayer=TxSender(w3, relayer))
        banks = [Account.create() for _ in range(3)]
        for i, bank in enumerate(banks):
            client.register(bank.address, f"ANVL{'USDEGB'[2 * i:2 * i + 2]}2LXXX", "USDEGB"[2 * i:2 * i + 2],
                            ROLE_BANK)
            client.fund(bank.address, "USD", 1_000_000, b"\x01" * 32)
        yield Node(anvil, client, banks)
    finally:
        anvil.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mirror.sqlite3'}"
        upgrade_database(url)
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        upgrade_database(url)
        yield url


def test_indexer_anvil_pay_index_reconcile_and_reorg(node: Node, database: str):
    client = node.client
    snapshot = node.rpc("evm_snapshot", [])
    try:
        engine = make_engine(database)
        sessions = make_session_factory(engine)
        indexer = Indexer(client, sessions, max_range=7)
        paid = [node.order(0, 1, 100 + i) for i in range(5)]
        for order, sig in paid[:2]:
            client.submit_payment(order, sig)
        client.settle_batch([o for o, _ in paid[2:]] + [node.order(1, 2, 10**9)[0]],
                            [s for _, s in paid[2:]] + [node.order(1, 2, 10**9)[1]])
        queued = node.order(2, 0, 5_000_000, FLAG_QUEUE)
        client.submit_payment(*queued)
        report = indexer.sync_once()
        assert report.to_block == client.w3.eth.block_number and report.ranges >= 2
        with sessions() as session:
            for order, _ in paid:
                assert repo.get_payment(session=session, uetr=uetr_text(order.uetr)).status == "ACSC"
            assert repo.get_payment(session=session, uetr=uetr_text(queued[0].uetr)).status == "PDNG"
            assert reconcile(session, client).differences == []

        # reorganisation: rewind anvil, mine other blocks at the same heights
        fork = node.rpc("evm_snapshot", [])
        gone = [node.order(0, 2, 7) for _ in range(3)]
        for order, sig in gone:
            client.submit_payment(order, sig)
        indexer.sync_once()
        assert node.rpc("evm_revert", [fork]) is True
        node.reset_nonces()
        new = [node.order(1, 0, 9) for _ in range(4)]
        for order, sig in new:
            client.submit_payment(order, sig)
        report = indexer.sync_once()
        assert report.reorgs == 1
        with sessions() as session:
            assert all(repo.get_payment(session=session, uetr=uetr_text(o.uetr)) is None for o, _ in gone)
            assert all(repo.get_payment(session=session, uetr=uetr_text(o.uetr)).status == "ACSC" for o, _ in new)
            assert reconcile(session, client).differences == []
        engine.dispose()
    finally:
        node.rpc("evm_revert", [snapshot])
        node.reset_nonces()


@pytest.mark.slow
def test_indexer_anvil_throughput(settings: Settings, tmp_path: Path, postgres_server: PostgresServer):
    """~2,000 events indexed into SQLite and PostgreSQL (the 10,000-event figure:
    python -m chain_gateway.indexer.bench)."""
    chain = make_bench_chain(2_000, project_root=settings.project_root)
    try:
        sqlite_rate = bench_indexer(database_url=f"sqlite:///{tmp_path / 'bench.sqlite3'}", chain=chain)
        with postgres_server.database() as url:
            pg_rate = bench_indexer(database_url=url, chain=chain)
    finally:
        chain.close()
    print(f"indexer: SQLite {sqlite_rate:,.0f} events/s, PostgreSQL {pg_rate:,.0f} events/s")
    assert sqlite_rate > 500 and pg_rate > 500  # a smoke floor: the machine may be shared
