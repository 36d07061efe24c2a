"""Prometheus metrics: requests and latency by route, payments by status, outbox depth,
chain head and mirror lag. One registry per app, so test apps do not collide."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from chain_gateway.instructions.request import MAX_JSON_DEPTH, json_depth


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gateway_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("gateway_request_seconds", "HTTP latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.payments = Gauge("gateway_payments", "payments in the mirror by status", ["status"],
                              registry=self.registry)
        self.outbox_depth = Gauge("gateway_outbox_depth", "outbox rows not yet done", registry=self.registry)
        self.chain_head = Gauge("gateway_chain_head", "latest chain block", registry=self.registry)
        self.mirror_lag = Gauge("gateway_mirror_lag_blocks", "chain head minus mirror head", registry=self.registry)

    def refresh(self, gateway: Any) -> None:
        """Read the gauges at scrape time (cheap counts; never raises into the scrape)."""
        try:
            from chain_gateway.tracker import status_counts

            head = int(gateway.require_client().w3.eth.block_number)
            self.chain_head.set(head)
            mirror = gateway.mirror_block()
            if mirror is not None:
                self.mirror_lag.set(max(0, head - mirror))
            with gateway.require_sessions()() as session:
                counts, depth = status_counts(session)
            for status, n in counts.items():
                self.payments.labels(status=status).set(n)
            self.outbox_depth.set(depth)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the chain is down
            pass


class MetricsMiddleware:
    """Counts and times every request by its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], name, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], name).observe(time.perf_counter() - start)


class BodyLimitMiddleware:
    """413 for bodies over the limit, by Content-Length or while streaming (chunked)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from api.errors import problem

        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await problem(413, "Payload too large", f"the body exceeds {self.limit} bytes")(scope, receive, send)
            return
        seen = {"n": 0}
        too_big = {"flag": False}

        async def _receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > self.limit:
                    too_big["flag"] = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, _receive, send)
        except _TooLarge:
            await problem(413, "Payload too large", f"the body exceeds {self.limit} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


class JsonDepthMiddleware:
    """400 problem+json for a JSON body nested deeper than MAX_JSON_DEPTH, before anything
    parses it. The gateway process runs with Python's recursion limit at 100,000 (py_ecc and
    py-evm raise it when imported), so the standard library's json, which FastAPI uses for
    every request model and which recurses in C once per level, overflowed the C stack on
    ~100,000 nested brackets and killed the whole process (SIGSEGV), unauthenticated: FastAPI
    reads the body before it checks the key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctype = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
        if b"json" not in ctype:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:  # the body limit (outer middleware) still applies while this reads
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body) > MAX_JSON_DEPTH:
            from api.errors import problem

            await problem(400, "Invalid request", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels",
                          reason_code="FF01")(scope, receive, send)
            return
        replayed = False

        async def _replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, _replay, send)


class HeaderLimitMiddleware:
    """431 problem+json for a request with more than `max_fields` header fields or more than
    `max_bytes` of them in all. uvicorn (h11) passes a 70 KB header or 500 headers through,
    so without this the gateway authenticated, logged and routed such requests as any other."""

    def __init__(self, app: ASGIApp, max_fields: int = 100, max_bytes: int = 16 * 1024) -> None:
        self.app, self.max_fields, self.max_bytes = app, max_fields, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            size = sum(len(k) + len(v) + 4 for k, v in headers)
            if len(headers) > self.max_fields or size > self.max_bytes:
                from api.errors import problem

                await problem(431, "Request header fields too large",
                              f"at most {self.max_fields} header fields and {self.max_bytes} bytes of headers "
                              f"(got {len(headers)} fields, {size} bytes)")(scope, receive, send)
                return
        await self.app(scope, receive, send)
