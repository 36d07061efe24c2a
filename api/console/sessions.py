"""Console log-in sessions, kept on the server.

Why this design: after log-in the browser holds only a random session id in an
``HttpOnly; SameSite=Strict; Path=/console`` cookie (``Secure`` over HTTPS). The API key
itself stays in this process's memory: no script on the page can read it (unlike
``sessionStorage``), it never travels in a URL, and it is not sitting in the browser's
cookie jar in the clear (a signed cookie is signed, not encrypted). Sessions expire
after idle time and at an absolute limit, and log-out (or a gateway restart) drops them.
The console is read-only: its only state-changing requests are log-in and log-out, which
the SameSite=Strict cookie and an Origin check protect against cross-site use.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "settle_console"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 3600
MAX_SESSIONS = 1000


@dataclass
class ConsoleSession:
    api_key: str
    who: str
    roles: tuple[str, ...]
    bic: str | None
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_auditor(self) -> bool:
        return self.has("auditor", "operator")


class SessionStore:
    """Session id -> ConsoleSession, in memory, thread-safe, bounded."""

    def __init__(self) -> None:
        self._items: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def create(self, session: ConsoleSession) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            if len(self._items) >= MAX_SESSIONS:  # drop the least recently used
                oldest = min(self._items, key=lambda k: self._items[k].seen)
                del self._items[oldest]
            self._items[sid] = session
        return sid

    def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid or len(sid) > 128:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._items.get(sid)
            if found is None:
                return None
            if now - found.seen > IDLE_SECONDS or now - found.created > ABSOLUTE_SECONDS:
                del self._items[sid]
                return None
            found.seen = now
            return found

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [k for k, s in self._items.items()
                    if now - s.seen > IDLE_SECONDS or now - s.created > ABSOLUTE_SECONDS]:
            del self._items[sid]
