"""Write side of the mirror: fold one block range of decoded events into the tables,
rewind everything above a fork block, wipe for a rebuild.

All three run inside the caller's transaction (the indexer's one transaction per range);
none commits. Rows are written with Core executemany (the ORM unit of work would cost
several times more per row at 10,000 events a range).

Current-state tables are folded from the event-log tables by pure functions
(``fold_payment``, ``fold_participant``, balances from the running balance of the last
statement line), the same when indexing forward and when rewinding, so a mirror that went
through reorganisations is row for row the mirror a rebuild produces.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from chain_gateway.db import UTCDateTime
from chain_gateway.indexer.events import DecodedEvent, RawLog
from chain_gateway.mirror.models import (
    CHAIN_DERIVED,
    POSITIONAL,
    Balance,
    BilateralLimitChange,
    Funding,
    LimitChange,
    Participant,
    ParticipantEvent,
    Payment,
    PaymentEvent,
    ProcessedBlock,
    StatementLine,
    SystemEvent,
)
from chain_gateway.reason_codes import consumes_uetr, error_name_for_selector, reason_code_for_selector

CHAIN_UNKNOWN, CHAIN_QUEUED, CHAIN_SETTLED, CHAIN_CANCELLED, CHAIN_REJECTED = 0, 1, 2, 3, 4
ISO_BY_CHAIN_STATUS = {CHAIN_QUEUED: "PDNG", CHAIN_SETTLED: "ACSC", CHAIN_CANCELLED: "CANC", CHAIN_REJECTED: "RJCT"}
FINAL_STATUSES = frozenset({"ACSC", "RJCT", "CANC"})
_STATUS_EVENTS = {"PaymentSettled": "ACSC", "PaymentQueued": "PDNG", "PaymentCancelled": "CANC",
                  "PaymentRejected": "RJCT"}
_CHUNK = 500  # keys per IN (...) list

T_PROCESSED: Table = ProcessedBlock.__table__  # type: ignore[assignment]
T_PARTICIPANTS: Table = Participant.__table__  # type: ignore[assignment]
T_PARTICIPANT_EVENTS: Table = ParticipantEvent.__table__  # type: ignore[assignment]
T_BALANCES: Table = Balance.__table__  # type: ignore[assignment]
T_LINES: Table = StatementLine.__table__  # type: ignore[assignment]
T_FUNDING: Table = Funding.__table__  # type: ignore[assignment]
T_LIMITS: Table = LimitChange.__table__  # type: ignore[assignment]
T_BILATERAL: Table = BilateralLimitChange.__table__  # type: ignore[assignment]
T_PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]
T_PAYMENT_EVENTS: Table = PaymentEvent.__table__  # type: ignore[assignment]
T_SYSTEM: Table = SystemEvent.__table__  # type: ignore[assignment]

Row = dict[str, Any]


def uetr_text(raw: bytes) -> str:
    """The 16 UETR bytes as canonical lower-case UUID text."""
    h = bytes(raw).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _ascii(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _json_args(args: dict[str, Any]) -> str:
    """Event arguments as JSON text (bytes as 0x-hex, big integers as strings)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            return "0x" + bytes(v).hex()
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
            return str(v)
        return v
    return json.dumps({k: plain(v) for k, v in args.items()}, separators=(",", ":"), sort_keys=True)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Effects:
    """What a range (or a rewind) changed, for the notification hooks."""

    events: int = 0
    uetrs: set[str] = field(default_factory=set)
    participants: set[str] = field(default_factory=set)
    balances_increased: set[tuple[str, str]] = field(default_factory=set)


# ------------------------------------------------------------------ pure folds
def fold_payment(prev: Row | None, h: Row) -> Row | None:
    """The payment row after history row `h` (a ``mirror_payment_events`` row)."""
    if not h["effective"]:
        return prev
    event = h["event"]
    fresh = event == "PaymentQueued" or (
        event == "PaymentSettled" and (prev is None or prev["chain_status"] != CHAIN_QUEUED))
    if fresh or prev is None:
        row: Row = {
            "uetr": h["uetr"], "debtor": h["debtor"], "creditor": h["creditor"], "currency": h["currency"],
            "amount": h["amount"], "flags": h["flags"], "held": False, "queue_seq": h["queue_seq"],
            "instruction_hash": h["instruction_hash"], "reason_code": None, "reject_selector": None,
            "fx_quote_id": h.get("fx_quote_id"), "fx_provider": h.get("fx_provider"),
            "debit_currency": h.get("debit_currency"), "debit_amount": h.get("debit_amount"),
            "first_block": prev["first_block"] if prev else h["block_number"],
            "first_log_index": prev["first_log_index"] if prev else h["log_index"],
            "created_at": prev["created_at"] if prev else h["at"],
        }
    else:
        row = dict(prev)
    if event in _STATUS_EVENTS:
        row["status"] = h["status"]
        if event == "PaymentRejected":
            selector = bytes.fromhex(str(h["reject_selector"])[2:])
            row["chain_status"] = CHAIN_REJECTED if consumes_uetr(selector) else CHAIN_UNKNOWN
        else:
            row["chain_status"] = {"ACSC": CHAIN_SETTLED, "PDNG": CHAIN_QUEUED, "CANC": CHAIN_CANCELLED}[h["status"]]
        row["reason_code"] = h["reason_code"]
        row["reject_selector"] = h["reject_selector"]
        row["tx_hash"], row["block_number"], row["log_index"] = h["tx_hash"], h["block_number"], h["log_index"]
    elif event == "PaymentHoldChanged":
        row["held"] = bool(h["held"])
    elif event == "PaymentPriorityChanged":
        row["flags"] = h["flags"]
    row.setdefault("status", h["status"])
    row.setdefault("chain_status", CHAIN_QUEUED)
    row.setdefault("tx_hash", h["tx_hash"])
    row.setdefault("block_number", h["block_number"])
    row.setdefault("log_index", h["log_index"])
    row["last_block"] = h["block_number"]
    row["updated_at"] = h["at"]
    return row


def fold_participant(prev: Row | None, e: Row) -> Row | None:
    """The participant row after participant event `e`."""
    if e["event"] == "ParticipantRegistered":
        return {"address": e["address"], "bic": e["bic"], "country": e["country"], "roles": e["roles"],
                "active": True, "registered_block": e["block_number"], "registered_log_index": e["log_index"],
                "registered_tx": e["tx_hash"], "registered_at": e["at"], "last_block": e["block_number"],
                "updated_at": e["at"]}
    if prev is None:
        return None
    return {**prev, "active": bool(e["active"]), "last_block": e["block_number"], "updated_at": e["at"]}


# ------------------------------------------------------------------ forward
class RangeFold:
    """Applies the events of one block range in order; `write()` stores the result."""

    def __init__(self, session: Session, events: Sequence[DecodedEvent], timestamps: dict[int, int]) -> None:
        self.conn: Connection = session.connection()
        self.events = events
        self.timestamps = timestamps
        self._times: dict[int, datetime] = {}
        self.effects = Effects(events=len(events))
        self.payments: dict[str, Row | None] = {}
        self.payments_in_db: set[str] = set()
        self.balances: dict[tuple[str, str], Row] = {}
        self.balances_in_db: set[tuple[str, str]] = set()
        self.participants: dict[str, Row | None] = {}
        self.participants_in_db: set[str] = set()
        self.touched_payments: set[str] = set()
        self.touched_balances: set[tuple[str, str]] = set()
        self.touched_participants: set[str] = set()
        self._queue_seq: int | None = None
        self._fx: dict[str, Row] = {}  # uetr -> FxSettled args, until its PaymentSettled (same transaction)
        self._fx_debtor_leg: dict[str, tuple[str, int, RawLog]] = {}
        self.rows: dict[str, list[Row]] = {name: [] for name in (
            "participant_events", "lines", "funding", "limits", "bilateral", "payment_events", "system")}

    # ---------------------------------------------------------------- loading
    def _at(self, block: int) -> datetime:
        at = self._times.get(block)
        if at is None:
            at = self._times[block] = datetime.fromtimestamp(self.timestamps[block], UTC)
        return at

    def _preload(self) -> None:
        uetrs: set[str] = set()
        parties: set[str] = set()
        registrants: set[str] = set()
        for ev in self.events:
            a = ev.args
            if "uetr" in a:
                uetrs.add(uetr_text(a["uetr"]))
            if ev.name in ("Funded", "Defunded"):
                parties.add(a["participant"])
            elif ev.name == "PaymentSettled":
                parties.add(a["debtor"])
                parties.add(a["creditor"])
            elif ev.name == "FxSettled":
                parties.add(a["provider"])
            elif ev.name == "ParticipantStatusChanged":
                registrants.add(a["participant"])
        for chunk in _chunks(sorted(uetrs)):
            for r in self.conn.execute(select(T_PAYMENTS).where(T_PAYMENTS.c.uetr.in_(chunk))).mappings():
                self.payments[r["uetr"]] = dict(r)
                self.payments_in_db.add(r["uetr"])
        for chunk in _chunks(sorted(parties)):
            for r in self.conn.execute(select(T_BALANCES).where(T_BALANCES.c.participant.in_(chunk))).mappings():
                key = (r["participant"], r["currency"])
                self.balances[key] = dict(r)
                self.balances_in_db.add(key)
        for chunk in _chunks(sorted(registrants)):
            for r in self.conn.execute(select(T_PARTICIPANTS).where(T_PARTICIPANTS.c.address.in_(chunk))).mappings():
                self.participants[r["address"]] = dict(r)
                self.participants_in_db.add(r["address"])

    def _next_queue_seq(self) -> int:
        if self._queue_seq is None:
            # IS NOT NULL (same maximum) lets the partial index ix_mirror_payments_queue_seq answer
            self._queue_seq = int(self.conn.execute(select(func.coalesce(func.max(T_PAYMENTS.c.queue_seq), 0))
                                                    .where(T_PAYMENTS.c.queue_seq.is_not(None))).scalar_one())
        self._queue_seq += 1
        return self._queue_seq

    # ---------------------------------------------------------------- applying
    def run(self) -> Effects:
        self._preload()
        handlers = {
            "ParticipantRegistered": self._registered, "ParticipantStatusChanged": self._status_changed,
            "Funded": self._funded, "Defunded": self._funded, "LimitsChanged": self._limits, "OwnLimitsChanged": self._limits,
            "BilateralLimitChanged": self._bilateral, "Paused": self._system, "Unpaused": self._system,
            "QueueBatchSettled": self._system, "FxSettled": self._fx_settled, "GridlockReserved": self._system,
            "GridlockCommitted": self._system, "GridlockReleased": self._system, "GridlockClosed": self._system,
        }
        payment_events = ("PaymentSettled", "PaymentQueued", "PaymentCancelled", "PaymentRejected",
                          "PaymentHoldChanged", "PaymentPriorityChanged")
        for ev in self.events:
            if ev.name in payment_events:
                self._payment(ev)
            else:
                handler = handlers.get(ev.name)
                if handler is not None:
                    handler(ev)
        self._write()
        return self.effects

    def _move(self, participant: str, currency: str, delta: int, kind: str, log: RawLog, *,
              uetr: str | None = None, counterparty: str | None = None, reference: str | None = None) -> None:
        key = (participant, currency)
        state = self.balances.get(key)
        balance = (state["amount"] if state else 0) + delta
        self.balances[key] = {"participant": participant, "currency": currency, "amount": balance,
                              "block_number": log.block_number, "log_index": log.log_index}
        self.touched_balances.add(key)
        self.effects.participants.add(participant)
        if delta > 0:
            self.effects.balances_increased.add(key)
        lines = self.rows["lines"]
        if lines and (lines[-1]["participant"], lines[-1]["currency"], lines[-1]["block_number"],
                      lines[-1]["log_index"]) == (participant, currency, log.block_number, log.log_index):
            # the same balance moved twice by one log (an FX provider that is also the debtor or
            # the creditor): one line with the net amount
            lines[-1]["amount"] += delta
            lines[-1]["balance_after"] = balance
            return
        lines.append({
            "participant": participant, "currency": currency, "block_number": log.block_number,
            "log_index": log.log_index, "kind": kind, "amount": delta, "balance_after": balance, "uetr": uetr,
            "counterparty": counterparty, "reference": reference, "tx_hash": log.tx_hash,
            "at": self._at(log.block_number)})

    def _funded(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        currency, amount, ref = _ascii(a["currency"]), int(a["amount"]), _hex(a["ref"])
        kind = "FUND" if ev.name == "Funded" else "DEFUND"
        self._move(a["participant"], currency, amount if kind == "FUND" else -amount, kind, log, reference=ref)
        self.rows["funding"].append({
            "block_number": log.block_number, "log_index": log.log_index, "participant": a["participant"],
            "currency": currency, "kind": kind, "amount": amount, "reference": ref, "tx_hash": log.tx_hash,
            "at": self._at(log.block_number)})

    def _participant_event(self, ev: DecodedEvent, row: Row) -> None:
        address = row["address"]
        self.rows["participant_events"].append(row)
        self.participants[address] = fold_participant(self.participants.get(address), row)
        self.touched_participants.add(address)
        self.effects.participants.add(address)

    def _registered(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        self._participant_event(ev, {
            "block_number": log.block_number, "log_index": log.log_index, "address": a["participant"],
            "event": ev.name, "bic": _ascii(a["bic"]), "country": _ascii(a["country"]), "roles": int(a["roles"]),
            "active": True, "tx_hash": log.tx_hash, "at": self._at(log.block_number)})

    def _status_changed(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        self._participant_event(ev, {
            "block_number": log.block_number, "log_index": log.log_index, "address": a["participant"],
            "event": ev.name, "bic": None, "country": None, "roles": None, "active": bool(a["active"]),
            "tx_hash": log.tx_hash, "at": self._at(log.block_number)})

    def _limits(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        self.rows["limits"].append({
            "block_number": log.block_number, "log_index": log.log_index, "participant": a["participant"],
            "currency": _ascii(a["currency"]), "max_per_payment": int(a["maxPerPayment"]),
            "max_daily_outflow": int(a["maxDailyOutflow"]), "tx_hash": log.tx_hash,
            "at": self._at(log.block_number), "kind": "own" if ev.name == "OwnLimitsChanged" else "operator"})

    def _bilateral(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        self.rows["bilateral"].append({
            "block_number": log.block_number, "log_index": log.log_index, "debtor": a["debtor"],
            "creditor": a["creditor"], "currency": _ascii(a["currency"]), "max_daily": int(a["maxDaily"]),
            "tx_hash": log.tx_hash, "at": self._at(log.block_number)})

    def _system(self, ev: DecodedEvent) -> None:
        a, log = ev.args, ev.log
        self.rows["system"].append({
            "block_number": log.block_number, "log_index": log.log_index, "event": ev.name,
            "account": a.get("account"), "count": int(a["count"]) if "count" in a else None,
            "gridlock": bool(a["gridlock"]) if "gridlock" in a else None, "detail": _json_args(a),
            "tx_hash": log.tx_hash, "at": self._at(log.block_number)})

    def _fx_settled(self, ev: DecodedEvent) -> None:
        """The debtor's leg of a PvP payment (debtor -> provider in the debit currency); the
        PaymentSettled that follows books the provider -> creditor leg."""
        a, log = ev.args, ev.log
        uetr = uetr_text(a["uetr"])
        debit_currency, debit = _ascii(a["debitCurrency"]), int(a["debitAmount"])
        self._fx[uetr] = {"fx_quote_id": _hex(a["quoteId"]), "fx_provider": a["provider"],
                          "debit_currency": debit_currency, "debit_amount": debit}
        self._fx_debtor_leg[uetr] = (debit_currency, debit, log)

    def _payment(self, ev: DecodedEvent) -> None:
        a, log, name = ev.args, ev.log, ev.name
        uetr = uetr_text(a["uetr"])
        prev = self.payments.get(uetr)
        h: Row = {
            "block_number": log.block_number, "log_index": log.log_index, "uetr": uetr, "event": name,
            "status": _STATUS_EVENTS.get(name) or (prev["status"] if prev else "PDNG"), "effective": True,
            "reason_code": None, "reject_selector": None, "debtor": a.get("debtor"), "creditor": a.get("creditor"),
            "currency": _ascii(a["currency"]) if "currency" in a else None,
            "amount": int(a["amount"]) if "amount" in a else None,
            "flags": int(a["flags"]) if "flags" in a else None,
            "held": bool(a["held"]) if "held" in a else None, "queue_seq": None,
            "instruction_hash": _hex(a["instructionHash"]) if "instructionHash" in a else None,
            "tx_hash": log.tx_hash, "at": self._at(log.block_number),
            "fx_quote_id": None, "fx_provider": None, "debit_currency": None, "debit_amount": None,
        }
        fx = self._fx.pop(uetr, None) if name == "PaymentSettled" else None
        if fx is not None:
            h.update(fx)
        if name == "PaymentQueued":
            h["queue_seq"] = self._next_queue_seq()
        elif name == "PaymentRejected":
            selector = bytes(a["reason"])
            h["reason_code"] = reason_code_for_selector(selector)
            h["reject_selector"] = _hex(selector)
            # A duplicate submission leaves the UETR's earlier payment as it was.
            h["effective"] = not (error_name_for_selector(selector) == "DuplicateUetr"
                                  and prev is not None and prev["chain_status"] != CHAIN_UNKNOWN)
        self.rows["payment_events"].append(h)
        self.payments[uetr] = row = fold_payment(prev, h)
        self.touched_payments.add(uetr)
        self.effects.uetrs.add(uetr)
        if row is not None:
            for party in (row["debtor"], row["creditor"]):
                if party:
                    self.effects.participants.add(party)
        if name == "PaymentSettled":
            currency, amount = h["currency"], h["amount"]
            if fx is None:
                self._move(a["debtor"], currency, -amount, "DEBIT", log, uetr=uetr, counterparty=a["creditor"])
                self._move(a["creditor"], currency, amount, "CREDIT", log, uetr=uetr, counterparty=a["debtor"])
            else:
                provider = fx["fx_provider"]
                debit_currency, debit, fx_log = self._fx_debtor_leg.pop(uetr)
                self._move(a["debtor"], debit_currency, -debit, "DEBIT", fx_log, uetr=uetr, counterparty=provider)
                self._move(provider, debit_currency, debit, "CREDIT", fx_log, uetr=uetr, counterparty=a["debtor"])
                self._move(provider, currency, -amount, "DEBIT", log, uetr=uetr, counterparty=a["creditor"])
                self._move(a["creditor"], currency, amount, "CREDIT", log, uetr=uetr, counterparty=provider)

    # ---------------------------------------------------------------- writing
    def _write(self) -> None:
        conn, rows = self.conn, self.rows
        for table, key in ((T_PARTICIPANT_EVENTS, "participant_events"), (T_LINES, "lines"),
                           (T_FUNDING, "funding"), (T_LIMITS, "limits"), (T_BILATERAL, "bilateral"),
                           (T_PAYMENT_EVENTS, "payment_events"), (T_SYSTEM, "system")):
            if rows[key]:
                insert_rows(conn, table, rows[key])
        _replace(conn, T_PARTICIPANTS, ["address"], [(a,) for a in self.touched_participants & self.participants_in_db],
                 [r for a in self.touched_participants if (r := self.participants[a]) is not None])
        _replace(conn, T_BALANCES, ["participant", "currency"], list(self.touched_balances & self.balances_in_db),
                 [self.balances[k] for k in self.touched_balances])
        _replace(conn, T_PAYMENTS, ["uetr"], [(u,) for u in self.touched_payments & self.payments_in_db],
                 [r for u in self.touched_payments if (r := self.payments[u]) is not None])


def _replace(conn: Connection, table: Table, key_columns: list[str], old_keys: Iterable[tuple[Any, ...]],
             new_rows: list[Row]) -> None:
    """Delete the rows with `old_keys`, insert `new_rows` (upsert without dialect specifics)."""
    old = [dict(zip([f"k_{c}" for c in key_columns], k, strict=True)) for k in old_keys]
    if old:
        stmt = delete(table)
        for c in key_columns:
            stmt = stmt.where(table.c[c] == bindparam(f"k_{c}"))
        conn.execute(stmt, old)
    if new_rows:
        insert_rows(conn, table, new_rows)


_Insert = tuple[str, list[str], list[tuple[int, Any, bool]], bool]  # sql, columns, (index, bind processor, memoise)
_INSERTS: dict[tuple[str, str, str], _Insert] = {}


COPY_THRESHOLD = 64  # rows from which PostgreSQL gets COPY instead of executemany


def insert_rows(conn: Connection, table: Table, rows: Sequence[Row], *, copy: bool = True) -> None:
    """INSERT `rows` in one go, the columns' bind processors applied here.

    Same values as ``conn.execute(table.insert(), rows)`` would store, at a fraction of the
    per-row cost (SQLAlchemy's generic parameter processing dominated a 10,000-event range):
    values are taken with one ``itemgetter`` call per row and only the columns that have a
    bind processor (exact integers, timestamps) are converted; timestamps repeat per block,
    so their processed values are memoised per call. On PostgreSQL (psycopg 3) many rows go
    through ``COPY ... FROM STDIN`` in the same transaction; elsewhere one executemany.
    """
    if not rows:
        return
    dialect = conn.dialect
    key = (table.name, dialect.name, str(dialect.paramstyle))
    entry = _INSERTS.get(key)
    if entry is None:
        columns = [c.name for c in table.columns]
        compiled = table.insert().compile(dialect=dialect, column_keys=columns)
        order = list(compiled.positiontup or columns) if dialect.positional else columns
        converters = []
        for i, c in enumerate(order):
            proc = table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                converters.append((i, proc, isinstance(table.c[c].type, UTCDateTime)))
        entry = _INSERTS[key] = (str(compiled), order, converters, bool(dialect.positional))
    sql, order, converters, positional = entry
    getter = itemgetter(*order)
    memos: dict[int, dict[Any, Any]] = {i: {} for i, _, memoise in converters if memoise}
    params: list[Any] = []
    for row in rows:
        try:
            values = list(getter(row))
        except KeyError:
            values = [row.get(c) for c in order]
        for i, proc, memoise in converters:
            v = values[i]
            if v is None:
                continue
            if memoise:
                memo = memos[i]
                out = memo.get(v)
                if out is None:
                    out = memo[v] = proc(v)
                values[i] = out
            else:
                values[i] = proc(v)
        params.append(values)
    if copy and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= COPY_THRESHOLD:
        _copy_rows(conn, table, order, params)
    elif positional:
        conn.exec_driver_sql(sql, [tuple(v) for v in params])
    else:
        conn.exec_driver_sql(sql, [dict(zip(order, v, strict=True)) for v in params])


def _copy_rows(conn: Connection, table: Table, columns: list[str], rows: list[list[Any]]) -> None:
    """COPY rows into a PostgreSQL table through the session's own psycopg connection."""
    import psycopg  # the PostgreSQL driver; only reached with it

    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cursor, cursor.copy(statement) as pipe:  # type: ignore[union-attr]
            for row in rows:
                pipe.write_row(row)
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
    except psycopg.Error as exc:
        raise DBAPIError(statement, None, exc) from exc


def record_processed(session: Session, *, chain_id: int, logs: Sequence[RawLog]) -> None:
    """Claim the blocks of `logs` (all of a range's logs); a block applied before makes this
    raise IntegrityError, so the transaction, and the range, is refused."""
    counts: dict[tuple[str, int], int] = {}
    for log in logs:
        key = (log.block_hash, log.block_number)
        counts[key] = counts.get(key, 0) + 1
    if counts:
        insert_rows(session.connection(), T_PROCESSED, [
            {"chain_id": chain_id, "block_hash": h, "block_number": n, "log_count": c}
            for (h, n), c in counts.items()], copy=False)  # a conflict must surface as IntegrityError


def apply_events(session: Session, *, events: Sequence[DecodedEvent], timestamps: dict[int, int]) -> Effects:
    """Fold `events` (one block range, in chain order) into the mirror."""
    return RangeFold(session, events, timestamps).run()


# ------------------------------------------------------------------ rewind and wipe
def rewind(session: Session, *, fork_block: int) -> Effects:
    """Remove every effect of blocks above `fork_block`, folding the touched state again."""
    conn = session.connection()
    effects = Effects()
    uetrs: list[str] = sorted(conn.execute(select(T_PAYMENT_EVENTS.c.uetr).distinct()
                                .where(T_PAYMENT_EVENTS.c.block_number > fork_block)).scalars())
    balance_keys = [tuple(r) for r in conn.execute(
        select(T_LINES.c.participant, T_LINES.c.currency).distinct().where(T_LINES.c.block_number > fork_block))]
    addresses: list[str] = sorted(conn.execute(select(T_PARTICIPANT_EVENTS.c.address).distinct()
                                    .where(T_PARTICIPANT_EVENTS.c.block_number > fork_block)).scalars())
    for model in POSITIONAL:
        table: Table = model.__table__  # type: ignore[assignment]
        conn.execute(delete(table).where(table.c.block_number > fork_block))

    # payments: fold each touched UETR again from its remaining history
    for chunk in _chunks(uetrs):
        old = {r["uetr"]: dict(r) for r in conn.execute(
            select(T_PAYMENTS).where(T_PAYMENTS.c.uetr.in_(chunk))).mappings()}
        conn.execute(delete(T_PAYMENTS).where(T_PAYMENTS.c.uetr.in_(chunk)))
        folded: dict[str, Row | None] = {}
        for h in conn.execute(select(T_PAYMENT_EVENTS).where(T_PAYMENT_EVENTS.c.uetr.in_(chunk))
                              .order_by(T_PAYMENT_EVENTS.c.block_number, T_PAYMENT_EVENTS.c.log_index)).mappings():
            folded[h["uetr"]] = fold_payment(folded.get(h["uetr"]), dict(h))
        insert_rows(conn, T_PAYMENTS, [r for r in folded.values() if r is not None])
        effects.uetrs.update(chunk)
        for r in old.values():
            effects.participants.update(p for p in (r["debtor"], r["creditor"]) if p)

    # balances: the running balance of the last remaining statement line
    for participant, currency in balance_keys:
        conn.execute(delete(T_BALANCES).where(T_BALANCES.c.participant == participant,
                                              T_BALANCES.c.currency == currency))
        last = conn.execute(
            select(T_LINES.c.balance_after, T_LINES.c.block_number, T_LINES.c.log_index)
            .where(T_LINES.c.participant == participant, T_LINES.c.currency == currency)
            .order_by(T_LINES.c.block_number.desc(), T_LINES.c.log_index.desc()).limit(1)).first()
        if last is not None:
            conn.execute(T_BALANCES.insert(), [{"participant": participant, "currency": currency,
                                                "amount": last.balance_after, "block_number": last.block_number,
                                                "log_index": last.log_index}])
        effects.participants.add(str(participant))

    # participants: fold again from their remaining events
    for chunk in _chunks(addresses):
        conn.execute(delete(T_PARTICIPANTS).where(T_PARTICIPANTS.c.address.in_(chunk)))
        people: dict[str, Row | None] = {}
        for e in conn.execute(select(T_PARTICIPANT_EVENTS).where(T_PARTICIPANT_EVENTS.c.address.in_(chunk))
                              .order_by(T_PARTICIPANT_EVENTS.c.block_number,
                                        T_PARTICIPANT_EVENTS.c.log_index)).mappings():
            people[e["address"]] = fold_participant(people.get(e["address"]), dict(e))
        insert_rows(conn, T_PARTICIPANTS, [r for r in people.values() if r is not None])
        effects.participants.update(chunk)
    return effects


def wipe(session: Session) -> None:
    """Delete every chain-derived row (the checkpoint included): the start of a rebuild."""
    conn = session.connection()
    for model in CHAIN_DERIVED:
        conn.execute(delete(model.__table__))  # type: ignore[arg-type]  # a Table, typed as FromClause
