"""A year's federal share is rounded once, however its bookings fall into quarters: the split, the
KoA-VV report (its KdU line and quarter reports), the Verwaltungsbudget's charge and the
Belegliste all give the figures of domain.md for a year booked in four uneven quarters."""

from __future__ import annotations

from datetime import date

from domain.money import share_cents
from exports import koavv_belege
from ledger import budget_commands as bc
from projections.split_projection import catch_up
from projections.split_queries import booking_shares, split_lines
from tests.factories import booking
from tests.test_koavv_belege import _report as belege_report

# 1.000.000,00 € of Verwaltungskosten and 100.000,00 € of KdU, in four quarters each; rounded
# quarter by quarter, their shares came to 873.999,99 € and 71.900,01 € / 72.100,01 €.
VWK_CENTS = [25_000_004, 25_000_004, 25_000_004, 24_999_988]
KDU_CENTS = [2_500_005, 2_500_005, 2_500_005, 2_499_985]


def _book_the_year(books) -> None:
    run = []
    for q in range(1, 5):
        day = date(2024, 3 * q - 1, 10)  # the quarter's middle month
        for category, cents in (("vwk.personal", VWK_CENTS[q - 1]), ("kdu", KDU_CENTS[q - 1])):
            run.append(
                booking(
                    f"R-{category}-{q}",
                    category=category,
                    amount_cents=cents,
                    payment_date=day,
                    service_from=day.replace(day=1),
                    service_to=day.replace(day=28),
                )
            )
    books.ledger.import_bookings(run, recorded_by="clerk")
    for b in run:  # above the approval threshold: a second person approves
        books.ledger.approve_booking(b.key, approved_by="approver")
    catch_up(books.ledger, books.split_view)


def _report(books, quarter: int | None):
    return belege_report(books, quarter, year=2024)


def test_a_year_in_four_quarters_gives_the_figures_of_domain_md(books):
    _book_the_year(books)
    year = _report(books, None)
    by_code = {c.category: c for c in year.categories}
    assert (by_code["vwk.personal"].federal_cents, by_code["vwk.personal"].municipal_cents) == (
        87_400_000,
        12_600_000,
    )
    assert (year.kdu.federal_provisional_cents, year.kdu.federal_final_cents) == (7_190_000, 7_210_000)
    assert year.kdu.difference_cents == 20_000
    assert by_code["kdu"].federal_cents == year.kdu.federal_final_cents  # the Übersicht's figure

    # A quarter report is cumulative for the year: Q3's is the year's share of Q1 to Q3, rounded once.
    q3 = {c.category: c for c in _report(books, 3).categories}
    assert q3["vwk.personal"].federal_cents == share_cents(
        sum(VWK_CENTS[:3]), by_code["vwk.personal"].federal_rate
    )
    assert q3["vwk.personal"].federal_cents == 65_550_010  # rounded per quarter: 65.550.009

    # The bookings behind a quarter's figure add up to it, on the live view and in the Belegliste.
    for q in range(1, 5):
        (line,) = [
            s
            for s in split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2024, q)
            if s.category == "vwk.personal"
        ]
        shares = booking_shares(
            books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2024, q, "vwk.personal"
        )
        assert sum(s.federal_cents for s in shares) == line.federal_cents
    rows = list(year.belege)
    assert sum(r.federal_cents for r in rows if r.category == "vwk.personal") == 87_400_000
    assert sum(r.federal_cents for r in rows if r.category == "kdu") == 7_210_000
    assert koavv_belege.sha256(year.belege) == koavv_belege.sha256(rows)  # COPY path on PostgreSQL


def test_the_verwaltungsbudget_is_charged_with_the_year_s_share_rounded_once(books):
    bc.allocate(
        books,
        year=2024,
        title="vwk",
        amount_cents=90_000_000,
        reference="ZS-2024-1",
        reason="Zuteilung",
        by="head",
    )
    _book_the_year(books)
    assert bc.status(books, 2024).title("vwk").federal_share_cents == 87_400_000


def test_a_year_whose_net_crosses_zero_between_two_halves_still_lists_its_bookings(books):
    # KdU BW 2025 at 72.5 %: Q1 +100,20 € (72,645 -> 72,65 €), Q2 two receipts of 80,00 and 120,00 €:
    # the year stands at -99,80 € (-72,355 -> -72,36 €), so Q2's share is -145,01 € where its
    # bookings' exact shares are whole (-58,00 and -87,00). The list used to stop on an assertion.
    run = [
        booking("X-Q1", amount_cents=10_020, payment_date=date(2025, 2, 10)),
        booking("X-Q2a", kind="receipt", amount_cents=8_000, payment_date=date(2025, 5, 10)),
        booking("X-Q2b", kind="receipt", amount_cents=12_000, payment_date=date(2025, 5, 10)),
    ]
    books.ledger.import_bookings(run, recorded_by="clerk")
    catch_up(books.ledger, books.split_view)
    report = belege_report(books, None)
    (kdu,) = [c for c in report.categories if c.category == "kdu"]
    assert (kdu.net_cents, kdu.federal_cents) == (-9_980, -7_236)
    rows = {r.booking_key: r.federal_cents for r in report.belege}
    assert rows == {"X-Q1": 7_265, "X-Q2a": -5_800, "X-Q2b": -8_701}
    assert koavv_belege.sha256(report.belege) == koavv_belege.sha256(list(report.belege))
