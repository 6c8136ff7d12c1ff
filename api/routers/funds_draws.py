"""Funds drawn from the Bundeskasse (Mittelabruf), as `koa draw`: recorded by a clerk, read by all."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from api.auth import Clerk, Reader
from api.idempotency import Idem, Outcome
from api.problems import parsed_fields, problem_responses
from api.routing import resource_router
from api.schemas.settlement import FundsDrawCreate, FundsDrawPosted, FundsDrawRead
from api.services import Svc
from domain.money import parse_amount_cents
from domain.settlement import FundsDraw
from ledger.commands import parse_date

router = resource_router("/funds-draws", "settlement")


def _read(d) -> FundsDrawRead:
    return FundsDrawRead(
        title=d.federal_title,
        year=d.fiscal_year,
        date=d.value_date,
        amount=d.amount_cents,
        amount_cents=d.amount_cents,
        document_ref=d.document_ref,
        recorded_by=d.recorded_by,
    )


@router.post(
    "",
    status_code=201,
    response_model=FundsDrawPosted,
    summary="Record funds drawn for a federal title",
    responses={
        200: {"model": FundsDrawPosted, "description": "the voucher was already recorded, same figures"}
    }
    | problem_responses(409),
)
def record_draw(body: FundsDrawCreate, caller: Clerk, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        given = parsed_fields(
            {"date": (parse_date, body.date), "amount": (parse_amount_cents, body.amount)}, "body"
        )
        ledger = svc.books.ledger
        known = FundsDraw.create_id(body.document_ref) in ledger.repository
        d = ledger.record_funds_draw(
            federal_title=body.title,
            fiscal_year=body.year,
            value_date=given["date"],
            amount_cents=given["amount"],
            document_ref=body.document_ref,
            recorded_by=caller.user,
        )
        return (200 if known else 201), FundsDrawPosted(created=not known, draw=_read(d)), {}

    return idem.run(body, action)


@router.get("", response_model=list[FundsDrawRead], summary="Funds drawn, oldest first")
def list_draws(
    _: Reader,
    svc: Svc,
    year: Annotated[int | None, Query(ge=2005, le=2100, description="fiscal year")] = None,
) -> list[FundsDrawRead]:
    events = svc.books.ledger.recorded(FundsDraw.Recorded)
    return [_read(e) for e in events if year is None or e.fiscal_year == year]
