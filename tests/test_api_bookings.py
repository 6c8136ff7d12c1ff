"""Bookings over HTTP on both stores: record, read, list, approve (four eyes), reverse."""

from __future__ import annotations

import pytest

from tests.api_fixtures import auth, booking_body


def test_a_clerk_records_a_booking_under_their_own_name(client):
    r = client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk"))
    assert r.status_code == 201, r.text
    b = r.json()["booking"]
    assert r.json()["created"] is True
    assert (b["key"], b["amount"], b["amount_cents"], b["recorded_by"]) == ("B-1", "500.00", 50000, "mueller")
    assert (b["fiscal_year"], b["quarter"], b["state"]) == (2025, 1, "recorded")
    assert r.headers["location"] == "/bookings/B-1"
    got = client.get("/bookings/B-1", headers=auth("auditor"))
    assert got.status_code == 200 and got.json() == b


def test_the_recorder_comes_from_the_token_never_from_the_body(client):
    r = client.post("/bookings", json=booking_body("B-1", recorded_by="schmidt"), headers=auth("clerk"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "recorded_by"
    assert client.get("/bookings/B-1", headers=auth("clerk")).status_code == 404


def test_the_same_key_and_content_is_a_repeat_and_other_content_a_conflict(client):
    assert client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk")).status_code == 201
    again = client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk2"))
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["booking"]["recorded_by"] == "mueller"
    other = client.post("/bookings", json=booking_body("B-1", amount="501,00"), headers=auth("clerk"))
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "urn:koa-ledger:problem:key-conflict"
    assert "amount_cents" in other.json()["detail"]


@pytest.mark.parametrize(
    "amount, cents",
    [
        ("1.234,56", 123456),
        ("1234.56", 123456),
        ("1,234.56", 123456),
        (1234.56, 123456),
        (17, 1700),
        (0.1, 10),
    ],
)
def test_amounts_as_strings_or_numbers_with_two_decimals(client, amount, cents):
    r = client.post("/bookings", json=booking_body("B-A", amount=amount), headers=auth("clerk"))
    assert r.status_code == 201, r.text
    assert r.json()["booking"]["amount_cents"] == cents


@pytest.mark.parametrize(
    "raw_amount",
    ['"12,345"', "12.345", "1.2345e1", "true", "null", '"abc"', "-5", "0", '"1e3"', "1e400", "[1]", '"NaN"'],
)
def test_bad_amounts_are_422_naming_the_field(client, raw_amount):
    import json

    body = json.dumps(booking_body("B-A", amount="X")).replace('"X"', raw_amount)
    r = client.post("/bookings", content=body, headers=auth("clerk", **{"Content-Type": "application/json"}))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["amount"]


def test_nan_is_not_json(client):
    body = '{"key": "B-N", "amount": NaN}'
    r = client.post("/bookings", content=body, headers=auth("clerk", **{"Content-Type": "application/json"}))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"


def test_every_bad_field_is_named_at_once(client):
    body = booking_body("B-1", kind="gift", payment_date="31.02.2025", category="nope", case_ref="Max Muster")
    r = client.post("/bookings", json=body, headers=auth("clerk"))
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"kind", "payment_date", "category"}
    r = client.post("/bookings", json=booking_body("B-1", case_ref="Max Muster"), headers=auth("clerk"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "case_ref"


def test_four_eyes_the_recorder_may_not_approve_and_gets_the_reason(client):
    body = booking_body("B-BIG", amount="23.500,00", category="egt.aktivierung", case_ref="")
    r = client.post("/bookings", json=body, headers=auth("clerk_approver"))
    assert r.json()["booking"]["state"] == "awaiting_approval"
    own = client.post("/bookings/B-BIG/approve", headers=auth("clerk_approver"))
    assert own.status_code == 403
    assert own.json()["type"] == "urn:koa-ledger:problem:four-eyes"
    assert "meier recorded booking B-BIG and may not approve it" in own.json()["detail"]
    ok = client.post("/bookings/B-BIG/approve", headers=auth("approver"))
    assert (
        ok.status_code == 200 and ok.json()["approved_by"] == "schmidt" and ok.json()["state"] == "approved"
    )
    twice = client.post("/bookings/B-BIG/approve", headers=auth("approver"))
    assert twice.status_code == 409


def test_roles_401_without_token_403_with_the_wrong_role(client):
    r = client.post("/bookings", json=booking_body("B-1"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    r = client.get("/bookings", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    for role in ("auditor", "approver", "admin"):
        r = client.post("/bookings", json=booking_body("B-1"), headers=auth(role))
        assert r.status_code == 403, role
    client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk"))
    assert client.post("/bookings/B-1/approve", headers=auth("clerk2")).status_code == 403
    assert (
        client.post("/bookings/B-1/reverse", json={"reason": "x"}, headers=auth("auditor")).status_code == 403
    )
    assert client.get("/health").status_code == 200


def test_reverse_books_a_counter_booking_and_keeps_the_original(client):
    client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk"))
    r = client.post("/bookings/B-1/reverse", json={"reason": "Rechnung doppelt"}, headers=auth("clerk2"))
    assert r.status_code == 201, r.text
    assert r.json()["original"]["state"] == "reversed"
    counter = r.json()["counter_booking"]
    assert (counter["key"], counter["reverses_key"], counter["recorded_by"]) == ("B-1/storno", "B-1", "weber")
    assert client.get("/bookings/B-1/storno", headers=auth("auditor")).json()["state"] == "reversal"
    again = client.post("/bookings/B-1/reverse", json={"reason": "nochmal"}, headers=auth("clerk2"))
    assert again.status_code == 409
    assert (
        client.post("/bookings/B-9/reverse", json={"reason": "x"}, headers=auth("clerk")).status_code == 404
    )


def test_unknown_booking_is_404(client):
    r = client.get("/bookings/NOPE-1", headers=auth("auditor"))
    assert r.status_code == 404 and r.json()["type"] == "urn:koa-ledger:problem:not-found"
    assert client.post("/bookings/NOPE-1/approve", headers=auth("approver")).status_code == 404


def test_list_filters_and_cursor_pages(client):
    for i in range(7):
        kind = "receipt" if i == 3 else "payment"
        client.post(
            "/bookings",
            json=booking_body(f"L-{i}", kind=kind, document_ref=f"D-{i % 2}"),
            headers=auth("clerk"),
        )
    big = booking_body("L-BIG", amount="20.000,00", category="egt.aktivierung", case_ref="")
    client.post("/bookings", json=big, headers=auth("clerk"))
    client.post("/bookings/L-0/reverse", json={"reason": "falsch"}, headers=auth("clerk"))
    keys, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/bookings", params=params, headers=auth("auditor")).json()
        keys += [b["key"] for b in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and keys == sorted(keys) and len(keys) == 9 and "L-0/storno" in keys

    def keys_for(**params):
        r = client.get("/bookings", params=params, headers=auth("clerk"))
        assert r.status_code == 200, r.text
        return [b["key"] for b in r.json()["items"]]

    assert keys_for(state="awaiting_approval") == ["L-BIG"]
    assert keys_for(state="reversed") == ["L-0"]
    assert keys_for(state="reversal") == ["L-0/storno"]
    assert keys_for(document_ref="D-1") == ["L-1", "L-3", "L-5"]
    assert keys_for(category="egt.aktivierung", year=2025, quarter=1) == ["L-BIG"]
    assert keys_for(year=2024) == []
    assert keys_for(case_ref="08221BG0000001", state="recorded") == ["L-1", "L-2", "L-3", "L-4", "L-5", "L-6"]
    for bad in (
        {"limit": 501},
        {"limit": 0},
        {"state": "lost"},
        {"quarter": 5},
        {"cursor": "xyz"},
        {"category": "x"},
    ):
        r = client.get("/bookings", params=bad, headers=auth("clerk"))
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == next(iter(bad))


def test_withdrawing_an_unapproved_booking_lists_as_withdrawal(client):
    big = booking_body("W-1", amount="20.000,00", category="egt.aktivierung", case_ref="")
    client.post("/bookings", json=big, headers=auth("clerk"))
    r = client.post("/bookings/W-1/reverse", json={"reason": "zurückgezogen"}, headers=auth("clerk"))
    assert r.json()["counter_booking"]["state"] == "withdrawal"
    items = client.get("/bookings", params={"state": "withdrawal"}, headers=auth("auditor")).json()["items"]
    assert [b["key"] for b in items] == ["W-1/storno"]


def test_a_mistyped_filter_is_refused_not_ignored(client):
    r = client.get("/bookings", params={"yaer": 2025}, headers=auth("clerk"))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "yaer", "reason": "unknown query parameter", "location": "query"}]
