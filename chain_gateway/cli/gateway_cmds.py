"""Commands that talk to a running gateway over HTTP (API.md), with an API key."""
from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from chain_gateway.cli._base import (
    CliError,
    State,
    command,
    decode_json,
    emit,
    key_values,
    normalise_bic,
    problem_line,
    state_of,
    table,
)

STATUS_MEANING = {
    "RCVD": "received by the gateway",
    "ACSP": "submitted to the chain",
    "PDNG": "pending (queued for liquidity or held)",
    "ACSC": "settled, final",
    "RJCT": "rejected",
    "CANC": "cancelled",
}
PAYMENT_COLUMNS = ("uetr", "status", "reason_code", "debtor_agent", "creditor_agent", "currency", "amount")


def _amount(text: str) -> str:
    """A decimal string as the API wants it (the gateway does the real validation)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CliError(f"{text!r} is not a decimal amount (use e.g. 1250.75)") from None
    if not value.is_finite():
        raise CliError(f"{text!r} is not a decimal amount")
    return format(value, "f")


def when(at: Any) -> str:
    """An RFC 3339 UTC time as `YYYY-MM-DD HH:MM:SS` (the tables say UTC in their header)."""
    text = "" if at is None else str(at)
    return text.replace("T", " ").split(".")[0].removesuffix("Z")[:19]


def _payment_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[p.get(c) for c in PAYMENT_COLUMNS] for p in items]


def _show_payment(console: Console, p: dict[str, Any]) -> None:
    console.print(key_values(f"Payment {p.get('uetr')}", {
        "status": f"{p.get('status')} ({STATUS_MEANING.get(str(p.get('status')), '?')})"
                  + (f" [{p['reason_code']}]" if p.get("reason_code") else ""),
        "debtor agent": p.get("debtor_agent"), "creditor agent": p.get("creditor_agent"),
        "amount": f"{p.get('amount')} {p.get('currency')}", "end-to-end id": p.get("end_to_end_id"),
        "instruction hash": p.get("instruction_hash"), "tx hash": p.get("tx_hash"),
        "block": p.get("block_number")}))


def _timeline(console: Console, p: dict[str, Any]) -> None:
    history = p.get("history") or []
    rows = [[i + 1, h.get("status"), STATUS_MEANING.get(str(h.get("status")), ""), when(h.get("at")),
             h.get("reason_code"), h.get("tx_hash"), h.get("block_number")] for i, h in enumerate(history)]
    console.print(table("Tracker", ("#", "status", "meaning", "at (UTC)", "reason", "tx hash", "block"), rows))


# ============================================================== participants
participants = typer.Typer(help="The participant directory; register, suspend, reinstate (operator).",
                           no_args_is_help=True)


@participants.command("list")
@command
def participants_list(ctx: typer.Context) -> None:
    """The directory: BIC, name, country, roles, status, address."""
    state = state_of(ctx)
    body = state.get_json("/v1/participants")
    items = body.get("items", [])
    emit(state, body, lambda c: c.print(table(
        f"Participants ({len(items)})", ("BIC", "name", "country", "roles", "status", "address"),
        [[p["bic"], p["name"], p["country"], ",".join(p.get("roles", [])),
          p["status"], p["address"]] for p in items])))


@participants.command("register")
@command
def participants_register(
    ctx: typer.Context,
    bic: Annotated[str, typer.Option("--bic", help="BIC8 or BIC11.")],
    name: Annotated[str, typer.Option("--name")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2.")],
    role: Annotated[list[str] | None, typer.Option("--role", help="bank | fx_provider | auditor (repeatable).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Its own chain address (else the gateway "
                                                                  "keeps a key for it).")] = None,
) -> None:
    """Register a participant on-chain; its first API key is shown once."""
    state = state_of(ctx)
    payload: dict[str, Any] = {"bic": bic.strip().upper(), "name": name, "country": country.strip().upper(),
                               "roles": role or ["bank"]}
    if address:
        payload["address"] = address
    body = decode_json(state.call("POST", "/v1/participants", json=payload))

    def render(c: Console) -> None:
        c.print(key_values(f"Registered {body['bic']}", {"address": body["address"], "key id": body.get("key_id"),
                                                          "tx hash": body.get("tx_hash")}))
        c.print(f"API key (shown once, store it now): {body['api_key']}", markup=False)
    emit(state, body, render)


def _status_change(ctx: typer.Context, bic: str, action: str) -> None:
    state = state_of(ctx)
    body = decode_json(state.call("POST", f"/v1/participants/{normalise_bic(bic)}/{action}"))
    emit(state, body, lambda c: c.print(f"{body['bic']} is now {body['status']} (tx {body.get('tx_hash')})",
                                        markup=False))


@participants.command("suspend")
@command
def participants_suspend(ctx: typer.Context, bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")]) -> None:
    """Suspend a participant on-chain: it can neither pay nor be paid."""
    _status_change(ctx, bic, "suspend")


@participants.command("reinstate")
@command
def participants_reinstate(ctx: typer.Context, bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")]) -> None:
    """Reinstate a suspended participant."""
    _status_change(ctx, bic, "reinstate")


# ================================================================== funding
def _move(ctx: typer.Context, path: str, bic: str, currency: str, amount: str, reference: str) -> None:
    state = state_of(ctx)
    body = decode_json(state.call("POST", path, json={"bic": normalise_bic(bic), "currency": currency.upper(),
                                                      "amount": _amount(amount), "reference": reference}))
    verb = "funded" if path.endswith("/funding") else "defunded"
    emit(state, body, lambda c: c.print(key_values(f"{body['bic']} {verb} {body['amount']} {body['currency']}", {
        "reference": body.get("reference"), "balance now": f"{body.get('balance')} {body['currency']}",
        "tx hash": body.get("tx_hash"), "block": body.get("block_number")})))


CurrencyOpt = Annotated[str, typer.Option("--currency", "-c", help="ISO 4217 code.")]
AmountOpt = Annotated[str, typer.Option("--amount", "-a", help="Decimal string, e.g. 1250.75.")]
ReferenceOpt = Annotated[str, typer.Option("--reference", "-r", help="Your reference for this movement.")]


@command
def fund(ctx: typer.Context, bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")], currency: CurrencyOpt,
         amount: AmountOpt, reference: ReferenceOpt) -> None:
    """Credit a participant's settlement balance (operator)."""
    _move(ctx, "/v1/funding", bic, currency, amount, reference)


@command
def defund(ctx: typer.Context, bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")], currency: CurrencyOpt,
           amount: AmountOpt, reference: ReferenceOpt) -> None:
    """Withdraw reserves from a participant's settlement balance (operator)."""
    _move(ctx, "/v1/defunding", bic, currency, amount, reference)


# ================================================================== payments
@command
def pay(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="Creditor agent BIC.")] = None,
    currency: Annotated[str | None, typer.Option("--currency", "-c")] = None,
    amount: Annotated[str | None, typer.Option("--amount", "-a")] = None,
    e2e: Annotated[str | None, typer.Option("--e2e", help="End-to-end id.")] = None,
    remittance: Annotated[str | None, typer.Option("--remittance", help="Remittance information.")] = None,
    urgent: Annotated[bool, typer.Option("--urgent", help="Priority urgent.")] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Queue when liquidity is short instead of "
                                                        "rejecting.")] = False,
    uetr: Annotated[str | None, typer.Option("--uetr", help="Your UETR (retries with the same one never pay "
                                                            "twice); generated if absent.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False,
                                              help="A pacs.008 / pacs.009 XML message instead of flags.")] = None,
    wait: Annotated[int, typer.Option("--wait", min=0, max=60, help="Wait up to N s for a final status "
                                                                    "(Prefer: wait=N).")] = 10,
) -> None:
    """Pay another bank, from flags or an ISO 20022 file (as the bank whose key is used).

    Exit code 1 when the payment (or any transaction of the file) is rejected."""
    state = state_of(ctx)
    headers = {"Prefer": f"wait={wait}"} if wait else {}
    if file is not None:
        if any(v is not None for v in (to, currency, amount, e2e, remittance, uetr)) or urgent or queue:
            raise CliError("give either --file or the payment flags, not both")
        response = state.call("POST", "/v1/payments", ok=(200, 201, 202, 422), content=file.read_bytes(),
                              headers={"Content-Type": "application/xml", "Accept": "application/json"})
        body = decode_json(response)
        if "items" not in body:
            raise CliError(problem_line(response))
        items = body["items"]
        emit(state, body, lambda c: c.print(table(f"Message {body.get('message_id')}: {len(items)} transaction(s)",
                                                  ("uetr", "status", "reason", "detail"),
                                                  [[i.get("uetr"), i.get("status"), i.get("reason_code"),
                                                    i.get("detail")] for i in items])))
        rejected = [i for i in items if i.get("status") == "RJCT"]
        if rejected:
            raise CliError(f"{len(rejected)} of {len(items)} transaction(s) rejected: "
                           + ", ".join(f"{i.get('uetr')} [{i.get('reason_code')}]" for i in rejected[:5]))
        return
    if not (to and currency and amount):
        missing = [flag for flag, value in (("--to", to), ("--currency", currency), ("--amount", amount))
                   if not value]
        raise CliError(f"missing {', '.join(missing)} (or give --file pacs008.xml)")
    payload: dict[str, Any] = {"uetr": uetr or str(uuid.uuid4()), "creditor_agent": to.strip().upper(),
                               "currency": currency.strip().upper(), "amount": _amount(amount)}
    if e2e:
        payload["end_to_end_id"] = e2e
    if remittance:
        payload["remittance_info"] = remittance
    if urgent:
        payload["priority"] = "urgent"
    if queue:
        payload["queue_if_insufficient"] = True
    body = decode_json(state.call("POST", "/v1/payments", json=payload, headers=headers,
                                  timeout=max(state.timeout, wait + 10)))

    def render(c: Console) -> None:
        _show_payment(c, body)
        if body.get("status") not in ("ACSC", "RJCT", "CANC"):
            c.print(f"not final yet: follow it with `settle status {body.get('uetr')}`", markup=False)
    emit(state, body, render)
    if body.get("status") == "RJCT":
        raise CliError(f"payment {body.get('uetr')} rejected [{body.get('reason_code')}]")


@command
def status(ctx: typer.Context, uetr: Annotated[str, typer.Argument(help="The payment's UETR.")]) -> None:
    """The payment's tracker: where it is, and its timeline (gpi statuses)."""
    state = state_of(ctx)
    body = state.get_json(f"/v1/payments/{uetr.strip()}")

    def render(c: Console) -> None:
        _show_payment(c, body)
        _timeline(c, body)
    emit(state, body, render)


@command
def balances(ctx: typer.Context, bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")],
             block: Annotated[int | None, typer.Option("--block", min=0, help="At this block (default: head).")]
             = None) -> None:
    """A bank's settlement balances, read from the chain at a stated block."""
    state = state_of(ctx)
    body = state.get_json(f"/v1/accounts/{normalise_bic(bic)}/balances",
                          params={"block": block} if block is not None else None)
    emit(state, body, lambda c: c.print(table(f"{body['bic']} at block {body['block_number']}",
                                              ("currency", "amount"),
                                              [[b["currency"], b["amount"]] for b in body.get("balances", [])])))


@command
def statement(
    ctx: typer.Context,
    bic: Annotated[str, typer.Argument(help="BIC8 or BIC11.")],
    currency: Annotated[str, typer.Option("--currency", "-c")] = "USD",
    since: Annotated[str | None, typer.Option("--since", help="RFC 3339 time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="RFC 3339 time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Lines per page.")] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    camt053: Annotated[Path | None, typer.Option("--camt053", dir_okay=False, metavar="FILE",
                                                 help="Write the statement as ISO 20022 camt.053 XML.")] = None,
) -> None:
    """A bank's statement in one currency from the mirror, with running balances."""
    state = state_of(ctx)
    path = f"/v1/accounts/{normalise_bic(bic)}/statement"
    params: dict[str, Any] = {"currency": currency.upper(), "limit": limit}
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    if camt053 is not None:
        response = state.call("GET", path, params={**params, "limit": 1000 if all_pages else limit},
                              headers={"Accept": "application/xml"})
        camt053.write_bytes(response.content)
        info = {"file": str(camt053), "bytes": len(response.content), "bic": normalise_bic(bic),
                "currency": currency.upper()}
        emit(state, info, lambda c: c.print(f"wrote camt.053 ({len(response.content)} bytes) to {camt053}",
                                            markup=False))
        return
    body = state.get_json(path, params=params)
    items = list(body.get("items", []))
    while all_pages and body.get("next_cursor"):
        body = state.get_json(path, params={**params, "cursor": body["next_cursor"]})
        items += body.get("items", [])
    body = {**body, "items": items} if all_pages else body
    if all_pages:
        body["next_cursor"] = None

    def render(c: Console) -> None:
        c.print(key_values(f"Statement {body['bic']} {body['currency']} (as of block {body.get('as_of_block')})",
                           {"opening balance": body.get("opening_balance"),
                            "closing balance": body.get("closing_balance")}))
        c.print(table(None, ("at (UTC)", "block", "kind", "amount", "balance", "counterparty", "uetr / reference"),
                      [[when(i.get("at")), i.get("block_number"), i.get("kind"), i.get("amount"), i.get("balance_after"),
                        i.get("counterparty"), i.get("uetr") or i.get("reference")] for i in body["items"]]))
        if body.get("next_cursor"):
            c.print("more lines: use --all", markup=False)
    emit(state, body, render)


# ==================================================================== queue
queue_app = typer.Typer(help="The payment queue (PDNG): list, resolve gridlock.", invoke_without_command=True)


def _queue_list(ctx: typer.Context, currency: str | None) -> None:
    state = state_of(ctx)
    body = state.get_json("/v1/queue", not_served="the payment queue",
                          params={"currency": currency.upper()} if currency else None)
    items = body.get("items", []) if isinstance(body, dict) else body
    emit(state, body, lambda c: c.print(table(f"Queued payments ({len(items)})", PAYMENT_COLUMNS,
                                              _payment_rows(items))))


@queue_app.callback()
@command
def queue_default(ctx: typer.Context,
                  currency: Annotated[str | None, typer.Option("--currency", "-c")] = None) -> None:
    """Queued payments (operator and auditor: all; a bank: its own)."""
    if ctx.invoked_subcommand is None:
        _queue_list(ctx, currency)


@queue_app.command("list")
@command
def queue_list(ctx: typer.Context, currency: Annotated[str | None, typer.Option("--currency", "-c")] = None) -> None:
    """Queued payments."""
    _queue_list(ctx, currency)


@command
def resolve(ctx: typer.Context) -> None:
    """Run gridlock resolution on the queue (operator); reports what settled."""
    state = state_of(ctx)
    body = decode_json(state.call("POST", "/v1/queue/resolve", not_served="queue resolution"))

    def render(c: Console) -> None:
        settled = body.get("settled") if isinstance(body, dict) else None
        if isinstance(settled, list):
            c.print(f"{len(settled)} payment(s) settled", markup=False)
            rows = [[s] if isinstance(s, str) else [s.get("uetr"), s.get("amount"), s.get("currency")]
                    for s in settled]
            if rows:
                c.print(table(None, ("uetr", "amount", "currency")[:len(rows[0])], rows))
        rest = {k: v for k, v in body.items() if k != "settled"} if isinstance(body, dict) else {"result": body}
        if rest:
            c.print(key_values("Resolution", rest))
    emit(state, body, render)


queue_app.command("resolve")(resolve)


# ==================================================================== audit
@command
def reconcile(ctx: typer.Context,
              block: Annotated[int | None, typer.Option("--block", min=0, help="At this block (default: the "
                                                                               "mirror's checkpoint).")] = None) -> None:
    """Check the mirror against the chain; exit code 1 when they differ."""
    state = state_of(ctx)
    body = state.get_json("/v1/audit/reconciliation", params={"block": block} if block is not None else None)
    diffs = body.get("differences", [])

    def render(c: Console) -> None:
        checked = ", ".join(f"{v} {k}" for k, v in (body.get("checked") or {}).items())
        if not diffs:
            c.print(f"consistent at block {body.get('block_number')}: checked {checked}", markup=False)
            return
        c.print(table(f"{len(diffs)} difference(s) at block {body.get('block_number')} (checked {checked})",
                      ("kind", "key", "mirror", "chain"),
                      [[d.get("kind"), d.get("key"), d.get("mirror"), d.get("chain")] for d in diffs]))
    emit(state, body, render)
    if diffs:
        raise CliError(f"the mirror differs from the chain in {len(diffs)} place(s) at block {body.get('block_number')}")


audit_app = typer.Typer(help="The audit trail of operator actions and risk decisions.", no_args_is_help=True)


@audit_app.command("verify")
@command
def audit_verify(ctx: typer.Context) -> None:
    """Verify the hash chain of the audit trail; exit code 1 when it is broken."""
    state = state_of(ctx)
    body = state.get_json("/v1/audit/trail/verify", not_served="the audit trail")
    ok = bool(body.get("ok"))
    emit(state, body, lambda c: c.print(key_values("Audit trail: " + ("intact" if ok else "BROKEN"), body)))
    if not ok:
        raise CliError(f"the audit trail does not verify: first broken link {body.get('first_broken')}")


@audit_app.command("trail")
@command
def audit_trail(ctx: typer.Context, limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100) -> None:
    """The latest entries of the audit trail."""
    state = state_of(ctx)
    body = state.get_json("/v1/audit/trail", params={"limit": limit},
                          not_served="the audit trail")
    items = body.get("items", []) if isinstance(body, dict) else body
    columns = list(dict.fromkeys(k for item in items[:50] if isinstance(item, dict) for k in item))[:8]
    emit(state, body, lambda c: c.print(table(f"Audit trail ({len(items)})", columns,
                                              [[i.get(k) for k in columns] for i in items])))


def register(app: typer.Typer) -> None:
    app.add_typer(participants, name="participants")
    app.command("fund")(fund)
    app.command("defund")(defund)
    app.command("pay")(pay)
    app.command("status")(status)
    app.command("balances")(balances)
    app.command("statement")(statement)
    app.add_typer(queue_app, name="queue")
    app.command("resolve")(resolve)
    app.command("reconcile")(reconcile)
    app.add_typer(audit_app, name="audit")


__all__ = ["State", "register"]
