"""Behaviour rules over payment_intake: each firing and not firing, at their boundaries,
and the settings that configure them."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Context, Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from chain_gateway.db import utcnow
from chain_gateway.errors import ConfigurationError
from chain_gateway.risk.config import DuplicateRule, OutlierRule, RiskConfig, VelocityRule
from chain_gateway.risk.rules import check_duplicate, check_outlier, check_velocity, evaluate_rules, outlier_threshold

from .conftest import GB, NY, instruction

History = Callable[..., list[str]]


# --- velocity -------------------------------------------------------------------------------
def test_velocity_count_fires_only_above_the_limit(session: Session, add_history: History) -> None:
    rule = VelocityRule(enabled=True, window_seconds=60, max_count=3)
    add_history(["1.00", "2.00"], step=timedelta(seconds=5))
    assert check_velocity(session, instruction(), rule, utcnow()) is None  # 3rd payment: at the limit
    add_history(["3.00"], step=timedelta(seconds=1))
    hit = check_velocity(session, instruction(), rule, utcnow())  # 4th: just over
    assert hit is not None and hit.rule == "velocity.count" and hit.reason_code == "SL15"
    assert hit.action == "hold" and hit.evidence["count"] == 4 and hit.evidence["max_count"] == 3


def test_velocity_count_window_slides(session: Session, add_history: History) -> None:
    rule = VelocityRule(enabled=True, window_seconds=60, max_count=2)
    now = utcnow()
    add_history(["1.00"], at=now - timedelta(seconds=61))  # just outside the window
    add_history(["1.00"], at=now - timedelta(seconds=59))  # inside
    assert check_velocity(session, instruction(), rule, now) is None
    assert check_velocity(session, instruction(), rule, now - timedelta(seconds=2)) is not None  # both inside


def test_velocity_counts_per_debtor(session: Session, add_history: History) -> None:
    rule = VelocityRule(enabled=True, window_seconds=60, max_count=1)
    add_history(["1.00", "1.00"], debtor=GB)
    assert check_velocity(session, instruction(debtor_agent=NY), rule, utcnow()) is None
    assert check_velocity(session, instruction(debtor_agent=GB), rule, utcnow()) is not None


def test_velocity_value_at_just_under_and_over_the_limit(session: Session, add_history: History) -> None:
    rule = VelocityRule(enabled=True, window_seconds=3600, max_count=None, max_value={"EUR": Decimal("1000.00")},
                        action="reject")
    add_history(["600.00", "300.00"])
    add_history(["5000.00"], currency="USD")  # another currency does not count
    now = utcnow()
    assert check_velocity(session, instruction(amount="99.99"), rule, now) is None  # 999.99
    assert check_velocity(session, instruction(amount="100.00"), rule, now) is None  # 1000.00: at the limit
    hit = check_velocity(session, instruction(amount="100.01"), rule, now)  # 1000.01
    assert hit is not None and hit.rule == "velocity.value" and hit.reason_code == "SL16"
    assert hit.action == "reject" and hit.evidence["total"] == "1000.01" and hit.evidence["max_value"] == "1000.00"


def test_velocity_value_ignores_currencies_without_a_limit(session: Session, add_history: History) -> None:
    rule = VelocityRule(enabled=True, max_count=None, max_value={"EUR": Decimal(1)})
    add_history(["900.00"], currency="USD")
    assert check_velocity(session, instruction(currency="USD", amount="900.00"), rule, utcnow()) is None


# --- suspected duplicate ---------------------------------------------------------------------
def test_duplicate_fires_for_the_same_payment_under_another_uetr(session: Session, add_history: History) -> None:
    rule = DuplicateRule(enabled=True, window_seconds=3600)
    [first] = add_history(["250.00"], end_to_end_id="INV-7")
    hit = check_duplicate(session, instruction(amount="250.00", end_to_end_id="INV-7"), rule, utcnow())
    assert hit is not None and hit.rule == "duplicate" and hit.reason_code == "AM05"
    assert hit.evidence["duplicate_of"] == first


@pytest.mark.parametrize("change", [
    {"amount": "250.01"}, {"end_to_end_id": "INV-8"}, {"creditor_agent": GB}, {"currency": "USD"},
    {"debtor_agent": GB},
])
def test_duplicate_needs_every_field_equal(session: Session, add_history: History, change: dict[str, Any]) -> None:
    add_history(["250.00"], end_to_end_id="INV-7")
    fields = {"amount": "250.00", "end_to_end_id": "INV-7", **change}
    assert check_duplicate(session, instruction(**fields), DuplicateRule(enabled=True), utcnow()) is None


def test_duplicate_window_and_same_uetr(session: Session, add_history: History) -> None:
    rule = DuplicateRule(enabled=True, window_seconds=600)
    now = utcnow()
    [old] = add_history(["250.00"], end_to_end_id="INV-7", at=now - timedelta(seconds=601))
    assert check_duplicate(session, instruction(amount="250.00", end_to_end_id="INV-7"), rule, now) is None
    [recent] = add_history(["250.00"], end_to_end_id="INV-7", at=now - timedelta(seconds=10))
    # the same UETR is a replay (idempotency), not a duplicate
    same = instruction(uetr=recent, amount="250.00", end_to_end_id="INV-7")
    assert check_duplicate(session, same, rule, now) is None
    assert old != recent


def test_duplicate_ignores_end_to_end_ids_that_mean_none(session: Session, add_history: History) -> None:
    add_history(["10.00"], end_to_end_id="NOTPROVIDED")
    ins = instruction(amount="10.00", end_to_end_id="NOTPROVIDED")
    assert check_duplicate(session, ins, DuplicateRule(enabled=True), utcnow()) is None
    strict = DuplicateRule(enabled=True, ignored_end_to_end_ids=())
    assert check_duplicate(session, ins, strict, utcnow()) is not None


# --- amount outlier ---------------------------------------------------------------------------
def test_outlier_threshold_is_exact_decimal() -> None:
    mean, stddev, threshold = outlier_threshold([100, 200, 300, 400], Decimal(2))
    assert mean == Decimal(250)
    assert stddev == Decimal(12500).sqrt(Context(prec=40))  # population variance 12500, 40 digits
    assert str(threshold).startswith("473.606797749978969640917366873127")


def test_outlier_is_inactive_until_n_payments(session: Session, add_history: History) -> None:
    rule = OutlierRule(enabled=True, history=5, k=Decimal(1))
    add_history(["10.00"] * 4)
    assert check_outlier(session, instruction(amount="1000000.00"), rule, utcnow()) is None


def test_outlier_fires_just_above_mean_plus_k_stddev(session: Session, add_history: History) -> None:
    # 100, 200, 300, 400 EUR: mean 250.00, population stddev 111.80..., k = 2 -> 473.60...
    rule = OutlierRule(enabled=True, history=4, k=Decimal(2))
    add_history(["100.00", "200.00", "300.00", "400.00"])
    now = utcnow()
    assert check_outlier(session, instruction(amount="473.60"), rule, now) is None  # just under
    hit = check_outlier(session, instruction(amount="473.61"), rule, now)  # just over
    assert hit is not None and hit.rule == "outlier" and hit.reason_code == "AM09"
    assert hit.evidence["mean"] == "250.00" and hit.evidence["history"] == 4


def test_outlier_uses_the_last_n_payments_of_that_currency(session: Session, add_history: History) -> None:
    rule = OutlierRule(enabled=True, history=3, k=Decimal(0))
    now = utcnow()
    add_history(["1000.00", "1000.00", "1000.00"], at=now - timedelta(hours=2))  # older: outside the last 3
    add_history(["10.00", "10.00", "10.00"], at=now - timedelta(hours=1))
    add_history(["99999.00"] * 3, currency="USD")  # another currency
    assert check_outlier(session, instruction(amount="10.00"), rule, now) is None  # == mean, k = 0: not above
    assert check_outlier(session, instruction(amount="10.01"), rule, now) is not None


def test_evaluate_rules_runs_only_enabled_rules_in_order(session: Session, add_history: History) -> None:
    add_history(["250.00"] * 3, end_to_end_id="INV-7")
    payment = instruction(amount="250.00", end_to_end_id="INV-7")
    assert evaluate_rules(session, payment, RiskConfig(), utcnow()) == []  # all off by default
    config = RiskConfig(velocity=VelocityRule(enabled=True, max_count=2), duplicate=DuplicateRule(enabled=True),
                        outlier=OutlierRule(enabled=True, history=3, k=Decimal(0)))
    assert [h.rule for h in evaluate_rules(session, payment, config, utcnow())] == ["duplicate", "velocity.count"]


# --- settings ---------------------------------------------------------------------------------
def test_config_from_mapping_reads_every_setting() -> None:
    config = RiskConfig.from_mapping({
        "watchlist_path": "/etc/gw/watch.csv", "watchlist_check_interval_ms": 250,
        "velocity": {"enabled": True, "window_seconds": 60, "max_count": 10, "max_value": {"EUR": "1000000.00"},
                     "action": "reject", "count_reason_code": "AM18", "value_reason_code": "AM21"},
        "duplicate": {"enabled": True, "window_seconds": 120, "ignored_end_to_end_ids": ["NOTPROVIDED", "NONE"],
                      "action": "reject", "reason_code": "DUPL"},
        "outlier": {"enabled": True, "history": 30, "k": "2.5", "action": "hold", "reason_code": "NARR"},
    })
    assert str(config.watchlist_path) == "/etc/gw/watch.csv" and config.watchlist_check_interval_ms == 250
    assert config.velocity.max_value == {"EUR": Decimal("1000000.00")} and config.velocity.action == "reject"
    assert config.velocity.max_value_minor("EUR") == 100_000_000
    assert config.duplicate.ignored_end_to_end_ids == ("NOTPROVIDED", "NONE")
    assert config.outlier.k == Decimal("2.5") and config.outlier.history == 30
    assert RiskConfig.from_mapping(config.as_dict()) == config


def test_config_from_settings_reads_the_named_fields() -> None:
    class FakeSettings:
        watchlist_path = "/tmp/w.jsonl"
        risk_rules = {"duplicate": {"enabled": True}}

    config = RiskConfig.from_settings(FakeSettings())
    assert str(config.watchlist_path) == "/tmp/w.jsonl" and config.duplicate.enabled
    assert RiskConfig.from_settings(object()) == RiskConfig()


@pytest.mark.parametrize("data,message", [
    ({"velocity": {"enabled": "yes"}}, "velocity.enabled"),
    ({"velocity": {"enabled": True, "max_count": None}}, "without max_count or max_value"),
    ({"velocity": {"max_value": {"EUR": 1.5}}}, "decimal string"),
    ({"velocity": {"max_value": {"EUR": "1.005"}}}, "decimal places"),
    ({"velocity": {"max_value": {"XXX": "1"}}}, "XXX"),
    ({"duplicate": {"action": "block"}}, "duplicate.action"),
    ({"duplicate": {"reason_code": "dupe"}}, "reason code"),
    ({"outlier": {"history": 1}}, "outlier.history"),
    ({"outlier": {"k": "-1"}}, "outlier.k"),
    ({"outlier": {"kk": 3}}, "unknown risk setting"),
    ({"sanctions": {}}, "unknown risk setting"),
])
def test_config_refuses_bad_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RiskConfig.from_mapping(data)
    assert message in info.value.detail
