"""Posting is idempotent by booking key, on both stores, also with concurrent writers."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from domain.errors import KeyConflict
from ledger.application import ImportRefused, Ledger
from ledger.bootstrap import open_books
from projections.split_projection import catch_up
from tests.factories import booking


def test_same_key_same_content_returns_the_first_booking(books):
    first = books.ledger.record_booking(booking("K-1"), recorded_by="a")
    again = books.ledger.record_booking(booking("K-1"), recorded_by="b")
    assert (first.created, again.created) == (True, False)
    assert again.booking.recorded_by == "a"
    assert books.ledger.max_notification_id() == 1  # nothing new was stored


def test_same_key_other_content_is_a_conflict_naming_the_fields(books):
    books.ledger.record_booking(booking("K-1"), recorded_by="a")
    with pytest.raises(KeyConflict) as e:
        books.ledger.record_booking(booking("K-1", amount_cents=1, text="x"), recorded_by="a")
    assert "amount_cents" in str(e.value) and "text" in str(e.value)
    assert books.ledger.get_booking("K-1").amount_cents == 50_000


def test_reimport_changes_nothing_and_overlap_adds_only_new(books):
    run = [booking(f"R-{i}") for i in range(50)]
    assert books.ledger.import_bookings(run, recorded_by="a").created == 50
    position = books.ledger.max_notification_id()
    again = books.ledger.import_bookings(run, recorded_by="a")
    assert (again.created, again.unchanged) == (0, 50)
    assert books.ledger.max_notification_id() == position
    more = books.ledger.import_bookings(run + [booking("R-50")], recorded_by="a")
    assert (more.created, more.unchanged) == (1, 50)


def test_a_conflicting_key_refuses_the_whole_run(books):
    books.ledger.import_bookings([booking("R-1")], recorded_by="a")
    position = books.ledger.max_notification_id()
    run = [booking("R-0"), replace(booking("R-1"), amount_cents=7), booking("R-2")]
    with pytest.raises(ImportRefused) as e:
        books.ledger.import_bookings(run, recorded_by="a")
    assert [c.index for c in e.value.conflicts] == [1]
    assert books.ledger.max_notification_id() == position
    assert books.ledger._find("R-0") is None and books.ledger._find("R-2") is None


def test_concurrent_posts_of_the_same_keys_store_each_booking_once(books, settings):
    """Eight writers, each with its own application (own connections), post the same 40 keys."""
    keys = [f"C-{i}" for i in range(40)]
    errors: list[BaseException] = []
    created = []
    barrier = threading.Barrier(8, timeout=60)

    def writer(n: int) -> None:
        try:
            with open_books(settings) as b:
                barrier.wait()
                for k in keys[n % 5 :] + keys[: n % 5]:
                    created.append(b.ledger.record_booking(booking(k), recorded_by=f"w{n}").created)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert created.count(True) == 40 and len(created) == 320
    catch_up(books.ledger, books.split_view)
    rows = books.split_view.bookings(2025)
    assert sorted(r.booking_key for r in rows) == sorted(keys)


def test_keys_survive_a_restart(settings):
    with open_books(settings) as b:
        b.ledger.record_booking(booking("K-9"), recorded_by="a")
    with open_books(settings) as b:
        assert b.ledger.record_booking(booking("K-9"), recorded_by="a").created is False
        assert isinstance(b.ledger, Ledger)
