"""POST /bookings through the booking writer, on both stores: requests that meet are stored in one
transaction, each with its own answer; what the batch does not settle (repeats, refusals, a joint
save that fails) goes the request's own way; a full queue answers 503."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.booking_writer import BookingWriter, Job
from api.idempotency import Idempotency
from api.problems import ApiProblem
from ledger.bootstrap import open_books
from tests.api_fixtures import auth, booking_body

WAIT_S_MAX = 30


def _post_together(client, requests: list[tuple[dict, dict]]) -> list:
    """Post every (body, headers) while the writer is held, so that all meet in one batch."""
    writer = client.app.state.services.booking_writer
    answers: list = [None] * len(requests)
    errors: list[BaseException] = []

    def post(i: int, body: dict, headers: dict) -> None:
        try:
            answers[i] = client.post("/bookings", json=body, headers=headers)
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=post, args=(i, *r)) for i, r in enumerate(requests)]
    with writer.hold():
        arrived = writer.submitted + len(requests)
        for t in threads:
            t.start()
        deadline = time.monotonic() + WAIT_S_MAX
        while writer.submitted < arrived:
            assert time.monotonic() < deadline, "the requests did not reach the writer"
            time.sleep(0.01)
    for t in threads:
        t.join(WAIT_S_MAX)
    assert not errors, errors
    assert writer.largest_batch >= len(requests)  # they did meet in one batch
    return answers


def _booking_count(client) -> int:
    return len(client.get("/bookings", params={"limit": 500}, headers=auth("auditor")).json()["items"])


def test_requests_that_meet_are_stored_together_each_with_its_own_answer(client):
    requests = [
        (booking_body(f"W-{i}", amount=f"{100 + i},00"), auth("clerk", **{"Idempotency-Key": f"w-{i}"}))
        for i in range(6)
    ]
    writer = client.app.state.services.booking_writer
    jointly = writer.saved_jointly
    answers = _post_together(client, requests)
    assert [r.status_code for r in answers] == [201] * 6
    assert writer.saved_jointly == jointly + 6  # one joint save, not six of their own
    for i, r in enumerate(answers):
        b = r.json()["booking"]
        assert (b["key"], b["amount_cents"], b["recorded_by"]) == (f"W-{i}", (100 + i) * 100, "mueller")
        assert r.headers["location"] == f"/bookings/W-{i}"
        assert client.get(f"/bookings/W-{i}", headers=auth("auditor")).json() == b
    # each answer was remembered with its booking: a repeat gets the same bytes back
    again = client.post("/bookings", json=requests[3][0], headers=requests[3][1])
    assert again.status_code == 201 and again.content == answers[3].content
    assert again.headers["idempotent-replayed"] == "true"
    assert _booking_count(client) == 6


def test_what_the_batch_does_not_settle_goes_the_request_s_own_way(client):
    stored = client.post(
        "/bookings", json=booking_body("O-1"), headers=auth("clerk", **{"Idempotency-Key": "o-1"})
    )
    assert stored.status_code == 201
    assert client.post("/bookings", json=booking_body("O-2"), headers=auth("clerk")).status_code == 201
    jointly = client.app.state.services.booking_writer.saved_jointly
    answers = _post_together(
        client,
        [
            (booking_body("O-NEW"), auth("clerk", **{"Idempotency-Key": "o-new"})),
            (booking_body("O-1"), auth("clerk", **{"Idempotency-Key": "o-1"})),  # a retry
            (booking_body("O-2"), auth("clerk2")),  # the same content under a stored key
            (booking_body("O-BAD", category="nope"), auth("clerk")),  # refused by the rules
            (booking_body("O-OTHER"), auth("clerk", **{"Idempotency-Key": "o-1"})),  # key reused
        ],
    )
    new, retry, repeat, refused, reused = answers
    assert new.status_code == 201 and new.json()["booking"]["key"] == "O-NEW"
    assert retry.status_code == 201 and retry.content == stored.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert repeat.status_code == 200 and repeat.json()["created"] is False
    assert repeat.json()["booking"]["recorded_by"] == "mueller"
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["category"]
    assert reused.status_code == 409
    assert reused.json()["type"] == "urn:koa-ledger:problem:idempotency-mismatch"
    assert client.get("/bookings/O-OTHER", headers=auth("clerk")).status_code == 404
    assert _booking_count(client) == 3
    # O-2 (stored before) was found by the batch's look-up and did not spoil O-NEW's joint save
    assert client.app.state.services.booking_writer.saved_jointly == jointly + 1


def test_a_key_twice_in_one_batch_is_stored_once_and_answered_twice(client):
    """Two requests for one new key with different content, two with one Idempotency-Key: the
    first of each goes in the joint save, the other its own way after it (nothing is rolled back:
    no notification id is spent on a failed insert)."""
    twice = auth("clerk", **{"Idempotency-Key": "j-twice"})
    jointly = client.app.state.services.booking_writer.saved_jointly
    answers = _post_together(
        client,
        [
            (booking_body("J-1"), auth("clerk")),
            (booking_body("J-SAME", amount="10,00"), auth("clerk")),
            (booking_body("J-SAME", amount="20,00"), auth("clerk")),
            (booking_body("J-2"), twice),
            (booking_body("J-2"), twice),
            (booking_body("J-3"), auth("clerk")),
        ],
    )
    one, same_a, same_b, twice_a, twice_b, three = answers
    assert (one.status_code, three.status_code) == (201, 201)
    assert sorted([same_a.status_code, same_b.status_code]) == [201, 409]
    winner = same_a if same_a.status_code == 201 else same_b
    loser = same_b if winner is same_a else same_a
    assert loser.json()["type"] == "urn:koa-ledger:problem:key-conflict"
    stored = client.get("/bookings/J-SAME", headers=auth("auditor")).json()
    assert stored == winner.json()["booking"]
    assert (twice_a.status_code, twice_b.status_code) == (201, 201)
    assert twice_a.content == twice_b.content  # one execution, answered twice
    assert {r.headers.get("idempotent-replayed") for r in (twice_a, twice_b)} == {None, "true"}
    assert _booking_count(client) == 4
    assert client.app.state.services.booking_writer.saved_jointly == jointly + 4  # J-1, J-SAME, J-2, J-3
    assert client.app.state.services.books.ledger.max_notification_id() == 4


def test_a_joint_save_that_fails_leaves_each_request_its_own_outcome(client, settings):
    """Another process closes a period after this server kept its calendar: the joint save is
    refused (CalendarChanged) and each request is decided again and stored on its own."""
    writer = client.app.state.services.booking_writer
    assert client.post("/bookings", json=booking_body("C-0"), headers=auth("clerk")).status_code == 201
    with open_books(settings) as other:
        other.ledger.close_period(year=2024, quarter=1, closed_by="head")
    jointly = writer.saved_jointly
    requests = [(booking_body(f"C-{i}"), auth("clerk", **{"Idempotency-Key": f"c-{i}"})) for i in (1, 2, 3)]
    answers = _post_together(client, requests)
    assert [(r.status_code, r.json()["booking"]["key"]) for r in answers] == [
        (201, f"C-{i}") for i in (1, 2, 3)
    ]
    assert writer.saved_jointly == jointly  # the joint save failed; the bookings are stored all the same
    for (body, headers), first in zip(requests, answers, strict=True):
        again = client.post("/bookings", json=body, headers=headers)  # answers remembered on their own way
        assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert _booking_count(client) == 4


def test_a_full_queue_answers_503_and_stores_nothing():
    """Bounded: beyond its queue the writer refuses at once (the writer is not started here, so
    the first request stays queued)."""
    writer = BookingWriter(None, None, on_saved=lambda: None, queued_requests_max=1)  # type: ignore[arg-type]
    idem = Idempotency(None, "mueller", None, "POST /bookings")  # type: ignore[arg-type]

    def never():
        raise AssertionError("nothing runs while the writer is not started")

    async def two() -> ApiProblem:
        first = asyncio.ensure_future(writer.submit(Job(idem, never, never)))
        await asyncio.sleep(0)
        with pytest.raises(ApiProblem) as refused:
            await writer.submit(Job(idem, never, never))
        assert writer.queued() == 1 and not first.done()
        first.cancel()
        return refused.value

    problem = asyncio.run(two())
    assert problem.status == 503 and problem.headers["Retry-After"] == "1"


def test_a_stopping_writer_answers_what_was_queued_and_refuses_what_comes_after(client):
    """Shutting down: nothing waits forever for a writer that has gone."""
    writer = client.app.state.services.booking_writer
    answers: list = []
    poster = threading.Thread(
        target=lambda: answers.append(
            client.post("/bookings", json=booking_body("S-1"), headers=auth("clerk"))
        )
    )
    stopper = threading.Thread(target=writer.stop)
    with writer.hold():
        arrived = writer.submitted + 1
        poster.start()
        deadline = time.monotonic() + WAIT_S_MAX
        while writer.submitted < arrived:
            assert time.monotonic() < deadline, "the request did not reach the writer"
            time.sleep(0.01)
        while writer.queued() != 0:  # the writer has taken the request and waits for the hold
            assert time.monotonic() < deadline, "the writer did not take the request"
            time.sleep(0.01)
        stopper.start()  # the end is queued behind the request while the writer is held
        while writer.queued() != 1:
            assert time.monotonic() < deadline, "the stop did not reach the queue"
            time.sleep(0.01)
    stopper.join(WAIT_S_MAX)
    poster.join(WAIT_S_MAX)
    assert not stopper.is_alive() and not writer.alive()
    assert [r.status_code for r in answers] == [201]
    late = client.post("/bookings", json=booking_body("S-2"), headers=auth("clerk"))
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert client.get("/bookings/S-1", headers=auth("clerk")).status_code == 200
    assert client.get("/bookings/S-2", headers=auth("clerk")).status_code == 404
