"""The app factory: ``create_app(settings)`` builds a FastAPI app around a Gateway.

Nothing is built at import time; tests build apps with their own settings (and may hand
in an already started Gateway).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import console, errors
from api.deps import RateLimiter
from api.metrics import BodyLimitMiddleware, HeaderLimitMiddleware, JsonDepthMiddleware, Metrics, MetricsMiddleware
from api.routes import accounts, audit, fx, participants, payments, queue, risk, system
from chain_gateway.config import Settings
from chain_gateway.runtime import Gateway


def create_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    """An app serving API.md; it starts (and stops) the gateway unless one is handed in started."""
    gw = gateway or Gateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = not gw.started
        if owned:
            gw.start()
        try:
            yield
        finally:
            groups = getattr(app.state, "intake_groups", None)
            if groups is not None:  # answer what it holds before the gateway goes
                groups.stop()
                app.state.intake_groups = None
                app.state.last_intake_groups = groups  # its counters, for benchmarks
            if owned:
                gw.stop()

    app = FastAPI(title="Settlement Ledger Gateway", version="1.0.0", lifespan=lifespan,
                  description="Partner banks settle interbank and cross-border payments on a permissioned EVM "
                              "chain. See API.md for the contract.")
    app.state.gateway = gw
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.metrics = Metrics()
    errors.install(app)
    for router in (system.router, participants.router, payments.router, accounts.router, audit.router,
                   risk.router, fx.router, queue.router):
        app.include_router(router)
    app.include_router(console.router)
    app.add_middleware(JsonDepthMiddleware)  # innermost: it buffers what the body limit let through
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(HeaderLimitMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
