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


def ensure_postgres_schema(env: dict[str, str]) -> None:
    """The library creates tables but not the schema they live in (it must exist first)."""
    schema = env.get("POSTGRES_SCHEMA", "public")
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres" or schema == "public":
        return
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT", "10")),
        autocommit=True,
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


@contextmanager
def open_books(settings: Settings | None = None) -> Iterator[Books]:
    settings = settings or Settings()
    env = store_env(settings)
    ensure_postgres_schema(env)
    ledger = Ledger(env)
    try:
        view = open_split_view(env)
        try:
            yield Books(ledger, view, settings, env)
        finally:
            close_view(view)
    finally:
        ledger.close()
