"""Parameters: the rates set by law, read by everyone, changed by an admin (an audited event), as
`koa params list/set`."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query, Response

from api.auth import Admin, Reader
from api.idempotency import Idem, Outcome
from api.problems import problem_responses
from api.routing import resource_router
from api.schemas.parameters import (
    ParameterChange,
    ParameterSet,
    ParameterSetResult,
    ParametersRead,
    YearRates,
)
from api.services import Services, Svc
from domain.errors import RateMissing
from domain.parameters import parse_rate
from domain.rates import RateTable
from projections.split_queries import split_lines

router = resource_router("/parameters", "parameters")


def _change(e) -> ParameterChange:
    return ParameterChange(
        at=e.timestamp,
        set_by=e.set_by,
        name=e.name,
        year=e.year,
        land=e.land or None,
        value=e.value,
        reason=e.reason,
    )


def _year_rates(rates: RateTable, land: str, year: int) -> YearRates:
    try:
        share = str(rates.vwk_share(year))
    except RateMissing:
        share = None
    provisional = final = None
    if year in rates.kdu_years(land):
        q = rates.kdu_quota(land, year)
        provisional = None if q.provisional is None else str(q.provisional)
        final = None if q.final is None else str(q.final)
    return YearRates(
        year=year, vwk_federal_share=share, kdu_quota_provisional=provisional, kdu_quota_final=final
    )


@router.get("", response_model=ParametersRead, summary="Rates in force per year, and every change")
def list_parameters(
    _: Reader,
    svc: Svc,
    year: Annotated[
        int | None, Query(ge=2005, le=2100, description="default: this year and the five before")
    ] = None,
) -> ParametersRead:
    ledger, land = svc.books.ledger, svc.books.settings.land
    rates = ledger.rates
    years = [year] if year else list(range(date.today().year - 5, date.today().year + 1))
    return ParametersRead(
        land=land,
        years=[_year_rates(rates, land, y) for y in years],
        changes=[_change(e) for e in ledger.parameter_changes()],
    )


def _federal(svc: Services, land: str, year: int) -> int | None:
    ledger = svc.books.ledger
    try:
        lines = split_lines(svc.view.fresh(), ledger.catalogue, ledger.rates, land, year)
    except RateMissing:
        return None
    return sum(s.federal_cents for s in lines)


@router.post(
    "",
    status_code=201,
    response_model=ParameterSetResult,
    summary="Change a rate for a fiscal year (the split follows at once)",
    responses=problem_responses(409),
)
def set_parameter(body: ParameterSet, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        ledger = svc.books.ledger
        land = (body.land or svc.books.settings.land).upper()
        rate = parse_rate(body.value)
        before = _federal(svc, land, body.year)
        ledger.set_parameter(
            name=body.name, year=body.year, value=rate, land=land, reason=body.reason, set_by=caller.user
        )
        after = _federal(svc, land, body.year)
        mine = [
            e
            for e in ledger.parameter_changes()
            if (e.set_by, e.name, e.year) == (caller.user, body.name, body.year)
        ]
        return (
            201,
            ParameterSetResult(change=_change(mine[-1]), federal_before=before, federal_after=after),
            {},
        )

    return idem.run(body, action)
