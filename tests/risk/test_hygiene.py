"""The risk migration creates exactly the tables the models declare (the source rules for
all gateway code are in tests/test_source_hygiene.py)."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chain_gateway.db import Base, make_engine
from chain_gateway.mirror.schema import downgrade_database, upgrade_database


def test_migration_0003_matches_the_models_and_goes_both_ways(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
        assert {"risk_holds", "audit_trail"} <= names
        with engine.connect() as conn:
            triggers = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
            assert {"audit_trail_no_update", "audit_trail_no_delete"} <= triggers
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        ours = [d for d in diff if "risk_holds" in repr(d) or "audit_trail" in repr(d)]
        assert ours == []
        downgrade_database(url, "0002_gateway")
        assert not {"risk_holds", "audit_trail"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
