"""The submitter on eth-tester: settles, batches by count and gas, sends a lone payment at
once, classifies failures, and never pays a UETR twice."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from eth_account import Account

from chain_gateway.deploy import RELAYER_ROLE
from chain_gateway.errors import ChainUnavailable
from chain_gateway.ledger import GAS_BATCH_BASE, GAS_BATCH_ITEM, TX_GAS_CAP, LedgerClient
from chain_gateway.outbox import OutboxState
from chain_gateway.signing import FLAG_QUEUE
from chain_gateway.transactions import TxSender
from tests.outbox.outbox_helpers import put, rows, settled_counts


def test_submitter_settles_a_payment(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    o, sig = make_order(a, b, 400)
    sent: list[tuple[list[str], str]] = []
    sub = submitters(on_sent=lambda uetrs, tx: sent.append((uetrs, tx)))
    put(outbox_db, [(o, sig)])
    sub.start()
    sub.notify()
    assert sub.wait_idle(10)
    assert client.payment_status(o.uetr) == 2
    assert client.balance_of(b.address, "USD") == 400
    [row] = rows(outbox_db)
    assert row.state == OutboxState.DONE and row.attempts == 1 and row.last_error is None
    assert sent == [([str(uuid.UUID(bytes=o.uetr))], row.tx_hash)]
    assert client.w3.eth.get_transaction_receipt(row.tx_hash)["status"] == 1


def test_lone_payment_goes_out_at_once(banks, make_order, outbox_db, submitters):
    """Idle submitter, long poll: notify() is what wakes it, and the batch is of one."""
    a, b = banks
    sent_at: list[float] = []
    sub = submitters(idle_poll=30.0, on_sent=lambda uetrs, tx: sent_at.append(time.perf_counter()))
    sub.start()
    time.sleep(0.05)  # let it go idle
    latencies = []
    for _ in range(5):
        o, sig = make_order(a, b, 1)
        t0 = time.perf_counter()
        put(outbox_db, [(o, sig)])
        sub.notify()
        assert sub.wait_idle(5)
        latencies.append(sent_at[-1] - t0)
    assert sub.stats.transactions == 5 and sub.stats.largest_batch == 1
    print(f"\nlone payment: commit -> tx sent median {sorted(latencies)[2] * 1000:.1f} ms")
    assert sorted(latencies)[2] < 0.5


def test_250_orders_settle_in_3_transactions(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    orders = [make_order(a, b, 1 + i) for i in range(250)]
    put(outbox_db, orders)
    sub = submitters()
    t0 = time.perf_counter()
    sub.run_until_idle(timeout=60)
    elapsed = time.perf_counter() - t0
    assert sub.stats.transactions <= 3 and sub.stats.largest_batch == 100
    counts = settled_counts(client)
    assert all(counts[o.uetr] == 1 for o, _ in orders)
    assert {r.state for r in rows(outbox_db)} == {OutboxState.DONE}
    assert len({r.tx_hash for r in rows(outbox_db)}) == sub.stats.transactions
    assert client.balance_of(b.address, "USD") == sum(range(1, 251))
    print(f"\n250 orders: {sub.stats.transactions} txs in {elapsed:.2f} s on eth-tester")


def test_batches_grow_under_load(client, banks, make_order, outbox_db, submitters):
    """Orders arriving while a transaction is in flight go together in the next one."""
    a, b = banks
    orders = [make_order(a, b, 1) for _ in range(120)]
    sub = submitters()
    sub.start()
    for i in range(0, len(orders), 3):  # 40 API commits of 3, each followed by notify()
        put(outbox_db, orders[i:i + 3])
        sub.notify()
    assert sub.wait_idle(30)
    counts = settled_counts(client)
    assert all(counts[o.uetr] == 1 for o, _ in orders)
    print(f"\n120 orders in 40 commits: {sub.stats.transactions} txs, largest batch {sub.stats.largest_batch}")
    assert sub.stats.transactions < 40


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_batch_size_is_capped_by_gas(submitters, scale):
    sub = submitters(max_items=1000, gas_scale=scale)
    assert sub.batch_size == int((TX_GAS_CAP / scale - GAS_BATCH_BASE) // GAS_BATCH_ITEM)  # 185 at 1.0, 122 at 1.5
    assert LedgerClient.batch_gas(sub.batch_size) * scale <= TX_GAS_CAP
    assert (GAS_BATCH_BASE + GAS_BATCH_ITEM * (sub.batch_size + 1)) * scale > TX_GAS_CAP  # one more would not fit
    assert submitters().batch_size == 100  # the default count fits the default gas


def test_fresh_creditors_fit_the_default_gas(client, make_bank, make_order, outbox_db, submitters):
    """The worst case per item (first payment to a new creditor: ~101k gas, more than
    LedgerClient's 90k budget) settles in one batch with the default gas scale."""
    pairs = [(make_bank(funds={"USD": 100}), make_bank()) for _ in range(12)]
    items = [make_order(d, c, 10) for d, c in pairs]
    put(outbox_db, items)
    sub = submitters()
    sub.run_until_idle()
    assert sub.stats.transactions == 1 and sub.stats.reverted == 0
    assert all(client.payment_status(o.uetr) == 2 for o, _ in items)


def test_out_of_gas_batch_is_resent_with_more_gas(client, make_bank, make_order, outbox_db, submitters):
    pairs = [(make_bank(funds={"USD": 100}), make_bank()) for _ in range(12)]
    items = [make_order(d, c, 10) for d, c in pairs]
    put(outbox_db, items)
    sub = submitters(gas_scale=0.4)  # ~52k an item: short of a first payment to a new creditor
    sub.run_until_idle()
    assert sub.stats.reverted >= 1 and sub.gas_scale > 0.4
    assert all(client.payment_status(o.uetr) == 2 for o, _ in items)
    assert {r.state for r in rows(outbox_db)} == {OutboxState.DONE}
    assert all(settled_counts(client)[o.uetr] == 1 for o, _ in items)


def test_chain_decides_each_item(client, banks, make_bank, make_order, outbox_db, submitters):
    """Settled, queued and business-rejected items are DONE (the indexer reports them);
    a bad signature or a passed deadline can never settle: FAILED, reported to the tracker."""
    a, b = banks
    poor = make_bank(funds={"USD": 5})
    ok = make_order(a, b, 10)
    queued = make_order(poor, b, 50, flags=FLAG_QUEUE)
    short = make_order(poor, b, 60)
    forged = make_order(a, b, 10, signer=Account.create())
    expired = make_order(a, b, 10, deadline=int(time.time()) - 10)
    failed: list[tuple[list[str], str]] = []
    put(outbox_db, [ok, queued, short, forged, expired])
    sub = submitters(on_failed=lambda uetrs, err: failed.append((uetrs, err)))
    sub.run_until_idle()
    by_uetr = {r.uetr: r for r in rows(outbox_db)}

    def row(item):
        return by_uetr[str(uuid.UUID(bytes=item[0].uetr))]

    assert [client.payment_status(x[0].uetr) for x in (ok, queued, short, forged, expired)] == [2, 1, 4, 0, 0]
    assert [row(x).state for x in (ok, queued, short)] == [OutboxState.DONE] * 3
    assert row(forged).state == row(expired).state == OutboxState.FAILED
    assert "InvalidSignature" in row(forged).last_error and "OrderExpired" in row(expired).last_error
    assert sorted(u for uetrs, _ in failed for u in uetrs) == sorted([row(forged).uetr, row(expired).uetr])
    assert sub.stats.transactions == 1


def test_uetr_already_on_chain_is_done_not_paid_again(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    o, sig = make_order(a, b, 7)
    client.submit_payment(o, sig)  # e.g. an earlier process sent it and lost the DB update
    put(outbox_db, [(o, sig)])
    submitters().run_until_idle()
    [row] = rows(outbox_db)
    assert row.state == OutboxState.DONE and "DuplicateUetr" in row.last_error
    assert settled_counts(client)[o.uetr] == 1 and client.balance_of(b.address, "USD") == 7


def test_same_uetr_enqueued_twice_concurrently_pays_once(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    o, sig = make_order(a, b, 9)
    sub = submitters()
    sub.start()
    barrier = threading.Barrier(2)

    def api() -> None:
        barrier.wait()
        put(outbox_db, [(o, sig)])
        sub.notify()

    threads = [threading.Thread(target=api) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sub.wait_idle(10)
    assert len(rows(outbox_db)) == 1
    assert settled_counts(client)[o.uetr] == 1 and client.balance_of(b.address, "USD") == 9


def test_transient_send_errors_are_retried(client, banks, make_order, outbox_db, submitters, monkeypatch):
    a, b = banks
    o, sig = make_order(a, b, 3)
    real_send = client.relayer.send
    errors = iter([requests.ConnectionError("connection refused"), ChainUnavailable("read timed out")])

    def flaky_send(*args, **kwargs):
        for exc in errors:
            raise exc
        return real_send(*args, **kwargs)

    monkeypatch.setattr(client.relayer, "send", flaky_send)
    put(outbox_db, [(o, sig)])
    sub = submitters(backoff_initial=0.01)
    sub.run_until_idle(timeout=10)
    [row] = rows(outbox_db)
    assert row.state == OutboxState.DONE and row.attempts == 1  # transient failures cost no attempt
    assert sub.stats.send_failures == 2 and settled_counts(client)[o.uetr] == 1


def test_paused_ledger_waits_then_settles(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    o, sig = make_order(a, b, 3)
    client.pause()
    put(outbox_db, [(o, sig)])
    sub = submitters(backoff_initial=0.01, backoff_max=0.05, max_attempts=2)
    sub.start()
    deadline = time.monotonic() + 5
    while sub.stats.reverted < 3 and time.monotonic() < deadline:  # more reverts than max_attempts
        time.sleep(0.01)
    [row] = rows(outbox_db)
    assert row.state in (OutboxState.PENDING, OutboxState.SENT) and "EnforcedPause" in (row.last_error or "")
    client.unpause()
    assert sub.wait_idle(10)
    assert rows(outbox_db)[0].state == OutboxState.DONE and client.payment_status(o.uetr) == 2


def test_non_transient_revert_fails_after_max_attempts(chain, client, banks, make_order, outbox_db, submitters):
    """A relayer without RELAYER_ROLE: every transaction reverts; the rows fail, reported."""
    a, b = banks
    o, sig = make_order(a, b, 3)
    outsider = chain.dev_keys[7]
    assert not client.has_role(client.ledger, RELAYER_ROLE, outsider.address)
    wrong = LedgerClient(client.w3, client.deployment, relayer=TxSender(client.w3, outsider))
    failed: list[tuple[list[str], str]] = []
    put(outbox_db, [(o, sig)])
    sub = submitters(client=wrong, max_attempts=2, backoff_initial=0.01,
                     on_failed=lambda uetrs, err: failed.append((uetrs, err)))
    sub.run_until_idle(timeout=10)
    [row] = rows(outbox_db)
    assert row.state == OutboxState.FAILED and row.attempts == 2
    assert "AccessControlUnauthorizedAccount" in row.last_error
    assert failed == [([row.uetr], row.last_error)] and client.payment_status(o.uetr) == 0


def test_dropped_transaction_is_resent(client, banks, make_order, outbox_db, submitters, monkeypatch):
    """The node 'accepts' a transaction that never reaches a block: no receipt before the
    timeout, the chain lacks the UETR, so it is sent again, once."""
    a, b = banks
    o, sig = make_order(a, b, 11)
    real_send = client.relayer.send
    drops = iter(["0x" + "ab" * 32])

    def dropping_send(*args, **kwargs):
        for fake in drops:
            return fake
        return real_send(*args, **kwargs)

    monkeypatch.setattr(client.relayer, "send", dropping_send)
    put(outbox_db, [(o, sig)])
    sub = submitters(receipt_timeout=0.2)
    sub.run_until_idle(timeout=10)
    [row] = rows(outbox_db)
    assert row.state == OutboxState.DONE and row.attempts == 2 and row.tx_hash != "0x" + "ab" * 32
    assert settled_counts(client)[o.uetr] == 1


def test_callback_errors_do_not_stop_the_worker(client, banks, make_order, outbox_db, submitters):
    a, b = banks
    items = [make_order(a, b, 1) for _ in range(2)]

    def broken(uetrs, tx):
        raise RuntimeError("tracker bug")

    sub = submitters(on_sent=broken)
    sub.start()
    for item in items:
        put(outbox_db, [item])
        sub.notify()
        assert sub.wait_idle(5)
    assert all(client.payment_status(o.uetr) == 2 for o, _ in items)

