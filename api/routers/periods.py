"""Closed periods (BHO § 76), as `koa close` and `koa periods`: closed by an admin, read by all."""

from __future__ import annotations

from fastapi import Response
from pydantic import RootModel

from api.auth import Admin, Reader
from api.idempotency import Idem, Outcome
from api.problems import problem_responses
from api.routing import resource_router
from api.schemas.settlement import ClosedPeriod, PeriodClose
from api.services import Svc
from domain.periods import PeriodCalendar


class _ClosedList(RootModel[list[ClosedPeriod]]):
    """The response of a POST is a model (it is stored for Idempotency-Key repeats)."""


router = resource_router("/periods", "periods")


def _closed(calendar: PeriodCalendar) -> list[ClosedPeriod]:
    return [ClosedPeriod(year=y, quarter=q or None, closing=how) for y, q, how in calendar.closed()]


@router.get("", response_model=list[ClosedPeriod], summary="The closed periods")
def list_periods(_: Reader, svc: Svc) -> list[ClosedPeriod]:
    return _closed(svc.books.ledger.calendar())


@router.post(
    "/close",
    status_code=201,
    response_model=list[ClosedPeriod],
    summary="Close a quarter (in order) or a fiscal year: nothing more is booked into it",
    responses=problem_responses(409),
)
def close_period(body: PeriodClose, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        calendar = svc.books.ledger.close_period(
            year=body.year, quarter=body.quarter or 0, closed_by=caller.user
        )
        return 201, _ClosedList(_closed(calendar)), {}

    return idem.run(body, action)
