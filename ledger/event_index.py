"""Batch look-up of stored 'Recorded' events by aggregate id, straight from the event table.

The library reads one aggregate per query; checking a payment run of 100,000 keys that way would
take 100,000 round trips. This reads the version-1 events of many ids per query instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.booking import BookingContent, content_of
from ledger.recorded_events import RECORDED_TOPIC, recorded_event

if TYPE_CHECKING:
    from ledger.application import Ledger

SQLITE_IDS_PER_QUERY = 500  # below SQLite's host-parameter limit
POSTGRES_IDS_PER_QUERY = 50_000


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
            for i in range(0, len(ids), SQLITE_IDS_PER_QUERY):
                chunk = [u.hex for u in ids[i : i + SQLITE_IDS_PER_QUERY]]
                marks = ",".join("?" * len(chunk))
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
