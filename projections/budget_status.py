"""Budget status of a fiscal year, per federal title and per Eingliederung instrument:
planned, allocated, shifted, committed (outstanding), spent, available.

Available (title) = allocated + shifted in − what the title is charged with (below): committed +
net spending counted in the split, where
committed = commitments outstanding + payments recorded but still awaiting approval − drawdowns given
back by reversals that do not count in the year (yet). A payment under a commitment leaves the
commitment when recorded and stays "committed" until approved, then "spent"; its reversal gives the
drawdown back when recorded, but the payment stays "spent" until the reversal is approved, and for
good if the reversal counts in a later year: counted once, and never shows as available in between.
Available (instrument) is measured against the instrument's plan, which is a *darunter* figure.

Both titles hold federal money (1101/685 11, 1101/636 13). Eingliederungsleistungen are the Bund's in
full, so the Eingliederungsbudget is charged with what is committed and spent. Verwaltungskosten are
the Bund's only at the year's share (87.4 % by default): the Verwaltungsbudget is charged with the
Bund's share of them, the rest is the municipality's own money and never draws on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.budget import TITLES, Budget
from domain.commitment import Commitment
from domain.money import share_cents
from domain.split import GroupTotal
from ledger.application import Ledger
from projections.split_projection import snapshot_now
from projections.split_view import SplitViewQueries


@dataclass(frozen=True, slots=True)
class StatusLine:
    title: str  # "egt" | "vwk"
    instrument: str  # "" for the title's own line
    planned_cents: int | None
    allocated_cents: int | None  # None: nothing allocated on file
    shifted_cents: int | None  # net shifted in (negative: shifted out)
    committed_cents: int
    spent_cents: int
    # Verwaltungsbudget only: the Bund's share of committed + spent, what the title is charged with.
    federal_share_cents: int | None = None

    def __post_init__(self) -> None:
        assert self.federal_share_cents is None or (self.title == "vwk" and not self.instrument)

    @property
    def charged_cents(self) -> int:
        """What draws on the line: committed + spent, or of Verwaltungskosten the Bund's share."""
        if self.federal_share_cents is not None:
            return self.federal_share_cents
        return self.committed_cents + self.spent_cents

    @property
    def available_cents(self) -> int | None:
        if self.instrument:
            if self.planned_cents is None:
                return None
            return self.planned_cents - self.committed_cents - self.spent_cents
        return (self.allocated_cents or 0) + (self.shifted_cents or 0) - self.charged_cents

    @property
    def beyond_budget_cents(self) -> int:
        """Eingliederung spending the Bund does not pay: the part of "spent" beyond allocation and
        shifts, which the split gives the municipality. The split caps only the Eingliederungsbudget
        (domain.md), so on the Verwaltungsbudget an overrun shows as a negative "available" alone."""
        if self.title != "egt" or self.instrument or self.allocated_cents is None:
            return 0
        return max(0, self.spent_cents - (self.allocated_cents + (self.shifted_cents or 0)))


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    year: int
    lines: list[StatusLine]
    commitments: list[Commitment]

    def title(self, title: str) -> StatusLine:
        return next(s for s in self.lines if s.title == title and not s.instrument)

    def instrument(self, code: str) -> StatusLine | None:
        return next((s for s in self.lines if s.instrument == code), None)


def spent_by_category(totals: list[GroupTotal]) -> dict[str, int]:
    spent: dict[str, int] = {}
    for t in totals:
        spent[t.category] = spent.get(t.category, 0) + t.net_cents
    return spent


def vwk_federal_share_cents(
    ledger: Ledger, year: int, totals: list[GroupTotal], committed: dict[str, int]
) -> int:
    """The Bund's share of the year's Verwaltungskosten, spent and committed. Spent: per cost type
    over the year, rounded as the split rounds them, so it is the settlement's federal figure;
    committed (payments awaiting approval): per cost type at the same share."""
    nets = [n for k, n in spent_by_category(totals).items() if k.startswith("vwk.")]
    nets += [c for k, c in committed.items() if k.startswith("vwk.")]
    if not any(nets):
        return 0  # nothing to share: a year without a share on file has nothing to charge either
    rate = ledger.rates.vwk_share(year)
    return sum(share_cents(n, rate) for n in nets)


def budget_status(ledger: Ledger, view: SplitViewQueries, year: int, budget: Budget | None = None) -> BudgetStatus:
    """The status now (the caller has caught the view up). `budget`: a loaded one to use instead."""
    budget = budget if budget is not None else ledger.budget_as_of(year)
    commitments = [ledger.get_commitment(ref) for ref in (budget.contract_refs if budget else [])]
    committed: dict[str, int] = {}
    for c in commitments:
        committed[c.instrument] = committed.get(c.instrument, 0) + c.remaining_cents(year)
    # The drawdowns read above came with invoices stored up to this position: the view must hold
    # them (else their money counts nowhere, gone from the commitment, not awaiting nor spent), and
    # all its figures come from one state (else an approval caught up between two reads counts
    # as awaiting and spent).
    with snapshot_now(ledger, view) as state:
        # An invoice awaiting approval has left its commitment but is not spent yet: it stays bound.
        for category, cents in state.awaiting_by_category(year).items():
            if category.startswith(("egt.", "vwk.")):
                committed[category] = committed.get(category, 0) + cents
        # The mirror image: a reversal gives its invoice's drawdown back to the commitment's slice of
        # the invoice's year at once, but the invoice stays spent in that year while the reversal awaits
        # approval, and for good when the reversal counts in a later year (the invoice's year was
        # closed). That money is not bound again in the year (else it would count twice).
        for c in commitments:
            given = {key: cents for key, (y, cents) in c.given_back.items() if y == year}
            for key in state.reversals_not_counted_in(list(given), year) if given else ():
                committed[c.instrument] -= given[key]
        totals = state.totals(year)  # read once: spending and the Bund's share of it
    spent = spent_by_category(totals)
    plan = dict(budget.plan_cents) if budget else {}
    lines: list[StatusLine] = []
    for title in TITLES:
        prefix = f"{title}."
        has = budget is not None and (budget.has_allocation[title] or budget.shifted_in_cents[title] != 0)
        lines.append(
            StatusLine(
                title=title,
                instrument="",
                planned_cents=sum(plan.values()) if title == "egt" and plan else None,
                allocated_cents=budget.allocated_cents[title] if has and budget else None,
                shifted_cents=budget.shifted_in_cents[title] if has and budget else None,
                committed_cents=sum(v for k, v in committed.items() if k.startswith(prefix)),
                spent_cents=sum(v for k, v in spent.items() if k.startswith(prefix)),
                federal_share_cents=(
                    vwk_federal_share_cents(ledger, year, totals, committed) if title == "vwk" else None
                ),
            )
        )
        if title == "egt":
            instruments = sorted({*plan, *committed, *(k for k in spent if k.startswith(prefix))})
            lines += [
                StatusLine(
                    title=title,
                    instrument=code,
                    planned_cents=plan.get(code),
                    allocated_cents=None,
                    shifted_cents=None,
                    committed_cents=committed.get(code, 0),
                    spent_cents=spent.get(code, 0),
                )
                for code in instruments
            ]
    return BudgetStatus(year, lines, commitments)
