"""Outbox fixtures: a fresh SQLite file per test, two funded banks, submitters that are
stopped before the chain snapshot is reverted (helpers: tests/outbox/outbox_helpers.py)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from chain_gateway.db import Base, make_engine, make_session_factory
from chain_gateway.ledger import LedgerClient
from chain_gateway.outbox import Submitter

FUNDS = 10**12


@pytest.fixture
def outbox_db(tmp_path: Any) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sessionmaker[Session]]:
    """The outbox on each backend the gateway supports (the repository tests run on both)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
        else:
            url = stack.enter_context(request.getfixturevalue("postgres_server").database())
        engine = make_engine(url)
        stack.callback(engine.dispose)  # before the database is dropped
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)


@pytest.fixture
def banks(make_bank: Callable[..., Any]) -> tuple[Any, Any]:
    return make_bank(funds={"USD": FUNDS}), make_bank(country="DE")


@pytest.fixture
def submitters(outbox_db: sessionmaker[Session], client: LedgerClient) -> Iterator[Callable[..., Submitter]]:
    """Build submitters on the test's outbox (or another factory); all stopped at teardown."""
    made: list[Submitter] = []

    def _make(factory: sessionmaker[Session] | None = None, **kwargs: Any) -> Submitter:
        sub = Submitter(factory or outbox_db, kwargs.pop("client", client), **kwargs)
        made.append(sub)
        return sub

    yield _make
    for sub in made:
        sub.stop(timeout=10)
