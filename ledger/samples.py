"""IKS samples over the stored log: draw one from the population as of a log position, and re-check
recorded draws against the population as it was at their position.

The population of a month is every booking (counted or not, counter-bookings included) paid in the
month, per cost centre. "As of position P" is the bookings whose Recorded event is at or before P:
a booking's key, payment date and cost centre come from that event and never change, and the split
view keeps its position (`notification_id`), so the view caught up to P or beyond gives exactly
that population, however much was booked into the month since.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from domain.sampling import SampleDraw, branch_fingerprint, check_draw, draw, population_fingerprint
from ledger.application import Ledger
from projections.split_projection import catch_up, snapshot_holding
from projections.split_view import BookingRow, SplitViewQueries


class NoPopulation(ValueError):
    """No booking paid in the month (as of the position)."""


def month_bounds(month: str) -> tuple[date, date]:
    """'2025-11' -> (2025-11-01, 2025-11-30); ValueError for anything else."""
    y, m = (int(x) for x in month.split("-"))
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def population_of(rows: Sequence[BookingRow], up_to_position: int) -> dict[str, list[str]]:
    """Per cost centre, the keys (sorted) of the rows recorded at or before the position."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.notification_id <= up_to_position:
            out.setdefault(r.cost_centre, []).append(r.booking_key)
    return {branch: sorted(keys) for branch, keys in sorted(out.items())}


def draw_sample(
    ledger: Ledger, view: SplitViewQueries, month: str, per_branch: int, seed: str, *, drawn_by: str
) -> SampleDraw:
    """Catch the view up, take the month's population as of the position reached, draw and record.

    The position recorded is the view's after the catch-up; rows another process may have added
    to the view beyond it meanwhile are left out, so the population is exactly the one as of it."""
    check_draw(month, per_branch, seed)
    first, last = month_bounds(month)
    position, rows = _month_at_least_as_of(ledger, view, first, last, catch_up(ledger, view).position)
    population = population_of(rows, position)
    if not population:
        raise NoPopulation(f"no bookings paid in {month}")
    return ledger.record_sample_draw(
        month, per_branch, seed, population, position=position, drawn_by=drawn_by
    )


@dataclass(frozen=True)
class DrawCheck:
    """A recorded draw redrawn from the population as of its position."""

    draw: SampleDraw
    event_position: int  # where the draw's own event is in the log
    population_position: int  # the recorded position, or (old draws) the one before event_position
    population_size: int  # bookings in the population as of population_position, now
    population_fingerprint: str  # their SHA-256 (domain.sampling.population_fingerprint)
    population_differs: list[str]  # branches whose population is not the recorded one
    sample_differs: list[str]  # branches whose redrawn picks are not the recorded ones

    @property
    def position_recorded(self) -> bool:
        return self.draw.position is not None

    @property
    def fingerprint_recorded(self) -> bool:
        return bool(self.draw.population_fingerprint)

    @property
    def population_equal(self) -> bool:
        return not self.population_differs

    @property
    def sample_equal(self) -> bool:
        return not self.sample_differs

    @property
    def reproduced(self) -> bool:
        return self.population_equal and self.sample_equal


def check_draws(
    ledger: Ledger, view: SplitViewQueries, month: str, *, seed: str | None = None
) -> list[DrawCheck]:
    """Every recorded draw of the month (of one seed, if given), oldest first, redrawn with its own
    method, size and seed from the population as of its position.

    A draw recorded before positions and fingerprints were (method random.sample) is redrawn from
    the bookings recorded before its own event, and its population compared by the sizes it
    recorded per branch. (That draw read the live view just before it was saved; only a booking
    recorded by someone else in between could make it differ, and then it shows as differing.)"""
    first, last = month_bounds(month)
    draws = [(p, d) for p, d in ledger.sample_draws_at(month) if seed is None or d.seed == seed]
    if not draws:
        return []
    needed = max(d.position if d.position is not None else p - 1 for p, d in draws)
    catch_up(ledger, view)
    _, rows = _month_at_least_as_of(ledger, view, first, last, needed)
    return [_check(rows, event_position, d) for event_position, d in draws]


def _month_at_least_as_of(
    ledger: Ledger, view: SplitViewQueries, first: date, last: date, position: int
) -> tuple[int, list[BookingRow]]:
    """The bookings paid in [first, last] from one state of the view, and that state's position,
    at least `position` (a population read from a view emptied for a rebuild would miss some)."""
    with snapshot_holding(ledger, view, position) as state:
        return state.position or 0, state.bookings_paid_between(first, last)


def _check(rows: Sequence[BookingRow], event_position: int, d: SampleDraw) -> DrawCheck:
    position = d.position if d.position is not None else event_position - 1
    population = population_of(rows, position)
    branches = sorted(set(population) | set(d.population_sizes) | set(d.sample))
    if d.population_fingerprint:
        recorded = d.population_sha256
        now = {b: branch_fingerprint(keys) for b, keys in population.items()}
        population_differs = [b for b in branches if recorded.get(b) != now.get(b)]
        if not population_differs and population_fingerprint(population) != d.population_fingerprint:
            population_differs = ["(all)"]  # the per-branch fingerprints agree, the overall one not
    else:
        sizes = {b: len(keys) for b, keys in population.items()}
        population_differs = [b for b in branches if d.population_sizes.get(b) != sizes.get(b)]
    redrawn = draw(population, d.per_branch, d.seed, d.month, d.method)
    sample_differs = [b for b in branches if d.sample.get(b) != redrawn.get(b)]
    return DrawCheck(
        draw=d,
        event_position=event_position,
        population_position=position,
        population_size=sum(len(keys) for keys in population.values()),
        population_fingerprint=population_fingerprint(population),
        population_differs=population_differs,
        sample_differs=sample_differs,
    )
