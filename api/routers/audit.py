"""Endpoints for auditors (role auditor, or admin), as `koa audit ...`: every event of a booking, the
split as of a moment (replayed from the log into a separate store), the seal chain, and the IKS
samples. Everything reads, except POST /audit/samples, which records its draw (the audit office's
own act, as `koa audit sample`), so that a redraw shows; re-checking records nothing."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import Query, Response

from api.auth import AuditOffice, AuditReader
from api.idempotency import Idem, Outcome
from api.problems import ApiProblem, documented, field_error, invalid_field, problem_responses
from api.routers.bookings import BookingKey
from api.routing import resource_router
from api.schemas.audit import (
    MONTH_TEXT,
    BookingEvent,
    ChainHead,
    ChainVerdict,
    EarlierDraw,
    SampleCheckRead,
    SampleDrawCheck,
    SampleDrawCreate,
    SampleDrawPosted,
    SampleDrawRead,
)
from api.schemas.common import IsoMoment
from api.schemas.settlement import SplitRead
from api.services import Svc
from domain.errors import ValidationError
from domain.sampling import MONTH_RE, SEED_RE, check_draw
from ledger import audit as audit_service
from ledger import samples
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
    as_of: Annotated[IsoMoment, Query(description="ISO 8601; without an offset it is UTC")],
    year: Annotated[int, Query(ge=2005, le=2100)],
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
) -> SplitRead:
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise invalid_field("as_of", f"{moment.isoformat()} is in the future")
    ledger, land = svc.books.ledger, svc.books.settings.land
    with tempfile.TemporaryDirectory(prefix="koa-api-replay-") as tmp:
        try:
            replay = replay_as_of(ledger, moment, Path(tmp))
        except AsOfBeforeFirstEvent as e:
            raise invalid_field("as_of", str(e)) from None
        try:
            lines = split_lines(
                replay.view, ledger.catalogue, ledger.rates_as_of(moment), land, year, quarter
            )
            return SplitRead.of(year, quarter, land, lines, replay.last_included)
        finally:
            replay.close()



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
        raise invalid_field("anchor", str(e)) from None
    v = audit_service.verify_log(svc.books.ledger, parsed)
    return ChainVerdict(
        intact=v.intact, events=v.count, position=v.position, seal=v.head.hex(), detail=str(v)
    )


# ---- IKS samples (koa audit sample) ---------------------------------------------------------

Month = Annotated[str, Query(max_length=32, description=MONTH_TEXT, examples=["2025-03"])]
NO_DRAWS = "no draw recorded for the month (with the seed, if given)"


def _month(month: str) -> str:
    if not MONTH_RE.fullmatch(month):
        raise invalid_field("month", f"must be YYYY-MM, not {month!r}")
    return month


@router.post(
    "/samples",
    status_code=201,
    response_model=SampleDrawPosted,
    summary="Draw a reproducible IKS sample per cost centre from the month's bookings, and record the draw",
    description="The population is every booking paid in the month (counted or not, counter-bookings "
    "included) recorded up to the log position the split view has reached; the draw records that "
    "position and the population's SHA-256, so GET /audit/samples/check can redraw it later. Drawing "
    "again (even with the same seed) records another draw; the answer lists the earlier ones. "
    "A month without bookings is 422 naming `month`.",
    responses=documented({409: "Idempotency-Key used with another request, or still in progress"}),
)
def draw_sample(body: SampleDrawCreate, caller: AuditOffice, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        try:
            check_draw(body.month, body.per_branch, body.seed)
        except ValidationError as e:
            raise invalid_field(e.field or "body", e.reason, "body") from None
        ledger = svc.books.ledger
        earlier = ledger.sample_draws(body.month)
        view = svc.view.fresh()  # one catch-up per process at a time; draw_sample's own then finds little
        try:
            drawn = samples.draw_sample(
                ledger, view, body.month, body.per_branch, body.seed, drawn_by=caller.user
            )
        except samples.NoPopulation:
            raise invalid_field("month", f"no bookings paid in {body.month}", "body") from None
        posted = SampleDrawPosted.of(drawn, earlier=[EarlierDraw.of(d) for d in earlier])
        return 201, posted, {"Location": f"/audit/samples?month={body.month}"}

    return idem.run(body, action)


@router.get(
    "/samples",
    response_model=list[SampleDrawRead],
    summary="The IKS sample draws recorded for a month, oldest first (redraws show)",
)
def list_samples(_: AuditReader, svc: Svc, month: Month) -> list[SampleDrawRead]:
    return [SampleDrawRead.of(d) for d in svc.books.ledger.sample_draws(_month(month))]


@router.get(
    "/samples/check",
    response_model=SampleCheckRead,
    summary="Redraw every recorded draw of a month from the population as of its position: reproduced?",
    description="As `koa audit sample --check`: each draw with its own size, seed and method, from the "
    "bookings recorded up to its recorded position (bookings recorded since do not change the answer). "
    "A draw that is not reproduced is answered 200 with reproduced=false and the cost centres that "
    "differ. Records nothing.",
    responses=documented({404: NO_DRAWS}),
)
def check_samples(
    _: AuditReader,
    svc: Svc,
    month: Month,
    seed: Annotated[
        str | None, Query(max_length=100, description="only the draws of this seed", examples=["4711"])
    ] = None,
) -> SampleCheckRead:
    _month(month)
    if seed is not None and not SEED_RE.fullmatch(seed):
        raise invalid_field("seed", "1-64 letters, digits or ._-")
    checks = samples.check_draws(svc.books.ledger, svc.view.fresh(), month, seed=seed)
    if not checks:
        detail = f"no recorded draws for {month}" + (f" with seed {seed}" if seed else "")
        # The seed is at fault when the month has draws, only none of it.
        field = "seed" if seed and svc.books.ledger.sample_draws(month) else "month"
        raise ApiProblem(404, "not-found", "Not found", detail, errors=[field_error(field, detail, "query")])
    reproduced = sum(c.reproduced for c in checks)
    return SampleCheckRead(
        month=month,
        seed=seed,
        draws=len(checks),
        reproduced=reproduced,
        all_reproduced=reproduced == len(checks),
        checks=[SampleDrawCheck.of(c) for c in checks],
    )
