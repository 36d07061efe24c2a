"""A private PostgreSQL 15 server for the test run (session-scoped fixture ``postgres_server``).

As root: a temporary data folder owned by ``postgres``, ``initdb`` and ``pg_ctl`` run as that
user (``su postgres -c ...``); as anyone else, directly. The server listens on 127.0.0.1 on a
free port (socket in the data folder), with durability off (fsync, synchronous_commit,
full_page_writes: a test database is thrown away). Each test gets its own database, cloned
from a migrated template in a few milliseconds, and dropped when the test ends
(``PostgresServer.database``): a database is ~7.5 MB on disk, and a run creates hundreds. The
server is stopped (``pg_ctl stop -m fast``) and its folder removed at session end.

The fixture `postgres_server` is registered once, in tests/conftest.py.
"""
from __future__ import annotations

import atexit
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresServer:
    """One running server; `url(db)` gives a SQLAlchemy URL."""

    def __init__(self, bin_dir: Path = PG_BIN, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(f"{bin_dir / 'initdb'} -D {self.data} -A trust -U postgres -E UTF8 --no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(f"{bin_dir / 'pg_ctl'} -D {self.data} -o {shlex.quote(options)} -l {self.log} -w -t 60 start")
        self._running = True
        atexit.register(self.stop)  # also when the run is interrupted

    def _run(self, command: str) -> None:
        args = ["su", "postgres", "-c", command] if self.as_postgres else shlex.split(command)
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{command} failed ({result.returncode}): {result.stderr}{result.stdout}\n{log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new database (optionally a copy of `template`); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, *, template: str | None = None) -> Iterator[str]:
        """A new database for the duration of the block, dropped afterwards (even on failure),
        so a run's disk use stays that of the databases alive at once."""
        url = self.create_database(template=template)
        try:
            yield url
        finally:
            self.drop_database(url.rsplit("/", 1)[1])

    def stop(self) -> None:
        """Stop the server and remove its folder (idempotent)."""
        if not getattr(self, "_running", False):
            return
        self._running = False
        try:
            self._run(f"{self.bin_dir / 'pg_ctl'} -D {self.data} -m fast -w stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server for the whole test run (skipped only when not installed)."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (set PG_BIN)")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()
