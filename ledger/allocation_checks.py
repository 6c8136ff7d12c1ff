"""What the books' state must allow before a cost allocation run is booked.

- A whole-year run and quarterly runs of the same year may not both be in force: each books the
  year's Verwaltungskosten, so the split would count them twice. A run is in force while one of its
  bookings is not reversed (a rerun reverses the run before it; a clerk may reverse them by hand).
- The run's booking keys must be free: a booking recorded by hand under such a key stays there for
  good (nothing is deleted), so a retry could never book the run.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.booking import booking_id
from domain.cost_allocation import (
    BOOKABLE_TYPES,
    CostAllocation,
    allocation_id,
    overlapping_quarters,
    refuse_overlap,
    run_keys,
)
from domain.errors import KeyConflict
from ledger import event_index
from ledger.application import Ledger


def _stored(ledger: Ledger, year: int, quarter: int) -> CostAllocation | None:
    try:
        return ledger.repository.get(allocation_id(year, quarter))
    except AggregateNotFoundError:
        return None


def in_force(ledger: Ledger, allocation: CostAllocation) -> bool:
    return any(not ledger.get_booking(key).reversal_key for key in allocation.booking_keys)


def check_no_overlap(ledger: Ledger, year: int, quarter: int) -> list[UUID]:
    """Refuse (OverlappingAllocation) while a run of an overlapping period is in force.

    Returns the ids to store the run with as `absent_ids`: the bookings the overlapping periods'
    next runs would make, as far as they are absent now. A concurrent run of such a period stores
    one of them, so the save fails and the command decides again (and refuses) instead of both
    runs being booked."""
    refs: list[str] = []
    next_keys: list[str] = []
    for q in overlapping_quarters(quarter):
        other = _stored(ledger, year, q)
        if other is not None and in_force(ledger, other):
            refs.append(other.document_ref)
        next_keys += run_keys(year, q, (other.runs if other else 0) + 1, BOOKABLE_TYPES)
    refuse_overlap(year, quarter, refs)
    ids = [booking_id(k) for k in next_keys]
    taken = event_index.stored_ids(ledger, ids)
    return [i for i in ids if i not in taken]


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
