"""Replay as of a moment: rebuild the split from the events recorded up to then, into a fresh,
separate SQLite store. The live store and its read models are only read.

Two halves, which run in two processes for a log of more than REPLAY_IN_PROCESS_MAX events: this
process reads the log page by page, decodes it and keeps what was recorded up to the moment
(`_page_ops`); a writer process (projections/replay_writer.py) writes those pages into the SQLite
file and builds its indexes, while the next pages are read. On two cores a replay then takes about
as long as its reading half (measured: see the README, Performance). The writer is a process, not
a thread: a thread would share the GIL with the reader. A small log is replayed in this process,
where starting a second one (~0.3 s) would cost more than it saves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
from eventsourcing.application import Application

from ledger.recorded_events import RECORDED_TOPIC, plain_mapper
from projections.batch import ViewBatch
from projections.replay_writer import Page, open_store, write_in_writer_process, write_replay_store
from projections.split_projection import read_page, state_params, to_batch
from projections.split_view import SplitViewQueries

REPLAY_PAGE_SIZE = 10_000  # events read and applied per transaction of the fresh store
REPLAY_HELD_BACK_MAX = 200_000  # approvals and reversals held in memory (~300 bytes each) at most
REPLAY_IN_PROCESS_MAX = 50_000  # events; a longer log is written by a writer process


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
    in_writer_process: bool  # whether a second process wrote the store

    def close(self) -> None:
        self.view.datastore.close()  # type: ignore[attr-defined]


@dataclass
class _Reading:
    """What the reader counted while it went through the log."""

    read: int = 0
    applied: int = 0
    position: int = 0
    last_included: int = 0
    earliest: datetime | None = None


def replay_as_of(
    app: Application, as_of: datetime, work_dir: Path, *, up_to_position: int | None = None
) -> Replay:
    """Apply every event recorded at or before `as_of` (its timestamp) to a new view in work_dir.

    With `up_to_position`, the events up to that log position count, whatever their timestamps:
    that reproduces a report exactly as it was made at that position, whatever was still in flight
    at its moment, and also where a writer's clock ran ahead of the exporter's (an event stored
    before the export, stamped after its moment). `as_of` must still not be before the first event.
    """
    assert as_of.tzinfo is not None, "as_of must be timezone-aware"
    t0 = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    # A fresh file every time: an old -wal/-shm next to a new database file would corrupt it.
    db = work_dir / f"replay-{as_of.strftime('%Y%m%dT%H%M%S%f')}-{uuid4().hex[:8]}.sqlite"
    reading = _Reading()
    pages = _read_pages(app, as_of, up_to_position, reading)
    log_events = app.recorder.max_notification_id() or 0
    if up_to_position is not None:
        log_events = min(log_events, up_to_position)
    in_writer = log_events > REPLAY_IN_PROCESS_MAX
    if in_writer:
        write_in_writer_process(db, app.name, REPLAY_HELD_BACK_MAX, pages)
    else:
        write_replay_store(db, app.name, REPLAY_HELD_BACK_MAX, pages)
    if reading.applied == 0 or (reading.earliest is not None and reading.earliest > as_of):
        if reading.earliest is None:
            raise AsOfBeforeFirstEvent("the log is empty: there is nothing to replay")
        raise AsOfBeforeFirstEvent(
            f"{as_of.isoformat()} is before the first event, recorded {reading.earliest.isoformat()}"
        )
    view = open_store(db)
    return Replay(
        view,
        reading.read,
        reading.applied,
        reading.position,
        reading.last_included,
        time.perf_counter() - t0,
        in_writer,
    )


# ---- the reader: the log as pages of view operations --------------------------------------------


def _read_pages(app: Application, as_of: datetime, up_to_position: int | None, r: _Reading) -> Iterator[Page]:
    """Every page of the log, with what of it was recorded up to `as_of`, counting into `r`."""
    plain = plain_mapper(app)
    after = 0
    cut = as_of if up_to_position is None else datetime.max.replace(tzinfo=UTC)  # the position cuts
    while notes := read_page(app, after, REPLAY_PAGE_SIZE, up_to_position):
        after = notes[-1].id
        ops = _page_ops(app, notes, cut, plain, r)
        r.read += len(notes)
        r.position = after
        yield after, ops


def _page_ops(
    app: Application, notes: list, as_of: datetime, plain: bool, r: _Reading
) -> list[tuple[str, Any]]:
    """The view operations of the page's events recorded up to as_of; counts them, the last of
    them and the earliest timestamp into `r`.

    Timestamps are taken before commit, so across concurrent writers they are not strictly in log
    order: every event is filtered rather than stopping at the first later one. Where the mapper
    is plain, a Recorded event is decoded straight into its row with its dates left as ISO text
    (one orjson.loads and one timestamp parsed): most of a log is Recorded events."""
    ops: list[tuple[str, Any]] = []
    kept = last_kept = 0
    earliest = r.earliest
    fromiso = datetime.fromisoformat
    for n in notes:
        if plain and n.topic == RECORDED_TOPIC:
            d = orjson.loads(n.state)
            at = fromiso(d["timestamp"]["_data_"])
            if at <= as_of:
                ops.append(("record", state_params(n.id, n.originator_id, d)))
        else:
            event = app.mapper.to_domain_event(n)
            at = event.timestamp
            if at <= as_of:
                ops += _as_plain(to_batch([event], [n.id])).ops
        if earliest is None or at < earliest:
            earliest = at
        if at <= as_of:
            kept += 1
            last_kept = n.id
    r.applied += kept
    r.last_included = max(r.last_included, last_kept)
    r.earliest = earliest
    return ops


def _as_plain(batch: ViewBatch) -> ViewBatch:
    """New rows as plain tuples with dates and moments as ISO text, as the replay store takes them."""
    return ViewBatch(
        [
            (op, tuple(v.isoformat() if isinstance(v, date) else v for v in arg.params()))
            if op == "record"
            else (op, arg)
            for op, arg in batch.ops
        ]
    )
