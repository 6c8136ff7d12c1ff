"""PostgreSQL application recorder for large saves (a payment run of 100,000 bookings).

The library writes every save through psycopg's pipeline mode, with all events in one array
parameter. When that message grows to megabytes the pipeline deadlocks: psycopg stops flushing its
send buffer and waits for a result, while the server waits in ClientRead for the rest of the message
(psycopg 3.3.9; issue #685 is the same family). Large saves here skip the pipeline and insert in
chunks of bounded size, still in one transaction behind the library's table lock, so notification
ids still commit in order and a payment run is still all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry

CHUNK_BYTES_MAX = 1024 * 1024  # well below the ~7 MB at which the pipeline was seen to hang
CHUNK_EVENTS_MAX = 5000


def chunks(events: Sequence[StoredEvent]) -> Iterator[Sequence[StoredEvent]]:
    start, size = 0, 0
    for i, e in enumerate(events):
        size += len(e.state) + len(e.topic) + 64
        if i > start and (size > CHUNK_BYTES_MAX or i - start >= CHUNK_EVENTS_MAX):
            yield events[start:i]
            start, size = i, len(e.state) + len(e.topic) + 64
    if start < len(events):
        yield events[start:]


class ChunkedPostgresApplicationRecorder(PostgresApplicationRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if sum(len(e.state) for e in stored_events) <= CHUNK_BYTES_MAX // 2:
            return super().insert_events(
                stored_events, **kwargs
            )  # the library's path, with its retry
        return self._insert_in_chunks(stored_events)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_chunks(self, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        ids: list[int] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            for chunk in chunks(stored_events):
                # The aggregate recorder's insert: one unnest() of this chunk, RETURNING the ids.
                super(PostgresApplicationRecorder, self)._insert_stored_events(curs, chunk)
                fetched = self._fetch_ids_after_insert_events(curs, chunk)
                assert fetched is not None and len(fetched) == len(chunk)
                ids.extend(fetched)
        assert len(ids) == len(stored_events)
        return ids
