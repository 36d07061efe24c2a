"""Fixtures of the mirror tests: one migrated template database per backend per session,
cloned for each test (SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE)."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.db import make_engine, make_session_factory
from chain_gateway.indexer import Indexer
from chain_gateway.ledger import LedgerClient
from chain_gateway.mirror.schema import upgrade_database
from tests.mirror.scenario import Scenario, run_scenario, run_small_scenario
from tests.postgres import PostgresServer

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
    with ExitStack() as stack:
        if backend == "sqlite":
            template: Path = request.getfixturevalue("sqlite_template")
            path = tmp_path / "mirror.sqlite3"
            shutil.copy(template, path)
            url = f"sqlite:///{path}"
        else:
            server = request.getfixturevalue("postgres_server")
            url = stack.enter_context(server.database(template=request.getfixturevalue("postgres_template")))
        engine = make_engine(url)
        stack.callback(engine.dispose)  # before the database is dropped
        yield MirrorDB(backend, url, engine, make_session_factory(engine))


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



@pytest.fixture
def scenario(client: LedgerClient, make_bank: Callable[..., Any], make_order: Callable[..., Any]) -> Scenario:
    """The full scenario (every event kind, every rejection reason) on the test's chain."""
    return run_scenario(client, make_bank, make_order)


@pytest.fixture
def small_scenario(client: LedgerClient, make_bank: Callable[..., Any], make_order: Callable[..., Any]) -> Scenario:
    """Two banks, funding and two settled payments: for tests about the indexer's cycle."""
    return run_small_scenario(client, make_bank, make_order)
