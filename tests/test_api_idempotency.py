"""Idempotency-Key on POSTs, on both stores: repeats answer from the stored response, other bodies
are refused, concurrent requests with one key execute once, and keys survive a restart."""

from __future__ import annotations

import threading

from eventsourcing.persistence import IntegrityError
from fastapi.testclient import TestClient

from api.app import create_app
from api.idempotency import Claim, Idempotency
from api.schemas.bookings import BookingCreate
from tests.api_fixtures import auth, booking_body


def _position(client) -> int:
    return client.app.state.services.books.ledger.max_notification_id()


def test_same_key_same_body_returns_the_first_response(client):
    h = auth("clerk", **{"Idempotency-Key": "k-1"})
    first = client.post("/bookings", json=booking_body("I-1"), headers=h)
    position = _position(client)
    again = client.post("/bookings", json=booking_body("I-1"), headers=h)
    assert (first.status_code, again.status_code) == (201, 201)  # not 200 "already recorded"
    assert again.content == first.content and again.headers["location"] == "/bookings/I-1"
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert _position(client) == position


def test_same_key_other_body_or_endpoint_is_409(client):
    h = auth("clerk", **{"Idempotency-Key": "k-1"})
    client.post("/bookings", json=booking_body("I-1"), headers=h)
    other = client.post("/bookings", json=booking_body("I-2"), headers=h)
    assert other.status_code == 409 and other.json()["type"] == "urn:koa-ledger:problem:idempotency-mismatch"
    elsewhere = client.post("/bookings/I-1/reverse", json={"reason": "x"}, headers=h)
    assert elsewhere.status_code == 409
    assert client.get("/bookings/I-2", headers=auth("clerk")).status_code == 404
    assert client.get("/bookings/I-1", headers=auth("clerk")).json()["state"] == "recorded"


def test_keys_are_per_user(client):
    a = client.post("/bookings", json=booking_body("I-1"), headers=auth("clerk", **{"Idempotency-Key": "k"}))
    b = client.post("/bookings", json=booking_body("I-2"), headers=auth("clerk2", **{"Idempotency-Key": "k"}))
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.json()["booking"]["recorded_by"] == "weber"


def test_refusals_are_replayed_but_transient_failures_run_again(client, monkeypatch):
    body = booking_body("I-BIG", amount="20.000,00", category="egt.aktivierung", case_ref="")
    client.post("/bookings", json=body, headers=auth("clerk_approver"))
    h = auth("clerk_approver", **{"Idempotency-Key": "a-1"})
    refused = client.post("/bookings/I-BIG/approve", headers=h)
    assert refused.status_code == 403
    assert client.post("/bookings/I-BIG/approve", headers=h).headers["idempotent-replayed"] == "true"

    ledger = client.app.state.services.books.ledger
    real, calls = ledger.approve_booking, []

    def flaky(key, **kwargs):
        calls.append(key)
        if len(calls) == 1:
            raise IntegrityError("kept conflicting with concurrent writers")
        return real(key, **kwargs)

    monkeypatch.setattr(ledger, "approve_booking", flaky)
    h = auth("approver", **{"Idempotency-Key": "a-2"})
    first = client.post("/bookings/I-BIG/approve", headers=h)
    assert first.status_code == 409 and first.json()["type"] == "urn:koa-ledger:problem:concurrent-change"
    assert first.headers["retry-after"] == "1"
    retry = client.post("/bookings/I-BIG/approve", headers=h)
    assert retry.status_code == 200 and retry.json()["approved_by"] == "schmidt"
    assert "idempotent-replayed" not in retry.headers and len(calls) == 2


def test_a_request_still_running_makes_the_repeat_wait(client):
    """A pending claim (the first request still running) answers 409 with Retry-After and runs nothing."""
    store = client.app.state.services.idempotency
    running = Idempotency(store, "mueller", "busy", "POST /bookings")
    assert isinstance(
        store.claim("mueller", "busy", running._fingerprint(BookingCreate(**booking_body("I-1")))), Claim
    )
    r = client.post(
        "/bookings", json=booking_body("I-1"), headers=auth("clerk", **{"Idempotency-Key": "busy"})
    )
    assert r.status_code == 409 and r.json()["type"] == "urn:koa-ledger:problem:idempotency-in-flight"
    assert r.headers["retry-after"] == "1"
    assert client.get("/bookings/I-1", headers=auth("clerk")).status_code == 404
    other = client.post(
        "/bookings", json=booking_body("I-2"), headers=auth("clerk", **{"Idempotency-Key": "busy"})
    )
    assert other.json()["type"] == "urn:koa-ledger:problem:idempotency-mismatch"


def test_invalid_keys_are_422(client):
    for key in ("", "mit leerzeichen", "x" * 256):
        r = client.post(
            "/bookings", json=booking_body("I-1"), headers=auth("clerk", **{"Idempotency-Key": key})
        )
        assert r.status_code == 422, key
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"


def test_keys_survive_a_restart(settings, api_settings):
    h = auth("clerk", **{"Idempotency-Key": "restart"})
    with TestClient(create_app(settings, api_settings)) as c:
        first = c.post("/bookings", json=booking_body("I-1"), headers=h)
    with TestClient(create_app(settings, api_settings)) as c:
        again = c.post("/bookings", json=booking_body("I-1"), headers=h)
        assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
        assert c.post("/bookings", json=booking_body("I-9"), headers=h).status_code == 409


def test_concurrent_requests_with_one_key_execute_once(client):
    h = auth("clerk", **{"Idempotency-Key": "race"})
    barrier = threading.Barrier(8, timeout=30)
    results, errors = [], []

    def post() -> None:
        try:
            barrier.wait()
            results.append(client.post("/bookings", json=booking_body("I-RACE"), headers=h))
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    executed = [r for r in results if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(executed) == 1
    for r in results:
        assert r.status_code in (201, 409), r.text
        if r.status_code == 201:
            assert r.content == executed[0].content
        else:
            assert r.json()["type"] == "urn:koa-ledger:problem:idempotency-in-flight"
    assert _position(client) == 1


def test_concurrent_requests_with_one_key_and_other_bodies_store_one_booking(client):
    """The answer is stored in the transaction of the booking's events: of several new bookings
    posted at once under one key, one is stored; the others store nothing and are refused."""
    h = auth("clerk", **{"Idempotency-Key": "race-other"})
    barrier = threading.Barrier(6, timeout=30)
    results, errors = [], []

    def post(n: int) -> None:
        try:
            barrier.wait()
            results.append(client.post("/bookings", json=booking_body(f"I-OTHER-{n}"), headers=h))
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 6
    created = [r for r in results if r.status_code == 201]
    assert len(created) == 1, [r.text for r in results]
    refused = [r.json()["type"] for r in results if r.status_code != 201]
    assert refused == ["urn:koa-ledger:problem:idempotency-mismatch"] * 5
    stored = [
        n for n in range(6) if client.get(f"/bookings/I-OTHER-{n}", headers=auth("clerk")).status_code == 200
    ]
    assert [f"I-OTHER-{n}" for n in stored] == [created[0].json()["booking"]["key"]]
    assert _position(client) == 1  # no booking without its answer, no answer without its booking


def test_approvals_racing_under_one_key_approve_one_booking(client):
    """An approval's answer is stored in the approval's transaction: two approvals posted at once
    under one key approve one booking; the other stays awaiting approval."""
    for key in ("I-APP-1", "I-APP-2"):
        body = booking_body(key, amount="20.000,00", category="egt.aktivierung", case_ref="")
        assert client.post("/bookings", json=body, headers=auth("clerk")).status_code == 201
    h = auth("approver", **{"Idempotency-Key": "approve-race"})
    barrier = threading.Barrier(2, timeout=30)
    results = {}

    def approve(key: str) -> None:
        barrier.wait()
        results[key] = client.post(f"/bookings/{key}/approve", headers=h)

    threads = [threading.Thread(target=approve, args=(k,)) for k in ("I-APP-1", "I-APP-2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {k: r.text for k, r in results.items()}
    states = {k: client.get(f"/bookings/{k}", headers=auth("clerk")).json()["state"] for k in results}
    approved = [k for k, r in results.items() if r.status_code == 200]
    assert [k for k, s in states.items() if s != "awaiting_approval"] == approved
