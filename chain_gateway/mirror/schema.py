"""Migrate the gateway's database programmatically (Alembic, ``chain_gateway/migrations``).

The gateway calls ``upgrade_database(settings.effective_database_url)`` at start-up; the
command line works too::

    alembic -c chain_gateway/migrations/alembic.ini upgrade heads
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config for the gateway's migrations, on `url` or an open `connection`."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["configure_logger"] = False  # the gateway's logging is its own, not alembic.ini's
    return config


def upgrade_database(url: str, revision: str = "heads") -> None:
    """Bring the database at `url` to `revision` (every head by default); idempotent."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
