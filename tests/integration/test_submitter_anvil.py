"""The outbox submitter against a real node (anvil, gas price 0): shared nonces under 16
threads, a lost reply on a mempool node, throughput, and a SIGKILLed submitter process
recovered with every UETR paid exactly once."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import Settings
from chain_gateway.db import Base, make_engine, make_session_factory, transaction
from chain_gateway.deploy import deploy
from chain_gateway.errors import ChainUnavailable
from chain_gateway.ledger import ROLE_BANK, LedgerClient
from chain_gateway.outbox import OutboxEntry, OutboxState, Submitter, recover
from chain_gateway.signing import PaymentOrder, sign_order
from chain_gateway.transactions import TxSender
from tests.outbox.outbox_helpers import put, settled_counts

pytestmark = pytest.mark.anvil
RELAYER = 1  # dev account index


@dataclass
class Net:
    anvil: AnvilProcess
    client: LedgerClient
    debtor: LocalAccount
    creditor: LocalAccount
    manifest: Path

    def order(self, amount: int = 1) -> tuple[PaymentOrder, bytes]:
        o = PaymentOrder(uetr=uuid.uuid4().bytes, debtor=self.debtor.address, creditor=self.creditor.address,
                         currency=b"USD", amount=amount, flags=0, deadline=int(time.time()) + 3600,
                         instruction_hash=os.urandom(32))
        return o, sign_order(self.debtor.key, o, self.client.deployment.chain_id, self.client.ledger)

    def fresh_client(self) -> LedgerClient:
        """A new process's view: a relayer sender that has not counted any nonce yet."""
        w3 = make_web3(self.anvil.url)
        return LedgerClient(w3, self.client.deployment, relayer=TxSender(w3, dev_accounts()[RELAYER]))

    def settled(self) -> Counter[bytes]:
        return settled_counts(self.client)


def _network(settings: Settings, tmp: Path) -> Net:
    anvil = AnvilProcess(anvil_binary(settings.project_root), port=None, state_file=None, state_interval=1)
    w3 = make_web3(anvil.url)
    keys = dev_accounts()
    deployment = deploy(w3, keys[0], [keys[RELAYER].address], name="outbox-anvil", rpc_url=anvil.url)
    client = LedgerClient(w3, deployment, operator=TxSender(w3, keys[0]), relayer=TxSender(w3, keys[RELAYER]))
    debtor, creditor = Account.create(), Account.create()
    client.register(debtor.address, "OBXAUS33XXX", "US", ROLE_BANK)
    client.register(creditor.address, "OBXADEFFXXX", "DE", ROLE_BANK)
    client.fund(debtor.address, "USD", 10**15, b"\0" * 32)
    manifest = tmp / "deployment.json"
    deployment.save(manifest)
    return Net(anvil, client, debtor, creditor, manifest)


@pytest.fixture(scope="module")
def net(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = _network(settings, tmp_path_factory.mktemp("anvil"))
    yield n
    n.anvil.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def states(factory: sessionmaker[Session]) -> Counter[OutboxState]:
    with transaction(factory) as session:
        return Counter(dict(session.execute(select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state))
                            .tuples().all()))


def test_16_threads_share_one_sender_on_anvil(net: Net) -> None:
    sender, per_thread = net.client.relayer, 10
    assert sender is not None
    work = [[net.order() for _ in range(per_thread)] for _ in range(16)]
    start = net.client.w3.eth.get_transaction_count(sender.address)
    receipts, errors = [], []
    barrier = threading.Barrier(16)

    def worker(items: list[tuple[PaymentOrder, bytes]]) -> None:
        barrier.wait()
        try:
            for order, sig in items:
                tx = sender.send(net.client.ledger, LedgerClient.encode_batch([order], [sig]),
                                 gas=LedgerClient.batch_gas(1))
                receipts.append(sender.wait(tx))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert net.client.w3.eth.get_transaction_count(sender.address) == start + 160
    assert len(receipts) == 160 and all(r["status"] == 1 for r in receipts)
    nonces = sorted(net.client.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(start, start + 160))
    settled = net.settled()
    assert all(settled[o.uetr] == 1 for w in work for o, _ in w)


def test_lost_reply_on_a_mempool_node_does_not_wedge_the_nonce(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """anvil without automine answers a reused nonce with 'transaction already imported' /
    'replacement transaction underpriced' (no 'nonce' in it): the old TxSender never
    resynchronised and every later send failed."""
    w3 = net.client.w3
    sender = TxSender(w3, dev_accounts()[5])
    real = w3.eth.send_raw_transaction
    lost = iter([requests.Timeout("read timed out")])

    def reply_lost(raw: bytes) -> object:
        result = real(raw)
        for exc in lost:
            raise exc
        return result

    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        monkeypatch.setattr(w3.eth, "send_raw_transaction", reply_lost)
        start = w3.eth.get_transaction_count(sender.address)
        with pytest.raises(ChainUnavailable):
            sender.send(sender.address, b"", gas=21_000)
        hashes = [sender.send(sender.address, b"", gas=21_000 + i) for i in range(3)]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert [w3.eth.get_transaction(h)["nonce"] for h in hashes] == [start + 1, start + 2, start + 3]
    assert w3.eth.get_transaction_count(sender.address) == start + 4


def test_throughput_and_latency_on_anvil(net: Net, outbox: sessionmaker[Session]) -> None:
    """Figures for the report (printed with -s): a lone payment, a backlog of 1,000 and a
    stream of 1,000 arriving in 200 commits."""
    sub = Submitter(outbox, net.client, idle_poll=30.0)
    sub.start()
    try:
        lone = []
        for _ in range(20):
            item = net.order()
            t0 = time.perf_counter()
            put(outbox, [item])
            sub.notify()
            assert sub.wait_idle(10)
            lone.append(time.perf_counter() - t0)
        assert sub.stats.transactions == 20 and sub.stats.largest_batch == 1

        backlog = [net.order() for _ in range(1000)]
        txs0 = sub.stats.transactions
        put(outbox, backlog)
        t0 = time.perf_counter()  # the submitter's part only: the API's enqueue is not timed
        sub.notify()
        assert sub.wait_idle(60)
        backlog_s, backlog_txs = time.perf_counter() - t0, sub.stats.transactions - txs0

        stream = [net.order() for _ in range(1000)]
        txs0 = sub.stats.transactions
        t0 = time.perf_counter()
        for i in range(0, 1000, 5):
            put(outbox, stream[i:i + 5])
            sub.notify()
        assert sub.wait_idle(60)
        stream_s, stream_txs = time.perf_counter() - t0, sub.stats.transactions - txs0
    finally:
        sub.stop()
    settled = net.settled()
    assert all(settled[o.uetr] == 1 for o, _ in backlog + stream)
    assert backlog_txs == 10
    assert stream_txs < 200
    print(f"\nanvil: lone payment commit->DONE median {statistics.median(lone) * 1000:.1f} ms; "
          f"1,000 backlog drained: {backlog_txs} txs, {1000 / backlog_s:.0f} payments/s; "
          f"1,000 streamed in 200 commits (enqueue included): {stream_txs} txs, {1000 / stream_s:.0f} payments/s")


CHILD = """
import sys, time
from pathlib import Path
from chain_gateway.chain import dev_accounts, make_web3
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.outbox import Submitter
from chain_gateway.transactions import TxSender
url, manifest, db = sys.argv[1:4]
w3 = make_web3(url)
client = LedgerClient(w3, Deployment.load(Path(manifest)), relayer=TxSender(w3, dev_accounts()[%d]))
sub = Submitter(make_session_factory(make_engine("sqlite:///" + db)), client, max_items=20, max_in_flight=4)
sub.start()
print("started", flush=True)
while True:
    time.sleep(1)
""" % RELAYER


def test_sigkill_mid_flight_then_recover(net: Net, tmp_path: Path, outbox: sessionmaker[Session]) -> None:
    """A submitter process is SIGKILLed while transactions wait in the mempool (1 s blocks);
    a new process recovers: mined rows DONE, the rest sent again, every UETR paid once."""
    w3 = net.client.w3
    paid_before = net.client.balance_of(net.creditor.address, "USD")
    items = [net.order() for _ in range(400)]
    put(outbox, items)
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
    try:
        child = subprocess.Popen([sys.executable, "-c", CHILD, net.anvil.url, str(net.manifest),
                                  str(tmp_path / "outbox.sqlite3")], stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == b"started"
            deadline = time.monotonic() + 20
            while states(outbox)[OutboxState.SENT] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(1.2)  # at least one block mined with more in flight
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        at_kill = states(outbox)
        assert at_kill[OutboxState.SENT] > 0 and at_kill[OutboxState.PENDING] > 0, at_kill

        fresh = net.fresh_client()
        report = recover(outbox, fresh, pending_wait=5)
        assert report.checked == at_kill[OutboxState.SENT] + at_kill[OutboxState.PENDING]
        assert report.done and report.requeued and not report.failed
        Submitter(outbox, fresh, max_items=100).run_until_idle(timeout=60)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        assert net.client.relayer is not None
        net.client.relayer.resync_nonce()  # other processes sent from the relayer key
    settled = net.settled()
    assert [settled[o.uetr] for o, _ in items] == [1] * 400
    assert states(outbox) == Counter({OutboxState.DONE: 400})
    assert net.client.balance_of(net.creditor.address, "USD") == paid_before + 400
    print(f"\nkilled with {dict(at_kill)}; recovery: {len(report.done)} done, {len(report.requeued)} resent")
