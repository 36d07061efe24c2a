"""The Alembic migration creates exactly the mirror's models, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from chain_gateway.mirror.models import CHAIN_DERIVED
from chain_gateway.mirror.schema import upgrade_database
from chain_gateway.models_all import metadata

MIRROR_TABLES = {m.__tablename__ for m in CHAIN_DERIVED}


@pytest.mark.parametrize("mirror_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_migrations_match_the_models(mirror_db):
    with mirror_db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert MIRROR_TABLES <= tables
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    mine = [d for d in diff if any(t in repr(d) for t in MIRROR_TABLES)]
    assert mine == []


@pytest.mark.parametrize("mirror_db", ["sqlite"], indirect=True)
def test_upgrade_is_idempotent(mirror_db):
    upgrade_database(mirror_db.url)  # already at head: nothing to do, no error
    with mirror_db.engine.connect() as conn:
        assert MIRROR_TABLES <= set(inspect(conn).get_table_names())


def test_upgrade_creates_a_new_sqlite_file(tmp_path):
    path = tmp_path / "sub" / "mirror.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    assert path.is_file()
