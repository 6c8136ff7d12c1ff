"""What auditors read: a booking's events, the seal chain's head and verdict; and the IKS samples
they draw and re-check."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.sampling import PER_BRANCH_MAX, SampleDraw
from ledger.samples import DrawCheck


class BookingEvent(BaseModel):
    key: str = Field(description="the booking, or its counter-booking")
    version: int
    event: str = Field(description="Recorded, Approved or Reversed")
    at: datetime = Field(description="when the event was recorded")
    who: str
    detail: str


class ChainHead(BaseModel):
    position: int = Field(description="log position of the last event")
    seal: str = Field(description="its seal (hex); POSITION:SEAL is an anchor to keep outside")
    anchor: str
    events: int


class ChainVerdict(BaseModel):
    intact: bool
    events: int = Field(description="events checked (up to the break, if any)")
    position: int = Field(description="last good position, or where the chain breaks")
    seal: str = Field(description="seal of the last good position (hex)")
    detail: str


# ---- IKS samples ----------------------------------------------------------------------------

MONTH_TEXT = "YYYY-MM: the bookings paid in this month"


class SampleDrawCreate(BaseModel):
    """An IKS sample to draw (validated by domain.sampling.check_draw, as on the command line). Who
    draws it is the caller (from the token), never a field of the body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"month": "2025-03", "seed": "4711", "per_branch": 10},
                {"month": "2025-11", "seed": "iks-2025-11"},
            ]
        },
    )

    month: str = Field(max_length=32, description=MONTH_TEXT)
    seed: str = Field(
        max_length=100,
        description="chosen by the auditor: 1-64 letters, digits or ._-; the same seed gives the same "
        "sample from the same population",
    )
    per_branch: int = Field(
        10, strict=True, description=f"bookings drawn per cost centre (branch), 1 to {PER_BRANCH_MAX}"
    )


class SampleDrawRead(BaseModel):
    id: UUID
    month: str
    seed: str
    per_branch: int
    method: str = Field(
        description="hmac-sha256; random.sample for draws recorded before draws kept their position"
    )
    drawn_by: str
    created_on: datetime
    sample: dict[str, list[str]] = Field(description="per cost centre, the booking keys drawn (sorted)")
    population_sizes: dict[str, int] = Field(description="per cost centre, the bookings drawn from")
    population_size: int = Field(description="the bookings drawn from, all cost centres")
    position: int | None = Field(
        description="the population is the month's bookings recorded at or before this log position "
        "(null: a draw recorded before positions were)"
    )
    population_sha256: dict[str, str] = Field(
        description="per cost centre, SHA-256 of its keys in code-point order, each followed by a "
        "newline (empty for a draw recorded before fingerprints were)"
    )
    population_fingerprint: str | None = Field(
        description="SHA-256 of the lines branch<TAB>key of the whole population (null: not recorded)"
    )

    @classmethod
    def of(cls, d: SampleDraw, **more: object) -> SampleDrawRead:
        return cls(
            id=d.id,
            month=d.month,
            seed=d.seed,
            per_branch=d.per_branch,
            method=d.method,
            drawn_by=d.drawn_by,
            created_on=d.created_on,
            sample=d.sample,
            population_sizes=d.population_sizes,
            population_size=sum(d.population_sizes.values()),
            position=d.position,
            population_sha256=d.population_sha256,
            population_fingerprint=d.population_fingerprint or None,
            **more,
        )


class EarlierDraw(BaseModel):
    id: UUID
    created_on: datetime
    drawn_by: str
    seed: str
    per_branch: int
    method: str

    @classmethod
    def of(cls, d: SampleDraw) -> EarlierDraw:
        return cls(
            id=d.id,
            created_on=d.created_on,
            drawn_by=d.drawn_by,
            seed=d.seed,
            per_branch=d.per_branch,
            method=d.method,
        )


class SampleDrawPosted(SampleDrawRead):
    earlier: list[EarlierDraw] = Field(
        description="the draws recorded for the month before this one (a redraw shows)"
    )


class SampleDrawCheck(BaseModel):
    """A recorded draw redrawn from the population as of its position (koa audit sample --check)."""

    draw: SampleDrawRead
    reproduced: bool = Field(description="population and picks as recorded")
    population_equal: bool
    sample_equal: bool
    population_differs: list[str] = Field(
        description="cost centres whose population is not the recorded one ('(all)': only the "
        "overall fingerprint differs)"
    )
    sample_differs: list[str] = Field(
        description="cost centres whose redrawn picks are not the recorded ones"
    )
    event_position: int = Field(description="where the draw's own event is in the log")
    population_position: int = Field(
        description="the population was taken as of this position: the recorded one, or for a draw "
        "recorded before positions were, the one before its own event"
    )
    position_recorded: bool
    fingerprint_recorded: bool = Field(
        description="false: a draw recorded before fingerprints were; its population is compared by "
        "the sizes it recorded per cost centre"
    )
    population_size: int = Field(description="the bookings in the population as of that position, now")
    population_fingerprint: str = Field(description="their SHA-256, now")
    recorded_population_fingerprint: str | None = Field(description="the SHA-256 the draw recorded")

    @classmethod
    def of(cls, c: DrawCheck) -> SampleDrawCheck:
        return cls(
            draw=SampleDrawRead.of(c.draw),
            reproduced=c.reproduced,
            population_equal=c.population_equal,
            sample_equal=c.sample_equal,
            population_differs=c.population_differs,
            sample_differs=c.sample_differs,
            event_position=c.event_position,
            population_position=c.population_position,
            position_recorded=c.position_recorded,
            fingerprint_recorded=c.fingerprint_recorded,
            population_size=c.population_size,
            population_fingerprint=c.population_fingerprint,
            recorded_population_fingerprint=c.draw.population_fingerprint or None,
        )


class SampleCheckRead(BaseModel):
    month: str
    seed: str | None = Field(description="the seed the draws were limited to, if any")
    draws: int
    reproduced: int = Field(description="how many of the draws were reproduced")
    all_reproduced: bool
    checks: list[SampleDrawCheck] = Field(description="per draw, oldest first")
