"""Questions answered from the split view: the split of a period, and the bookings behind a figure
with their own shares (which add up to the figure to the cent)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.catalogue import Catalogue
from domain.money import allocate_share_cents
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
    return split_groups(view.totals(year, quarter), catalogue, rates, land)


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
    return [BookingShare(r, n, f, n - f) for r, n, f in zip(rows, nets, federal, strict=True)]
