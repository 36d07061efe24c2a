"""One relayer account, many threads: the TxSender's nonces have no gaps and no reuse."""
from __future__ import annotations

import threading

import requests

from chain_gateway.db import Base, make_engine, make_session_factory
from chain_gateway.errors import ChainUnavailable
from chain_gateway.ledger import LedgerClient
from tests.outbox.outbox_helpers import put, settled_counts

THREADS = 16


def test_16_threads_share_one_sender(client, banks, make_order):
    a, b = banks
    per_thread = 3
    work = [[make_order(a, b, 1) for _ in range(per_thread)] for _ in range(THREADS)]
    sender = client.relayer
    start = client.w3.eth.get_transaction_count(sender.address)
    receipts: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def worker(items):
        barrier.wait()
        try:
            for order, sig in items:
                tx = sender.send(client.ledger, LedgerClient.encode_batch([order], [sig]),
                                 gas=LedgerClient.batch_gas(1))
                receipts.append(sender.wait(tx))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(items,)) for items in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sent = THREADS * per_thread
    assert client.w3.eth.get_transaction_count(sender.address) == start + sent
    assert len(receipts) == sent and all(r["status"] == 1 for r in receipts)
    assert sorted(client.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts) == list(
        range(start, start + sent))
    counts = settled_counts(client)
    assert all(counts[o.uetr] == 1 for items in work for o, _ in items)


def test_16_submitters_share_one_sender(client, banks, make_order, submitters, tmp_path):
    """Sixteen outboxes (one per 'gateway'), one relayer key and nonce counter."""
    a, b = banks
    start = client.w3.eth.get_transaction_count(client.relayer.address)
    subs, orders = [], []
    for i in range(THREADS):
        engine = make_engine(f"sqlite:///{tmp_path / f'outbox{i}.sqlite3'}")
        Base.metadata.create_all(engine)
        factory = make_session_factory(engine)
        mine = [make_order(a, b, 1) for _ in range(2)]
        put(factory, mine)
        orders += mine
        subs.append(submitters(factory, max_items=1))
    for sub in subs:
        sub.start()
    assert all(sub.wait_idle(30) for sub in subs)
    sent = sum(sub.stats.transactions for sub in subs)
    assert sent == THREADS * 2
    assert client.w3.eth.get_transaction_count(client.relayer.address) == start + sent
    counts = settled_counts(client)
    assert all(counts[o.uetr] == 1 for o, _ in orders)


def test_lost_reply_does_not_cost_the_next_send(client, monkeypatch):
    """The node takes the transaction but the reply is lost (timeout): the next send must
    not reuse the nonce. (It used to, until a nonce error happened to resync it; on a node
    with a mempool the reuse answers 'already known', which never resynced.)"""
    sender = client.relayer
    real = client.w3.eth.send_raw_transaction
    lost = iter([requests.Timeout("read timed out")])

    def reply_lost(raw):
        result = real(raw)
        for exc in lost:
            raise exc
        return result

    monkeypatch.setattr(client.w3.eth, "send_raw_transaction", reply_lost)
    start = client.w3.eth.get_transaction_count(sender.address)
    try:
        sender.send(sender.address, b"", gas=21_000)
        raise AssertionError("the lost reply should surface")
    except ChainUnavailable:
        pass
    tx = sender.send(sender.address, b"", gas=21_000)  # no nonce error, no retry needed
    assert client.w3.eth.get_transaction(tx)["nonce"] == start + 1
    assert client.w3.eth.get_transaction_count(sender.address) == start + 2
