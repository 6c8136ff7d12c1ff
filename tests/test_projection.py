"""The split view follows the event log exactly once: on both stores, across restarts, with two
runners at once; a rebuild from the events alone gives the same tables as the live view."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from ledger.bootstrap import open_books
from projections import replay
from projections.split_projection import catch_up, open_split_view, rebuild, to_batch
from tests.factories import booking


def _fill(ledger, n: int = 30) -> None:
    ledger.import_bookings([booking(f"P-{i}", amount_cents=1000 + i) for i in range(n)], recorded_by="a")
    ledger.record_booking(booking("BIG", amount_cents=5_000_000, category="vwk.personal"), recorded_by="a")
    ledger.approve_booking("BIG", approved_by="b")
    ledger.reverse_booking("P-3", reason="falsch", reversed_by="a")


def test_a_page_applied_twice_is_refused_and_counts_once(books):
    _fill(books.ledger)
    app, view = books.ledger, books.split_view
    notes = app.recorder.select_notifications(start=None, limit=10)
    batch = to_batch([app.mapper.to_domain_event(n) for n in notes], [n.id for n in notes])
    view.apply_batch(batch, Tracking(app.name, notes[-1].id), start=0)
    before = view.table_dump()
    with pytest.raises(IntegrityError):
        view.apply_batch(batch, Tracking(app.name, notes[-1].id), start=0)
    with pytest.raises(IntegrityError):  # nor an overlapping page from an older start
        view.apply_batch(batch, Tracking(app.name, notes[-1].id + 5), start=3)
    assert view.table_dump() == before  # the whole second transaction was rolled back


def test_catch_up_resumes_after_a_restart(books, settings):
    _fill(books.ledger)
    halfway = books.ledger.max_notification_id() // 2
    first = catch_up(books.ledger, books.split_view, until=halfway, page_size=7)
    assert first.position == halfway
    # A new process: new connections, new view object; it resumes from the stored position.
    with open_books(settings) as again:
        rest = catch_up(again.ledger, again.split_view)
        assert rest.events == again.ledger.max_notification_id() - halfway
        live = again.split_view.table_dump()
        rebuild(again.ledger, again.split_view)
        assert again.split_view.table_dump() == live


def test_two_runners_at_once_apply_every_event_once(books, settings):
    books.ledger.import_bookings([booking(f"Q-{i}") for i in range(3000)], recorded_by="a")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with open_books(settings) as b:
                catch_up(b.ledger, b.split_view, page_size=100)
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    totals = books.split_view.totals(2025)
    assert [(t.category, t.booking_count, t.expenditure_cents) for t in totals] == [
        ("kdu", 3000, 3000 * 50_000)
    ]


def test_the_view_lives_beside_the_events(books):
    """SQLite: same file; PostgreSQL: same database and schema (a view in another place could
    not share a transaction with its tracking position)."""
    view = open_split_view(books.env)
    try:
        assert view.max_tracking_id(books.ledger.name) is None
        _fill(books.ledger, 5)
        catch_up(books.ledger, view)
        assert books.split_view.max_tracking_id(books.ledger.name) == books.ledger.max_notification_id()
    finally:
        view.datastore.close()


def _expected_totals(ledger, keys) -> dict:
    """Totals computed from the aggregates themselves, independently of the projection code."""
    out: dict = defaultdict(lambda: [0, 0, 0])
    for key in keys:
        for k in (key, key + "/storno"):
            b = ledger._find(k)
            if b is None or not b.counts:
                continue
            sign = -1 if b.reverses_key else 1
            t = out[(b.fiscal_year, b.quarter, b.category)]
            t[0 if b.kind == "payment" else 1] += sign * b.amount_cents
            t[2] += 1
    return {k: tuple(v) for k, v in out.items()}


def test_live_view_equals_replay_and_the_aggregates_for_random_histories(books, tmp_path, monkeypatch):
    """Hypothesis drives random histories; the view is caught up at random moments."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    threshold = books.ledger.rates.approval_threshold_cents
    step = st.tuples(
        st.sampled_from(["record", "record", "approve", "approve", "reverse", "catch_up"]),
        st.integers(0, 5),  # which booking
        st.sampled_from([1, 999, threshold, threshold + 1, 2_000_000]),
        st.sampled_from(["kdu", "buergergeld", "vwk.sachkosten", "egt.aktivierung"]),
        st.sampled_from(["payment", "receipt"]),
        st.integers(1, 12),  # month
    )
    run = iter(range(10_000))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(step, max_size=30))
    def history(steps) -> None:
        prefix = f"H{next(run)}-"
        keys: set[str] = set()
        for action, n, amount, category, kind, month in steps:
            key = f"{prefix}{n}"
            b = books.ledger._find(key)
            if action == "record" and b is None:
                books.ledger.record_booking(
                    replace(
                        booking(key, amount_cents=amount, category=category),
                        kind=kind,
                        payment_date=date(2025, month, 10),
                        service_from=date(2025, month, 1),
                        service_to=date(2025, month, 28),
                    ),
                    recorded_by="clerk",
                )
                keys.add(key)
            elif action == "approve" and b is not None and b.state == "awaiting_approval":
                books.ledger.approve_booking(key, approved_by="approver")
            elif action == "reverse" and b is not None and not b.reversal_key:
                books.ledger.reverse_booking(key, reason="Korrektur", reversed_by="clerk")
            elif action == "catch_up":
                catch_up(books.ledger, books.split_view, page_size=3)
        catch_up(books.ledger, books.split_view)
        counted_keys = {
            b.key
            for k in keys
            for b in (books.ledger._find(k), books.ledger._find(k + "/storno"))
            if b is not None and b.counts
        }
        viewed = {r.booking_key for r in books.split_view.bookings(2025) if r.booking_key.startswith(prefix)}
        assert viewed == counted_keys

    history()
    # Across all examples together: the live view equals a replay from the events alone, and each
    # total equals the sum over the aggregates.
    live = books.split_view.table_dump()
    rebuild(books.ledger, books.split_view)
    assert books.split_view.table_dump() == live
    all_keys = {r.booking_key for r in books.split_view.bookings(2025, counted_only=False)}
    expected = _expected_totals(books.ledger, {k for k in all_keys if not k.endswith("/storno")})
    got = {
        (t.fiscal_year, t.quarter, t.category): (
            t.expenditure_cents,
            t.receipts_cents,
            t.booking_count,
        )
        for t in books.split_view.totals(2025)
    }
    assert {k: v for k, v in got.items() if v != (0, 0, 0)} == expected
    # A replay as of now into a fresh store gives the same rows and totals: with the approvals
    # and reversals held back until every booking is in, and with pages of three events and
    # nothing held back (the id index built after the first page, later pages applied whole);
    # each written in this process and by a writer process of its own.
    live_rows, live_totals = (
        books.split_view.bookings(2025, counted_only=False),
        books.split_view.totals(2025),
    )
    for page_size, held_back_max in ((replay.REPLAY_PAGE_SIZE, replay.REPLAY_HELD_BACK_MAX), (3, 0)):
        for in_writer_process in (False, True):
            monkeypatch.setattr(replay, "REPLAY_PAGE_SIZE", page_size)
            monkeypatch.setattr(replay, "REPLAY_HELD_BACK_MAX", held_back_max)
            monkeypatch.setattr(replay, "REPLAY_IN_PROCESS_MAX", 0 if in_writer_process else 10**9)
            r = replay.replay_as_of(books.ledger, datetime.now(UTC), tmp_path)
            try:
                assert r.in_writer_process is in_writer_process
                assert r.view.bookings(2025, counted_only=False) == live_rows
                assert r.view.totals(2025) == live_totals
                assert r.view.max_tracking_id(books.ledger.name) == r.position  # type: ignore[attr-defined]
            finally:
                r.close()


@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_lazy_pages_give_the_same_tables_as_the_mapper(books, page_size):
    """Catch-up decodes Recorded events itself (LazyRecorded); it must equal the library's mapper
    with to_batch, also for text that needs escaping and bookings awaiting approval."""
    _fill(books.ledger)
    books.ledger.record_booking(
        booking("ODD", text='Semi;colon "quoted" \\ back ✓', kind="receipt", category="buergergeld"),
        recorded_by="a",
    )
    books.ledger.record_booking(booking("WAIT", amount_cents=7_000_000), recorded_by="a")  # not approved
    app, view = books.ledger, books.split_view
    notes = app.recorder.select_notifications(start=None, limit=10_000)
    for i in range(0, len(notes), page_size):
        page = notes[i : i + page_size]
        batch = to_batch([app.mapper.to_domain_event(n) for n in page], [n.id for n in page])
        view.apply_batch(batch, Tracking(app.name, page[-1].id), start=notes[i - 1].id if i else 0)
    by_mapper = view.table_dump()
    result = rebuild(app, view, page_size=page_size)
    assert result.events == len(notes)
    assert view.table_dump() == by_mapper
