"""A live KoA-VV export shows one state of the books: the figures, the quarters' totals and the
Belegliste all come from the split view at the export's log position, however far other processes
move the view meanwhile (a `koa book`, the API's catch-up), and an export `--as-of` its moment
gives the same bytes. On both stores.

The other process is played by a second Books (its own connections) that records a booking and
catches the view up at a deterministic point: after the report was built and before its files are
written, or between the reads of two quarters' totals."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from api.routers import settlement as settlement_router
from exports.koavv_workbook import belege_path
from ledger import cli_settlement, persistence
from ledger.bootstrap import open_books
from ledger.cli_settlement import report_for, write_report
from ledger.cli_support import Refused
from projections.split_projection import catch_up, rebuild
from projections.split_view import SnapshotEnded, SnapshotReadOnly, SplitViewQueries
from tests.api_fixtures import auth, booking_body
from tests.factories import booking

CATEGORIES = ("kdu", "buergergeld", "vwk.sachkosten", "egt.aktivierung")


def _in_month(key: str, month: int, **changes) -> object:
    return booking(
        key,
        payment_date=date(2025, month, 10),
        service_from=date(2025, month, 1),
        service_to=date(2025, month, 28),
        **changes,
    )


def _fill(settings) -> None:
    with open_books(settings) as b:
        b.ledger.import_bookings(
            [
                _in_month(
                    f"S-{i:03d}", 1 + i % 12, category=CATEGORIES[i // 12 % 4], amount_cents=10_001 + 7 * i
                )
                for i in range(60)
            ],
            recorded_by="clerk",
        )
        catch_up(b.ledger, b.split_view)


def _book_elsewhere(settings, key: str, *, catch_up_view: bool = True) -> None:
    """What another process's `koa book ...` does: record a booking (December, a category already
    in the report) and bring the shared split view up to it."""
    with open_books(settings) as other:
        other.ledger.record_booking(_in_month(key, 12, amount_cents=12_345), recorded_by="clerk")
        if catch_up_view:
            catch_up(other.ledger, other.split_view)


def _belegliste_sums(csv_bytes: bytes) -> dict[str, list[int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in csv.DictReader(io.StringIO(csv_bytes.decode())):
        s = sums[r["category"]]
        s[0] += 1
        s[1] += int(r["net_cents"])
        s[2] += int(r["federal_cents"])
        s[3] += int(r["municipal_cents"])
    return dict(sums)


def _figure_sums(report) -> dict[str, list[int]]:
    return {
        c.category: [c.booking_count, c.net_cents, c.federal_cents, c.municipal_cents]
        for c in report.categories
        if c.booking_count
    }


def _export_as_of(books, report, path: Path, fmt: str) -> None:
    with report_for(books, report.year, report.quarter, report.as_of.isoformat()) as again:
        assert again.last_position == report.last_position
        write_report(again, path, fmt)


def test_a_snapshot_of_the_view_keeps_its_state_refuses_writes_and_ends(books, settings):
    _fill(settings)
    with books.split_view.snapshot(books.ledger.name) as view:
        assert view.position == books.ledger.max_notification_id()
        before = view.totals(2025)
        _book_elsewhere(settings, "LATE-S")
        assert view.totals(2025) == before  # the live view has moved on, the snapshot has not
        assert sum(t.booking_count for t in books.split_view.totals(2025)) == 61
        assert "LATE-S" not in {r.booking_key for r in view.bookings(2025, 4, "kdu")}
        assert "LATE-S" in {r.booking_key for r in books.split_view.bookings(2025, 4, "kdu")}
        books.ledger.record_booking(_in_month("LATE-T", 12), recorded_by="clerk")
        with pytest.raises(SnapshotReadOnly):
            catch_up(books.ledger, view)
    with pytest.raises(SnapshotEnded):
        view.totals(2025)


def test_a_rebuild_started_while_a_snapshot_is_held_does_not_empty_it(books, settings):
    """A rebuild empties the view first. On PostgreSQL it does so by TRUNCATE, which a transaction
    whose state was fixed before it would see as empty tables beside the old position: a report
    of the position with none of its bookings. The rebuild waits for the snapshot instead."""
    _fill(settings)
    rebuilt: list = []
    with books.split_view.snapshot(books.ledger.name) as view:
        assert view.position == books.ledger.max_notification_id()

        def rebuild_elsewhere() -> None:
            with open_books(settings) as other:
                rebuilt.append(rebuild(other.ledger, other.split_view).position)

        elsewhere = threading.Thread(target=rebuild_elsewhere)
        elsewhere.start()
        elsewhere.join(timeout=1.0)  # SQLite: done, beside the snapshot; PostgreSQL: waiting for it
        assert sum(t.booking_count for t in view.totals(2025)) == 60
        assert len(view.bookings(2025, None, "kdu")) == 24
    elsewhere.join(timeout=30)
    assert rebuilt == [view.position]
    assert sum(t.booking_count for t in books.split_view.totals(2025)) == 60


def test_a_booking_caught_up_before_the_belegliste_is_written_is_not_in_it(books, settings, tmp_path):
    _fill(settings)
    live = tmp_path / "live.xlsx"
    with report_for(books, 2025, None, None) as report:
        _book_elsewhere(settings, "LATE-1")  # the view moves on between the figures and the list
        write_report(report, live, "xlsx")
    assert books.ledger.max_notification_id() > report.last_position

    written = belege_path(live).read_bytes()
    assert b"LATE-1" not in written
    assert _belegliste_sums(written) == _figure_sums(report)
    assert len(report.belege) == 60 == written.count(b"\n") - 1

    # The Belegverzeichnis (per category and quarter: count, lines) matches the list it points to.
    rows = list(csv.DictReader(io.StringIO(written.decode())))
    wb = openpyxl.load_workbook(live, read_only=True)
    protocol = {r[0]: r[1] for r in wb["Protokoll"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
    assert protocol["Buchungen in der Belegliste"] == len(rows)

    _export_as_of(books, report, tmp_path / "again.xlsx", "xlsx")
    assert (tmp_path / "again.xlsx").read_bytes() == live.read_bytes()
    assert belege_path(tmp_path / "again.xlsx").read_bytes() == written


def test_the_json_twin_shows_the_same_state(books, settings, tmp_path):
    _fill(settings)
    live = tmp_path / "live.json"
    with report_for(books, 2025, 4, None) as report:
        _book_elsewhere(settings, "LATE-2")
        write_report(report, live, "json")
    doc = json.loads(live.read_text(encoding="utf-8"))
    assert "LATE-2" not in {b["booking_key"] for b in doc["belege"]}
    assert doc["belege_count"] == len(doc["belege"]) == sum(c["booking_count"] for c in doc["categories"])
    _export_as_of(books, report, tmp_path / "again.json", "json")
    assert (tmp_path / "again.json").read_bytes() == live.read_bytes()


def test_the_quarters_totals_are_read_from_one_state(books, settings, tmp_path, monkeypatch):
    """The view moves on after the first quarter's totals were read: the later quarters' totals
    must not see the booking either (it is recorded after the export's moment)."""
    _fill(settings)
    real_totals = SplitViewQueries.totals
    moved: list[bool] = []

    def totals_then_book(self, year, quarter=None):
        got = real_totals(self, year, quarter)
        if not moved:
            moved.append(True)
            _book_elsewhere(settings, "LATE-3")
        return got

    monkeypatch.setattr(SplitViewQueries, "totals", totals_then_book)
    live = tmp_path / "live.xlsx"
    with report_for(books, 2025, None, None) as report:
        write_report(report, live, "xlsx")
    monkeypatch.setattr(SplitViewQueries, "totals", real_totals)
    assert moved
    assert sum(c.booking_count for c in report.categories) == 60
    assert b"LATE-3" not in belege_path(live).read_bytes()
    _export_as_of(books, report, tmp_path / "again.xlsx", "xlsx")
    assert (tmp_path / "again.xlsx").read_bytes() == live.read_bytes()


def test_an_export_waits_for_the_log_to_stand_still_and_refuses_when_it_does_not(
    books, settings, monkeypatch
):
    """Events committed after the view was caught up: the export takes its moment again; if the
    log never stands still it refuses rather than mixing states."""
    _fill(settings)
    real_catch_up = cli_settlement.catch_up
    rounds: list[int] = []

    def catch_up_then_book(app, view, **kw):
        done = real_catch_up(app, view, **kw)
        rounds.append(done.position)
        if len(rounds) == 1:  # a booking arrives between the catch-up and the moment, once
            _book_elsewhere(settings, "MEANWHILE", catch_up_view=False)
        return done

    monkeypatch.setattr(cli_settlement, "catch_up", catch_up_then_book)
    with report_for(books, 2025, None, None) as report:
        assert len(rounds) == 2
        assert report.last_position == books.ledger.max_notification_id()
        assert sum(c.booking_count for c in report.categories) == 61

    def catch_up_and_always_book(app, view, **kw):
        done = real_catch_up(app, view, **kw)
        _book_elsewhere(settings, f"ALWAYS-{done.position}", catch_up_view=False)
        return done

    monkeypatch.setattr(cli_settlement, "catch_up", catch_up_and_always_book)
    with pytest.raises(Refused, match="keeps growing"), report_for(books, 2025, None, None):
        pass


@pytest.mark.parametrize("fmt", ["xlsx", "json"])
def test_the_api_export_shows_one_state_of_the_books(client, settings, monkeypatch, fmt):
    for i in range(6):
        body = booking_body(
            f"A-{i}", payment_date="2025-12-10", service_from="2025-12-01", service_to="2025-12-28"
        )
        r = client.post("/bookings", json=body, headers=auth("clerk"))
        assert r.status_code == 201, r.text
    real_write = settlement_router.write_report

    def book_then_write(report, path, fmt_):
        _book_elsewhere(settings, "LATE-API")
        real_write(report, path, fmt_)

    monkeypatch.setattr(settlement_router, "write_report", book_then_write)
    live = client.get("/settlement/koa-vv", params={"year": 2025, "format": fmt}, headers=auth("auditor"))
    assert live.status_code == 200, live.text
    monkeypatch.setattr(settlement_router, "write_report", real_write)
    position = int(live.headers["x-koa-position"])
    assert client.app.state.services.books.ledger.max_notification_id() > position
    if fmt == "json":
        doc = json.loads(live.content)
        keys = {b["booking_key"] for b in doc["belege"]}
        assert "LATE-API" not in keys and len(keys) == 6 == doc["belege_count"]
    again = client.get(
        "/settlement/koa-vv",
        params={"year": 2025, "format": fmt, "as_of": live.headers["x-koa-as-of"]},
        headers=auth("auditor"),
    )
    assert again.status_code == 200, again.text
    assert again.headers["x-koa-position"] == str(position)
    assert again.content == live.content


def test_a_snapshot_outlives_the_stores_idle_in_transaction_timeout(settings, monkeypatch):
    """The library ends a session idle in its transaction after 5 s by default; a live export's
    snapshot sits idle while its Belegliste is written (~6 s for 2M bookings): the parallel reads
    of a 2M-booking export then failed with 'invalid snapshot identifier'."""
    _fill(settings)
    # The store's own setting, shortened to 1 s (the library reads it from the store's env).
    given = persistence.postgres_env
    monkeypatch.setattr(
        persistence,
        "postgres_env",
        lambda url: given(url) | {"POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"},
    )
    with open_books(settings) as books:
        catch_up(books.ledger, books.split_view)
        with books.split_view.snapshot(books.ledger.name) as view:
            before = view.totals(2025)
            time.sleep(1.5)
            assert view.totals(2025) == before
            if hasattr(view, "parallel_read"):  # PostgreSQL: a second connection joins the snapshot
                with view.parallel_read() as c:
                    c.execute(f"SELECT count(*) AS n FROM {view.prefix}split_bookings")
                    assert c.fetchone()["n"] > 0
