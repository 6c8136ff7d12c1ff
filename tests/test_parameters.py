"""Rates as audited, dated parameters, on both stores: the split follows a change, a change and its
reversal restore the figures exactly, and a report as of an earlier moment keeps the earlier rate."""

from __future__ import annotations

import json
import time
from datetime import date
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import ValidationError
from ledger.application import Ledger
from ledger.bootstrap import open_books
from ledger.cli import main
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import booking
from tests.races import meanwhile


def _lines(books, year=2025):
    catch_up(books.ledger, books.split_view)
    return split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", year, 1)


def test_the_split_follows_a_change_and_its_reversal_restores_it(books):
    books.ledger.record_booking(
        booking("VK", category="vwk.sachkosten", amount_cents=100_000_000, case_ref=""), recorded_by="clerk"
    )
    books.ledger.approve_booking("VK", approved_by="approver")
    original = _lines(books)
    assert original[0].federal_cents == 87_400_000  # € 874,000.00 of € 1,000,000.00 at 87.4 %
    books.ledger.set_parameter(
        name="vwk_federal_share",
        year=2025,
        value=Decimal("0.848"),
        land="",
        reason="§ 46 Abs. 3 SGB II",
        set_by="admin",
    )
    changed = _lines(books)
    assert (changed[0].federal_cents, changed[0].municipal_cents) == (84_800_000, 15_200_000)
    assert "84,8 %" in changed[0].rate_label
    books.ledger.set_parameter(
        name="vwk_federal_share",
        year=2025,
        value=Decimal("0.874"),
        land="",
        reason="Rücknahme",
        set_by="admin",
    )
    assert _lines(books) == original
    history = books.ledger.parameter_changes()
    assert [(e.value, e.set_by, e.reason) for e in history] == [
        ("0.848", "admin", "§ 46 Abs. 3 SGB II"),
        ("0.874", "admin", "Rücknahme"),
    ]
    # The change applies from its year on, not before.
    assert books.ledger.rates.vwk_share(2024) == Decimal("0.874")


def test_any_change_and_its_reversal_restore_the_figures_exactly(books):
    books.ledger.import_bookings(
        [booking(f"K-{i}", amount_cents=12_345 + 17 * i) for i in range(9)]
        + [
            booking(f"V-{i}", category="vwk.personal", amount_cents=99_999 + i, case_ref="") for i in range(4)
        ],
        recorded_by="clerk",
    )
    original = _lines(books)

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(["vwk_federal_share", "kdu_quota_final"]),
        st.decimals(min_value=0, max_value=1, places=3),
    )
    def change_and_revert(name, value):
        before = books.ledger.rates
        old = before.vwk_share(2025) if name == "vwk_federal_share" else before.kdu_quota("BW", 2025).final
        books.ledger.set_parameter(
            name=name, year=2025, value=value, land="BW", reason="Test", set_by="admin"
        )
        books.ledger.set_parameter(
            name=name, year=2025, value=old, land="BW", reason="zurück", set_by="admin"
        )
        assert _lines(books) == original

    change_and_revert()


def test_invalid_changes_are_refused(books):
    with pytest.raises(ValidationError) as e:
        books.ledger.set_parameter(
            name="nope", year=2025, value=Decimal("0.5"), land="", reason="x", set_by="a"
        )
    assert e.value.field == "name"
    with pytest.raises(ValidationError) as e:
        books.ledger.set_parameter(
            name="kdu_quota_final", year=2025, value=Decimal("0.5"), land="XX", reason="x", set_by="a"
        )
    assert e.value.field == "land"
    with pytest.raises(ValidationError) as e:
        books.ledger.set_parameter(
            name="kdu_quota_final", year=2025, value=Decimal("0.5"), land="BW", reason=" ", set_by="a"
        )
    assert e.value.field == "reason"


def test_a_report_as_of_before_a_change_keeps_the_old_rate(store, settings, tmp_path, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as b:
        b.ledger.record_booking(
            booking(
                "K",
                payment_date=date(2024, 2, 27),
                service_from=date(2024, 3, 1),
                service_to=date(2024, 3, 31),
                amount_cents=10_000_000,
            ),
            recorded_by="clerk",
        )
        b.ledger.approve_booking("K", approved_by="approver")
    run = CliRunner()
    first = tmp_path / "first.json"
    assert (
        run.invoke(
            main, ["export", "koa-vv", "--year", "2024", "--format", "json", "--out", str(first)]
        ).exit_code
        == 0
    )
    doc = json.loads(first.read_text(encoding="utf-8"))
    # domain.md: € 100,000.00 of KdU in BW 2024: provisional 71.9 % -> 71,900.00, final 72.1 % -> 72,100.00
    assert (doc["kdu"]["federal_provisional_cents"], doc["kdu"]["federal_final_cents"]) == (
        7_190_000,
        7_210_000,
    )
    assert doc["kdu"]["difference_cents"] == 20_000
    time.sleep(0.01)
    changed = run.invoke(
        main,
        [
            "params",
            "set",
            "kdu_quota_final",
            "--year",
            "2024",
            "--value",
            "72,3 %",
            "--reason",
            "Korrektur BBFestV",
            "--user",
            "admin",
        ],
    )
    assert changed.exit_code == 0, changed.output
    assert "difference 200,00" in changed.output  # 0.2 points of € 100,000.00
    again = tmp_path / "again.json"
    assert (
        run.invoke(
            main,
            [
                "export",
                "koa-vv",
                "--year",
                "2024",
                "--format",
                "json",
                "--out",
                str(again),
                "--as-of",
                doc["protocol"]["as_of"],
            ],
        ).exit_code
        == 0
    )
    assert again.read_bytes() == first.read_bytes()
    now = json.loads(
        run.invoke(
            main,
            ["export", "koa-vv", "--year", "2024", "--format", "json", "--out", str(tmp_path / "now.json")],
        ).exit_code
        == 0
        and (tmp_path / "now.json").read_text(encoding="utf-8")
    )
    assert now["kdu"]["federal_final_cents"] == 7_230_000


def test_cli_rejects_bad_values(store, monkeypatch):
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    run = CliRunner()
    bad = run.invoke(
        main, ["params", "set", "vwk_federal_share", "--year", "2025", "--value", "abc", "--reason", "x"]
    )
    assert bad.exit_code == 1 and "value" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert (
        run.invoke(
            main, ["params", "set", "nope", "--year", "2025", "--value", "0.5", "--reason", "x"]
        ).exit_code
        == 2
    )
    listed = run.invoke(main, ["params", "list", "--year", "2024"])
    assert "2024: Verwaltungskosten Bund 87,4 %; KdU BW provisional 71,9 %, final 72,1 %" in listed.output


def test_kdu_view_from_provisional_to_final(store, settings, monkeypatch):
    """domain.md: € 100,000.00 of § 22 Abs. 1 spending in BW 2024, provisional 71.9 %, final 72.1 %."""
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as b:
        b.ledger.record_booking(
            booking(
                "K",
                payment_date=date(2024, 2, 27),
                service_from=date(2024, 3, 1),
                service_to=date(2024, 3, 31),
                amount_cents=10_500_000,
            ),
            recorded_by="clerk",
        )
        b.ledger.approve_booking("K", approved_by="approver")
        b.ledger.record_booking(
            booking(
                "NK",
                kind="receipt",
                payment_date=date(2024, 5, 2),
                service_from=date(2024, 5, 1),
                service_to=date(2024, 5, 31),
                amount_cents=500_000,
            ),
            recorded_by="clerk",
        )
    out = CliRunner().invoke(main, ["kdu", "--year", "2024"])
    assert out.exit_code == 0, out.output
    assert "net 100.000,00" in out.output
    assert "provisional quota 71,9 %: Bund 71.900,00" in out.output
    assert "final quota       72,1 %: Bund 72.100,00" in out.output
    assert "difference to settle with the Land: 200,00" in out.output
    missing = CliRunner().invoke(main, ["kdu", "--year", "2019"])
    assert missing.exit_code == 1 and "2019" in missing.stderr


def _booked_meanwhile(other) -> None:
    """Another process books € 1,000.00 of administrative costs and approves it (and, as every
    `koa book` does, catches the shared view up)."""
    other.ledger.record_booking(
        booking("VK-DURING", category="vwk.sachkosten", amount_cents=100_000, case_ref=""),
        recorded_by="clerk",
    )
    other.ledger.approve_booking("VK-DURING", approved_by="approver")
    catch_up(other.ledger, other.split_view)


def test_the_difference_shown_is_the_change_s_own(store, settings, monkeypatch):
    """`koa params set` showed the federal share before and after the change as two reads of the
    live view, so a booking made by another process in between was shown as part of the
    change's difference. Both figures are now of the same bookings."""
    for k, v in store.items():
        monkeypatch.setenv(k, v)
    with open_books(settings) as books:
        books.ledger.record_booking(
            booking("VK", category="vwk.sachkosten", amount_cents=100_000, case_ref=""), recorded_by="clerk"
        )
        books.ledger.approve_booking("VK", approved_by="approver")
    raced = meanwhile(monkeypatch, settings, Ledger, "set_parameter", _booked_meanwhile)
    changed = CliRunner().invoke(
        main,
        [
            "params",
            "set",
            "vwk_federal_share",
            "--year",
            "2025",
            "--value",
            "90 %",
            "--reason",
            "Test",
            "--user",
            "a",
        ],
    )
    assert changed.exit_code == 0, changed.output
    assert raced
    # € 1,000.00 at 87.4 % and at 90 %; the booking made meanwhile is in neither figure
    assert "federal share 2025: 874,00 -> 900,00 (difference 26,00)" in changed.output
    with open_books(settings) as books:
        assert sum(s.federal_cents for s in _lines(books)) == 180_000  # both bookings, at 90 %


def test_the_difference_answered_over_http_is_the_change_s_own(client, settings, monkeypatch):
    from tests.api_fixtures import auth, booking_body

    r = client.post(
        "/bookings",
        json=booking_body("V-1", amount="1.000,00", category="vwk.personal", case_ref=""),
        headers=auth("clerk"),
    )
    assert r.status_code == 201, r.text
    raced = meanwhile(monkeypatch, settings, Ledger, "set_parameter", _booked_meanwhile)
    body = {"name": "vwk_federal_share", "year": 2025, "value": "90 %", "reason": "Test"}
    r = client.post("/parameters", json=body, headers=auth("admin"))
    assert r.status_code == 201, r.text
    assert raced
    assert (r.json()["federal_before"], r.json()["federal_after"]) == ("874.00", "900.00")
