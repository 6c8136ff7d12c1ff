"""The composition root: settings -> store environment -> application and read model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ledger.application import Ledger
from ledger.persistence import describe, store_env
from ledger.settings import Settings
from projections.split_projection import close_view, open_split_view
from projections.split_view import SplitViewQueries


@dataclass
class Books:
    """What a command works with: the write side, the split view and the settings behind them."""

    ledger: Ledger
    split_view: SplitViewQueries
    settings: Settings
    env: dict[str, str]

    @property
    def where(self) -> str:
        return describe(self.env)


@contextmanager
def postgres_ddl_guard(env: dict[str, str]) -> Iterator[None]:
    """Create the schema if needed and hold an advisory lock while tables are created.

    The library runs CREATE TABLE/INDEX IF NOT EXISTS whenever an application is constructed;
    several processes doing that at once make PostgreSQL fail with 'tuple concurrently updated'.
    The library also does not create the schema its tables live in.
    """
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        yield
        return
    schema = env.get("POSTGRES_SCHEMA", "public")
    try:
        conn = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT", "10")),
            autocommit=True,
        )
    except psycopg.OperationalError as e:
        raise StoreUnreachable(f"the store refused or could not be reached: {describe(env)}: {e}") from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"koa-ledger-ddl:{schema}",))
        if schema != "public":
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        yield  # the lock ends with the session


class StoreUnreachable(Exception):
    pass


@contextmanager
def open_books(settings: Settings | None = None) -> Iterator[Books]:
    settings = settings or Settings()
    env = store_env(settings)
    with postgres_ddl_guard(env):
        ledger = Ledger(env)
        try:
            view = open_split_view(env)
        except BaseException:
            ledger.close()
            raise
    try:
        try:
            yield Books(ledger, view, settings, env)
        finally:
            close_view(view)
    finally:
        ledger.close()
