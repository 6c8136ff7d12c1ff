"""Payment runs, parameters, funds drawn, closed periods, the split and the workbook over HTTP, on
both stores: the same behaviour as the CLI commands they mirror."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from tests.api_fixtures import auth, booking_body
from tests.factories import CSV_HEADER, csv_row


def _upload(client, text: str | bytes, who: str = "clerk", **headers: str):
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        "/payment-runs", files={"file": ("run.csv", data, "text/csv")}, headers=auth(who, **headers)
    )


def test_a_payment_run_with_bad_rows_lists_them_all_and_stores_nothing(client):
    text = "\n".join(
        [CSV_HEADER, csv_row("P-1"), csv_row("P-2", amount="12,345"), csv_row("P-3", paid="31.02.2025")]
    )
    r = _upload(client, text + "\n")
    assert r.status_code == 422, r.text
    assert [(e["line"], e["field"]) for e in r.json()["errors"]] == [(3, "amount"), (4, "payment_date")]
    assert "nothing was imported" in r.json()["detail"]
    assert client.app.state.services.books.ledger.max_notification_id() == 0


def test_a_good_payment_run_is_stored_at_once_and_a_reimport_changes_nothing(client):
    text = "\n".join([CSV_HEADER] + [csv_row(f"P-{i}") for i in range(5)]) + "\n"
    r = _upload(client, text)
    assert r.status_code == 201, r.text
    assert (r.json()["rows"], r.json()["created"], r.json()["unchanged"]) == (5, 5, 0)
    assert client.get("/bookings/P-3", headers=auth("auditor")).json()["recorded_by"] == "mueller"
    again = _upload(client, text, who="clerk2")
    assert again.status_code == 200 and (again.json()["created"], again.json()["unchanged"]) == (0, 5)
    conflicting = "\n".join([CSV_HEADER, csv_row("P-9"), csv_row("P-1", amount="1,00")]) + "\n"
    refused = _upload(client, conflicting)
    assert refused.status_code == 409
    assert [(e["line"], e["field"]) for e in refused.json()["errors"]] == [(3, "key")]
    assert client.get("/bookings/P-9", headers=auth("auditor")).status_code == 404


@pytest.mark.parametrize(
    "content, reason",
    [(b"\xff\xfe not utf-8", "not UTF-8"), (b"key;kind\nA;payment\n", "missing columns"), (b"", "empty")],
)
def test_an_unreadable_file_is_422_naming_the_file(client, content, reason):
    r = _upload(client, content)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    assert reason in r.json()["detail"]


def test_uploads_and_bodies_have_a_size_limit(settings, token_file):
    small = ApiSettings(
        env="production", tokens_file=token_file, upload_bytes_max=2048, body_bytes_max=1024, _env_file=None
    )
    with TestClient(create_app(settings, small)) as c:
        big = "\n".join([CSV_HEADER] + [csv_row(f"P-{i}") for i in range(40)]) + "\n"
        r = _upload(c, big)
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        r = c.post("/bookings", json=booking_body("B-1", text="x" * 2000), headers=auth("clerk"))
        assert r.status_code == 413
        assert c.app.state.services.books.ledger.max_notification_id() == 0


def test_the_split_is_the_sum_of_the_bookings(client):
    client.post("/bookings", json=booking_body("S-1", amount="1.000,00"), headers=auth("clerk"))
    client.post("/bookings", json=booking_body("S-2", amount="250,50", kind="receipt"), headers=auth("clerk"))
    vwk = booking_body("S-3", amount="1.000.000,00", category="vwk.personal", case_ref="")
    client.post("/bookings", json=vwk, headers=auth("clerk"))
    split = client.get("/split", params={"year": 2025}, headers=auth("auditor")).json()
    assert split["total"]["net_cents"] == 100_000 - 25_050  # the large one awaits approval
    client.post("/bookings/S-3/approve", headers=auth("approver"))
    split = client.get("/split", params={"year": 2025, "quarter": 1}, headers=auth("clerk")).json()
    lines = {line["category"]: line for line in split["lines"]}
    assert (
        lines["vwk.personal"]["federal"] == "874000.00" and lines["vwk.personal"]["municipal"] == "126000.00"
    )
    assert lines["kdu"]["net"] == "749.50"
    assert split["total"]["net_cents"] == 100_074_950
    assert all(s["federal_cents"] + s["municipal_cents"] == s["net_cents"] for s in split["lines"])
    assert client.get("/split", params={"year": 2025, "quarter": 5}, headers=auth("clerk")).status_code == 422
    assert client.get("/split", headers=auth("clerk")).json()["errors"][0]["field"] == "year"


def test_parameters_are_set_by_an_admin_and_the_split_follows(client):
    client.post(
        "/bookings",
        json=booking_body("V-1", amount="1.000,00", category="vwk.personal", case_ref=""),
        headers=auth("clerk"),
    )
    body = {"name": "vwk_federal_share", "year": 2025, "value": "84,8 %", "reason": "§ 46 Abs. 3 SGB II"}
    assert client.post("/parameters", json=body, headers=auth("clerk")).status_code == 403
    r = client.post("/parameters", json=body, headers=auth("admin"))
    assert r.status_code == 201, r.text
    assert (r.json()["federal_before"], r.json()["federal_after"]) == ("874.00", "848.00")
    assert r.json()["change"]["set_by"] == "leitung"
    listed = client.get("/parameters", params={"year": 2025}, headers=auth("auditor")).json()
    assert listed["years"][0]["vwk_federal_share"] == "0.848" and len(listed["changes"]) == 1
    number = client.post("/parameters", json=body | {"value": 0.85}, headers=auth("admin"))
    assert number.status_code == 201 and number.json()["change"]["value"] == "0.85"
    for bad in (
        {"value": "abc"},
        {"value": 1.5},
        {"value": True},
        {"name": "x"},
        {"year": 1999},
        {"reason": ""},
    ):
        r = client.post("/parameters", json=body | bad, headers=auth("admin"))
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == next(iter(bad))


def test_funds_drawn_are_recorded_once_per_voucher(client):
    body = {
        "title": "1101/681 12",
        "year": 2025,
        "date": "31.03.2025",
        "amount": "10.000.000,00",
        "document_ref": "HKR-1",
    }
    r = client.post("/funds-draws", json=body, headers=auth("clerk"))
    assert r.status_code == 201 and r.json()["draw"]["amount"] == "10000000.00"
    again = client.post("/funds-draws", json=body, headers=auth("clerk2"))
    assert again.status_code == 200 and again.json()["created"] is False
    assert client.post("/funds-draws", json=body | {"amount": 5}, headers=auth("clerk")).status_code == 409
    bad = client.post("/funds-draws", json=body | {"date": "gestern", "amount": "x"}, headers=auth("clerk"))
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"date", "amount"}
    assert (
        client.post("/funds-draws", json=body | {"title": "9999"}, headers=auth("clerk")).status_code == 422
    )
    listed = client.get("/funds-draws", params={"year": 2025}, headers=auth("auditor")).json()
    assert [d["document_ref"] for d in listed] == ["HKR-1"]
    assert client.get("/funds-draws", params={"year": 2024}, headers=auth("auditor")).json() == []


def test_closing_periods_in_order_refuses_later_bookings_into_them(client):
    assert (
        client.post("/periods/close", json={"year": 2025, "quarter": 1}, headers=auth("clerk")).status_code
        == 403
    )
    early = client.post("/periods/close", json={"year": 2025, "quarter": 2}, headers=auth("admin"))
    # Well-formed, refused by the books' state (Q1 is still open): 409, not 422.
    assert early.status_code == 409 and "close 2025 Q1 first" in early.json()["detail"]
    r = client.post("/periods/close", json={"year": 2025, "quarter": 1}, headers=auth("admin"))
    assert r.status_code == 201 and r.json() == [{"year": 2025, "quarter": 1, "closing": "closed by leitung"}]
    assert (
        client.post("/periods/close", json={"year": 2025, "quarter": 1}, headers=auth("admin")).status_code
        == 409
    )
    refused = client.post("/bookings", json=booking_body("C-1"), headers=auth("clerk"))
    assert refused.status_code == 409 and refused.json()["type"] == "urn:koa-ledger:problem:period-closed"
    assert "2025 Q1 is closed" in refused.json()["detail"]
    assert client.get("/periods", headers=auth("auditor")).json()[0]["quarter"] == 1


def test_the_belegliste_of_a_workbook_downloads_beside_it(client):
    """GET /settlement/koa-vv/belegliste with the workbook's as-of and position gives the very list
    whose SHA-256 the workbook states; the bookings behind every figure, over HTTP too."""
    import csv
    import hashlib

    for i in range(3):
        assert (
            client.post("/bookings", json=booking_body(f"BL-{i}"), headers=auth("clerk")).status_code == 201
        )
    wb = client.get("/settlement/koa-vv", params={"year": 2025, "quarter": 1}, headers=auth("auditor"))
    assert wb.status_code == 200, wb.text
    protokoll = dict(
        r[:2]
        for r in openpyxl.load_workbook(io.BytesIO(wb.content))["Protokoll"].iter_rows(values_only=True)
        if r
    )
    stated = protokoll["SHA-256 der Belegliste"]
    # A booking after the workbook: the list of the workbook's moment does not show it.
    assert client.post("/bookings", json=booking_body("BL-LATE"), headers=auth("clerk")).status_code == 201
    params = {
        "year": 2025,
        "quarter": 1,
        "as_of": wb.headers["x-koa-as-of"],
        "position": wb.headers["x-koa-position"],
    }
    r = client.get("/settlement/koa-vv/belegliste", params=params, headers=auth("auditor"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="koa-vv-2025-Q1.belege.csv"' in r.headers["content-disposition"]
    assert hashlib.sha256(r.content).hexdigest() == stated == r.headers["x-koa-belegliste-sha256"]
    assert r.headers["x-koa-position"] == wb.headers["x-koa-position"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert sorted(row["booking_key"] for row in rows) == ["BL-0", "BL-1", "BL-2"]
    # As of now it is a list of the books as they are: with the later booking.
    now = client.get("/settlement/koa-vv/belegliste", params={"year": 2025}, headers=auth("clerk"))
    assert now.status_code == 200 and b"BL-LATE" in now.content
    assert int(now.headers["x-koa-position"]) > int(wb.headers["x-koa-position"])
    assert client.get("/settlement/koa-vv/belegliste", params={"year": 2025}).status_code == 401
    bad = client.get("/settlement/koa-vv/belegliste", params={"year": 1999}, headers=auth("clerk"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "year"


def test_the_workbook_downloads_for_every_role(client):
    client.post("/bookings", json=booking_body("X-1"), headers=auth("clerk"))
    for role in ("clerk", "approver", "auditor", "admin"):
        r = client.get("/settlement/koa-vv", params={"year": 2025, "quarter": 1}, headers=auth(role))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert 'filename="koa-vv-2025-Q1.xlsx"' in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert "Übersicht" in wb.sheetnames and "Belege" in wb.sheetnames
    j = client.get("/settlement/koa-vv", params={"year": 2025, "format": "json"}, headers=auth("auditor"))
    assert j.status_code == 200 and j.headers["x-koa-position"] == "1"
    assert "X-1" in j.text and json.loads(j.text) is not None
    future = client.get(
        "/settlement/koa-vv", params={"year": 2025, "as_of": "2099-01-01T00:00:00Z"}, headers=auth("clerk")
    )
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "as_of"
    unknown = client.get("/settlement/koa-vv", params={"year": 2099}, headers=auth("clerk"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "year"
    assert client.get("/settlement/koa-vv", params={"year": 2025}).status_code == 401
