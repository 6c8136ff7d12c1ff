"""Tamper evidence and replay, on SQLite and PostgreSQL.

The tamper tests change the stored rows directly, behind the application's back, the way a
database administrator could; verify must name the position each time."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ledger import audit, seals
from ledger.bootstrap import open_books
from ledger.settings import Settings
from projections import replay, replay_writer
from projections.replay import AsOfBeforeFirstEvent, replay_as_of
from projections.replay_writer import ReplayWriterFailed, write_in_writer_process
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import booking


def _fill(books, n: int = 12) -> None:
    books.ledger.import_bookings(
        [booking(f"T-{i}", amount_cents=1000 + i) for i in range(n)], recorded_by="a"
    )
    books.ledger.record_booking(booking("BIG", amount_cents=5_000_000), recorded_by="a")
    books.ledger.approve_booking("BIG", approved_by="b")
    books.ledger.reverse_booking("T-2", reason="falsch", reversed_by="a")


@contextlib.contextmanager
def raw_sql(books):
    """A connection to the store that bypasses the application entirely."""
    env = books.env
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        conn = sqlite3.connect(env["SQLITE_DBNAME"])
        try:
            yield lambda q, p=(): conn.execute(
                q.replace("%s", "?")
                .replace("{events}", "stored_events")
                .replace("{seals}", "event_seals")
                .replace("{id}", "rowid"),
                p,
            )
            conn.commit()
        finally:
            conn.close()
    else:
        schema = env["POSTGRES_SCHEMA"]
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            dbname=env["POSTGRES_DBNAME"],
            autocommit=True,
        ) as conn:
            yield lambda q, p=(): conn.execute(
                q.replace("{events}", f'"{schema}".ledger_events')
                .replace("{seals}", f'"{schema}".ledger_seals')
                .replace("{id}", "notification_id"),
                p,
            )


def test_an_untouched_log_is_intact(books):
    _fill(books)
    verdict = audit.verify_log(books.ledger)
    assert verdict.intact and verdict.count == books.ledger.max_notification_id() == 16


def test_an_altered_event_is_found_at_its_position(books):
    _fill(books)
    with raw_sql(books) as sql:
        sql("UPDATE {events} SET state = %s WHERE {id} = %s", (b'{"amount_cents":1}', 5))
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position, verdict.count) == (False, 5, 4)
    assert "altered" in verdict.reason


def test_a_deleted_event_is_found_at_its_position(books):
    _fill(books)
    with raw_sql(books) as sql:
        sql("DELETE FROM {events} WHERE {id} = %s", (7,))
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position) == (False, 7)
    assert "missing" in verdict.reason


def test_an_event_deleted_with_its_seal_breaks_the_chain_at_the_next_position(books):
    _fill(books)
    with raw_sql(books) as sql:
        sql("DELETE FROM {events} WHERE {id} = %s", (7,))
        sql("DELETE FROM {seals} WHERE notification_id = %s", (7,))
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position) == (False, 8)


def test_an_inserted_event_is_found_at_its_position(books):
    _fill(books)
    with raw_sql(books) as sql:
        row = sql("SELECT originator_id, topic, state FROM {events} WHERE {id} = %s", (3,)).fetchone()
        forged_id = row[0].replace("0", "1", 1) if isinstance(row[0], str) else row[0]
        if isinstance(row[0], str):
            sql(
                "INSERT INTO {events} (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
                (forged_id, 1, row[1], row[2]),
            )
        else:
            sql(
                "INSERT INTO {events} (originator_id, originator_version, topic, state) VALUES (gen_random_uuid(), 1, %s, %s)",
                (row[1], row[2]),
            )
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position) == (False, 17)
    assert "no seal" in verdict.reason


@pytest.mark.parametrize("position", [0, -1])
def test_an_event_inserted_below_the_first_position_is_found(books, position):
    """The repository loads an aggregate's events whatever their position; verify must read them
    all. A forged parameter change at position 0 or below once passed as intact."""
    _fill(books)
    with raw_sql(books) as sql:
        row = sql("SELECT originator_id, topic, state FROM {events} WHERE {id} = %s", (3,)).fetchone()
        forged = row[0].replace("0", "1", 1) if isinstance(row[0], str) else uuid.uuid4()
        sql(
            "INSERT INTO {events} ({id}, originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s, %s)",
            (position, forged, 1, row[1], row[2]),
        )
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position, verdict.count) == (False, position, 0)
    assert "below 1" in verdict.reason


def test_an_originator_id_stored_in_another_spelling_is_found(tmp_path: Path):
    """SQLite keeps ids as text (PostgreSQL as uuid: no other spelling there); read back, upper case
    parsed as the same UUID, so the seal matched, while the repository (exact text) no longer
    found the booking's events."""
    with open_books(Settings(data_dir=tmp_path, _env_file=None)) as books:
        assert books.env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
        _fill(books)
    with open_books(Settings(data_dir=tmp_path, _env_file=None)) as books:
        with raw_sql(books) as sql:
            sql("UPDATE {events} SET originator_id = upper(originator_id) WHERE {id} = %s", (5,))
        verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position, verdict.count) == (False, 5, 4)
    assert "does not match its seal" in verdict.reason


def test_an_altered_event_with_a_recomputed_seal_breaks_the_next_position(books):
    _fill(books)
    with raw_sql(books) as sql:
        prev = bytes(sql("SELECT seal FROM {seals} WHERE notification_id = 4").fetchone()[0])
        oid, ver, topic = sql(
            "SELECT originator_id, originator_version, topic FROM {events} WHERE {id} = 5"
        ).fetchone()
        forged = b'{"amount_cents":1}'
        new_seal = seals.seal(
            prev,
            5,
            oid if not isinstance(oid, str) else uuid.UUID(oid),
            ver,
            topic,
            forged,
        )
        sql("UPDATE {events} SET state = %s WHERE {id} = 5", (forged,))
        sql("UPDATE {seals} SET seal = %s WHERE notification_id = 5", (new_seal,))
    verdict = audit.verify_log(books.ledger)
    assert (verdict.intact, verdict.position) == (False, 6)


def test_a_rewritten_tail_is_caught_by_the_anchor(books):
    _fill(books)
    anchor = seals.Anchor(audit.head(books.ledger).position, audit.head(books.ledger).head)
    assert audit.verify_log(books.ledger, anchor).intact
    # Rewrite the last event and its seal consistently: the chain alone cannot tell.
    with raw_sql(books) as sql:
        last = anchor.position
        prev = bytes(sql("SELECT seal FROM {seals} WHERE notification_id = %s", (last - 1,)).fetchone()[0])
        oid, ver, topic = sql(
            "SELECT originator_id, originator_version, topic FROM {events} WHERE {id} = %s", (last,)
        ).fetchone()
        oid = uuid.UUID(oid) if isinstance(oid, str) else oid
        forged = b'{"forged":true}'
        sql("UPDATE {events} SET state = %s WHERE {id} = %s", (forged, last))
        sql(
            "UPDATE {seals} SET seal = %s WHERE notification_id = %s",
            (seals.seal(prev, last, oid, ver, topic, forged), last),
        )
    assert audit.verify_log(books.ledger).intact
    verdict = audit.verify_log(books.ledger, anchor)
    assert (verdict.intact, verdict.position) == (False, anchor.position)
    assert "anchor" in verdict.reason


def test_replay_now_equals_the_live_view(books, tmp_path: Path):
    _fill(books)
    catch_up(books.ledger, books.split_view)
    r = replay_as_of(books.ledger, datetime.now(UTC), tmp_path)
    try:
        assert r.events_read == r.events_applied == books.ledger.max_notification_id()
        cat, rates = books.ledger.catalogue, books.ledger.rates
        assert split_lines(r.view, cat, rates, "BW", 2025) == split_lines(
            books.split_view, cat, rates, "BW", 2025
        )
        assert r.view.bookings(2025, counted_only=False) == books.split_view.bookings(
            2025, counted_only=False
        )
    finally:
        r.close()


@pytest.mark.parametrize("in_writer_process", [False, True], ids=["one process", "writer process"])
def test_replay_as_of_a_moment_leaves_out_what_came_later(
    books, tmp_path: Path, monkeypatch, in_writer_process
):
    monkeypatch.setattr(replay, "REPLAY_IN_PROCESS_MAX", 0 if in_writer_process else 10**9)
    monkeypatch.setattr(replay, "REPLAY_PAGE_SIZE", 1)  # the later events on pages of their own
    books.ledger.record_booking(booking("EARLY", amount_cents=5_000_000), recorded_by="a")
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    books.ledger.approve_booking("EARLY", approved_by="b")
    books.ledger.record_booking(booking("LATE"), recorded_by="a")
    r = replay_as_of(books.ledger, moment, tmp_path)
    try:
        assert r.in_writer_process is in_writer_process
        assert (r.events_read, r.events_applied, r.last_included) == (3, 1, 1)
        rows = r.view.bookings(2025, counted_only=False)
        assert [(x.booking_key, x.counted, x.approved_by) for x in rows] == [("EARLY", False, "")]
        assert r.view.totals(2025) == []  # awaiting approval as of then: nothing counted
    finally:
        r.close()
    with pytest.raises(AsOfBeforeFirstEvent):
        replay_as_of(books.ledger, datetime(2001, 1, 1, tzinfo=UTC), tmp_path)


def test_replay_of_a_compressed_store_equals_the_live_view(settings, tmp_path: Path, monkeypatch):
    """Where the store compresses its states, every event goes through the library's mapper, and
    its rows reach the replay store with their dates as ISO text like the others."""
    monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")
    with open_books(settings) as books:
        assert books.ledger.mapper.compressor is not None
        _fill(books)
        catch_up(books.ledger, books.split_view)
        live = books.split_view.bookings(2025, counted_only=False), books.split_view.totals(2025)
        for in_process_max in (10**9, 0):
            monkeypatch.setattr(replay, "REPLAY_IN_PROCESS_MAX", in_process_max)
            r = replay_as_of(books.ledger, datetime.now(UTC), tmp_path)
            try:
                assert (r.view.bookings(2025, counted_only=False), r.view.totals(2025)) == live
            finally:
                r.close()


@pytest.fixture
def writers(monkeypatch) -> list[subprocess.Popen]:
    """The writer processes started meanwhile, to see how they ended."""
    started: list[subprocess.Popen] = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(replay_writer.subprocess, "Popen", Recorded)
    monkeypatch.setattr(replay_writer, "WRITER_EXIT_SECONDS_MAX", 10)  # then it is killed: -9
    return started


def test_a_writer_that_fails_is_reported_with_its_reason(tmp_path: Path, writers):
    """An approval of a booking the replay store has not seen cannot be written: the writer
    process answers with its traceback, and the reader raises it."""
    at = datetime(2025, 3, 1, tzinfo=UTC)
    pages = iter([(1, [("approve", ("no-such-booking", "approver", at, (2025, 1, "cash")))])])
    with pytest.raises(ReplayWriterFailed, match="has not seen: no-such-booking"):
        write_in_writer_process(tmp_path / "failed.sqlite", "Ledger", 0, pages)
    assert [w.returncode for w in writers] == [1]


def test_a_reader_that_fails_stops_the_writer(tmp_path: Path, writers):
    def pages():
        yield 1, [("reversed", ("some-booking", "R-1"))]
        raise psycopg.OperationalError("the server went away")

    with pytest.raises(psycopg.OperationalError, match="went away"):
        write_in_writer_process(tmp_path / "stopped.sqlite", "Ledger", 10, pages())
    assert [w.returncode for w in writers] == [1]  # it ended on its own when its pipe closed


def test_a_booking_saved_while_the_log_is_verified_is_no_missing_event(books, settings, monkeypatch):
    """Events and seals are read by separate queries. A booking saved by another process after the
    last page of events was read, before the last page of seals, left a seal without its event:
    a false 'deleted' verdict. Verification ends both at the log's end as it began."""
    _fill(books)
    recorder = books.ledger.recorder
    read_events = recorder.select_notifications

    def at_the_end_of_the_events(*args, **kwargs):
        page = read_events(*args, **kwargs)
        if not page and not saved:
            with open_books(settings) as other:
                saved.append(other.ledger.record_booking(booking("DURING"), recorded_by="a"))
        return page

    saved: list = []
    monkeypatch.setattr(recorder, "select_notifications", at_the_end_of_the_events)
    verdict = audit.verify_log(books.ledger)
    assert saved and verdict.intact, verdict.reason
    assert verdict.count == 16 == books.ledger.max_notification_id() - 1
    assert audit.verify_log(books.ledger).count == 17  # the next verification covers it
