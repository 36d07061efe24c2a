"""A real gateway for end-to-end tests: managed anvil, SQLite, the indexer and submitter
threads, and uvicorn serving on a free loopback port. One per test session."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("gateway")
    port = _free_port()
    settings = get_settings(environment="test", chain="anvil", data_dir=data, deployments_dir=data / "deployments",
                            port=port)
    gateway = Gateway(settings)
    gateway.start()
    creds = bootstrap(gateway, settings)
    assert creds is not None
    server = uvicorn.Server(uvicorn.Config(create_app(settings, gateway), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Live(url=f"http://127.0.0.1:{port}", creds=creds, gateway=gateway, data_dir=data)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        gateway.stop()


def wait_status(client: httpx.Client, uetr: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
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
