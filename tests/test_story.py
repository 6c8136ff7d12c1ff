"""One quarter told end to end, on SQLite and PostgreSQL: a payment run, single bookings, a four-eyes
approval, a reversal, and the split that comes out of it, checked to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.booking import Kind
from domain.errors import FourEyesViolation, ReversalRefused
from ledger.payment_run import parse_payment_run
from projections.split_projection import catch_up, rebuild
from projections.split_queries import booking_shares, split_lines
from tests.factories import CSV_HEADER, booking, csv_row


def test_a_quarter_from_payment_run_to_split(books):
    ledger, view = books.ledger, books.split_view

    # The March run is paid at the end of February: 3 households, KdU and Bürgergeld.
    text = "\n".join(
        [CSV_HEADER]
        + [csv_row(f"R-03-{n}-KDU", "650,00", "kdu", case=f"08221BG000000{n}") for n in (1, 2, 3)]
        + [csv_row(f"R-03-{n}-BG", "563,00", "buergergeld", case=f"08221BG000000{n}") for n in (1, 2, 3)]
    )
    run = parse_payment_run(text, ledger.catalogue)
    assert run.errors == []
    result = ledger.import_bookings(run.contents, recorded_by="clerk")
    assert (result.created, result.unchanged) == (6, 0)

    # A Nebenkostenguthaben comes back (a receipt reduces KdU), and a measure invoice above the
    # approval threshold waits for a second person before it counts.
    ledger.record_booking(
        booking("NK-1", kind=Kind.RECEIPT, amount_cents=12_000, payment_date=date(2025, 3, 10)),
        recorded_by="clerk",
    )
    ledger.record_booking(
        booking(
            "MN-1",
            category="egt.aktivierung",
            amount_cents=2_500_000,
            case_ref="",
            contract_ref="V-2025-001",
            payment_date=date(2025, 3, 20),
        ),
        recorded_by="clerk",
    )
    # Administrative costs at 87.4 %.
    ledger.record_booking(
        booking(
            "VK-1",
            category="vwk.sachkosten",
            amount_cents=1_000_000,
            case_ref="",
            payment_date=date(2025, 3, 28),
        ),
        recorded_by="clerk",
    )
    catch_up(ledger, view)
    before = {s.category: s for s in split_lines(view, ledger.catalogue, ledger.rates, "BW", 2025, 1)}
    assert "egt.aktivierung" not in before  # awaiting approval: does not count yet

    with pytest.raises(FourEyesViolation):
        ledger.approve_booking("MN-1", approved_by="clerk")
    ledger.approve_booking("MN-1", approved_by="approver")

    # One KdU payment was wrong: reversed, with a reason; the original stays visible.
    counter = ledger.reverse_booking("R-03-2-KDU", reason="Miete direkt an Vermieter", reversed_by="clerk")
    assert counter.key == "R-03-2-KDU/storno"
    with pytest.raises(ReversalRefused):
        ledger.reverse_booking("R-03-2-KDU", reason="nochmal", reversed_by="clerk")

    catch_up(ledger, view)
    lines = {s.category: s for s in split_lines(view, ledger.catalogue, ledger.rates, "BW", 2025, 1)}
    assert set(lines) == {"kdu", "buergergeld", "egt.aktivierung", "vwk.sachkosten"}

    kdu = lines["kdu"]
    # 3 × 650 − 650 (reversed) = 1,300.00 spent; 120.00 back; net 1,180.00 at the 2025 quota 72.5 %.
    assert (kdu.expenditure_cents, kdu.receipts_cents, kdu.net_cents) == (130_000, 12_000, 118_000)
    assert kdu.federal_rate == Decimal("0.725")
    assert (kdu.federal_cents, kdu.municipal_cents) == (85_550, 32_450)
    assert kdu.booking_count == 5  # 3 payments, 1 counter-booking, 1 receipt

    bg = lines["buergergeld"]
    assert (bg.net_cents, bg.federal_cents, bg.municipal_cents) == (168_900, 168_900, 0)
    egt = lines["egt.aktivierung"]
    assert (egt.net_cents, egt.federal_cents) == (2_500_000, 2_500_000)
    vwk = lines["vwk.sachkosten"]
    assert (vwk.federal_cents, vwk.municipal_cents) == (874_000, 126_000)

    # Every figure leads back to its bookings, whose shares add up to it.
    shares = booking_shares(view, ledger.catalogue, ledger.rates, "BW", 2025, 1, "kdu")
    assert [s.row.booking_key for s in shares] == [
        "NK-1",
        "R-03-1-KDU",
        "R-03-2-KDU",
        "R-03-2-KDU/storno",
        "R-03-3-KDU",
    ]
    assert sum(s.federal_cents for s in shares) == kdu.federal_cents
    assert sum(s.municipal_cents for s in shares) == kdu.municipal_cents

    # The history of the reversed booking is complete, and a rebuild gives the same view.
    history = [type(e).__name__ for e in ledger.booking_history("R-03-2-KDU")]
    assert history == ["Recorded", "Reversed"]
    live = view.table_dump()
    rebuild(ledger, view)
    assert view.table_dump() == live
