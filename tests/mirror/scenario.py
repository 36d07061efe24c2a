"""Chain scenarios and table dumps shared by the mirror tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.ledger import LedgerClient
from chain_gateway.mirror.models import CHAIN_DERIVED, Checkpoint
from chain_gateway.mirror.writer import uetr_text
from chain_gateway.signing import FLAG_QUEUE, FLAG_URGENT


@dataclass
class Scenario:
    banks: dict[str, Any] = field(default_factory=dict)
    uetrs: dict[str, str] = field(default_factory=dict)  # label -> uetr text


def run_scenario(client: LedgerClient, make_bank: Callable[..., Any], make_order: Callable[..., Any]) -> Scenario:
    """Registrations, a suspension, funding and defunding, limits, and payments that settle,
    queue (then settle from the queue, or get cancelled, held, prioritised) and are rejected
    for every reason the ledger has."""
    s = Scenario()
    a = s.banks["a"] = make_bank(funds={"USD": 1_000_00, "EUR": 500_00})
    b = s.banks["b"] = make_bank(country="DE")
    c = s.banks["c"] = make_bank(country="GB", funds={"USD": 50_00})
    client.fund(b.address, "USD", 10_00, b"\x02" * 32)
    client.defund(a.address, "EUR", 100_00, b"\x03" * 32)
    client.set_bilateral_limit(a.address, b.address, "EUR", 1_000_00)

    def pay(label: str, *args: Any, **kwargs: Any) -> tuple[Any, bytes]:
        order, sig = make_order(*args, **kwargs)
        s.uetrs[label] = uetr_text(order.uetr)
        return order, sig

    client.submit_payment(*pay("settled", a, b, 300_00))
    client.submit_payment(*pay("queued", a, b, 5_000_00, flags=FLAG_QUEUE))
    client.submit_payment(*pay("cancelled", a, c, 7_000_00, flags=FLAG_QUEUE))
    client.submit_payment(*pay("held", c, a, 900_00, flags=FLAG_QUEUE))
    client.set_hold(bytes.fromhex(s.uetrs["held"].replace("-", "")), True)
    client.set_priority(bytes.fromhex(s.uetrs["queued"].replace("-", "")), True)
    client.cancel_queued(bytes.fromhex(s.uetrs["cancelled"].replace("-", "")))
    client.set_limits(c.address, "USD", 20_00, 0)
    batch = [
        pay("euro", a, b, 50_00, "EUR"),
        pay("insufficient", b, a, 999_999_00),
        pay("bad_signature", a, b, 1_00, signer=c.account),
        pay("expired", a, b, 1_00, deadline=int(time.time()) - 10),
        pay("over_limit", c, a, 30_00),
        pay("invalid", a, b, 0),
    ]
    dup_order, dup_sig = make_order(a, b, 5, uetr=bytes.fromhex(s.uetrs["settled"].replace("-", "")))
    batch.append((dup_order, dup_sig))
    client.settle_batch([o for o, _ in batch], [sig for _, sig in batch])
    client.suspend(c.address)
    client.submit_payment(*pay("small", a, b, 1_00))
    batch = [pay("not_active", a, c, 1_00)]
    client.settle_batch([o for o, _ in batch], [sig for _, sig in batch])
    client.reinstate(c.address)
    client.fund(a.address, "USD", 10_000_00, b"\x04" * 32)
    client.settle_queued([bytes.fromhex(s.uetrs["queued"].replace("-", ""))])
    return s


def run_small_scenario(client: LedgerClient, make_bank: Callable[..., Any],
                       make_order: Callable[..., Any]) -> Scenario:
    s = Scenario()
    a = s.banks["a"] = make_bank(funds={"USD": 1_000_00})
    b = s.banks["b"] = make_bank(country="DE")
    for label, amount in (("settled", 100_00), ("second", 50_00)):
        order, sig = make_order(a, b, amount)
        s.uetrs[label] = uetr_text(order.uetr)
        client.submit_payment(order, sig)
    return s


def more_payments(client: LedgerClient, make_order: Callable[..., Any], s: Scenario, n: int = 3,
                  tag: str = "more") -> None:
    a, b = s.banks["a"], s.banks["b"]
    for i in range(n):
        order, sig = make_order(a, b, 1_00 + i, flags=FLAG_URGENT)
        s.uetrs[f"{tag}{i}"] = uetr_text(order.uetr)
        client.submit_payment(order, sig)


def dump(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every chain-derived table, row for row, in primary-key order (the checkpoint's wall-clock
    `updated_at` left out)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with sessions() as session:
        for model in CHAIN_DERIVED:
            table = model.__table__
            cols = [c for c in table.columns if not (model is Checkpoint and c.name == "updated_at")]
            rows = session.execute(select(*cols).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out
