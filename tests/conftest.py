"""Test fixtures: every store-facing test runs against SQLite and against a real PostgreSQL.

PostgreSQL: one database per test session (created and dropped here), one schema per test.
If no server answers and none can be started, the PostgreSQL tests fail: they are never skipped.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.bootstrap import Books, open_books
from ledger.cli import main
from ledger.settings import Settings
from tests.pg_server import PgServer, postgres_server

pytest_plugins = ["tests.api_fixtures"]

_schema_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_database(pg_server: PgServer) -> Iterator[str]:
    name = f"koa_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with pg_server.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server: PgServer, pg_database: str) -> Iterator[str]:
    schema = f"t{next(_schema_numbers)}_{uuid.uuid4().hex[:6]}"
    yield pg_server.url(pg_database, schema)
    with pg_server.connect(pg_database) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment variables (KOA_*) that point koa at a fresh store of each kind."""
    env = {"KOA_DATA_DIR": str(tmp_path / "var"), "KOA_USER": "tester"}
    if request.param == "postgres":
        env["KOA_DATABASE_URL"] = request.getfixturevalue("pg_url")
    return env


@pytest.fixture
def settings(store: dict[str, str]) -> Settings:
    return Settings(
        database_url=store.get("KOA_DATABASE_URL"),
        data_dir=Path(store["KOA_DATA_DIR"]),
        user=store["KOA_USER"],
        _env_file=None,
    )


@pytest.fixture
def books(settings: Settings) -> Iterator[Books]:
    with open_books(settings) as b:
        yield b


@pytest.fixture
def fresh_books(settings: Settings, request: pytest.FixtureRequest, tmp_path: Path):
    """For property tests: a context manager giving a new, empty store of the test's kind each
    time it is entered (a schema of its own on PostgreSQL, dropped at the end)."""
    numbers = itertools.count()
    schemas: list[str] = []

    @contextmanager
    def fresh() -> Iterator[Books]:
        n = next(numbers)
        if settings.database_url:
            server, db = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_database")
            schemas.append(f"fresh{n}_{uuid.uuid4().hex[:6]}")
            url, data_dir = server.url(db, schemas[-1]), tmp_path / "var"
        else:
            url, data_dir = None, tmp_path / f"example-{n}"
        with open_books(Settings(database_url=url, data_dir=data_dir, user="tester", _env_file=None)) as b:
            yield b

    yield fresh
    if schemas:
        server, db = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_database")
        with server.connect(db) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def koa(store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `koa ARGS...` in-process against the fixture's store (KOA_* set only for the test)."""
    for key, value in store.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(main, [str(a) for a in args])

    return run


@pytest.fixture(autouse=True)
def _no_ambient_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported KOA_* or POSTGRES_* must not leak into tests."""
    for key in list(os.environ):
        if (
            key.startswith(("KOA_", "POSTGRES_", "LEDGER_", "SPLITPROJECTION_"))
            or key == "PERSISTENCE_MODULE"
        ):
            if not key.startswith("KOA_TEST_"):
                monkeypatch.delenv(key, raising=False)
