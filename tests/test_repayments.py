"""Funds repaid to the Bund with interest (`koa repay`, POST /funds-repayments), on both stores:
the repayment reduces the funds drawn in the settlement, the interest is kept with its days and
rates, and reports made before it stay as they were."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import openpyxl

from ledger.bootstrap import open_books
from tests.api_fixtures import auth
from tests.factories import booking

VWK = "1101/636 13"


def _repay(cli, *, amount: str, ref: str, when: str = "2026-03-15", since: str = "2025-06-30", more=()):
    return cli(
        "repay", "--title", VWK, "--year", "2025", "--date", when, "--amount", amount,
        "--interest-since", since, "--document-ref", ref, "--reason", "Bescheid BMAS vom 2026-02-01", *more,
    )  # fmt: skip


def _titles(cli, tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    result = cli("export", "koa-vv", "--year", "2025", "--format", "json", "--out", out, *args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    return doc | {"vwk": next(t for t in doc["titles"] if t["federal_title"] == VWK)}


def test_a_clerk_repays_what_was_drawn_beyond_the_share_with_interest(koa, settings, tmp_path):
    # Administrative costs of 8.000,00 €, of which the Bund pays 87,4 %; 8.000,00 € were drawn.
    with open_books(settings) as b:
        b.ledger.import_bookings([booking("V-1", category="vwk.sachkosten", amount_cents=800_000)], recorded_by="clerk")
    drawn = koa("draw", "--title", VWK, "--year", "2025", "--date", "2025-06-30", "--amount", "8.000,00",
                "--document-ref", "HKR-1")  # fmt: skip
    assert drawn.exit_code == 0, drawn.output
    before = _titles(koa, tmp_path, "before.json")
    assert before["vwk"]["federal_cents"] == 699_200 and before["vwk"]["to_settle_cents"] == -100_800
    assert "repayments" not in before  # absent where there are none: earlier reports keep their hash
    moment = before["protocol"]["as_of"]

    quote = koa("repay", "--title", VWK, "--year", "2025", "--date", "2026-03-15", "--amount", "1.008,00",
                "--interest-since", "2025-06-30", "--quote")  # fmt: skip
    assert quote.exit_code == 0 and "nothing recorded" in quote.output
    # 1.008,00 € × (1,27 % + 3 points) × (184 + 74) days / 365 = 30,42 €
    assert "interest: 30,42 €" in quote.output

    paid = _repay(koa, amount="1.008,00", ref="RZ-1")
    assert paid.exit_code == 0, paid.output
    assert "funds drawn for it now 6.992,00 €" in paid.output and "interest: 30,42 €" in paid.output
    assert "2025-07-01 – 2025-12-31: 184 days" in paid.output
    again = _repay(koa, amount="1.008,00", ref="RZ-1")
    assert again.exit_code == 0  # the same voucher with the same figures: a repeat, not a second repayment
    with open_books(settings) as b:
        assert b.ledger.net_drawn_cents(VWK, 2025) == 699_200

    after = _titles(koa, tmp_path, "after.json")
    assert after["vwk"]["drawn_cents"] == 699_200 and after["vwk"]["to_settle_cents"] == 0
    assert after["repayments"] == [
        {"amount_cents": 100_800, "document_ref": "RZ-1", "federal_title": VWK, "interest_cents": 3_042,
         "recorded_by": "tester", "value_date": "2026-03-15"}
    ]  # fmt: skip
    # The report as of the moment before the repayment is the one made then, to the figures' hash.
    again_before = _titles(koa, tmp_path, "again.json", "--as-of", moment, "--position", str(before["protocol"]["last_position"]))
    assert again_before["protocol"]["figures_sha256"] == before["protocol"]["figures_sha256"]

    book = tmp_path / "after.xlsx"
    assert koa("export", "koa-vv", "--year", "2025", "--out", book).exit_code == 0
    texts = [c.value for row in openpyxl.load_workbook(book)["Übersicht"].iter_rows() for c in row]
    note = next(t for t in texts if isinstance(t, str) and t.startswith("Rückzahlung an den Bund"))
    assert "1.008,00 €" in note and "RZ-1" in note and "Zinsen 30,42 €" in note


def test_repayments_are_refused_with_the_option_and_the_reason(koa, tmp_path):
    assert koa("draw", "--title", VWK, "--year", "2025", "--date", "2025-06-30", "--amount", "100,00",
               "--document-ref", "HKR-1").exit_code == 0  # fmt: skip
    beyond = _repay(koa, amount="100,01", ref="RZ-1")
    assert beyond.exit_code == 1 and "amount: exceeds the funds drawn for 1101/636 13 2025" in beyond.stderr
    assert _repay(koa, amount="60,00", ref="RZ-1").exit_code == 0
    rest = _repay(koa, amount="40,01", ref="RZ-2")
    assert rest.exit_code == 1 and "(40,00 €)" in rest.stderr  # what is left after the first repayment
    clash = _repay(koa, amount="50,00", ref="RZ-1")
    assert clash.exit_code == 1 and "document_ref" in clash.stderr
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    future = _repay(koa, amount="1,00", ref="RZ-3", when=tomorrow, since="2025-06-30")
    assert future.exit_code == 1 and "date: must not be in the future" in future.stderr
    late_since = _repay(koa, amount="1,00", ref="RZ-3", since="2026-03-16")
    assert late_since.exit_code == 1 and "interest_since" in late_since.stderr
    bad = _repay(koa, amount="1,00", ref="RZ-3", since="30.02.2025")
    assert bad.exit_code == 1 and "--interest-since" in bad.stderr
    no_reason = koa("repay", "--title", VWK, "--year", "2025", "--date", "2026-03-15", "--amount", "1,00",
                    "--interest-since", "2025-06-30", "--document-ref", "RZ-3")  # fmt: skip
    assert no_reason.exit_code == 1 and "--reason: required" in no_reason.stderr
    wrong_title = koa("repay", "--title", "9999", "--year", "2025", "--date", "2026-03-15", "--amount", "1,00",
                      "--interest-since", "2025-06-30", "--quote")  # fmt: skip
    assert wrong_title.exit_code == 0  # a quote is arithmetic only; recording checks the title:
    assert "title" in koa("repay", "--title", "9999", "--year", "2025", "--date", "2026-03-15", "--amount", "1,00",
                          "--interest-since", "2025-06-30", "--document-ref", "X", "--reason", "r").stderr  # fmt: skip


def test_a_half_year_without_a_base_rate_asks_for_it(koa):
    # A quote may look ahead; the Basiszinssatz of a half-year not yet announced is asked for.
    quote = ("repay", "--title", VWK, "--year", "2098", "--date", "2099-03-01", "--amount", "100,00",
             "--interest-since", "2098-12-31", "--quote")  # fmt: skip
    missing = koa(*quote)
    assert missing.exit_code == 1 and "set-base-rate --from 2099-01-01" in missing.stderr
    bad = koa("params", "set-base-rate", "--from", "2099-01-02", "--value", "1,27 %", "--reason", "BAnz")
    assert bad.exit_code == 1 and "--from" in bad.stderr
    typo = koa("params", "set-base-rate", "--from", "2099-01-01", "--value", "127 %", "--reason", "BAnz")
    assert typo.exit_code == 1 and "--value" in typo.stderr
    ok = koa("params", "set-base-rate", "--from", "2099-01-01", "--value", "-0,5 %", "--reason", "BAnz 2099")
    assert ok.exit_code == 0, ok.output
    quoted = koa(*quote)
    assert quoted.exit_code == 0 and "(Basiszinssatz -0,5 % + 3 % = 2,5 %) / 365" in quoted.output
    listed = koa("params", "list", "--year", "2099").output
    assert "-0,5 % (1. Januar), not on file (1. Juli) + 3 %" in listed
    assert "Basiszinssatz from 2099-01-01 = -0,5 % (BAnz 2099)" in listed


def test_repayments_over_http(client):
    draw = {"title": VWK, "year": 2025, "date": "2025-06-30", "amount": "100,00", "document_ref": "HKR-1"}
    assert client.post("/funds-draws", json=draw, headers=auth("clerk")).status_code == 201
    body = {
        "title": VWK,
        "year": 2025,
        "date": "2026-03-15",
        "amount": "60,00",
        "interest_since": "2025-06-30",
        "document_ref": "RZ-1",
        "reason": "Bescheid BMAS",
    }
    assert client.post("/funds-repayments", json=body, headers=auth("auditor")).status_code == 403
    r = client.post("/funds-repayments", json=body, headers=auth("clerk"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["net_drawn"] == "40.00" and got["repayment"]["interest"] == "1.81"  # 60 × 4,27 % × 258 / 365
    assert [line["days"] for line in got["repayment"]["interest_lines"]] == [184, 74]
    assert client.post("/funds-repayments", json=body, headers=auth("clerk2")).json()["created"] is False
    beyond = client.post("/funds-repayments", json=body | {"document_ref": "RZ-2", "amount": "40,01"}, headers=auth("clerk"))
    assert beyond.status_code == 409 and beyond.json()["errors"][0]["field"] == "amount"
    bad = client.post(
        "/funds-repayments", json=body | {"date": "gestern", "interest_since": "x", "amount": "y"}, headers=auth("clerk")
    )
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"date", "interest_since", "amount"}
    late = client.post("/funds-repayments", json=body | {"document_ref": "RZ-3", "interest_since": "2026-04-01"}, headers=auth("clerk"))
    assert late.status_code == 422 and late.json()["errors"][0]["field"] == "interest_since"
    listed = client.get("/funds-repayments", params={"year": 2025}, headers=auth("auditor")).json()
    assert [(x["document_ref"], x["interest_cents"]) for x in listed] == [("RZ-1", 181)]
    quote = client.get(
        "/funds-repayments/interest",
        params={"amount": "60,00", "interest_since": "2025-06-30", "date": "2026-03-15"},
        headers=auth("auditor"),
    )
    assert quote.status_code == 200 and quote.json()["interest_cents"] == 181 and quote.json()["days"] == 258
    bad_quote = client.get("/funds-repayments/interest", params={"amount": "0", "interest_since": "2025-06-30", "date": "2026-03-15"}, headers=auth("auditor"))
    assert bad_quote.status_code == 422 and bad_quote.json()["errors"][0]["field"] == "amount"

    rate = {"valid_from": "2030-07-01", "value": "1,5 %", "reason": "BAnz"}
    assert client.post("/parameters/base-rates", json=rate, headers=auth("clerk")).status_code == 403
    set_ = client.post("/parameters/base-rates", json=rate, headers=auth("admin"))
    assert set_.status_code == 201 and set_.json()["value"] == "0.015"
    wrong = client.post("/parameters/base-rates", json=rate | {"valid_from": "2030-07-02"}, headers=auth("admin"))
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "valid_from"
    params = client.get("/parameters", params={"year": 2030}, headers=auth("auditor")).json()
    assert params["years"][0]["basiszinssatz_july"] == "0.015" and params["years"][0]["basiszinssatz_january"] is None
    assert params["years"][0]["repayment_interest_points"] == "0.03"
    assert [c["valid_from"] for c in params["base_rate_changes"]] == ["2030-07-01"]


def test_two_repayments_decided_against_the_same_funds_are_not_both_stored(settings, monkeypatch):
    """A second clerk repays while the first one's repayment is being decided: the first one's save
    conflicts with the second's, is decided again against it and refused (not both stored)."""
    import pytest

    from domain.errors import StateRefused

    def repay(books, ref: str):
        return books.ledger.record_funds_repayment(
            federal_title=VWK, fiscal_year=2025, value_date=date(2026, 3, 15), amount_cents=6_000,
            interest_since=date(2025, 6, 30), document_ref=ref, reason="Bescheid", recorded_by="mueller",
        )  # fmt: skip

    with open_books(settings) as first, open_books(settings) as second:
        first.ledger.record_funds_draw(
            federal_title=VWK, fiscal_year=2025, value_date=date(2025, 6, 30), amount_cents=10_000,
            document_ref="HKR-1", recorded_by="mueller",
        )  # fmt: skip
        drawn = first.ledger._drawn_cents
        interleaved = []

        def drawn_while_the_other_clerk_repays(title, year):
            if not interleaved:
                interleaved.append(repay(second, "RZ-2"))
            return drawn(title, year)

        monkeypatch.setattr(first.ledger, "_drawn_cents", drawn_while_the_other_clerk_repays)
        with pytest.raises(StateRefused, match=r"less repayments \(40,00 €\)"):
            repay(first, "RZ-1")
        assert [r.document_ref for r in interleaved] == ["RZ-2"]
        assert first.ledger.net_drawn_cents(VWK, 2025) == second.ledger.net_drawn_cents(VWK, 2025) == 4_000
