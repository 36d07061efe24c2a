"""settleBatch's per-call shortcuts keep every per-item check (issue 7).

A batch asks the registry once per participant (an in-memory set of the parties it already found
active, at most 64, probing at most 8 slots) and reads a pair's bilateral cap only when the debtor
has a cap in that currency (a per-debtor counter maintained by setBilateralLimit). These tests pin
what must not change: a suspended party is refused whatever the batch saw before it, the zero
address is never taken for a cached party, a full cache or colliding addresses fall back to the
registry, and caps set, cleared and set again are enforced as before.
"""
from __future__ import annotations

from types import SimpleNamespace

from chain_gateway.ledger import ROLE_BANK

ZERO = "0x" + "00" * 20


def _statuses(client, orders):
    return [client.payment_status(o.uetr) for o in orders]


def _reasons(events, receipt):
    return {e["uetr"]: e["reason"] for e in events(receipt, "PaymentRejected")}


def test_batch_refuses_a_party_suspended_earlier_in_the_day(client, make_bank, make_order, events, error_selector):
    a, b, c = make_bank(funds={"USD": 1_000}), make_bank("DE", funds={"USD": 1_000}), make_bank("GB")
    # Both pay and are paid before the suspension: their slots are warm, their history exists.
    first = [make_order(a, b, 10), make_order(b, c, 10)]
    client.settle_batch([o for o, _ in first], [s for _, s in first])
    client.suspend(b.address)
    items = [
        make_order(a, c, 1),   # a and c found active: cached
        make_order(a, b, 2),   # creditor b suspended: refused though a is cached
        make_order(b, c, 3),   # debtor b suspended: refused though c is cached
        make_order(c, a, 0),   # invalid (checked before the registry)
        make_order(a, c, 4),   # both cached: settles
        make_order(b, a, 5),   # still refused after more cached items
    ]
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    assert _statuses(client, orders) == [2, 4, 4, 4, 2, 4]
    reasons = _reasons(events, receipt)
    assert [reasons.get(o.uetr) for o in orders] == [
        None, error_selector("NotActive"), error_selector("NotActive"), error_selector("InvalidOrder"), None,
        error_selector("NotActive")]
    assert client.balance_of(a.address, "USD") == 1_000 - 10 - 1 - 4
    assert client.balance_of(b.address, "USD") == 1_000 + 10 - 10
    assert client.balance_of(c.address, "USD") == 10 + 1 + 4
    assert client.total_supply("USD") == 2_000


def test_batch_never_takes_the_zero_address_for_a_cached_party(client, make_bank, make_order, events, error_selector):
    a, b = make_bank(funds={"USD": 100}), make_bank("DE")
    zero = SimpleNamespace(address=ZERO)
    items = [make_order(a, b, 1), make_order(a, zero, 2), make_order(b, a, 0)]
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    assert _statuses(client, orders) == [2, 4, 4]
    assert _reasons(events, receipt)[orders[1].uetr] == error_selector("NotActive")
    assert client.balance_of(ZERO, "USD") == 0
    assert client.balance_of(a.address, "USD") == 99


def test_batch_with_more_parties_than_the_cache_holds(client, make_bank, make_order, error_selector, events):
    """70 creditors + 1 debtor = 71 parties, beyond the 64 the set holds: the parties that do not
    fit are asked of the registry on every payment, and a suspended one is refused wherever it is."""
    a = make_bank(funds={"USD": 1_000_000})
    creditors = [make_bank("DE") for _ in range(70)]
    early, late = creditors[2], creditors[68]
    client.suspend(early.address)
    client.suspend(late.address)
    items = [make_order(a, c, 1 + i) for i, c in enumerate(creditors)]
    items += [make_order(a, c, 1) for c in creditors]  # a second round, cache full
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    refused = {early.address, late.address}
    expected = [4 if o.creditor in refused else 2 for o in orders]
    assert _statuses(client, orders) == expected
    assert set(_reasons(events, receipt).values()) == {error_selector("NotActive")}
    paid = sum(o.amount for o in orders if o.creditor not in refused)
    assert client.balance_of(a.address, "USD") == 1_000_000 - paid
    for i, c in enumerate(creditors):
        want = 0 if c.address in refused else (1 + i) + 1
        assert client.balance_of(c.address, "USD") == want
    assert client.total_supply("USD") == 1_000_000


def _colliding_addresses(n: int, low: int = 0x5A) -> list[str]:
    """`n` addresses sharing their low byte (the set's hash): every lookup probes the same run."""
    return ["0x" + f"{0xC0FFEE00 + i:038x}" + f"{low:02x}" for i in range(n)]


def test_batch_with_colliding_addresses_falls_back_to_the_registry(client, make_bank, make_order, events,
                                                                      error_selector):
    """Twelve creditors whose addresses hash to the same slot: more than the 8 slots a lookup
    probes, so the last ones never enter the set and are checked at the registry every time."""
    a = make_bank(funds={"USD": 10_000})
    addresses = _colliding_addresses(12)
    for i, addr in enumerate(addresses):
        client.register(addr, f"TC{chr(65 + i // 26)}{chr(65 + i % 26)}US2L", "US", ROLE_BANK)
    suspended = {addresses[3], addresses[10]}
    for addr in suspended:
        client.suspend(addr)
    creditors = [SimpleNamespace(address=addr) for addr in addresses]
    items = [make_order(a, c, 1) for c in creditors] * 1
    items += [make_order(a, c, 2) for c in reversed(creditors)]
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    lower = {addr.lower() for addr in suspended}
    assert _statuses(client, orders) == [4 if o.creditor.lower() in lower else 2 for o in orders]
    assert set(_reasons(events, receipt).values()) == {error_selector("NotActive")}
    for addr in addresses:
        assert client.balance_of(addr, "USD") == (0 if addr in suspended else 3)
    assert client.balance_of(a.address, "USD") == 10_000 - 3 * 10


def test_bilateral_cap_within_one_batch(client, make_bank, make_order, events, error_selector):
    a, b, c = make_bank(funds={"USD": 1_000}), make_bank("DE"), make_bank("GB")
    client.set_bilateral_limit(a.address, b.address, "USD", 100)
    items = [make_order(a, b, 60), make_order(a, c, 500), make_order(a, b, 50), make_order(a, b, 40),
             make_order(a, b, 1, flags=1)]
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    # 60 + 40 fill the cap; 50 would pass it (refused); a queued order over the cap waits.
    assert _statuses(client, orders) == [2, 2, 4, 2, 1]
    assert _reasons(events, receipt) == {orders[2].uetr: error_selector("LimitExceeded")}
    assert client.balance_of(b.address, "USD") == 100
    assert client.balance_of(c.address, "USD") == 500


def test_bilateral_cap_set_cleared_and_set_again(client, make_bank, make_order, reverts, events, error_selector):
    a, b, c, d = make_bank(funds={"USD": 10_000}), make_bank("DE"), make_bank("GB"), make_bank("FR")

    def pay(creditor, amount):
        order, sig = make_order(a, creditor, amount)
        client.settle_batch([order], [sig])
        return client.payment_status(order.uetr)

    client.set_bilateral_limit(a.address, b.address, "USD", 100)
    assert pay(b, 60) == 2
    assert pay(b, 50) == 4  # 110 > 100
    client.set_bilateral_limit(a.address, b.address, "USD", 0)  # cleared: a has no cap left
    assert pay(b, 500) == 2
    client.set_bilateral_limit(a.address, b.address, "USD", 100)  # set again, same day
    # Spending while no cap was set is not counted (as before the counter existed): 60 today.
    assert pay(b, 50) == 4
    assert pay(b, 40) == 2
    # Two caps, one changed (non-zero to non-zero: still two), one cleared: the other still binds.
    client.set_bilateral_limit(a.address, c.address, "USD", 100)
    client.set_bilateral_limit(a.address, b.address, "USD", 200)
    client.set_bilateral_limit(a.address, b.address, "USD", 0)
    client.set_bilateral_limit(a.address, d.address, "USD", 0)  # clearing an unset pair: no change
    assert pay(c, 150) == 4
    assert pay(c, 100) == 2
    assert pay(b, 1_000) == 2
    assert pay(d, 1_000) == 2
    # And once every cap is cleared, nothing binds.
    client.set_bilateral_limit(a.address, c.address, "USD", 0)
    assert pay(c, 1_000) == 2
    # submitPayment takes the same path: a cap set again refuses, with the cap's values (100 of
    # today's spending counted while the cap was set, the 1,000 paid without a cap not).
    client.set_bilateral_limit(a.address, c.address, "USD", 1_100)
    order, sig = make_order(a, c, 1_001)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=3, limit=1_100, wouldBe=1_101):
        client.submit_payment(order, sig)


def test_daily_outflow_limit_counts_items_of_the_same_batch(client, make_bank, make_order, events, error_selector):
    a, b = make_bank(funds={"USD": 1_000}), make_bank("DE")
    client.set_limits(a.address, "USD", 0, 100)
    items = [make_order(a, b, 70), make_order(a, b, 40), make_order(a, b, 30), make_order(a, b, 5, flags=1)]
    orders = [o for o, _ in items]
    receipt = client.settle_batch(orders, [s for _, s in items])
    assert _statuses(client, orders) == [2, 4, 2, 1]
    assert _reasons(events, receipt) == {orders[1].uetr: error_selector("LimitExceeded")}
    assert client.balance_of(b.address, "USD") == 100


# ----------------------------------------------------------------- settleGridlock's item pass
GRID_GAS = 8_000_000


def test_gridlock_item_pass_counts_caps_in_item_order(client, make_bank, queue_payment, call_as, events, reverts):
    """Items of a debtor with caps interleaved with others: the pass stops after each capped item
    to count its pair's cap, then goes on; events stay in item order, every balance nets."""
    a, b, c, d = make_bank(), make_bank("DE"), make_bank("GB"), make_bank("FR")
    client.set_bilateral_limit(a.address, b.address, "USD", 1_000)
    client.set_bilateral_limit(a.address, d.address, "USD", 50)  # a has caps; a -> c has none
    items = [queue_payment(c, d, 300), queue_payment(a, b, 400), queue_payment(a, c, 700),
             queue_payment(d, a, 500), queue_payment(a, b, 500), queue_payment(b, c, 100)]
    client.fund(a.address, "USD", 1_100, b"\0" * 32)
    client.fund(d.address, "USD", 200, b"\0" * 32)
    receipt = call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [[o.uetr for o in items]], gas=GRID_GAS)
    settled = events(receipt, "PaymentSettled")
    assert [e["uetr"] for e in settled] == [o.uetr for o in items]
    assert settled[2] == {"uetr": items[2].uetr, "debtor": a.address, "creditor": c.address, "currency": b"USD",
                          "amount": 700, "instructionHash": items[2].instruction_hash}
    assert [client.payment_status(o.uetr) for o in items] == [2] * 6
    # a: 1,100 - 400 - 700 - 500 + 500; b: 400 + 500 - 100; c: -300 + 700 + 100; d: 200 + 300 - 500
    assert [client.balance_of(x.address, "USD") for x in (a, b, c, d)] == [0, 800, 500, 0]
    assert client.total_supply("USD") == 1_300
    # The a -> b cap counted both payments (900 of 1,000 today): 101 more is over it.
    late = queue_payment(a, b, 101)
    client.fund(a.address, "USD", 101, b"\0" * 32)
    with reverts("LimitExceeded", participant=a.address, currency=b"USD", kind=3, limit=1_000, wouldBe=1_001):
        call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [[late.uetr]], gas=GRID_GAS)


def test_gridlock_item_pass_refuses_held_listed_twice_and_unknown(client, make_bank, queue_payment, call_as, reverts):
    a, b = make_bank(), make_bank("DE")
    first, second = queue_payment(a, b, 10), queue_payment(b, a, 10)
    for uetrs, bad in (([first.uetr, second.uetr, first.uetr], first.uetr), ([first.uetr, b"\x42" * 16], b"\x42" * 16)):
        with reverts("GridlockItemInvalid", uetr=bad):
            call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [uetrs], gas=GRID_GAS)
    client.set_hold(second.uetr, True)
    with reverts("GridlockItemInvalid", uetr=second.uetr):
        call_as(client.operator, "ledger", "settleGridlock(bytes16[])", [[first.uetr, second.uetr]], gas=GRID_GAS)
    assert [client.payment_status(o.uetr) for o in (first, second)] == [1, 1]


def test_assembly_literals_match_their_signatures():
    """settleGridlock's item pass writes two error selectors and the PaymentSettled topic as literals."""
    from pathlib import Path

    from eth_utils import keccak

    source = (Path(__file__).resolve().parents[2] / "contracts" / "SettlementLedger.sol").read_text()
    for signature, literal in (("GridlockItemInvalid(bytes16)", "0x802c9331"),
                               ("NetPositionsFull(uint256)", "0x0e5e4d2b"),
                               ("PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)",
                                "0x42a62c103150d09c1850dfcb58c61616864090ea370a56572bc9c5878e702b8b")):
        value = keccak(text=signature)[:4 if len(literal) == 10 else 32]
        assert "0x" + value.hex() == literal
        assert literal in source, signature


# ------------------------------------------------------------ the outflow counter fund() creates
def test_fund_creates_the_outflow_counter_as_nothing_paid(client, contracts, make_bank, make_order, latest_timestamp):
    a, b = make_bank(funds={"USD": 1_000}), make_bank("DE")
    today = latest_timestamp() // 86_400

    def outflow(day):
        return contracts["ledger"].functions.outflowOn(a.address, b"USD", day).call()

    assert (outflow(today), outflow(1), outflow(0)) == (0, 0, 0)
    client.set_limits(a.address, "USD", 0, 300)
    items = [make_order(a, b, 300), make_order(a, b, 1)]
    client.settle_batch([o for o, _ in items], [s for _, s in items])
    assert [client.payment_status(o.uetr) for o, _ in items] == [2, 4]  # the whole 300 was available
    assert outflow(today) == 300
    client.fund(a.address, "USD", 5, b"\0" * 32)  # funding again leaves today's counter alone
    assert outflow(today) == 300
