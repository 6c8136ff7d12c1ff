"""Interest on federal funds repaid: Basiszinssatz (§ 247 BGB) + a surcharge, per day.

Funds obtained from the Bund without legal ground are repaid with interest at the Basiszinssatz
plus 3 percentage points (shared/domain.md; the points are a dated parameter). The Basiszinssatz
changes on 1 January and 1 July and the Bundesbank announces it for every half-year, changed or
not: a half-year without a rate on file is an error, never the previous half-year's rate.

Days are counted as the BGB counts a period that starts with an event (§§ 187 Abs. 1, 188): the
day the funds were obtained is not counted, the day of repayment is. A day's interest is the
principal × the rate in force that day / the days of its calendar year (act/act: a whole year at
r costs exactly r). The exact sum over all days is rounded half up to the cent once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from domain.errors import RateMissing, ValidationError

BASE_RATE_MIN = Decimal("-0.05")  # the lowest ever was -0,88 %; beyond these bounds is a typo
BASE_RATE_MAX = Decimal("0.15")
INTEREST_DAYS_MAX = 366 * 30  # a claim older than thirty years is a typo, not a repayment
FIRST_DAY = date(2005, 1, 1)  # SGB II: no federal funds were drawn under it before 2005
LAST_DAY = date(2100, 12, 31)  # the books' last fiscal year, as for bookings and transfers


def half_year_start(day: date) -> date:
    return date(day.year, 1 if day.month <= 6 else 7, 1)


def check_base_rate(valid_from: date, rate: Decimal) -> None:
    """A Basiszinssatz as announced: for a half-year, in percent with at most two decimals."""
    if valid_from != half_year_start(valid_from):
        raise ValidationError("a Basiszinssatz is set for a half-year: 1 January or 1 July", "valid_from")
    if not FIRST_DAY <= valid_from <= LAST_DAY:
        raise ValidationError(
            f"must be within {FIRST_DAY.year}-{LAST_DAY.year} (the books' years)", "valid_from"
        )
    if not rate.is_finite() or not BASE_RATE_MIN <= rate <= BASE_RATE_MAX:
        raise ValidationError("must be between -5 % and 15 %", "value")
    if rate != rate.quantize(Decimal("0.0001")):
        raise ValidationError("at most two decimals in percent (e.g. 1,27 %)", "value")


class BaseInterestRates:
    """The Basiszinssatz per half-year (§ 247 BGB), from the shipped table and audited changes."""

    def __init__(self, rates: Iterable[tuple[date, Decimal]]) -> None:
        self._by_half_year: dict[date, Decimal] = {}
        for valid_from, rate in rates:
            check_base_rate(valid_from, rate)
            self._by_half_year[valid_from] = rate  # later entries (changes) win

    def with_changes(self, changes: Iterable[tuple[date, Decimal]]) -> BaseInterestRates:
        return BaseInterestRates([*self._by_half_year.items(), *changes])

    def on(self, day: date) -> Decimal:
        start = half_year_start(day)
        try:
            return self._by_half_year[start]
        except KeyError:
            raise RateMissing(
                f"no Basiszinssatz on file for the half-year from {start.isoformat()}: set it with "
                f"`koa params set-base-rate --from {start.isoformat()} --value ... --reason ...`"
            ) from None

    def items(self) -> list[tuple[date, Decimal]]:
        return sorted(self._by_half_year.items())


@dataclass(frozen=True, slots=True)
class InterestLine:
    """Interest days under one rate: first and last day counted, the rates, the exact amount."""

    first_day: date
    last_day: date
    days: int
    base_rate: Decimal
    points: Decimal
    year_days: int  # 365 or 366: the divisor of each day's interest
    exact_cents: Fraction

    @property
    def rate(self) -> Decimal:
        return max(self.base_rate + self.points, Decimal(0))


@dataclass(frozen=True, slots=True)
class Interest:
    principal_cents: int
    since: date  # the funds were obtained on this day (not counted)
    until: date  # repaid on this day (counted)
    lines: tuple[InterestLine, ...]

    @property
    def days(self) -> int:
        return (self.until - self.since).days

    @property
    def total_cents(self) -> int:
        return round_half_up(sum((line.exact_cents for line in self.lines), Fraction(0)))


def interest_line(
    principal_cents: int, first_day: date, last_day: date, base_rate: Decimal, points: Decimal
) -> InterestLine:
    """The interest of the days first_day..last_day (both counted, within one half-year)."""
    assert half_year_start(first_day) == half_year_start(last_day) and first_day <= last_day
    days = (last_day - first_day).days + 1
    year_days = _year_days(first_day.year)
    rate = max(base_rate + points, Decimal(0))
    exact = Fraction(principal_cents) * Fraction(rate) * days / year_days
    return InterestLine(first_day, last_day, days, base_rate, points, year_days, exact)


def round_half_up(value: Fraction) -> int:
    assert value >= 0, value
    return int((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def _year_days(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def repayment_interest(
    principal_cents: int,
    since: date,
    until: date,
    base_rates: BaseInterestRates,
    points_for_year: Callable[[int], Decimal],
) -> Interest:
    """Interest on `principal_cents` held from `since` (not counted) to `until` (counted)."""
    if principal_cents <= 0:
        raise ValidationError("must be greater than zero", "amount")
    if until < since:
        raise ValidationError(f"must not be after the repayment date {until.isoformat()}", "interest_since")
    if (until - since).days > INTEREST_DAYS_MAX:
        raise ValidationError("more than thirty years before the repayment", "interest_since")
    if since < FIRST_DAY:
        raise ValidationError(f"must not be before {FIRST_DAY.isoformat()} (SGB II)", "interest_since")
    if until > LAST_DAY:
        raise ValidationError(f"must not be after {LAST_DAY.isoformat()}", "date")
    lines: list[InterestLine] = []
    first = since + timedelta(days=1)
    while first <= until:
        # A line ends where the base rate may change (1 January, 1 July) or at the repayment.
        start = half_year_start(first)
        next_start = date(start.year, 7, 1) if start.month == 1 else date(start.year + 1, 1, 1)
        last = min(until, next_start - timedelta(days=1))
        lines.append(
            interest_line(principal_cents, first, last, base_rates.on(first), points_for_year(first.year))
        )
        first = last + timedelta(days=1)
    interest = Interest(principal_cents, since, until, tuple(lines))
    assert sum(line.days for line in lines) == interest.days
    return interest
