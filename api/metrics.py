"""Prometheus metrics: requests and latency by route, payments by status, outbox depth,
chain head and mirror lag. One registry per app, so test apps do not collide."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send


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
