"""Questions answered from the split view: the split of a period, and the bookings behind a figure
with their own shares (which add up to the figure to the cent)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.catalogue import Catalogue
from domain.errors import RateMissing
from domain.money import allocate_proportional_cents_paired, allocate_share_cents_paired
from domain.rates import RateTable
from domain.split import SplitLine, split_groups
from projections.split_view import BookingRow, SplitViewQueries


def split_lines(
    view: SplitViewQueries,
    catalogue: Catalogue,
    rates: RateTable,
    land: str,
    year: int,
    quarter: int | None = None,
) -> list[SplitLine]:
    if quarter is None:
        return split_groups(view.totals(year), catalogue, rates, land)
    # A quarter's share is rounded on the year's cumulative net, and the Eingliederungsbudget is used
    # up in quarter order: a quarter's split needs the ones before.
    totals = [t for q in range(1, quarter + 1) for t in view.totals(year, q)]
    return [s for s in split_groups(totals, catalogue, rates, land) if s.quarter == quarter]


SPLIT_PARAMETERS = ("vwk_federal_share", "kdu_quota_provisional", "kdu_quota_final")  # rates of the split


def federal_before_after(
    view: SplitViewQueries,
    catalogue: Catalogue,
    rates: RateTable,
    land: str,
    year: int,
    setting: tuple[str, Decimal],
) -> tuple[int, int] | None:
    """The year's federal share now and with one rate of the split (name, value) set for it, of
    the same bookings: the difference that change makes, whatever else is booked meanwhile. None
    if a rate of the split is missing now."""
    totals = view.totals(year)  # one read, for both
    name, value = setting
    try:
        before = split_groups(totals, catalogue, rates, land)
    except RateMissing:
        return None
    after = split_groups(totals, catalogue, rates.with_settings([(name, year, land, value)]), land)
    return sum(s.federal_cents for s in before), sum(s.federal_cents for s in after)


@dataclass(frozen=True, slots=True)
class BookingShare:
    row: BookingRow
    net_cents: int
    federal_cents: int
    municipal_cents: int


def booking_shares(
    view: SplitViewQueries,
    catalogue: Catalogue,
    rates: RateTable,
    land: str,
    year: int,
    quarter: int,
    category: str,
    line: SplitLine | None = None,
) -> list[BookingShare]:
    """The counted bookings of one split line, each with its share; ordered by booking key.

    The shares add up to the line's (`line`, read from the view if not given). A booking and its
    Storno in the line get exactly opposite shares; the line's share is distributed over the other
    bookings (see reversal_pairs)."""
    # Sorted here, not by the database: collations differ between stores, and the order decides
    # which booking gets a rounding cent.
    rows = sorted(view.bookings(year, quarter, category), key=lambda r: r.booking_key)
    if not rows:
        return []
    if line is None:
        line = next(
            s for s in split_lines(view, catalogue, rates, land, year, quarter) if s.category == category
        )
    assert (line.fiscal_year, line.quarter, line.category) == (year, quarter, category), line
    nets = [r.net_cents for r in rows]
    pairs = reversal_pairs(rows)
    if line.budget_capped:
        # Capped by the budget: the line's federal part, shared over its bookings by net amount.
        federal = allocate_proportional_cents_paired(nets, line.federal_cents, pairs)
    else:
        rate = rates.federal_rate(catalogue.get(category), year, land).rate
        federal = allocate_share_cents_paired(nets, rate, pairs, line.federal_cents)
    return [BookingShare(r, n, f, n - f) for r, n, f in zip(rows, nets, federal, strict=True)]


def reversal_pairs(rows: list[BookingRow]) -> list[tuple[int, int]]:
    """(original, Storno) positions of the reversals whose original is among the rows (the same
    year, quarter and category, counted) with exactly the opposite net amount. Ranked apart, the
    two could get shares a cent apart (+1.386,98 and -1.386,99): an auditor must see a Storno
    cancel its original exactly. A Storno booked into a later period (the original's was closed)
    is in another line and shares by rank there."""
    at = {r.booking_key: i for i, r in enumerate(rows)}
    pairs = []
    for i, r in enumerate(rows):
        j = at.get(r.reverses_key) if r.reverses_key else None
        if j is not None and rows[j].net_cents == -r.net_cents:
            pairs.append((j, i))
    return pairs
