"""The retention register over HTTP, on both stores: `POST /retention/adoptions` (clerk) and
`GET /retention` (every role), with the behaviour of `koa retention`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.api_fixtures import auth, booking_body

ADOPTION = {"year": 2024, "date": "2025-11-20", "resolution": "GR-2025-117"}


def _close_2024(client) -> None:
    r = client.post("/periods/close", json={"year": 2024}, headers=auth("admin"))
    assert r.status_code == 201, r.text


def _book_2024(client) -> None:
    body = booking_body(
        "R-2024", payment_date="2024-03-20", service_from="2024-03-01", service_to="2024-03-31"
    )
    assert client.post("/bookings", json=body, headers=auth("clerk")).status_code == 201


def test_an_adoption_is_201_then_a_repeat_200_and_other_figures_409_naming_the_field(client):
    _book_2024(client)
    _close_2024(client)
    r = client.post("/retention/adoptions", json=ADOPTION, headers=auth("clerk"))
    assert r.status_code == 201, r.text
    year = r.json()["year"]
    assert r.json()["created"] is True and r.headers["location"] == "/retention"
    assert (year["adopted_on"], year["resolution"]) == ("2025-11-20", "GR-2025-117")
    assert (year["vouchers_kept_until"], year["books_kept_until"]) == ("2031-12-31", "2035-12-31")
    assert (year["vouchers_years"], year["books_years"]) == (6, 10)
    assert [(x["by"], x["corrects_version"]) for x in year["recordings"]] == [("mueller", None)]
    again = client.post("/retention/adoptions", json=ADOPTION, headers=auth("clerk2"))
    assert again.status_code == 200 and again.json()["created"] is False
    other = client.post("/retention/adoptions", json=ADOPTION | {"date": "27.11.2025"}, headers=auth("clerk"))
    assert other.status_code == 409, other.text
    assert other.json()["type"] == "urn:koa-ledger:problem:key-conflict"
    assert other.json()["errors"][0]["field"] == "date"
    assert "on record as adopted on 2025-11-20" in other.json()["detail"]
    wrong = client.post("/retention/adoptions", json=ADOPTION | {"resolution": "GR-X"}, headers=auth("clerk"))
    assert wrong.status_code == 409 and wrong.json()["errors"][0]["field"] == "resolution"


def test_a_correction_with_a_reason_is_recorded_and_names_the_one_it_corrects(client):
    _close_2024(client)
    assert (
        client.post(
            "/retention/adoptions", json=ADOPTION | {"date": "2025-11-02"}, headers=auth("clerk")
        ).status_code
        == 201
    )
    correction = ADOPTION | {"corrects": "GR-2025-117", "reason": "Datum falsch erfasst"}
    r = client.post("/retention/adoptions", json=correction, headers=auth("clerk2"))
    assert r.status_code == 201, r.text
    recordings = r.json()["year"]["recordings"]
    assert [(x["adopted_on"], x["by"], x["corrects_version"], x["reason"]) for x in recordings] == [
        ("2025-11-02", "mueller", None, None),
        ("2025-11-20", "weber", 1, "Datum falsch erfasst"),
    ]
    assert client.post("/retention/adoptions", json=correction, headers=auth("clerk")).status_code == 200
    stale = correction | {"date": "2025-11-21", "corrects": "GR-2025-999"}
    r = client.post("/retention/adoptions", json=stale, headers=auth("clerk"))
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "corrects"


def test_an_open_year_is_409(client):
    _book_2024(client)
    r = client.post("/retention/adoptions", json=ADOPTION, headers=auth("clerk"))
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "urn:koa-ledger:problem:period-open"
    assert r.json()["errors"][0]["field"] == "year" and "Q1, Q2, Q3, Q4 open" in r.json()["detail"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"date": "2024-12-31"}, "date"),  # inside the fiscal year
        ({"date": (date.today() + timedelta(days=1)).isoformat()}, "date"),  # in the future
        ({"date": "gestern"}, "date"),
        ({"resolution": "GR 117"}, "resolution"),
        ({"resolution": "x" * 65}, "resolution"),
        ({"reason": "ohne corrects"}, "reason"),
        ({"corrects": "GR-2025-117"}, "reason"),
        ({"year": "2024"}, "year"),  # strict: a string is not a year
        ({"year": 1999}, "year"),
        ({"recorded_by": "someone"}, "recorded_by"),  # the user is the token's, never the body's
    ],
)
def test_bad_input_is_422_naming_the_field_and_nothing_is_recorded(client, change, field):
    _close_2024(client)
    position = client.app.state.services.books.ledger.max_notification_id()
    r = client.post("/retention/adoptions", json=ADOPTION | change, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert client.app.state.services.books.ledger.max_notification_id() == position


def test_only_a_clerk_records_and_every_role_reads(client):
    _close_2024(client)
    for who in ("approver", "auditor", "admin"):
        r = client.post("/retention/adoptions", json=ADOPTION, headers=auth(who))
        assert r.status_code == 403 and r.json()["type"] == "urn:koa-ledger:problem:forbidden"
    assert client.post("/retention/adoptions", json=ADOPTION).status_code == 401
    for who in ("clerk", "approver", "auditor", "admin"):
        assert client.get("/retention", headers=auth(who)).status_code == 200


def test_the_register_on_a_day_and_as_of_a_moment(client):
    _book_2024(client)
    _close_2024(client)
    before = datetime.now(UTC)
    h = auth("clerk", **{"Idempotency-Key": "gr-2025-117"})
    first = client.post("/retention/adoptions", json=ADOPTION, headers=h)
    replayed = client.post("/retention/adoptions", json=ADOPTION, headers=h)
    assert first.status_code == replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true" and replayed.json() == first.json()
    r = client.get("/retention", params={"on": "2032-01-01"}, headers=auth("auditor"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["on"] == "2032-01-01" and body["as_of"] is None and "deletes nothing" in body["note"]
    [year] = body["years"]
    assert (year["year"], year["status"], year["status_text"]) == (
        2024,
        "vouchers_may_be_destroyed",
        "vouchers may be destroyed",
    )
    assert (
        client.get("/retention", params={"on": "01.01.2036"}, headers=auth("auditor")).json()["years"][0][
            "status"
        ]
        == "books_and_vouchers_may_be_destroyed"
    )
    then = client.get(
        "/retention", params={"on": "2032-01-01", "as_of": before.isoformat()}, headers=auth("auditor")
    ).json()
    assert then["years"][0]["status"] == "not_adopted" and then["years"][0]["recordings"] == []
    for params, field in [
        ({"on": "2032-02-30"}, "on"),
        ({"as_of": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "as_of"),
        ({"as_of": "gestern"}, "as_of"),
        ({"year": 2024}, "year"),  # unknown query parameters are refused
    ]:
        bad = client.get("/retention", params=params, headers=auth("auditor"))
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["errors"][0]["field"] == field


def test_the_periods_are_parameters_an_admin_sets(client):
    body = {"name": "retention_years_books", "year": 2030, "value": 12, "reason": "Satzung"}
    r = client.post("/parameters", json=body, headers=auth("admin"))
    assert r.status_code == 201, r.text
    assert (r.json()["change"]["kind"], r.json()["change"]["value"]) == ("years", "12")
    for value in ("12,5", 12.5, 0, "31"):
        bad = client.post("/parameters", json=body | {"value": value}, headers=auth("admin"))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "value", bad.text
    years = client.get("/parameters", params={"year": 2031}, headers=auth("auditor")).json()["years"]
    assert (years[0]["retention_years_books"], years[0]["retention_years_vouchers"]) == (12, 6)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/retention", {}),
        ("/audit/split", {"year": 2025}),
        ("/settlement/koa-vv", {"year": 2025, "format": "json"}),
    ],
)
@pytest.mark.parametrize("number", ["0", "-5.927497980903723e-217", "1700000000"])
def test_a_moment_given_as_a_number_is_refused_not_read_as_seconds_since_1970(client, path, params, number):
    r = client.get(path, params=params | {"as_of": number}, headers=auth("auditor"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "as_of" and "ISO 8601" in r.json()["detail"]
