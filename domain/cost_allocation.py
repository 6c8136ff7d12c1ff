"""Cost allocation (KoA-VV § 18): the Verwaltungskosten of a period from staff records, shared costs
and the year's parameters.

Per cost type, rounded once, half up, on the exact sum (so a recomputation from the stored inputs
gives the same cents):
- Personalkosten:       Σ personnel costs actually paid × SGB II share
- Personalnebenkosten:  flat amount per VZÄ and year × Σ (VZÄ × SGB II share) × part of the year
- Sachkosten:           the same with the flat Sachkosten, plus the SGB II part of shared Sachkosten
- Personalgemeinkosten: flat rate × the exact Personalkosten
- Versorgungszuschlag:  civil servants only: Σ min(surcharge paid, cap × personnel costs) × SGB II share
- Shared costs of services that also work for non-SGB II tasks: amount × the SGB II key, to their cost type.
Investitionen and sonstige are booked directly; a run reports them beside its own results.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from fractions import Fraction
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import ALLOCATION_KEY_PREFIX, REF_RE, check_user
from domain.budget import check_year
from domain.errors import DomainError, ValidationError
from domain.money import AMOUNT_CENTS_MAX, format_eur, half_up
from domain.periods import YEAR, label

ALLOCATION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:cost-allocation")
PERSON_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # pseudonymous staff number
STATUSES = ("beamter", "beschaeftigter")
STAFF_MAX = 20_000
SHARED_MAX = 1_000
COMPUTED_TYPES = (
    "vwk.personal",
    "vwk.personalnebenkosten",
    "vwk.sachkosten",
    "vwk.personalgemeinkosten",
    "vwk.versorgungszuschlag",
)
SHARED_COST_TYPES = ("vwk.sachkosten", "vwk.investitionen", "vwk.sonstige")
DIRECT_TYPES = ("vwk.investitionen", "vwk.sonstige")
SHARE_DECIMALS_MAX = 6


def _share(value: Decimal, field: str, *, high: Decimal = Decimal(1)) -> Decimal:
    if (
        not value.is_finite()
        or not Decimal(0) <= value <= high
        or value.as_tuple().exponent < -SHARE_DECIMALS_MAX
    ):  # type: ignore[operator]
        raise ValidationError(
            f"must be between 0 and {high} with at most {SHARE_DECIMALS_MAX} decimals", field
        )
    return value


def _cents(value: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= AMOUNT_CENTS_MAX:
        raise ValidationError("must be an amount between 0 and 100.000.000,00 €", field)
    return value


@dataclass(frozen=True, slots=True)
class StaffRecord:
    person_key: str  # pseudonymous, never a name
    vzae: Decimal  # full-time equivalents in the period (a full post is 1)
    sgb2_share: Decimal  # part of the working time spent on SGB II tasks
    personnel_costs_cents: int  # actually paid in the period
    status: str  # beamter | beschaeftigter
    versorgungszuschlag_cents: int = 0  # surcharge actually paid (civil servants)

    def validate(self) -> None:
        if not PERSON_KEY_RE.fullmatch(self.person_key):
            raise ValidationError("a staff number, 1-32 letters, digits or ._- (never a name)", "person_key")
        _share(self.vzae, "vzae")  # first: a NaN must not reach a comparison
        if self.vzae == 0:
            raise ValidationError("must be greater than zero", "vzae")
        _share(self.sgb2_share, "sgb2_share")
        _cents(self.personnel_costs_cents, "personnel_costs")
        if self.status not in STATUSES:
            raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status")
        _cents(self.versorgungszuschlag_cents, "versorgungszuschlag")
        if self.status != "beamter" and self.versorgungszuschlag_cents:
            raise ValidationError(
                "only civil servants (beamter) carry a Versorgungszuschlag", "versorgungszuschlag"
            )


@dataclass(frozen=True, slots=True)
class SharedCost:
    service: str  # e.g. IT-Dienstleistung, Hausdruckerei
    cost_type: str
    amount_cents: int
    sgb2_key: Decimal  # share of the service's work done for SGB II

    def validate(self) -> None:
        if not REF_RE.fullmatch(self.service):
            raise ValidationError("required: 1-64 letters, digits or ._:/-", "service")
        if self.cost_type not in SHARED_COST_TYPES:
            raise ValidationError(f"must be one of {', '.join(SHARED_COST_TYPES)}", "cost_type")
        _cents(self.amount_cents, "amount")
        _share(self.sgb2_key, "sgb2_key")


@dataclass(frozen=True, slots=True)
class AllocationParameters:
    personalgemeinkosten_rate: Decimal
    personalnebenkosten_per_vzae_cents: int
    sachkosten_per_vzae_cents: int
    versorgungszuschlag_cap: Decimal
    quarter: int  # 0: the whole year; 1-4: a quarter (flat amounts per year count a quarter each)

    @property
    def part_of_year(self) -> Fraction:
        return Fraction(1) if self.quarter == 0 else Fraction(1, 4)


def compute(staff: list[StaffRecord], shared: list[SharedCost], p: AllocationParameters) -> dict[str, int]:
    """Cents per cost type (COMPUTED_TYPES, plus shared Investitionen/sonstige where given)."""
    f = Fraction
    personal = sum((f(s.personnel_costs_cents) * f(s.sgb2_share) for s in staff), f(0))
    sgb2_vzae = sum((f(s.vzae) * f(s.sgb2_share) for s in staff), f(0))
    cap = f(p.versorgungszuschlag_cap)
    vz = sum(
        (
            min(f(s.versorgungszuschlag_cents), cap * s.personnel_costs_cents) * f(s.sgb2_share)
            for s in staff
            if s.status == "beamter"
        ),
        f(0),
    )
    exact: dict[str, Fraction] = {
        "vwk.personal": personal,
        "vwk.personalnebenkosten": p.personalnebenkosten_per_vzae_cents * sgb2_vzae * p.part_of_year,
        "vwk.sachkosten": p.sachkosten_per_vzae_cents * sgb2_vzae * p.part_of_year,
        "vwk.personalgemeinkosten": f(p.personalgemeinkosten_rate) * personal,
        "vwk.versorgungszuschlag": vz,
    }
    for c in shared:
        exact[c.cost_type] = exact.get(c.cost_type, f(0)) + f(c.amount_cents) * f(c.sgb2_key)
    results = {t: half_up(x) for t, x in exact.items()}
    assert all(v >= 0 for v in results.values()), results
    return results


def sgb2_vzae(staff: list[StaffRecord]) -> Decimal:
    return sum((s.vzae * s.sgb2_share for s in staff), Decimal(0))


def check_inputs(staff: list[StaffRecord], shared: list[SharedCost]) -> None:
    if not staff:
        raise ValidationError("at least one staff record is required", "staff")
    if len(staff) > STAFF_MAX:
        raise ValidationError(f"at most {STAFF_MAX} staff records", "staff")
    if len(shared) > SHARED_MAX:
        raise ValidationError(f"at most {SHARED_MAX} shared costs", "shared")
    seen: set[str] = set()
    for i, s in enumerate(staff, 1):
        try:
            s.validate()
        except ValidationError as e:
            raise ValidationError(e.reason, f"staff[{i}].{e.field}") from None
        if s.person_key in seen:
            raise ValidationError(f"staff number {s.person_key} occurs twice", f"staff[{i}].person_key")
        seen.add(s.person_key)
    for i, c in enumerate(shared, 1):
        try:
            c.validate()
        except ValidationError as e:
            raise ValidationError(e.reason, f"shared[{i}].{e.field}") from None


def staff_to_json(s: StaffRecord) -> dict:
    d = asdict(s)
    d["vzae"], d["sgb2_share"] = str(s.vzae), str(s.sgb2_share)
    return d


def staff_from_json(d: dict) -> StaffRecord:
    return StaffRecord(**(d | {"vzae": Decimal(d["vzae"]), "sgb2_share": Decimal(d["sgb2_share"])}))


def shared_to_json(c: SharedCost) -> dict:
    return asdict(c) | {"sgb2_key": str(c.sgb2_key)}


def shared_from_json(d: dict) -> SharedCost:
    return SharedCost(**(d | {"sgb2_key": Decimal(d["sgb2_key"])}))


def parameters_to_json(p: AllocationParameters) -> dict:
    return {
        "personalgemeinkosten_rate": str(p.personalgemeinkosten_rate),
        "personalnebenkosten_per_vzae_cents": p.personalnebenkosten_per_vzae_cents,
        "sachkosten_per_vzae_cents": p.sachkosten_per_vzae_cents,
        "versorgungszuschlag_cap": str(p.versorgungszuschlag_cap),
        "quarter": p.quarter,
    }


def parameters_from_json(d: dict) -> AllocationParameters:
    return AllocationParameters(
        personalgemeinkosten_rate=Decimal(d["personalgemeinkosten_rate"]),
        personalnebenkosten_per_vzae_cents=int(d["personalnebenkosten_per_vzae_cents"]),
        sachkosten_per_vzae_cents=int(d["sachkosten_per_vzae_cents"]),
        versorgungszuschlag_cap=Decimal(d["versorgungszuschlag_cap"]),
        quarter=int(d["quarter"]),
    )


def allocation_id(year: int, quarter: int) -> UUID:
    return uuid5(ALLOCATION_NAMESPACE, f"{year}-{quarter}")


def period_code(year: int, quarter: int) -> str:
    return f"{year}-Q{quarter}" if quarter else f"{year}-J"


def run_keys(year: int, quarter: int, number: int, cost_types: list[str]) -> list[str]:
    """The booking keys of run `number` of a period, one per cost type (KOA-2026-Q1-L1-personal)."""
    return [
        f"{ALLOCATION_KEY_PREFIX}{period_code(year, quarter)}-L{number}-{t.removeprefix('vwk.')}"
        for t in cost_types
    ]


# Every cost type a run may book: the keys a run could take, known before it is made.
BOOKABLE_TYPES = sorted({*COMPUTED_TYPES, *SHARED_COST_TYPES})


class OverlappingAllocation(DomainError):
    """A whole-year run and quarterly runs of the same year would both book the year's
    Verwaltungskosten: the split would count them twice."""


def overlapping_quarters(quarter: int) -> tuple[int, ...]:
    """The periods whose runs cover the same costs as a run of `quarter`: the quarters for the
    whole year, the whole year for a quarter (quarters do not overlap one another)."""
    return (1, 2, 3, 4) if quarter == YEAR else (YEAR,)


def refuse_overlap(year: int, quarter: int, in_force: list[str]) -> None:
    """`in_force`: document refs of the overlapping periods' runs whose bookings still count."""
    if not in_force:
        return
    refs = ", ".join(in_force)
    if quarter == YEAR:
        reason = (
            f"quarterly cost allocation runs of {year} are in force ({refs}): a run for the whole year "
            "would count the Verwaltungskosten twice; run the quarters, or reverse their bookings first"
        )
    else:
        reason = (
            f"the cost allocation run for the whole year {year} is in force ({refs}): a run for "
            f"{label(year, quarter)} would count the Verwaltungskosten twice; rerun the whole year, "
            "or reverse its bookings first"
        )
    raise OverlappingAllocation(reason, "quarter")


class CostsBookedDirectly(DomainError):
    """Cost types a run computes were also booked by hand in its period: both would count."""


DIRECT_KEYS_SHOWN_MAX = 5


def refuse_direct_bookings(year: int, quarter: int, booked: dict[str, tuple[int, list[str]]]) -> None:
    """`booked`: per computed cost type, the net cents and keys of the period's bookings not made
    by a run (reversals included, so a booking reversed by hand nets to nothing). A run books
    these types from the staff list; what was booked by hand beside it would count twice."""
    left = {category: (net, keys) for category, (net, keys) in sorted(booked.items()) if net}
    if not left:
        return
    parts = []
    for category, (net, keys) in left.items():
        shown = ", ".join(keys[:DIRECT_KEYS_SHOWN_MAX]) + (" …" if len(keys) > DIRECT_KEYS_SHOWN_MAX else "")
        parts.append(f"{category} {format_eur(net)} € ({shown})")
    raise CostsBookedDirectly(
        f"{label(year, quarter)} holds Verwaltungskosten booked by hand of cost types the run computes: "
        f"{'; '.join(parts)}; they would count twice beside the run: reverse them first",
        "quarter",
    )


class CostAllocation(Aggregate):
    """The allocation runs of one period; the latest run is in force, earlier ones were reversed."""

    @staticmethod
    def create_id(year: int, quarter: int) -> UUID:  # type: ignore[override]
        return allocation_id(year, quarter)

    @classmethod
    def open(cls, year: int, quarter: int) -> CostAllocation:
        check_year(year)
        if not 0 <= quarter <= 4:
            raise ValidationError("must be 1 to 4, or none for the whole year", "quarter")
        return cls(year, quarter)

    @event("Opened")
    def __init__(self, year: int, quarter: int) -> None:
        self.year, self.quarter = year, quarter
        self.runs = 0
        self.booking_keys: list[str] = []  # of the run in force
        self.replaced_keys: list[str] = []  # of earlier runs, reversed by later ones
        self.results_cents: dict[str, int] = {}
        self.computed_by = ""

    def run(
        self,
        *,
        staff: list[StaffRecord],
        shared: list[SharedCost],
        parameters: AllocationParameters,
        direct_cents: dict[str, int],
        computed_by: str,
    ) -> tuple[int, dict[str, int]]:
        """Compute and record a run; returns its number and the cents per cost type to book."""
        check_inputs(staff, shared)
        check_user(computed_by, "computed_by")
        assert parameters.quarter == self.quarter
        results = compute(staff, shared, parameters)
        number = self.runs + 1
        keys = run_keys(
            self.year, self.quarter, number, [t for t, cents in sorted(results.items()) if cents > 0]
        )
        self._computed(
            run=number,
            staff=[staff_to_json(s) for s in staff],
            shared=[shared_to_json(c) for c in shared],
            parameters=parameters_to_json(parameters),
            results_cents=dict(sorted(results.items())),
            direct_cents=dict(sorted(direct_cents.items())),
            sgb2_vzae=str(sgb2_vzae(staff)),
            booking_keys=keys,
            reverses_keys=list(self.booking_keys),
            computed_by=computed_by,
        )
        return number, results

    @event("Computed")
    def _computed(
        self,
        run: int,
        staff: list[dict],
        shared: list[dict],
        parameters: dict,
        results_cents: dict[str, int],
        direct_cents: dict[str, int],
        sgb2_vzae: str,
        booking_keys: list[str],
        reverses_keys: list[str],
        computed_by: str,
    ) -> None:
        self.runs = run
        self.replaced_keys += reverses_keys
        self.booking_keys = booking_keys
        self.results_cents = results_cents
        self.direct_cents = direct_cents
        self.sgb2_vzae = sgb2_vzae
        self.computed_by = computed_by

    @property
    def document_ref(self) -> str:
        return f"KOA-{period_code(self.year, self.quarter)}-L{self.runs}"


def recompute(computed_event) -> dict[str, int]:
    """What an auditor does: the results again from the inputs stored in a Computed event."""
    return compute(
        [staff_from_json(d) for d in computed_event.staff],
        [shared_from_json(d) for d in computed_event.shared],
        parameters_from_json(computed_event.parameters),
    )
