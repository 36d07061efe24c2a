"""The audit trail: an append-only, hash-chained record of operator actions and risk decisions.

Each row holds who (``actor``: an API key's owner and id, or ``"system"``), when (``at``),
what (``action``), the ``inputs`` (canonical JSON, secrets redacted), the ``outcome`` and the
chain transaction (``tx_hash``) where there is one. Rows are chained::

    row_hash = sha256( JCS({"seq", "at", "actor", "action", "inputs", "outcome", "tx_hash", "prev_hash"}) )

with JCS = RFC 8785 canonical JSON, ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, ``inputs`` as its
stored canonical text and ``prev_hash`` the previous row's ``row_hash`` (64 zeros for row 1).
Changing any field of a row, or deleting or inserting a row, breaks the chain at that row;
``verify`` recomputes it and names the first broken row. Rewriting a row *and every later
row* is only caught against a head hash kept elsewhere: ``verify`` returns the head
(``seq``, ``row_hash``) for auditors to note or anchor (docs/risk.md).

Appends are serialised: PostgreSQL takes a transaction-scoped advisory lock before reading
the last row; SQLite takes its single writer lock first (a no-op UPDATE) so the read of the
last row and the insert happen under it. ``seq`` is the primary key, so a race that slipped
through would fail loudly instead of forking the chain. The table also refuses UPDATE and
DELETE through triggers (created with the table and by the migration), so only someone who
drops the triggers can change history, and the hash chain shows what they changed.

Writing:
- ``record(session, ...)`` appends in the caller's transaction (an operator action recorded
  atomically with its effect);
- ``record_detached(session, ...)`` appends in its OWN transaction once the caller's
  transaction has ended, committed or rolled back (risk decisions: a rejected request
  rolls its own transaction back, the record stays);
- ``audited("participant.suspend")`` decorates a route handler so its call is recorded.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

import rfc8785
from pydantic import BaseModel
from sqlalchemy import DDL, BigInteger, Index, String, Text, event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.session import SessionTransaction

from chain_gateway.db import Base, UTCDateTime, utcnow
from chain_gateway.errors import GatewayError

log = logging.getLogger("gateway.audit")

GENESIS_HASH: Final = "0" * 64
SYSTEM_ACTOR: Final = "system"
#: Input keys whose values never enter the trail (matched case-insensitively, as substrings).
SECRET_KEYS: Final = ("api_key", "secret", "password", "passphrase", "private_key", "signature", "token",
                      "authorization")
REDACTED: Final = "[redacted]"
_PG_LOCK_KEY: Final = 0x5E771E_A0D17  # pg_advisory_xact_lock key of the audit trail
_MAX_SAFE_INT: Final = 2**53 - 1  # JCS numbers are IEEE 754 doubles: larger ints go as text
_PENDING_KEY: Final = "audit_trail.pending"


class AuditEntry(Base):
    """One row of the audit trail. Never updated, never deleted."""

    __tablename__ = "audit_trail"
    __table_args__ = (Index("ix_audit_trail_action", "action"), Index("ix_audit_trail_actor", "actor"))

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[str] = mapped_column(Text)  # canonical JSON (RFC 8785)
    outcome: Mapped[str] = mapped_column(String(200))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)

    def public(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": format_at(self.at), "actor": self.actor, "action": self.action,
                "inputs": json.loads(self.inputs), "outcome": self.outcome, "tx_hash": self.tx_hash,
                "prev_hash": self.prev_hash, "row_hash": self.row_hash}


# --- append-only triggers (defence in depth; the hash chain is the proof) -------------
SQLITE_TRIGGERS: Final = (
    "CREATE TRIGGER IF NOT EXISTS audit_trail_no_update BEFORE UPDATE ON audit_trail "
    "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_trail_no_delete BEFORE DELETE ON audit_trail "
    "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END",
)
POSTGRES_TRIGGERS: Final = (
    "CREATE OR REPLACE FUNCTION audit_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_trail is append-only'; END $$",
    "CREATE TRIGGER audit_trail_no_change BEFORE UPDATE OR DELETE ON audit_trail "
    "FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only()",
)
SQLITE_DROP_TRIGGERS: Final = ("DROP TRIGGER IF EXISTS audit_trail_no_update",
                               "DROP TRIGGER IF EXISTS audit_trail_no_delete")
POSTGRES_DROP_TRIGGERS: Final = ("DROP TRIGGER IF EXISTS audit_trail_no_change ON audit_trail",
                                 "DROP FUNCTION IF EXISTS audit_trail_append_only()")

for _statement in SQLITE_TRIGGERS:
    event.listen(AuditEntry.__table__, "after_create",
                 DDL(_statement).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _statement in POSTGRES_TRIGGERS:
    event.listen(AuditEntry.__table__, "after_create",
                 DDL(_statement).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]


# --- canonical form ---------------------------------------------------------------------
def format_at(at: datetime) -> str:
    """RFC 3339 UTC with microseconds: the form hashed and shown."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEYS)


def jsonable(value: Any) -> Any:
    """Plain JSON values (str, int, bool, None, list, dict) for the canonical form.

    Decimals, datetimes, UUIDs and large ints become text (no floats: money stays exact);
    bytes become 0x-hex; dataclasses and pydantic models their fields; keys that look like
    secrets are redacted.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, datetime):
        return format_at(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="python"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return {str(k): (REDACTED if _secret(str(k)) else jsonable(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=lambda i: json.dumps(i, sort_keys=True)) if isinstance(value, (set, frozenset)) \
            else items
    return str(value)  # anything else (floats included) as its text: never a JSON number


def canonical_inputs(inputs: Mapping[str, Any]) -> str:
    """The stored form of `inputs`: RFC 8785 canonical JSON (sorted keys, no whitespace)."""
    return rfc8785.dumps(jsonable(dict(inputs))).decode()


def row_digest(*, seq: int, at: datetime, actor: str, action: str, inputs: str, outcome: str,
               tx_hash: str | None, prev_hash: str) -> str:
    """sha256 (hex) of the row's canonical serialisation, prev_hash included."""
    body: dict[str, Any] = {"seq": seq, "at": format_at(at), "actor": actor, "action": action, "inputs": inputs,
                            "outcome": outcome, "tx_hash": tx_hash, "prev_hash": prev_hash}
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def _hash_of(row: AuditEntry) -> str:
    return row_digest(seq=row.seq, at=row.at, actor=row.actor, action=row.action, inputs=row.inputs,
                      outcome=row.outcome, tx_hash=row.tx_hash, prev_hash=row.prev_hash)


# --- appending --------------------------------------------------------------------------
def _lock_for_append(session: Session) -> None:
    """Serialise appenders until the end of `session`'s transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement takes SQLite's writer lock even when it touches no row, so the
        # read of the last row below happens under the same lock as the insert.
        session.execute(text("UPDATE audit_trail SET seq = seq WHERE 1 = 0"))


def record(session: Session, *, actor: str, action: str, inputs: Mapping[str, Any], outcome: str,
           tx_hash: str | None = None) -> AuditEntry:
    """Append one row in `session`'s transaction (the caller commits) and return it."""
    _lock_for_append(session)
    last = session.execute(select(AuditEntry.seq, AuditEntry.row_hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last is not None else (1, GENESIS_HASH)
    at = utcnow()
    canonical = canonical_inputs(inputs)
    entry = AuditEntry(seq=seq, at=at, actor=actor[:64], action=action[:64], inputs=canonical, outcome=outcome[:200],
                       tx_hash=tx_hash, prev_hash=prev_hash)
    entry.row_hash = _hash_of(entry)
    session.add(entry)
    session.flush()
    return entry


_detached_lock = threading.Lock()


def record_now(bind: Any, *, actor: str, action: str, inputs: Mapping[str, Any], outcome: str,
               tx_hash: str | None = None) -> AuditEntry:
    """Append one row in a new session and transaction of its own on `bind` (engine or connection)."""
    with _detached_lock, Session(bind=bind, expire_on_commit=False) as own, own.begin():
        return record(own, actor=actor, action=action, inputs=inputs, outcome=outcome, tx_hash=tx_hash)


def record_detached(session: Session, *, actor: str, action: str, inputs: Mapping[str, Any], outcome: str,
                    tx_hash: str | None = None) -> None:
    """Append one row in its OWN transaction, after `session`'s current transaction ends.

    Used for risk decisions: whatever the request's transaction does (a rejection rolls it
    back), the record is written once it has committed or rolled back, on a separate
    transaction (so it never waits for, nor is undone with, the request's). With no
    transaction open on `session`, it is written at once.
    """
    kwargs: dict[str, Any] = {"actor": actor, "action": action, "inputs": dict(inputs), "outcome": outcome,
                              "tx_hash": tx_hash}
    bind = session.get_bind()
    if not session.in_transaction():
        record_now(bind, **kwargs)
        return
    _install_listener()
    pending: list[tuple[Any, dict[str, Any]]] = session.info.setdefault(_PENDING_KEY, [])
    pending.append((bind, kwargs))


_listener_installed = False
_listener_lock = threading.Lock()


def _install_listener() -> None:
    global _listener_installed
    with _listener_lock:
        if not _listener_installed:
            event.listen(Session, "after_transaction_end", _flush_pending)
            _listener_installed = True


def _flush_pending(session: Session, transaction: SessionTransaction) -> None:
    """Write the records deferred by ``record_detached`` once the outermost transaction ended."""
    if transaction.parent is not None or transaction.nested:
        return
    pending = session.info.pop(_PENDING_KEY, None)
    for bind, kwargs in pending or ():
        try:
            record_now(bind, **kwargs)
        except Exception:
            log.exception("could not write the audit record %s %s", kwargs.get("action"), kwargs.get("outcome"))


# --- reading and verifying ----------------------------------------------------------------
def list_entries(session: Session, *, after: int = 0, limit: int = 100, action: str | None = None,
                 actor: str | None = None, since: datetime | None = None,
                 until: datetime | None = None) -> tuple[list[AuditEntry], int | None]:
    """One page of rows in seq order after `after`; the cursor of the next page or None."""
    query = select(AuditEntry).where(AuditEntry.seq > after)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = list(session.scalars(query.order_by(AuditEntry.seq).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


def _stream(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > after)
                                    .order_by(AuditEntry.seq).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].seq
        session.expunge_all()


def verify(session: Session) -> dict[str, Any]:
    """Recompute the chain from row 1: ``{ok, rows, first_broken, head}``.

    ``first_broken`` is None or ``{seq, kind, expected, actual}``: ``kind`` "content" when the
    row's fields no longer hash to its ``row_hash`` (expected = recomputed hash), "link" when
    its ``prev_hash`` is not the previous row's hash (a row deleted or inserted before it),
    "sequence" when seq numbers are not 1, 2, 3, ... ``head`` is the last row's seq and hash.
    """
    count, prev_hash, prev_seq = 0, GENESIS_HASH, 0
    broken: dict[str, Any] | None = None
    for row in _stream(session):
        count += 1
        if broken is None:
            recomputed = _hash_of(row)
            if row.prev_hash != prev_hash:
                broken = {"seq": row.seq, "kind": "link", "expected": prev_hash, "actual": row.prev_hash}
            elif recomputed != row.row_hash:
                broken = {"seq": row.seq, "kind": "content", "expected": recomputed, "actual": row.row_hash}
            elif row.seq != prev_seq + 1:
                broken = {"seq": row.seq, "kind": "sequence", "expected": str(prev_seq + 1), "actual": str(row.seq)}
        prev_hash, prev_seq = row.row_hash, row.seq
    head = {"seq": prev_seq, "row_hash": prev_hash} if count else None
    return {"ok": broken is None, "rows": count, "first_broken": broken, "head": head}


# --- the one-line helper for operator actions ----------------------------------------------
def actor_of(principal: Any) -> str:
    """``"<BIC>:<key id>"`` for a participant's key, ``"operator:<key id>"`` for the operator's."""
    key_id = getattr(principal, "key_id", None)
    if key_id is None:
        return SYSTEM_ACTOR
    bic = getattr(principal, "bic", None)
    return f"{bic or 'operator'}:{key_id}"


F = TypeVar("F", bound=Callable[..., Any])
_NOT_INPUT = ("session", "gateway", "request", "response")


def _call_context(kwargs: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """(actor, bind or None, inputs) from a handler's keyword arguments."""
    actor, bind, inputs = SYSTEM_ACTOR, None, {}
    for name, value in kwargs.items():
        if hasattr(value, "key_id") and hasattr(value, "roles"):
            actor = actor_of(value)
        elif isinstance(value, Session):
            bind = value.get_bind()
        elif hasattr(value, "require_sessions") and bind is None:
            bind = value.require_sessions().kw.get("bind")
        elif name in _NOT_INPUT or isinstance(value, Connection):
            continue
        elif isinstance(value, BaseModel):
            inputs.update(cast(dict[str, Any], jsonable(value)))
        elif value is None or isinstance(value, (str, int, bool, Decimal, uuid.UUID, date)):
            inputs[name] = value
    return actor, bind, inputs


def _tx_hash_of(result: Any) -> str | None:
    value = result.get("tx_hash") if isinstance(result, Mapping) else getattr(result, "tx_hash", None)
    return value if isinstance(value, str) else None


def audited(action: str, *, inputs: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
            ) -> Callable[[F], F]:
    """Record every call of a route handler (or any function) in the audit trail.

    One line per operator action::

        @router.post("/v1/participants/{bic}/suspend")
        @audited("participant.suspend")
        def suspend(bic: str, gateway: GatewayDep, session: SessionDep, _: Operator) -> StatusChanged: ...

    The actor is the Principal among the arguments; the inputs are the path/query values and
    request bodies (secrets redacted), or what `inputs(kwargs)` returns; the outcome is "ok"
    or "error <ErrorClass> <reason code>"; the tx hash is the result's ``tx_hash``. The row is
    written in its own transaction once the handler's session transaction has ended, so a
    failed action is recorded too. Call with keyword arguments (FastAPI does).
    """
    def decorate(fn: F) -> F:
        def _finish(kwargs: Mapping[str, Any], result: Any, exc: BaseException | None) -> None:
            try:
                _write(kwargs, result, exc)
            except Exception:
                log.exception("could not write the audit record of %s", action)

        def _write(kwargs: Mapping[str, Any], result: Any, exc: BaseException | None) -> None:
            actor, bind, found = _call_context(kwargs)
            if bind is None:
                log.error("audited(%s): no session or gateway among the arguments; not recorded", action)
                return
            data = dict(inputs(kwargs)) if inputs is not None else found
            tx_hash: Any
            if exc is None:
                outcome, tx_hash = "ok", _tx_hash_of(result)
            else:
                code = getattr(exc, "reason_code", None)
                outcome = f"error {type(exc).__name__}" + (f" {code}" if code else "")
                tx_hash = exc.fields.get("tx_hash") if isinstance(exc, GatewayError) else None
            tx = tx_hash if isinstance(tx_hash, str) else None
            session = next((v for v in kwargs.values() if isinstance(v, Session)), None)
            if session is not None:
                record_detached(session, actor=actor, action=action, inputs=data, outcome=outcome, tx_hash=tx)
            else:
                record_now(bind, actor=actor, action=action, inputs=data, outcome=outcome, tx_hash=tx)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    result = await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                except BaseException as exc:
                    _finish(kwargs, None, exc)
                    raise
                _finish(kwargs, result, None)
                return result
            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _finish(kwargs, None, exc)
                raise
            _finish(kwargs, result, None)
            return result
        return cast(F, wrapper)
    return decorate


__all__ = ["GENESIS_HASH", "SYSTEM_ACTOR", "AuditEntry", "actor_of", "audited", "canonical_inputs", "format_at",
           "jsonable", "list_entries", "record", "record_detached", "record_now", "row_digest", "verify"]
