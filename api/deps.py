"""Every dependency a handler can ask for, as an ``Annotated`` alias: the gateway, a
database session in one transaction, the authenticated caller, and role requirements."""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session
from starlette.concurrency import run_in_threadpool

from api.errors import HttpProblem
from chain_gateway.access import ApiKey, Principal, authenticate
from chain_gateway.errors import Forbidden, NotFound, Unavailable
from chain_gateway.runtime import Gateway


# The dependencies are `async` where they do not block (no I/O, or none on the usual path):
# FastAPI runs a sync dependency in the thread pool, a hop of ~0.1-0.2 ms and a GIL handoff
# each, four per request before the handler's own work.
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    if not gateway.started or gateway.sessions is None:
        raise Unavailable("the gateway is starting")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_session(gateway: GatewayDep) -> AsyncIterator[Session]:
    """A session per request. Handlers that write commit before they answer (so a client never
    reads its own write late); whatever is left uncommitted on an error is rolled back.
    Opening a session does no I/O; closing one that still holds a connection does (a rollback),
    so that runs in the thread pool."""
    session = gateway.require_sessions()()
    try:
        yield session
    except Exception:
        await run_in_threadpool(session.rollback)
        raise
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


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


class KeyCache:
    """API keys verified in the last `ttl` seconds, so a request does not pay a session and a
    SQL read to authenticate (keyed by the presented key's SHA-256, never the key itself).

    A revocation made through the ORM (``revoke_key``) removes the key at once: at flush and
    again at commit (SQLAlchemy events on ``ApiKey``), and a lookup that started before a
    revocation is not cached (generation check). One made by another process, or by raw SQL,
    takes effect within `ttl` seconds.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    @staticmethod
    def _digest(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, presented: str) -> Principal | None:
        hit = self._entries.get(self._digest(presented))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, presented: str, principal: Principal, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return  # a key was revoked while this one was being looked up
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[self._digest(presented)] = (time.monotonic() + self.ttl, principal)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self.generation += 1
            for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
                del self._entries[digest]


KEY_CACHE = KeyCache()


@event.listens_for(ApiKey, "after_update")
def _key_updated(_mapper: object, _connection: object, target: ApiKey) -> None:
    if target.revoked_at is None:
        return
    KEY_CACHE.forget(target.key_id)
    session = object_session(target)
    if session is not None:  # and once more when it commits: a lookup in between read the old row
        event.listen(session, "after_commit", lambda _s, key_id=target.key_id: KEY_CACHE.forget(key_id), once=True)


def _authenticate(gateway: Gateway, presented: str) -> Principal | None:
    principal = KEY_CACHE.get(presented)
    if principal is not None:
        return principal
    generation = KEY_CACHE.generation
    with gateway.require_sessions()() as session:
        principal = authenticate(session, presented)
    if principal is not None:
        KEY_CACHE.put(presented, principal, generation)
    return principal


async def get_principal(request: Request, gateway: GatewayDep,
                        authorization: Annotated[str | None, Header()] = None) -> Principal:
    if len(request.headers.getlist("authorization")) > 1:  # which one counts would depend on who reads it
        raise HttpProblem(401, "Unauthorized", "send exactly one Authorization header",
                          headers={"WWW-Authenticate": "Bearer"})
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 512:
        raise HttpProblem(401, "Unauthorized", "send `Authorization: Bearer <api key>`",
                          headers={"WWW-Authenticate": "Bearer"})
    presented = authorization[7:].strip()
    principal = KEY_CACHE.get(presented)
    if principal is None:  # not verified in the last seconds: ask the database, off the event loop
        principal = await run_in_threadpool(_authenticate, gateway, presented)
    if principal is None:
        raise HttpProblem(401, "Unauthorized", "the API key is unknown or revoked",
                          headers={"WWW-Authenticate": "Bearer"})
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.allow(principal.key_id):
        raise HttpProblem(429, "Too many requests", "this key's rate limit is exceeded; retry shortly",
                          headers={"Retry-After": "1"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only keys holding one of `roles` (403 AG01 otherwise)."""
    async def _check(principal: PrincipalDep) -> Principal:
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
