"""The bulk reader behind batch approvals (ledger.event_index.select_events_of, replay_aggregates,
Ledger.find_bookings) against the library's own read of one aggregate at a time, on both stores,
with compressed and encrypted states and with snapshots."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from domain.booking import booking_id
from ledger import event_index
from ledger.bootstrap import open_books
from tests.factories import booking

BIG = 2_000_000  # above the approval threshold


def fill(books) -> list[str]:
    """Bookings in every state a batch meets (awaiting, approved, reversed, a Storno awaiting and
    one approved, one below the threshold), with unknown keys mixed in; the keys to read."""
    ledger = books.ledger

    def record(key, cents=BIG, by="mueller"):
        content = booking(key, amount_cents=cents, category="egt.aktivierung", case_ref="")
        ledger.record_booking(content, recorded_by=by)

    for key in ("B-WAIT", "B-APPROVED", "B-REVERSED", "B-WITHDRAWN", "B-STORNO-DONE"):
        record(key)
    record("B-SMALL", 50_000, by="schmidt")
    ledger.approve_booking("B-APPROVED", approved_by="schmidt")
    for key in ("B-REVERSED", "B-STORNO-DONE"):
        ledger.approve_booking(key, approved_by="schmidt")
    reversed_ = ledger.reverse_booking("B-REVERSED", reason="doppelt", reversed_by="mueller")
    withdrawn = ledger.reverse_booking("B-WITHDRAWN", reason="falsch", reversed_by="mueller")
    storno = ledger.reverse_booking("B-STORNO-DONE", reason="storno", reversed_by="mueller")
    ledger.approve_booking(storno.key, approved_by="fischer")
    return [
        "B-NOPE-1",
        "B-WAIT",
        "B-APPROVED",
        reversed_.key,
        "B-REVERSED",
        "B-NOPE-2",
        withdrawn.key,
        "B-WITHDRAWN",
        "B-STORNO-DONE",
        storno.key,
        "B-SMALL",
    ]


def one_by_one(ledger, keys):
    """What the library's repository reads for each key (the read batch approvals made before)."""
    return [
        ledger.repository.get(booking_id(k)) if booking_id(k) in ledger.repository else None for k in keys
    ]


def state(aggregate):
    return None if aggregate is None else (type(aggregate), vars(aggregate))


def test_select_events_of_returns_what_select_events_returns_for_each_id(books, monkeypatch):
    keys = fill(books)
    recorder = books.ledger.recorder
    ids = [booking_id(k) for k in keys] + [uuid4()]
    # Pages of two ids: every page boundary, and ids of one aggregate never split across pages.
    monkeypatch.setattr(event_index, "EVENTS_IDS_PER_QUERY", 2)
    monkeypatch.setattr(event_index, "SQLITE_IDS_PER_QUERY", 2)
    found = event_index.select_events_of(recorder, ids)
    expected = {i: list(recorder.select_events(i)) for i in ids}
    assert found == {i: events for i, events in expected.items() if events}
    assert len(found) == len(keys) - 2  # the two unknown keys and the random id have no events
    assert [e.originator_version for e in found[booking_id("B-REVERSED")]] == [1, 2, 3]
    assert event_index.select_events_of(recorder, []) == {}


def test_find_bookings_equals_the_repository_key_by_key(books):
    keys = fill(books)
    found = books.ledger.find_bookings(keys)
    assert [state(b) for b in found] == [state(b) for b in one_by_one(books.ledger, keys)]
    assert [b and b.state for b in found] == [
        None,
        "awaiting_approval",
        "approved",
        "reversal",
        "reversed",
        None,
        "withdrawal",
        "reversed",
        "reversed",
        "reversal",
        "recorded",
    ]


@pytest.mark.parametrize(
    "configured",
    [
        {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"},
        {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher", "CIPHER_KEY": AESCipher.create_key(16)},
        {
            "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
            "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
            "CIPHER_KEY": AESCipher.create_key(32),
        },
    ],
    ids=["compressed", "encrypted", "both"],
)
def test_a_store_that_compresses_or_encrypts_is_read_through_the_mapper(settings, monkeypatch, configured):
    """COMPRESSOR_TOPIC and CIPHER_TOPIC (read by the library from the environment): the states on
    disk are not JSON, and the bulk reader decodes them as the repository does; a batch approves."""
    for name, value in configured.items():
        monkeypatch.setenv(name, value)
    with open_books(settings) as books:
        assert (books.ledger.mapper.compressor is not None) == ("COMPRESSOR_TOPIC" in configured)
        assert (books.ledger.mapper.cipher is not None) == ("CIPHER_TOPIC" in configured)
        keys = fill(books)
        [stored] = books.ledger.recorder.select_events(booking_id("B-WAIT"))
        assert not stored.state.startswith(b"{")  # not the plain JSON of an unconfigured store
        found = books.ledger.find_bookings(keys)
        assert [state(b) for b in found] == [state(b) for b in one_by_one(books.ledger, keys)]
        for key in ("B-BATCH-1", "B-BATCH-2"):
            content = booking(key, amount_cents=BIG, category="egt.aktivierung", case_ref="")
            books.ledger.record_booking(content, recorded_by="mueller")
        approved = books.ledger.approve_bookings(["B-BATCH-1", "B-BATCH-2"], approved_by="schmidt")
        assert [b.version for b in approved] == [2, 2]
        assert [books.ledger.get_booking(k).approved_by for k in ("B-BATCH-1", "B-BATCH-2")] == [
            "schmidt"
        ] * 2


def test_a_store_with_snapshots_gives_the_state_the_repository_starts_from_them(settings, monkeypatch):
    """Where snapshots are taken, the repository starts from the last one; replaying every event
    gives the same booking."""
    monkeypatch.setenv("IS_SNAPSHOTTING_ENABLED", "y")
    with open_books(settings) as books:
        assert books.ledger.snapshots is not None
        keys = fill(books)
        for key in ("B-APPROVED", "B-REVERSED", "B-WAIT"):
            books.ledger.take_snapshot(booking_id(key))
        books.ledger.approve_booking("B-WAIT", approved_by="schmidt")  # one event after the snapshot
        [snapshot] = books.ledger.snapshots.get(booking_id("B-WAIT"))
        assert snapshot.originator_version == 1  # the repository starts from it
        found = books.ledger.find_bookings(keys)
        assert [state(b) for b in found] == [state(b) for b in one_by_one(books.ledger, keys)]
        assert found[1].approved_by == "schmidt"


def test_select_events_of_reads_the_in_memory_store_id_by_id():
    recorder = POPOApplicationRecorder()
    a, b, absent = uuid4(), uuid4(), uuid4()
    events = [StoredEvent(a, 1, "t", b"1"), StoredEvent(b, 1, "t", b"2"), StoredEvent(a, 2, "t", b"3")]
    recorder.insert_events(events)
    assert event_index.select_events_of(recorder, [absent, b, a]) == {
        b: [events[1]],
        a: [events[0], events[2]],
    }
