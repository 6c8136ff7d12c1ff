"""A streamed payment run is checked before the event table is locked (ledger/bulk_import.py).

While the rows are read and checked, others keep posting; what changes meanwhile (a period
closed, a key of the run stored by someone else) is judged again under the lock, so the outcome
is the one a run holding the lock throughout would have had. The generators below act from inside
the run: code after a generator's last yield runs when the import asks for the next row, that is
after every row was checked and before the lock is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest

from domain.booking import Booking, BookingContent, recording_terms
from domain.fiscal import FiscalRule
from ledger import budget_commands as bc
from ledger.application import ImportRefused
from ledger.audit import verify_log
from ledger.bootstrap import Books, open_books
from ledger.bulk_import import DrawsOnCommitment
from ledger.settings import Settings
from tests.factories import booking


@pytest.fixture
def other(settings: Settings) -> Iterator[Books]:
    """A second process's view of the same store: its own connections."""
    with open_books(settings) as b:
        yield b


def run_then(rows: list[BookingContent], after: Callable[[], None], at: int | None = None) -> Iterator:
    """The rows, with `after()` run once `at` rows were taken (default: all of them)."""
    for n, c in enumerate(rows):
        if n == at:
            after()
        yield c
    if at is None:
        after()


def test_others_post_while_a_run_is_checked_and_both_are_stored(books, other, monkeypatch):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 10)  # the run is being staged when the other posts
    rows = [booking(f"R-{i}") for i in range(40)]
    posted = []

    def post_elsewhere() -> None:
        posted.append(other.ledger.record_booking(booking("ELSEWHERE"), recorded_by="other"))

    result = books.ledger.import_stream(run_then(rows, post_elsewhere, at=25), recorded_by="clerk")

    assert (result.created, result.unchanged) == (40, 0)
    assert posted and books.ledger.get_booking("ELSEWHERE").version == 1
    # The other booking came first in the log: it committed while the run was being checked.
    assert books.ledger.max_notification_id() == result.last_notification_id == 41
    verdict = verify_log(books.ledger)
    assert verdict.intact and verdict.count == 41


@pytest.mark.parametrize("store", ["postgres"], indirect=True)  # SQLite checks before any write
def test_the_event_table_is_not_locked_while_rows_are_checked(books, other, monkeypatch):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 10)
    rec = other.ledger.recorder
    table = f'"{rec.datastore.schema}"."{rec.events_table_name}"'
    probes = []

    def probe_lock() -> None:
        with rec.datastore.get_connection() as conn, conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '2s'")
            conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # fails if the run holds it
            probes.append(True)

    result = books.ledger.import_stream(
        run_then([booking(f"L-{i}") for i in range(30)], probe_lock, at=25), recorded_by="clerk"
    )
    assert probes == [True] and result.created == 30
    assert result.lock_held_ms is not None and 0 <= result.lock_held_ms < 60_000


def test_a_period_closed_while_the_run_is_checked_refuses_its_rows(books, other):
    rows = [booking(f"C-{i}") for i in range(5)]  # paid in February 2025 for March: 2025 Q1
    closed_at = []

    def close_q1() -> None:
        other.ledger.close_period(year=2025, quarter=1, closed_by="head")
        closed_at.append(other.ledger.max_notification_id())

    with pytest.raises(ImportRefused) as e:
        books.ledger.import_stream(run_then(rows, close_q1), recorded_by="clerk")

    assert [c.index for c in e.value.conflicts] == [0, 1, 2, 3, 4]
    assert "closed" in str(e.value.conflicts[0].error)
    assert books.ledger._find("C-0") is None
    assert books.ledger.max_notification_id() == closed_at[0]  # nothing of the run
    assert verify_log(books.ledger).intact


def test_a_year_closed_while_the_run_is_checked_moves_run_off_payments_to_cash(books, other):
    # Paid in January 2026 for December 2025: the run-off rule counts it in 2025 while 2025 is open.
    late = booking(
        "RUNOFF-1",
        payment_date=date(2026, 1, 9),
        service_from=date(2025, 12, 1),
        service_to=date(2025, 12, 31),
        category="buergergeld",
    )
    ledger = books.ledger
    first = recording_terms(late, recorded_by="clerk", catalogue=ledger.catalogue, rates=ledger.base_rates)
    assert (first[0].year, first[0].rule) == (2025, FiscalRule.RUNOFF)
    rows = [
        late,
        booking(
            "RUNOFF-2",
            payment_date=date(2026, 2, 2),
            service_from=date(2026, 2, 1),
            service_to=date(2026, 2, 28),
            category="buergergeld",
        ),
    ]

    def close_2025() -> None:
        other.ledger.close_period(year=2025, quarter=0, closed_by="head")  # the whole year

    result = ledger.import_stream(run_then(rows, close_2025), recorded_by="clerk")

    assert result.created == 2
    ledger._calendar_fresh()
    stored = ledger.get_booking("RUNOFF-1")
    assert (stored.fiscal_year, stored.quarter, stored.fiscal_rule) == (2026, 1, str(FiscalRule.CASH))
    assert verify_log(ledger).intact


def test_a_key_stored_meanwhile_with_the_same_content_is_unchanged(books, other, monkeypatch):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)  # the key's chunk is looked up before it is stored
    rows = [booking(f"K-{i}") for i in range(6)]

    def store_k3() -> None:
        other.ledger.record_booking(rows[3], recorded_by="other")

    result = books.ledger.import_stream(run_then(rows, store_k3), recorded_by="clerk")

    assert (result.created, result.unchanged) == (5, 1)
    assert books.ledger.get_booking("K-3").recorded_by == "other"
    verdict = verify_log(books.ledger)
    assert verdict.intact and verdict.count == 6


def test_a_key_stored_meanwhile_with_other_content_refuses_the_run(books, other, monkeypatch):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)  # the key's chunk is looked up before it is stored
    rows = [booking(f"D-{i}") for i in range(6)]

    def store_other_d4() -> None:
        other.ledger.record_booking(booking("D-4", amount_cents=1), recorded_by="other")

    with pytest.raises(ImportRefused) as e:
        books.ledger.import_stream(run_then(rows, store_other_d4), recorded_by="clerk")

    assert [c.index for c in e.value.conflicts] == [4]
    assert books.ledger._find("D-0") is None
    assert books.ledger.max_notification_id() == 1  # only the other's booking
    assert verify_log(books.ledger).intact


def test_many_keys_stored_meanwhile_are_judged_in_batches(books, other, monkeypatch):
    """Keys stored by others meanwhile are looked up a batch at a time under the lock (not all
    their states at once): a run imported twice at the same time stays within bounded memory."""
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 3)
    monkeypatch.setattr(bulk, "JUDGE_BATCH_ROWS", 2)
    rows = [booking(f"B-{i}") for i in range(7)]

    def store_most() -> None:
        other.ledger.import_bookings(rows[:5] + [booking("B-6", amount_cents=2)], recorded_by="other")

    with pytest.raises(ImportRefused) as e:
        books.ledger.import_stream(run_then(rows, store_most), recorded_by="clerk")
    assert [c.index for c in e.value.conflicts] == [6]  # B-6 with other content; B-0..B-4 the same
    assert books.ledger._find("B-5") is None
    assert books.ledger.max_notification_id() == 6

    rows[6] = booking("B-6", amount_cents=2)
    result = books.ledger.import_stream(iter(rows), recorded_by="clerk")
    assert (result.created, result.unchanged) == (1, 6)
    assert verify_log(books.ledger).intact


def test_a_key_stored_meanwhile_in_a_period_closed_meanwhile_is_unchanged(books, other, monkeypatch):
    """Someone stores one of the run's keys with the same content, then closes its quarter, both
    while the run is checked: as for a run that held the lock throughout, the row is unchanged
    (not refused for its closed period) and the others are stored."""
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)  # the rows are looked up before the other acts
    q1 = booking("TK-1")  # 2025 Q1
    q2 = booking(
        "TK-2", payment_date=date(2025, 4, 10), service_from=date(2025, 4, 1), service_to=date(2025, 4, 30)
    )

    def store_then_close() -> None:
        other.ledger.record_booking(q1, recorded_by="other")
        other.ledger.close_period(year=2025, quarter=1, closed_by="head")

    result = books.ledger.import_stream(run_then([q1, q2], store_then_close), recorded_by="clerk")
    assert (result.created, result.unchanged) == (1, 1)
    assert books.ledger.get_booking("TK-1").recorded_by == "other"
    assert verify_log(books.ledger).intact


def test_a_commitment_made_while_the_run_is_checked_stops_the_run(books, other):
    """A payment under a contract without a commitment when its row was checked: if a commitment
    for the contract is made before the run is stored, the payment would have to draw on it, which
    this path does not write. The run stops and stores nothing (import_bookings carries it)."""
    bc.allocate(
        other, year=2025, title="egt", amount_cents=100_000_000, reference="ZS", reason="Z", by="head"
    )
    pay = booking(
        "CM-1",
        amount_cents=10_000,
        category="egt.arbeitsgelegenheiten",
        payment_date=date(2025, 3, 10),
        service_from=date(2025, 3, 1),
        service_to=date(2025, 3, 28),
        contract_ref="AGH-2025-07",
        document_ref="RE-1",
    )

    def make_commitment() -> None:
        bc.make_commitment(
            other,
            contract_ref="AGH-2025-07",
            instrument="egt.arbeitsgelegenheiten",
            provider="Träger Nord",
            slices_cents={2025: 5_000},
            reason="Vertrag",
            by="head",
        )

    with pytest.raises(DrawsOnCommitment):
        books.ledger.import_stream(run_then([booking("CM-0"), pay], make_commitment), recorded_by="clerk")
    assert books.ledger._find("CM-0") is None and books.ledger._find("CM-1") is None
    assert books.ledger.get_commitment("AGH-2025-07").remaining_cents(2025) == 5_000
    with pytest.raises(ImportRefused):  # the library's path draws on it: 10,000 exceed the 5,000
        books.ledger.import_bookings([booking("CM-0"), pay], recorded_by="clerk")


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_server_defaulting_to_repeatable_read_keeps_the_seal_chain(settings, monkeypatch):
    """The run's transaction begins before the lock; its reads under the lock (the last seal, the
    calendar, keys stored meanwhile) must see what others committed in between, whatever the
    server's default isolation."""
    monkeypatch.setenv("PGOPTIONS", "-c default_transaction_isolation=repeatable\\ read")
    with open_books(settings) as books, open_books(settings) as other:
        books.ledger.record_booking(booking("FIRST"), recorded_by="clerk")

        def post_elsewhere() -> None:
            other.ledger.record_booking(booking("ELSEWHERE"), recorded_by="other")

        rows = [booking(f"RR-{i}") for i in range(3)]
        books.ledger.import_stream(run_then(rows, post_elsewhere), recorded_by="clerk")
        verdict = verify_log(books.ledger)
        assert verdict.intact and verdict.count == 5, str(verdict)


def test_a_store_with_compression_reads_back_what_a_run_stored(settings, monkeypatch):
    """COMPRESSOR_TOPIC (read by the library from the environment) compresses every stored state:
    the run's events are stored as the library's mapper would store them, and sealed as stored."""
    monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")
    with open_books(settings) as books:
        assert books.ledger.mapper.compressor is not None
        books.ledger.import_bookings([booking(f"Z-{i}") for i in range(3)], recorded_by="clerk")
        books.ledger.import_stream(iter([booking(f"Z-{i}") for i in range(4)]), recorded_by="clerk")
        assert [books.ledger.get_booking(f"Z-{i}").version for i in range(4)] == [1, 1, 1, 1]
        assert books.ledger.get_booking("Z-3").recorded_by == "clerk"
        verdict = verify_log(books.ledger)
        assert verdict.intact and verdict.count == 4


def test_the_runs_events_carry_the_moment_they_were_stored(books):
    rows = [booking(f"T-{i}") for i in range(3)]
    checked_at: list[datetime] = []

    result = books.ledger.import_stream(
        run_then(rows, lambda: checked_at.append(datetime.now(tz=UTC))), recorded_by="clerk"
    )

    assert result.created == 3
    for c in rows:
        (event,) = books.ledger.booking_history(c.key)
        # After every row was checked: an as-of replay of that moment does not show the run.
        assert event.timestamp >= checked_at[0]
    assert verify_log(books.ledger).intact


@pytest.mark.parametrize("rows", [8, 11])  # a multiple of the copy chunk, and not
def test_a_run_larger_than_a_copy_chunk_is_stored_and_sealed_in_order(books, monkeypatch, rows):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "COPY_BLOCK_ROWS", 2)
    monkeypatch.setattr(bulk, "SEAL_CHUNK_ROWS", 4)
    books.ledger.record_booking(booking("FIRST"), recorded_by="clerk")

    result = books.ledger.import_stream(iter([booking(f"S-{i}") for i in range(rows)]), recorded_by="clerk")

    assert (result.created, result.last_notification_id) == (rows, rows + 1)
    verdict = verify_log(books.ledger)
    assert verdict.intact and verdict.count == rows + 1
    assert [e.key for e in books.ledger.recorded(Booking.Recorded)] == ["FIRST"] + [
        f"S-{i}" for i in range(rows)
    ]
