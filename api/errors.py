"""One place that turns domain errors into RFC 9457 problem+json responses.

Domain code raises ``GatewayError`` subclasses and never knows about HTTP; this module
maps each class to its status (API.md's error table). Anything unexpected becomes a
logged 500 problem — a bug to fix, never a leak of internals.
"""
from __future__ import annotations

import logging
from typing import Any

import httpx
import requests
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain_gateway import errors as e

log = logging.getLogger("api")
# What the node's HTTP clients raise when it cannot be reached (web3: requests; the indexer's
# source: httpx): refused, reset, timed out. Handlers reading the chain meet these first.
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (requests.ConnectionError, requests.Timeout,
                                                       httpx.TransportError, ConnectionError, TimeoutError)
PROBLEM = "application/problem+json"

_STATUS: list[tuple[type[e.GatewayError], int]] = [
    (e.InvalidMessage, 400),
    (e.Forbidden, 403),
    (e.NotFound, 404),
    (e.DuplicateUetr, 409),
    (e.Conflict, 409),
    (e.BusinessRejection, 422),
    (e.Unavailable, 503),
    (e.ConfigurationError, 503),
]


def status_for(exc: e.GatewayError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(status: int, title: str, detail: str, *, reason_code: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if reason_code:
        body["reason_code"] = reason_code
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class HttpProblem(Exception):
    """For the few API-level refusals that are not domain errors (401, 413, 415, 429)."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if isinstance(v, (str, int, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (bytes, bytearray)):
            out[k] = "0x" + bytes(v).hex()
        elif isinstance(v, list) and all(isinstance(i, (str, int, dict)) for i in v):
            out[k] = v
        else:
            out[k] = str(v)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(e.GatewayError)
    async def _domain(request: Request, exc: e.GatewayError) -> JSONResponse:
        status = status_for(exc)
        if status == 500 and chain_unreachable(exc):
            log.warning("chain unreachable on %s %s: %r", request.method, request.url.path, exc)
            return problem(503, "Chain unavailable", "the chain node does not answer; retry shortly",
                           headers={"Retry-After": "5"})
        if status == 500:
            log.error("unmapped gateway error on %s %s: %r", request.method, request.url.path, exc)
            return problem(500, "Internal error", "the gateway failed; the request had no effect")
        headers = {"Retry-After": "5"} if status == 503 else None
        extra = _jsonable(exc.fields) if exc.fields else {}
        return problem(status, exc.title, exc.detail, reason_code=exc.reason_code, headers=headers, **extra)

    @app.exception_handler(HttpProblem)
    async def _http_problem(request: Request, exc: HttpProblem) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = f"{loc}: {first.get('msg', 'invalid')}" if loc else str(first.get("msg", "invalid request"))
        # Amount problems carry AM12 (API.md); everything else is a malformed request.
        code = "AM12" if "amount" in loc.split(".")[-1:] else "FF01"
        status = 422 if code == "AM12" else 400
        return problem(status, "Invalid request", detail, reason_code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        return problem(exc.status_code, titles.get(exc.status_code, "HTTP error"), str(exc.detail),
                       headers=getattr(exc, "headers", None))

    async def _chain_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("chain unreachable on %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "Chain unavailable", "the chain node does not answer; retry shortly",
                       headers={"Retry-After": "5"})

    for transport_error in _TRANSPORT_ERRORS:  # handled here, not re-raised to the server's error log
        app.add_exception_handler(transport_error, _chain_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if chain_unreachable(exc):
            # A read the handler needed from the node failed in transport: the gateway is
            # degraded, not broken, and nothing was written (chain reads precede any write).
            log.warning("chain unreachable on %s %s: %s", request.method, request.url.path, exc)
            return problem(503, "Chain unavailable", "the chain node does not answer; retry shortly",
                           headers={"Retry-After": "5"})
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the gateway failed; the request had no effect")


def chain_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a transport failure talking to the chain node:
    refused, reset, timed out (web3 raises requests' errors, the indexer's source httpx's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*_TRANSPORT_ERRORS, e.ChainUnavailable)):
            return True
        current = current.__cause__ or current.__context__
    return False
