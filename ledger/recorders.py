"""Application recorders that seal every event in the same transaction (see ledger/seals.py).

PostgreSQL: the library writes saves through psycopg's pipeline mode, with all events in one array
parameter; at tens of megabytes that deadlocks (psycopg stops flushing and waits for a result while
the server waits in ClientRead for the rest of the message; psycopg issue #685 is the same family).
Here the events go in chunks of at most 1 MiB: a save of one chunk (every single command, every
joint save of the API's booking writer) is one pipeline, one round trip: BEGIN, the library's
table lock, the checks, NOTIFY, the events, their seals (computed in SQL by the same formula as
seals.seal), the side rows and COMMIT. Larger saves insert their chunks unpipelined, one statement
each. One transaction. The lock serialises writers across processes, so notification ids commit
in order and each seal's predecessor is the last one stored under the lock.

SQLite: the library inserts inside one transaction and SQLite serialises writers; the seals are
added in that transaction after the events, when the write lock is already held.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Identifier

from domain.periods import CALENDAR_ID
from ledger import seals


class CalendarChanged(IntegrityError):
    """A period was closed between reading the calendar and storing: the command must look again."""


CALENDAR_CHANGED = "a period was closed while the command ran"
STORED_MEANWHILE = "an aggregate the command read was stored or changed meanwhile"


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
    commitment) was stored, or one it read (`versions_read`: an allocation run's period) changed,
    before the command's events: it must look again."""


def _versions_read(kwargs: dict[str, Any]) -> list[tuple[UUID, int]]:
    """A save's `versions_read` with its `absent_ids` (read as absent: version 0)."""
    return [*kwargs.get("versions_read", ()), *((oid, 0) for oid in kwargs.get("absent_ids", ()))]


def _refuse_if_found(curs: Any) -> None:
    """After looking up aggregates the command found absent (under the write lock)."""
    if curs.fetchone() is not None:
        raise StoredMeanwhile(STORED_MEANWHILE)


RECHECK_EVENTS_MAX = 10_000  # more stored since the command read its state: it decides again


@dataclass(frozen=True, slots=True)
class Recheck:
    """A look under the write lock, before the command's events go in, at the events of `topics`
    that others stored after position `after` (where the command read the state it decided on):
    `refuse(events)` raises an IntegrityError (StoredMeanwhile) where one of them changes the
    decision, so the command decides again. For rare commands that decide on a projection (a cost
    allocation run reads the split view); it costs them a round trip under the lock."""

    after: int
    topics: tuple[str, ...]
    refuse: Callable[[list[StoredEvent]], None]


def _recheck(recheck: Recheck, rows: Sequence[tuple[Any, int, str, bytes]]) -> None:
    if len(rows) > RECHECK_EVENTS_MAX:
        raise StoredMeanwhile(f"over {RECHECK_EVENTS_MAX} events stored while the command ran")
    recheck.refuse(
        [StoredEvent(UUID(str(oid)), version, topic, bytes(state)) for oid, version, topic, state in rows]
    )


class SideRowConflict(IntegrityError):
    """A side row broke a unique constraint (its key was stored meanwhile): nothing was stored."""


CHUNK_BYTES_MAX = 1024 * 1024  # well below the ~7 MB at which the pipeline was seen to hang
CHUNK_EVENTS_MAX = 5000
SQLITE_SEALS_TABLE = "event_seals"
VERSIONS_READ_PER_QUERY = 500  # well below SQLite's limit of bound parameters


def chunks(events: Sequence[StoredEvent]) -> Iterator[Sequence[StoredEvent]]:
    start, size = 0, 0
    for i, e in enumerate(events):
        size += len(e.state) + len(e.topic) + 64
        if i > start and (size > CHUNK_BYTES_MAX or i - start >= CHUNK_EVENTS_MAX):
            yield events[start:i]
            start, size = i, len(e.state) + len(e.topic) + 64
    if start < len(events):
        yield events[start:]


# SQLSTATEs of the recorder's own refusals, raised by its functions inside a save (class KL: ours).
CALENDAR_CHANGED_SQLSTATE = "KL001"
STORED_MEANWHILE_SQLSTATE = "KL002"


class SealingPostgresApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events", **kwargs: Any) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        self.seals_table_name = events_table_name.removesuffix("_events") + "_seals"
        self.check_identifier_length(self.seals_table_name)
        schema, table = Identifier(self.datastore.schema), Identifier(self.seals_table_name)
        events = Identifier(events_table_name)
        for name in (f"{self.seals_table_name}_chain", f"{self.seals_table_name}_refuse_if"):
            self.check_identifier_length(name)
        seal_chain = Identifier(f"{self.seals_table_name}_chain")
        refuse_if = Identifier(f"{self.seals_table_name}_refuse_if")
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (notification_id bigint PRIMARY KEY, seal bytea NOT NULL)"
            ).format(schema, table),
            # seals.seal() in SQL, for the events one insert returned (never for any others: an
            # event put in behind the application's back stays without a seal), chained on to the
            # last seal, which under the table lock is their predecessor's. koa audit verify
            # recomputes the chain in Python.
            SQL(
                "CREATE OR REPLACE FUNCTION {0}.{2}(ids bigint[], oids uuid[], versions bigint[], "
                "topics text[], states bytea[]) RETURNS bigint[] LANGUAGE plpgsql AS $$\n"
                "DECLARE prev bytea; sealed bytea[] := '{{}}';\n"
                "BEGIN\n"
                "  SELECT seal INTO prev FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1;\n"
                "  prev := COALESCE(prev, decode(repeat('00', 32), 'hex'));\n"
                "  FOR i IN 1 .. COALESCE(array_length(ids, 1), 0) LOOP\n"
                "    prev := sha256(prev || int8send(ids[i]) || convert_to(oids[i]::text, 'UTF8') || '\\x00'::bytea\n"
                "      || int8send(versions[i]) || convert_to(topics[i], 'UTF8') || '\\x00'::bytea\n"
                "      || int8send(length(states[i])::bigint) || states[i]);\n"
                "    sealed[i] := prev;\n"
                "  END LOOP;\n"
                "  INSERT INTO {0}.{1} (notification_id, seal) SELECT * FROM unnest(ids, sealed);\n"
                "  RETURN ids;\n"
                "END $$"
            ).format(schema, table, seal_chain),
            # A check under the table lock that ends the save when it fails (its SQLSTATE says why):
            # in a pipeline, nothing after it runs, COMMIT included.
            SQL(
                "CREATE OR REPLACE FUNCTION {0}.{1}(refused boolean, code text, message text) "
                "RETURNS void LANGUAGE plpgsql AS $$\n"
                "BEGIN IF refused THEN RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message; END IF; END $$"
            ).format(schema, refuse_if),
        ]
        self.select_last_seal = SQL("SELECT seal FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1").format(
            schema, table
        )
        self.select_calendar_version = SQL(
            "SELECT COALESCE(MAX(originator_version), 0) AS v FROM {0}.{1} WHERE originator_id = %s"
        ).format(schema, events)
        self.select_seals = SQL(
            "SELECT notification_id, seal FROM {0}.{1} WHERE notification_id > %s "
            "AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        ).format(schema, table)
        self.select_seal_at = SQL(
            "SELECT notification_id, seal FROM {0}.{1} WHERE notification_id <= %s "
            "ORDER BY notification_id DESC LIMIT 1"
        ).format(schema, table)
        self.select_log_end = SQL(
            "SELECT GREATEST((SELECT MAX(notification_id) FROM {0}.{1}), "
            "(SELECT MAX(notification_id) FROM {0}.{2})) AS log_end"
        ).format(schema, events, table)
        self.select_since = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE notification_id > %s AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
        ).format(schema, events)
        # Aggregates the command read (`versions_read`: id and version, 0 for absent) of which
        # another version was stored meanwhile.
        self.select_changed = SQL(
            "SELECT 1 FROM unnest(%s::uuid[], %s::bigint[]) AS r(id, v) WHERE r.v <> COALESCE("
            "(SELECT MAX(originator_version) FROM {0}.{1} e WHERE e.originator_id = r.id), 0) LIMIT 1"
        ).format(schema, events)
        # The two checks above as refusals inside a save: (..., SQLSTATE, message).
        self.refuse_if_calendar_changed = SQL("SELECT {0}.{1}(({2}) <> %s, %s, %s)").format(
            schema, refuse_if, self.select_calendar_version
        )
        self.refuse_if_changed = SQL("SELECT {0}.{1}(EXISTS ({2}), %s, %s)").format(
            schema, refuse_if, self.select_changed
        )
        # The library's insert, with its rows as four arrays sent in binary (its array of a
        # composite type is dumped as text, every byte of the states escaped in Python), and the
        # seal chain of what it returned.
        self.insert_sealed_events = SQL(
            "WITH new AS (INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::integer[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id, originator_id, originator_version, topic, state) "
            "SELECT {0}.{2}(array_agg(notification_id ORDER BY notification_id), "
            "array_agg(originator_id ORDER BY notification_id), "
            "array_agg(originator_version::bigint ORDER BY notification_id), "
            "array_agg(topic ORDER BY notification_id), array_agg(state ORDER BY notification_id)) AS ids "
            "FROM new"
        ).format(schema, events, seal_chain)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            try:
                return self._insert_sealed(conn, stored_events, **kwargs)
            except psycopg.Error as e:
                if e.sqlstate == CALENDAR_CHANGED_SQLSTATE:
                    raise CalendarChanged(e.diag.message_primary) from None
                if e.sqlstate == STORED_MEANWHILE_SQLSTATE:
                    raise StoredMeanwhile(e.diag.message_primary) from None
                if isinstance(e, pg_errors.UniqueViolation) and e.diag.table_name not in (
                    self.events_table_name,
                    self.seals_table_name,
                ):
                    raise SideRowConflict(str(e)) from None
                raise

    def _insert_sealed(self, conn: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        """One transaction, and for a save of one chunk (every single command, every joint save of
        the API's booking writer) one round trip: BEGIN, the table lock, the checks, NOTIFY, the
        events with their seals, the side rows and COMMIT in one pipeline. The lock is held for
        the server's work only, not for a wait on this process (its GIL, under load) in between.
        A failed check raises in the database, and nothing after it runs; the error leaves the
        pool's connection block, which rolls the transaction back. Larger saves send each chunk
        on its own (see the module's docstring)."""
        calendar_version = kwargs.get("calendar_version")
        versions_read = _versions_read(kwargs)
        recheck: Recheck | None = kwargs.get("recheck")
        parts = list(chunks(stored_events))
        single = len(parts) == 1 and recheck is None  # all in one round trip
        ids: list[int] = []
        with conn.cursor() as curs, conn.cursor() as inserted, conn.cursor() as since:
            with conn.pipeline():  # its end sends everything queued and reads the answers
                curs.execute(b"BEGIN")
                self._lock_table(curs)
                if calendar_version is not None:
                    curs.execute(
                        self.refuse_if_calendar_changed,
                        (CALENDAR_ID, calendar_version, CALENDAR_CHANGED_SQLSTATE, CALENDAR_CHANGED),
                    )
                if versions_read:
                    read_ids, versions = zip(*versions_read, strict=True)
                    curs.execute(
                        self.refuse_if_changed,
                        (list(read_ids), list(versions), STORED_MEANWHILE_SQLSTATE, STORED_MEANWHILE),
                    )
                if recheck is not None:
                    since.execute(
                        self.select_since, (recheck.after, list(recheck.topics), RECHECK_EVENTS_MAX + 1)
                    )
                self._notify_channel(curs)
                if single:
                    self._insert_chunk(inserted, parts[0])
                    self._side_rows_and_commit(curs, kwargs)
            if recheck is not None:
                rows = since.fetchall()
                try:
                    _recheck(recheck, [tuple(r.values()) for r in rows])
                except Exception:
                    conn.rollback()  # before the pool gets the connection back
                    raise
            if single:
                ids.extend(inserted.fetchone()["ids"])
            else:
                for chunk in parts:
                    self._insert_chunk(inserted, chunk)
                    ids.extend(inserted.fetchone()["ids"])
                with conn.pipeline():
                    self._side_rows_and_commit(curs, kwargs)
        assert conn.info.transaction_status == TransactionStatus.IDLE  # committed
        assert len(ids) == len(stored_events) and ids == sorted(ids)
        return ids

    def _insert_chunk(self, curs: Any, chunk: Sequence[StoredEvent]) -> None:
        curs.execute(
            self.insert_sealed_events,
            (
                [e.originator_id for e in chunk],
                [e.originator_version for e in chunk],
                [e.topic for e in chunk],
                [e.state for e in chunk],
            ),
        )

    @staticmethod
    def _side_rows_and_commit(curs: Any, kwargs: dict[str, Any]) -> None:
        # Rows of one statement (the answers of a joint save) go as one executemany.
        for sql, rows in itertools.groupby(kwargs.get("side_rows", ()), key=lambda side: side.sql):
            curs.executemany(sql, [side.params for side in rows])
        curs.execute(b"COMMIT")

    def require_versions(self, curs: Any, versions_read: Sequence[tuple[UUID, int]]) -> None:
        """Under the table lock: these aggregates are at the versions read (else StoredMeanwhile)."""
        if versions_read:
            ids, versions = zip(*versions_read, strict=True)
            curs.execute(self.select_changed, (list(ids), list(versions)))
            _refuse_if_found(curs)

    def seal_pages(self, after: int, limit: int, upto: int) -> list[tuple[int, bytes]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_seals, (after, upto, limit))
            return [(r["notification_id"], bytes(r["seal"])) for r in curs.fetchall()]

    def seal_at(self, position: int) -> tuple[int, bytes] | None:
        """The position and seal of the last sealed event up to `position` (None: none)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_seal_at, (position,))
            row = curs.fetchone()
            return None if row is None else (row["notification_id"], bytes(row["seal"]))

    def log_end(self) -> int | None:
        """The last position of events or seals (None: neither), read in one statement."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_log_end)
            return curs.fetchone()["log_end"]


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
                raise CalendarChanged(CALENDAR_CHANGED)
        read = {oid.hex: version for oid, version in _versions_read(kwargs)}
        hexes = list(read)
        for start in range(0, len(hexes), VERSIONS_READ_PER_QUERY):
            some = hexes[start : start + VERSIONS_READ_PER_QUERY]
            c.execute(
                f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
                f"WHERE originator_id IN ({','.join('?' * len(some))}) GROUP BY originator_id",
                some,
            )
            stored = dict(c.fetchall())
            if any(stored.get(oid, 0) != read[oid] for oid in some):
                raise StoredMeanwhile(STORED_MEANWHILE)
        recheck: Recheck | None = kwargs.get("recheck")
        if recheck is not None and ids:
            c.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
                f"WHERE rowid > ? AND rowid < ? AND topic IN ({','.join('?' * len(recheck.topics))}) "
                "ORDER BY rowid LIMIT ?",
                (recheck.after, ids[0], *recheck.topics, RECHECK_EVENTS_MAX + 1),
            )
            _recheck(recheck, c.fetchall())
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

    def misspelled_originator_ids(self) -> dict[int, str]:
        """Positions whose originator id is not stored as the library writes it (UUID.hex: 32
        lowercase hex digits), with the text stored. Reading parses it into a UUID, which forgives
        case and hyphens, so the seal alone would not show such an alteration; the repository
        looks ids up by their exact text, so the events would vanish from their aggregate."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id FROM {self.events_table_name} "
                "WHERE typeof(originator_id) != 'text' OR length(originator_id) != 32 "
                "OR originator_id GLOB '*[^0-9a-f]*'"
            )
            return {r[0]: str(r[1]) for r in c.fetchall()}

    def seal_pages(self, after: int, limit: int, upto: int) -> list[tuple[int, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT notification_id, seal FROM {SQLITE_SEALS_TABLE} WHERE notification_id > ? "
                "AND notification_id <= ? ORDER BY rowid LIMIT ?",
                (after, upto, limit),
            )
            return [(r[0], bytes(r[1])) for r in c.fetchall()]

    def seal_at(self, position: int) -> tuple[int, bytes] | None:
        """The position and seal of the last sealed event up to `position` (None: none)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT notification_id, seal FROM {SQLITE_SEALS_TABLE} WHERE notification_id <= ? "
                "ORDER BY notification_id DESC LIMIT 1",
                (position,),
            )
            row = c.fetchone()
            return None if row is None else (row[0], bytes(row[1]))

    def log_end(self) -> int | None:
        """The last position of events or seals (None: neither), read in one statement."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT MAX(n) FROM (SELECT MAX(rowid) AS n FROM {self.events_table_name} "
                f"UNION ALL SELECT MAX(notification_id) FROM {SQLITE_SEALS_TABLE})"
            )
            return c.fetchone()[0]
