"""Parameters: the rates and flat amounts set by law, read by everyone, changed by an admin (an audited
event), as `koa params list/set`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import Query, Response

from api.auth import Admin, Reader
from api.idempotency import Idem, Outcome
from api.problems import problem_responses
from api.routing import resource_router
from api.schemas.parameters import (
    AllocationRerun,
    BaseRateChange,
    BaseRateSet,
    ParameterChange,
    ParameterDefinition,
    ParameterSet,
    ParameterSetResult,
    ParametersRead,
    YearRates,
)
from api.services import Services, Svc
from domain.errors import RateMissing, ValidationError
from domain.parameters import NAMES, kind_of, parse_signed_percent, parse_value
from domain.rates import RateTable
from ledger.allocation_commands import rerun_differences
from ledger.bootstrap import Books
from ledger.commands import parse_date
from projections.split_queries import SPLIT_PARAMETERS, federal_before_after

router = resource_router("/parameters", "parameters")


def _change(e) -> ParameterChange:
    return ParameterChange(
        at=e.timestamp,
        set_by=e.set_by,
        name=e.name,
        kind=kind_of(e.name),  # type: ignore[arg-type]
        year=e.year,
        land=e.land or None,
        value=e.value,
        reason=e.reason,
    )


def _or_none(rates: RateTable, name: str, year: int) -> Decimal | None:
    try:
        return rates.dated(name, year)
    except RateMissing:
        return None


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

    def rate(name: str) -> str | None:
        value = _or_none(rates, name, year)
        return None if value is None else str(value)

    def amount_cents(name: str) -> int | None:
        try:
            return rates.dated_amount_cents(name, year)
        except RateMissing:
            return None

    def years(name: str) -> int | None:
        try:
            return rates.dated_years(name, year)
        except RateMissing:
            return None

    nebenkosten = amount_cents("personalnebenkosten_per_vzae")
    sachkosten = amount_cents("sachkosten_per_vzae")
    return YearRates(
        year=year,
        vwk_federal_share=share,
        kdu_quota_provisional=provisional,
        kdu_quota_final=final,
        versorgungszuschlag_cap=rate("versorgungszuschlag_cap"),
        personalgemeinkosten_rate=rate("personalgemeinkosten_rate"),
        personalnebenkosten_per_vzae=nebenkosten,
        personalnebenkosten_per_vzae_cents=nebenkosten,
        sachkosten_per_vzae=sachkosten,
        sachkosten_per_vzae_cents=sachkosten,
        deckungsfaehigkeit_limit=rate("deckungsfaehigkeit_limit"),
        repayment_interest_points=rate("repayment_interest_points"),
        basiszinssatz_january=_base_rate(rates, date(year, 1, 1)),
        basiszinssatz_july=_base_rate(rates, date(year, 7, 1)),
        retention_years_books=years("retention_years_books"),
        retention_years_vouchers=years("retention_years_vouchers"),
    )


def _base_rate(rates: RateTable, half_year: date) -> str | None:
    try:
        return str(rates.basiszinssatz.on(half_year))
    except RateMissing:
        return None


def _base_rate_change(e) -> BaseRateChange:
    return BaseRateChange(
        at=e.timestamp, set_by=e.set_by, valid_from=e.valid_from, value=e.value, reason=e.reason
    )


@router.get("", response_model=ParametersRead, summary="Parameters in force per year, and every change")
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
        parameters=[
            ParameterDefinition(name=n, kind=kind_of(n), description=d)  # type: ignore[arg-type]
            for n, d in NAMES.items()
        ],
        years=[_year_rates(rates, land, y) for y in years],
        changes=[_change(e) for e in ledger.parameter_changes()],
        base_rate_changes=[_base_rate_change(e) for e in ledger.base_rate_changes()],
    )


def _federal_before_after(
    svc: Services, land: str, year: int, setting: tuple[str, Decimal]
) -> tuple[int, int] | None:
    """The year's federal share before and after the change, of the same bookings (one snapshot
    of the view, at least as far as the log is now)."""
    ledger = svc.books.ledger
    with svc.view.snapshot() as view:
        return federal_before_after(view, ledger.catalogue, ledger.rates, land, year, setting)


def _rerun_differences(books: Books, name: str, year: int) -> list[AllocationRerun]:
    return [
        AllocationRerun(
            document_ref=d.document_ref,
            year=d.year,
            quarter=d.quarter or None,
            booked=d.booked_cents,
            booked_cents=d.booked_cents,
            with_new_value=d.with_new_value_cents,
            with_new_value_cents=d.with_new_value_cents,
            difference=d.difference_cents,
            difference_cents=d.difference_cents,
        )
        for d in rerun_differences(books, name, year)
    ]


def _parse(name: str, text: str) -> Decimal:
    try:
        return parse_value(name, text)
    except ArithmeticError:  # parse_rate lets 'nan' and '1e9999999 %' through as decimal errors
        raise ValidationError(f"not a rate: {text!r}", "value") from None


@router.post(
    "",
    status_code=201,
    response_model=ParameterSetResult,
    summary="Change a parameter for a fiscal year (the split follows at once; allocation runs by a rerun)",
    responses=problem_responses(409),
)
def set_parameter(body: ParameterSet, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        ledger = svc.books.ledger
        land = (body.land or svc.books.settings.land).upper()
        value = _parse(body.name, body.value)
        moved = (
            _federal_before_after(svc, land, body.year, (body.name, value))
            if body.name in SPLIT_PARAMETERS
            else None
        )
        ledger.set_parameter(
            name=body.name, year=body.year, value=value, land=land, reason=body.reason, set_by=caller.user
        )
        before, after = moved or (None, None)
        mine = [
            e
            for e in ledger.parameter_changes()
            if (e.set_by, e.name, e.year) == (caller.user, body.name, body.year)
        ]
        return (
            201,
            ParameterSetResult(
                change=_change(mine[-1]),
                federal_before=before,
                federal_after=after,
                allocation_reruns=_rerun_differences(svc.books, body.name, body.year),
            ),
            {},
        )

    return idem.run(body, action)


@router.post(
    "/base-rates",
    status_code=201,
    response_model=BaseRateChange,
    summary="Set the Basiszinssatz of a half-year (§ 247 BGB), for the interest on repayments to the Bund",
    responses=problem_responses(409),
)
def set_base_rate(body: BaseRateSet, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        try:
            valid_from = parse_date(body.valid_from)
        except ValueError as e:
            raise ValidationError(str(e), "valid_from") from None
        value = parse_signed_percent(body.value)
        ledger = svc.books.ledger
        ledger.set_base_rate(valid_from=valid_from, value=value, reason=body.reason, set_by=caller.user)
        mine = [
            e
            for e in ledger.base_rate_changes()
            if (e.set_by, e.valid_from, e.value) == (caller.user, valid_from, str(value))
        ]
        return 201, _base_rate_change(mine[-1]), {}

    return idem.run(body, action)
