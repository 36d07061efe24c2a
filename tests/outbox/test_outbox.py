"""enqueue: one row per UETR, inside the caller's transaction, exact amounts; on SQLite and
PostgreSQL (the `any_db` fixture)."""
from __future__ import annotations

import ast
import builtins
import dataclasses
import os
import threading
import uuid
from pathlib import Path

import pytest
from eth_utils import keccak
from sqlalchemy import func, select

import chain_gateway.outbox as outbox_package
from chain_gateway.db import transaction
from chain_gateway.errors import DuplicateUetr, InvalidMessage
from chain_gateway.outbox import OutboxEntry, OutboxState, enqueue, get_entry
from chain_gateway.outbox.receipts import PAYMENT_QUEUED_TOPIC, PAYMENT_REJECTED_TOPIC, PAYMENT_SETTLED_TOPIC
from chain_gateway.signing import PaymentOrder
from tests.outbox.outbox_helpers import put, rows

DEBTOR = "0x" + "11" * 20
CREDITOR = "0x" + "22" * 20


def order(amount: int = 100, *, uetr: bytes | None = None, ihash: bytes | None = None) -> PaymentOrder:
    return PaymentOrder(uetr=uetr or uuid.uuid4().bytes, debtor=DEBTOR, creditor=CREDITOR, currency=b"USD",
                        amount=amount, flags=0, deadline=2_000_000_000, instruction_hash=ihash or os.urandom(32))


SIG = b"\x01" * 65


def test_enqueue_same_uetr_same_hash_is_noop(any_db):
    o = order()
    with transaction(any_db) as s:
        first = enqueue(s, o, SIG)
        again_same_tx = enqueue(s, o, SIG)
        assert again_same_tx is first
    with transaction(any_db) as s:
        later = enqueue(s, dataclasses.replace(o, deadline=o.deadline + 60), b"\x02" * 65)  # re-signed, same hash
        assert later.id == first.id and later.deadline == o.deadline and later.signature == SIG
    [row] = rows(any_db)
    assert row.uetr == str(uuid.UUID(bytes=o.uetr)) and row.state == OutboxState.PENDING and row.attempts == 0


def test_enqueue_same_uetr_other_hash_raises_duplicate_uetr(any_db):
    o = order()
    put(any_db, [(o, SIG)])
    with pytest.raises(DuplicateUetr) as err, transaction(any_db) as s:
        enqueue(s, dataclasses.replace(o, instruction_hash=os.urandom(32)), SIG)
    assert err.value.fields["uetr"] == str(uuid.UUID(bytes=o.uetr))
    assert err.value.fields["expected"] == "0x" + o.instruction_hash.hex()
    assert len(rows(any_db)) == 1


def test_enqueue_never_commits(any_db):
    """The row lives and dies with the caller's transaction (the accepted instruction)."""
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction(any_db) as s:
        enqueue(s, order(), SIG)
        raise Boom
    assert rows(any_db) == []


def test_enqueue_keeps_amounts_exact(any_db):
    big = [10**21 + 1, 2**256 - 1, 123456789012345678901]  # past int64 and float precision
    orders = [order(a) for a in big]
    put(any_db, [(o, SIG) for o in orders])
    assert [r.amount for r in rows(any_db)] == big
    assert [r.order() for r in rows(any_db)] == [dataclasses.replace(o, debtor=r.debtor, creditor=r.creditor)
                                                   for o, r in zip(orders, rows(any_db), strict=True)]


@pytest.mark.parametrize("bad", [
    {"amount": 0}, {"amount": 2**256}, {"uetr": b"\x01" * 15}, {"currency": b"US"}, {"instruction_hash": b"x"},
    {"deadline": -1}, {"flags": 256}, {"debtor": "not an address"},
])
def test_enqueue_rejects_malformed_order(any_db, bad):
    with pytest.raises(InvalidMessage), transaction(any_db) as s:
        enqueue(s, dataclasses.replace(order(), **bad), SIG)


def test_enqueue_rejects_short_signature(any_db):
    with pytest.raises(InvalidMessage), transaction(any_db) as s:
        enqueue(s, order(), b"\x01" * 64)


@pytest.mark.parametrize("same_hash", [True, False])
def test_enqueue_concurrent_same_uetr_one_row(any_db, same_hash):
    """Two API transactions race on one UETR: the unique key decides, not a read-then-write."""
    base = order()
    variants = [base, base if same_hash else dataclasses.replace(base, instruction_hash=os.urandom(32))]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def api(i: int) -> None:
        try:
            with transaction(any_db) as s:
                barrier.wait()
                results[i] = enqueue(s, variants[i], SIG).id
        except DuplicateUetr as exc:
            results[i] = exc

    threads = [threading.Thread(target=api, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction(any_db) as s:
        assert s.scalar(select(func.count()).select_from(OutboxEntry)) == 1
    if same_hash:
        assert results[0] == results[1] == rows(any_db)[0].id
    else:
        assert sum(isinstance(r, DuplicateUetr) for r in results) == 1


def test_get_entry(any_db):
    o = order()
    put(any_db, [(o, SIG)])
    with transaction(any_db) as s:
        assert get_entry(s, uuid.UUID(bytes=o.uetr)).instruction_hash == o.instruction_hash
        assert get_entry(s, str(uuid.uuid4())) is None
        with pytest.raises(InvalidMessage):
            get_entry(s, "nope")


def test_event_topics_match_the_deployed_abi(deployment):
    def topic(name: str) -> bytes:
        [event] = [e for e in deployment.abi["SettlementLedger"] if e.get("type") == "event" and e["name"] == name]
        return keccak(text=f"{name}({','.join(i['type'] for i in event['inputs'])})")

    assert (topic("PaymentSettled"), topic("PaymentQueued"), topic("PaymentRejected")) == (
        PAYMENT_SETTLED_TOPIC, PAYMENT_QUEUED_TOPIC, PAYMENT_REJECTED_TOPIC)


@pytest.mark.parametrize("path", sorted(Path(outbox_package.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_outbox_raises_only_gateway_errors(path):
    builtin = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
               and issubclass(getattr(builtins, n), BaseException)}
    raised = [(node.lineno, target.id) for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Raise) and node.exc is not None
              for target in [node.exc.func if isinstance(node.exc, ast.Call) else node.exc]
              if isinstance(target, ast.Name) and target.id in builtin]
    assert raised == []
