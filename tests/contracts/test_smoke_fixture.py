def test_fixture_pays_once(client, make_bank, make_order):
    a = make_bank(funds={"USD": 1000})
    b = make_bank(country="DE")
    order, sig = make_order(a, b, 400)
    client.submit_payment(order, sig)
    assert client.balance_of(a.address, "USD") == 600
    assert client.balance_of(b.address, "USD") == 400
    assert client.payment_status(order.uetr) == 2


def test_fixture_isolated(client, make_bank):
    assert client.total_supply("USD") == 0
