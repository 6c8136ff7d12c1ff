"""Questions answered from the split view: the split of a period, and the bookings behind a figure
with their own shares (which add up to the figure to the cent)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.catalogue import Catalogue
from domain.money import allocate_proportional_cents, allocate_share_cents
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
    if quarter is None or rates.egt_funds_cents(year) is None:
        return split_groups(view.totals(year, quarter), catalogue, rates, land)
    # The Eingliederungsbudget is used up in quarter order: a quarter's split needs the ones before.
    totals = [t for q in range(1, quarter + 1) for t in view.totals(year, q)]
    return [s for s in split_groups(totals, catalogue, rates, land) if s.quarter == quarter]


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
) -> list[BookingShare]:
    """The counted bookings of one split line, each with its share; ordered by booking key."""
    # Sorted here, not by the database: collations differ between stores, and the order decides
    # which booking gets a rounding cent.
    rows = sorted(view.bookings(year, quarter, category), key=lambda r: r.booking_key)
    rate = rates.federal_rate(catalogue.get(category), year, land).rate
    nets = [r.net_cents for r in rows]
    federal = allocate_share_cents(nets, rate)
    if rates.egt_funds_cents(year) is not None and rows:
        # Capped by the budget: the line's federal part, shared over its bookings by net amount.
        line = next(s for s in split_lines(view, catalogue, rates, land, year, quarter) if s.category == category)
        if line.federal_cents != sum(federal):
            federal = allocate_proportional_cents(nets, line.federal_cents)
    return [BookingShare(r, n, f, n - f) for r, n, f in zip(rows, nets, federal, strict=True)]
