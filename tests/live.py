"""A real gateway for end-to-end tests: managed anvil, SQLite, the indexer and submitter
threads, and uvicorn serving the app on a free loopback port.

`start_live()` is the one way tests start one; the session fixture `live` (registered in
tests/conftest.py) is shared by the e2e, CLI and risk suites; the console suite starts its
own, because its assertions depend on the exact payments it seeds.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.run import bootstrap
from chain_gateway.config import get_settings
from chain_gateway.runtime import Gateway


@dataclass
class Live:
    url: str
    creds: dict[str, Any]
    gateway: Gateway
    data_dir: Path

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        h = dict(headers)
        if key:
            h["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.url, headers=h, timeout=30)

    @property
    def operator(self) -> str:
        return str(self.creds["operator"])

    @property
    def auditor(self) -> str:
        return str(self.creds["auditor"])

    def bank(self, bic: str) -> str:
        return str(self.creds["banks"][bic])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def start_live(data_dir: Path, **overrides: Any) -> Iterator[Live]:
    """Start a gateway with the demo bootstrap; stop it (and its anvil) on exit."""
    port = free_port()
    settings = get_settings(environment="test", chain="anvil", data_dir=data_dir,
                            deployments_dir=data_dir / "deployments", port=port, **overrides)
    gateway = Gateway(settings)
    gateway.start()
    try:
        creds = bootstrap(gateway, settings)
        if creds is None:
            raise RuntimeError(f"{data_dir} already held credentials: give each live gateway a fresh folder")
        server = uvicorn.Server(uvicorn.Config(create_app(settings, gateway), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield Live(url=f"http://127.0.0.1:{port}", creds=creds, gateway=gateway, data_dir=data_dir)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        gateway.stop()


def wait_status(client: httpx.Client, uetr: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
    """Poll the tracker until the payment reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/v1/payments/{uetr}")
        if r.status_code == 200:
            body = r.json()
            if body["status"] in statuses:
                return body
        time.sleep(0.05)
    raise AssertionError(f"{uetr} did not reach {statuses}: last {body}")
