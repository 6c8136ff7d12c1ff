"""Maps the Ledger's events onto the split view, and runs it: catch-up in batches, exactly once.

The library's ProjectionRunner needs a subscription (PostgreSQL only) and commits one transaction
per event. This runner pulls pages of the notification log on either store and commits each page
with its tracking position, which is the same exactly-once guarantee: the tracking upsert only
accepts a higher position, so a page applied twice is refused and rolled back as a whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Tracking,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment
from psycopg.rows import tuple_row

from domain.booking import Booking
from ledger.recorded_events import RECORDED_TOPIC, FastRecorded, plain_mapper
from projections.batch import ViewBatch
from projections.split_view import (
    BookingRow,
    PostgresSplitView,
    SplitViewQueries,
    SQLiteSplitView,
    ViewBehind,
)

PAGE_SIZE = 10_000  # events per transaction (measured: 1,000 -> 10,000 about +15 %; more gains little)
CONFLICTS_MAX = 1000  # another runner winning this often means something else is wrong
VIEW_NAME = "SplitProjection"


def open_split_view(
    env: dict[str, str], *, sqlite_view: type[SQLiteSplitView] = SQLiteSplitView
) -> SplitViewQueries:
    """Build the view over the same database as the application (env as given to the Ledger)."""
    factory = InfrastructureFactory.construct(Environment(name=VIEW_NAME, env=env))
    if isinstance(factory, PostgresFactory):
        return factory.tracking_recorder(PostgresSplitView)
    if isinstance(factory, SQLiteFactory):
        return factory.tracking_recorder(sqlite_view)
    raise ValueError(f"no split view for the store {type(factory).__name__}")


def close_view(view: SplitViewQueries) -> None:
    view.datastore.close()  # type: ignore[attr-defined]


def recorded_params(event: Any, nid: int) -> tuple:
    """The view's row for a Booking.Recorded event (a domain event or a FastRecorded), as values
    in BOOKING_COLUMNS order."""
    e = event
    return (
        str(e.originator_id),
        e.key,
        e.kind,
        e.category,
        e.amount_cents,
        -1 if e.reverses_key else 1,
        e.fiscal_year,
        e.quarter,
        e.fiscal_rule,
        e.payment_date,
        e.service_from,
        e.service_to,
        e.document_ref,
        e.case_ref,
        e.contract_ref,
        e.cost_centre,
        e.text,
        e.recorded_by,
        e.timestamp,
        e.requires_approval,
        "",  # approved_by
        None,  # approved_at
        e.reverses_key,
        "",  # reversal_key
        e.reason,
        not e.requires_approval,  # counted
        nid,
    )


def recorded_row(event: Any, nid: int) -> BookingRow:
    return BookingRow(*recorded_params(event, nid))


class _Ready(tuple):
    """A row's values, already decoded (ViewBatch takes rows that give their params())."""

    __slots__ = ()

    def params(self) -> tuple:
        return self


class LazyRecorded:
    """A stored Booking.Recorded event, decoded only when the view writes its row. Dates and the
    timestamp stay the ISO text the library stored (both stores take it as it is; it is what
    isoformat() of the decoded values gives back)."""

    __slots__ = ("nid", "originator_id", "state")

    def __init__(self, nid: int, originator_id: Any, state: bytes) -> None:
        self.nid, self.originator_id, self.state = nid, originator_id, state

    def params(self) -> tuple:
        return state_params(self.nid, self.originator_id, orjson.loads(self.state))


def state_params(nid: int, originator_id: Any, d: dict[str, Any]) -> tuple:
    """The view's row for a stored Booking.Recorded event given as its decoded JSON state, dates
    and the timestamp left as the ISO text the library stored."""
    approval = d["requires_approval"]
    return (
        str(originator_id),
        d["key"],
        d["kind"],
        d["category"],
        d["amount_cents"],
        -1 if d["reverses_key"] else 1,
        d["fiscal_year"],
        d["quarter"],
        d["fiscal_rule"],
        d["payment_date"]["_data_"],
        d["service_from"]["_data_"],
        d["service_to"]["_data_"],
        d["document_ref"],
        d["case_ref"],
        d["contract_ref"],
        d["cost_centre"],
        d["text"],
        d["recorded_by"],
        d["timestamp"]["_data_"],
        approval,
        "",  # approved_by
        None,  # approved_at
        d["reverses_key"],
        "",  # reversal_key
        d["reason"],
        not approval,  # counted
        nid,
    )


def to_batch(events: list, notification_ids: list[int]) -> ViewBatch:
    batch = ViewBatch()
    for event, nid in zip(events, notification_ids, strict=True):
        if isinstance(event, Booking.Recorded | FastRecorded):
            batch.record(_Ready(recorded_params(event, nid)))
        elif isinstance(event, Booking.Approved):
            batch.approve(
                str(event.originator_id),
                event.approved_by,
                event.timestamp,
                (event.fiscal_year, event.quarter, event.fiscal_rule),
            )
        elif isinstance(event, Booking.Reversed):
            batch.mark_reversed(str(event.originator_id), event.reversal_key)
        # Other events do not touch the split.
    return batch


def read_page(app: Application, after: int, limit: int, until: int | None) -> list:
    """The next page of the log as notifications. On PostgreSQL read straight from the event table
    as tuples (the library's select builds a dict and a Notification per row: a third of a
    catch-up's time); what it returns has the notification's fields under the same names."""
    rec = app.recorder
    if not isinstance(rec, PostgresApplicationRecorder):
        return rec.select_notifications(start=after, limit=limit, stop=until, inclusive_of_start=False)
    sql = (
        "SELECT notification_id, originator_id, originator_version, topic, state "
        f"FROM {_events_table(app)} WHERE notification_id > %s AND notification_id <= %s "
        "ORDER BY notification_id LIMIT %s"
    )
    with rec.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        # Binary: the states arrive as bytes, not as hex text to decode (half the bytes on the wire).
        curs.execute(sql, (after, until if until is not None else 2**63 - 1, limit), binary=True)
        return [_Note(*r) for r in curs.fetchall()]


class _Note(NamedTuple):
    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


def lazy_batch(app: Application, notes: list) -> ViewBatch:
    """The page as view operations, its Recorded events decoded only while they are written."""
    if not plain_mapper(app):
        return to_batch([app.mapper.to_domain_event(n) for n in notes], [n.id for n in notes])
    batch = ViewBatch()
    others: list = []
    for n in notes:
        if n.topic == RECORDED_TOPIC:
            if others:
                batch.ops += to_batch(
                    [app.mapper.to_domain_event(o) for o in others], [o.id for o in others]
                ).ops
                others = []
            batch.record(LazyRecorded(n.id, n.originator_id, n.state))
        else:
            others.append(n)
    if others:
        batch.ops += to_batch([app.mapper.to_domain_event(o) for o in others], [o.id for o in others]).ops
    return batch


def decode(app: Application, notes: list) -> list:
    """The page's events: Booking.Recorded as FastRecorded where the mapper is plain, the rest
    through the library's mapper."""
    if not plain_mapper(app):
        return [app.mapper.to_domain_event(n) for n in notes]
    to_domain_event = app.mapper.to_domain_event
    return [
        FastRecorded(n.originator_id, n.state) if n.topic == RECORDED_TOPIC else to_domain_event(n)
        for n in notes
    ]


@dataclass(frozen=True)
class CatchUp:
    events: int
    position: int
    seconds: float


def catch_up(
    app: Application,
    view: SplitViewQueries,
    *,
    page_size: int = PAGE_SIZE,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CatchUp:
    """Apply every event after the view's position (up to `until`), one transaction per page.

    While a page is written, the next one is already being read (on another connection of the
    pool): reading and writing keep the server busy while this process decodes."""
    assert 0 < page_size <= 100_000
    t0 = time.perf_counter()
    done = 0
    position = view.max_tracking_id(app.name) or 0  # type: ignore[attr-defined]
    conflicts = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="split-read") as reader:
        ahead = reader.submit(read_page, app, position, page_size, until)
        while until is None or position < until:
            notes = ahead.result()
            if not notes:
                break
            end = notes[-1].id
            ahead = reader.submit(read_page, app, end, page_size, until)
            try:
                view.apply_batch(lazy_batch(app, notes), Tracking(app.name, end), start=position)
            except IntegrityError:
                # Another runner moved the position first; continue from where it got to.
                conflicts += 1
                if conflicts > CONFLICTS_MAX:
                    raise
                position = view.max_tracking_id(app.name) or 0  # type: ignore[attr-defined]
                ahead.result()  # not waited for, it would outlive this page's decision
                ahead = reader.submit(read_page, app, position, page_size, until)
                continue
            position = end
            done += len(notes)
            if progress:
                progress(len(notes))
        ahead.result()
    return CatchUp(done, position, time.perf_counter() - t0)


HOLDING_ATTEMPTS_MAX = 3


@contextmanager
def snapshot_holding(app: Application, view: SplitViewQueries, position: int) -> Iterator[SplitViewQueries]:
    """One state of the view (a snapshot) that holds the log at least up to `position`, caught up
    again if it does not: a rebuild empties the view and refills it, and what was read of the log
    up to `position` elsewhere would be missing from it. ViewBehind if it stays behind."""
    for _attempt in range(HOLDING_ATTEMPTS_MAX):
        with view.snapshot(app.name) as state:
            if (state.position or 0) >= position:
                yield state
                return
        catch_up(app, view)
    raise ViewBehind(
        f"the split view is being rebuilt (it has not reached log position {position}); "
        "try again when the rebuild is done"
    )


def snapshot_now(app: Application, view: SplitViewQueries) -> AbstractContextManager[SplitViewQueries]:
    """A snapshot of the view holding at least every event committed before this call: what a
    report of the books as they stand reads, all of it from one state (each read of the live view
    is a state of its own, and a rebuild may have emptied it)."""
    return snapshot_holding(app, view, app.recorder.max_notification_id() or 0)  # type: ignore[attr-defined]


def _events_table(app: Application) -> str:
    rec = app.recorder
    return f'"{rec.datastore.schema}"."{rec.events_table_name}"'  # type: ignore[attr-defined]


def rebuild(app: Application, view: SplitViewQueries, **kwargs) -> CatchUp:
    """Forget the view and apply the whole log again; gives tables identical to the live ones.
    (Dropping the reports' index for the load and building it once afterwards was measured on a
    1M-booking year: no faster, 24.9 s against 24.5 s over four runs each; the catch-up is bound
    by decoding, not by the index.)"""
    view.reset(app.name)
    return catch_up(app, view, **kwargs)
