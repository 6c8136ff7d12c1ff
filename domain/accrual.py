"""The accrual view (Doppik): an amount belongs to the years of its service period, pro rata by days.

The cash view (Kameralistik) puts it in its fiscal year (domain/fiscal.py). The reconciliation
between the two (Überleitung) lists every booking whose amount sits in different years in the two.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from domain.money import half_up


def accrual_by_year(net_cents: int, service_from: date, service_to: date) -> dict[int, int]:
    """Split an amount over the calendar years of its service period by days; exact to the cent
    (every year but the last is rounded half up, the last takes the rest)."""
    assert service_from <= service_to
    years = list(range(service_from.year, service_to.year + 1))
    days = [(min(service_to, date(y, 12, 31)) - max(service_from, date(y, 1, 1))).days + 1 for y in years]
    total = sum(days)
    # Exact fractions: Decimal(d) / Decimal(total) is cut to 28 digits, and an exact half cent
    # (61.728,5 of 1.358.027 cents for 1 of 22 days) came out just below it and was rounded down.
    parts = [half_up(Fraction(net_cents * d, total)) for d in days[:-1]]
    parts.append(net_cents - sum(parts))
    return dict(zip(years, parts, strict=True))
