"""The Belegliste: PostgreSQL's COPY path and the Python path give the same bytes, every booking
behind the figures is in it once, and its shares add up to the figures to the cent."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from domain.booking import Kind
from domain.money import share_cents
from exports import koavv_belege
from exports.koavv_report import build_report
from projections.split_projection import catch_up
from tests.factories import booking

CATEGORIES = ["kdu", "buergergeld", "vwk.personal", "vwk.sachkosten", "egt.aktivierung", "but"]


def _fill(books, n: int = 400, seed: int = 7, reversals: int = 5) -> None:
    rng = random.Random(seed)
    run = []
    for i in range(n):
        month = rng.randint(1, 12)
        run.append(
            replace(
                booking(
                    f"BL-{rng.randint(0, 10**6):07d}-{i}",
                    amount_cents=rng.choice([1, 3, 5, 7, 999, 1001]) * rng.randint(1, 3),
                ),
                kind=rng.choice([Kind.PAYMENT, Kind.PAYMENT, Kind.RECEIPT]),
                category=rng.choice(CATEGORIES),
                payment_date=date(2025, month, 10),
                service_from=date(2025, month, 1),
                service_to=date(2025, month, 28),
            )
        )
    books.ledger.import_bookings(run, recorded_by="clerk")
    for c in run[:reversals]:
        books.ledger.reverse_booking(c.key, reason="Korrektur", reversed_by="clerk", on=date(2025, 6, 1))
    catch_up(books.ledger, books.split_view)


def _report(books, quarter: int | None, year: int = 2025):
    return build_report(
        books.split_view,
        books.ledger,
        land="BW",
        year=year,
        quarter=quarter,
        as_of=datetime.now(UTC),
        last_position=books.ledger.max_notification_id(),
        store=books.where,
    )


@pytest.mark.parametrize("quarter", [1, 3, None])
def test_copy_path_equals_python_path_and_adds_up(books, quarter):
    _fill(books)
    report = _report(books, quarter)
    belege = report.belege
    if quarter != 1:
        # A later quarter's share is its part of the year's, rounded once (domain.split): in these
        # books some lines' shares are a cent off their own net times the rate, and both paths
        # must share exactly that figure.
        assert any(s.federal_cents != share_cents(s.net_cents, s.federal_rate) for s in belege.lines)
    fast = io.BytesIO()
    koavv_belege.write_csv(belege, fast)  # PostgreSQL: COPY; SQLite: the Python path
    slow = io.BytesIO()
    slow.write(koavv_belege.header_bytes())
    koavv_belege._write_rows(iter(belege), slow)
    assert fast.getvalue() == slow.getvalue()
    # A list of the same BelegRows (as tests and small reports build them) gives the same bytes.
    assert koavv_belege.sha256(list(belege)) == koavv_belege.sha256(belege)

    rows = list(csv.DictReader(io.StringIO(fast.getvalue().decode())))
    assert len(rows) == len(belege) > 0
    assert len({r["booking_key"] for r in rows}) == len(rows)
    sums = defaultdict(lambda: [0, 0, 0, 0, 10**9, 0])
    for line, r in enumerate(rows, 2):
        s = sums[(r["category"], int(r["quarter"]))]
        s[0] += 1
        s[1] += int(r["net_cents"])
        s[2] += int(r["federal_cents"])
        s[3] += int(r["municipal_cents"])
        s[4], s[5] = min(s[4], line), max(s[5], line)
        assert int(r["federal_cents"]) + int(r["municipal_cents"]) == int(r["net_cents"])
    for g in koavv_belege.groups(belege):
        if g.booking_count:
            assert sums[(g.category, g.quarter)] == [
                g.booking_count,
                g.net_cents,
                g.federal_cents,
                g.municipal_cents,
                g.first_line,
                g.last_line,
            ]
    for c in report.categories:
        got = [s for (cat, _), s in sums.items() if cat == c.category]
        assert sum(s[2] for s in got) == c.federal_cents
        assert sum(s[0] for s in got) == c.booking_count


def test_csv_format_is_fixed(books):
    books.ledger.import_bookings([booking("FMT-1", case_ref="")], recorded_by="clerk")
    catch_up(books.ledger, books.split_view)
    out = io.BytesIO()
    koavv_belege.write_csv(_report(books, 1).belege, out)
    header, line, end = out.getvalue().decode().split("\n")
    assert end == ""
    assert header == ",".join(koavv_belege.FIELDS)
    values = line.split(",")
    assert values[0] == "FMT-1" and values[3] == "2025-02-27"
    assert values[6].startswith("20") and values[6].endswith("+00")
    assert values[14] == '""'  # an empty case reference is an empty quoted value on every path


def test_csv_field_quotes_as_postgres_does():
    assert [koavv_belege.csv_field(v) for v in ("", "a b", "x,y", 'q"q', 1, " lead", "a#b:c/d")] == [
        '""',
        "a b",
        '"x,y"',
        '"q""q"',
        "1",
        " lead",
        "a#b:c/d",
    ]


def test_utc_text_is_postgres_iso_output():
    from datetime import timedelta, timezone

    cet = timezone(timedelta(hours=1))
    assert (
        koavv_belege.utc_text(datetime(2025, 3, 1, 13, 0, 5, 250000, tzinfo=cet))
        == "2025-03-01 12:00:05.25+00"
    )
    assert koavv_belege.utc_text(datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)) == "2025-03-01 12:00:05+00"
    assert koavv_belege.utc_text(datetime(2025, 3, 1, 12, 0, 5, 1)) == "2025-03-01 12:00:05.000001+00"


def test_bookings_of_a_year_beyond_its_eingliederungsbudget_add_up_to_the_capped_lines(books):
    """The budget runs out in Q1: Q1's federal part is shared over its bookings by net, Q2 is all
    municipal. Neither line's share is its rate times its net, so the list shares each line as it is."""
    from ledger import budget_commands

    budget_commands.allocate(
        books, year=2025, title="egt", amount_cents=100_000, reference="Z-1", reason="Zuteilung", by="admin"
    )
    run = [
        replace(
            booking(f"EG-{q}-{i}", amount_cents=cents, case_ref=""),
            category="egt.aktivierung",
            payment_date=date(2025, 3 * q, 10),
            service_from=date(2025, 3 * q, 1),
            service_to=date(2025, 3 * q, 28),
        )
        for q, amounts in ((1, (40_000, 40_000, 40_001)), (2, (33_333, 33_334)))
        for i, cents in enumerate(amounts)
    ]
    books.ledger.import_bookings(run, recorded_by="clerk")
    catch_up(books.ledger, books.split_view)
    report = _report(books, 2)
    out = io.BytesIO()
    koavv_belege.write_csv(report.belege, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    federal = defaultdict(int)
    for r in rows:
        federal[int(r["quarter"])] += int(r["federal_cents"])
        assert int(r["federal_cents"]) + int(r["municipal_cents"]) == int(r["net_cents"])
    assert federal == {1: 100_000, 2: 0}
    assert [c.federal_cents for c in report.categories if c.category == "egt.aktivierung"] == [100_000]


def _both_paths(belege) -> list[dict]:
    fast = io.BytesIO()
    koavv_belege.write_csv(belege, fast)  # PostgreSQL: COPY; SQLite: the Python path
    slow = io.BytesIO()
    slow.write(koavv_belege.header_bytes())
    koavv_belege._write_rows(iter(belege), slow)
    assert fast.getvalue() == slow.getvalue()
    return list(csv.DictReader(io.StringIO(fast.getvalue().decode())))


def test_a_line_cut_off_by_the_budget_is_shared_alike_on_both_paths(books):
    """Cut off by the budget, the line's share is stored as a rate rounded to six decimals
    (0.382262), which here gives the line's total. The COPY path shared the bookings by that rate,
    the reference path by net amount: 1.726,93 / 2.316,43 € against 1.726,94 / 2.316,42 €."""
    from ledger import budget_commands

    budget_commands.allocate(
        books, year=2025, title="egt", amount_cents=404_336, reference="Z-1", reason="Zuteilung", by="admin"
    )
    run = [
        replace(booking(f"EG-{i}", amount_cents=cents, case_ref=""), category="egt.aktivierung")
        for i, cents in enumerate((451_768, 605_979))
    ]
    books.ledger.import_bookings(run, recorded_by="clerk")
    catch_up(books.ledger, books.split_view)
    rows = _both_paths(_report(books, 1).belege)
    assert [(r["booking_key"], int(r["federal_cents"])) for r in rows] == [
        ("EG-0", 172_694),
        ("EG-1", 231_642),
    ]


def _paired(rows) -> list[tuple[dict, dict]]:
    by_key = {r["booking_key"]: r for r in rows}
    return [
        (by_key[r["reverses_key"]], r)
        for r in rows
        if r["reverses_key"] in by_key
        and (by_key[r["reverses_key"]]["category"], by_key[r["reverses_key"]]["quarter"])
        == (r["category"], r["quarter"])
    ]


def test_a_storno_cancels_its_original_to_the_cent_on_both_paths(books):
    """Ranked apart, 1.586,94 € and its Storno got +1.386,98 € and -1.386,99 € federal. Now each
    pair in a group gets opposite shares and the group's share goes to the others."""

    def pay(key, cents, month):
        d = date(2025, month, 10)
        return replace(
            booking(key, amount_cents=cents, case_ref=""),
            category="vwk.sachkosten",
            payment_date=d,
            service_from=d.replace(day=1),
            service_to=d.replace(day=28),
        )

    books.ledger.import_bookings([pay("ST-X", 12_345, 2)], recorded_by="clerk")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    books.ledger.import_bookings(
        [pay("ST-A", 158_694, 8), pay("ST-B", 31_273, 8), pay("ST-C", 11_684, 8)], recorded_by="clerk"
    )
    for key in ("ST-A", "ST-X"):  # ST-X's Storno lands in Q2: Q1 is closed
        books.ledger.reverse_booking(key, reason="Korrektur", reversed_by="clerk", on=date(2025, 5, 5))
    catch_up(books.ledger, books.split_view)
    rows = _both_paths(_report(books, None).belege)
    federal = {r["booking_key"]: int(r["federal_cents"]) for r in rows}
    assert federal == {
        "ST-X": 10_790,  # 123,45 × 87,4 % = 107,8953: Q1 alone
        "ST-X/storno": -10_790,  # Q2 alone: its own line, its own share
        "ST-A": 138_699,
        "ST-A/storno": -138_699,
        "ST-B": 27_332,
        "ST-C": 10_212,
    }
    assert (
        federal["ST-A"] + federal["ST-A/storno"] + federal["ST-B"] + federal["ST-C"] == 37_544
    )  # 429,57 × 87,4 %


def test_every_storno_in_its_originals_group_cancels_it_and_the_groups_still_add_up(books):
    _fill(books, seed=3, reversals=150)
    report = _report(books, None)
    rows = _both_paths(report.belege)
    pairs = _paired(rows)
    assert len(pairs) == 150
    for original, storno in pairs:
        assert int(storno["federal_cents"]) == -int(original["federal_cents"])
        assert int(storno["municipal_cents"]) == -int(original["municipal_cents"])
    federal = defaultdict(int)
    for r in rows:
        federal[r["category"]] += int(r["federal_cents"])
    assert federal == {c.category: c.federal_cents for c in report.categories if c.booking_count}


def test_moments_are_read_in_utc_whatever_the_server_s_time_zone(settings, monkeypatch):
    """PostgreSQL gives a timestamptz in the session's time zone; a server set to Europe/Berlin
    put '+01:00' into every booking's recorded_at of a live JSON export, where the replay of the
    same moment writes UTC. (PGTZ sets the session's zone as a server default would.)"""
    from datetime import timedelta

    from ledger.bootstrap import open_books

    monkeypatch.setenv("PGTZ", "Europe/Berlin")
    with open_books(settings) as books:
        books.ledger.import_bookings([booking("TZ-1")], recorded_by="clerk")
        catch_up(books.ledger, books.split_view)
        (row,) = books.split_view.bookings(2025, counted_only=False)
    assert row.recorded_at.utcoffset() == timedelta(0)
