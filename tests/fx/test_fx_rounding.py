"""The debit rule, as a property: ceil(amount * 1e18 / rate), so the debtor never pays less than
the amount is worth and never a whole X minor unit more; rate and quote id parsing."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain_gateway.errors import InvalidAmount, InvalidMessage
from chain_gateway.fx import RATE_SCALE, debit_amount, parse_quote_id, parse_rate, rate_major


@given(amount=st.integers(1, 2**96 - 1), rate=st.integers(1, 10**40))
def test_debit_is_the_smallest_that_covers_the_amount(amount, rate):
    debit = debit_amount(amount, rate)
    assert debit * rate >= amount * RATE_SCALE  # no money created: X paid is worth at least Y received
    assert (debit - 1) * rate < amount * RATE_SCALE  # and it is the smallest such whole X minor unit


def test_rate_is_the_scaled_integer_string():
    assert parse_rate("1513700000000000000") == 15137 * 10**14
    for bad in ("1.5", "-1", "0", "", "1e18", 15, None, "9" * 79):
        with pytest.raises(InvalidAmount):
            parse_rate(bad)
    assert rate_major(15137 * 10**14, "USD", "JPY") == "151.37"  # 1 USD = 151.37 JPY
    assert rate_major(2516 * 10**15, "JPY", "BHD") == "0.002516"


def test_quote_id_is_64_hex_characters():
    assert parse_quote_id("ab" * 32) == bytes.fromhex("ab" * 32)
    assert parse_quote_id("0x" + "AB" * 32) == bytes.fromhex("ab" * 32)
    for bad in ("ab" * 31, "zz" * 32, 5):
        with pytest.raises(InvalidMessage):
            parse_quote_id(bad)
