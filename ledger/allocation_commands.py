"""Cost allocation runs (KoA-VV § 18): compute, book, and on a rerun reverse what the last run booked.

A run is one transaction: the Computed event with all inputs, parameters and results; the
counter-bookings of the previous run's bookings; the new bookings per cost type. So the split never
shows half a run, and an auditor finds every run, in force or replaced, with what it was computed from.
A year run is refused while quarterly runs of the year are in force and the other way round, and a
run whose keys a booking by hand holds is refused naming them (ledger/allocation_checks.py).
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass
from datetime import date

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.booking import ALLOCATION_KEY_PREFIX, REVERSAL_SUFFIX, Booking, BookingContent, Kind
from domain.cost_allocation import (
    COMPUTED_TYPES,
    DIRECT_TYPES,
    AllocationParameters,
    CostAllocation,
    SharedCost,
    StaffRecord,
    allocation_id,
    compute,
    parameters_from_json,
    period_code,
    refuse_direct_bookings,
    shared_from_json,
    staff_from_json,
)
from domain.errors import NotFound, ValidationError
from domain.money import AMOUNT_CENTS_MAX, format_eur
from domain.periods import YEAR, PeriodClosed, label
from ledger.allocation_checks import check_no_overlap, hand_bookings_meanwhile, refuse_taken_keys
from ledger.bootstrap import Books
from ledger.recorders import CalendarChanged
from projections.split_projection import catch_up, snapshot_holding
from projections.split_view import SplitViewQueries

ATTEMPTS_MAX = 3
COST_CENTRE = "KOA-VV18"
ALLOCATION_PARAMETERS = (
    "versorgungszuschlag_cap",
    "personalgemeinkosten_rate",
    "personalnebenkosten_per_vzae",
    "sachkosten_per_vzae",
)
RUN_KEY_PREFIX = (
    ALLOCATION_KEY_PREFIX  # keys of the bookings of allocation runs (and, with /storno, their reversals)
)


@dataclass(frozen=True)
class RerunDifference:
    """What a rerun of a booked allocation run would book with the parameters in force now."""

    document_ref: str
    year: int
    quarter: int  # YEAR (0) for a whole-year run
    booked_cents: int
    with_new_value_cents: int

    @property
    def difference_cents(self) -> int:
        return self.with_new_value_cents - self.booked_cents


@dataclass(frozen=True)
class RunOutcome:
    allocation: CostAllocation
    number: int
    results_cents: dict[str, int]
    booked_keys: list[str]
    reversed_keys: list[str]


def period_bounds(year: int, quarter: int) -> tuple[date, date]:
    if quarter == YEAR:
        return date(year, 1, 1), date(year, 12, 31)
    first_month = 3 * quarter - 2
    last_month = first_month + 2
    return date(year, first_month, 1), date(year, last_month, month_calendar.monthrange(year, last_month)[1])


def parameters_for(books: Books, year: int, quarter: int) -> AllocationParameters:
    rates = books.ledger.rates
    return AllocationParameters(
        personalgemeinkosten_rate=rates.dated("personalgemeinkosten_rate", year),
        personalnebenkosten_per_vzae_cents=rates.dated_amount_cents("personalnebenkosten_per_vzae", year),
        sachkosten_per_vzae_cents=rates.dated_amount_cents("sachkosten_per_vzae", year),
        versorgungszuschlag_cap=rates.dated("versorgungszuschlag_cap", year),
        quarter=quarter,
    )


def get_allocation(books: Books, year: int, quarter: int) -> CostAllocation:
    try:
        return books.ledger.repository.get(allocation_id(year, quarter))
    except AggregateNotFoundError:
        raise NotFound(f"no cost allocation run for {label(year, quarter)}", "year") from None


def run_allocation(
    books: Books,
    *,
    year: int,
    quarter: int,
    staff: list[StaffRecord],
    shared: list[SharedCost],
    by: str,
    on: date | None = None,
) -> RunOutcome:
    ledger = books.ledger
    on = on or date.today()
    first, last = period_bounds(year, quarter)
    for _attempt in range(ATTEMPTS_MAX):
        caught = catch_up(ledger, books.split_view).position
        try:
            allocation = ledger.repository.get(allocation_id(year, quarter))
            version_read: int | None = allocation.version
        except AggregateNotFoundError:
            allocation = CostAllocation.open(year, quarter)
            version_read = None
        calendar, seen = ledger._calendar_seen()
        closing = calendar.closing_of(year, quarter or 4)  # a closed year closes its quarters
        if closing:
            raise PeriodClosed(
                f"cost allocation for {label(year, quarter)}: the period is closed ({closing}); "
                "book the correction into the open period",
                "year",
            )
        overlapping_read = check_no_overlap(ledger, year, quarter)
        # One state of the view holding what was caught up (a rebuild emptying it meanwhile would
        # hide bookings); the save looks under the write lock at what was recorded after it
        # (hand_bookings_meanwhile).
        with snapshot_holding(ledger, books.split_view, caught) as view:
            seen_position = view.position or 0
            direct, booked = _booked_in_period(view, year, quarter)
        refuse_direct_bookings(year, quarter, booked)
        previous_keys = list(allocation.booking_keys)
        number, results = allocation.run(
            staff=staff,
            shared=shared,
            parameters=parameters_for(books, year, quarter),
            direct_cents=direct,
            computed_by=by,
        )
        refuse_taken_keys(ledger, allocation, version_read)
        for category, cents in sorted(results.items()):
            if cents > AMOUNT_CENTS_MAX:  # a booking's limit; named here, where the staff list is the input
                raise ValidationError(
                    f"the {category} of {label(year, quarter)} come to {format_eur(cents)} €, beyond the "
                    f"limit of {format_eur(AMOUNT_CENTS_MAX)} € per booking: run the allocation per quarter",
                    "staff",
                )
        changed: list = [allocation]
        for key in previous_keys:
            original = ledger.get_booking(key)
            if original.reversal_key:
                continue
            counter = original.reverse(
                reason=f"ersetzt durch Kostenaufteilung {period_code(year, quarter)} Lauf {number}",
                reversed_by=by,
                on=on,
                calendar=calendar,
            )
            changed += [original, counter]
        for key in allocation.booking_keys:
            category = "vwk." + key.rsplit("-", 1)[1]
            content = BookingContent(
                key=key,
                kind=Kind.PAYMENT,
                amount_cents=results[category],
                category=category,
                payment_date=last,
                service_from=first,
                service_to=last,
                document_ref=allocation.document_ref,
                case_ref="",
                contract_ref="",
                cost_centre=COST_CENTRE,
                text=f"Kostenaufteilung KoA-VV § 18, {label(year, quarter)}, Lauf {number}",
            )
            changed.append(
                Booking.record(
                    content,
                    recorded_by=by,
                    catalogue=ledger.catalogue,
                    rates=ledger.base_rates,
                    calendar=calendar,
                )
            )
        try:
            ledger.save(
                *changed,
                calendar_version=seen,
                versions_read=overlapping_read,
                recheck=hand_bookings_meanwhile(ledger, year, quarter, seen_position),
            )
        except (IntegrityError, CalendarChanged):
            # A concurrent run (of this period or an overlapping one), a closing or a booking by
            # hand of the run's cost types: decide again.
            continue
        return RunOutcome(allocation, number, results, list(allocation.booking_keys), previous_keys)
    raise IntegrityError("the cost allocation kept changing under concurrent writers; try again")


def _booked_in_period(
    view: SplitViewQueries, year: int, quarter: int
) -> tuple[dict[str, int], dict[str, tuple[int, list[str]]]]:
    """What the period holds besides the runs: Investitionen and sonstige booked directly (the
    run reports them beside its own figures), and bookings by hand of the types the run computes
    (refused: they may not count twice)."""
    in_period = None if quarter == YEAR else quarter  # the view's quarter (None: the whole year)
    # Without the bookings of allocation runs (their shared costs) and their reversals.
    direct: dict[str, int] = {}
    for category in DIRECT_TYPES:
        rows = view.bookings(year, in_period, category)
        cents = sum(r.net_cents for r in rows if not r.booking_key.startswith(RUN_KEY_PREFIX))
        if rows:
            direct[category] = cents
    # Awaiting approval included: they count once approved. A Storno here of a booking of
    # another, closed period corrects that period's figure, not this one's costs.
    booked: dict[str, tuple[int, list[str]]] = {}
    for category in COMPUTED_TYPES:
        rows = view.bookings(year, in_period, category, counted_only=False)
        by_hand = [r for r in rows if not r.booking_key.startswith(RUN_KEY_PREFIX)]
        here = {r.booking_key for r in by_hand}
        by_hand = [r for r in by_hand if not r.reverses_key or r.reverses_key in here]
        if by_hand:
            booked[category] = (sum(r.net_cents for r in by_hand), [r.booking_key for r in by_hand])
    return direct, booked


def approve_allocation(
    books: Books, *, year: int, quarter: int, by: str, on: date | None = None
) -> list[str]:
    """Approve every booking of the run in force that awaits approval (four eyes: not its recorder)."""
    ledger = books.ledger
    for _attempt in range(ATTEMPTS_MAX):
        allocation = get_allocation(books, year, quarter)
        calendar, seen = ledger._calendar_seen()
        approved = []
        # The run in force, and the reversals of earlier runs' approved bookings (they need four
        # eyes too; until approved, the split would show both runs).
        keys = [*allocation.booking_keys, *(k + REVERSAL_SUFFIX for k in allocation.replaced_keys)]
        for key in keys:
            booking = ledger.get_booking(key)
            if (
                booking.state in ("awaiting_approval", "reversal")
                and booking.requires_approval
                and not booking.approved_by
            ):
                if booking.withdraws_unapproved:
                    continue
                booking.approve(approved_by=by, calendar=calendar, on=on or date.today())
                approved.append(booking)
        if not approved:
            return []
        try:
            ledger.save(*approved, calendar_version=seen)
        except (IntegrityError, CalendarChanged):
            continue
        catch_up(ledger, books.split_view)
        return [b.key for b in approved]
    raise IntegrityError("the cost allocation kept changing under concurrent writers; try again")


def rerun_differences(books: Books, name: str, year: int) -> list[RerunDifference]:
    """A run books amounts: a changed allocation parameter changes them only by a rerun. For each run
    in force from `year` on whose parameters differ now, what a rerun would book, from its stored inputs."""
    if name not in ALLOCATION_PARAMETERS:
        return []
    out = []
    for y in range(year, date.today().year + 1):
        for q in (1, 2, 3, 4, YEAR):
            allocation = books.ledger.aggregate_as_of(allocation_id(y, q), None)
            if allocation is None or not allocation.runs:
                continue
            computed = [e for e in books.ledger.events.get(allocation.id) if type(e).__name__ == "Computed"][
                -1
            ]
            new = parameters_for(books, y, q)
            if parameters_from_json(computed.parameters) == new:
                continue
            staff = [staff_from_json(d) for d in computed.staff]
            shared = [shared_from_json(d) for d in computed.shared]
            out.append(
                RerunDifference(
                    allocation.document_ref,
                    y,
                    q,
                    sum(computed.results_cents.values()),
                    sum(compute(staff, shared, new).values()),
                )
            )
    return out
