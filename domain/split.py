"""The federal/municipal split of net spending, per fiscal year, quarter and category.

The rounding unit is the group (fiscal year, quarter, category): its federal share is the net total
times the rate, rounded half up; the municipal share is the rest, so both add up to the net exactly.
Per-booking shares are the group share distributed by largest remainder (money.allocate_share_cents),
so they add up to the group's share. A year's figure is the sum of its quarters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from domain.catalogue import Catalogue
from domain.money import share_cents
from domain.rates import RateTable


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """Net spending of one (fiscal year, quarter, category), from counted bookings only."""

    fiscal_year: int
    quarter: int
    category: str
    expenditure_cents: int
    receipts_cents: int
    booking_count: int

    @property
    def net_cents(self) -> int:
        return self.expenditure_cents - self.receipts_cents


@dataclass(frozen=True, slots=True)
class SplitLine:
    fiscal_year: int
    quarter: int
    category: str
    federal_title: str
    expenditure_cents: int
    receipts_cents: int
    net_cents: int
    federal_rate: Decimal
    rate_label: str
    federal_cents: int
    municipal_cents: int
    booking_count: int

    def __post_init__(self) -> None:
        assert self.net_cents == self.expenditure_cents - self.receipts_cents
        assert self.federal_cents + self.municipal_cents == self.net_cents


def split_group(total: GroupTotal, catalogue: Catalogue, rates: RateTable, land: str) -> SplitLine:
    category = catalogue.get(total.category)
    applied = rates.federal_rate(category, total.fiscal_year, land)
    federal = share_cents(total.net_cents, applied.rate)
    return SplitLine(
        fiscal_year=total.fiscal_year,
        quarter=total.quarter,
        category=total.category,
        federal_title=category.title_label,
        expenditure_cents=total.expenditure_cents,
        receipts_cents=total.receipts_cents,
        net_cents=total.net_cents,
        federal_rate=applied.rate,
        rate_label=applied.label,
        federal_cents=federal,
        municipal_cents=total.net_cents - federal,
        booking_count=total.booking_count,
    )


def split_groups(
    totals: Iterable[GroupTotal], catalogue: Catalogue, rates: RateTable, land: str
) -> list[SplitLine]:
    lines = [split_group(t, catalogue, rates, land) for t in totals]
    return sorted(lines, key=lambda s: (s.fiscal_year, s.quarter, s.federal_title, s.category))


@dataclass(frozen=True, slots=True)
class Sum:
    """Totals over several split lines (a title, a quarter, a year)."""

    expenditure_cents: int = 0
    receipts_cents: int = 0
    net_cents: int = 0
    federal_cents: int = 0
    municipal_cents: int = 0
    booking_count: int = 0

    @classmethod
    def of(cls, lines: Iterable[SplitLine]) -> Sum:
        e = r = n = f = m = c = 0
        for s in lines:
            e += s.expenditure_cents
            r += s.receipts_cents
            n += s.net_cents
            f += s.federal_cents
            m += s.municipal_cents
            c += s.booking_count
        assert f + m == n
        return cls(e, r, n, f, m, c)


def sum_by_title(lines: Iterable[SplitLine]) -> dict[str, Sum]:
    by_title: dict[str, list[SplitLine]] = {}
    for s in lines:
        by_title.setdefault(s.federal_title, []).append(s)
    return {t: Sum.of(ls) for t, ls in sorted(by_title.items())}
