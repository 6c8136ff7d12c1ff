"""Funds repaid to the Bund with their interest, as `koa repay`: recorded by a clerk, read by all."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from api.auth import Clerk, Reader
from api.idempotency import Idem, Outcome
from api.problems import documented, parsed_fields, state_conflict
from api.routing import resource_router
from api.schemas.settlement import (
    FundsRepaymentCreate,
    FundsRepaymentPosted,
    FundsRepaymentRead,
    InterestLineRead,
    InterestRead,
)
from api.services import Svc
from domain.errors import StateRefused
from domain.interest import Interest
from domain.money import parse_amount_cents
from domain.settlement import FundsRepayment
from ledger.commands import parse_date

router = resource_router("/funds-repayments", "settlement")


def _lines(interest: Interest) -> list[InterestLineRead]:
    return [
        InterestLineRead(
            first_day=line.first_day,
            last_day=line.last_day,
            days=line.days,
            basiszinssatz=str(line.base_rate),
            points=str(line.points),
            rate=str(line.rate),
            year_days=line.year_days,
        )
        for line in interest.lines
    ]


def _read(r) -> FundsRepaymentRead:
    return FundsRepaymentRead(
        title=r.federal_title,
        year=r.fiscal_year,
        date=r.value_date,
        amount=r.amount_cents,
        amount_cents=r.amount_cents,
        interest_since=r.interest_since,
        interest=r.interest_cents,
        interest_cents=r.interest_cents,
        interest_lines=_lines(r.interest),
        document_ref=r.document_ref,
        reason=r.reason,
        recorded_by=r.recorded_by,
    )


@router.post(
    "",
    status_code=201,
    response_model=FundsRepaymentPosted,
    summary="Record funds repaid to the Bund, with interest at the Basiszinssatz + 3 points",
    responses={
        200: {"model": FundsRepaymentPosted, "description": "the voucher was already recorded, same figures"}
    }
    | documented(
        {
            409: "beyond the funds drawn for the title and year, a voucher used otherwise, or no Basiszinssatz on file"
        }
    ),
)
def record_repayment(body: FundsRepaymentCreate, caller: Clerk, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        given = parsed_fields(
            {
                "date": (parse_date, body.date),
                "amount": (parse_amount_cents, body.amount),
                "interest_since": (parse_date, body.interest_since),
            },
            "body",
        )
        ledger = svc.books.ledger
        known = FundsRepayment.create_id(body.document_ref) in ledger.repository
        try:
            r = ledger.record_funds_repayment(
                federal_title=body.title,
                fiscal_year=body.year,
                value_date=given["date"],  # type: ignore[arg-type]
                amount_cents=given["amount"],  # type: ignore[arg-type]
                interest_since=given["interest_since"],  # type: ignore[arg-type]
                document_ref=body.document_ref,
                reason=body.reason,
                recorded_by=caller.user,
            )
        except StateRefused as e:
            raise state_conflict("repayment-exceeds-drawn", "Repayment beyond the funds drawn", e) from None
        net = ledger.net_drawn_cents(r.federal_title, r.fiscal_year)
        posted = FundsRepaymentPosted(
            created=not known, repayment=_read(r), net_drawn=net, net_drawn_cents=net
        )
        return (200 if known else 201), posted, {}

    return idem.run(body, action)


@router.get("", response_model=list[FundsRepaymentRead], summary="Funds repaid to the Bund, oldest first")
def list_repayments(
    _: Reader,
    svc: Svc,
    year: Annotated[int | None, Query(ge=2005, le=2100, description="fiscal year")] = None,
) -> list[FundsRepaymentRead]:
    ledger = svc.books.ledger
    events = ledger.recorded(FundsRepayment.Recorded)
    return [
        _read(ledger.repository.get(e.originator_id)) for e in events if year is None or e.fiscal_year == year
    ]


@router.get(
    "/interest",
    response_model=InterestRead,
    summary="The interest a repayment on a date would carry (records nothing)",
    responses=documented({409: "no Basiszinssatz on file for a half-year of the period"}),
)
def quote_interest(
    _: Reader,
    svc: Svc,
    amount: Annotated[str, Query(max_length=32, description="euros, e.g. 12.345,67")],
    interest_since: Annotated[str, Query(max_length=32, description="the day the funds were obtained")],
    date_: Annotated[str, Query(alias="date", max_length=32, description="the day of repayment")],
) -> InterestRead:
    given = parsed_fields(
        {
            "amount": (parse_amount_cents, amount),
            "interest_since": (parse_date, interest_since),
            "date": (parse_date, date_),
        },
        "query",
    )
    interest = svc.books.ledger.repayment_interest(
        amount_cents=given["amount"],  # type: ignore[arg-type]
        interest_since=given["interest_since"],  # type: ignore[arg-type]
        value_date=given["date"],  # type: ignore[arg-type]
    )
    return InterestRead(
        amount=interest.principal_cents,
        amount_cents=interest.principal_cents,
        interest_since=interest.since,
        date=interest.until,
        days=interest.days,
        interest=interest.total_cents,
        interest_cents=interest.total_cents,
        lines=_lines(interest),
    )
