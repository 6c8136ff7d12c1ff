"""Batch look-ups of stored events by aggregate id, straight from the event table.

The library reads one aggregate per query; checking a payment run of 100,000 keys that way would
take 100,000 round trips, approving a batch of 10,000 bookings 10,000. This reads the version-1
events of many ids per query (a run's keys stored already), or every event of many ids per query
(select_events_of, replayed into aggregates by replay_aggregates: a batch approval's bookings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row

from domain.booking import BookingContent, content_of
from ledger.recorded_events import RECORDED_TOPIC, recorded_event

if TYPE_CHECKING:
    from ledger.application import Ledger

SQLITE_IDS_PER_QUERY = 500  # below SQLite's host-parameter limit
POSTGRES_IDS_PER_QUERY = 50_000
# Every event of this many aggregates per query (select_events_of): a batch approval of 10,000
# bookings is ten queries of ~1 MB each.
EVENTS_IDS_PER_QUERY = 1_000


def recorded_contents(app: Ledger, ids: Sequence[UUID]) -> dict[UUID, BookingContent]:
    out: dict[UUID, BookingContent] = {}
    for stored in _select_first_events(app, ids):
        if stored.topic == RECORDED_TOPIC:
            event = recorded_event(app, stored.originator_id, stored.state)
        else:
            event = app.mapper.to_domain_event(stored)
        out[stored.originator_id] = content_of(event)
    return out


def stored_ids(app: Ledger, ids: Sequence[UUID]) -> set[UUID]:
    """Which of these aggregates are stored (one query per chunk of ids)."""
    return {stored.originator_id for stored in _select_first_events(app, ids)}


def _select_first_events(app: Ledger, ids: Sequence[UUID]) -> list[StoredEvent]:
    recorder = app.recorder
    found: list[StoredEvent] = []
    if isinstance(recorder, PostgresApplicationRecorder):
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
        sql = (
            f"SELECT originator_id, topic, state FROM {table} "
            "WHERE originator_id = ANY(%s) AND originator_version = 1"
        )
        # No transaction: a stored event stays stored, so chunks read apart agree, and BEGIN and
        # ROLLBACK would be two more round trips for the API's booking writer, which waits on each.
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            for i in range(0, len(ids), POSTGRES_IDS_PER_QUERY):
                curs.execute(sql, (list(ids[i : i + POSTGRES_IDS_PER_QUERY]),))
                found += [
                    StoredEvent(r["originator_id"], 1, r["topic"], bytes(r["state"])) for r in curs.fetchall()
                ]
    elif isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            for chunk, marks in _sqlite_chunks(ids):
                c.execute(
                    f"SELECT originator_id, topic, state FROM {recorder.events_table_name} "
                    f"WHERE originator_id IN ({marks}) AND originator_version = 1",
                    chunk,
                )
                found += [
                    StoredEvent(UUID(r["originator_id"]), 1, r["topic"], r["state"]) for r in c.fetchall()
                ]
    else:  # the in-memory store (used by nobody but a curious developer): one by one
        for i in ids:
            found += [e for e in recorder.select_events(i, lte=1)]
    return found


def select_events_of(recorder: ApplicationRecorder, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
    """Every stored event of each of these aggregates, in version order, by id; an id without
    events is left out. For each id, what `recorder.select_events(id)` returns (the read behind
    the library's `repository.get`), but one query per EVENTS_IDS_PER_QUERY ids (SQLite: per
    SQLITE_IDS_PER_QUERY) instead of one per id. The library has no read of several originators.

    Pages are read apart, each in its own statement, like separate `repository.get` calls: a writer
    that appends to an aggregate after its page was read makes a save of that aggregate's next
    version fail (the store's unique version), as with any aggregate read before a save."""
    found: dict[UUID, list[StoredEvent]] = {}
    if isinstance(recorder, PostgresApplicationRecorder):
        for i in range(0, len(ids), EVENTS_IDS_PER_QUERY):
            for e in _pg_select_events_of(recorder, ids[i : i + EVENTS_IDS_PER_QUERY]):
                found.setdefault(e.originator_id, []).append(e)
    elif isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            for chunk, marks in _sqlite_chunks(ids):
                c.execute(
                    "SELECT originator_id, originator_version, topic, state "
                    f"FROM {recorder.events_table_name} WHERE originator_id IN ({marks}) "
                    "ORDER BY originator_id, originator_version",
                    chunk,
                )
                for r in c.fetchall():
                    oid = recorder.convert_originator_id(r["originator_id"])
                    found.setdefault(oid, []).append(
                        StoredEvent(oid, r["originator_version"], r["topic"], r["state"])
                    )
    else:  # the in-memory store: the library's read, id by id
        for oid in ids:
            if stored := list(recorder.select_events(oid)):
                found[oid] = stored
    return found


def _sqlite_chunks(ids: Sequence[UUID]) -> Iterator[tuple[list[str], str]]:
    """The ids as SQLite stores them, SQLITE_IDS_PER_QUERY at a time, with their '?' marks."""
    for i in range(0, len(ids), SQLITE_IDS_PER_QUERY):
        chunk = [u.hex for u in ids[i : i + SQLITE_IDS_PER_QUERY]]
        yield chunk, ",".join("?" * len(chunk))


# As the library's own select_events: a dropped connection is tried again, 10 times, 0.2 s apart.
@retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
def _pg_select_events_of(recorder: PostgresApplicationRecorder, ids: Sequence[UUID]) -> list[StoredEvent]:
    sql = (
        "SELECT originator_id, originator_version, topic, state "
        f'FROM "{recorder.datastore.schema}"."{recorder.events_table_name}" '
        "WHERE originator_id = ANY(%s::uuid[]) ORDER BY originator_id, originator_version"
    )
    # The ids as one array literal (psycopg dumps a list of UUIDs one Python call per element);
    # the rows as tuples, in binary: the states arrive as bytes, not as hex text to decode.
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(sql, ("{" + ",".join(u.hex for u in ids) + "}",), binary=True)
        return [StoredEvent(*r) for r in curs.fetchall()]


def replay_aggregates(app: Application, ids: Sequence[UUID]) -> dict[UUID, Any]:
    """The current state of each of these aggregates that is stored, by id: what
    `app.repository.get(id)` returns (AggregateNotFoundError there: left out here), read in bulk
    by select_events_of. Each event is decoded by the application's mapper (its transcodings,
    compressor, cipher and upcasting) and applied in version order, as the repository's projector
    does (without its per-event Protocol assert, ~11 µs). From the first event on: where an
    application takes snapshots (the Ledger does not), the repository starts from the last one
    instead, which holds the same state; the aggregate cache, if one is configured, is not used."""
    to_domain_event = app.mapper.to_domain_event
    out: dict[UUID, Any] = {}
    for oid, stored in select_events_of(app.recorder, ids).items():
        aggregate = None
        for e in stored:
            aggregate = to_domain_event(e).mutate(aggregate)
        if aggregate is not None:
            out[oid] = aggregate
    return out


def stored_events_up_to(
    recorder: ApplicationRecorder, aggregate_id: UUID, position: int
) -> list[StoredEvent]:
    """An aggregate's stored events at or below a log position, in version order: what an export
    had read at its position, whenever the events were stamped and however many came after."""
    if isinstance(recorder, PostgresApplicationRecorder):
        sql = (
            "SELECT originator_id, originator_version, topic, state "
            f'FROM "{recorder.datastore.schema}"."{recorder.events_table_name}" '
            "WHERE originator_id = %s AND notification_id <= %s ORDER BY originator_version"
        )
        with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(sql, (aggregate_id, position), binary=True)
            return [StoredEvent(*r) for r in curs.fetchall()]
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_version, topic, state "
                f"FROM {recorder.events_table_name} WHERE originator_id = ? AND rowid <= ? "
                "ORDER BY originator_version",
                (aggregate_id.hex, position),
            )
            return [StoredEvent(aggregate_id, r[0], r[1], r[2]) for r in c.fetchall()]
    # the in-memory store: its notification log up to the position (an aggregate's events are in
    # it in version order)
    return [
        StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
        for n in recorder.select_notifications(start=1, limit=position, stop=position)
        if n.originator_id == aggregate_id
    ]
