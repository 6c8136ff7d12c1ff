"""Auditors' endpoints on both stores: a booking's events, the split as of a moment, the seal chain."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.api_fixtures import auth, booking_body

BIG = {"amount": "20.000,00", "category": "egt.aktivierung", "case_ref": ""}


def test_every_event_of_a_booking_with_who_and_when(client):
    client.post("/bookings", json=booking_body("A-1", **BIG), headers=auth("clerk"))
    client.post("/bookings/A-1/approve", headers=auth("approver"))
    client.post("/bookings/A-1/reverse", json={"reason": "doppelt"}, headers=auth("clerk2"))
    r = client.get("/audit/bookings/A-1/events", headers=auth("auditor"))
    assert r.status_code == 200, r.text
    seen = [(e["key"], e["event"], e["who"]) for e in r.json()]
    assert seen == [
        ("A-1", "Recorded", "mueller"),
        ("A-1", "Approved", "schmidt"),
        ("A-1/storno", "Recorded", "weber"),
        ("A-1", "Reversed", "weber"),
    ]
    assert client.get("/audit/bookings/A-1/events", headers=auth("clerk")).status_code == 403
    assert client.get("/audit/bookings/NOPE/events", headers=auth("auditor")).status_code == 404


def test_the_split_as_of_a_moment_shows_what_was_recorded_then(client):
    client.post("/bookings", json=booking_body("A-1", amount="100,00"), headers=auth("clerk"))
    time.sleep(0.01)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    client.post("/bookings", json=booking_body("A-2", amount="50,00"), headers=auth("clerk"))
    then = client.get("/audit/split", params={"as_of": moment, "year": 2025}, headers=auth("auditor"))
    assert then.status_code == 200, then.text
    assert then.json()["total"]["net"] == "100.00" and then.json()["position"] == 1
    now = client.get("/split", params={"year": 2025}, headers=auth("auditor")).json()
    assert now["total"]["net"] == "150.00"
    early = client.get(
        "/audit/split", params={"as_of": "2001-01-01T00:00:00", "year": 2025}, headers=auth("auditor")
    )
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "as_of"
    bad = client.get("/audit/split", params={"as_of": "gestern", "year": 2025}, headers=auth("admin"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "as_of"


def test_head_and_verify_of_the_seal_chain(client):
    assert client.get("/audit/head", headers=auth("auditor")).status_code == 409  # empty log
    client.post("/bookings", json=booking_body("A-1"), headers=auth("clerk"))
    head = client.get("/audit/head", headers=auth("auditor")).json()
    assert head["position"] == 1 and head["anchor"] == f"1:{head['seal']}"
    client.post("/bookings", json=booking_body("A-2"), headers=auth("clerk"))
    v = client.get("/audit/verify", params={"anchor": head["anchor"]}, headers=auth("auditor")).json()
    assert v["intact"] is True and v["events"] == 2
    forged = f"1:{'0' * 64}"
    v = client.get("/audit/verify", params={"anchor": forged}, headers=auth("auditor")).json()
    assert v["intact"] is False
    r = client.get("/audit/verify", params={"anchor": "nonsense"}, headers=auth("auditor"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "anchor"
    assert client.get("/audit/verify", headers=auth("approver")).status_code == 403
