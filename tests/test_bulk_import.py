"""The bulk import (ledger/bulk_import.py) stores exactly what the library's path stores.

It encodes Booking.Recorded events itself and copies them into the event table. These tests hold
it to the library's path: the same bytes for the same event, read back through the repository as
the same aggregate, sealed, projected, approvable and reversible like any other booking.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.booking import Booking, Kind, content_of, is_one_line, recording_terms
from domain.periods import PeriodCalendar
from ledger.application import ImportRefused, Ledger
from ledger.audit import verify_log
from ledger.bulk_import import RECORDED_TOPIC, RunHadBadRows, recorded_state
from ledger.recorded_events import FastRecorded
from projections.split_projection import catch_up, rebuild
from tests.factories import booking

_LEDGER = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"})

# Quotes, backslashes, umlauts, emoji, any printable character a text may hold (is_one_line):
# JSON escaping must match the library's.
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40).filter(is_one_line)


@settings(max_examples=200, deadline=None)
@given(
    text=_text,
    amount=st.integers(1, 10_000_000_000),
    kind=st.sampled_from(list(Kind)),
    category=st.sampled_from(["kdu", "buergergeld", "egt.aktivierung", "vwk.personal"]),
    paid=st.dates(date(2005, 1, 1), date(2100, 12, 31)),
    days=st.integers(0, 400),
    contract=st.sampled_from(["", "V-2025-001"]),
    micro=st.integers(0, 999_999),
)
def test_state_bytes_equal_the_library_mapper(text, amount, kind, category, paid, days, contract, micro):
    start = paid.replace(day=1)
    end = date.fromordinal(min(start.toordinal() + days, date(2100, 12, 31).toordinal()))
    content = replace(
        booking("B-1"),
        text=text,
        amount_cents=amount,
        kind=kind,
        category=category,
        payment_date=paid,
        service_from=start,
        service_to=end,
        contract_ref=contract,
    )
    agg = Booking.record(content, recorded_by="clerk", catalogue=_LEDGER.catalogue, rates=_LEDGER.base_rates)
    (event,) = agg.collect_events()
    event = replace_timestamp(event, datetime(2025, 3, 1, 12, 0, 0, micro, tzinfo=UTC))
    stored = _LEDGER.mapper.to_stored_event(event)
    period, approval = recording_terms(
        content, recorded_by="clerk", catalogue=_LEDGER.catalogue, rates=_LEDGER.base_rates
    )
    ours = recorded_state(
        content, period, recorded_by="clerk", requires_approval=approval, timestamp=event.timestamp
    )
    assert stored.topic == RECORDED_TOPIC
    assert ours == stored.state
    # The fast decoding of the hot paths (catch-up, stored keys) gives the mapper's attributes.
    fast, decoded = FastRecorded(event.originator_id, stored.state), _LEDGER.mapper.to_domain_event(stored)
    assert vars(fast) == {k: v for k, v in vars(decoded).items() if k != "originator_version"}
    assert content_of(fast) == content == content_of(decoded)


def replace_timestamp(event, ts: datetime):
    object.__setattr__(event, "timestamp", ts)
    return event


def _fields(b: Booking) -> dict:
    return {k: v for k, v in vars(b).items() if k not in ("_created_on", "_modified_on", "_pending_events")}


def test_bulk_events_read_back_like_the_library_path(books):
    run = [
        booking("F-1"),
        booking("F-2", amount_cents=99_000_000, text='Über "Schwelle" \\ ✓'),  # needs approval
        booking(
            "F-3",
            kind=Kind.RECEIPT,
            category="buergergeld",
            payment_date=date(2025, 12, 20),
            service_from=date(2026, 1, 1),
            service_to=date(2026, 1, 31),
        ),  # December for January
    ]
    books.ledger.import_bookings(run, recorded_by="clerk")
    for content in run:
        fast = books.ledger.get_booking(content.key)
        normal = Booking.record(
            content,
            recorded_by="clerk",
            catalogue=books.ledger.catalogue,
            rates=books.ledger.base_rates,
            calendar=PeriodCalendar(),
        )
        assert type(fast) is Booking and fast.version == 1
        assert _fields(fast) == _fields(normal)
        (event,) = books.ledger.booking_history(content.key)
        assert type(event) is Booking.Recorded and event.originator_version == 1
    # The bookings live on like any other: approval, reversal, seals, the split view.
    books.ledger.approve_booking("F-2", approved_by="boss", on=date(2025, 3, 1))
    books.ledger.reverse_booking("F-1", reason="doppelt", reversed_by="clerk", on=date(2025, 3, 2))
    assert books.ledger.get_booking("F-1").state == "reversed"
    assert verify_log(books.ledger).intact
    caught = catch_up(books.ledger, books.split_view)
    assert caught.events == books.ledger.max_notification_id()
    live = books.split_view.table_dump()
    rebuild(books.ledger, books.split_view)
    assert books.split_view.table_dump() == live


def test_bulk_and_library_path_give_the_same_split_view(books, tmp_path):
    """Two stores, the same bookings: one through the bulk import, one aggregate by aggregate."""
    run = [booking(f"S-{i}", amount_cents=1000 + i * 7) for i in range(30)]
    books.ledger.import_bookings(run, recorded_by="clerk")
    catch_up(books.ledger, books.split_view)
    with Ledger(
        {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "o.sqlite"),
            "APPLICATION_RECORDER_TOPIC": "ledger.recorders:SealingSQLiteApplicationRecorder",
        }
    ) as other:
        from projections.split_projection import open_split_view

        view = open_split_view(other.env)
        try:
            for i in range(0, len(run), 10):
                other.save(
                    *[
                        Booking.record(
                            c, recorded_by="clerk", catalogue=other.catalogue, rates=other.base_rates
                        )
                        for c in run[i : i + 10]
                    ]
                )
            catch_up(other, view)

            def comparable(v):
                rows = v.bookings(2025, counted_only=False)
                return [replace(r, recorded_at=None, notification_id=0) for r in rows], v.totals(2025)

            assert comparable(books.split_view) == comparable(view)
        finally:
            view.datastore.close()


def test_streamed_run_with_a_bad_row_stores_nothing_and_checks_every_row(books):
    books.ledger.import_bookings([booking("X-5")], recorded_by="clerk")
    position = books.ledger.max_notification_id()
    rows = [booking(f"X-{i}") for i in range(5)] + [None] + [booking("X-5", amount_cents=1)]
    with pytest.raises(RunHadBadRows) as e:
        books.ledger.import_stream(iter(rows), recorded_by="clerk")
    assert [c.index for c in e.value.conflicts] == [6]  # found although a bad row came first
    assert books.ledger.max_notification_id() == position
    assert books.ledger._find("X-0") is None


def test_conflict_after_many_chunks_rolls_back_everything(books, monkeypatch):
    import ledger.bulk_import as bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 7)
    books.ledger.import_bookings([booking("Y-40")], recorded_by="clerk")
    position = books.ledger.max_notification_id()
    run = [booking(f"Y-{i}") for i in range(40)] + [booking("Y-40", amount_cents=3)]
    with pytest.raises(ImportRefused) as e:
        books.ledger.import_stream(iter(run), recorded_by="clerk")
    assert [c.index for c in e.value.conflicts] == [40]
    assert books.ledger.max_notification_id() == position
    assert books.ledger._find("Y-0") is None
    # The same run without the conflict, in chunks: ids continue without overlap, seals hold.
    result = books.ledger.import_stream(iter(run[:40]), recorded_by="clerk")
    assert (result.created, result.unchanged) == (40, 0)
    books.ledger.record_booking(booking("Y-41"), recorded_by="clerk")  # the library's path after ours
    verdict = verify_log(books.ledger)
    assert verdict.intact and verdict.count == 42
    assert books.ledger.get_booking("Y-41").version == 1


def test_bulk_sealer_equals_seal():
    from uuid import uuid4

    from ledger import seals

    one = seals.sealer(RECORDED_TOPIC, 1)
    prev = bytes(range(32))
    for position, state in ((1, b""), (2**40, b'{"x":1}'), (7, "ü".encode() * 100)):
        oid = uuid4()
        assert one(prev, position, oid, state) == seals.seal(prev, position, oid, 1, RECORDED_TOPIC, state)


@given(st.uuids())
def test_the_spools_uuid_text_is_the_uuids_own(oid):
    from ledger.bulk_import import _uuid_text

    assert _uuid_text(oid.bytes) == str(oid)
