"""The retention register (GemHVO BW § 39) and the adoption of a year's accounts it runs from."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.booking import REASON_LEN_MAX
from domain.retention import Status
from ledger.retention import Recording, RegisterLine


class AdoptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"year": 2024, "date": "2025-11-20", "resolution": "GR-2025-117"},
                {
                    "year": 2024,
                    "date": "2025-11-27",
                    "resolution": "GR-2025-117",
                    "corrects": "GR-2025-117",
                    "reason": "Datum falsch erfasst",
                },
            ]
        },
    )

    year: int = Field(
        strict=True, ge=2005, le=2100, description="the fiscal year whose accounts were adopted"
    )
    date: str = Field(
        max_length=32,
        description="the day the council adopted them (YYYY-MM-DD or DD.MM.YYYY): after the fiscal year, "
        "not in the future",
    )
    resolution: str = Field(max_length=64, description="the council's resolution, a document reference")
    corrects: str | None = Field(
        None,
        max_length=64,
        description="for a correction: the resolution of the adoption on record that this corrects",
    )
    reason: str | None = Field(
        None, max_length=REASON_LEN_MAX, description="why it is corrected (required with corrects)"
    )


class RecordingRead(BaseModel):
    """One recording of the adoption: the first, or a correction of the one before it."""

    at: datetime
    version: int = Field(description="the recording's number among the year's events, from 1")
    adopted_on: date
    resolution: str
    by: str
    corrects_version: int | None = Field(description="the recording this one corrects (null: the first)")
    reason: str | None

    @classmethod
    def of(cls, r: Recording) -> RecordingRead:
        return cls(
            at=r.at,
            version=r.version,
            adopted_on=r.adopted_on,
            resolution=r.resolution_ref,
            by=r.by,
            corrects_version=r.corrects_version,
            reason=r.reason,
        )


class RetentionRead(BaseModel):
    """A fiscal year in the register."""

    year: int
    adopted_on: date | None = Field(description="the adoption in force (null: none on record)")
    resolution: str | None
    vouchers_years: int = Field(description="the period of the vouchers (Belege), GemHVO BW § 39")
    books_years: int = Field(description="the period of the books (Bücher)")
    vouchers_kept_until: date | None = Field(
        description="31 December of the adoption's year + vouchers_years"
    )
    books_kept_until: date | None = Field(description="31 December of the adoption's year + books_years")
    status: Status = Field(description="on the register's day (`on`)")
    status_text: str
    recordings: list[RecordingRead] = Field(description="every recording of the adoption, oldest first")

    @classmethod
    def of(cls, line: RegisterLine) -> RetentionRead:
        t = line.retention
        return cls(
            year=t.fiscal_year,
            adopted_on=t.adopted_on,
            resolution=line.adoption.resolution_ref if line.adoption else None,
            vouchers_years=t.vouchers_years,
            books_years=t.books_years,
            vouchers_kept_until=t.vouchers_until,
            books_kept_until=t.books_until,
            status=t.status,
            status_text=t.status_text,
            recordings=[RecordingRead.of(r) for r in line.recordings],
        )


class RetentionRegisterRead(BaseModel):
    on: date = Field(description="the day the status is for")
    as_of: datetime | None = Field(description="as recorded up to this moment (null: now)")
    note: str = Field(description="the ledger deletes nothing; what the register is for")
    years: list[RetentionRead] = Field(description="each fiscal year with bookings or an adoption")


class AdoptionPosted(BaseModel):
    created: bool = Field(
        description="false: these figures were already on record (a repeat); nothing was recorded"
    )
    year: RetentionRead = Field(description="the year in the register, as of today")
