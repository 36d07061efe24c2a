"""Participant limits: the operator's caps and the limits a bank sets for itself, on-chain.

The ledger enforces, per participant and currency, a maximum per payment and a maximum
outflow per UTC day, plus optional bilateral daily caps toward one counterparty
(``LimitExceeded`` -> AM02). The operator sets the caps (``setLimits``,
``setBilateralLimit``); a bank may set its own per-payment and daily limits
(``setOwnLimitsFor`` relayed by the gateway) that tighten the caps and never loosen them:
the ledger enforces the stricter non-zero of cap and own limit, and refuses an own limit
above a non-zero cap (``LimitAboveCap``). Amounts are decimal strings here, minor units
on-chain; "0" means no limit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.orm import Session

from chain_gateway.access import get_profile
from chain_gateway.errors import Forbidden, InvalidAgent, InvalidAmount, LimitExceeded
from chain_gateway.instructions.bic import normalise_bic
from chain_gateway.instructions.currency import (
    MAX_INTEGER_DIGITS,
    currency_exponent,
    decimal_places,
    from_minor,
    parse_decimal,
    to_minor,
    validate_currency,
)
from chain_gateway.ledger import LedgerClient
from chain_gateway.onboarding import require_profile
from chain_gateway.transactions import TransactionFailed

UINT128_MAX: Final = 2**128 - 1
KIND_NAMES: Final = {1: "max_per_payment", 2: "max_daily_outflow", 3: "bilateral"}


@dataclass(frozen=True)
class LimitsView:
    """A participant's limits in one currency after a change (minor units; 0 = none)."""

    bic: str
    currency: str
    caps: tuple[int, int]
    own: tuple[int, int]
    effective: tuple[int, int]
    bilateral: dict[str, int] = field(default_factory=dict)
    tx_hashes: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        def pair(values: tuple[int, int]) -> dict[str, str | None]:
            return {"max_per_payment": limit_text(self.currency, values[0]),
                    "max_daily_outflow": limit_text(self.currency, values[1])}
        return {"bic": self.bic, "currency": self.currency, "caps": pair(self.caps), "own": pair(self.own),
                "effective": pair(self.effective),
                "bilateral": {k: limit_text(self.currency, v) for k, v in sorted(self.bilateral.items())},
                "tx_hashes": list(self.tx_hashes)}


def limit_text(currency: str, minor: int) -> str | None:
    """A limit as a decimal string, or None for "no limit" (0)."""
    return None if minor == 0 else str(from_minor(currency, minor))


def parse_limit(value: object, currency: str, name: str) -> int:
    """A limit given as a decimal string -> minor units; "0" means no limit (AM12 if malformed)."""
    amount = parse_decimal(value, field=name)
    if amount < 0 or (amount != 0 and amount.adjusted() >= MAX_INTEGER_DIGITS):
        raise InvalidAmount(f"{name} must be between 0 and 18 integer digits, got {amount}", field=name)
    places = decimal_places(amount)
    exponent = currency_exponent(currency)
    if places > exponent:
        raise InvalidAmount(f"{name} {amount} has {places} decimal places but {currency} allows {exponent}",
                            field=name, currency=currency)
    minor = to_minor(amount, currency)
    if minor > UINT128_MAX:  # pragma: no cover - 18 integer digits always fit
        raise InvalidAmount(f"{name} is too large", field=name)
    return minor


def _tx(receipt: Mapping[str, Any]) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _view(client: LedgerClient, bic: str, address: str, currency: str, bilateral: dict[str, int],
          tx_hashes: list[str]) -> LimitsView:
    return LimitsView(bic=bic, currency=currency, caps=client.limits_of(address, currency),
                      own=client.own_limits_of(address, currency),
                      effective=client.effective_limits(address, currency), bilateral=bilateral,
                      tx_hashes=tx_hashes)


def current_limits(session: Session, client: LedgerClient, *, bic: str, currency: str) -> LimitsView:
    profile = require_profile(session, bic)
    return _view(client, profile.bic, profile.address, validate_currency(currency), {}, [])


def set_caps(session: Session, client: LedgerClient, *, bic: str, currency: str, max_per_payment: object | None,
             max_daily_outflow: object | None, bilateral: Mapping[str, object] | None = None) -> LimitsView:
    """The operator's caps (None keeps the current value) and bilateral caps ({BIC: max}, "0" removes)."""
    profile = require_profile(session, bic)
    currency = validate_currency(currency)
    current = client.limits_of(profile.address, currency)
    per = current[0] if max_per_payment is None else parse_limit(max_per_payment, currency, "max_per_payment")
    daily = current[1] if max_daily_outflow is None else parse_limit(max_daily_outflow, currency, "max_daily_outflow")
    counterparties: list[tuple[str, str, int]] = []
    for cp_bic, cap in (bilateral or {}).items():
        bic11 = normalise_bic(cp_bic, role="bilateral counterparty")
        cp = get_profile(session, bic11)
        if cp is None:
            raise InvalidAgent(f"bilateral counterparty {bic11} is not a registered participant", bic=bic11)
        if cp.bic == profile.bic:
            raise InvalidAgent(f"a bilateral cap needs another participant than {bic11} itself", bic=bic11)
        counterparties.append((cp.bic, cp.address, parse_limit(cap, currency, f"bilateral.{cp_bic}")))
    tx_hashes: list[str] = []
    if (per, daily) != current or not counterparties:
        tx_hashes.append(_tx(client.set_limits(profile.address, currency, per, daily)))
    for _cp_bic, cp_address, cap in counterparties:
        tx_hashes.append(_tx(client.set_bilateral_limit(profile.address, cp_address, currency, cap)))
    return _view(client, profile.bic, profile.address, currency, {b: c for b, _, c in counterparties}, tx_hashes)


def set_own(session: Session, client: LedgerClient, *, bic: str, currency: str, max_per_payment: object | None,
            max_daily_outflow: object | None, bilateral: Mapping[str, object] | None = None) -> LimitsView:
    """A bank's own limits (None keeps the current own value), refused above the operator's caps.

    Raises Forbidden (403 AG01) for bilateral caps (the operator's alone) and LimitExceeded
    (422 AM02) when a requested limit is looser than a non-zero operator cap.
    """
    if bilateral:
        raise Forbidden("bilateral caps are set by the operator; a bank sets its own per-payment and daily limits")
    profile = require_profile(session, bic)
    currency = validate_currency(currency)
    own = client.own_limits_of(profile.address, currency)
    per = own[0] if max_per_payment is None else parse_limit(max_per_payment, currency, "max_per_payment")
    daily = own[1] if max_daily_outflow is None else parse_limit(max_daily_outflow, currency, "max_daily_outflow")
    caps = client.limits_of(profile.address, currency)
    for kind, requested, cap in ((1, per, caps[0]), (2, daily, caps[1])):
        if cap != 0 and requested > cap:
            _above_cap(profile.bic, currency, kind, cap, requested)
    try:
        receipt = client.set_own_limits_for(profile.address, currency, per, daily)
    except TransactionFailed as exc:  # the operator lowered a cap in between
        if exc.error_name == "LimitAboveCap":
            args = exc.error_args
            _above_cap(profile.bic, currency, int(args["kind"]), int(args["cap"]), int(args["requested"]))
        raise
    return _view(client, profile.bic, profile.address, currency, {}, [_tx(receipt)])


def _above_cap(bic: str, currency: str, kind: int, cap: int, requested: int) -> None:
    name = KIND_NAMES.get(kind, str(kind))
    raise LimitExceeded(f"{name} {from_minor(currency, requested)} {currency} is looser than the operator's cap "
                        f"{from_minor(currency, cap)} {currency}: a bank may only tighten its limits",
                        bic=bic, currency=currency, limit=name, cap=str(from_minor(currency, cap)),
                        requested=str(from_minor(currency, requested)))


__all__ = ["LimitsView", "current_limits", "limit_text", "parse_limit", "set_caps", "set_own"]
