"""Risk settings: the watch list's location and every behaviour rule's switch, thresholds,
action and reason code (documented, with the reasons for each code, in docs/risk.md).

Read from the gateway settings through ``RiskConfig.from_settings`` (fields
``watchlist_path``, ``watchlist_check_interval_ms`` and ``risk_rules``, the last a mapping
such as ``{"velocity": {"enabled": true, "max_count": 50}}``); anything missing keeps the
defaults below. Behaviour rules are off by default: each one changes what happens to real
payments, so an operator turns it on deliberately with thresholds that fit the ledger.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal, cast

from chain_gateway.errors import ConfigurationError, GatewayError
from chain_gateway.instructions.currency import check_amount, to_minor, validate_currency

Action = Literal["reject", "hold"]
ACTIONS: Final = ("reject", "hold")
_REASON_CODE: Final = re.compile(r"[A-Z0-9]{4}")
#: End-to-end ids that say "none given" (ISO 20022 usage): never evidence of a duplicate.
DEFAULT_IGNORED_E2E_IDS: Final = ("NOTPROVIDED",)


@dataclass(frozen=True)
class VelocityRule:
    """Too many payments (count, any currency) or too much value (per currency) from one
    debtor within a sliding window ending now."""

    enabled: bool = False
    window_seconds: int = 3600
    max_count: int | None = 500
    max_value: Mapping[str, Decimal] = field(default_factory=dict)  # currency -> decimal amount
    action: Action = "hold"
    count_reason_code: str = "SL15"  # maximum number of credit transactions per period exceeded
    value_reason_code: str = "SL16"  # maximum total credit amount per period exceeded

    def max_value_minor(self, currency: str) -> int | None:
        limit = self.max_value.get(currency)
        return None if limit is None else to_minor(limit, currency)


@dataclass(frozen=True)
class DuplicateRule:
    """Same debtor, creditor, currency, amount and end-to-end id within the window, another UETR."""

    enabled: bool = False
    window_seconds: int = 86_400
    ignored_end_to_end_ids: tuple[str, ...] = DEFAULT_IGNORED_E2E_IDS
    action: Action = "hold"
    reason_code: str = "AM05"  # duplication


@dataclass(frozen=True)
class OutlierRule:
    """Amount above mean + k standard deviations of the debtor's last N payments in the
    currency; silent until the debtor has N payments in that currency."""

    enabled: bool = False
    history: int = 20
    k: Decimal = Decimal(3)
    action: Action = "hold"
    reason_code: str = "AM09"  # wrong amount: not the amount expected


@dataclass(frozen=True)
class RiskConfig:
    """Everything the risk engine is told (frozen: build a new one to change it)."""

    watchlist_path: Path | None = None
    watchlist_check_interval_ms: int = 1000
    velocity: VelocityRule = field(default_factory=VelocityRule)
    duplicate: DuplicateRule = field(default_factory=DuplicateRule)
    outlier: OutlierRule = field(default_factory=OutlierRule)

    @classmethod
    def from_settings(cls, settings: Any) -> RiskConfig:
        """From the gateway settings; fields the settings do not have keep their defaults."""
        path = getattr(settings, "watchlist_path", None)
        interval = getattr(settings, "watchlist_check_interval_ms", None)
        rules = getattr(settings, "risk_rules", None) or {}
        data: dict[str, Any] = dict(rules)
        if path is not None:
            data["watchlist_path"] = path
        if interval is not None:
            data["watchlist_check_interval_ms"] = interval
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RiskConfig:
        """From plain data (JSON / settings): ``{"watchlist_path", "velocity": {...}, ...}``.

        Raises ConfigurationError naming the bad setting.
        """
        known = {"watchlist_path", "watchlist_check_interval_ms", "velocity", "duplicate", "outlier"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"unknown risk setting(s) {unknown}; known: {sorted(known)}")
        path = data.get("watchlist_path")
        if path is not None and not isinstance(path, (str, Path)):
            raise ConfigurationError(f"risk setting watchlist_path must be a path, got {path!r}")
        return cls(
            watchlist_path=Path(path) if path else None,
            watchlist_check_interval_ms=_int(data.get("watchlist_check_interval_ms", 1000),
                                             "watchlist_check_interval_ms", minimum=0),
            velocity=_velocity(data.get("velocity") or {}),
            duplicate=_duplicate(data.get("duplicate") or {}),
            outlier=_outlier(data.get("outlier") or {}),
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (Decimals as strings), e.g. for the audit trail."""
        def plain(value: Any) -> Any:
            if isinstance(value, Decimal | Path):
                return str(value)
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return value
        return cast(dict[str, Any], plain(self))


# --- parsing helpers -------------------------------------------------------------------------
def _fields(section: str, data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"risk setting {section} must be a mapping, not {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown risk setting(s) {section}.{unknown}; known: {sorted(allowed)}")
    return data


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"risk setting {name} must be true or false")
    return value


def _int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"risk setting {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ConfigurationError(f"risk setting {name} must be a decimal string such as \"2.5\", got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation as exc:
        raise ConfigurationError(f"risk setting {name} is not a decimal number: {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ConfigurationError(f"risk setting {name} must be a finite number >= 0, got {value!r}")
    return result


def _action(value: Any, name: str) -> Action:
    if value not in ACTIONS:
        raise ConfigurationError(f"risk setting {name} must be one of {list(ACTIONS)}, got {value!r}")
    return cast(Action, value)


def _code(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _REASON_CODE.fullmatch(value):
        raise ConfigurationError(f"risk setting {name} must be a 4-character ISO 20022 reason code, got {value!r}")
    return value


def _velocity(data: Any) -> VelocityRule:
    d = _fields("velocity", data, {f.name for f in dataclasses.fields(VelocityRule)})
    base = VelocityRule()
    limits: dict[str, Decimal] = {}
    raw_limits = d.get("max_value", {})
    if not isinstance(raw_limits, Mapping):
        raise ConfigurationError("risk setting velocity.max_value must map currency codes to decimal amounts")
    for currency, amount in raw_limits.items():
        name = f"velocity.max_value.{currency}"
        try:
            code = validate_currency(currency)
            value = check_amount(_decimal(amount, name), code, field=name)
        except GatewayError as exc:
            raise ConfigurationError(f"risk setting {name}: {exc.detail}") from exc
        limits[code] = value
    max_count = d.get("max_count", base.max_count)
    rule = VelocityRule(
        enabled=_bool(d.get("enabled", base.enabled), "velocity.enabled"),
        window_seconds=_int(d.get("window_seconds", base.window_seconds), "velocity.window_seconds"),
        max_count=None if max_count is None else _int(max_count, "velocity.max_count"),
        max_value=limits,
        action=_action(d.get("action", base.action), "velocity.action"),
        count_reason_code=_code(d.get("count_reason_code", base.count_reason_code), "velocity.count_reason_code"),
        value_reason_code=_code(d.get("value_reason_code", base.value_reason_code), "velocity.value_reason_code"),
    )
    if rule.enabled and rule.max_count is None and not rule.max_value:
        raise ConfigurationError("risk setting velocity is enabled without max_count or max_value")
    return rule


def _duplicate(data: Any) -> DuplicateRule:
    d = _fields("duplicate", data, {f.name for f in dataclasses.fields(DuplicateRule)})
    base = DuplicateRule()
    ignored = d.get("ignored_end_to_end_ids", base.ignored_end_to_end_ids)
    if not isinstance(ignored, (list, tuple)) or not all(isinstance(i, str) for i in ignored):
        raise ConfigurationError("risk setting duplicate.ignored_end_to_end_ids must be a list of strings")
    return DuplicateRule(
        enabled=_bool(d.get("enabled", base.enabled), "duplicate.enabled"),
        window_seconds=_int(d.get("window_seconds", base.window_seconds), "duplicate.window_seconds"),
        ignored_end_to_end_ids=tuple(ignored),
        action=_action(d.get("action", base.action), "duplicate.action"),
        reason_code=_code(d.get("reason_code", base.reason_code), "duplicate.reason_code"),
    )


def _outlier(data: Any) -> OutlierRule:
    d = _fields("outlier", data, {f.name for f in dataclasses.fields(OutlierRule)})
    base = OutlierRule()
    return OutlierRule(
        enabled=_bool(d.get("enabled", base.enabled), "outlier.enabled"),
        history=_int(d.get("history", base.history), "outlier.history", minimum=2),
        k=_decimal(d.get("k", base.k), "outlier.k"),
        action=_action(d.get("action", base.action), "outlier.action"),
        reason_code=_code(d.get("reason_code", base.reason_code), "outlier.reason_code"),
    )


__all__ = ["ACTIONS", "Action", "DuplicateRule", "OutlierRule", "RiskConfig", "VelocityRule"]
