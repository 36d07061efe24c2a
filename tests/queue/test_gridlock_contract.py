"""SettlementLedger gridlock settlement on net positions, and reserve-then-commit batches:
the contract is the authority (a proposal that would overdraw anyone moves nothing), a failed
commit releases everything, reserved payments are out of everyone else's reach."""
from __future__ import annotations

import pytest

from chain_gateway.ledger import LedgerClient
from tests.queue.conftest import FUND_REF

GAS = 3_000_000
BATCH = b"\x42" * 32


def _all(client: LedgerClient, banks, currencies=("USD",)):
    return {(b.bic, c): client.balance_of(b.address, c) for b in banks for c in currencies}


@pytest.fixture
def grid(client, call_as):
    """Operator calls with ample gas (these tests are about rules, the gas tests about budgets)."""
    def _call(signature: str, *args):
        return call_as(client.operator, "ledger", signature, list(args), gas=GAS)
    return _call


def test_gridlock_classic_cycle_settles_with_zero_balances(client, make_bank, queue_payment, events, grid):
    a, b, c = make_bank(), make_bank(), make_bank()
    cycle = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 100)]
    receipt = grid("settleGridlock(bytes16[])", [o.uetr for o in cycle])
    assert [client.payment_status(o.uetr) for o in cycle] == [2, 2, 2]
    assert _all(client, [a, b, c]) == {(x.bic, "USD"): 0 for x in (a, b, c)}
    assert [e["uetr"] for e in events(receipt, "PaymentSettled")] == [o.uetr for o in cycle]
    assert events(receipt, "QueueBatchSettled") == [{"count": 3, "gridlock": True}]


def test_gridlock_that_would_overdraw_is_rejected_with_nothing_moved(client, make_bank, queue_payment, reverts,
                                                                     grid):
    a, b, c = make_bank(funds={"USD": 10}), make_bank(), make_bank()
    items = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 50)]
    before = _all(client, [a, b, c])
    # a: 10 + 50 in - 100 out = -40: a's net position fails, whatever order the items come in
    with reverts("GridlockInfeasible", participant=a.address, currency=b"USD", available=60, needed=100):
        grid("settleGridlock(bytes16[])", [o.uetr for o in items])
    assert _all(client, [a, b, c]) == before
    assert [client.payment_status(o.uetr) for o in items] == [1, 1, 1]


def test_gridlock_multi_currency_positions_are_separate(client, make_bank, queue_payment, reverts, grid):
    a, b = make_bank(funds={"EUR": 30}), make_bank()
    usd = [queue_payment(a, b, 70, "USD"), queue_payment(b, a, 70, "USD")]
    eur = [queue_payment(a, b, 80, "EUR"), queue_payment(b, a, 50, "EUR")]
    grid("settleGridlock(bytes16[])", [o.uetr for o in usd + eur])  # EUR: a 30 + 50 - 80 = 0
    assert _all(client, [a, b], ("USD", "EUR")) == {(a.bic, "USD"): 0, (b.bic, "USD"): 0, (a.bic, "EUR"): 0,
                                                   (b.bic, "EUR"): 30}
    # a USD surplus never covers a EUR shortfall
    c, d = make_bank(funds={"USD": 1_000}), make_bank()
    more = [queue_payment(c, d, 10, "EUR"), queue_payment(d, c, 5, "USD")]
    with reverts("GridlockInfeasible", participant=c.address, currency=b"EUR", available=0, needed=10):
        grid("settleGridlock(bytes16[])", [o.uetr for o in more])


def test_gridlock_checks_suspension_and_limits_on_net_positions(client, make_bank, queue_payment, reverts, grid):
    a, b = make_bank(), make_bank()
    items = [queue_payment(a, b, 600, flags=1), queue_payment(a, b, 600, flags=1)]
    client.fund(a.address, "USD", 1_200, FUND_REF)
    client.set_limits(a.address, "USD", 0, 1_000)  # daily outflow: 1,200 would exceed it
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=2, limit=1_000, wouldBe=1_200):
        grid("settleGridlock(bytes16[])", [o.uetr for o in items])
    client.set_limits(a.address, "USD", 0, 0)
    client.suspend(b.address)
    with reverts("NotActive", participant=b.address):
        grid("settleGridlock(bytes16[])", [items[0].uetr])
    client.reinstate(b.address)
    grid("settleGridlock(bytes16[])", [items[0].uetr])
    assert client.balance_of(b.address, "USD") == 600


def test_gridlock_bilateral_cap_counts_each_payment(client, make_bank, queue_payment, reverts, grid):
    a, b = make_bank(), make_bank()
    items = [queue_payment(a, b, 600, flags=1), queue_payment(a, b, 600, flags=1)]
    client.fund(a.address, "USD", 1_200, FUND_REF)
    client.set_bilateral_limit(a.address, b.address, "USD", 1_000)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=3, limit=1_000, wouldBe=1_200):
        grid("settleGridlock(bytes16[])", [o.uetr for o in items])
    grid("settleGridlock(bytes16[])", [items[0].uetr])
    client.set_bilateral_limit(a.address, b.address, "USD", 0)
    grid("settleGridlock(bytes16[])", [items[1].uetr])  # the cap is gone: nothing left to check
    assert client.balance_of(b.address, "USD") == 1_200


# ------------------------------------------------------------------ reserve-then-commit
def test_reserve_commit_close_settles_the_batch(client, make_bank, queue_payment, events, grid):
    a, b, c = make_bank(), make_bank(), make_bank(funds={"USD": 5})
    items = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 105)]
    uetrs = [o.uetr for o in items]
    r1 = grid("reserveGridlock(bytes32,bytes16[])", BATCH, uetrs[:2])
    r2 = grid("reserveGridlock(bytes32,bytes16[])", BATCH, uetrs[2:])
    assert events(r1, "GridlockReserved") == [{"batchId": BATCH, "count": 2, "reserved": 2}]
    assert events(r2, "GridlockReserved") == [{"batchId": BATCH, "count": 1, "reserved": 3}]
    assert [client.payment_status(u) for u in uetrs] == [5, 5, 5]
    assert client.gridlock_batch() == (BATCH, 1, 3, 0)
    receipt = grid("commitGridlock(bytes32)", BATCH)
    assert events(receipt, "GridlockCommitted") == [{"batchId": BATCH, "payments": 3, "accounts": 3}]
    # the money moved at commit, by net positions
    assert (client.balance_of(a.address, "USD"), client.balance_of(b.address, "USD"),
            client.balance_of(c.address, "USD")) == (5, 0, 0)
    closed = grid("closeGridlock(bytes32,bytes16[])", BATCH, uetrs[:1])
    assert [e["uetr"] for e in events(closed, "PaymentSettled")] == uetrs[:1]
    assert client.gridlock_batch() == (BATCH, 2, 3, 1)
    closed = grid("closeGridlock(bytes32,bytes16[])", BATCH, uetrs)  # the first again: skipped
    assert [e["uetr"] for e in events(closed, "PaymentSettled")] == uetrs[1:]
    assert events(closed, "GridlockClosed") == [{"batchId": BATCH, "committed": True, "payments": 3}]
    assert [client.payment_status(u) for u in uetrs] == [2, 2, 2]
    assert client.gridlock_batch() == (b"\0" * 32, 0, 0, 0)


def test_reserve_commit_with_a_forced_failure_releases_everything(client, make_bank, queue_payment, events, grid):
    a, b, c = make_bank(funds={"USD": 50}), make_bank(), make_bank()
    items = [queue_payment(a, b, 100), queue_payment(b, c, 100), queue_payment(c, a, 50)]
    uetrs = [o.uetr for o in items]
    grid("reserveGridlock(bytes32,bytes16[])", BATCH, uetrs)
    before = _all(client, [a, b, c])
    client.defund(a.address, "USD", 1, FUND_REF)  # a now lacks one cent: its net position fails at commit
    before[(a.bic, "USD")] -= 1
    receipt = grid("commitGridlock(bytes32)", BATCH)
    from tests.contracts.conftest import selector
    assert events(receipt, "GridlockReleased") == [{"batchId": BATCH, "reason": selector("GridlockInfeasible"),
                                                    "participant": a.address, "currency": b"USD"}]
    assert events(receipt, "GridlockCommitted") == []
    assert _all(client, [a, b, c]) == before
    assert client.gridlock_batch()[1] == 3
    closed = grid("closeGridlock(bytes32,bytes16[])", BATCH, uetrs)
    assert events(closed, "PaymentSettled") == []
    assert events(closed, "GridlockClosed") == [{"batchId": BATCH, "committed": False, "payments": 3}]
    assert [client.payment_status(u) for u in uetrs] == [1, 1, 1]
    assert _all(client, [a, b, c]) == before
    # back in the queue with their place: the debtor can manage them again
    assert client.queued_payment(uetrs[0])["seq"] < client.queued_payment(uetrs[1])["seq"]
    client.cancel_queued(uetrs[0])
    assert client.payment_status(uetrs[0]) == 3


def test_release_before_commit_and_reserved_payments_are_out_of_reach(client, make_bank, queue_payment, reverts,
                                                                      grid):
    a, b = make_bank(), make_bank(funds={"USD": 1_000})
    p = queue_payment(a, b, 100)
    grid("reserveGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    for action, args in (("cancelQueued(bytes16)", [p.uetr]), ("setHold(bytes16,bool)", [p.uetr, True]),
                         ("setPriority(bytes16,bool)", [p.uetr, True])):
        with reverts("NotQueued", uetr=p.uetr):
            grid(action, *args)
    with reverts("GridlockItemInvalid", uetr=p.uetr):
        grid("settleGridlock(bytes16[])", [p.uetr])
    with reverts("GridlockItemInvalid", uetr=p.uetr):
        grid("reserveGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    other = b"\x43" * 32
    with reverts("GridlockBatchState", batchId=other, openBatchId=BATCH, state=1):
        grid("reserveGridlock(bytes32,bytes16[])", other, [])
    client.fund(a.address, "USD", 100, FUND_REF)
    client.settle_queued([p.uetr])  # skipped: reserved, not queued
    assert client.payment_status(p.uetr) == 5
    with reverts("GridlockBatchState", batchId=BATCH, openBatchId=BATCH, state=1):
        grid("closeGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    grid("releaseGridlock(bytes32)", BATCH)
    with reverts("GridlockBatchState", batchId=BATCH, openBatchId=BATCH, state=3):
        grid("commitGridlock(bytes32)", BATCH)
    grid("closeGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    assert client.payment_status(p.uetr) == 1 and client.gridlock_batch()[1] == 0
    client.settle_queued([p.uetr])  # back in the queue, and now covered
    assert client.payment_status(p.uetr) == 2


def test_released_batch_gives_back_its_bilateral_spend(client, make_bank, queue_payment, grid):
    a, b = make_bank(), make_bank()
    p = queue_payment(a, b, 600)
    client.set_bilateral_limit(a.address, b.address, "USD", 1_000)
    grid("reserveGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    grid("releaseGridlock(bytes32)", BATCH)
    grid("closeGridlock(bytes32,bytes16[])", BATCH, [p.uetr])
    q = queue_payment(a, b, 700)
    client.fund(a.address, "USD", 700, FUND_REF)
    client.settle_queued([q.uetr])  # 700 <= 1,000: the released 600 no longer counts
    assert client.payment_status(q.uetr) == 2


def test_gridlock_batch_calls_need_the_operator(client, make_bank, queue_payment, call_as, reverts):
    from eth_utils import keccak
    a, b = make_bank(), make_bank()
    p = queue_payment(a, b, 100)
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address,
                 neededRole=keccak(text="OPERATOR_ROLE")):
        call_as(client.relayer, "ledger", "reserveGridlock(bytes32,bytes16[])", [BATCH, [p.uetr]])


def test_settle_gridlock_gas_per_payment(client, make_bank, make_order, call_as):
    """Net settlement: gas per payment is flat (each payment read once, one status write, one
    event); the balances are written once per account. 1,000 payments: see scripts/bench_gridlock.py."""
    banks = [make_bank(funds={"USD": 1}) for _ in range(4)]
    signed = [make_order(banks[i % 4], banks[(i + 1) % 4], 10, flags=1) for i in range(200)]
    for start in range(0, len(signed), 50):
        part = signed[start:start + 50]
        client.relayer.transact(client.ledger, client.encode_batch([o for o, _ in part], [s for _, s in part]),
                                gas=12_000_000, simulate=False)  # LedgerClient's batch budget is short for queued items
    assert all(client.payment_status(o.uetr) == 1 for o, _ in signed)
    receipt = call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [[o.uetr for o, _ in signed]],
                      gas=8_000_000)
    per_payment = (receipt["gasUsed"] - 21_000) / len(signed)
    assert per_payment < 19_000, per_payment
