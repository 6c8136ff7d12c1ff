"""Closed periods on both stores: nothing more is booked into a closed quarter or year; a
correction of a booking from a closed period lands in the open one and names the original."""

from __future__ import annotations

from datetime import date

import pytest
from click.testing import CliRunner

from domain.errors import StateRefused
from domain.periods import AlreadyClosed, PeriodClosed
from ledger.application import ImportRefused
from ledger.cli import main
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import CSV_HEADER, booking, csv_row

MAY = dict(payment_date=date(2025, 5, 5), service_from=date(2025, 5, 1), service_to=date(2025, 5, 31))


def test_a_closed_quarter_takes_no_more_bookings(books):
    books.ledger.record_booking(booking("Q1-A"), recorded_by="clerk")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    with pytest.raises(PeriodClosed) as e:
        books.ledger.record_booking(booking("Q1-B"), recorded_by="clerk")
    assert "2025 Q1 is closed (closed by head)" in str(e.value) and e.value.field == "payment_date"
    books.ledger.record_booking(booking("Q2-A", **MAY), recorded_by="clerk")  # Q2 is open
    # The same key and content again is still an idempotent repeat, not a new booking.
    assert books.ledger.record_booking(booking("Q1-A"), recorded_by="clerk").created is False


def test_quarters_close_in_order_and_once(books):
    with pytest.raises(StateRefused):
        books.ledger.close_period(year=2025, quarter=2, closed_by="head")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    with pytest.raises(AlreadyClosed):
        books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    books.ledger.close_period(year=2025, quarter=0, closed_by="head")  # the whole year
    with pytest.raises(PeriodClosed):
        books.ledger.record_booking(booking("Q4", payment_date=date(2025, 12, 1)), recorded_by="clerk")
    assert [(y, q) for y, q, _ in books.ledger.calendar().closed()] == [(2025, 0), (2025, 1)]


def test_a_reversal_from_a_closed_period_lands_in_the_open_one(books):
    books.ledger.record_booking(booking("Q1-A", amount_cents=40_000), recorded_by="clerk")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    counter = books.ledger.reverse_booking(
        "Q1-A", reason="Doppelzahlung", reversed_by="clerk", on=date(2025, 5, 2)
    )
    assert (counter.fiscal_year, counter.quarter, counter.payment_date) == (2025, 2, date(2025, 5, 2))
    assert counter.reverses_key == "Q1-A"
    catch_up(books.ledger, books.split_view)
    q1 = split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 1)
    q2 = split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 2)
    assert [s.net_cents for s in q1] == [40_000]  # the closed quarter's figures stay as reported
    assert [s.net_cents for s in q2] == [-40_000]  # the correction shows in the open one


def _net(books, quarter: int) -> dict[str, int]:
    catch_up(books.ledger, books.split_view)
    lines = split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, quarter)
    return {s.category: s.net_cents for s in lines}


def test_an_approval_after_closing_counts_in_the_open_period(books):
    books.ledger.record_booking(booking("BIG", amount_cents=5_000_000), recorded_by="clerk")
    books.ledger.record_booking(booking("BIG-2", amount_cents=5_000_000), recorded_by="clerk")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    approved = books.ledger.approve_booking("BIG", approved_by="approver", on=date(2025, 5, 2))
    assert (approved.fiscal_year, approved.quarter, approved.fiscal_rule) == (2025, 2, "after_closing")
    assert _net(books, 1) == {} and _net(books, 2) == {"kdu": 5_000_000}
    # The approval day's period must be open too.
    with pytest.raises(PeriodClosed):
        books.ledger.approve_booking("BIG-2", approved_by="approver", on=date(2025, 3, 30))
    # Withdrawing an unapproved one is allowed: neither it nor its counter-booking ever counts.
    counter = books.ledger.reverse_booking(
        "BIG-2", reason="zu spät", reversed_by="clerk", on=date(2025, 5, 2)
    )
    assert (counter.fiscal_year, counter.quarter, counter.state) == (2025, 1, "withdrawal")


def test_a_pending_reversal_can_still_be_approved_after_closing(books):
    """Reversed while Q1 was open, the counter-booking awaited approval when Q1 closed."""
    books.ledger.record_booking(booking("BIG", amount_cents=5_000_000), recorded_by="mueller")
    books.ledger.approve_booking("BIG", approved_by="schmidt")
    books.ledger.reverse_booking("BIG", reason="doppelt", reversed_by="mueller", on=date(2025, 3, 20))
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    assert _net(books, 1) == {"kdu": 5_000_000}  # the reversal awaits approval: the original counts
    books.ledger.approve_booking("BIG/storno", approved_by="schmidt", on=date(2025, 5, 2))
    assert _net(books, 1) == {"kdu": 5_000_000}  # as reported when Q1 closed
    assert _net(books, 2) == {"kdu": -5_000_000}  # the correction in the open period


def test_run_off_into_a_closed_year_falls_back_to_the_cash_rule(books):
    books.ledger.close_period(year=2024, quarter=0, closed_by="head")
    b = books.ledger.record_booking(
        booking(
            "RUNOFF",
            payment_date=date(2025, 1, 10),
            service_from=date(2024, 12, 1),
            service_to=date(2024, 12, 31),
        ),
        recorded_by="clerk",
    ).booking
    assert (b.fiscal_year, b.quarter, b.fiscal_rule) == (2025, 1, "cash")
    open_year = books.ledger.record_booking(
        booking(
            "RUNOFF-2025",
            payment_date=date(2026, 1, 10),
            service_from=date(2025, 12, 1),
            service_to=date(2025, 12, 31),
        ),
        recorded_by="clerk",
    ).booking
    assert (open_year.fiscal_year, open_year.quarter, open_year.fiscal_rule) == (2025, 4, "runoff")


def test_an_import_with_a_row_in_a_closed_period_writes_nothing(books):
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    position = books.ledger.max_notification_id()
    with pytest.raises(ImportRefused) as e:
        books.ledger.import_bookings([booking("OK", **MAY), booking("LATE")], recorded_by="clerk")
    assert [c.index for c in e.value.conflicts] == [1]
    assert books.ledger.max_notification_id() == position


def test_cli_close_and_import(store, tmp_path, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    run = CliRunner()
    assert run.invoke(main, ["close", "--year", "2025", "--quarter", "1", "--user", "head"]).exit_code == 0
    listed = run.invoke(main, ["periods"])
    assert "2025 Q1: closed by head" in listed.output
    path = tmp_path / "run.csv"
    path.write_text("\n".join([CSV_HEADER, csv_row("R-1"), csv_row("R-2")]) + "\n", encoding="utf-8")
    result = run.invoke(main, ["import", "payments", str(path)])
    assert result.exit_code == 1
    assert f"{path}:line 2: payment_date: booking R-1: fiscal period 2025 Q1 is closed" in result.stderr
    assert "line 3" in result.stderr and "nothing was imported" in result.stderr
    again = run.invoke(main, ["close", "--year", "2025", "--quarter", "1"])
    assert again.exit_code == 1 and "already closed" in again.stderr


def test_a_period_closed_while_a_command_runs_is_still_respected(books, monkeypatch):
    """The recorder checks the calendar version the command saw under its write lock."""
    from domain.booking import Booking
    from ledger.recorders import CalendarChanged

    ledger = books.ledger
    stale, seen = ledger._calendar_seen()  # the command reads the calendar: nothing closed yet
    ledger.close_period(year=2025, quarter=1, closed_by="head")  # meanwhile, someone closes Q1
    late = Booking.record(
        booking("RACE"), recorded_by="clerk", catalogue=ledger.catalogue, rates=ledger.rates, calendar=stale
    )
    with pytest.raises(CalendarChanged):
        ledger.save(late, calendar_version=seen)
    assert ledger._find("RACE") is None

    # Through the service: the first look is stale, the retry sees the closing and refuses.
    real = ledger._calendar_seen
    looks = iter([(stale, seen)])
    monkeypatch.setattr(ledger, "_calendar_seen", lambda: next(looks, None) or real())
    with pytest.raises(PeriodClosed):
        ledger.record_booking(booking("RACE"), recorded_by="clerk")
    assert ledger._find("RACE") is None


def test_a_closing_by_another_process_reaches_a_ledger_that_kept_the_calendar(settings):
    """A ledger keeps the calendar between commands; a closing elsewhere makes its next save fail on
    the version, and the command decides again against the new calendar."""
    from domain.periods import PeriodClosed
    from ledger.bootstrap import open_books

    with open_books(settings) as here, open_books(settings) as elsewhere:
        here.ledger.record_booking(booking("KEPT-1"), recorded_by="clerk")  # reads and keeps the calendar
        elsewhere.ledger.close_period(year=2025, quarter=1, closed_by="head")
        with pytest.raises(PeriodClosed):
            here.ledger.record_booking(booking("KEPT-2"), recorded_by="clerk")
        assert here.ledger._find("KEPT-2") is None
