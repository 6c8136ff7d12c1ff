"""The retention story, through `koa` on both stores: the year 2024 is booked and closed, the council
adopts its accounts, the clerk records that (with a wrong date, then corrected), and years later the
archive asks what it may destroy; the auditor sees what the register said before the correction.
The ledger itself keeps every event throughout."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from tests.factories import booking


def row(output: str, year: int) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{year} "))


def test_the_archive_learns_when_the_vouchers_and_the_books_of_2024_may_go(koa, books):
    # Frau Müller books the year 2024 and the first months of 2025; the head of finance closes 2024.
    books.ledger.import_bookings(
        [booking(f"LR-2024-{m:02d}", payment_date=date(2024, m, 15)) for m in range(1, 13)]
        + [booking("LR-2025-01", payment_date=date(2025, 1, 25))],
        recorded_by="mueller",
    )
    for quarter in (1, 2, 3, 4):
        assert koa("close", "--year", 2024, "--quarter", quarter, "--user", "leitung").exit_code == 0

    # Before the council has adopted the accounts, everything is kept.
    r = koa("retention", "--on", "2026-01-15")
    assert row(r.stdout, 2024).endswith("accounts not adopted: keep everything")

    # The council adopts the accounts of 2024 on 20 November 2025 (resolution GR-2025-117); Frau
    # Müller records it, and types the 2nd instead of the 20th.
    r = koa(
        *("retention", "adopt", "--year", 2024, "--date", "02.11.2025"),
        *("--resolution", "GR-2025-117", "--user", "mueller"),
    )
    assert r.exit_code == 0, r.output
    time.sleep(0.01)
    before_the_correction = datetime.now(UTC).isoformat()
    time.sleep(0.01)

    # Entering the right date plainly is refused: the year is on record with another date.
    right = ("retention", "adopt", "--year", 2024, "--date", "20.11.2025", "--resolution", "GR-2025-117")
    r = koa(*right, "--user", "weber")
    assert r.exit_code == 1 and r.stderr.startswith("koa: --date: the accounts of 2024 are on record")
    # Herr Weber corrects it, naming the adoption on record and why.
    r = koa(
        *right, "--corrects", "GR-2025-117", "--reason", "Datum laut Niederschrift 20.11.", "--user", "weber"
    )
    assert r.exit_code == 0, r.output
    assert "vouchers kept until 2031-12-31 (6 years), books until 2035-12-31 (10 years)" in r.stdout

    # On 1 January 2032 the archive may destroy the vouchers of 2024, not yet the books.
    r = koa("retention", "--on", "2032-01-01")
    assert row(r.stdout, 2024).split()[:3] == ["2024", "2025-11-20", "GR-2025-117"]
    assert row(r.stdout, 2024).endswith("vouchers may be destroyed")
    assert row(r.stdout, 2025).endswith("accounts not adopted: keep everything")
    assert "corrected (Datum laut Niederschrift 20.11.) by weber" in r.stdout
    # On 1 January 2036 the books may go as well.
    assert row(koa("retention", "--on", "2036-01-01").stdout, 2024).endswith(
        "books and vouchers may be destroyed"
    )

    # The auditor asks what the register said before the correction: the date as first recorded.
    r = koa("retention", "--as-of", before_the_correction, "--on", "2032-01-01")
    assert r.exit_code == 0, r.output
    assert row(r.stdout, 2024).split()[:2] == ["2024", "2025-11-02"]
    assert "corrected" not in r.stdout
    replay = koa("audit", "replay", "--as-of", before_the_correction)
    assert "accounts of 2024 adopted on 2025-11-02 by resolution GR-2025-117" in replay.stdout

    # Nothing was deleted or changed: the register writes nothing, the log verifies, and the first
    # recording is still in it beside its correction.
    events = books.ledger.max_notification_id()
    assert "The ledger deletes nothing" in koa("retention").stdout
    assert books.ledger.max_notification_id() == events
    assert koa("audit", "verify").exit_code == 0
    first, correction = books.ledger.events.get(books.ledger.adoption_as_of(2024).id)
    assert (first.adopted_on.isoformat(), correction.corrects_adopted_on.isoformat()) == (
        "2025-11-02",
        "2025-11-02",
    )
