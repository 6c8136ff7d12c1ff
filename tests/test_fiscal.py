"""Which fiscal year and quarter a payment belongs to (domain.fiscal; shared/domain.md, "Time")."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.booking import Booking, BookingContent, Kind
from domain.catalogue import Catalogue
from domain.fiscal import FiscalPeriod, FiscalRule, fiscal_period, quarter_of
from domain.rates import RateTable

RUNOFF_2024 = date(2025, 1, 20)
RUNOFF_2023 = date(2024, 1, 20)


def period(
    paid: date, sfrom: date, sto: date, *, advance: bool = False, runoff: date | None = None
) -> FiscalPeriod:
    if runoff is None:
        runoff = date(paid.year, 1, 20)
    return fiscal_period(paid, sfrom, sto, paid_in_advance=advance, runoff_last_day=runoff)


# ---- plain cash rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paid", "year", "quarter"),
    [
        (date(2024, 1, 1), 2024, 1),
        (date(2024, 3, 31), 2024, 1),
        (date(2024, 4, 1), 2024, 2),
        (date(2024, 6, 30), 2024, 2),
        (date(2024, 7, 1), 2024, 3),
        (date(2024, 9, 30), 2024, 3),
        (date(2024, 10, 1), 2024, 4),
        (date(2024, 12, 31), 2024, 4),
    ],
)
def test_cash_rule_by_quarter(paid: date, year: int, quarter: int) -> None:
    # service period in the same month as the payment: no exception applies
    p = period(paid, paid.replace(day=1), paid, advance=True)
    assert p == FiscalPeriod(year, quarter, FiscalRule.CASH)
    assert quarter_of(paid) == quarter


def test_fiscal_period_refuses_quarter_out_of_range() -> None:
    with pytest.raises(AssertionError):
        FiscalPeriod(2024, 5, FiscalRule.CASH)
    with pytest.raises(AssertionError):
        FiscalPeriod(2024, 0, FiscalRule.CASH)


# ---- December for January ----------------------------------------------------------------------

JAN_2025 = (date(2025, 1, 1), date(2025, 1, 31))


def test_december_payment_for_january_moves_to_new_year_when_paid_in_advance() -> None:
    p = period(date(2024, 12, 29), *JAN_2025, advance=True, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2025, 1, FiscalRule.DECEMBER_FOR_JANUARY)


@pytest.mark.parametrize("day", [1, 15, 31])
def test_any_december_day_moves_for_advance_benefits(day: int) -> None:
    p = period(date(2024, 12, day), *JAN_2025, advance=True, runoff=RUNOFF_2023)
    assert (p.year, p.quarter, p.rule) == (2025, 1, FiscalRule.DECEMBER_FOR_JANUARY)


def test_december_payment_for_january_stays_cash_when_not_paid_in_advance() -> None:
    p = period(date(2024, 12, 29), *JAN_2025, advance=False, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2024, 4, FiscalRule.CASH)


def test_november_payment_for_january_stays_cash() -> None:
    # only payments made in December move (domain.md: "paid at the end of December")
    p = period(date(2024, 11, 28), *JAN_2025, advance=True, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2024, 4, FiscalRule.CASH)


def test_december_payment_for_february_stays_cash() -> None:
    p = period(date(2024, 12, 29), date(2025, 2, 1), date(2025, 2, 28), advance=True, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2024, 4, FiscalRule.CASH)


def test_december_payment_for_january_of_a_later_year_stays_cash() -> None:
    p = period(date(2024, 12, 29), date(2026, 1, 1), date(2026, 1, 31), advance=True, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2024, 4, FiscalRule.CASH)


def test_december_payment_for_december_stays_cash() -> None:
    p = period(date(2024, 12, 1), date(2024, 12, 1), date(2024, 12, 31), advance=True, runoff=RUNOFF_2023)
    assert p == FiscalPeriod(2024, 4, FiscalRule.CASH)


def test_january_payment_for_january_is_plain_cash() -> None:
    p = period(date(2025, 1, 2), *JAN_2025, advance=True, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


# ---- run-off period (Auslaufperiode) -----------------------------------------------------------

DEC_2024 = (date(2024, 12, 1), date(2024, 12, 31))


@pytest.mark.parametrize("advance", [True, False])
def test_january_payment_for_old_year_service_within_runoff_goes_to_old_year(advance: bool) -> None:
    p = period(date(2025, 1, 10), *DEC_2024, advance=advance, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2024, 4, FiscalRule.RUNOFF)


def test_runoff_includes_its_last_day() -> None:
    p = period(RUNOFF_2024, *DEC_2024, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2024, 4, FiscalRule.RUNOFF)


def test_runoff_day_after_last_day_is_cash_in_new_year() -> None:
    p = period(RUNOFF_2024 + timedelta(days=1), *DEC_2024, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


def test_runoff_first_of_january() -> None:
    p = period(date(2025, 1, 1), *DEC_2024, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2024, 4, FiscalRule.RUNOFF)


def test_runoff_for_service_from_earlier_in_old_year() -> None:
    p = period(date(2025, 1, 10), date(2024, 3, 1), date(2024, 3, 31), runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2024, 4, FiscalRule.RUNOFF)


def test_service_ending_in_new_year_is_not_runoff() -> None:
    p = period(date(2025, 1, 10), date(2024, 12, 1), date(2025, 1, 31), runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


def test_service_in_january_paid_in_january_is_cash() -> None:
    p = period(date(2025, 1, 10), date(2025, 1, 1), date(2025, 1, 10), runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


def test_february_payment_for_december_service_is_cash() -> None:
    p = period(date(2025, 2, 5), *DEC_2024, runoff=RUNOFF_2024)
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


def test_runoff_last_day_of_another_year_does_not_apply() -> None:
    # a run-off day for a different year is no licence to book backwards
    p = period(date(2025, 1, 10), *DEC_2024, runoff=date(2024, 1, 20))
    assert p == FiscalPeriod(2025, 1, FiscalRule.CASH)


def test_runoff_with_a_later_closing_date() -> None:
    late = date(2025, 1, 31)
    assert period(date(2025, 1, 31), *DEC_2024, runoff=late).rule == FiscalRule.RUNOFF
    early = date(2025, 1, 5)
    assert period(date(2025, 1, 6), *DEC_2024, runoff=early) == FiscalPeriod(2025, 1, FiscalRule.CASH)


# ---- properties --------------------------------------------------------------------------------

dates = st.dates(min_value=date(2006, 1, 1), max_value=date(2099, 12, 31))


@given(
    dates,
    dates,
    st.integers(min_value=0, max_value=400),
    st.booleans(),
    st.integers(min_value=1, max_value=31),
)
@settings(max_examples=200, deadline=None)
def test_fiscal_period_is_cash_or_one_of_two_exceptions(
    paid: date, sfrom: date, length: int, advance: bool, runoff_day: int
) -> None:
    sto = sfrom + timedelta(days=length)
    runoff = date(paid.year, 1, runoff_day)
    p = fiscal_period(paid, sfrom, sto, paid_in_advance=advance, runoff_last_day=runoff)
    if p.rule == FiscalRule.CASH:
        assert (p.year, p.quarter) == (paid.year, quarter_of(paid))
    elif p.rule == FiscalRule.DECEMBER_FOR_JANUARY:
        assert advance and paid.month == 12
        assert (sfrom.year, sfrom.month) == (paid.year + 1, 1)
        assert (p.year, p.quarter) == (paid.year + 1, 1)
    else:
        assert p.rule == FiscalRule.RUNOFF
        assert paid.month == 1 and paid <= runoff and sto.year < paid.year
        assert (p.year, p.quarter) == (paid.year - 1, 4)
    # never more than one year away from the payment
    assert abs(p.year - paid.year) <= 1


# ---- shipped run-off default and its use by Booking.record -------------------------------------


def test_shipped_runoff_default_is_20_january() -> None:
    rates = RateTable.load()
    assert rates.runoff_last_day(2024) == date(2025, 1, 20)
    assert rates.runoff_last_day(2019) == date(2020, 1, 20)


def _content(key: str, paid: date, sfrom: date, sto: date, category: str = "kdu") -> BookingContent:
    return BookingContent(
        key=key,
        kind=Kind.PAYMENT,
        amount_cents=50_000,
        category=category,
        payment_date=paid,
        service_from=sfrom,
        service_to=sto,
        document_ref="ZA-1",
        case_ref="08221BG0000001",
        contract_ref="",
        cost_centre="JC-NORD",
        text="",
    )


def _record(content: BookingContent) -> Booking:
    return Booking.record(content, recorded_by="anna", catalogue=Catalogue.load(), rates=RateTable.load())


@pytest.mark.parametrize(
    ("paid", "sfrom", "sto", "category", "expected"),
    [
        (date(2025, 1, 20), *DEC_2024, "kdu", (2024, 4, "runoff")),
        (date(2025, 1, 21), *DEC_2024, "kdu", (2025, 1, "cash")),
        (date(2025, 1, 10), *DEC_2024, "vwk.sachkosten", (2024, 4, "runoff")),
        (date(2024, 12, 29), *JAN_2025, "kdu", (2025, 1, "december_for_january")),
        (date(2024, 12, 29), *JAN_2025, "buergergeld", (2025, 1, "december_for_january")),
        (date(2024, 12, 29), *JAN_2025, "kdu_sonst", (2024, 4, "cash")),
        (date(2024, 12, 29), *JAN_2025, "egt.aktivierung", (2024, 4, "cash")),
        (date(2025, 3, 31), date(2025, 3, 1), date(2025, 3, 31), "kdu", (2025, 1, "cash")),
        (date(2025, 4, 1), date(2025, 4, 1), date(2025, 4, 30), "kdu", (2025, 2, "cash")),
    ],
)
def test_booking_record_applies_the_fiscal_rules_with_shipped_data(
    paid: date, sfrom: date, sto: date, category: str, expected: tuple[int, int, str]
) -> None:
    b = _record(_content("F-1", paid, sfrom, sto, category))
    assert (b.fiscal_year, b.quarter, b.fiscal_rule) == expected


def test_shipped_catalogue_marks_running_benefits_paid_in_advance() -> None:
    cat = Catalogue.load()
    assert cat.get("buergergeld").paid_in_advance
    assert cat.get("kdu").paid_in_advance
    assert not cat.get("kdu_sonst").paid_in_advance
    assert not cat.get("vwk.personal").paid_in_advance
