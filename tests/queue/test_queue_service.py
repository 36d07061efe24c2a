"""QueueService: automatic release (FIFO bypass, urgent first, off the indexer thread), gridlock
resolution end to end (mirror snapshot -> lsm.solve -> settleGridlock or reserve-then-commit),
stuck detection and crash recovery of an open batch."""
from __future__ import annotations

import uuid

from chain_gateway.queue import QueueService
from tests.queue.conftest import FUND_REF


def _u(b: bytes) -> str:
    return str(uuid.UUID(bytes=b))


def test_resolve_classic_cycle(queue_env, make_order):
    e = queue_env
    a, b, c = e.bank("A"), e.bank("B"), e.bank("C")
    cycle = [e.queue_onchain(make_order, a, b, 100), e.queue_onchain(make_order, b, c, 100),
             e.queue_onchain(make_order, c, a, 100)]
    e.sync()
    report = e.queue.resolve()
    assert (report.proposed, report.settled_count, report.settled_value, report.path) == (3, 3, {"USD": 300},
                                                                                         "single")
    assert report.method and report.optimal and report.gap == 0
    assert [e.status(u) for u in cycle] == [2, 2, 2]
    assert (e.balance("A"), e.balance("B"), e.balance("C")) == (0, 0, 0)
    e.sync()
    with e.gateway.sessions() as s:
        assert e.queue.items(s) == []


def test_resolve_settles_the_cycle_and_leaves_the_uncoverable_payment(queue_env, make_order):
    e = queue_env
    a, b, c, d = e.bank("A"), e.bank("B"), e.bank("C"), e.bank("D")
    cycle = [e.queue_onchain(make_order, a, b, 100), e.queue_onchain(make_order, b, c, 100),
             e.queue_onchain(make_order, c, a, 100)]
    stuck = e.queue_onchain(make_order, d, a, 500)  # d has nothing and nobody pays d
    e.sync()
    report = e.queue.resolve()
    assert report.settled_count == 3 and set(report.settled_uetrs) == {_u(u) for u in cycle}
    assert e.status(stuck) == 1
    e.sync()
    with e.gateway.sessions() as s:
        assert [i.uetr for i in e.queue.items(s)] == [_u(stuck)]


def test_resolve_multi_currency_gridlock(queue_env, make_order):
    e = queue_env
    a, b, c = e.bank("A", {"EUR": 20}), e.bank("B"), e.bank("C")
    usd = [e.queue_onchain(make_order, a, b, 70, "USD"), e.queue_onchain(make_order, b, c, 70, "USD"),
           e.queue_onchain(make_order, c, a, 70, "USD")]
    eur = [e.queue_onchain(make_order, a, b, 50, "EUR"), e.queue_onchain(make_order, b, a, 30, "EUR"),
           e.queue_onchain(make_order, c, b, 10, "EUR")]  # c has no EUR and receives none: stays
    e.sync()
    report = e.queue.resolve()
    assert report.settled_value == {"USD": 210, "EUR": 80}
    assert [e.status(u) for u in usd + eur] == [2, 2, 2, 2, 2, 1]
    assert (e.balance("A", "EUR"), e.balance("B", "EUR")) == (0, 20)


def test_resolve_with_nothing_settleable_moves_nothing(queue_env, make_order):
    e = queue_env
    a, b = e.bank("A"), e.bank("B")
    p = e.queue_onchain(make_order, a, b, 100)
    e.sync()
    report = e.queue.resolve()
    assert (report.queued, report.proposed, report.settled_count, report.path) == (1, 0, 0, "none")
    assert e.status(p) == 1


def test_resolve_through_reserve_then_commit(queue_env, make_order, events):
    e = queue_env
    names = ["A", "B", "C", "D", "E"]
    banks = [e.bank(n) for n in names]
    ring = [e.queue_onchain(make_order, banks[i], banks[(i + 1) % 5], 40) for i in range(5)]
    ring += [e.queue_onchain(make_order, banks[i], banks[(i + 1) % 5], 1 + i) for i in range(5)]
    e.sync()
    service = QueueService(e.client, e.gateway.sessions, max_single=3, reserve_chunk=4, close_chunk=3)
    report = service.resolve()
    # the 40s form a cycle that nets to zero; the 1..5 ring does not (B: +1 -2), so only part of it settles
    assert report.path == "reserve-commit" and report.batch_id is not None
    assert report.settled_count == report.proposed >= 5
    chunks = -(-report.proposed // 4), -(-report.proposed // 3)
    assert len(report.tx_hashes) == chunks[0] + 1 + chunks[1]  # reserve chunks, the commit, close chunks
    assert [e.status(u) for u in ring[:5]] == [2] * 5
    assert sorted(e.status(u) for u in ring) == sorted([2] * report.settled_count + [1] * (10 - report.settled_count))
    assert e.client.gridlock_batch()[1] == 0
    assert sum(e.balance(n) for n in names) == 0


def test_reserve_then_commit_failure_releases_and_requeues(queue_env, make_order, monkeypatch):
    e = queue_env
    a, b, c = e.bank("A"), e.bank("B"), e.bank("C", {"USD": 10})
    items = [e.queue_onchain(make_order, a, b, 100), e.queue_onchain(make_order, b, c, 100),
             e.queue_onchain(make_order, c, a, 110)]
    e.sync()
    service = QueueService(e.client, e.gateway.sessions, max_single=1, reserve_chunk=2)
    real_commit = e.client.commit_gridlock

    def commit_after_a_defund(batch_id, accounts):  # the world changes between reservation and commit
        e.client.defund(c.address, "USD", 1, FUND_REF)
        return real_commit(batch_id, accounts)
    monkeypatch.setattr(e.client, "commit_gridlock", commit_after_a_defund)
    report = service.resolve()
    assert report.path == "reserve-commit" and report.settled_count == 0
    assert report.rejected_reason == "GridlockInfeasible"
    assert [e.status(u) for u in items] == [1, 1, 1]
    assert (e.balance("A"), e.balance("B"), e.balance("C")) == (0, 0, 9)
    assert e.client.gridlock_batch()[1] == 0


def test_recover_finishes_a_batch_a_crash_left_open(queue_env, make_order):
    e = queue_env
    a, b = e.bank("A"), e.bank("B")
    items = [e.queue_onchain(make_order, a, b, 10), e.queue_onchain(make_order, b, a, 10)]
    e.sync()
    e.client.reserve_gridlock(b"\x07" * 32, items)  # ... and the gateway died here
    assert [e.status(u) for u in items] == [5, 5]
    assert e.queue.recover() is True
    assert [e.status(u) for u in items] == [1, 1]
    assert e.client.gridlock_batch()[1] == 0
    assert e.queue.resolve().settled_count == 2  # and the next resolution settles them


def test_auto_release_fifo_bypass_in_queue_order(queue_env, make_order):
    e = queue_env
    a, b = e.bank("A"), e.bank("B")
    big = e.queue_onchain(make_order, a, b, 150)
    mid = e.queue_onchain(make_order, a, b, 50)
    small = e.queue_onchain(make_order, a, b, 30)
    e.sync()
    e.client.fund(a.address, "USD", 90, FUND_REF)
    e.sync()  # the indexer hook records (A, USD) as credited
    sent = e.queue.release_pending()
    assert sent == [_u(mid), _u(small)]  # the head does not fit and is bypassed; order kept
    assert [e.status(u) for u in (big, mid, small)] == [1, 2, 2]
    assert e.balance("A") == 10


def test_auto_release_urgent_first(queue_env, make_order):
    e = queue_env
    a, b = e.bank("A"), e.bank("B")
    normal = e.queue_onchain(make_order, a, b, 60)
    urgent = e.queue_onchain(make_order, a, b, 60, urgent=True)
    e.sync()
    e.client.fund(a.address, "USD", 60, FUND_REF)
    e.sync()
    assert e.queue.release_pending() == [_u(urgent)]
    assert (e.status(normal), e.status(urgent)) == (1, 2)


def test_auto_release_cascades_through_the_worker(queue_env, make_order, wait_for):
    """Funding A releases A->B, whose credit releases B->C: the worker thread does it, the
    indexer hook only records and returns."""
    e = queue_env
    a, b, c = e.bank("A"), e.bank("B"), e.bank("C")
    ab = e.queue_onchain(make_order, a, b, 100)
    bc = e.queue_onchain(make_order, b, c, 100)
    e.sync()
    e.queue.start()
    e.client.fund(a.address, "USD", 100, FUND_REF)

    def settled() -> bool:
        e.gateway.indexer.sync_once()
        return e.status(ab) == 2 and e.status(bc) == 2
    wait_for(settled)
    assert (e.balance("A"), e.balance("B"), e.balance("C")) == (0, 0, 100)


def test_held_payment_is_not_released(queue_env, make_order):
    e = queue_env
    a, b = e.bank("A"), e.bank("B")
    p = e.queue_onchain(make_order, a, b, 50)
    e.client.set_hold(p, True)
    e.client.fund(a.address, "USD", 50, FUND_REF)
    e.sync()
    assert e.queue.release_pending() == []
    assert e.status(p) == 1


def test_stuck_queue_triggers_resolution(queue_env, make_order):
    e = queue_env
    now = [1000.0]
    service = QueueService(e.client, e.gateway.sessions, stuck_seconds=30, clock=lambda: now[0])
    a, b = e.bank("A"), e.bank("B")
    items = [e.queue_onchain(make_order, a, b, 10), e.queue_onchain(make_order, b, a, 10)]
    e.sync()
    now[0] += 10
    assert service._maybe_resolve() is None
    now[0] += 25
    report = service._maybe_resolve()
    assert report is not None and report.settled_count == 2
    assert [e.status(u) for u in items] == [2, 2]


def test_reconciliation_is_exact_between_commit_and_close(queue_env, make_order):
    """After commitGridlock the chain's balances have moved, but the payments' PaymentSettled
    events only come with closeGridlock. An auditor reconciling in that window must see the
    committed payments as in transit, not as balance differences; anything else stays a difference."""
    from sqlalchemy import update

    from chain_gateway.mirror.models import Balance
    from chain_gateway.reconcile import reconcile

    e = queue_env
    a, b = e.bank("A", {"USD": 100}), e.bank("B")
    items = [e.queue_onchain(make_order, a, b, 150), e.queue_onchain(make_order, b, a, 60)]
    e.sync()
    batch = b"\x09" * 32
    e.client.reserve_gridlock(batch, items)
    e.client.commit_gridlock(batch, 2)
    assert (e.balance("A"), e.balance("B")) == (10, 90) and [e.status(u) for u in items] == [5, 5]
    e.gateway.indexer.sync_once()
    with e.gateway.sessions() as s:
        mid = reconcile(s, e.client)
    assert mid.differences == [] and mid.checked["in_transit"] == 2
    with e.gateway.sessions() as s, s.begin():  # a real difference in the window is still caught
        s.execute(update(Balance).where(Balance.participant == a.address).values(amount=101))
    with e.gateway.sessions() as s:
        tampered = reconcile(s, e.client)
    assert ("balance", "101 - 90 in transit", "10") in [(d.kind, d.mirror, d.chain) for d in tampered.differences]
    with e.gateway.sessions() as s, s.begin():
        s.execute(update(Balance).where(Balance.participant == a.address).values(amount=100))
    e.client.close_gridlock(batch, items)
    e.gateway.indexer.sync_once()
    with e.gateway.sessions() as s:
        after = reconcile(s, e.client)
    assert after.differences == [] and after.checked["in_transit"] == 0
    assert [e.status(u) for u in items] == [2, 2] and (e.balance("A"), e.balance("B")) == (10, 90)
