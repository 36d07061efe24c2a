"""What the console reads, fetched from the gateway's own JSON API (API.md) in-process,
with the logged-in user's key: the console has no data access of its own, so it sees
exactly what that key may see, and a feature the gateway does not serve yet (404) shows
as such instead of failing.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from fastapi import FastAPI

PAGE = 1000
MAX_SCAN = 20_000
MAX_STATEMENT_LINES = 20_000
MAX_PROOF_BLOCKS = 10_000
PAYMENT_EVENTS = ("PaymentQueued", "PaymentSettled", "PaymentRejected", "PaymentCancelled", "PaymentHoldChanged",
                  "PaymentPriorityChanged")


@dataclass
class Answer:
    """One API answer: `data` when it succeeded, else a one-line `error`."""

    status: int
    data: Any = None
    content: bytes = b""
    error: str | None = None
    not_served: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        text = str(body.get("title") or "Error")
        if body.get("detail") and body.get("detail") != text:
            text += f": {body['detail']}"
        if body.get("reason_code"):
            text += f" [{body['reason_code']}]"
        return f"{text} (HTTP {response.status_code})"
    return f"HTTP {response.status_code}"


class Api:
    """The gateway's JSON API called in-process (no network hop) with one user's key."""

    def __init__(self, app: FastAPI, api_key: str) -> None:
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.internal",
                                         headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
        self.unauthorized = False
        """Set when the gateway answered 401: the key was revoked since the log-in."""

    async def close(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, *, params: dict[str, Any] | None = None, raw: bool = False,
                  accept: str = "application/json", optional: bool = False) -> Answer:
        """GET `path`; `optional` marks an endpoint some gateways do not serve yet (404 = not served)."""
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        response = await self._client.get(path, params=clean, headers={"Accept": accept})
        if response.status_code == 401:
            self.unauthorized = True
        if response.status_code >= 400:
            return Answer(response.status_code, error=_problem(response),
                          not_served=optional and response.status_code in (404, 405))
        if raw:
            return Answer(response.status_code, content=response.content)
        try:
            return Answer(response.status_code, data=response.json())
        except ValueError:
            return Answer(response.status_code, error="the gateway answered with a body that is not JSON")


# ------------------------------------------------------------------ payments
@dataclass
class Search:
    uetr: str = ""
    bic: str = ""
    amount: str = ""
    currency: str = ""
    status: str = ""
    date_from: str = ""
    date_to: str = ""

    @property
    def empty(self) -> bool:
        return not any((self.uetr, self.bic, self.amount, self.currency, self.status, self.date_from, self.date_to))

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("uetr", self.uetr), ("bic", self.bic), ("amount", self.amount),
                                  ("currency", self.currency), ("status", self.status),
                                  ("date_from", self.date_from), ("date_to", self.date_to)) if v}


@dataclass
class SearchResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    scanned: int = 0
    truncated: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _day(text: str, *, end: bool) -> str | None:
    """A date (YYYY-MM-DD) as an RFC 3339 bound: the day's start, or the next day's start for `end`."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    if end:
        day += dt.timedelta(days=1)
    return f"{day.isoformat()}T00:00:00Z"


def _same_amount(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, TypeError):
        return False


async def search_payments(api: Api, q: Search, *, limit: int = 200) -> SearchResult:
    """Payments matching every given criterion, newest first.

    The API filters by BIC (counterparty), currency, status and time; the amount is
    compared here over the pages the API returns (at most MAX_SCAN payments)."""
    out = SearchResult()
    if q.uetr:
        ans = await api.get(f"/v1/payments/{q.uetr.strip()}")
        if not ans.ok:
            out.error = "no payment with that UETR" if ans.status == 404 else ans.error
            return out
        p = ans.data
        checks = [not q.bic or q.bic.upper() in (p.get("debtor_agent"), p.get("creditor_agent"))
                  or q.bic.upper() + "XXX" in (p.get("debtor_agent"), p.get("creditor_agent")),
                  not q.amount or _same_amount(p.get("amount", ""), q.amount),
                  not q.currency or p.get("currency") == q.currency.upper(),
                  not q.status or p.get("status") == q.status.upper()]
        out.scanned = 1
        if all(checks):
            out.items = [p]
        else:
            out.notes.append("the payment with that UETR does not match the other criteria")
        return out
    params: dict[str, Any] = {"counterparty": q.bic.strip().upper() or None, "currency": q.currency.upper() or None,
                              "status": q.status.upper() or None, "limit": PAGE}
    for key, text, end in (("since", q.date_from, False), ("until", q.date_to, True)):
        if text:
            bound = _day(text, end=end)
            if bound is None:
                out.error = f"{text!r} is not a date (YYYY-MM-DD)"
                return out
            params[key] = bound
    if q.amount:
        try:
            Decimal(q.amount)
        except InvalidOperation:
            out.error = f"{q.amount!r} is not an amount"
            return out
    cursor = None
    while True:
        ans = await api.get("/v1/payments", params={**params, "cursor": cursor})
        if not ans.ok:
            out.error = ans.error
            return out
        page = ans.data.get("items", [])
        out.scanned += len(page)
        for p in page:
            if q.amount and not _same_amount(p.get("amount", ""), q.amount):
                continue
            if len(out.items) >= limit:
                out.truncated = True
                return out
            out.items.append(p)
        cursor = ans.data.get("next_cursor")
        if not cursor:
            return out
        if out.scanned >= MAX_SCAN:
            out.truncated = True
            out.notes.append(f"stopped after {MAX_SCAN} payments: narrow the search")
            return out


# --------------------------------------------------------------------- proof
@dataclass
class ProofEvent:
    event: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    instruction_hash: str | None


@dataclass
class Proof:
    events: list[ProofEvent] = field(default_factory=list)
    signed_hash: str | None = None
    chain_hash: str | None = None
    error: str | None = None

    @property
    def settled(self) -> ProofEvent | None:
        return next((e for e in self.events if e.event == "PaymentSettled"), None)

    @property
    def match(self) -> bool | None:
        """The instruction hash the gateway holds equals the one the chain settled (None: cannot tell)."""
        if not self.signed_hash or not self.chain_hash:
            return None
        return _hex(self.signed_hash) == _hex(self.chain_hash)


def _hex(value: str) -> str:
    v = value.strip().lower()
    return v.removeprefix("0x")


async def payment_proof(api: Api, payment: dict[str, Any]) -> Proof:
    """The payment's events on the chain (tx hash, block, log index) and the hash check."""
    proof = Proof(signed_hash=payment.get("instruction_hash"))
    blocks = {b for b in [payment.get("block_number"), *(h.get("block_number") for h in payment.get("history", []))]
              if isinstance(b, int)}
    if not blocks:
        proof.error = "not on the chain yet: no block to prove"
        return proof
    low, high = min(blocks), max(blocks)
    if high - low > MAX_PROOF_BLOCKS:
        low = high - MAX_PROOF_BLOCKS
    ans = await api.get("/v1/audit/ledger", params={"from_block": low, "to_block": high})
    if not ans.ok:
        proof.error = ("the on-chain proof needs an auditor or operator key" if ans.status == 403 else ans.error)
        return proof
    want = _hex(str(payment.get("uetr", "")).replace("-", ""))
    for item in ans.data.get("items", []):
        args = item.get("args", {})
        if item.get("event") not in PAYMENT_EVENTS or _hex(str(args.get("uetr", ""))) != want:
            continue
        proof.events.append(ProofEvent(event=item["event"], block_number=item["block_number"],
                                       block_hash=item.get("block_hash", ""), tx_hash=item.get("tx_hash", ""),
                                       log_index=item.get("log_index", 0), address=item.get("address", ""),
                                       instruction_hash=args.get("instructionHash")))
    settled = proof.settled
    if settled is not None:
        proof.chain_hash = settled.instruction_hash
    elif not proof.events:
        proof.error = "no event of this payment found in its blocks"
    return proof


# ------------------------------------------------------------------- balances
@dataclass
class Series:
    bic: str
    currency: str
    points: list[dict[str, Any]] = field(default_factory=list)
    opening: str = "0"
    closing: str = "0"
    as_of_block: int | None = None
    truncated: bool = False
    error: str | None = None


async def balance_series(api: Api, bic: str, currency: str) -> Series:
    """Every running balance of one bank in one currency (from its statement), oldest first."""
    series = Series(bic=bic, currency=currency)
    cursor = None
    while True:
        ans = await api.get(f"/v1/accounts/{bic}/statement",
                            params={"currency": currency, "limit": PAGE, "cursor": cursor})
        if not ans.ok:
            series.error = ans.error
            return series
        body = ans.data
        if cursor is None:
            series.opening = body.get("opening_balance", "0")
            series.as_of_block = body.get("as_of_block")
        for line in body.get("items", []):
            at = line.get("at")
            ts = dt.datetime.fromisoformat(at).timestamp() if at else None
            series.points.append({"t": ts, "at": at, "block": line.get("block_number"), "kind": line.get("kind"),
                                  "amount": line.get("amount"), "balance": line.get("balance_after"),
                                  "uetr": line.get("uetr"), "counterparty": line.get("counterparty")})
        series.closing = body.get("closing_balance", series.closing)
        cursor = body.get("next_cursor")
        if not cursor:
            return series
        if len(series.points) >= MAX_STATEMENT_LINES:
            series.truncated = True
            return series
