"""Dated rates (parameters): the rates in force per fiscal year, every change, and a change."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Euros

ParameterName = Literal["vwk_federal_share", "kdu_quota_provisional", "kdu_quota_final"]


def _rate_text(value: Any) -> str:
    """A rate as text for domain.parameters.parse_rate ('0.848', '0,848', '84,8 %'), or a JSON number."""
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not true/false")
    if isinstance(value, Decimal | int):
        if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() > 3):
            raise ValueError("not a rate")
        return format(value, "f")
    if isinstance(value, str) and len(value) <= 20:
        return value
    raise ValueError('must be a string such as "84,8 %" or "0.848", or a number between 0 and 1')


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
            ]
        },
    )

    name: ParameterName
    year: int = Field(ge=2005, le=2100, description="the fiscal year from which (share) or for which (quota)")
    value: Annotated[
        str,
        BeforeValidator(_rate_text),
        Field(json_schema_extra={"anyOf": [{"type": "string", "maxLength": 20}, {"type": "number"}]}),
    ]
    land: str | None = Field(None, max_length=2, description="for KdU quotas; default: the server's KOA_LAND")
    reason: str = Field(min_length=1, max_length=500, description="why (kept with the change)")


class ParameterChange(BaseModel):
    at: datetime
    set_by: str
    name: str
    year: int
    land: str | None
    value: str
    reason: str


class YearRates(BaseModel):
    year: int
    vwk_federal_share: str | None = Field(description="the administrative-cost share in force, e.g. 0.874")
    kdu_quota_provisional: str | None
    kdu_quota_final: str | None


class ParametersRead(BaseModel):
    land: str
    years: list[YearRates]
    changes: list[ParameterChange] = Field(
        description="every change since the shipped defaults, oldest first"
    )


class ParameterSetResult(BaseModel):
    change: ParameterChange
    federal_before: Euros | None = Field(
        description="the year's federal share before the change (null: no rate)"
    )
    federal_after: Euros | None
