"""The audit console: read-only HTML pages served by the gateway under /console.

Mounted by the app factory with ``app.include_router(console.router)``; its pages read
through the gateway's own JSON API with the logged-in user's key (see ``data``), and its
log-in sessions are kept on the server (see ``sessions``).
"""
from api.console.routes import router

__all__ = ["router"]
