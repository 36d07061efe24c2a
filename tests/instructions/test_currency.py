"""Money: ISO 4217 exponents, amount rules (AM12), exact minor-unit conversion."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_gateway.errors import InvalidAmount, UnknownCurrency
from chain_gateway.instructions.currency import (
    MAX_INTEGER_DIGITS,
    check_amount,
    currency_exponent,
    decimal_places,
    format_amount,
    from_minor,
    parse_decimal,
    to_minor,
    validate_currency,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("RWF", 0), ("BHD", 3), ("KWD", 3), ("TND", 3)],
)
def test_currency_exponent_from_iso_table(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize(
    "code",
    ["XAU", "XAG", "XPT", "XPD", "XDR", "XXX", "XTS", "XSU", "XUA", "XBA"],
)
def test_currency_commodity_and_special_codes_are_am03(code: str) -> None:
    with pytest.raises(UnknownCurrency) as caught:
        currency_exponent(code)
    assert caught.value.reason_code == "AM03"
    assert code in caught.value.detail


@pytest.mark.parametrize("code", ["USN", "CLF", "BOV", "MXV", "CHE"])
def test_currency_fund_codes_are_am03(code: str) -> None:
    with pytest.raises(UnknownCurrency, match="fund code"):
        validate_currency(code)


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "ZZZ", "", " USD", "U$D"])
def test_currency_malformed_or_unknown_is_am03(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        validate_currency(code)


@pytest.mark.parametrize("value", [None, 840, b"USD", ["USD"]])
def test_currency_non_string_is_am03_not_type_error(value: object) -> None:
    with pytest.raises(UnknownCurrency):
        validate_currency(value)


# --- amount rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0.01", "USD"), ("1250.75", "USD"), ("1250.7", "USD"), ("100.000", "USD"),
        ("1", "JPY"), ("45000000", "JPY"), ("45000000.0", "JPY"),
        ("0.001", "BHD"), ("1.234", "BHD"),
        ("999999999999999999.99", "USD"), ("999999999999999999", "JPY"), ("999999999999999999.999", "BHD"),
    ],
)
def test_amount_valid(amount: str, currency: str) -> None:
    assert check_amount(parse_decimal(amount), currency) == Decimal(amount)


@pytest.mark.parametrize(
    ("amount", "currency", "fragment"),
    [
        ("0", "USD", "greater than zero"),
        ("0.00", "USD", "greater than zero"),
        ("1.001", "USD", "3 decimal places but USD allows 2"),
        ("0.5", "JPY", "1 decimal places but JPY allows 0"),
        ("1.2345", "BHD", "4 decimal places but BHD allows 3"),
        ("1000000000000000000", "USD", "more than 18 integer digits"),
        ("1000000000000000000", "JPY", "more than 18 integer digits"),
        # 29 significant digits: a context-based check would round this to 1 and accept it.
        ("1.0000000000000000000000000001", "USD", "decimal places"),
    ],
)
def test_amount_invalid_is_am12(amount: str, currency: str, fragment: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        check_amount(parse_decimal(amount), currency)
    assert caught.value.reason_code == "AM12"
    assert fragment in caught.value.detail


def test_amount_eighteen_integer_digits_boundary() -> None:
    largest = Decimal("9" * MAX_INTEGER_DIGITS)
    check_amount(largest, "JPY")
    with pytest.raises(InvalidAmount):
        check_amount(largest + 1, "JPY")


@pytest.mark.parametrize("value", ["-1", "-0.01", "+1", "1e3", "1E-2", " 1", "1 ", "1.", ".5", "1,00", "NaN", "Infinity", "", "abc"])
def test_parse_decimal_refuses_non_plain_text(value: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_decimal(value)
    assert caught.value.reason_code == "AM12"


def test_parse_decimal_negative_text_says_positive() -> None:
    with pytest.raises(InvalidAmount, match="positive"):
        parse_decimal("-5")


@pytest.mark.parametrize("value", [1.5, 0.1, 100.0, float("nan"), True, False])
def test_parse_decimal_refuses_floats_and_bools(value: object) -> None:
    with pytest.raises(InvalidAmount, match="floats are never money"):
        parse_decimal(value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")])
def test_parse_decimal_refuses_non_finite_decimals(value: Decimal) -> None:
    with pytest.raises(InvalidAmount, match="finite"):
        parse_decimal(value)


def test_parse_decimal_accepts_int_and_decimal() -> None:
    assert parse_decimal(12) == Decimal(12)
    assert parse_decimal(Decimal("1.50")) == Decimal("1.50")


def test_negative_decimal_is_am12() -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        check_amount(Decimal("-1.00"), "USD")


@pytest.mark.parametrize(("value", "places"), [("1.50", 1), ("100", 0), ("1E+3", 0), ("0.010", 2), ("5.000", 0)])
def test_decimal_places_ignores_trailing_zeros(value: str, places: int) -> None:
    assert decimal_places(Decimal(value)) == places


# --- minor units -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1250.75", "USD", 125075), ("0.01", "USD", 1), ("12.5", "USD", 1250), ("100.000", "USD", 10000),
        ("45000000", "JPY", 45000000), ("1.234", "BHD", 1234), ("0.001", "BHD", 1),
        ("999999999999999999.99", "USD", 99999999999999999999),
        ("999999999999999999.999", "BHD", 999999999999999999999),
    ],
)
def test_to_minor_exact(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor
    assert from_minor(currency, minor) == Decimal(amount)


def test_to_minor_refuses_sub_minor_amounts() -> None:
    with pytest.raises(InvalidAmount, match="finer than one minor unit"):
        to_minor(Decimal("0.001"), "USD")


def test_from_minor_has_exactly_the_exponent_digits() -> None:
    assert str(from_minor("USD", 1250)) == "12.50"
    assert str(from_minor("JPY", 45)) == "45"
    assert str(from_minor("BHD", 1)) == "0.001"
    assert str(from_minor("USD", -150)) == "-1.50"
    # 25 digits: more than a decimal context's default precision of 28 would still take,
    # but built from digits, never rounded.
    big = 10**30 + 7
    assert to_minor(from_minor("USD", big), "USD") == big


@pytest.mark.parametrize("value", [1.5, "12", True, None])
def test_from_minor_refuses_non_int(value: object) -> None:
    with pytest.raises(InvalidAmount):
        from_minor("USD", value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [("1250.7", "USD", "1250.70"), ("45000000.0", "JPY", "45000000"), ("1.2", "BHD", "1.200"), ("100.000", "USD", "100.00")],
)
def test_format_amount(amount: str, currency: str, text: str) -> None:
    assert format_amount(Decimal(amount), currency) == text


# --- property: exact round trip --------------------------------------------------------------
_SETTLEMENT = st.sampled_from(["USD", "EUR", "JPY", "BHD", "KWD", "GBP", "CHF", "KRW", "TND", "RWF"])


@settings(max_examples=300, deadline=None)
@given(currency=_SETTLEMENT, data=st.data())
def test_property_minor_round_trip(currency: str, data: st.DataObject) -> None:
    exponent = currency_exponent(currency)
    limit = 10 ** (MAX_INTEGER_DIGITS + exponent) - 1  # the largest valid amount in minor units
    minor = data.draw(st.integers(min_value=1, max_value=limit))
    amount = from_minor(currency, minor)
    assert check_amount(amount, currency) == amount
    assert to_minor(amount, currency) == minor
    text = format_amount(amount, currency)
    assert to_minor(parse_decimal(text), currency) == minor
    assert len(text.partition(".")[2]) == exponent


@settings(max_examples=300, deadline=None)
@given(
    currency=_SETTLEMENT,
    units=st.integers(min_value=0, max_value=10**MAX_INTEGER_DIGITS - 1),
    fraction=st.integers(min_value=0, max_value=999),
    trailing_zeros=st.integers(min_value=0, max_value=4),
)
def test_property_decimal_text_round_trip(currency: str, units: int, fraction: int, trailing_zeros: int) -> None:
    exponent = currency_exponent(currency)
    digits = f"{fraction % 10**exponent:0{exponent}d}" if exponent else ""
    text = f"{units}.{digits}{'0' * trailing_zeros}" if digits or trailing_zeros else str(units)
    amount = parse_decimal(text)
    if amount == 0:
        with pytest.raises(InvalidAmount):
            check_amount(amount, currency)
        return
    minor = to_minor(check_amount(amount, currency), currency)
    assert from_minor(currency, minor) == amount
    assert minor == units * 10**exponent + (int(digits) if digits else 0)
