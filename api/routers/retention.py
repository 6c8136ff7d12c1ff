"""The retention register (GemHVO BW § 39), as `koa retention`: the adoption of a year's accounts is
recorded by a clerk (as funds drawn are), the register is read by every role."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Query, Response

from api.auth import Clerk, Reader
from api.idempotency import Idem, Outcome
from api.problems import documented, invalid_field, state_conflict
from api.routing import resource_router
from api.schemas.common import IsoMoment
from api.schemas.retention import AdoptionCreate, AdoptionPosted, RetentionRead, RetentionRegisterRead
from api.services import Svc
from domain.errors import DomainError, KeyConflict, ValidationError
from domain.retention import YearNotClosed
from ledger.commands import parse_date
from ledger.retention import NOTHING_DELETED, register, year_line

router = resource_router("/retention", "retention")


@router.post(
    "/adoptions",
    status_code=201,
    response_model=AdoptionPosted,
    summary="Record the council's adoption of a fiscal year's accounts (the retention periods run from it)",
    responses={
        200: {"model": AdoptionPosted, "description": "these figures were already on record: a repeat"}
    }
    | documented(
        {
            409: "the year is not closed; its accounts are on record with other figures (a correction names "
            "them in corrects, with a reason); corrects names another adoption than the one on record",
            422: "invalid input, each field with its reason: a date inside the fiscal year or in the future, "
            "a malformed resolution, a reason without corrects",
        }
    ),
)
def adopt(body: AdoptionCreate, caller: Clerk, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        try:
            adopted_on = parse_date(body.date)
        except ValueError as e:
            raise invalid_field("date", str(e), "body") from None
        ledger = svc.books.ledger
        try:
            _, created = ledger.record_adoption(
                fiscal_year=body.year,
                adopted_on=adopted_on,
                resolution_ref=body.resolution,
                recorded_by=caller.user,
                corrects=body.corrects,
                reason=body.reason,
            )
        except ValidationError as e:
            raise invalid_field(e.field or "body", e.reason, "body") from None
        except KeyConflict as e:
            raise state_conflict("key-conflict", "Accounts already adopted", e) from None
        except YearNotClosed as e:
            raise state_conflict("period-open", "Fiscal year not closed", e) from None
        except DomainError as e:
            raise state_conflict("conflict", "Refused by the books' state", e) from None
        line = year_line(ledger, ledger.rates, body.year, date.today())
        posted = AdoptionPosted(created=created, year=RetentionRead.of(line))
        return (201 if created else 200), posted, {"Location": "/retention"}

    return idem.run(body, action)


@router.get(
    "",
    response_model=RetentionRegisterRead,
    summary="The retention register: per fiscal year the adoption, until when vouchers and books are kept, "
    "and what may be destroyed on a day (the ledger itself deletes nothing)",
)
def show(
    _: Reader,
    svc: Svc,
    on: Annotated[
        str | None,
        Query(
            max_length=32,
            description="the day the status is for, YYYY-MM-DD or DD.MM.YYYY (default: today; with as_of: "
            "that moment's day)",
        ),
    ] = None,
    as_of: Annotated[
        IsoMoment | None,
        Query(description="as recorded up to this moment (ISO 8601; without an offset it is UTC)"),
    ] = None,
) -> RetentionRegisterRead:
    moment = None
    if as_of is not None:
        moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        if moment > datetime.now(UTC):
            raise invalid_field("as_of", f"{moment.isoformat()} is in the future", "query")
    try:
        day = parse_date(on) if on else (moment.date() if moment else date.today())
    except ValueError as e:
        raise invalid_field("on", str(e), "query") from None
    with svc.view.snapshot() as view:
        r = register(svc.books.ledger, view, on=day, as_of=moment)
    return RetentionRegisterRead(
        on=r.on, as_of=r.as_of, note=NOTHING_DELETED, years=[RetentionRead.of(line) for line in r.lines]
    )
