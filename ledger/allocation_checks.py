"""What the books' state must allow before a cost allocation run is booked.

- A whole-year run and quarterly runs of the same year may not both be in force: each books the
  year's Verwaltungskosten, so the split would count them twice. A run is in force while one of its
  bookings is not reversed (a rerun reverses the run before it; a clerk may reverse them by hand).
- The run's booking keys must be free: a booking recorded by hand under such a key stays there for
  good (nothing is deleted), so a retry could never book the run.
- The cost types a run computes may not be booked by hand in its period, before the run
  (run_allocation refuses) or after it (RunsInForce, on every path a booking is recorded or
  moved into a period by). Both decide on what they read before the write lock, so each looks
  again under it: a booking by hand fails its save if a run of its period was stored meanwhile
  (`RunsInForce.versions_read`), a run if a booking by hand was (`hand_bookings_meanwhile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.booking import ALLOCATION_KEY_PREFIX, Booking, booking_id
from domain.cost_allocation import (
    COMPUTED_TYPES,
    CostAllocation,
    CostsBookedDirectly,
    allocation_id,
    overlapping_quarters,
    refuse_overlap,
)
from domain.errors import KeyConflict
from domain.fiscal import FiscalRule
from domain.periods import YEAR, label
from ledger import event_index
from ledger.recorded_events import RECORDED_TOPIC, recorded_event
from ledger.recorders import Recheck, StoredMeanwhile

if TYPE_CHECKING:  # the application records bookings through RunsInForce
    from ledger.application import Ledger


def _stored(ledger: Ledger, year: int, quarter: int) -> CostAllocation | None:
    try:
        return ledger.repository.get(allocation_id(year, quarter))
    except AggregateNotFoundError:
        return None


def in_force(ledger: Ledger, allocation: CostAllocation) -> bool:
    return any(not ledger.get_booking(key).reversal_key for key in allocation.booking_keys)


def check_no_overlap(ledger: Ledger, year: int, quarter: int) -> list[tuple[UUID, int]]:
    """Refuse (OverlappingAllocation) while a run of an overlapping period is in force.

    Returns what to store the run with as `versions_read`: the overlapping periods' allocations
    as read (version 0: none yet). A concurrent run of such a period stores another version, even
    one that books nothing, so the save fails and the command decides again (and refuses)
    instead of both runs being booked."""
    refs: list[str] = []
    versions: list[tuple[UUID, int]] = []
    for q in overlapping_quarters(quarter):
        other = _stored(ledger, year, q)
        if other is not None and in_force(ledger, other):
            refs.append(other.document_ref)
        versions.append((allocation_id(year, q), other.version if other else 0))
    refuse_overlap(year, quarter, refs)
    return versions


def refuse_taken_keys(ledger: Ledger, allocation: CostAllocation, version_read: int | None) -> None:
    """Refuse (KeyConflict, naming the keys) when a booking not made by a run of this period holds
    one of the run's keys. `version_read`: the allocation's version the run was decided on (None:
    it was absent); if a concurrent run of the period changed it meanwhile, the keys may be that
    run's own: the caller decides again instead."""
    keys = allocation.booking_keys
    taken = event_index.stored_ids(ledger, [booking_id(k) for k in keys])
    if not taken:
        return
    now = _stored(ledger, allocation.year, allocation.quarter)
    if (now.version if now else None) != version_read:
        return  # a concurrent run of this period: its save will conflict, and the run decides again
    held = [k for k in keys if booking_id(k) in taken]
    raise KeyConflict(
        f"the booking key{'s' if len(held) > 1 else ''} {', '.join(repr(k) for k in held)} of cost "
        f"allocation run {allocation.document_ref} {'are' if len(held) > 1 else 'is'} already taken by "
        "another booking (not one of a run); nothing was booked. Keys starting with KOA- belong to "
        "the allocation runs",
        "key",
    )


def by_hand(category: str, key: str) -> bool:
    """A booking of a cost type the runs compute, not made by a run."""
    return category in COMPUTED_TYPES and not key.startswith(ALLOCATION_KEY_PREFIX)


class RunsInForce:
    """Refuses a booking by hand of a cost type that a cost allocation run in force for the
    booking's quarter, or for its whole year, books from the staff list: it would count twice.
    Runs are looked up once per period (a payment run may hold many rows of one period).
    `versions_read()`: to be stored with the bookings it let through, so that a run stored
    meanwhile (any run stores a new version of its period's allocation) fails the save and the
    bookings are decided again."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.known: dict[tuple[int, int], str] = {}  # (year, quarter) -> document ref in force, or ''
        self.versions: dict[tuple[int, int], tuple[UUID, int]] = {}  # of the periods without one in force

    def refuse(self, c: Any, year: int, quarter: int) -> None:
        """`c`: a booking's content (or the booking): its category and key."""
        if ref := self.run_in_force(c, year, quarter):
            raise CostsBookedDirectly(
                f"{c.category} of {label(year, quarter)} is booked by the cost allocation run {ref} "
                "in force: a booking by hand would count twice; rerun the allocation instead (a "
                "shared cost goes in as its input), or book Investitionen and sonstige by hand",
                "category",
            )

    def run_in_force(self, c: Any, year: int, quarter: int) -> str:
        """The run in force that books `c`'s cost type in the period, if `c` is by hand; else ''."""
        if not by_hand(c.category, c.key):
            return ""  # the common case: no lookup at all
        return self._in_force(year, quarter) or self._in_force(year, YEAR)

    def versions_read(self) -> list[tuple[UUID, int]]:
        return list(self.versions.values())

    def _in_force(self, year: int, quarter: int) -> str:
        if (year, quarter) not in self.known:
            run = _stored(self.ledger, year, quarter)
            ref = run.document_ref if run and in_force(self.ledger, run) else ""
            self.known[(year, quarter)] = ref
            if not ref:
                self.versions[(year, quarter)] = (allocation_id(year, quarter), run.version if run else 0)
        return self.known[(year, quarter)]


APPROVED_TOPIC = get_topic(Booking.Approved)


def hand_bookings_meanwhile(ledger: Ledger, year: int, quarter: int, after: int) -> Recheck:
    """For a run of the period decided on the split view as of position `after`: refuses its save
    (StoredMeanwhile: it decides again, on the view caught up) where a booking by hand of a cost
    type it computes was recorded into the period after that position, or any booking was moved
    into it by an approval after its own period was closed (rare; the Approved event does not
    name the cost type, and deciding again on the view costs less than reading the booking here,
    inside the write transaction)."""

    def in_period(fiscal_year: int, q: int) -> bool:
        return fiscal_year == year and quarter in (YEAR, q)

    def refuse(events: Sequence[StoredEvent]) -> None:
        for e in events:
            if e.topic == RECORDED_TOPIC:
                b = recorded_event(ledger, e.originator_id, e.state)
                found = by_hand(b.category, b.key) and in_period(b.fiscal_year, b.quarter)
            else:
                a = ledger.mapper.to_domain_event(e)
                found = a.fiscal_rule == FiscalRule.AFTER_CLOSING and in_period(a.fiscal_year, a.quarter)
            if found:
                raise StoredMeanwhile(
                    f"a booking was recorded into {label(year, quarter)} or moved there while its cost "
                    "allocation run was decided"
                )

    return Recheck(after, (RECORDED_TOPIC, APPROVED_TOPIC), refuse)
