"""Application recorders that seal every event in the same transaction (see ledger/seals.py).

PostgreSQL: the library writes saves through psycopg's pipeline mode, with all events in one array
parameter; at tens of megabytes that deadlocks (psycopg stops flushing and waits for a result while
the server waits in ClientRead for the rest of the message; psycopg issue #685 is the same family).
Here the events go in chunks of at most 1 MiB: a save of one chunk (every single command, every
joint save of the API's booking writer) sends the library's table lock, the checks, NOTIFY and the
events in one pipeline, then the seals and side rows in another, then commits (three round trips
under the lock); larger saves insert their chunks unpipelined in between. One transaction. The
lock serialises writers across processes, so notification ids commit in order and each seal's
predecessor is the one read under the lock.

SQLite: the library inserts inside one transaction and SQLite serialises writers; the seals are
added in that transaction after the events, when the write lock is already held.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg import errors as pg_errors
from psycopg.sql import SQL, Identifier

from domain.periods import CALENDAR_ID
from ledger import seals


class CalendarChanged(IntegrityError):
    """A period was closed between reading the calendar and storing: the command must look again."""


@dataclass(frozen=True, slots=True)
class SideRow:
    """A row written in the same transaction as a command's events (the HTTP API's remembered
    answer for an Idempotency-Key): stored if and only if the events are. SQL with %s
    placeholders (PostgreSQL) or ? (SQLite), for the store it is written to."""

    sql: str
    params: tuple[Any, ...]


_WITH_EVERY_SAVE: ContextVar[tuple[SideRow, ...]] = ContextVar("koa_with_every_save", default=())


@contextmanager
def with_every_save(*rows: SideRow) -> Iterator[None]:
    """Write `rows` in the transaction of every Ledger.save made within, in this thread: the API
    marks an idempotency key as carried out in the very transaction that carries it out. A command
    may save more than once (retries, several steps), so the rows must be safe to write again
    (an UPDATE, not an INSERT)."""
    token = _WITH_EVERY_SAVE.set((*_WITH_EVERY_SAVE.get(), *rows))
    try:
        yield
    finally:
        _WITH_EVERY_SAVE.reset(token)


def rows_for_every_save() -> tuple[SideRow, ...]:
    return _WITH_EVERY_SAVE.get()


class StoredMeanwhile(IntegrityError):
    """An aggregate the command found absent (`absent_ids`: a payment run's contracts without a
    commitment) was stored before the command's events: it must look again."""


def _refuse_if_found(curs: Any) -> None:
    """After looking up aggregates the command found absent (under the write lock)."""
    if curs.fetchone() is not None:
        raise StoredMeanwhile("an aggregate the command found absent was stored meanwhile")


class SideRowConflict(IntegrityError):
    """A side row broke a unique constraint (its key was stored meanwhile): nothing was stored."""


CHUNK_BYTES_MAX = 1024 * 1024  # well below the ~7 MB at which the pipeline was seen to hang
CHUNK_EVENTS_MAX = 5000
SQLITE_SEALS_TABLE = "event_seals"
ABSENT_IDS_PER_QUERY = 500  # well below SQLite's limit of bound parameters


def chunks(events: Sequence[StoredEvent]) -> Iterator[Sequence[StoredEvent]]:
    start, size = 0, 0
    for i, e in enumerate(events):
        size += len(e.state) + len(e.topic) + 64
        if i > start and (size > CHUNK_BYTES_MAX or i - start >= CHUNK_EVENTS_MAX):
            yield events[start:i]
            start, size = i, len(e.state) + len(e.topic) + 64
    if start < len(events):
        yield events[start:]


class SealingPostgresApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events", **kwargs: Any) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        self.seals_table_name = events_table_name.removesuffix("_events") + "_seals"
        self.check_identifier_length(self.seals_table_name)
        schema, table = Identifier(self.datastore.schema), Identifier(self.seals_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (notification_id bigint PRIMARY KEY, seal bytea NOT NULL)"
            ).format(schema, table)
        )
        self.select_last_seal = SQL("SELECT seal FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1").format(
            schema, table
        )
        self.insert_seals = SQL("INSERT INTO {0}.{1} (notification_id, seal) VALUES (%s, %s)").format(
            schema, table
        )
        self.select_calendar_version = SQL(
            "SELECT COALESCE(MAX(originator_version), 0) AS v FROM {0}.{1} WHERE originator_id = %s"
        ).format(schema, Identifier(events_table_name))
        self.select_seals = SQL(
            "SELECT notification_id, seal FROM {0}.{1} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema, table)
        self.select_any = SQL(
            "SELECT originator_id FROM {0}.{1} WHERE originator_id = ANY(%s) LIMIT 1"
        ).format(schema, Identifier(events_table_name))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        calendar_version = kwargs.get("calendar_version")
        absent_ids = list(kwargs.get("absent_ids", ()))
        parts = list(chunks(stored_events))
        ids: list[int] = []
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
            conn.cursor() as calendar,
            conn.cursor() as absent,
            conn.cursor() as last_seal,
        ):
            # Everything up to the events (and the events, if they fit one chunk) in one round trip:
            # the table lock is held from the first statement to the commit, and every round trip
            # in between is one more wait for the server and for this process's GIL while other
            # writers queue for the lock. The checks run before the insert; their answers are read
            # after it was sent, and a failed check rolls the whole transaction back.
            with conn.pipeline():
                self._lock_table(curs)
                if calendar_version is not None:
                    calendar.execute(self.select_calendar_version, (CALENDAR_ID,))
                if absent_ids:
                    absent.execute(self.select_any, (absent_ids,))
                last_seal.execute(self.select_last_seal)
                self._notify_channel(curs)
                if len(parts) == 1:
                    PostgresAggregateRecorder._insert_stored_events(self, curs, parts[0])
            # Under the table lock no period can be closed meanwhile: check the one the command saw.
            if calendar_version is not None and calendar.fetchone()["v"] != calendar_version:
                raise CalendarChanged("a period was closed while the command ran")
            if absent_ids:
                _refuse_if_found(absent)
            row = last_seal.fetchone()
            prev = bytes(row["seal"]) if row else seals.GENESIS
            for chunk in parts:
                if len(parts) > 1:  # one unnest() per chunk, unpipelined (see the module's docstring)
                    PostgresAggregateRecorder._insert_stored_events(self, curs, chunk)
                fetched = self._fetch_ids_after_insert_events(curs, chunk)
                assert fetched is not None and len(fetched) == len(chunk)
                ids.extend(fetched)
            try:
                with conn.pipeline():  # the seals and the side rows: one more round trip
                    curs.executemany(self.insert_seals, seals.chain(prev, ids, stored_events))
                    for side in kwargs.get("side_rows", ()):
                        curs.execute(side.sql, side.params)
            except pg_errors.UniqueViolation as e:
                if e.diag.table_name == self.seals_table_name:
                    raise
                raise SideRowConflict(str(e)) from None
        assert len(ids) == len(stored_events)
        return ids

    def require_absent(self, curs: Any, ids: Sequence[Any]) -> None:
        """Under the table lock: none of these aggregates is stored (else StoredMeanwhile)."""
        if ids:
            curs.execute(self.select_any, (list(ids),))
            _refuse_if_found(curs)

    def seal_pages(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_seals, (after, limit))
            return [(r["notification_id"], bytes(r["seal"])) for r in curs.fetchall()]


class SealingSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + [
            f"CREATE TABLE IF NOT EXISTS {SQLITE_SEALS_TABLE} "
            "(notification_id INTEGER PRIMARY KEY, seal BLOB NOT NULL)"
        ]

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None and len(ids) == len(stored_events)
        calendar_version = kwargs.get("calendar_version")
        if calendar_version is not None:
            # The inserts took the database's write lock: no period can be closed meanwhile.
            c.execute(
                f"SELECT COALESCE(MAX(originator_version), 0) FROM {self.events_table_name} "
                "WHERE originator_id = ?",
                (CALENDAR_ID.hex,),
            )
            if c.fetchone()[0] != calendar_version:
                raise CalendarChanged("a period was closed while the command ran")
        absent = [oid.hex for oid in kwargs.get("absent_ids", ())]
        for start in range(0, len(absent), ABSENT_IDS_PER_QUERY):
            some = absent[start : start + ABSENT_IDS_PER_QUERY]
            c.execute(
                f"SELECT 1 FROM {self.events_table_name} WHERE originator_id IN ({','.join('?' * len(some))}) "
                "LIMIT 1",
                some,
            )
            _refuse_if_found(c)
        if ids:
            c.execute(f"SELECT seal FROM {SQLITE_SEALS_TABLE} ORDER BY notification_id DESC LIMIT 1")
            row = c.fetchone()
            prev = bytes(row[0]) if row else seals.GENESIS
            c.executemany(
                f"INSERT INTO {SQLITE_SEALS_TABLE} (notification_id, seal) VALUES (?, ?)",
                seals.chain(prev, ids, stored_events),
            )
        for side in kwargs.get("side_rows", ()):
            try:
                c.execute(side.sql, side.params)
            except sqlite3.IntegrityError as e:
                raise SideRowConflict(str(e)) from None
        return ids

    def seal_pages(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT notification_id, seal FROM {SQLITE_SEALS_TABLE} WHERE notification_id > ? "
                "ORDER BY notification_id LIMIT ?",
                (after, limit),
            )
            return [(r[0], bytes(r[1])) for r in c.fetchall()]
