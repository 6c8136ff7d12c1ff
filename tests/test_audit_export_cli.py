"""`koa audit export` end to end on both stores: the folder validates against the GDPdU DTD and
holds every booking of the year and every sealed event."""

from __future__ import annotations

import csv
from datetime import date

from click.testing import CliRunner
from lxml import etree

from ledger.bootstrap import open_books
from ledger.cli import main
from projections.split_view import SplitViewQueries
from tests.factories import booking
from tests.races import meanwhile


def test_export_validates_and_is_complete(store, settings, tmp_path, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as books:
        books.ledger.import_bookings([booking(f"A-{i}") for i in range(25)], recorded_by="a")
        books.ledger.reverse_booking("A-3", reason="falsch", reversed_by="a")
        books.ledger.record_funds_draw(
            federal_title="1101/681 12",
            fiscal_year=2025,
            value_date=date(2025, 3, 31),
            amount_cents=500_000,
            document_ref="HKR-1",
            recorded_by="kasse",
        )
        events = books.ledger.max_notification_id()
    out = tmp_path / "pruefung"
    result = CliRunner().invoke(main, ["audit", "export", "--year", "2025", "--out", str(out)])
    assert result.exit_code == 0, result.output
    dtd = etree.DTD(str(out / "gdpdu-01-09-2004.dtd"))
    assert dtd.validate(etree.parse(str(out / "index.xml"))), dtd.error_log
    with (out / "buchungen.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f, delimiter=";"))) == 26  # 25 bookings + 1 counter-booking
    with (out / "ereignisse.csv").open(encoding="utf-8", newline="") as f:
        logged = list(csv.reader(f, delimiter=";"))
    assert len(logged) == events
    with (out / "mittelabrufe.csv").open(encoding="utf-8", newline="") as f:
        (draw,) = csv.reader(f, delimiter=";")
    assert draw[:6] == ["draw", "HKR-1", "1101/681 12", "2025", "31.03.2025", "5000,00"]
    # its notification_id leads to the event that recorded it
    assert next(e for e in logged if e[0] == draw[-1])[3] == "domain.settlement:FundsDraw.Recorded"
    assert "1 draws and repayments of 2025" in result.output
    assert len((out / "ereignisse.jsonl").read_text(encoding="utf-8").splitlines()) == events


def test_export_refuses_an_unwritable_directory(store, settings, tmp_path, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as books:
        books.ledger.import_bookings([booking("B-1")], recorded_by="a")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["audit", "export", "--year", "2025", "--out", str(blocker / "sub")])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "--out" in result.stderr


def test_every_file_shows_the_log_up_to_one_position(store, settings, tmp_path, monkeypatch):
    """The bookings came from the view, the events and the transfers from later passes over the
    log: a booking and a draw saved by another process in between were in the event files but
    not in buchungen.csv, and the draw was in mittelabrufe.csv although its booking year's
    bookings were read before it. Now all files end at the position of the view's state."""
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as books:
        books.ledger.import_bookings([booking(f"A-{i}") for i in range(25)], recorded_by="a")
        events = books.ledger.max_notification_id()
    read_bookings = SplitViewQueries.bookings
    saved: list[int] = []

    def others_save(other):
        other.ledger.record_booking(booking("DURING"), recorded_by="b")
        other.ledger.record_funds_draw(
            federal_title="1101/681 12",
            fiscal_year=2025,
            value_date=date(2025, 3, 31),
            amount_cents=500_000,
            document_ref="HKR-DURING",
            recorded_by="kasse",
        )
        saved.append(other.ledger.max_notification_id())

    meanwhile(monkeypatch, settings, SplitViewQueries, "bookings", others_save)
    out = tmp_path / "pruefung"
    result = CliRunner().invoke(main, ["audit", "export", "--year", "2025", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert saved and saved[0] > events
    with (out / "buchungen.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f, delimiter=";"))) == 25
    with (out / "ereignisse.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f, delimiter=";"))) == events
    assert (out / "mittelabrufe.csv").read_text(encoding="utf-8") == ""
    assert f"{events} sealed events (head {events}:" in result.output

    monkeypatch.setattr(SplitViewQueries, "bookings", read_bookings)
    again = tmp_path / "danach"
    result = CliRunner().invoke(main, ["audit", "export", "--year", "2025", "--out", str(again)])
    assert result.exit_code == 0, result.output
    with (again / "ereignisse.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f, delimiter=";"))) == saved[0]
    assert "HKR-DURING" in (again / "mittelabrufe.csv").read_text(encoding="utf-8")
