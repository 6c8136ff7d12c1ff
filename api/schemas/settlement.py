"""Funds drawn from the Bund, closed periods, and the split."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import AmountIn, Euros
from domain.split import SplitLine, Sum


class FundsDrawCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "1101/681 12",
                    "year": 2025,
                    "date": "2025-03-31",
                    "amount": "10.000.000,00",
                    "document_ref": "HKR-2025-017",
                }
            ]
        },
    )

    title: str = Field(max_length=20, description="federal title, e.g. 1101/681 12")
    year: int = Field(strict=True, ge=2005, le=2100, description="fiscal year the funds are for")
    date: str = Field(max_length=32, description="value date, YYYY-MM-DD or DD.MM.YYYY")
    amount: AmountIn
    document_ref: str = Field(max_length=64, description="the HKR voucher; identifies the draw")


class FundsDrawRead(BaseModel):
    title: str
    year: int
    date: date
    amount: Euros
    amount_cents: int
    document_ref: str
    recorded_by: str


class FundsDrawPosted(BaseModel):
    created: bool = Field(description="false: this voucher was already recorded with the same figures")
    draw: FundsDrawRead


class PeriodClose(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"year": 2025, "quarter": 1}, {"year": 2024}]}
    )

    year: int = Field(strict=True, ge=2005, le=2100)
    quarter: int | None = Field(
        None, strict=True, ge=1, le=4, description="omit to close the whole fiscal year"
    )


class ClosedPeriod(BaseModel):
    year: int
    quarter: int | None = Field(description="null: the whole year")
    closing: str = Field(description="who closed it")


class SplitLineRead(BaseModel):
    fiscal_year: int
    quarter: int
    category: str
    federal_title: str
    expenditure: Euros
    receipts: Euros
    net: Euros
    federal_rate: str = Field(description="the rate applied, e.g. 0.874")
    rate_label: str
    federal: Euros
    municipal: Euros
    net_cents: int
    federal_cents: int
    municipal_cents: int
    booking_count: int

    @classmethod
    def of(cls, s: SplitLine) -> SplitLineRead:
        return cls(
            fiscal_year=s.fiscal_year,
            quarter=s.quarter,
            category=s.category,
            federal_title=s.federal_title,
            expenditure=s.expenditure_cents,
            receipts=s.receipts_cents,
            net=s.net_cents,
            federal_rate=str(s.federal_rate),
            rate_label=s.rate_label,
            federal=s.federal_cents,
            municipal=s.municipal_cents,
            net_cents=s.net_cents,
            federal_cents=s.federal_cents,
            municipal_cents=s.municipal_cents,
            booking_count=s.booking_count,
        )


class SplitTotal(BaseModel):
    net: Euros
    federal: Euros
    municipal: Euros
    net_cents: int
    federal_cents: int
    municipal_cents: int
    booking_count: int


class SplitRead(BaseModel):
    year: int
    quarter: int | None
    land: str
    lines: list[SplitLineRead]
    total: SplitTotal
    position: int | None = Field(
        None, description="the log position the figures include (the view's or the replay's)"
    )

    @classmethod
    def of(
        cls, year: int, quarter: int | None, land: str, lines: list[SplitLine], position: int | None
    ) -> SplitRead:
        t = Sum.of(lines)
        total = SplitTotal(
            net=t.net_cents,
            federal=t.federal_cents,
            municipal=t.municipal_cents,
            net_cents=t.net_cents,
            federal_cents=t.federal_cents,
            municipal_cents=t.municipal_cents,
            booking_count=t.booking_count,
        )
        return cls(
            year=year,
            quarter=quarter,
            land=land,
            lines=[SplitLineRead.of(s) for s in lines],
            total=total,
            position=position,
        )


class FundsRepaymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "1101/636 13",
                    "year": 2025,
                    "date": "2026-03-15",
                    "amount": "12.345,67",
                    "interest_since": "2025-06-30",
                    "document_ref": "RZ-2026-003",
                    "reason": "Bescheid BMAS vom 2026-02-01",
                }
            ]
        },
    )

    title: str = Field(max_length=20, description="federal title, e.g. 1101/636 13")
    year: int = Field(strict=True, ge=2005, le=2100, description="fiscal year the funds were drawn for")
    date: str = Field(max_length=32, description="repaid on (value date), YYYY-MM-DD or DD.MM.YYYY")
    amount: AmountIn
    interest_since: str = Field(
        max_length=32,
        description="the day the funds were obtained without legal ground; interest runs from the day after",
    )
    document_ref: str = Field(max_length=64, description="the voucher of the repayment; identifies it")
    reason: str = Field(min_length=1, max_length=500, description="why, e.g. the Bund's notice")


class InterestLineRead(BaseModel):
    first_day: date = Field(description="first day counted")
    last_day: date = Field(description="last day counted")
    days: int
    basiszinssatz: str = Field(description="§ 247 BGB, e.g. 0.0127")
    points: str = Field(description="the surcharge, e.g. 0.03")
    rate: str = Field(description="Basiszinssatz + points (not below 0)")
    year_days: int = Field(description="each day's interest is principal × rate / the days of its year")


class InterestRead(BaseModel):
    amount: Euros = Field(description="the principal")
    amount_cents: int
    interest_since: date = Field(description="not counted")
    date: date  # the day of repayment, counted
    days: int
    interest: Euros = Field(description="rounded half up to the cent once, over all lines")
    interest_cents: int
    lines: list[InterestLineRead]


class FundsRepaymentRead(BaseModel):
    title: str
    year: int
    date: date
    amount: Euros
    amount_cents: int
    interest_since: date
    interest: Euros = Field(description="the city's own money, paid with the repayment")
    interest_cents: int
    interest_lines: list[InterestLineRead]
    document_ref: str
    reason: str
    recorded_by: str


class FundsRepaymentPosted(BaseModel):
    created: bool = Field(description="false: this voucher was already recorded with the same figures")
    repayment: FundsRepaymentRead
    net_drawn: Euros = Field(description="funds drawn for the title and year, less every repayment")
    net_drawn_cents: int
