"""Interest on funds repaid to the Bund: Basiszinssatz + 3 points, per day (domain/interest.py)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import RateMissing, ValidationError
from domain.interest import BaseInterestRates, check_base_rate, repayment_interest
from domain.rates import RateTable
from domain.settlement import FundsRepayment

RATES = RateTable.load()
SHIPPED = RATES.basiszinssatz
THREE_POINTS = Decimal("0.03")


def points(year: int) -> Decimal:
    return RATES.dated("repayment_interest_points", year)


def interest(cents: int, since: date, until: date, rates: BaseInterestRates = SHIPPED):
    return repayment_interest(cents, since, until, rates, points)


def test_a_year_of_two_rates_to_the_cent():
    # 2024: 3,62 % from 1 January (182 days), 3,37 % from 1 July (184 days), each + 3 points,
    # a leap year of 366 days: 100.000 € × (6,62 % × 182 + 6,37 % × 184) / 366 = 6.494,32 €.
    i = interest(10_000_000, date(2023, 12, 31), date(2024, 12, 31))
    assert [(line.days, line.base_rate, line.year_days) for line in i.lines] == [
        (182, Decimal("0.0362"), 366),
        (184, Decimal("0.0337"), 366),
    ]
    assert i.days == 366 and i.total_cents == 649_432


def test_the_day_obtained_is_not_counted_the_day_repaid_is():
    # 12.345,67 € obtained on 30 June 2025, repaid on 15 March 2026: 184 + 74 days at 4,27 % / 365.
    i = interest(1_234_567, date(2025, 6, 30), date(2026, 3, 15))
    assert [(line.first_day, line.last_day, line.days) for line in i.lines] == [
        (date(2025, 7, 1), date(2025, 12, 31), 184),
        (date(2026, 1, 1), date(2026, 3, 15), 74),
    ]
    assert i.total_cents == 37_262  # 12.345,67 × 4,27 % × 258 / 365 = 372,6209…
    assert interest(1_234_567, date(2026, 3, 15), date(2026, 3, 15)).total_cents == 0  # repaid the same day


def test_a_negative_base_rate_lowers_the_rate_and_never_below_zero():
    i = interest(10_000_000, date(2019, 12, 31), date(2020, 12, 31))
    assert {line.rate for line in i.lines} == {Decimal("0.0212")}  # -0,88 % + 3 points
    assert i.total_cents == 212_000
    deep = BaseInterestRates([(date(2020, 1, 1), Decimal("-0.05"))])
    assert repayment_interest(10_000, date(2020, 1, 1), date(2020, 2, 1), deep, points).total_cents == 0


def test_a_half_year_without_a_rate_is_an_error_not_the_last_rate():
    rates = BaseInterestRates([(date(2026, 1, 1), Decimal("0.0127"))])
    with pytest.raises(RateMissing, match="half-year from 2026-07-01.*set-base-rate"):
        interest(100_000, date(2026, 6, 1), date(2026, 7, 1), rates)
    assert interest(100_000, date(2026, 6, 1), date(2026, 6, 30), rates).total_cents > 0


@pytest.mark.parametrize(
    ("valid_from", "rate", "field"),
    [
        (date(2026, 7, 2), Decimal("0.0127"), "valid_from"),
        (date(2026, 3, 1), Decimal("0.0127"), "valid_from"),
        (date(2026, 7, 1), Decimal("0.27"), "value"),
        (date(2026, 7, 1), Decimal("-0.06"), "value"),
        (date(2026, 7, 1), Decimal("0.01275"), "value"),
        (date(2026, 7, 1), Decimal("NaN"), "value"),
    ],
)
def test_a_base_rate_is_set_for_a_half_year_as_announced(valid_from, rate, field):
    with pytest.raises(ValidationError) as e:
        check_base_rate(valid_from, rate)
    assert e.value.field == field


def test_bad_periods_name_the_field():
    with pytest.raises(ValidationError) as e:
        interest(100, date(2026, 3, 2), date(2026, 3, 1))
    assert e.value.field == "interest_since"
    with pytest.raises(ValidationError) as e:
        interest(100, date(2004, 12, 31), date(2026, 3, 1))
    assert e.value.field == "interest_since"
    with pytest.raises(ValidationError) as e:
        interest(0, date(2026, 3, 1), date(2026, 3, 1))
    assert e.value.field == "amount"


days_in_table = st.dates(min_value=date(2005, 1, 1), max_value=date(2026, 6, 29))
principal = st.integers(min_value=1, max_value=10**12)


def _exact(i) -> Fraction:
    return sum((line.exact_cents for line in i.lines), Fraction(0))


@given(principal, days_in_table, st.integers(0, 3000), st.integers(0, 3000))
def test_interest_is_additive_over_days_and_rounds_once(cents, since, a, b):
    middle = min(since + timedelta(days=a), date(2026, 6, 30))
    until = min(middle + timedelta(days=b), date(2026, 6, 30))
    whole, first, second = (
        interest(cents, since, until),
        interest(cents, since, middle),
        interest(cents, middle, until),
    )
    assert _exact(whole) == _exact(first) + _exact(second)  # splitting the period changes nothing exact
    assert abs(whole.total_cents - first.total_cents - second.total_cents) <= 1  # rounded once, not per part
    assert sum(line.days for line in whole.lines) == (until - since).days
    assert whole.total_cents >= first.total_cents  # more days never cost less


@given(principal, st.integers(2006, 2025), st.decimals(Decimal("-0.05"), Decimal("0.15"), places=4))
def test_a_whole_calendar_year_at_one_rate_costs_exactly_that_rate(cents, year, base):
    rates = BaseInterestRates([(date(year, 1, 1), base), (date(year, 7, 1), base)])
    i = repayment_interest(cents, date(year - 1, 12, 31), date(year, 12, 31), rates, lambda _: THREE_POINTS)
    assert _exact(i) == Fraction(cents) * Fraction(max(base + THREE_POINTS, Decimal(0)))


@given(principal.filter(lambda c: c <= 10**12), days_in_table, st.integers(0, 4000))
def test_the_event_keeps_what_recomputes_the_interest(cents, since, days):
    until = min(since + timedelta(days=days), date(2026, 6, 30))
    i = interest(cents, since, until)
    r = FundsRepayment.record(
        federal_title="1101/636 13",
        fiscal_year=2024,
        value_date=until,
        amount_cents=cents,
        interest=i,
        document_ref="RZ-1",
        reason="Bescheid",
        recorded_by="mueller",
    )
    assert r.interest_cents == i.total_cents
    assert r.interest == i  # from the stored lines alone: days, rates and the exact amounts
