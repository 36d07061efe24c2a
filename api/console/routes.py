"""The audit console's pages: server-rendered HTML (Jinja2) over the gateway's JSON API.

Read-only: every page is a GET that reads through ``data.Api`` with the logged-in key;
the only POSTs are log-in and log-out. Scripts, styles and the chart library (uPlot,
from the npm package) are served from here, never from a CDN, so the console works on a
closed bank network. A Content-Security-Policy allows nothing but this origin.
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.console import data
from api.console.sessions import COOKIE, IDLE_SECONDS, ConsoleSession, SessionStore

HERE = Path(__file__).resolve().parent
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))

STATUSES = ("RCVD", "ACSP", "PDNG", "ACSC", "RJCT", "CANC")
MEANING = {"RCVD": "received by the gateway", "ACSP": "submitted to the chain",
           "PDNG": "pending: queued for liquidity or held", "ACSC": "settled, final", "RJCT": "rejected",
           "CANC": "cancelled"}
NAV = [("/console/", "Overview", "overview"), ("/console/balances", "Balances", "balances"),
       ("/console/payments", "Payments", "payments"), ("/console/queue", "Queue", "queue"),
       ("/console/reconciliation", "Reconciliation", "reconciliation"), ("/console/audit", "Audit trail", "audit"),
       ("/console/exports", "Exports", "exports")]
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_FORM_BYTES = 4096
AUTO_TIME_SPAN = 60.0


# ------------------------------------------------------------------ static files
def _static_files(request: Request) -> dict[str, tuple[Path, str]]:
    """The files the console serves, by name (a fixed list: no path from the URL reaches the disk)."""
    own = {"console.css": (HERE / "static" / "console.css", "text/css; charset=utf-8"),
           "console.js": (HERE / "static" / "console.js", "text/javascript; charset=utf-8")}
    roots = [HERE / "static" / "vendor"]  # a copy made at build time, if any
    gateway = getattr(request.app.state, "gateway", None)
    project_root = getattr(getattr(gateway, "settings", None), "project_root", None)
    if project_root is not None:
        roots.insert(0, Path(project_root) / "node_modules" / "uplot" / "dist")
    roots.append(HERE.parents[1] / "node_modules" / "uplot" / "dist")
    for name, kind in (("uPlot.iife.min.js", "text/javascript; charset=utf-8"), ("uPlot.min.css", "text/css; charset=utf-8")):
        for root in roots:
            if (root / name).is_file():
                own[name] = (root / name, kind)
                break
    return own


def _version(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:12]


@router.get("/static/{name}")
def static(name: str, request: Request) -> Response:
    found = _static_files(request).get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    path, kind = found
    etag = f'"{_version(path)}"'
    headers = {"Cache-Control": "public, max-age=3600", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(path.read_bytes(), media_type=kind, headers=headers)


# ------------------------------------------------------------------ templating
def _short(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 18 else f"{text[:10]}…{text[-6:]}"


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(value: Any) -> str:
    """A decimal string with its integer digits grouped by thousands (exact: no float)."""
    text = "" if value is None else str(value)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = digits.partition(".")
    if not whole.isdigit():
        return text
    return f"{sign}{int(whole):,}{dot}{frac}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


templates.env.filters.update(short=_short, when=_when, cell=_cell, money=_money)


def _page(request: Request, name: str, *, title: str, active: str | None, status: int = 200,
          **context: Any) -> Response:
    if getattr(request.state, "console_key_refused", False):
        return _key_refused(request)
    files = _static_files(request)

    def static_url(file: str) -> str:
        found = files.get(file)
        return f"/console/static/{file}" + (f"?v={_version(found[0])}" if found else "")

    response = templates.TemplateResponse(
        request, name, {"title": title, "active": active, "nav": NAV, "user": _session(request),
                        "static": static_url, **context}, status_code=status)
    _secure(response)
    return response


def _secure(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would make Origin "null"
    response.headers["X-Frame-Options"] = "DENY"


# ------------------------------------------------------------------ sessions
def _store(request: Request) -> SessionStore:
    store = getattr(request.app.state, "console_sessions", None)
    if store is None:
        store = request.app.state.console_sessions = SessionStore()
    return store


def _session(request: Request) -> ConsoleSession | None:
    return _store(request).get(request.cookies.get(COOKIE))


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/console/login?" + urllib.parse.urlencode({"next": target}), status_code=303)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _same_origin(request: Request) -> bool:
    """A form post from this console's own pages (browsers send Origin on POST)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


@asynccontextmanager
async def _api(request: Request, user: ConsoleSession) -> AsyncIterator[data.Api]:
    api = data.Api(request.app, user.api_key)
    try:
        yield api
    finally:
        await api.close()
        if api.unauthorized:  # the key was revoked after the log-in: the session ends with it
            request.state.console_key_refused = True


def _key_refused(request: Request) -> Response:
    _store(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login?" + urllib.parse.urlencode({"expired": "1"}), status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    _secure(response)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None, expired: str | None = None) -> Response:
    return _page(request, "login.html", title="Log in", active=None, next=_safe_next(next),
                 error="Your API key was revoked or the gateway no longer accepts it: log in again." if expired
                 else None)


@router.post("/login")
async def login(request: Request) -> Response:
    body = await request.body()
    if not _same_origin(request):
        return _page(request, "login.html", title="Log in", active=None, next="/console/", status=403,
                     error="This log-in form was posted from another site.")
    if len(body) > MAX_FORM_BYTES:
        return _page(request, "login.html", title="Log in", active=None, next="/console/", status=413,
                     error="The form is too large.")
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    except ValueError:  # more fields than the form has
        return _page(request, "login.html", title="Log in", active=None, next="/console/", status=400,
                     error="The form is malformed.")
    key = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    principal = await run_in_threadpool(_authenticate, request, key) if key and len(key) <= 512 else None
    if principal is None:
        return _page(request, "login.html", title="Log in", active=None, next=target, status=401,
                     error="That API key is unknown or revoked.")
    roles = tuple(sorted(principal.roles))
    who = f"{principal.bic} ({', '.join(roles)})" if principal.bic else ", ".join(roles)
    sid = _store(request).create(ConsoleSession(api_key=key, who=who, roles=roles, bic=principal.bic))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, sid, max_age=IDLE_SECONDS * 16, path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    _secure(response)
    return response


def _authenticate(request: Request, key: str) -> Any:
    from chain_gateway.access import authenticate

    gateway = request.app.state.gateway
    with gateway.require_sessions()() as session:
        return authenticate(session, key)


@router.post("/logout")
def logout(request: Request) -> Response:
    if _same_origin(request):
        _store(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    _secure(response)
    return response


# ------------------------------------------------------------------ pages
@router.get("")
def root(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=307)


@router.get("/")
async def overview(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        health, participants = await asyncio.gather(api.get("/healthz"), api.get("/v1/participants"))
    return _page(request, "overview.html", title="Overview", active="overview", health=health,
                 participants=participants)


async def _banks(api: data.Api, user: ConsoleSession) -> list[str]:
    if not user.is_auditor:
        return [user.bic] if user.bic else []
    ans = await api.get("/v1/participants")
    if not ans.ok:
        return []
    return [p["bic"] for p in ans.data.get("items", []) if "bank" in p.get("roles", [])]


@router.get("/balances")
async def balances(request: Request, bic: str | None = None, currency: str | None = None,
                   x: str = "auto") -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    x = x if x in ("time", "block") else "auto"
    error = None
    async with _api(request, user) as api:
        banks = await _banks(api, user)
        answers = await asyncio.gather(*(api.get(f"/v1/accounts/{b}/balances") for b in banks))
        matrix: list[dict[str, Any]] = []
        currencies: set[str] = set()
        block: int | None = None
        for b, ans in zip(banks, answers, strict=True):
            if not ans.ok:
                error = ans.error
                continue
            amounts = {line["currency"]: line["amount"] for line in ans.data.get("balances", [])}
            currencies.update(amounts)
            block = ans.data.get("block_number", block)
            matrix.append({"bic": b, "amounts": amounts})
        ordered = sorted(currencies)
        chosen_bic = (bic or "").strip().upper()
        if len(chosen_bic) == 8:
            chosen_bic += "XXX"
        if chosen_bic not in banks:
            chosen_bic = banks[0] if banks else ""
        chosen_cur = (currency or "").strip().upper()[:3] or (ordered[0] if ordered else "USD")
        if chosen_bic:
            series = await data.balance_series(api, chosen_bic, chosen_cur)
        else:
            series = data.Series(bic="", currency=chosen_cur, error="no bank to chart")
    chart_currencies = sorted(set(ordered) | {chosen_cur})
    axis = x
    if axis == "auto":  # time, unless every movement falls within a minute (a fresh demo ledger)
        times = [p["t"] for p in series.points if p["t"] is not None]
        axis = "time" if times and max(times) - min(times) >= AUTO_TIME_SPAN else "block"
    points = [p for p in series.points if (p["t"] if axis == "time" else p["block"]) is not None]
    chart = {"bic": series.bic, "currency": series.currency, "x": axis,
             "xs": [p["t"] if axis == "time" else p["block"] for p in points],
             "ys": [float(p["balance"]) for p in points]}
    chart_json = json.dumps(chart).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _page(request, "balances.html", title="Balances", active="balances", matrix=matrix, currencies=ordered,
                 block=block, banks=banks, series=series, x=x, chart_json=chart_json, chart_currencies=chart_currencies, axis=axis,
                 chart_lib="uPlot.iife.min.js" in _static_files(request), error=error)


def _search_from(request: Request) -> data.Search:
    qp = request.query_params
    return data.Search(**{k: (qp.get(k) or "").strip()[:64] for k in
                          ("uetr", "bic", "amount", "currency", "status", "date_from", "date_to")})


@router.get("/payments")
async def payments(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    q = _search_from(request)
    async with _api(request, user) as api:
        result = await data.search_payments(api, q)
    query = ("?" + urllib.parse.urlencode(q.params())) if q.params() else ""
    return _page(request, "payments.html", title="Payments", active="payments", q=q, result=result,
                 statuses=STATUSES, query=query)


@router.get("/payments/{uetr}")
async def payment(uetr: str, request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        ans = await api.get(f"/v1/payments/{uetr[:64]}")
        if not ans.ok:
            return _page(request, "payment.html", title="Payment", active="payments", status=ans.status,
                         error=("No payment with that UETR that your key may see." if ans.status == 404
                                else ans.error), p=None, proof=None, meaning=MEANING)
        proof = await data.payment_proof(api, ans.data)
    return _page(request, "payment.html", title=f"Payment {ans.data['uetr']}", active="payments", p=ans.data,
                 proof=proof, meaning=MEANING, error=None)


@router.get("/queue")
async def queue(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        ans = await api.get("/v1/queue", optional=True)
    return _page(request, "queue.html", title="Queue", active="queue", queue=ans)


@router.get("/reconciliation")
async def reconciliation(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        ans = await api.get("/v1/audit/reconciliation")
    return _page(request, "reconciliation.html", title="Reconciliation", active="reconciliation", rec=ans)


@router.get("/audit")
async def audit(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        trail, verify = await asyncio.gather(api.get("/v1/audit/trail", optional=True, params={"limit": 200}),
                                             api.get("/v1/audit/trail/verify", optional=True))
    entries: list[dict[str, Any]] = []
    if trail.ok:
        raw = trail.data.get("items", []) if isinstance(trail.data, dict) else trail.data
        entries = [e for e in raw if isinstance(e, dict)]
    columns = list(dict.fromkeys(k for e in entries[:50] for k in e))[:9]
    return _page(request, "audit.html", title="Audit trail", active="audit", trail=trail, verify=verify,
                 entries=entries, columns=columns, verdict=bool(verify.data.get("ok")) if verify.ok and isinstance(verify.data, dict) else None)


@router.get("/exports")
async def exports(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    async with _api(request, user) as api:
        banks = await _banks(api, user)
    gateway = getattr(request.app.state, "gateway", None)
    currencies = list(getattr(getattr(gateway, "settings", None), "enabled_currencies", None) or ["USD", "EUR"])
    return _page(request, "exports.html", title="Exports", active="exports", banks=banks, currencies=currencies,
                 statuses=STATUSES)


CSV_COLUMNS = ("uetr", "status", "reason_code", "debtor_agent", "creditor_agent", "currency", "amount",
               "end_to_end_id", "instruction_hash", "tx_hash", "block_number", "received_at", "final_at")


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula is quoted as text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/export/payments.csv")
async def export_payments(request: Request) -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    q = _search_from(request)
    async with _api(request, user) as api:
        result = await data.search_payments(api, q, limit=data.MAX_SCAN)
    if getattr(request.state, "console_key_refused", False):
        return _key_refused(request)
    if result.error:
        return Response(f"error: {result.error}\n", status_code=400, media_type="text/plain")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in result.items:
        history = p.get("history") or []
        final = next((h.get("at") for h in reversed(history) if h.get("status") in ("ACSC", "RJCT", "CANC")), None)
        row = {**p, "received_at": history[0].get("at") if history else None, "final_at": final}
        writer.writerow([_csv_cell(row.get(c)) for c in CSV_COLUMNS])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="payments-{stamp}.csv"'})
    _secure(response)
    return response


@router.get("/export/statement.xml")
async def export_statement(request: Request, bic: str = "", currency: str = "USD") -> Response:
    user = _session(request)
    if user is None:
        return _to_login(request)
    clean_bic = "".join(ch for ch in bic.upper() if ch.isalnum())[:11]
    clean_cur = "".join(ch for ch in currency.upper() if ch.isalpha())[:3]
    async with _api(request, user) as api:
        ans = await api.get(f"/v1/accounts/{clean_bic}/statement", params={"currency": clean_cur, "limit": 1000},
                            raw=True, accept="application/xml")
    if getattr(request.state, "console_key_refused", False):
        return _key_refused(request)
    if not ans.ok:
        return Response(f"error: {ans.error}\n", status_code=ans.status, media_type="text/plain")
    response = Response(ans.content, media_type="application/xml",
                        headers={"Content-Disposition":
                                 f'attachment; filename="camt053-{clean_bic}-{clean_cur}.xml"'})
    _secure(response)
    return response
