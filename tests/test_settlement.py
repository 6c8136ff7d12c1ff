"""The KoA-VV settlement through the CLI, on both stores: figures equal the split to the cent,
reports are reproducible for the moment they were made, funds drawn, submission and changes since."""

from __future__ import annotations

import json
import re
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from domain.booking import Booking
from ledger.bootstrap import open_books
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import booking


@pytest.fixture
def cli(koa):
    return koa


def _fill(settings) -> None:
    with open_books(settings) as b:
        b.ledger.import_bookings(
            [booking(f"K-{i}", amount_cents=33_333 + i) for i in range(7)]
            + [booking(f"B-{i}", category="buergergeld", amount_cents=56_300) for i in range(3)]
            + [booking(f"V-{i}", category="vwk.sachkosten", amount_cents=12_345 + i) for i in range(5)]
            + [
                booking(
                    "Q2-1",
                    payment_date=date(2025, 5, 5),
                    service_from=date(2025, 5, 1),
                    service_to=date(2025, 5, 31),
                    amount_cents=77_777,
                )
            ],
            recorded_by="clerk",
        )
        b.ledger.record_booking(booking("NK", kind="receipt", amount_cents=4_999), recorded_by="clerk")
        b.ledger.reverse_booking("K-1", reason="falsch", reversed_by="clerk")


def _export(cli, tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    result = cli("export", "koa-vv", "--year", "2025", "--format", "json", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_figures_equal_the_split_to_the_cent(cli, settings, tmp_path):
    _fill(settings)
    doc = _export(cli, tmp_path, "q2.json", "--quarter", "2")
    with open_books(settings) as b:
        catch_up(b.ledger, b.split_view)
        lines = [
            s
            for q in (1, 2)
            for s in split_lines(b.split_view, b.ledger.catalogue, b.ledger.rates, "BW", 2025, q)
        ]
    for c in doc["categories"]:
        mine = [s for s in lines if s.category == c["category"]]
        assert c["net_cents"] == sum(s.net_cents for s in mine)
        assert c["federal_cents"] == sum(s.federal_cents for s in mine)
        assert c["municipal_cents"] == sum(s.municipal_cents for s in mine)
        belege = [x for x in doc["belege"] if x["category"] == c["category"]]
        assert sum(x["federal_cents"] for x in belege) == c["federal_cents"]
        assert sum(x["net_cents"] for x in belege) == c["net_cents"]
    kdu = next(c for c in doc["categories"] if c["category"] == "kdu")
    assert kdu["net_cents"] == sum(33_333 + i for i in range(7)) - 33_334 - 4_999 + 77_777
    assert doc["kdu"]["federal_final_cents"] == kdu["federal_cents"]
    q1 = _export(cli, tmp_path, "q1.json", "--quarter", "1")
    assert "Q2-1" not in {x["booking_key"] for x in q1["belege"]}  # Q1 alone; Q2 is cumulative
    assert "Q2-1" in {x["booking_key"] for x in doc["belege"]}


def test_an_export_is_reproducible_for_its_moment(cli, settings, tmp_path):
    _fill(settings)
    first = _export(cli, tmp_path, "now.json", "--quarter", "1")
    time.sleep(0.01)
    with open_books(settings) as b:  # later bookings must not change the report of that moment
        b.ledger.record_booking(booking("LATER"), recorded_by="clerk")
    again = _export(cli, tmp_path, "again.json", "--quarter", "1", "--as-of", first["protocol"]["as_of"])
    assert (tmp_path / "now.json").read_bytes() == (tmp_path / "again.json").read_bytes()
    assert again["protocol"]["figures_sha256"] == first["protocol"]["figures_sha256"]
    current = _export(cli, tmp_path, "current.json", "--quarter", "1")
    assert current["protocol"]["figures_sha256"] != first["protocol"]["figures_sha256"]


def test_funds_drawn_show_against_what_is_due(cli, settings, tmp_path):
    _fill(settings)
    ok = cli(
        "draw",
        "--title",
        "1101/681 12",
        "--year",
        "2025",
        "--date",
        "31.03.2025",
        "--amount",
        "1.000,00",
        "--document-ref",
        "HKR-1",
    )
    assert ok.exit_code == 0, ok.output
    assert (
        cli(
            "draw",
            "--title",
            "1101/681 12",
            "--year",
            "2025",
            "--date",
            "31.03.2025",
            "--amount",
            "1.000,00",
            "--document-ref",
            "HKR-1",
        ).exit_code
        == 0
    )  # the same voucher again: a repeat
    clash = cli(
        "draw",
        "--title",
        "1101/681 12",
        "--year",
        "2025",
        "--date",
        "31.03.2025",
        "--amount",
        "2,00",
        "--document-ref",
        "HKR-1",
    )
    assert clash.exit_code == 1 and "document_ref" in clash.stderr
    bad = cli(
        "draw",
        "--title",
        "9999",
        "--year",
        "2025",
        "--date",
        "31.03.2025",
        "--amount",
        "2,00",
        "--document-ref",
        "HKR-2",
    )
    assert bad.exit_code == 1 and "title" in bad.stderr
    doc = _export(cli, tmp_path, "q1.json", "--quarter", "1")
    bg = next(t for t in doc["titles"] if t["federal_title"] == "1101/681 12")
    assert bg["drawn_cents"] == 100_000
    assert bg["to_settle_cents"] == bg["federal_cents"] - 100_000 == 3 * 56_300 - 100_000
    # the figure leads to the draw behind it (the workbook's Mittelabrufe)
    assert doc["draws"] == [
        {
            "federal_title": "1101/681 12",
            "value_date": "2025-03-31",
            "amount_cents": 100_000,
            "document_ref": "HKR-1",
            "recorded_by": doc["draws"][0]["recorded_by"],
        }
    ]


def test_an_empty_period_is_a_valid_report(cli, settings, tmp_path):
    _fill(settings)
    out = tmp_path / "empty.json"
    result = cli("export", "koa-vv", "--year", "2024", "--format", "json", "--out", str(out))
    assert result.exit_code == 0 and "empty period" in result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["belege"] == [] and doc["categories"] == []


@pytest.mark.parametrize(
    "args, word",
    [
        (["--year", "2030"], "--year"),
        (["--year", "1999"], "--year"),
        (["--year", "2025", "--as-of", "2099-01-01"], "--as-of"),
        (["--year", "2025", "--as-of", "morgen"], "--as-of"),
        (["--year", "2025", "--out", "/proc/no/such.json", "--format", "json"], "--out"),
    ],
)
def test_bad_arguments_are_one_line(cli, settings, args, word):
    _fill(settings)
    result = cli("export", "koa-vv", *args)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and word in result.stderr


def test_quarter_five_is_a_usage_error(cli):
    assert cli("export", "koa-vv", "--year", "2025", "--quarter", "5").exit_code == 2


def test_workbook_submission_and_changes_since(cli, settings, tmp_path):
    _fill(settings)
    first = tmp_path / "q1.xlsx"
    made = cli("export", "koa-vv", "--year", "2025", "--quarter", "1", "--out", str(first))
    assert made.exit_code == 0, made.output
    as_of = made.output.split(" as of ")[1].split(" (position")[0]
    again = tmp_path / "q1-again.xlsx"
    assert (
        cli(
            "export", "koa-vv", "--year", "2025", "--quarter", "1", "--as-of", as_of, "--out", str(again)
        ).exit_code
        == 0
    )
    assert first.read_bytes() == again.read_bytes()  # reproducible bit for bit

    forged = tmp_path / "forged.xlsx"
    forged.write_bytes(first.read_bytes()[:-1] + b"x")
    refused = cli("submit", str(forged), "--year", "2025", "--quarter", "1", "--as-of", as_of)
    assert refused.exit_code == 1 and "nothing was recorded" in refused.stderr
    submitted = cli("submit", str(first), "--year", "2025", "--quarter", "1", "--as-of", as_of)
    assert submitted.exit_code == 0, submitted.output

    with open_books(settings) as b:
        b.ledger.record_booking(booking("AFTER", amount_cents=10_000), recorded_by="clerk")
    drew = cli(
        "draw", "--title", "1101/681 12", "--year", "2025", "--date", "31.03.2025",
        "--amount", "500,00", "--document-ref", "HKR-LATE",
    )  # fmt: skip
    assert drew.exit_code == 0, drew.output
    changes = cli("export", "koa-vv", "--year", "2025", "--quarter", "1", "--changes-since-submission")
    assert changes.exit_code == 0, changes.output
    assert "1101/632 11 kdu net:" in changes.output
    assert "1101/681 12 drawn: 0,00 -> 500,00" in changes.output
    assert "draw HKR-LATE (1101/681 12, 2025-03-31, 500,00): new since the submission" in changes.output
    assert "booking AFTER (kdu, 100,00): new since the submission" in changes.output
    none_yet = cli("export", "koa-vv", "--year", "2025", "--changes-since-submission")
    assert none_yet.exit_code == 1 and "no submitted report" in none_yet.stderr


def test_the_same_books_reached_by_another_name_reproduce_the_workbook(
    store, cli, settings, tmp_path, monkeypatch
):
    """The Protokoll names the books by their seal, not by host or path: an export made over
    127.0.0.1 is submitted over localhost (a copied SQLite directory: a restored backup)."""
    import shutil

    from openpyxl import load_workbook

    from ledger import audit

    _fill(settings)
    first = tmp_path / "year.xlsx"
    made = cli("export", "koa-vv", "--year", "2025", "--out", str(first))
    assert made.exit_code == 0, made.output
    as_of = made.output.split(" as of ")[1].split(" (position")[0]
    position = int(made.output.split("(position ")[1].split(")")[0])
    with open_books(settings) as b:
        head = audit.head(b.ledger)
    assert head.position == position
    protokoll = {
        r[0]: r[1] for r in load_workbook(first)["Protokoll"].iter_rows(values_only=True) if r and r[0]
    }
    assert protokoll["Datenbestand"] == f"Ereignisprotokoll bis Position {position}, Siegel {head.head.hex()}"

    if "KOA_DATABASE_URL" in store:
        url = store["KOA_DATABASE_URL"]
        other = url.replace("@127.0.0.1:", "@localhost:")
        other = other if other != url else url.replace("@localhost:", "@127.0.0.1:")
        assert other != url
        monkeypatch.setenv("KOA_DATABASE_URL", other)
    else:
        moved = tmp_path / "restored"
        shutil.copytree(store["KOA_DATA_DIR"], moved)
        monkeypatch.setenv("KOA_DATA_DIR", str(moved))
    submitted = cli("submit", str(first), "--year", "2025", "--as-of", as_of)
    assert submitted.exit_code == 0, submitted.output


def test_the_workbook_read_back_equals_the_split(cli, settings, tmp_path):
    """Every category row of the Übersicht, read back with openpyxl, equals the split to the cent."""
    from openpyxl import load_workbook

    _fill(settings)
    path = tmp_path / "q2.xlsx"
    assert cli("export", "koa-vv", "--year", "2025", "--quarter", "2", "--out", str(path)).exit_code == 0
    with open_books(settings) as b:
        catch_up(b.ledger, b.split_view)
        lines = [
            s
            for q in (1, 2)
            for s in split_lines(b.split_view, b.ledger.catalogue, b.ledger.rates, "BW", 2025, q)
        ]
    ws = load_workbook(path)["Übersicht"]
    header = next(r for r in ws.iter_rows(values_only=True) if r[0] == "Titel / Kategorie")
    col = {name: i for i, name in enumerate(header)}
    seen = set()
    for row in ws.iter_rows(values_only=True):
        category = row[0]
        if not any(s.category == category for s in lines):
            continue
        mine = [s for s in lines if s.category == category]

        def cents(name, row=row):
            return int(round(row[col[name]] * 100))

        assert cents("Netto") == sum(s.net_cents for s in mine)
        assert cents("Bundesanteil") == sum(s.federal_cents for s in mine)
        assert cents("Kommunaler Anteil") == sum(s.municipal_cents for s in mine)
        assert row[col["Buchungen"]] == sum(s.booking_count for s in mine)
        seen.add(category)
    assert seen == {s.category for s in lines}


def test_a_draw_in_the_run_off_period_belongs_to_the_fourth_quarter(cli, settings, tmp_path):
    _fill(settings)
    ok = cli(
        "draw",
        "--title",
        "1101/681 12",
        "--year",
        "2025",
        "--date",
        "2026-01-10",
        "--amount",
        "5,00",
        "--document-ref",
        "HKR-RUNOFF",
    )
    assert ok.exit_code == 0, ok.output
    q1 = _export(cli, tmp_path, "q1.json", "--quarter", "1")
    year = _export(cli, tmp_path, "y.json")
    assert sum(t["drawn_cents"] for t in q1["titles"]) == 0
    assert sum(t["drawn_cents"] for t in year["titles"]) == 500


def test_an_export_is_reproduced_by_its_moment_and_its_position(cli, settings, tmp_path):
    """An event stamped before an export's moment but committed after it (a payment run's events
    are stamped seconds before their commit) is not in the export; a replay by the moment alone
    counts it, by the moment and the export's position it does not: the same bytes again."""
    _fill(settings)
    with open_books(settings) as b:
        late = Booking.record(
            booking("LATE-1", amount_cents=99_999),
            recorded_by="clerk",
            catalogue=b.ledger.catalogue,
            rates=b.ledger.base_rates,
        )  # stamped now, saved below
        time.sleep(0.02)
        made = cli(
            "export", "koa-vv", "--year", "2025", "--format", "json", "--out", str(tmp_path / "made.json")
        )
        assert made.exit_code == 0, made.output
        moment, position = re.search(r" as of (\S+) \(position (\d+)\)", made.output).groups()
        b.ledger.save(late)  # committed after the export's moment
    made_bytes = (tmp_path / "made.json").read_bytes()
    assert b"LATE-1" not in made_bytes

    by_moment = _export(cli, tmp_path, "by-moment.json", "--as-of", moment)
    assert "LATE-1" in {x["booking_key"] for x in by_moment["belege"]}
    _export(cli, tmp_path, "exact.json", "--as-of", moment, "--position", position)
    assert (tmp_path / "exact.json").read_bytes() == made_bytes

    refused = cli("export", "koa-vv", "--year", "2025", "--position", position)
    assert refused.exit_code != 0 and "--position" in refused.output and "--as-of" in refused.output


def test_a_rate_set_in_flight_is_cut_at_the_export_s_position(cli, settings, tmp_path):
    """The bookings were cut at the export's position, the rates (and budget, commitments and
    allocation runs) only at its moment: a rate change stamped before the moment and committed
    after the export was left out of the export and counted by its reproduction."""
    _fill(settings)
    with open_books(settings) as b:
        book = b.ledger._parameter_book()
        book.set(
            name="vwk_federal_share", year=2025, value=Decimal("0.9"), land="", reason="x", set_by="admin"
        )
        time.sleep(0.02)  # stamped now, saved after the export
        made = cli(
            "export", "koa-vv", "--year", "2025", "--format", "json", "--out", str(tmp_path / "made.json")
        )
        assert made.exit_code == 0, made.output
        moment, position = re.search(r" as of (\S+) \(position (\d+)\)", made.output).groups()
        b.ledger.save(book)
    _export(cli, tmp_path, "exact.json", "--as-of", moment, "--position", position)
    assert (tmp_path / "exact.json").read_bytes() == (tmp_path / "made.json").read_bytes()
    by_moment = _export(cli, tmp_path, "by-moment.json", "--as-of", moment)  # as recorded by then
    assert ["Verwaltungskostenanteil des Bundes", "0.9"] in by_moment["protocol"]["parameters"]


def test_an_event_stamped_after_the_moment_but_stored_before_is_reproduced(cli, settings, tmp_path):
    """A writer whose clock runs ahead (another host) stores a booking stamped after the
    exporter's moment; the live export counts it (stored before its position), and its
    reproduction by moment and position dropped it by its stamp."""
    _fill(settings)
    with open_books(settings) as b:
        ahead = Booking.record(
            booking("AHEAD-1", amount_cents=12_345),
            recorded_by="clerk",
            catalogue=b.ledger.catalogue,
            rates=b.ledger.base_rates,
        )
        (event,) = ahead._pending_events
        object.__setattr__(event, "timestamp", event.timestamp + timedelta(minutes=5))
        b.ledger.save(ahead)
    made = cli("export", "koa-vv", "--year", "2025", "--format", "json", "--out", str(tmp_path / "made.json"))
    assert made.exit_code == 0, made.output
    assert b"AHEAD-1" in (tmp_path / "made.json").read_bytes()
    moment, position = re.search(r" as of (\S+) \(position (\d+)\)", made.output).groups()
    _export(cli, tmp_path, "exact.json", "--as-of", moment, "--position", position)
    assert (tmp_path / "exact.json").read_bytes() == (tmp_path / "made.json").read_bytes()
