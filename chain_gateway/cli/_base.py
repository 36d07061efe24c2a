"""What every ``settle`` command shares: the global options, the HTTP client that talks to
the gateway (API.md), one-line errors, and output as rich tables or ``--json``.

Errors never show a traceback: a command raises ``CliError`` (or lets a problem+json
answer, a transport failure or a ``GatewayError`` through) and ``command`` prints one line
on stderr and exits 1.
"""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
DEFAULT_CREDENTIALS = Path("var/credentials.json")

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """Raised for anything the user should read as one line on stderr (exit code 1)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class NotServed(CliError):
    """Raised when the gateway answers 404 for an endpoint it does not serve (yet)."""


def stdout() -> Console:
    return Console(soft_wrap=False, highlight=False)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str) -> NoReturn:
    raise CliError(message)


MAX_ERROR_CHARS = 600


def _one_line(text: str) -> str:
    """Whitespace collapsed; a very long message (a compiler's report, say) cut to stay readable."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 1] + "…"


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that every failure is one line on stderr and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except CliError as exc:
            _print_error(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except httpx.TimeoutException as exc:
            _print_error(f"the gateway did not answer in time ({type(exc).__name__})")
            raise typer.Exit(1) from None
        except httpx.TransportError as exc:
            _print_error(f"cannot reach the gateway: {exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _print_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, never a traceback
            from chain_gateway.errors import GatewayError

            if isinstance(exc, GatewayError):
                _print_error(f"{exc.title}: {exc.detail}" + (f" [{exc.reason_code}]" if exc.reason_code else ""))
            elif isinstance(exc, OSError):
                _print_error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
            else:
                _print_error(f"{type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
    return wrapper


def _print_error(message: str) -> None:
    stderr().print(f"error: {_one_line(message)}", markup=False)


# ----------------------------------------------------------------------- state
@dataclass
class State:
    """The global options, resolved lazily (a deploy needs no key)."""

    gateway: str = DEFAULT_GATEWAY
    key: str | None = None
    credentials: Path = DEFAULT_CREDENTIALS
    as_: str | None = None
    json: bool = False
    timeout: float = 30.0
    _client: httpx.Client | None = field(default=None, repr=False)

    def api_key(self) -> str:
        if self.key:
            return self.key.strip()
        if self.as_:
            return key_from_credentials(self.credentials, self.as_)
        raise CliError("no API key: pass --key (or set SETTLE_API_KEY), "
                       "or --as operator|auditor|BIC with --credentials FILE")

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.gateway.rstrip("/"), timeout=self.timeout,
                                        headers={"Authorization": f"Bearer {self.api_key()}",
                                                 "User-Agent": "settle-cli"})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --------------------------------------------------------------- requests
    def call(self, method: str, path: str, *, ok: Iterable[int] = (200, 201, 202, 204),
             not_served: str | None = None, **kwargs: Any) -> httpx.Response:
        """One request; a non-`ok` answer becomes a CliError with the problem's title and detail.

        `not_served` names the feature for a gateway that answers 404 because it lacks the
        endpoint (a newer API than this gateway)."""
        response = self.client().request(method, path, **kwargs)
        if response.status_code in set(ok):
            return response
        if response.status_code == 404 and not_served is not None:
            raise NotServed(f"this gateway does not serve {not_served} yet ({method} {path} answered 404)")
        raise CliError(problem_line(response))

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return decode_json(self.call("GET", path, **kwargs))


def decode_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CliError(f"the gateway answered {response.status_code} with a body that is not JSON") from None


def problem_line(response: httpx.Response) -> str:
    """A problem+json answer (RFC 9457) as one line: title: detail [reason_code] (HTTP status)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        title = str(body.get("title") or f"HTTP {status}")
        detail = body.get("detail")
        text = f"{title}: {detail}" if detail and str(detail) != title else title
        if body.get("reason_code"):
            text += f" [{body['reason_code']}]"
    else:
        text = (response.reason_phrase or "error") + (f": {response.text[:200]}" if response.text else "")
    retry = response.headers.get("retry-after")
    suffix = f" (HTTP {status}" + (f", retry after {retry} s" if retry else "") + ")"
    return _one_line(text) + suffix


def key_from_credentials(path: Path, who: str) -> str:
    """The key of `who` (operator, auditor, or a BIC8/BIC11) in a credentials.json file."""
    try:
        creds = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no credentials file at {path} (make run writes var/credentials.json)") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the credentials in {path}: {exc}") from None
    if not isinstance(creds, dict):
        raise CliError(f"{path} is not a credentials file")
    role = who.strip()
    if role.lower() in ("operator", "auditor"):
        key = creds.get(role.lower())
        if not key:
            raise CliError(f"{path} holds no {role.lower()} key")
        return str(key)
    bic = role.upper()
    if len(bic) == 8:
        bic += "XXX"
    for group in ("banks", "fx_providers"):
        members = creds.get(group) or {}
        if isinstance(members, dict) and bic in members:
            return str(members[bic])
    raise CliError(f"{path} holds no key for {who!r} (use operator, auditor or one of its BICs)")


# ----------------------------------------------------------------------- output
def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # invoked without the root callback (never in practice)
        obj = State()
        ctx.find_root().obj = obj
    return obj


def emit(state: State, data: Any, render: Callable[[Console], None]) -> None:
    """`data` as JSON with --json, else whatever `render` prints."""
    if state.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        render(stdout())


NUMERIC = frozenset({"amount", "balance", "block", "#", "opening balance", "closing balance"})


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]], **kwargs: Any) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold", **kwargs)
    for col in columns:
        t.add_column(col, overflow="fold", justify="right" if col in NUMERIC else "left",
                     no_wrap=col.startswith("at (") or col in NUMERIC)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def key_values(title: str | None, data: Mapping[str, Any]) -> Group:
    """A title line, then one `key  value` line per item."""
    t = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in data.items():
        t.add_row(str(k), "" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v)))
    return Group(Text(title, style="bold"), t) if title else Group(t)


def normalise_bic(bic: str) -> str:
    """BIC8 or BIC11, as the API accepts both (BIC8 == BIC8 + 'XXX')."""
    b = bic.strip().upper()
    if len(b) not in (8, 11) or not b.isalnum():
        raise CliError(f"{bic!r} is not a BIC (8 or 11 letters and digits)")
    return b if len(b) == 11 else b + "XXX"


def is_tty() -> bool:
    return sys.stdin.isatty()
