"""Replay as of a moment: rebuild the split from the events recorded up to then, into a fresh,
separate SQLite store. The live store and its read models are only read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking

from projections.batch import ViewBatch
from projections.split_projection import decode, open_split_view, read_page, to_batch
from projections.split_view import ReplaySplitView, SplitViewQueries

REPLAY_PAGE_SIZE = 10_000  # events read and applied per transaction of the fresh store
REPLAY_CACHE_KIB = 512 * 1024  # SQLite's page cache for the replay store (grows only as used)
REPLAY_HELD_BACK_MAX = 200_000  # approvals and reversals held in memory (~300 bytes each) at most


class AsOfBeforeFirstEvent(ValueError):
    pass


@dataclass
class Replay:
    view: SplitViewQueries  # the separate store's view; close() it when done
    events_read: int
    events_applied: int
    position: int  # last log position read
    last_included: int  # position of the last event recorded up to the moment (0: none)
    seconds: float

    def close(self) -> None:
        self.view.datastore.close()  # type: ignore[attr-defined]


def replay_as_of(
    app: Application, as_of: datetime, work_dir: Path, *, up_to_position: int | None = None
) -> Replay:
    """Apply every event recorded at or before `as_of` (its timestamp) to a new view in work_dir.

    With `up_to_position`, only events up to that log position count as well: that reproduces a
    report exactly as it was made, whatever was still in flight at its moment.
    """
    assert as_of.tzinfo is not None, "as_of must be timezone-aware"
    t0 = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    # A fresh file every time: an old -wal/-shm next to a new database file would corrupt it.
    db = work_dir / f"replay-{as_of.strftime('%Y%m%dT%H%M%S%f')}-{uuid4().hex[:8]}.sqlite"
    view = open_split_view(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)}, sqlite_view=ReplaySplitView
    )
    assert isinstance(view, ReplaySplitView)
    _throwaway_settings(view)
    try:
        # Both indexes are built once the rows are in (sorted builds), not row by row.
        view.drop_list_index()
        view.drop_id_index()
        replay = _apply_up_to(app, view, as_of, up_to_position, t0)
        view.create_list_index()
        replay.seconds = time.perf_counter() - t0
        return replay
    except BaseException:
        view.datastore.close()  # type: ignore[attr-defined]
        raise


def _throwaway_settings(view: SplitViewQueries) -> None:
    """The replay store is made and dropped within one command: no fsync per page and its journal
    in memory (a crash only means the replay is made again), and a page cache large enough for its
    indexes."""
    with view.datastore.get_connection(commit=True) as conn:  # type: ignore[attr-defined]
        c = conn.cursor()
        c.execute("PRAGMA synchronous = OFF")
        c.execute(f"PRAGMA cache_size = -{REPLAY_CACHE_KIB}")
        c.execute("PRAGMA journal_mode = MEMORY")
        assert c.fetchone()[0] == "memory", "the replay store's journal stayed on disk"


def _apply_up_to(
    app: Application, view: ReplaySplitView, as_of: datetime, up_to_position: int | None, t0: float
) -> Replay:
    """Bookings are inserted page by page while the id index is absent; approvals and reversals,
    which look bookings up by id, are held back until the index is built: at the end, or once
    REPLAY_HELD_BACK_MAX of them wait, after which pages are applied whole. The position is moved
    only from then on."""
    earliest: datetime | None = None
    read = applied = position = last_included = tracked = 0
    held_back: ViewBatch | None = ViewBatch()  # None once the id index is built
    for notes in _pages(app, up_to_position):
        events = decode(app, notes)
        # Timestamps are taken before commit, so across concurrent writers they are not strictly
        # in log order: filter every event rather than stopping at the first later one.
        kept = [(e, n.id) for e, n in zip(events, notes, strict=True) if e.timestamp <= as_of]
        page_first = min(e.timestamp for e in events)
        earliest = page_first if earliest is None else min(earliest, page_first)
        position, read = notes[-1].id, read + len(notes)
        if not kept:
            continue
        batch = to_batch([e for e, _ in kept], [i for _, i in kept])
        applied += len(kept)
        last_included = max(last_included, kept[-1][1])
        if held_back is None:
            view.apply_batch(batch, Tracking(app.name, position), start=tracked)
            tracked = position
            continue
        records, others = batch.split_records()
        view.apply_untracked(records)
        held_back.ops += others.ops
        if len(held_back) > REPLAY_HELD_BACK_MAX:
            _index_and_apply(app, view, held_back, position)
            held_back, tracked = None, position
    if applied == 0:
        if earliest is None:
            raise AsOfBeforeFirstEvent("the log is empty: there is nothing to replay")
        raise AsOfBeforeFirstEvent(
            f"{as_of.isoformat()} is before the first event, recorded {earliest.isoformat()}"
        )
    if held_back is not None:
        _index_and_apply(app, view, held_back, position)
    return Replay(view, read, applied, position, last_included, time.perf_counter() - t0)


def _pages(app: Application, up_to_position: int | None) -> Iterator[list]:
    """The log page by page. (Reading the next page in a thread while this one is written was
    measured: no faster on two cores, where the reader takes the GIL from the writer.)"""
    after = 0
    while notes := read_page(app, after, REPLAY_PAGE_SIZE, up_to_position):
        after = notes[-1].id
        yield notes


def _index_and_apply(app: Application, view: ReplaySplitView, held_back: ViewBatch, position: int) -> None:
    """Build the id index, then apply what was held back and set the position (the first time)."""
    view.create_id_index()
    view.apply_batch(held_back, Tracking(app.name, position), start=0)
