"""Maps the Ledger's events onto the split view, and runs it: catch-up in batches, exactly once.

The library's ProjectionRunner needs a subscription (PostgreSQL only) and commits one transaction
per event. This runner pulls pages of the notification log on either store and commits each page
with its tracking position, which is the same exactly-once guarantee: the tracking upsert only
accepts a higher position, so a page applied twice is refused and rolled back as a whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.application import Application
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Tracking,
)
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from domain.booking import Booking
from projections.batch import ViewBatch
from projections.split_view import BookingRow, PostgresSplitView, SplitViewQueries, SQLiteSplitView

PAGE_SIZE = 1000
CONFLICTS_MAX = 1000  # another runner winning this often means something else is wrong
VIEW_NAME = "SplitProjection"


def open_split_view(env: dict[str, str]) -> SplitViewQueries:
    """Build the view over the same database as the application (env as given to the Ledger)."""
    factory = InfrastructureFactory.construct(Environment(name=VIEW_NAME, env=env))
    if isinstance(factory, PostgresFactory):
        return factory.tracking_recorder(PostgresSplitView)
    if isinstance(factory, SQLiteFactory):
        return factory.tracking_recorder(SQLiteSplitView)
    raise ValueError(f"no split view for the store {type(factory).__name__}")


def close_view(view: SplitViewQueries) -> None:
    view.datastore.close()  # type: ignore[attr-defined]


def to_batch(events: list, notification_ids: list[int]) -> ViewBatch:
    batch = ViewBatch()
    for event, nid in zip(events, notification_ids, strict=True):
        if isinstance(event, Booking.Recorded):
            counted = not event.requires_approval
            batch.record(
                BookingRow(
                    booking_id=str(event.originator_id),
                    booking_key=event.key,
                    kind=event.kind,
                    category=event.category,
                    amount_cents=event.amount_cents,
                    sign=-1 if event.reverses_key else 1,
                    fiscal_year=event.fiscal_year,
                    quarter=event.quarter,
                    fiscal_rule=event.fiscal_rule,
                    payment_date=event.payment_date,
                    service_from=event.service_from,
                    service_to=event.service_to,
                    document_ref=event.document_ref,
                    case_ref=event.case_ref,
                    contract_ref=event.contract_ref,
                    cost_centre=event.cost_centre,
                    text=event.text,
                    recorded_by=event.recorded_by,
                    recorded_at=event.timestamp,
                    requires_approval=event.requires_approval,
                    approved_by="",
                    approved_at=None,
                    reverses_key=event.reverses_key,
                    reversal_key="",
                    reason=event.reason,
                    counted=counted,
                    notification_id=nid,
                )
            )
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
    """Apply every event after the view's position (up to `until`), one transaction per page."""
    assert 0 < page_size <= 10_000
    t0 = time.perf_counter()
    done = 0
    position = view.max_tracking_id(app.name) or 0  # type: ignore[attr-defined]
    conflicts = 0
    while until is None or position < until:
        notes = app.recorder.select_notifications(
            start=position, limit=page_size, stop=until, inclusive_of_start=False
        )
        if not notes:
            break
        events = [app.mapper.to_domain_event(n) for n in notes]
        batch = to_batch(events, [n.id for n in notes])
        try:
            view.apply_batch(batch, Tracking(app.name, notes[-1].id), start=position)
        except IntegrityError:
            # Another runner moved the position first; continue from where it got to.
            conflicts += 1
            if conflicts > CONFLICTS_MAX:
                raise
            position = view.max_tracking_id(app.name) or 0  # type: ignore[attr-defined]
            continue
        position = notes[-1].id
        done += len(notes)
        if progress:
            progress(len(notes))
    return CatchUp(done, position, time.perf_counter() - t0)


def rebuild(app: Application, view: SplitViewQueries, **kwargs) -> CatchUp:
    """Forget the view and apply the whole log again; gives tables identical to the live ones."""
    view.reset(app.name)
    return catch_up(app, view, **kwargs)
