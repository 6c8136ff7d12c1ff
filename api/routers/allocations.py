"""Cost allocation runs (KoA-VV § 18), as `koa allocation run/approve/show`: run by a clerk, approved
by a second person (four eyes: never the runner, 403 with the domain's reason), read by every role.

A run is one transaction: the Computed event with all inputs, parameters and results, the reversal of
the previous run's bookings and one booking per cost type. Every bad staff or shared-cost value is
named at once as staff[i].field / shared[i].field, i counting from 0 as in the JSON array.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path, Response

from api.auth import Approver, Clerk, Reader
from api.idempotency import Idem, Outcome
from api.problems import documented, field_error, invalid, state_conflict
from api.routing import resource_router
from api.schemas.budgets import (
    AllocationApproved,
    AllocationParametersRead,
    AllocationRead,
    AllocationRunCreate,
    AllocationRunPosted,
    AllocationRunRead,
    CostTypeAmount,
    Period,
    SharedIn,
    StaffIn,
    cents,
    decimal,
    share,
)
from api.services import Svc
from domain.cost_allocation import (
    CostsBookedDirectly,
    OverlappingAllocation,
    SharedCost,
    StaffRecord,
    parameters_from_json,
    recompute,
)
from domain.errors import ValidationError
from domain.periods import YEAR
from ledger import allocation_commands

router = resource_router("/allocations", "allocations")

Year = Annotated[int, Path(ge=2005, le=2100, description="fiscal year")]
PeriodPath = Annotated[Period, Path(description="q1 … q4, or year for the whole year")]
QUARTER_OF: dict[str, int] = {"q1": 1, "q2": 2, "q3": 3, "q4": 4, "year": YEAR}
UNKNOWN = "no cost allocation run for this period"
DOMAIN_INDEX_RE = re.compile(r"^(staff|shared)\[(\d+)\](.*)$")


def period_of(quarter: int) -> Period:
    return "year" if quarter == YEAR else f"q{quarter}"  # type: ignore[return-value]


def _amounts(cents_by_type: dict[str, int]) -> list[CostTypeAmount]:
    return [CostTypeAmount(cost_type=t, amount=c, amount_cents=c) for t, c in sorted(cents_by_type.items())]


# ---- reading the inputs ---------------------------------------------------------------------


class _Errors(list):
    """Every bad value of every record, each as {field, reason, location}."""

    def field(self, name: str, build):
        try:
            return build()
        except ValidationError as e:
            self.append(field_error(name, e.reason, "body"))
            return None

    def valid(self, item: StaffRecord | SharedCost, at: str) -> bool:
        """The domain's own checks of one record, its field named under the record's index."""
        try:
            item.validate()
        except ValidationError as e:
            self.append(field_error(f"{at}.{e.field}", e.reason, "body"))
            return False
        return True


def _staff(i: int, s: StaffIn, errors: _Errors) -> StaffRecord | None:
    at = f"staff[{i}]"
    values = (
        errors.field(f"{at}.vzae", lambda: decimal(s.vzae, "vzae")),
        errors.field(f"{at}.sgb2_share", lambda: share(s.sgb2_share, "sgb2_share")),
        errors.field(f"{at}.personnel_costs", lambda: cents(s.personnel_costs, "personnel_costs")),
        errors.field(
            f"{at}.versorgungszuschlag", lambda: cents(s.versorgungszuschlag, "versorgungszuschlag")
        ),
    )
    if any(v is None for v in values):
        return None
    vzae, sgb2_share, costs, surcharge = values
    record = StaffRecord(s.person_key, vzae, sgb2_share, costs, s.status.strip().lower(), surcharge)
    return record if errors.valid(record, at) else None


def _shared(i: int, c: SharedIn, errors: _Errors) -> SharedCost | None:
    at = f"shared[{i}]"
    amount = errors.field(f"{at}.amount", lambda: cents(c.amount, "amount"))
    key = errors.field(f"{at}.sgb2_key", lambda: share(c.sgb2_key, "sgb2_key"))
    if amount is None or key is None:
        return None
    cost = SharedCost(c.service, c.cost_type, amount, key)
    return cost if errors.valid(cost, at) else None


def _inputs(body: AllocationRunCreate) -> tuple[list[StaffRecord], list[SharedCost]]:
    errors = _Errors()
    staff = [_staff(i, s, errors) for i, s in enumerate(body.staff)]
    shared = [_shared(i, c, errors) for i, c in enumerate(body.shared)]
    first: dict[str, int] = {}
    for i, s in enumerate(body.staff):
        if s.person_key in first:
            errors.append(
                field_error(
                    f"staff[{i}].person_key",
                    f"staff number {s.person_key} occurs twice (also staff[{first[s.person_key]}])",
                    "body",
                )
            )
        first.setdefault(s.person_key, i)
    if errors:
        raise invalid(list(errors))
    return [s for s in staff if s is not None], [c for c in shared if c is not None]


def _fields_from_zero(e: ValidationError) -> ValidationError:
    """The domain counts records from 1 (staff[1] is the first): name them as the JSON array does."""
    m = DOMAIN_INDEX_RE.match(e.field or "")
    if not m:
        return e
    return ValidationError(e.reason, f"{m.group(1)}[{int(m.group(2)) - 1}]{m.group(3)}")


# ---- endpoints ------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=AllocationRunPosted,
    summary="Compute a period's Verwaltungskosten and book them; a rerun reverses the run before",
    responses=documented(
        {
            409: "the period is closed; a run of the whole year while quarterly runs of it are in force, or "
            "the other way round (allocation-overlap); cost types the run computes were booked by hand in the period "
            "(costs-booked-directly); a booking by hand holds one of the run's keys "
            "(key-conflict); a concurrent run or closing"
        }
    ),
)
def run(body: AllocationRunCreate, caller: Clerk, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        staff, shared = _inputs(body)
        quarter = body.quarter or YEAR
        try:
            out = allocation_commands.run_allocation(
                svc.books, year=body.year, quarter=quarter, staff=staff, shared=shared, by=caller.user
            )
        except ValidationError as e:
            raise _fields_from_zero(e) from None
        except OverlappingAllocation as e:
            raise state_conflict("allocation-overlap", "Runs would overlap", e) from None
        except CostsBookedDirectly as e:
            raise state_conflict("costs-booked-directly", "Cost types of the run were booked by hand", e) from None
        svc.view.poke()
        period = period_of(quarter)
        total = sum(out.results_cents.values())
        posted = AllocationRunPosted(
            year=body.year,
            quarter=body.quarter,
            period=period,
            run=out.number,
            document_ref=out.allocation.document_ref,
            results=_amounts(out.results_cents),
            total=total,
            total_cents=total,
            booked_keys=out.booked_keys,
            reversed_keys=out.reversed_keys,
        )
        return 201, posted, {"Location": f"/allocations/{body.year}/{period}"}

    return idem.run(body, action)


@router.post(
    "/{year}/{period}/approve",
    response_model=AllocationApproved,
    summary="Approve the bookings of the run in force (four eyes: never the person who ran it)",
    responses=documented({404: UNKNOWN, 409: "the period is closed; a concurrent change"}),
)
def approve(year: Year, period: PeriodPath, caller: Approver, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        keys = allocation_commands.approve_allocation(
            svc.books, year=year, quarter=QUARTER_OF[period], by=caller.user
        )
        svc.view.poke()
        return 200, AllocationApproved(year=year, period=period, approved_keys=keys), {}

    return idem.run(b"", action)


@router.get(
    "/{year}/{period}",
    response_model=AllocationRead,
    summary="Every run of a period with its parameters and results, each recomputed from its inputs",
    responses=documented({404: UNKNOWN}),
)
def show(year: Year, period: PeriodPath, _: Reader, svc: Svc) -> AllocationRead:
    quarter = QUARTER_OF[period]
    a = allocation_commands.get_allocation(svc.books, year, quarter)
    runs = []
    for e in svc.books.ledger.events.get(a.id):
        if type(e).__name__ != "Computed":
            continue
        p = parameters_from_json(e.parameters)
        total = sum(e.results_cents.values())
        runs.append(
            AllocationRunRead(
                run=e.run,
                in_force=e.run == a.runs,
                at=e.timestamp,
                computed_by=e.computed_by,
                staff_count=len(e.staff),
                shared_count=len(e.shared),
                sgb2_vzae=e.sgb2_vzae,
                parameters=AllocationParametersRead(
                    personalgemeinkosten_rate=str(p.personalgemeinkosten_rate),
                    personalnebenkosten_per_vzae=p.personalnebenkosten_per_vzae_cents,
                    personalnebenkosten_per_vzae_cents=p.personalnebenkosten_per_vzae_cents,
                    sachkosten_per_vzae=p.sachkosten_per_vzae_cents,
                    sachkosten_per_vzae_cents=p.sachkosten_per_vzae_cents,
                    versorgungszuschlag_cap=str(p.versorgungszuschlag_cap),
                    part_of_year=str(p.part_of_year),
                ),
                results=_amounts(e.results_cents),
                total=total,
                total_cents=total,
                direct=_amounts(e.direct_cents),
                booking_keys=list(e.booking_keys),
                reversed_keys=list(e.reverses_keys),
                recomputed_equal=recompute(e) == e.results_cents,
            )
        )
    return AllocationRead(year=year, quarter=quarter or None, period=period, runs=runs)
