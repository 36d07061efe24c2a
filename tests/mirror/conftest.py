"""Fixtures of the mirror tests: one migrated template database per backend per session,
cloned for each test (SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE)."""
from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.chain import ChainHandle
from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.indexer import Indexer
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.mirror.schema import upgrade_database
from tests.mirror.scenario import Scenario, bank_factory, order_factory, run_scenario
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - the fixture, re-exported

TEMPLATE_DB = "mirror_template"


@dataclass
class MirrorDB:
    backend: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mirror-template") / "mirror.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    upgrade_database(postgres_server.create_database(TEMPLATE_DB))
    return TEMPLATE_DB


def _open(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MirrorDB]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "mirror.sqlite3"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
        server = None
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(template=request.getfixturevalue("postgres_template"))
    engine = make_engine(url)
    try:
        yield MirrorDB(backend, url, engine, make_session_factory(engine))
    finally:
        engine.dispose()
        if server is not None:
            server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def mirror_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MirrorDB]:
    """A fresh migrated mirror database on the test class's `backend` ("sqlite" or
    "postgresql"), or on the `backend` parameter of a parametrised test."""
    backend = getattr(request, "param", None) or getattr(request.cls, "backend", None) or "sqlite"
    yield from _open(backend, request, tmp_path)


@pytest.fixture
def make_indexer(client: LedgerClient, mirror_db: MirrorDB) -> Callable[..., Indexer]:
    def _make(**kwargs: Any) -> Indexer:
        return Indexer(client, mirror_db.sessions, **kwargs)
    return _make


def _reset_nonces(client: LedgerClient) -> None:
    for sender in (client.operator, client.relayer):
        if sender is not None:
            sender._nonce = None  # the chain moved under the sender


@pytest.fixture(scope="session")
def scenario_snapshot(chain: ChainHandle, session_client: LedgerClient,
                      deployment: Deployment) -> tuple[Scenario, int]:
    """The full scenario (``run_scenario``), played once per session and kept as an
    eth-tester snapshot; the chain is put back as it was."""
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    before = tester.take_snapshot()
    scenario = run_scenario(session_client, bank_factory(session_client),
                            order_factory(chain.chain_id, deployment.ledger))
    played = tester.take_snapshot()
    tester.revert_to_snapshot(before)
    _reset_nonces(session_client)
    return scenario, played


@pytest.fixture
def scenario(client: LedgerClient, chain: ChainHandle, scenario_snapshot: tuple[Scenario, int]) -> Scenario:
    """The chain as the scenario left it (reverted after the test by the `client` fixture)."""
    played, snapshot = scenario_snapshot
    chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]
    _reset_nonces(client)
    return dataclasses.replace(played, uetrs=dict(played.uetrs))
