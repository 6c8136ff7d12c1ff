"""The figures of a KoA-VV settlement report, independent of how they are written (xlsx, CSV, JSON).

Every amount is integer cents. A report covers a fiscal year up to and including a quarter
(cumulative from 1 January) or the whole year, as recorded up to `as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# Federal titles in the order of the settlement (Kapitel 1101), then the municipal-only line.
TITLE_ORDER = ("1101/681 12", "1101/685 11", "1101/636 13", "1101/632 11", "kommunal")
TITLE_NAMES = {
    "1101/681 12": "Leistungen zur Sicherung des Lebensunterhalts (Bürgergeld)",
    "1101/685 11": "Leistungen zur Eingliederung in Arbeit",
    "1101/636 13": "Verwaltungskosten",
    "1101/632 11": "Beteiligung des Bundes an den Leistungen für Unterkunft und Heizung (über das Land)",
    "kommunal": "Kommunale Leistungen (ohne Bundesbeteiligung)",
}


@dataclass(frozen=True, slots=True)
class CategoryLine:
    """One category of the Übersicht: the figures and where their bookings are in Belege."""

    federal_title: str
    category: str
    category_name: str
    expenditure_cents: int
    receipts_cents: int
    net_cents: int
    federal_rate: Decimal
    rate_label: str
    federal_cents: int
    municipal_cents: int
    booking_count: int
    belege_rows: tuple[int, int] = (0, 0)  # first and last line of its bookings in the Belegliste


@dataclass(frozen=True, slots=True)
class TitleLine:
    federal_title: str
    title_name: str
    expenditure_cents: int
    receipts_cents: int
    net_cents: int
    federal_cents: int
    municipal_cents: int
    drawn_cents: int  # funds drawn from the Bund for this title (Mittelabruf), cumulative, less repayments
    booking_count: int

    @property
    def to_settle_cents(self) -> int:
        """Positive: still to be drawn from the Bund; negative: to be repaid."""
        return self.federal_cents - self.drawn_cents


@dataclass(frozen=True, slots=True)
class DrawLine:
    """Federal funds drawn in the period (HKR-Mittelabruf): what a title's funds drawn add up from."""

    federal_title: str
    value_date: date
    amount_cents: int
    document_ref: str
    recorded_by: str


@dataclass(frozen=True, slots=True)
class RepaymentLine:
    """Funds repaid to the Bund in the period (deducted from the title's funds drawn) and the
    interest paid on them from municipal money."""

    federal_title: str
    value_date: date
    amount_cents: int
    interest_cents: int
    document_ref: str
    recorded_by: str


def drawn_by_title(draws: list[DrawLine], repayments: list[RepaymentLine]) -> dict[str, int]:
    """Each title's funds drawn: its draws less its repayments (what TitleLine.drawn_cents holds)."""
    drawn: dict[str, int] = {}
    for d in draws:
        drawn[d.federal_title] = drawn.get(d.federal_title, 0) + d.amount_cents
    for r in repayments:
        drawn[r.federal_title] = drawn.get(r.federal_title, 0) - r.amount_cents
    return drawn


@dataclass(frozen=True, slots=True)
class KduLine:
    land: str
    year: int
    net_cents: int  # § 22 Abs. 1 spending net of its receipts
    provisional_rate: Decimal | None
    final_rate: Decimal | None
    federal_provisional_cents: int | None
    federal_final_cents: int | None

    @property
    def difference_cents(self) -> int | None:
        if self.federal_provisional_cents is None or self.federal_final_cents is None:
            return None
        return self.federal_final_cents - self.federal_provisional_cents


@dataclass(frozen=True, slots=True)
class BelegRow:
    """One booking behind the figures, with its own shares (they add up to its category line)."""

    booking_key: str
    fiscal_year: int
    quarter: int
    payment_date: date
    service_from: date
    service_to: date
    recorded_at: datetime
    category: str
    federal_title: str
    kind: str
    net_cents: int
    federal_cents: int
    municipal_cents: int
    document_ref: str
    case_ref: str
    cost_centre: str
    reverses_key: str
    approved_by: str


@dataclass(frozen=True, slots=True)
class InstrumentBudget:
    instrument: str
    name: str
    planned_cents: int | None  # None: no plan on file
    committed_cents: int  # commitments outstanding for the year at the report's moment


@dataclass(frozen=True)
class EgtBudget:
    """The year's Eingliederungsbudget as recorded at the report's moment."""

    allocated_cents: int | None  # None: no allocation on file
    shifted_cents: int  # net shifted in from the Verwaltungsbudget (negative: out)
    instruments: list[InstrumentBudget]

    @property
    def funds_cents(self) -> int | None:
        return None if self.allocated_cents is None else self.allocated_cents + self.shifted_cents


@dataclass(frozen=True, slots=True)
class AllocationRun:
    """A cost allocation run (KoA-VV § 18) in force for a period of the report."""

    document_ref: str  # e.g. KOA-2026-Q1-L2; its bookings carry it
    period: str
    sgb2_vzae: str  # Σ VZÄ × SGB II share of the staff records
    results_cents: dict[str, int]  # cost type -> cents booked


@dataclass(frozen=True)
class KoaVvReport:
    year: int
    quarter: int | None  # None: the whole year
    land: str
    as_of: datetime
    last_position: int  # notification id of the last event included
    program_version: str
    store: str
    categories: list[CategoryLine]
    titles: list[TitleLine]
    kdu: KduLine | None
    # The bookings behind the figures with their shares: a list, or exports.koavv_belege.ViewBelege
    # (read from the store only when the Belegliste is written). Both have len() and iteration.
    belege: Any
    parameters: list[tuple[str, str]]  # (name, value as applied)
    not_yet_built: dict[str, str] = field(default_factory=dict)  # sheet -> why it has no figures yet
    egt_budget: EgtBudget | None = None
    allocation_runs: list[AllocationRun] = field(default_factory=list)
    repayments: list[RepaymentLine] = field(default_factory=list)
    draws: list[DrawLine] = field(default_factory=list)  # with the repayments: each title's drawn_cents

    @property
    def period_label(self) -> str:
        if self.quarter is None:
            return f"{self.year} (Jahr)"
        return f"{self.year} Q1" if self.quarter == 1 else f"{self.year} Q1–Q{self.quarter} (kumuliert)"

    @property
    def is_empty(self) -> bool:
        return len(self.belege) == 0
