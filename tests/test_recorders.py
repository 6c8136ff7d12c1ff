"""The sealing recorders: chunking of large saves on PostgreSQL (see ledger/recorders.py for why),
and what a save stores or refuses on either store."""

from __future__ import annotations

import logging
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.booking import booking_id
from ledger import recorders, seals
from ledger.audit import verify_log
from ledger.recorders import (
    CHUNK_BYTES_MAX,
    CHUNK_EVENTS_MAX,
    CalendarChanged,
    SideRow,
    SideRowConflict,
    StoredMeanwhile,
    chunks,
)
from tests.factories import booking


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, CHUNK_BYTES_MAX // 3), max_size=60), st.integers(0, 3))
def test_chunks_keep_order_and_bounds(sizes, repeat):
    events = [StoredEvent(uuid4(), 1, "t", b"x" * s) for s in sizes * (repeat + 1)]
    parts = list(chunks(events))
    assert [e for p in parts for e in p] == events
    for p in parts:
        assert len(p) <= CHUNK_EVENTS_MAX
        assert len(p) == 1 or sum(len(e.state) + len(e.topic) + 64 for e in p) <= CHUNK_BYTES_MAX


def test_many_small_events_are_cut_by_count():
    events = [StoredEvent(uuid4(), 1, "t", b"") for _ in range(CHUNK_EVENTS_MAX * 2 + 1)]
    assert [len(p) for p in chunks(events)] == [CHUNK_EVENTS_MAX, CHUNK_EVENTS_MAX, 1]


# ---- the sealing recorders' saves (both stores) ---------------------------------------------------


def _recorded(ledger, keys):
    from domain.booking import Booking

    calendar, _ = ledger._calendar_seen()
    return [
        Booking.record(booking(k), recorded_by="clerk", catalogue=ledger.catalogue, rates=ledger.rates,
                       calendar=calendar)
        for k in keys
    ]


def _marks_table(rec):
    postgres = hasattr(rec.datastore, "schema")
    table = f'"{rec.datastore.schema}".rec_marks' if postgres else "rec_marks"
    with rec.datastore.transaction(commit=True) as c:
        c.execute(f"CREATE TABLE {table} (mark text PRIMARY KEY)")
    return table, "%s" if postgres else "?"


def test_a_save_of_several_chunks_stores_every_event_in_order_sealed(books, monkeypatch):
    """On PostgreSQL a save of one chunk goes in one pipeline, a larger one chunk by chunk: both
    give consecutive positions in the save's order, each event sealed after its predecessor."""
    monkeypatch.setattr(recorders, "CHUNK_BYTES_MAX", 3_000)  # a few events per chunk
    ledger = books.ledger
    ledger.save(*_recorded(ledger, ["R-ONE"]), calendar_version=ledger._calendar_seen()[1])
    keys = [f"R-MANY-{i:02}" for i in range(25)]
    events = [e for b in _recorded(ledger, keys) for e in b.collect_events()]
    assert len(list(recorders.chunks([ledger.mapper.to_stored_event(e) for e in events]))) > 3
    before = ledger.max_notification_id()
    ledger.save(*events, calendar_version=ledger._calendar_seen()[1])
    notes = ledger.recorder.select_notifications(start=before + 1, limit=100)
    assert [n.id for n in notes] == list(range(before + 1, before + 1 + len(keys)))
    assert [booking_id(k) for k in keys] == [n.originator_id for n in notes]
    verdict = verify_log(ledger)
    assert verdict.intact and verdict.count == before + len(keys), verdict


def test_a_side_row_that_breaks_a_unique_key_stores_nothing(books):
    ledger = books.ledger
    table, p = _marks_table(ledger.recorder)
    insert = f"INSERT INTO {table} (mark) VALUES ({p})"
    first = _recorded(ledger, ["R-SIDE-1"])
    ledger.save(*first, calendar_version=ledger._calendar_seen()[1], side_rows=[SideRow(insert, ("m",))])
    before = ledger.max_notification_id()
    with pytest.raises(SideRowConflict):
        ledger.save(*_recorded(ledger, ["R-SIDE-2"]), calendar_version=ledger._calendar_seen()[1],
                    side_rows=[SideRow(insert, ("n",)), SideRow(insert, ("m",))])
    assert ledger.max_notification_id() == before and ledger._find("R-SIDE-2") is None
    with ledger.recorder.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT mark FROM {table}")
        assert [r["mark"] if p == "%s" else r[0] for r in c.fetchall()] == ["m"]
    assert verify_log(ledger).intact


def test_an_aggregate_stored_meanwhile_refuses_the_save(books):
    """`absent_ids`: what the command found absent must still be absent under the write lock."""
    ledger = books.ledger
    [meanwhile] = _recorded(ledger, ["R-MEANWHILE"])
    ledger.save(meanwhile)
    before = ledger.max_notification_id()
    with pytest.raises(StoredMeanwhile):
        ledger.save(*_recorded(ledger, ["R-LATER"]), absent_ids=[meanwhile.id])
    assert ledger.max_notification_id() == before and ledger._find("R-LATER") is None
    _assert_no_transaction_left(ledger)


def test_a_refused_save_leaves_no_transaction_open(books, caplog):
    """On PostgreSQL BEGIN and COMMIT are sent by hand: a refusal must still end the transaction
    before the connection goes back to the pool (the pool would warn and roll back)."""
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    ledger = books.ledger
    ledger.save(*_recorded(ledger, ["R-OPEN-1"]), calendar_version=ledger._calendar_seen()[1])
    for _ in range(3):  # more than once: whichever pooled connection the next save gets
        with pytest.raises(IntegrityError):  # the same key again
            ledger.save(*_recorded(ledger, ["R-OPEN-1"]), calendar_version=ledger._calendar_seen()[1])
        with pytest.raises(CalendarChanged):
            ledger.save(*_recorded(ledger, ["R-OPEN-2"]), calendar_version=ledger._calendar_seen()[1] + 1)
        _assert_no_transaction_left(ledger)
    ledger.save(*_recorded(ledger, ["R-OPEN-2"]), calendar_version=ledger._calendar_seen()[1])
    assert ledger._find("R-OPEN-2") is not None and verify_log(ledger).intact
    assert not [r for r in caplog.records if "rolling back" in r.getMessage()]


def _assert_no_transaction_left(ledger) -> None:
    datastore = ledger.recorder.datastore
    if not hasattr(datastore, "schema"):
        return  # SQLite: its own transactions, as the library makes them
    with datastore.get_connection() as conn:
        # another session of this store still inside a transaction (ours is the one asking)
        left = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        ).fetchone()["n"]
    assert left == 0


def test_an_event_put_in_behind_the_applications_back_stays_without_a_seal(books):
    """The seals of a save cover the events its insert returned, never any others: the next save
    does not seal a row slipped in before it (on PostgreSQL the chain is computed in SQL)."""
    ledger = books.ledger
    ledger.save(*_recorded(ledger, ["R-HONEST-1"]), calendar_version=ledger._calendar_seen()[1])
    forged = ledger.mapper.to_stored_event(_recorded(ledger, ["R-FORGED"])[0].collect_events()[0])
    rec = ledger.recorder
    postgres = hasattr(rec.datastore, "schema")
    with rec.datastore.transaction(commit=True) as c:
        if postgres:
            c.execute(
                f'INSERT INTO "{rec.datastore.schema}"."{rec.events_table_name}" '
                "(originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
                (forged.originator_id, 1, forged.topic, forged.state),
            )
        else:
            c.execute(
                f"INSERT INTO {rec.events_table_name} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)",
                (forged.originator_id.hex, 1, forged.topic, forged.state),
            )
    forged_at = ledger.max_notification_id()
    ledger.save(*_recorded(ledger, ["R-HONEST-2"]), calendar_version=ledger._calendar_seen()[1])
    verdict = verify_log(ledger)
    assert (verdict.intact, verdict.position) == (False, forged_at)
    assert "no seal" in verdict.reason


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(1, 2**31 - 1), st.text(min_size=1, max_size=40), st.binary(max_size=300)),
        min_size=1,
        max_size=8,
    )
)
def test_seals_stored_with_a_save_are_those_of_seals_seal(books, events):
    """Whatever topic (any text) and state (any bytes): the seals a save stores (on PostgreSQL
    computed in SQL) are the ones seals.seal computes, which is what koa audit verify checks."""
    rec = books.ledger.recorder
    stored = [StoredEvent(uuid4(), version, topic.replace("\0", ""), state) for version, topic, state in events]
    before = books.ledger.max_notification_id()
    prev = rec.seal_pages(before - 1, 1, before)[0][1] if before else seals.GENESIS
    ids = rec.insert_events(stored)
    assert list(ids) == list(range(before + 1, before + 1 + len(stored)))
    assert rec.seal_pages(before, 100, rec.log_end()) == seals.chain(prev, ids, stored)
