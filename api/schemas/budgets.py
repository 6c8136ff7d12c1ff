"""Budgets, measure commitments and cost allocation runs: what admins and clerks send, what everyone
reads back. Amounts and shares arrive as text or JSON numbers (read as Decimal, never float) and are
parsed by the parsers the CLI uses (domain.money, domain.parameters), so each bad value is named."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from api.schemas.common import AmountIn, Euros
from domain.budget import TITLE_NAMES, TITLES
from domain.cost_allocation import SHARED_MAX, STAFF_MAX
from domain.errors import ValidationError
from domain.money import parse_amount_cents
from domain.parameters import parse_rate

Title = Literal["egt", "vwk"]
assert set(Title.__args__) == set(TITLES)  # type: ignore[attr-defined]
Period = Literal["q1", "q2", "q3", "q4", "year"]
REASON = Field(min_length=1, max_length=500, description="why (kept with the event)")
NUMBER_TEXT_LEN_MAX = 40


# ---- parsing what arrives ------------------------------------------------------------------


def cents(text: str, field: str) -> int:
    """Euros as text (AmountIn) -> cents; a bad amount is a ValidationError naming `field`."""
    try:
        return parse_amount_cents(text)
    except ValueError as e:
        raise ValidationError(str(e), field) from None


def share(text: str, field: str) -> Decimal:
    """'0,8', '0.8' or '80 %' -> Decimal('0.8'), as the staff file is read."""
    try:
        return parse_rate(text)
    except ValidationError as e:
        raise ValidationError(e.reason, field) from None
    except ArithmeticError:  # parse_rate lets 'nan' and '1e9999999 %' through as decimal errors
        raise ValidationError(f"not a share: {text[:NUMBER_TEXT_LEN_MAX]!r}", field) from None


def decimal(text: str, field: str) -> Decimal:
    """A plain decimal number ('0,75', '0.75'); range and places are the domain's to check."""
    try:
        return Decimal(text.strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"not a number: {text[:NUMBER_TEXT_LEN_MAX]!r}", field) from None


def _number_text(value: Any) -> str:
    """A JSON string as given, or a JSON number (Decimal through api.json_body, never float) as text."""
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not true/false")
    if isinstance(value, str):
        if len(value) > NUMBER_TEXT_LEN_MAX:
            raise ValueError(f"at most {NUMBER_TEXT_LEN_MAX} characters")
        return value
    if isinstance(value, int):
        if abs(value) >= 10**18:
            raise ValueError("not a number of this kind: too many digits")
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > 18 or value.adjusted() < -18:
            raise ValueError("not a number of this kind")
        return format(value, "f")
    raise ValueError('must be a string such as "0,75" or "75 %", or a number')


ShareIn = Annotated[
    str,
    BeforeValidator(_number_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": NUMBER_TEXT_LEN_MAX, "examples": ["0,8", "80 %"]},
                {"type": "number"},
            ],
            "description": "a share between 0 and 1: '0,8', '0.8', '80 %' or a number, at most 6 decimals",
        }
    ),
]
VzaeIn = Annotated[
    str,
    BeforeValidator(_number_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": NUMBER_TEXT_LEN_MAX, "examples": ["0,75"]},
                {"type": "number"},
            ],
            "description": "full-time equivalents in the period (a full post is 1): '0,75' or 0.75",
        }
    ),
]


# ---- budgets --------------------------------------------------------------------------------


class BudgetAllocation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "egt",
                    "amount": "1.000.000,00",
                    "reference": "BMAS-2026-01",
                    "reason": "Zuteilung",
                },
                {"title": "vwk", "amount": 500000, "reference": "BMAS-2026-02", "reason": "Zuteilung"},
            ]
        },
    )

    title: Title = Field(
        description="egt: Eingliederungsbudget 1101/685 11; vwk: Verwaltungsbudget 1101/636 13"
    )
    amount: AmountIn = Field(description="the year's allocation (a later one replaces it)")
    reference: str = Field(max_length=64, description="the allocation letter (Zuteilungsschreiben)")
    reason: str = REASON


class BudgetShift(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"from": "vwk", "to": "egt", "amount": "40.000,00", "reason": "Deckungsfähigkeit"}]
        },
    )

    from_title: Title = Field(alias="from", description="the giving title")
    to_title: Title = Field(alias="to", description="the receiving title")
    amount: AmountIn
    reason: str = REASON


class BudgetPlan(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"instrument": "egt.arbeitsgelegenheiten", "amount": "600.000,00", "reason": "Planung"}
            ]
        },
    )

    instrument: str = Field(max_length=64, description="an Eingliederung category (egt.*)")
    amount: AmountIn = Field(description="the planned amount (a later plan replaces it)")
    reason: str = REASON


class TitleRead(BaseModel):
    title: Title
    federal_title: str = Field(description="e.g. 1101/685 11")
    name: str
    allocated: Euros | None = Field(description="null: no allocation on file")
    allocated_cents: int | None
    reference: str | None = Field(description="the allocation letter of the figure in force")
    shifted_in: Euros = Field(description="net shifted in (negative: shifted out)")
    shifted_in_cents: int


class PlanLineRead(BaseModel):
    instrument: str
    planned: Euros
    planned_cents: int


class BudgetRead(BaseModel):
    year: int
    titles: list[TitleRead]
    plan: list[PlanLineRead]

    @classmethod
    def of(cls, b) -> BudgetRead:
        titles = [
            TitleRead(
                title=t,
                federal_title=TITLES[t],
                name=TITLE_NAMES[t],
                allocated=b.allocated_cents[t] if b.has_allocation[t] else None,
                allocated_cents=b.allocated_cents[t] if b.has_allocation[t] else None,
                reference=b.allocation_refs.get(t),
                shifted_in=b.shifted_in_cents[t],
                shifted_in_cents=b.shifted_in_cents[t],
            )
            for t in TITLES
        ]
        plan = [
            PlanLineRead(instrument=k, planned=v, planned_cents=v) for k, v in sorted(b.plan_cents.items())
        ]
        return cls(year=b.year, titles=titles, plan=plan)


class StatusLineRead(BaseModel):
    """One line of `koa budget status`: null where the CLI shows '–'."""

    title: Title
    federal_title: str
    instrument: str | None = Field(description="null: the title's own line; else an egt.* instrument")
    planned: Euros | None = Field(
        description="the plan (the sum of the instruments' plans on the title line)"
    )
    planned_cents: int | None
    allocated: Euros | None
    allocated_cents: int | None
    shifted: Euros | None = Field(description="net shifted in (negative: shifted out)")
    shifted_cents: int | None
    committed: Euros = Field(description="what commitments still bind + payments awaiting approval")
    committed_cents: int
    spent: Euros = Field(description="net spending counted in the split")
    spent_cents: int
    federal_share: Euros | None = Field(
        description="Verwaltungsbudget only: the Bund's share of committed + spent (at the year's "
        "administrative-cost share), what the title is charged with; null on other lines"
    )
    federal_share_cents: int | None
    available: Euros | None = Field(
        description="Eingliederungsbudget: allocated + shifted − committed − spent; Verwaltungsbudget: "
        "allocated + shifted − federal_share; instrument: planned − committed − spent"
    )
    available_cents: int | None
    beyond_budget: Euros = Field(
        description="Eingliederungsbudget only: spending beyond allocation and shifts, which the split "
        "gives the municipality"
    )
    beyond_budget_cents: int

    @classmethod
    def of(cls, s) -> StatusLineRead:
        return cls(
            title=s.title,
            federal_title=TITLES[s.title],
            instrument=s.instrument or None,
            planned=s.planned_cents,
            planned_cents=s.planned_cents,
            allocated=s.allocated_cents,
            allocated_cents=s.allocated_cents,
            shifted=s.shifted_cents,
            shifted_cents=s.shifted_cents,
            committed=s.committed_cents,
            committed_cents=s.committed_cents,
            spent=s.spent_cents,
            spent_cents=s.spent_cents,
            federal_share=s.federal_share_cents,
            federal_share_cents=s.federal_share_cents,
            available=s.available_cents,
            available_cents=s.available_cents,
            beyond_budget=s.beyond_budget_cents,
            beyond_budget_cents=s.beyond_budget_cents,
        )


class CommitmentInYear(BaseModel):
    contract_ref: str
    instrument: str
    provider: str
    remaining: Euros = Field(description="what the commitment still binds in this year")
    remaining_cents: int


class BudgetStatusRead(BaseModel):
    year: int
    lines: list[StatusLineRead]
    commitments: list[CommitmentInYear] = Field(
        description="every commitment that has bound money in the year"
    )


# ---- commitments ----------------------------------------------------------------------------


class SliceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    year: int = Field(strict=True, ge=2005, le=2100, description="fiscal year")
    amount: AmountIn


class CommitmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contract_ref": "V-AGH-1",
                    "instrument": "egt.arbeitsgelegenheiten",
                    "provider": "Träger Nord",
                    "slices": {"2026": "400.000,00", "2027": "300.000,00"},
                    "reason": "AGH-Vertrag",
                },
                {
                    "contract_ref": "V-FBW-7",
                    "instrument": "egt.weiterbildung",
                    "provider": "Bildungswerk Süd",
                    "slices": [{"year": 2026, "amount": 25000}],
                    "reason": "Vertrag FbW",
                },
            ]
        },
    )

    contract_ref: str = Field(max_length=64, description="the contract reference bookings will carry")
    instrument: str = Field(max_length=64, description="an Eingliederung category (egt.*)")
    provider: str = Field(max_length=200)
    slices: dict[str, AmountIn] | list[SliceIn] = Field(
        description='per fiscal year: {"2026": amount, ...} or [{"year": 2026, "amount": ...}]; later years are '
        "Verpflichtungsermächtigungen"
    )
    reason: str = REASON


class CommitmentChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"year": 2026, "amount": "50.000,00", "reason": "Nachtrag 1"}]},
    )

    year: int = Field(strict=True, ge=2005, le=2100, description="the fiscal year whose slice changes")
    amount: AmountIn
    reason: str = REASON


class CommitmentRelease(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"year": 2026, "reason": "Maßnahme beendet"}]}
    )

    year: int = Field(
        strict=True, ge=2005, le=2100, description="the fiscal year whose remainder is released"
    )
    reason: str = REASON


class SliceRead(BaseModel):
    year: int
    slice: Euros
    slice_cents: int
    drawn: Euros
    drawn_cents: int
    released: Euros
    released_cents: int
    remaining: Euros = Field(description="slice − drawn − released")
    remaining_cents: int
    is_released: bool


class CommitmentEvent(BaseModel):
    at: datetime
    version: int
    type: str = Field(description="Made, Increased, Reduced, Released, Drawn or Undrawn")
    by: str | None = Field(description="who (null for drawdowns: the booking's recorder)")
    year: int | None
    amount: Euros | None
    amount_cents: int | None
    reason: str | None
    booking_key: str | None
    reversal_key: str | None


class CommitmentRead(BaseModel):
    contract_ref: str
    instrument: str
    provider: str
    made_by: str
    slices: list[SliceRead]

    @classmethod
    def of(cls, c, **more: Any) -> Any:
        return cls(
            contract_ref=c.contract_ref,
            instrument=c.instrument,
            provider=c.provider,
            made_by=c.made_by,
            slices=_slices(c),
            **more,
        )


def _slices(c) -> list[SliceRead]:
    out = []
    for y in c.years():
        s, d, r = c.slice_cents[str(y)], c.drawn_cents[str(y)], c.released_cents[str(y)]
        rest = c.remaining_cents(y)
        out.append(
            SliceRead(
                year=y,
                slice=s,
                slice_cents=s,
                drawn=d,
                drawn_cents=d,
                released=r,
                released_cents=r,
                remaining=rest,
                remaining_cents=rest,
                is_released=c.is_released(y),
            )
        )
    return out


class CommitmentDetail(CommitmentRead):
    events: list[CommitmentEvent] = Field(description="every event of the commitment, oldest first")


class CommitmentPosted(BaseModel):
    created: bool = Field(description="false: the contract was already committed with the same terms")
    commitment: CommitmentRead


class CommitmentReleased(BaseModel):
    year: int
    released: Euros = Field(description="what this release freed")
    released_cents: int
    commitment: CommitmentRead


# ---- cost allocation ------------------------------------------------------------------------


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_key: str = Field(max_length=64, description="pseudonymous staff number, never a name")
    vzae: VzaeIn
    sgb2_share: ShareIn = Field(description="part of the working time spent on SGB II tasks")
    personnel_costs: AmountIn = Field(description="actually paid in the period")
    status: str = Field(max_length=20, description="beamter (civil servant) or beschaeftigter (employee)")
    versorgungszuschlag: AmountIn = Field("0", description="surcharge actually paid (civil servants only)")


class SharedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=64, description="e.g. IT-Dienstleistung")
    cost_type: str = Field(max_length=40, description="vwk.sachkosten, vwk.investitionen or vwk.sonstige")
    amount: AmountIn
    sgb2_key: ShareIn = Field(description="share of the service's work done for SGB II")


class AllocationRunCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "year": 2026,
                    "quarter": 1,
                    "staff": [
                        {
                            "person_key": "B-1",
                            "vzae": 1,
                            "sgb2_share": "100 %",
                            "personnel_costs": "15.000,00",
                            "status": "beamter",
                            "versorgungszuschlag": "6.250,00",
                        },
                        {
                            "person_key": "T-2",
                            "vzae": "0,5",
                            "sgb2_share": 0.6,
                            "personnel_costs": 7500,
                            "status": "beschaeftigter",
                        },
                    ],
                    "shared": [
                        {
                            "service": "IT-Dienstleistung",
                            "cost_type": "vwk.sachkosten",
                            "amount": "2.500,00",
                            "sgb2_key": "35 %",
                        }
                    ],
                }
            ]
        },
    )

    year: int = Field(strict=True, ge=2005, le=2100)
    quarter: int | None = Field(None, strict=True, ge=1, le=4, description="null or omitted: the whole year")
    # The counts are the domain's to refuse (422 naming staff or shared): as maxItems in the schema they
    # could not be reached under the body limit (KOA_BODY_BYTES_MAX, 1 MiB), which answers 413 first.
    staff: list[StaffIn] = Field(
        min_length=1,
        description=f"the staff records of the period, at most {STAFF_MAX} (within the body limit)",
    )
    shared: list[SharedIn] = Field(
        [], description=f"shared costs split by an SGB II key, at most {SHARED_MAX}"
    )


class CostTypeAmount(BaseModel):
    cost_type: str
    amount: Euros
    amount_cents: int


class AllocationRunPosted(BaseModel):
    year: int
    quarter: int | None = Field(description="null: the whole year")
    period: Period
    run: int = Field(description="the run's number in its period (a rerun replaces the run before)")
    document_ref: str
    results: list[CostTypeAmount] = Field(description="the Verwaltungskosten per cost type, as booked")
    total: Euros
    total_cents: int
    booked_keys: list[str] = Field(
        description="the run's bookings (approve with …/approve by a second person)"
    )
    reversed_keys: list[str] = Field(description="the previous run's bookings, reversed by this run")


class AllocationApproved(BaseModel):
    year: int
    period: Period
    approved_keys: list[str] = Field(description="bookings approved now (empty: none awaited approval)")


class AllocationParametersRead(BaseModel):
    personalgemeinkosten_rate: str
    personalnebenkosten_per_vzae: Euros
    personalnebenkosten_per_vzae_cents: int
    sachkosten_per_vzae: Euros
    sachkosten_per_vzae_cents: int
    versorgungszuschlag_cap: str
    part_of_year: str = Field(description="1 for the year, 1/4 for a quarter")


class AllocationRunRead(BaseModel):
    run: int
    in_force: bool = Field(description="false: replaced by a later run, its bookings reversed")
    at: datetime
    computed_by: str
    staff_count: int
    shared_count: int
    sgb2_vzae: str = Field(description="Σ VZÄ × SGB II share")
    parameters: AllocationParametersRead
    results: list[CostTypeAmount]
    total: Euros
    total_cents: int
    direct: list[CostTypeAmount] = Field(
        description="Investitionen and sonstige booked directly, beside the run"
    )
    booking_keys: list[str]
    reversed_keys: list[str]
    recomputed_equal: bool = Field(description="the results computed again from the stored inputs are equal")


class AllocationRead(BaseModel):
    year: int
    quarter: int | None
    period: Period
    runs: list[AllocationRunRead]
