"""Assemble a KoA-VV report from the split view, the rates and the recorded draws.

A quarter's report is cumulative from 1 January. A category's federal share here is the sum of its
quarters' shares, which the split takes from the year's cumulative share, rounded once
(domain.split): so it is the cumulative net times the rate, and the per-booking shares in Belege
add up to it to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version

from domain.commitment import commitment_id
from domain.cost_allocation import allocation_id
from domain.fiscal import quarter_of
from domain.money import share_cents
from domain.periods import YEAR, label
from domain.settlement import FundsDraw, FundsRepayment
from domain.split import split_groups
from exports.koavv_belege import ViewBelege
from exports.koavv_model import (
    TITLE_NAMES,
    TITLE_ORDER,
    AllocationRun,
    CategoryLine,
    DrawLine,
    EgtBudget,
    InstrumentBudget,
    KduLine,
    KoaVvReport,
    RepaymentLine,
    TitleLine,
    drawn_by_title,
)
from ledger.application import Ledger
from projections.split_view import SplitViewQueries

NO_ALLOCATION_RUN = (
    "Für den Zeitraum ist kein Kostenaufteilungslauf (KoA-VV § 18) erfasst; ausgewiesen sind die "
    "gebuchten Verwaltungskosten je Kostenart."
)
NO_EGT_BUDGET = (
    "Für das Jahr ist kein Eingliederungsbudget erfasst (koa budget allocate): der Bund trägt die "
    "Ausgaben ohne Obergrenze, Plan und Verfügbar bleiben leer."
)


def program_version() -> str:
    try:
        return f"koa-ledger {version('koa-ledger')}"
    except PackageNotFoundError:
        return "koa-ledger (not installed)"


def build_report(
    view: SplitViewQueries,
    ledger: Ledger,
    *,
    land: str,
    year: int,
    quarter: int | None,
    as_of: datetime,
    last_position: int,
    store: str,
    by_position: bool = False,
) -> KoaVvReport:
    catalogue = ledger.catalogue
    # What the report reads besides the view is cut where the view's bookings are: a live report
    # and a reproduction by its position at the position alone (what was stored up to it, however
    # its events were stamped: a writer's clock may run ahead), an as-of report at the moment.
    moment, position = (None, last_position) if by_position else (as_of, None)
    rates = ledger.rates_as_of(moment, position)  # the rates as they were set at the report's cut
    quarters = range(1, (quarter or 4) + 1)
    lines = split_groups([t for q in quarters for t in view.totals(year, q)], catalogue, rates, land)

    by_category: dict[str, list] = defaultdict(list)
    for s in lines:
        by_category[s.category].append(s)
    categories = []
    for code, qlines in by_category.items():
        first = qlines[0]
        federal, net = sum(s.federal_cents for s in qlines), sum(s.net_cents for s in qlines)
        rate, rate_label = first.federal_rate, first.rate_label
        if len({s.federal_rate for s in qlines}) > 1:  # e.g. the Eingliederungsbudget ran out in a quarter
            rate = (Decimal(federal) / Decimal(net)).quantize(Decimal("0.000001")) if net else Decimal(0)
            rate_label = " / ".join(dict.fromkeys(s.rate_label for s in qlines))
        categories.append(
            CategoryLine(
                federal_title=first.federal_title,
                category=code,
                category_name=catalogue.get(code).name,
                expenditure_cents=sum(s.expenditure_cents for s in qlines),
                receipts_cents=sum(s.receipts_cents for s in qlines),
                net_cents=sum(s.net_cents for s in qlines),
                federal_rate=rate,
                rate_label=rate_label,
                federal_cents=sum(s.federal_cents for s in qlines),
                municipal_cents=sum(s.municipal_cents for s in qlines),
                booking_count=sum(s.booking_count for s in qlines),
            )
        )
    categories.sort(key=lambda c: (TITLE_ORDER.index(c.federal_title), c.category))

    def in_report(e) -> bool:
        # A draw or repayment for the year made in the run-off period (next January) is in its Q4.
        day = e.value_date
        in_quarter = 4 if day.year > year else 1 if day.year < year else quarter_of(day)
        in_time = by_position or e.timestamp <= as_of
        return e.fiscal_year == year and in_time and (quarter is None or in_quarter <= quarter)

    up_to = last_position or None
    # In settlement order: per title by value date, then voucher (the log's order is when recorded).
    draws = sorted(
        (
            DrawLine(e.federal_title, e.value_date, e.amount_cents, e.document_ref, e.recorded_by)
            for e in ledger.recorded(FundsDraw.Recorded, up_to_position=up_to)
            if in_report(e)
        ),
        key=transfer_order,
    )
    repayments = sorted(
        (
            RepaymentLine(
                e.federal_title, e.value_date, e.amount_cents, e.interest_cents, e.document_ref, e.recorded_by
            )
            for e in ledger.recorded(FundsRepayment.Recorded, up_to_position=up_to)
            if in_report(e)
        ),
        key=transfer_order,
    )
    drawn = drawn_by_title(draws, repayments)

    titles = []
    for title in TITLE_ORDER:
        cs = [c for c in categories if c.federal_title == title]
        if not cs and title not in drawn:
            continue
        titles.append(
            TitleLine(
                federal_title=title,
                title_name=TITLE_NAMES[title],
                expenditure_cents=sum(c.expenditure_cents for c in cs),
                receipts_cents=sum(c.receipts_cents for c in cs),
                net_cents=sum(c.net_cents for c in cs),
                federal_cents=sum(c.federal_cents for c in cs),
                municipal_cents=sum(c.municipal_cents for c in cs),
                drawn_cents=drawn.get(title, 0),
                booking_count=sum(c.booking_count for c in cs),
            )
        )

    # The bookings behind the figures are read only when the Belegliste is written (koavv_belege),
    # from this same view: for a live report a snapshot (report_for), so they are the ones counted
    # in `lines`, however far other processes have moved the view by then.
    belege = ViewBelege(view, catalogue, rates, land, year, lines)

    kdu = kdu_line(lines, rates, land, year)
    egt = egt_budget_at(ledger, year, moment, position)
    runs = allocation_runs_at(ledger, year, quarter, moment, position)
    not_yet_built = {}
    if not runs:
        not_yet_built["Verwaltungskosten"] = NO_ALLOCATION_RUN
    if egt is None or egt.allocated_cents is None:
        not_yet_built["Eingliederung"] = NO_EGT_BUDGET
    parameters = [
        ("Land", land),
        ("Verwaltungskostenanteil des Bundes", str(rates.vwk_share(year))),
        ("Freigabeschwelle (Cent)", str(rates.approval_threshold_cents)),
        ("Auslaufperiode für das Vorjahr bis", rates.runoff_last_day(year - 1).isoformat()),
        ("Auslaufperiode für dieses Jahr bis", rates.runoff_last_day(year).isoformat()),
    ]
    if kdu is not None:
        parameters.append(("KdU-Quote vorläufig", str(kdu.provisional_rate or "–")))
        parameters.append(("KdU-Quote endgültig", str(kdu.final_rate or "–")))
    for c in categories:
        parameters.append((f"Satz {c.category}", c.rate_label))
    return KoaVvReport(
        year=year,
        quarter=quarter,
        land=land,
        as_of=as_of,
        last_position=last_position,
        program_version=program_version(),
        store=store,
        categories=categories,
        titles=titles,
        kdu=kdu,
        belege=belege,
        parameters=parameters,
        not_yet_built=not_yet_built,
        egt_budget=egt,
        allocation_runs=runs,
        repayments=repayments,
        draws=draws,
    )


def transfer_order(t: DrawLine | RepaymentLine) -> tuple:
    return (TITLE_ORDER.index(t.federal_title), t.value_date, t.document_ref)


def egt_budget_at(
    ledger: Ledger, year: int, as_of: datetime | None, position: int | None = None
) -> EgtBudget | None:
    """The Eingliederungsbudget, plan and commitments outstanding as recorded up to as_of and
    stored up to a log position (None: not cut there)."""
    budget = ledger.budget_as_of(year, as_of, position)
    if budget is None:
        return None
    committed: dict[str, int] = defaultdict(int)
    for ref in budget.contract_refs:
        c = ledger.aggregate_as_of(commitment_id(ref), as_of, position)
        if c is not None:
            committed[c.instrument] += c.remaining_cents(year)
    codes = sorted({*budget.plan_cents, *committed})
    return EgtBudget(
        allocated_cents=budget.allocated_cents["egt"] if budget.has_allocation["egt"] else None,
        shifted_cents=budget.shifted_in_cents["egt"],
        instruments=[
            InstrumentBudget(
                code, ledger.catalogue.get(code).name, budget.plan_cents.get(code), committed.get(code, 0)
            )
            for code in codes
        ],
    )


def allocation_runs_at(
    ledger: Ledger, year: int, quarter: int | None, as_of: datetime | None, position: int | None = None
) -> list[AllocationRun]:
    """The cost allocation runs in force at as_of (and a log position) for the report's quarters
    (and the whole year)."""
    periods = [(q, label(year, q)) for q in range(1, (quarter or 4) + 1)]
    if quarter is None:
        periods.append((YEAR, label(year, YEAR)))
    runs = []
    for q, period in periods:
        a = ledger.aggregate_as_of(allocation_id(year, q), as_of, position)
        if a is not None and a.runs:
            runs.append(AllocationRun(a.document_ref, period, a.sgb2_vzae, dict(a.results_cents)))
    return runs


def kdu_line(lines, rates, land: str, year: int) -> KduLine | None:
    from domain.errors import RateMissing

    kdu_lines = [s for s in lines if s.category == "kdu"]
    try:
        quota = rates.kdu_quota(land, year)
    except RateMissing:
        return None
    net = sum(s.net_cents for s in kdu_lines)

    def federal(rate):  # rounded once, like the split, so the final figure equals the Übersicht's
        return None if rate is None else share_cents(net, rate)

    return KduLine(
        land,
        year,
        net,
        quota.provisional,
        quota.final,
        federal(quota.provisional),
        federal(quota.final),
    )
