"""Read-only endpoints for auditors (role auditor, or admin), as `koa audit ...`: every event of a
booking, the split as of a moment (replayed from the log into a separate store), and the seal chain."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import Query

from api.auth import AuditReader
from api.problems import ApiProblem, field_error, problem_responses
from api.routers.bookings import BookingKey
from api.routing import resource_router
from api.schemas.audit import BookingEvent, ChainHead, ChainVerdict
from api.schemas.settlement import SplitRead
from api.services import Svc
from ledger import audit as audit_service
from ledger.seals import Anchor
from projections.replay import AsOfBeforeFirstEvent, replay_as_of
from projections.split_queries import split_lines

router = resource_router("/audit", "audit")


@router.get(
    "/bookings/{key:path}/events",
    response_model=list[BookingEvent],
    summary="Every event of a booking and of its counter-booking: what, who, when",
    responses=problem_responses(404),
)
def booking_events(key: BookingKey, _: AuditReader, svc: Svc) -> list[BookingEvent]:
    return [
        BookingEvent(key=h.key, version=h.version, event=h.event, at=h.at, who=h.who, detail=h.detail)
        for h in audit_service.booking_history(svc.books.ledger, key)
    ]


@router.get(
    "/split",
    response_model=SplitRead,
    summary="The split as recorded up to a moment (replayed from the events alone, with the rates then)",
    responses=problem_responses(409),
)
def split_as_of(
    _: AuditReader,
    svc: Svc,
    as_of: Annotated[datetime, Query(description="ISO 8601; without an offset it is UTC")],
    year: Annotated[int, Query(ge=2005, le=2100)],
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
) -> SplitRead:
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise _invalid("as_of", f"{moment.isoformat()} is in the future")
    ledger, land = svc.books.ledger, svc.books.settings.land
    with tempfile.TemporaryDirectory(prefix="koa-api-replay-") as tmp:
        try:
            replay = replay_as_of(ledger, moment, Path(tmp))
        except AsOfBeforeFirstEvent as e:
            raise _invalid("as_of", str(e)) from None
        try:
            lines = split_lines(
                replay.view, ledger.catalogue, ledger.rates_as_of(moment), land, year, quarter
            )
            return SplitRead.of(year, quarter, land, lines, replay.last_included)
        finally:
            replay.close()


def _invalid(field: str, reason: str) -> ApiProblem:
    return ApiProblem(
        422, "validation", "Invalid input", f"{field}: {reason}", errors=[field_error(field, reason, "query")]
    )


@router.get(
    "/head", response_model=ChainHead, summary="The verified head of the log, to keep outside as an anchor"
)
def head(_: AuditReader, svc: Svc) -> ChainHead:
    verdict = audit_service.head(svc.books.ledger)
    if not verdict.intact:
        raise ApiProblem(409, "chain-broken", "Seal chain broken", str(verdict))
    if verdict.count == 0:
        raise ApiProblem(409, "log-empty", "Log empty", "the log is empty: there is no head yet")
    seal = verdict.head.hex()
    return ChainHead(
        position=verdict.position, seal=seal, anchor=f"{verdict.position}:{seal}", events=verdict.count
    )


@router.get(
    "/verify",
    response_model=ChainVerdict,
    summary="Recompute the seal chain (optionally against an anchor taken earlier)",
    description="Reads the whole log (about 100,000 events/s). A broken chain is answered 200 with intact=false.",
)
def verify(
    _: AuditReader,
    svc: Svc,
    anchor: Annotated[str | None, Query(max_length=200, description="POSITION:SEAL from /audit/head")] = None,
) -> ChainVerdict:
    try:
        parsed = Anchor.parse(anchor) if anchor else None
    except ValueError as e:
        raise _invalid("anchor", str(e)) from None
    v = audit_service.verify_log(svc.books.ledger, parsed)
    return ChainVerdict(
        intact=v.intact, events=v.count, position=v.position, seal=v.head.hex(), detail=str(v)
    )
