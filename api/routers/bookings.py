"""Bookings: record (clerk), read and list (every role), approve one or many (approver), reverse (clerk).

The same Ledger methods as `koa book/approve/reverse`; the four-eyes rule is the domain's
(recorder != approver, answered 403 with its reason).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Path, Query, Request, Response

from api.auth import Approver, Caller, Clerk, Reader, Role, caller_holding
from api.booking_writer import Decided, Job
from api.idempotency import Idem, Idempotency, Outcome, valid_idempotency
from api.json_body import NOT_PLAIN, plain_json, valid_as
from api.presolve import presolved
from api.problems import ApiProblem, field_error, problem_for, problem_responses
from api.routing import resource_router
from api.schemas.bookings import (
    ApprovalsCreate,
    ApprovalsPosted,
    BookingCreate,
    BookingPage,
    BookingPosted,
    BookingRead,
    ReversalCreate,
    ReversalPosted,
)
from api.schemas.common import PAGE_LIMIT_DEFAULT, Limit
from api.services import Services, Svc
from domain.booking import Booking
from ledger.application import ApprovalsRefused
from ledger.commands import parse_booking
from ledger.recorders import SideRow
from projections.booking_list import STATES, BookingFilter, list_bookings

router = resource_router("/bookings", "bookings")

BookingKey = Annotated[str, Path(description="the booking key (URL-encoded: '/' may stay, '#' is %23)")]
State = Literal["recorded", "awaiting_approval", "approved", "reversed", "reversal", "withdrawal"]
assert set(State.__args__) == set(STATES)  # type: ignore[attr-defined]


def _location(key: str) -> dict[str, str]:
    return {"Location": f"/bookings/{quote(key, safe='/')}"}


async def _create_booking_arguments(request: Request) -> dict[str, Any] | None:
    """create_booking's dependencies resolved directly (api.presolve), in the declared path's
    order: the body parsed, the router's dependency (no query parameters), Clerk, Idem, Svc,
    the body validated."""
    value = await plain_json(request)
    if value is NOT_PLAIN or request.scope["query_string"]:
        return None  # known_query_only refuses any query parameter
    caller = await caller_holding(request, Role.CLERK)
    idem = valid_idempotency(request, caller)
    body = valid_as(BookingCreate, value)
    if idem is None or body is None:
        return None
    return {"body": body, "caller": caller, "idem": idem, "svc": request.app.state.services}


@router.post(
    "",
    status_code=201,
    response_model=BookingPosted,
    summary="Record a booking",
    responses={200: {"model": BookingPosted, "description": "the key already held this content"}}
    | problem_responses(409),
)
@presolved(_create_booking_arguments)
async def create_booking(
    body: BookingCreate,
    caller: Clerk,
    idem: Idem,
    svc: Svc,
) -> Response:
    # Stored by the booking writer together with the bookings of other requests waiting
    # (api/booking_writer.py); what it does not settle goes the request's own way, below.
    ledger = svc.books.ledger

    def decide() -> Decided | None:
        content = parse_booking(body.as_text(), ledger.catalogue)
        decided = ledger.decide_new_booking(content, recorded_by=caller.user)
        if decided is None:
            return None
        booking, calendar_version = decided
        rows, response = idem.answer_with_events(body, _posted(booking, True))
        return Decided(booking, calendar_version, rows, response)

    return await svc.booking_writer.submit(Job(idem, decide, lambda: _record_own_way(body, caller, idem, svc)))


def _posted(booking: Booking, created: bool) -> Outcome:
    posted = BookingPosted(created=created, booking=BookingRead.of(booking))
    return (201 if created else 200), posted, _location(booking.key)


def _record_own_way(body: BookingCreate, caller: Caller, idem: Idempotency, svc: Services) -> Response:
    """One request on its own: a repeat, a refusal, a draw on a commitment, a conflict."""

    def action(remember: Callable[[Outcome], tuple[SideRow, ...]]) -> tuple[Outcome, bool]:
        ledger = svc.books.ledger
        content = parse_booking(body.as_text(), ledger.catalogue)
        # A new booking's answer is stored with its events, in one transaction.
        posted = ledger.record_booking(
            content, recorded_by=caller.user, side_rows=lambda booking: remember(_posted(booking, True))
        )
        svc.view.poke()
        return _posted(posted.booking, posted.created), posted.created

    return idem.run_with_events(body, action)


@router.get("", response_model=BookingPage, summary="List bookings", responses=problem_responses())
def list_(
    _: Reader,
    svc: Svc,
    year: Annotated[int | None, Query(ge=2005, le=2100, description="fiscal year")] = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    state: State | None = None,
    case_ref: Annotated[str | None, Query(max_length=64)] = None,
    document_ref: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")] = None,
    limit: Limit = PAGE_LIMIT_DEFAULT,
) -> BookingPage:
    if category is not None and category not in svc.books.ledger.catalogue:
        raise ApiProblem(
            422,
            "validation",
            "Invalid input",
            f"category: unknown category {category!r}",
            errors=[{"field": "category", "reason": f"unknown category {category!r}", "location": "query"}],
        )
    after = _decode_cursor(cursor) if cursor else None
    filters = BookingFilter(year, quarter, category, state, case_ref, document_ref)
    with svc.view.snapshot() as view:
        rows = list_bookings(view, filters, after_key=after, limit=limit + 1)
    items = [BookingRead.of_row(r, s) for r, s in rows[:limit]]
    more = len(rows) > limit
    return BookingPage(items=items, next_cursor=_encode_cursor(items[-1].key) if more else None)


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": key}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
        if not isinstance(after, str) or "\x00" in after:
            raise TypeError
        after.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
        return after
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise ApiProblem(
            422,
            "validation",
            "Invalid input",
            "cursor: not a cursor of this API",
            errors=[
                {
                    "field": "cursor",
                    "reason": "not a cursor of this API (use next_cursor as given)",
                    "location": "query",
                }
            ],
        ) from None


# Before the "/{key:path}" routes (which it does not match anyway: a single approval ends in
# "/approve"; a booking keyed "approvals" is approved at /bookings/approvals/approve).
@router.post(
    "/approvals",
    response_model=ApprovalsPosted,
    summary="Approve several bookings at once (a Sammelanordnung): all or none",
    description=(
        "Each key under the rules of a single approval, all in one transaction. A refusal names every "
        "refused key in `errors` (`field` `keys.<i>`, the `key`, its `reason`, and the `status` and `type` "
        "its single approval would get); nothing is stored. The status: 422 for malformed input (empty, "
        "too many, a key repeated or not a key), else the most severe of the keys': 403 (four eyes) "
        "before 409 (the books' state) before 404 (unknown keys only)."
    ),
    responses=problem_responses(404, 409),
)
def approve_many(
    body: ApprovalsCreate,
    caller: Approver,
    idem: Idem,
    svc: Svc,
) -> Response:
    def outcome(bookings: list[Booking]) -> Outcome:
        posted = ApprovalsPosted(count=len(bookings), bookings=[BookingRead.of(b) for b in bookings])
        return 200, posted, {}

    def action(remember: Callable[[Outcome], tuple[SideRow, ...]]) -> tuple[Outcome, bool]:
        # The answer is stored with the approvals, in one transaction.
        try:
            bookings = svc.books.ledger.approve_bookings(
                body.keys, approved_by=caller.user, side_rows=lambda bs: remember(outcome(bs))
            )
        except ApprovalsRefused as e:
            raise _approvals_refused(e) from None
        svc.view.poke()
        return outcome(bookings), True

    return idem.run_with_events(body, action)


# A batch refused for different reasons answers with the first of these that occurs among its keys.
REFUSAL_STATUS_ORDER = (422, 403, 409, 404)


def _approvals_refused(e: ApprovalsRefused) -> ApiProblem:
    """One problem for the batch, one entry per refused key with what its single approval gets."""
    errors: list[dict[str, Any]] = []
    statuses: set[int] = set()
    for r in e.refusals:
        status, single, _headers, _replayable = problem_for(r.error)
        statuses.add(status)
        errors.append(
            field_error(f"keys.{r.index}", r.reason, "body", key=r.key, status=status, type=single["type"])
        )
    status = next((s for s in REFUSAL_STATUS_ORDER if s in statuses), max(statuses))
    if status == 422:
        return ApiProblem(422, "validation", "Invalid input", str(e), errors=errors)
    return ApiProblem(status, "approvals-refused", "Approvals refused", str(e), errors=errors)


@router.get(
    "/{key:path}", response_model=BookingRead, summary="One booking", responses=problem_responses(404)
)
def get_booking(key: BookingKey, _: Reader, svc: Svc) -> BookingRead:
    return BookingRead.of(svc.books.ledger.get_booking(key))


@router.post(
    "/{key:path}/approve",
    response_model=BookingRead,
    summary="Approve a booking (four eyes: never its recorder)",
    responses=problem_responses(404, 409),
)
def approve(
    key: BookingKey,
    caller: Approver,
    idem: Idem,
    svc: Svc,
) -> Response:
    def outcome(booking: Booking) -> Outcome:
        return 200, BookingRead.of(booking), {}

    def action(remember: Callable[[Outcome], tuple[SideRow, ...]]) -> tuple[Outcome, bool]:
        # The answer is stored with the approval, in one transaction.
        booking = svc.books.ledger.approve_booking(
            key, approved_by=caller.user, side_rows=lambda b: remember(outcome(b))
        )
        svc.view.poke()
        return outcome(booking), True

    return idem.run_with_events(b"", action)


@router.post(
    "/{key:path}/reverse",
    status_code=201,
    response_model=ReversalPosted,
    summary="Reverse a booking by a counter-booking (Storno)",
    responses=problem_responses(404, 409),
)
def reverse(
    key: BookingKey,
    body: ReversalCreate,
    caller: Clerk,
    idem: Idem,
    svc: Svc,
) -> Response:
    def outcome(original: Booking, counter: Booking) -> Outcome:
        posted = ReversalPosted(original=BookingRead.of(original), counter_booking=BookingRead.of(counter))
        return 201, posted, _location(counter.key)

    def action(remember: Callable[[Outcome], tuple[SideRow, ...]]) -> tuple[Outcome, bool]:
        answer: list[Outcome] = []

        def rows(original: Booking, counter: Booking) -> tuple[SideRow, ...]:
            answer[:] = [outcome(original, counter)]  # the answer of the attempt that is stored
            return remember(answer[0])

        # The answer is stored with the reversal and the counter-booking, in one transaction.
        svc.books.ledger.reverse_booking(key, reason=body.reason, reversed_by=caller.user, side_rows=rows)
        svc.view.poke()
        return answer[0], True

    return idem.run_with_events(body, action)
