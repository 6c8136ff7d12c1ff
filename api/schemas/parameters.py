"""Dated parameters: the rates and flat amounts in force per fiscal year, every change, and a change."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Euros
from domain.parameters import NAMES

ParameterName = Literal[
    "vwk_federal_share",
    "kdu_quota_provisional",
    "kdu_quota_final",
    "versorgungszuschlag_cap",
    "personalgemeinkosten_rate",
    "personalnebenkosten_per_vzae",
    "sachkosten_per_vzae",
    "deckungsfaehigkeit_limit",
    "repayment_interest_points",
    "retention_years_books",
    "retention_years_vouchers",
]
assert set(ParameterName.__args__) == set(NAMES)  # type: ignore[attr-defined]
VALUE_TEXT_LEN_MAX = 40


def _value_text(value: Any) -> str:
    """A value as text for domain.parameters.parse_value: a rate ('0.848', '0,848', '84,8 %') or an
    amount in euros ('13.000,00'), by the parameter; or a JSON number (read as Decimal, never float)."""
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not true/false")
    if isinstance(value, Decimal | int):
        if isinstance(value, Decimal) and (not value.is_finite() or not -12 <= value.adjusted() <= 12):
            raise ValueError("not a rate or an amount")
        if isinstance(value, int) and abs(value) >= 10**12:
            raise ValueError("not a rate or an amount")
        # str, not format(.., "f"): an int would come out as '13000.000000', six decimals.
        return str(value) if isinstance(value, int) else format(value, "f")
    if isinstance(value, str) and len(value) <= VALUE_TEXT_LEN_MAX:
        return value
    raise ValueError(
        'must be a string such as "84,8 %", "0.848" or "13.000,00", or a number (a rate between 0 and 1, '
        "or euros for the amounts per VZÄ)"
    )


class ParameterSet(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "vwk_federal_share",
                    "year": 2025,
                    "value": "84,8 %",
                    "reason": "§ 46 Abs. 3 SGB II",
                },
                {
                    "name": "kdu_quota_final",
                    "year": 2024,
                    "value": 0.721,
                    "land": "BW",
                    "reason": "BBFestV 2025",
                },
                {
                    "name": "sachkosten_per_vzae",
                    "year": 2026,
                    "value": "13.000,00",
                    "reason": "Pauschale 2026",
                },
            ]
        },
    )

    name: ParameterName
    year: int = Field(
        strict=True, ge=2005, le=2100, description="the fiscal year from which (share) or for which (quota)"
    )
    value: Annotated[
        str,
        BeforeValidator(_value_text),
        Field(
            description="rates: '84,8 %', '0.848' or a number between 0 and 1; the amounts per VZÄ "
            "(personalnebenkosten_per_vzae, sachkosten_per_vzae): euros, '13.000,00' or 13000; the "
            "retention periods (retention_years_*): whole years, '10' or 10",
            json_schema_extra={
                "anyOf": [{"type": "string", "maxLength": VALUE_TEXT_LEN_MAX}, {"type": "number"}]
            },
        ),
    ]
    land: str | None = Field(None, max_length=2, description="for KdU quotas; default: the server's KOA_LAND")
    reason: str = Field(min_length=1, max_length=500, description="why (kept with the change)")


class ParameterChange(BaseModel):
    at: datetime
    set_by: str
    name: str
    kind: Literal["rate", "amount", "years"] = Field(
        description="rate: a share 0..1; amount: euros per VZÄ and year; years: a whole number of years"
    )
    year: int
    land: str | None
    value: str = Field(
        description="as stored: a rate such as 0.848, euros such as 13000, or years such as 10"
    )
    reason: str


class ParameterDefinition(BaseModel):
    name: str
    kind: Literal["rate", "amount", "years"]
    description: str


class YearRates(BaseModel):
    """What is in force for a fiscal year (null: nothing on file)."""

    year: int
    vwk_federal_share: str | None = Field(description="the administrative-cost share in force, e.g. 0.874")
    kdu_quota_provisional: str | None
    kdu_quota_final: str | None
    versorgungszuschlag_cap: str | None = Field(description="e.g. 0.30 of the personnel costs")
    personalgemeinkosten_rate: str | None
    personalnebenkosten_per_vzae: Euros | None = Field(description="euros per VZÄ and year")
    personalnebenkosten_per_vzae_cents: int | None
    sachkosten_per_vzae: Euros | None = Field(description="euros per VZÄ and year")
    sachkosten_per_vzae_cents: int | None
    deckungsfaehigkeit_limit: str | None = Field(description="share of the giving budget that may be shifted")
    repayment_interest_points: str | None = Field(
        description="funds repaid to the Bund: interest at the Basiszinssatz + these points, e.g. 0.03"
    )
    basiszinssatz_january: str | None = Field(description="§ 247 BGB, from 1 January, e.g. 0.0127")
    basiszinssatz_july: str | None = Field(description="§ 247 BGB, from 1 July")
    retention_years_books: int | None = Field(
        description="years the books of this fiscal year are kept after the adoption of its accounts (GemHVO BW § 39)"
    )
    retention_years_vouchers: int | None = Field(description="years its vouchers (Belege) are kept")


class BaseRateChange(BaseModel):
    at: datetime
    set_by: str
    valid_from: date = Field(description="the half-year: 1 January or 1 July")
    value: str = Field(description="as stored, e.g. 0.0127 for 1,27 %")
    reason: str


class BaseRateSet(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"valid_from": "2026-07-01", "value": "1,27 %", "reason": "BAnz AT 30.06.2026"}]
        },
    )

    valid_from: str = Field(max_length=32, description="the half-year: YYYY-01-01 or YYYY-07-01")
    value: str = Field(max_length=VALUE_TEXT_LEN_MAX, description="as announced, e.g. '1,27 %' or '-0,88 %'")
    reason: str = Field(min_length=1, max_length=500, description="why (e.g. the Bundesanzeiger notice)")


class ParametersRead(BaseModel):
    land: str
    parameters: list[ParameterDefinition] = Field(description="every parameter that may be set")
    years: list[YearRates]
    changes: list[ParameterChange] = Field(
        description="every change since the shipped defaults, oldest first"
    )
    base_rate_changes: list[BaseRateChange] = Field(
        description="every Basiszinssatz set since the shipped table, oldest first"
    )


class AllocationRerun(BaseModel):
    """What a rerun of a booked cost allocation run would change with the parameters now in force."""

    document_ref: str = Field(description="the run in force, e.g. KOA-2026-Q1-L1")
    year: int
    quarter: int | None = Field(description="null: the whole year")
    booked: Euros = Field(description="the run's total as booked")
    booked_cents: int
    with_new_value: Euros = Field(description="the total a rerun would book")
    with_new_value_cents: int
    difference: Euros
    difference_cents: int


class ParameterSetResult(BaseModel):
    change: ParameterChange
    federal_before: Euros | None = Field(
        description="the year's federal share before the change (null: no rate, or a parameter the split "
        "does not use)"
    )
    federal_after: Euros | None
    allocation_reruns: list[AllocationRerun] = Field(
        [],
        description="for the cost allocation parameters: each booked run from the year on that a rerun would "
        "change (a rerun, POST /allocations, books the difference)",
    )
