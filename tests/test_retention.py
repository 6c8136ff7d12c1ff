"""Retention (GemHVO BW § 39): the rules of the periods, the adoption of a year's accounts and its
guards, and the register, on both stores; `koa retention` and its refusals naming the option."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain.errors import KeyConflict, StateRefused, ValidationError
from domain.periods import PeriodCalendar
from domain.retention import AccountsAdoption, Retention, Status, YearNotClosed, kept_until
from ledger.retention import register
from projections.split_projection import catch_up
from tests.factories import booking

ADOPTED = date(2025, 11, 20)
TODAY = date(2026, 11, 22)


def adopt(books, year: int = 2024, on: date = ADOPTED, resolution: str = "GR-2025-117", **more):
    return books.ledger.record_adoption(
        fiscal_year=year,
        adopted_on=on,
        resolution_ref=resolution,
        recorded_by=more.pop("by", "mueller"),
        **more,
    )


def closed_calendar(year: int = 2024) -> PeriodCalendar:
    calendar = PeriodCalendar()
    calendar.close(year=year, quarter=0, closed_by="leitung")
    return calendar


def the_register(books, on: date, as_of: datetime | None = None):
    catch_up(books.ledger, books.split_view)
    return {
        line.retention.fiscal_year: line
        for line in register(books.ledger, books.split_view, on=on, as_of=as_of).lines
    }


# ---- the rules --------------------------------------------------------------------------------


def test_the_periods_count_from_1_january_after_the_year_of_adoption():
    # Accounts of 2024 adopted on 2025-11-20: the periods begin on 2026-01-01.
    assert kept_until(ADOPTED, 6) == date(2031, 12, 31)
    assert kept_until(ADOPTED, 10) == date(2035, 12, 31)
    # A day earlier or later in the same year changes nothing; adopted on 1 January, neither.
    assert kept_until(date(2025, 1, 1), 6) == kept_until(date(2025, 12, 31), 6) == date(2031, 12, 31)
    assert kept_until(date(2026, 1, 1), 6) == date(2032, 12, 31)


@pytest.mark.parametrize(
    "on, status",
    [
        (date(2025, 11, 19), Status.NOT_ADOPTED),  # the day before the council's resolution
        (ADOPTED, Status.KEEP),
        (date(2031, 12, 31), Status.KEEP),  # the vouchers' last day
        (date(2032, 1, 1), Status.VOUCHERS_MAY_GO),
        (date(2035, 12, 31), Status.VOUCHERS_MAY_GO),  # the books' last day
        (date(2036, 1, 1), Status.ALL_MAY_GO),
    ],
)
def test_what_may_go_on_a_day(on, status):
    r = Retention(fiscal_year=2024, adopted_on=ADOPTED, books_years=10, vouchers_years=6, on=on)
    assert (r.vouchers_until, r.books_until) == (date(2031, 12, 31), date(2035, 12, 31))
    assert r.status is status
    if on < ADOPTED:
        assert r.status_text == "accounts not adopted by then: keep everything"


def test_without_an_adoption_everything_is_kept():
    r = Retention(fiscal_year=2024, adopted_on=None, books_years=10, vouchers_years=6, on=date(2099, 1, 1))
    assert (r.vouchers_until, r.books_until, r.status) == (None, None, Status.NOT_ADOPTED)
    assert r.status.label == "accounts not adopted: keep everything"


def test_the_shipped_periods_are_ten_and_six_years_from_the_data_file(books):
    rates = books.ledger.rates
    assert rates.dated_years("retention_years_books", 2024) == 10
    assert rates.dated_years("retention_years_vouchers", 2024) == 6
    assert rates.dated_years("retention_years_vouchers", 2005) == 6


@pytest.mark.parametrize(
    "on, field, reason",
    [
        (date(2024, 12, 31), "date", "not after the end of fiscal year 2024"),
        (date(2024, 6, 30), "date", "not after the end of fiscal year 2024"),
        (TODAY + timedelta(days=1), "date", "is in the future"),
    ],
)
def test_an_adoption_date_inside_the_year_or_in_the_future_is_refused(on, field, reason):
    with pytest.raises(ValidationError) as e:
        AccountsAdoption.record(
            fiscal_year=2024,
            adopted_on=on,
            resolution_ref="GR-2025-117",
            recorded_by="mueller",
            calendar=closed_calendar(),
            today=TODAY,
        )
    assert e.value.field == field and reason in e.value.reason


def test_an_adoption_of_a_year_not_closed_is_refused_naming_the_open_quarters():
    calendar = PeriodCalendar()
    calendar.close(year=2024, quarter=1, closed_by="leitung")
    calendar.close(year=2024, quarter=2, closed_by="leitung")
    with pytest.raises(YearNotClosed) as e:
        AccountsAdoption.record(
            fiscal_year=2024,
            adopted_on=ADOPTED,
            resolution_ref="GR-2025-117",
            recorded_by="mueller",
            calendar=calendar,
            today=TODAY,
        )
    assert e.value.field == "year" and "Q3, Q4 open" in e.value.reason
    calendar.close(year=2024, quarter=3, closed_by="leitung")
    calendar.close(year=2024, quarter=4, closed_by="leitung")  # all four quarters: the year is closed
    a = AccountsAdoption.record(
        fiscal_year=2024,
        adopted_on=ADOPTED,
        resolution_ref="GR-2025-117",
        recorded_by="mueller",
        calendar=calendar,
        today=TODAY,
    )
    assert (a.fiscal_year, a.adopted_on, a.resolution_ref, a.recorded_by) == (
        2024,
        ADOPTED,
        "GR-2025-117",
        "mueller",
    )


@pytest.mark.parametrize("resolution", ["", "GR 2025 117", "-GR", "x" * 65, "GR\u202e117"])
def test_a_resolution_follows_the_rules_of_document_refs(resolution):
    with pytest.raises(ValidationError) as e:
        AccountsAdoption.record(
            fiscal_year=2024,
            adopted_on=ADOPTED,
            resolution_ref=resolution,
            recorded_by="mueller",
            calendar=closed_calendar(),
            today=TODAY,
        )
    assert e.value.field == "resolution"


# ---- recording, on both stores -----------------------------------------------------------------


def test_an_open_year_is_refused_and_nothing_is_written(books):
    before = books.ledger.max_notification_id()
    with pytest.raises(YearNotClosed) as e:
        adopt(books)
    assert e.value.field == "year"
    assert books.ledger.max_notification_id() == before
    assert books.ledger.adoption_as_of(2024) is None


def test_the_same_figures_again_are_a_repeat_other_figures_a_conflict_naming_the_field(books):
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    adoption, created = adopt(books)
    assert created and (adoption.adopted_on, adoption.resolution_ref) == (ADOPTED, "GR-2025-117")
    position = books.ledger.max_notification_id()
    again, created = adopt(books, by="weber")  # someone else enters the same resolution again
    assert not created and again.recorded_by == "mueller" and again.version == 1
    with pytest.raises(KeyConflict) as e:
        adopt(books, on=date(2025, 11, 27))
    assert (
        e.value.field == "date"
        and "on record as adopted on 2025-11-20 by resolution GR-2025-117" in e.value.reason
    )
    with pytest.raises(KeyConflict) as e:
        adopt(books, resolution="GR-2025-118")
    assert e.value.field == "resolution"
    # Bad input is refused as bad input, also where the year is on record already.
    with pytest.raises(ValidationError) as e:
        adopt(books, on=date(2024, 12, 1))
    assert e.value.field == "date"
    assert books.ledger.max_notification_id() == position  # nothing written by the refusals


def test_a_correction_is_a_new_event_naming_the_one_it_corrects(books):
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    adopt(books, on=date(2025, 11, 2))  # typed wrong
    corrected, created = adopt(
        books, on=ADOPTED, corrects="GR-2025-117", reason="Datum falsch erfasst", by="weber"
    )
    assert created and corrected.adopted_on == ADOPTED and corrected.corrections == 1
    first, second = books.ledger.events.get(corrected.id)
    assert type(first).__name__ == "Adopted" and first.adopted_on == date(2025, 11, 2)  # still there
    assert type(second).__name__ == "Corrected"
    assert (second.corrects_version, second.corrects_adopted_on, second.corrects_resolution_ref) == (
        1,
        date(2025, 11, 2),
        "GR-2025-117",
    )
    assert (second.reason, second.corrected_by) == ("Datum falsch erfasst", "weber")
    # The same correction again changes nothing; a plain repeat of the old figures is a conflict now.
    again, created = adopt(books, on=ADOPTED, corrects="GR-2025-117", reason="Datum falsch erfasst")
    assert not created and again.version == 2
    with pytest.raises(KeyConflict):
        adopt(books, on=date(2025, 11, 2))
    # A new resolution (the first was annulled) corrects the one on record, by name.
    with pytest.raises(StateRefused) as e:
        adopt(books, on=date(2026, 2, 3), resolution="GR-2026-009", corrects="GR-2025-999", reason="neu")
    assert e.value.field == "corrects" and "on record is by resolution GR-2025-117" in e.value.reason
    annulled, created = adopt(
        books,
        on=date(2026, 2, 3),
        resolution="GR-2026-009",
        corrects="GR-2025-117",
        reason="Beschluss aufgehoben",
    )
    assert created and (annulled.adopted_on, annulled.resolution_ref, annulled.version) == (
        date(2026, 2, 3),
        "GR-2026-009",
        3,
    )


@pytest.mark.parametrize(
    "more, error, field",
    [
        ({"corrects": "GR-2025-117"}, ValidationError, "reason"),  # a correction needs a reason
        ({"corrects": "GR-2025-117", "reason": " "}, ValidationError, "reason"),
        ({"reason": "Tippfehler"}, ValidationError, "reason"),  # a reason only with corrects
        ({"corrects": "GR 117", "reason": "x"}, ValidationError, "corrects"),
        ({"corrects": "GR-2025-117", "reason": "x", "on": date(2024, 5, 1)}, ValidationError, "date"),
    ],
)
def test_a_malformed_correction_is_refused_naming_the_field(books, more, error, field):
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    adopt(books, on=date(2025, 11, 2))
    with pytest.raises(error) as e:
        adopt(books, **({"on": ADOPTED} | more))
    assert e.value.field == field
    assert books.ledger.adoption_as_of(2024).version == 1


def test_a_correction_without_an_adoption_on_record_is_refused(books):
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    with pytest.raises(StateRefused) as e:
        adopt(books, corrects="GR-2025-117", reason="x")
    assert e.value.field == "corrects" and "no adoption of 2024" in e.value.reason


# ---- the register --------------------------------------------------------------------------------


def test_the_register_lists_every_year_with_bookings_or_an_adoption(books):
    books.ledger.import_bookings(
        [
            booking("B-2023", payment_date=date(2023, 5, 2)),
            booking("B-2024", payment_date=date(2024, 5, 2)),
            booking("B-2025", payment_date=date(2025, 5, 2)),
        ],
        recorded_by="mueller",
    )
    # A booking awaiting approval, withdrawn: not counted anywhere, but its voucher exists.
    books.ledger.record_booking(
        booking("BIG-2022", payment_date=date(2022, 3, 1), amount_cents=5_000_000), recorded_by="mueller"
    )
    books.ledger.reverse_booking("BIG-2022", reason="zurückgezogen", reversed_by="mueller")
    for year in (2021, 2023, 2024):
        books.ledger.close_period(year=year, quarter=0, closed_by="leitung")
    adopt(books, year=2021, on=date(2022, 10, 1), resolution="GR-2022-050")  # no bookings here
    adopt(books, year=2023, on=date(2024, 12, 10), resolution="GR-2024-201")
    adopt(books)
    lines = the_register(books, on=date(2031, 6, 30))
    assert sorted(lines) == [2021, 2022, 2023, 2024, 2025]  # 2021: its adoption only
    status = {y: line.retention.status for y, line in lines.items()}
    assert status == {
        2021: Status.VOUCHERS_MAY_GO,  # vouchers until 2028, books until 2032
        2022: Status.NOT_ADOPTED,
        2023: Status.VOUCHERS_MAY_GO,  # vouchers until 2030-12-31
        2024: Status.KEEP,  # vouchers until 2031-12-31
        2025: Status.NOT_ADOPTED,
    }
    line = lines[2024]
    assert (line.retention.vouchers_until, line.retention.books_until) == (
        date(2031, 12, 31),
        date(2035, 12, 31),
    )
    assert line.adoption.resolution_ref == "GR-2025-117" and [r.by for r in line.recordings] == ["mueller"]


def test_a_changed_period_applies_to_the_years_it_is_set_for(books):
    books.ledger.record_booking(booking("B-2024", payment_date=date(2024, 5, 2)), recorded_by="mueller")
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    adopt(books)
    books.ledger.set_parameter(
        name="retention_years_vouchers",
        year=2024,
        value=Decimal(8),
        land="",
        reason="Satzung",
        set_by="admin",
    )
    assert the_register(books, on=date(2032, 1, 1))[2024].retention.vouchers_until == date(2033, 12, 31)
    with pytest.raises(ValidationError) as e:
        books.ledger.set_parameter(
            name="retention_years_books",
            year=2024,
            value=Decimal("10.5"),
            land="",
            reason="x",
            set_by="admin",
        )
    assert e.value.field == "value"


def test_the_register_as_of_a_moment_shows_the_adoptions_recorded_up_to_then(books):
    books.ledger.record_booking(booking("B-2024", payment_date=date(2024, 5, 2)), recorded_by="mueller")
    books.ledger.close_period(year=2024, quarter=0, closed_by="leitung")
    before_adoption = datetime.now(UTC)
    time.sleep(0.01)
    adopt(books, on=date(2025, 11, 2))
    time.sleep(0.01)
    before_correction = datetime.now(UTC)
    time.sleep(0.01)
    adopt(books, corrects="GR-2025-117", reason="Datum falsch erfasst")
    on = date(2032, 1, 1)
    then = the_register(books, on, as_of=before_adoption)[2024]
    assert then.adoption is None and then.retention.status is Status.NOT_ADOPTED
    between = the_register(books, on, as_of=before_correction)[2024]
    assert between.adoption.adopted_on == date(2025, 11, 2) and len(between.recordings) == 1
    now = the_register(books, on)[2024]
    assert now.adoption.adopted_on == ADOPTED and [r.corrects_version for r in now.recordings] == [None, 1]
    # A booking recorded after the moment is not in the register as of it.
    assert 2024 not in the_register(books, on, as_of=before_adoption - timedelta(days=1))


# ---- `koa retention` --------------------------------------------------------------------------


def test_cli_refusals_exit_1_naming_the_option(koa, books):
    books.ledger.record_booking(booking("B-2024", payment_date=date(2024, 5, 2)), recorded_by="mueller")
    args = ("retention", "adopt", "--year", 2024, "--resolution", "GR-2025-117", "--user", "mueller")
    r = koa(*args, "--date", "2025-11-20")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --year: fiscal year 2024 is not closed")
    assert koa("close", "--year", 2024, "--user", "leitung").exit_code == 0
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    for date_text, reason in [
        ("2024-12-31", "not after the end of fiscal year 2024"),
        (tomorrow, "is in the future"),
        ("31.02.2025", "not a date"),
    ]:
        r = koa(*args, "--date", date_text)
        assert r.exit_code == 1 and r.stderr.startswith("koa: --date: ") and reason in r.stderr, r.stderr
    r = koa(*args[:-4], "--resolution", "GR 117", "--date", "2025-11-20")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --resolution: ")
    r = koa(*args, "--date", "2025-11-20", "--reason", "x")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --reason: only with a correction")
    assert books.ledger.adoption_as_of(2024) is None  # nothing half-written
    r = koa(*args, "--date", "20.11.2025")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "accounts of 2024: adopted on 2025-11-20 by resolution GR-2025-117: recorded",
        "vouchers kept until 2031-12-31 (6 years), books until 2035-12-31 (10 years), counted from 1 January 2026",
    ]
    r = koa(*args, "--date", "2025-11-20")
    assert r.exit_code == 0 and "already on record (unchanged)" in r.stdout
    r = koa(*args, "--date", "2025-11-27")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --date: the accounts of 2024 are on record")
    r = koa(*args, "--date", "2025-11-27", "--corrects", "GR-2025-117")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --reason: required")
    r = koa(*args, "--date", "2025-11-27", "--corrects", "GR-2025-999", "--reason", "Datum")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --corrects: the adoption of 2024 on record")
    r = koa("retention", "--on", "2032-01-01", "adopt", "--year", 2024)
    assert r.exit_code == 2 and "--on and --as-of belong to the register" in r.stderr
    r = koa("retention", "--on", "2032-13-01")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --on: ")
    r = koa("retention", "--as-of", "gestern")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --as-of: ")
    r = koa("retention", "--as-of", (datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert r.exit_code == 1 and "is in the future" in r.stderr


def test_cli_register_and_correction(koa, books):
    books.ledger.record_booking(booking("B-2024", payment_date=date(2024, 5, 2)), recorded_by="mueller")
    books.ledger.record_booking(booking("B-2025", payment_date=date(2025, 5, 2)), recorded_by="mueller")
    assert koa("close", "--year", 2024, "--user", "leitung").exit_code == 0
    base = ("retention", "adopt", "--year", 2024, "--resolution", "GR-2025-117")
    assert koa(*base, "--date", "2025-11-02", "--user", "mueller").exit_code == 0
    r = koa(
        *base,
        "--date",
        "2025-11-20",
        "--corrects",
        "GR-2025-117",
        "--reason",
        "Datum falsch",
        "--user",
        "weber",
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(
        "accounts of 2024: adoption corrected: adopted on 2025-11-20 by resolution GR-2025-117 "
        "(was 2025-11-02, resolution GR-2025-117): recorded"
    )
    r = koa("retention", "--on", "2032-01-01")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Retention register (GemHVO BW § 39) on 2032-01-01"
    row_2024 = next(line for line in lines if line.startswith("2024 "))
    assert row_2024.split()[:7] == [
        "2024",
        "2025-11-20",
        "GR-2025-117",
        "2031-12-31",
        "(6",
        "y)",
        "2035-12-31",
    ]
    assert row_2024.endswith("vouchers may be destroyed")
    assert any("corrected (Datum falsch) by weber" in line for line in lines)
    assert next(line for line in lines if line.startswith("2025 ")).endswith(
        "accounts not adopted: keep everything"
    )
    assert "The ledger deletes nothing" in lines[-1]
    shown = koa("retention", "show", "--on", "2036-01-01").stdout
    assert "books and vouchers may be destroyed" in shown


def test_the_periods_are_parameters_set_and_listed_like_the_others(koa, books):
    r = koa(
        *("params", "set", "retention_years_vouchers", "--year", 2030, "--value", "8"),
        *("--reason", "Änderung GemHVO", "--user", "admin"),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "retention_years_vouchers 2030 = 8 years set"
    listed = koa("params", "list", "--year", 2031).stdout
    assert "Aufbewahrung (GemHVO BW § 39) Bücher 10 Jahre, Belege 8 Jahre" in listed
    assert "admin: retention_years_vouchers 2030 = 8 (Änderung GemHVO)" in listed
    assert "Belege 6 Jahre" in koa("params", "list", "--year", 2029).stdout  # before it: as shipped
    for value in ("8,5", "0", "31", "zehn"):
        r = koa("params", "set", "retention_years_books", "--year", 2030, "--value", value, "--reason", "x")
        assert r.exit_code == 1 and r.stderr.startswith("koa: value: must be a whole number of years"), (
            r.stderr
        )
