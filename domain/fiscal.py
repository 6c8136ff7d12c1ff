"""Which fiscal year and quarter a payment belongs to (the Bund settles cash, BHO § 72).

Rules, in order:
1. A running benefit paid in advance (catalogue flag `paid_in_advance`) for a service period that
   starts in January, paid in December of the year before, belongs to the new year (quarter 1).
2. A payment made in January up to the run-off period's last day, for a service period that ended in
   the old year, belongs to the old year (quarter 4): the Auslaufperiode.
3. Otherwise the year and quarter of the payment date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class FiscalRule(StrEnum):
    CASH = "cash"
    DECEMBER_FOR_JANUARY = "december_for_january"
    RUNOFF = "runoff"
    # Approved after its period was closed: counts in the open period of the approval day.
    AFTER_CLOSING = "after_closing"


@dataclass(frozen=True, slots=True)
class FiscalPeriod:
    year: int
    quarter: int
    rule: FiscalRule

    def __post_init__(self) -> None:
        assert 1 <= self.quarter <= 4, self.quarter


def quarter_of(d: date) -> int:
    return (d.month - 1) // 3 + 1


def fiscal_period(
    payment_date: date,
    service_from: date,
    service_to: date,
    *,
    paid_in_advance: bool,
    runoff_last_day: date,
) -> FiscalPeriod:
    """runoff_last_day is the last day of the run-off period for the year before payment_date's year."""
    assert service_from <= service_to, (service_from, service_to)
    y = payment_date.year
    if (
        paid_in_advance
        and payment_date.month == 12
        and service_from.year == y + 1
        and service_from.month == 1
    ):
        return FiscalPeriod(y + 1, 1, FiscalRule.DECEMBER_FOR_JANUARY)
    if (
        payment_date.month == 1
        and service_to.year < y
        and runoff_last_day.year == y
        and payment_date <= runoff_last_day
    ):
        return FiscalPeriod(y - 1, 4, FiscalRule.RUNOFF)
    return FiscalPeriod(y, quarter_of(payment_date), FiscalRule.CASH)
