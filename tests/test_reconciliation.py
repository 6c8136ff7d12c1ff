"""Accrual view and the reconciliation (Überleitung) between payment date, fiscal year and service
period, on both stores, to the cent."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.accrual import accrual_by_year
from ledger.cli import main
from projections.reconciliation import reconcile
from projections.split_projection import catch_up
from tests.factories import booking


@settings(max_examples=300, deadline=None)
@example(1_358_027, date(2024, 12, 31), 21)  # 1 of 22 days: exactly 61.728,5 cents, rounded up
@example(-1_358_027, date(2024, 12, 31), 21)
@given(
    st.integers(-(10**9), 10**9),
    st.dates(date(2015, 1, 1), date(2030, 12, 31)),
    st.integers(0, 3 * 366),
)
def test_accrual_parts_add_up_and_follow_the_days(net, start, length):
    end = date.fromordinal(start.toordinal() + length)
    parts = accrual_by_year(net, start, end)
    assert sum(parts.values()) == net
    assert list(parts) == list(range(start.year, end.year + 1))
    total_days = length + 1
    for y, cents in list(parts.items())[:-1]:
        days = (min(end, date(y, 12, 31)) - max(start, date(y, 1, 1))).days + 1
        # half up, halves away from zero (as money.share_cents rounds a share)
        off = cents - Fraction(net * days, total_days)
        assert (
            -Fraction(1, 2) < off <= Fraction(1, 2) if net >= 0 else -Fraction(1, 2) <= off < Fraction(1, 2)
        )


def test_the_moves_explain_every_difference(books):
    ledger = books.ledger
    ledger.import_bookings(
        [
            # January paid in December of the year before: payment 2024, fiscal and service 2025.
            booking(
                "DEC-JAN",
                category="buergergeld",
                amount_cents=56_300,
                payment_date=date(2024, 12, 30),
                service_from=date(2025, 1, 1),
                service_to=date(2025, 1, 31),
            ),
            # Run-off: paid in January 2026 for December 2025: payment 2026, fiscal and service 2025.
            booking(
                "RUNOFF",
                category="egt.aktivierung",
                amount_cents=80_000,
                case_ref="",
                payment_date=date(2026, 1, 12),
                service_from=date(2025, 12, 1),
                service_to=date(2025, 12, 31),
            ),
            # A service period across the turn of the year: 31 days in 2025, 31 in 2026.
            booking(
                "SPAN",
                category="kdu_sonst",
                amount_cents=62_001,
                payment_date=date(2025, 12, 10),
                service_from=date(2025, 12, 1),
                service_to=date(2026, 1, 31),
            ),
            # Paid late for a service of the year before (outside the run-off): fiscal 2025, service 2024.
            booking(
                "LATE",
                category="kdu",
                amount_cents=40_000,
                payment_date=date(2025, 3, 3),
                service_from=date(2024, 11, 1),
                service_to=date(2024, 11, 30),
            ),
            booking("PLAIN", amount_cents=10_000),
        ],
        recorded_by="clerk",
    )
    catch_up(ledger, books.split_view)
    r = reconcile(books.split_view, 2025)
    assert r.payment_cents == 62_001 + 40_000 + 10_000
    assert r.cash_cents == 56_300 + 80_000 + 62_001 + 40_000 + 10_000
    assert r.accrual_cents == 56_300 + 80_000 + 31_001 + 10_000  # SPAN: half (rounded up) in 2025
    moves = {(m.booking_key, m.from_view): m.cents for m in r.moves}
    assert moves == {
        ("DEC-JAN", "payment"): 56_300,
        ("RUNOFF", "payment"): 80_000,
        ("SPAN", "cash"): -31_000,
        ("LATE", "cash"): -40_000,
    }
    r.check()
    r2024 = reconcile(books.split_view, 2024)
    assert (r2024.payment_cents, r2024.cash_cents, r2024.accrual_cents) == (56_300, 0, 40_000)


def test_cli_reconcile(store, settings, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    from ledger.bootstrap import open_books

    with open_books(settings) as b:
        b.ledger.record_booking(
            booking(
                "DEC-JAN",
                category="buergergeld",
                amount_cents=56_300,
                payment_date=date(2024, 12, 30),
                service_from=date(2025, 1, 1),
                service_to=date(2025, 1, 31),
            ),
            recorded_by="clerk",
        )
    out = CliRunner().invoke(main, ["reconcile", "--year", "2025"])
    assert out.exit_code == 0, out.output
    assert (
        "by payment date 0,00; by fiscal year (Kameralistik) 563,00; by service period (Doppik) 563,00"
        in out.output
    )
    assert "Dezember für Januar" in out.output and "1 bookings, 563,00" in out.output
