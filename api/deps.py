"""Every dependency a handler can ask for, as an ``Annotated`` alias: the gateway, a
database session in one transaction, the authenticated caller, and role requirements."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from api.errors import HttpProblem
from chain_gateway.access import Principal, authenticate
from chain_gateway.errors import Forbidden, NotFound, Unavailable
from chain_gateway.runtime import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    if not gateway.started or gateway.sessions is None:
        raise Unavailable("the gateway is starting")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_session(gateway: GatewayDep) -> Iterator[Session]:
    """A session per request. Handlers that write commit before they answer (so a client never
    reads its own write late); whatever is left uncommitted on an error is rolled back."""
    with gateway.require_sessions()() as session:
        try:
            yield session
        except Exception:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]


class RateLimiter:
    """Token bucket per API key (in-process; one gateway instance per bank)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True


def get_principal(request: Request, gateway: GatewayDep,
                  authorization: Annotated[str | None, Header()] = None) -> Principal:
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 512:
        raise HttpProblem(401, "Unauthorized", "send `Authorization: Bearer <api key>`",
                          headers={"WWW-Authenticate": "Bearer"})
    with gateway.require_sessions()() as session:
        principal = authenticate(session, authorization[7:].strip())
    if principal is None:
        raise HttpProblem(401, "Unauthorized", "the API key is unknown or revoked",
                          headers={"WWW-Authenticate": "Bearer"})
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.allow(principal.key_id):
        raise HttpProblem(429, "Too many requests", "this key's rate limit is exceeded; retry shortly",
                          headers={"Retry-After": "1"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that admits only keys holding one of `roles` (403 AG01 otherwise)."""
    def _check(principal: PrincipalDep) -> Principal:
        if not principal.has(*roles):
            raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")
        return principal
    return _check


Operator = Annotated[Principal, Depends(require("operator"))]
Auditor = Annotated[Principal, Depends(require("auditor", "operator"))]
Bank = Annotated[Principal, Depends(require("bank"))]
FxProvider = Annotated[Principal, Depends(require("fx_provider"))]


def ensure_can_see(principal: Principal, *bics: str | None) -> None:
    """Auditors and the operator see everything; a bank only what it is party to (404 else)."""
    if principal.has("auditor", "operator"):
        return
    if principal.bic is None or principal.bic not in bics:
        raise NotFound("no such resource")
