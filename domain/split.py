"""The federal/municipal split of net spending, per fiscal year, quarter and category.

The rounding unit is the year of a category: its federal share up to the end of a quarter is the
cumulative net times the rate, rounded half up once, and a quarter's share is that less the share up
to the quarter before. So a year's figure is its net times the rate, rounded once (four quarters of
250.000,00 € at 87.4 % give 874.000,00 €, not 873.999,99), and a quarter report, which is
cumulative for the year, shows the same figure as the year's. The municipal share is the rest, so
both add up to the net exactly. Per-booking shares are a group's (fiscal year, quarter, category)
share distributed by largest remainder (money.allocate_share_cents_paired), so they add up to the
group's share; a booking and its Storno in the same group get exactly opposite shares.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from domain.catalogue import Catalogue, Funding
from domain.money import allocate_proportional_cents, format_eur, share_cents
from domain.rates import RateTable


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """Net spending of one (fiscal year, quarter, category), from counted bookings only."""

    fiscal_year: int
    quarter: int
    category: str
    expenditure_cents: int
    receipts_cents: int
    booking_count: int

    @property
    def net_cents(self) -> int:
        return self.expenditure_cents - self.receipts_cents


@dataclass(frozen=True, slots=True)
class SplitLine:
    fiscal_year: int
    quarter: int
    category: str
    federal_title: str
    expenditure_cents: int
    receipts_cents: int
    net_cents: int
    federal_rate: Decimal
    rate_label: str
    federal_cents: int
    municipal_cents: int
    booking_count: int
    # The Eingliederungsbudget changed this line's federal share: it is not its rate times its net,
    # and its bookings share it by net amount (projections.split_queries.booking_shares).
    budget_capped: bool = False

    def __post_init__(self) -> None:
        assert self.net_cents == self.expenditure_cents - self.receipts_cents
        assert self.federal_cents + self.municipal_cents == self.net_cents


def split_group(
    total: GroupTotal, catalogue: Catalogue, rates: RateTable, land: str, net_before_cents: int = 0
) -> SplitLine:
    """The split of one group; `net_before_cents`: the category's net in the year's quarters before
    (the share is rounded on the cumulative net, see the module's docstring)."""
    category = catalogue.get(total.category)
    applied = rates.federal_rate(category, total.fiscal_year, land)
    federal = share_cents(net_before_cents + total.net_cents, applied.rate) - share_cents(
        net_before_cents, applied.rate
    )
    return SplitLine(
        fiscal_year=total.fiscal_year,
        quarter=total.quarter,
        category=total.category,
        federal_title=category.title_label,
        expenditure_cents=total.expenditure_cents,
        receipts_cents=total.receipts_cents,
        net_cents=total.net_cents,
        federal_rate=applied.rate,
        rate_label=applied.label,
        federal_cents=federal,
        municipal_cents=total.net_cents - federal,
        booking_count=total.booking_count,
    )


def split_groups(
    totals: Iterable[GroupTotal], catalogue: Catalogue, rates: RateTable, land: str
) -> list[SplitLine]:
    """Split lines of the given groups. The totals must cover each year from Q1 on: a quarter's share
    is rounded on the cumulative net, and the Eingliederungsbudget is used up in quarter order."""
    by_category: defaultdict[tuple[int, str], list[GroupTotal]] = defaultdict(list)
    for t in totals:
        by_category[(t.fiscal_year, t.category)].append(t)
    lines = []
    for group in by_category.values():
        net_before = 0
        for t in sorted(group, key=lambda t: t.quarter):
            lines.append(split_group(t, catalogue, rates, land, net_before))
            net_before += t.net_cents
        assert len({t.quarter for t in group}) == len(group), "a quarter twice"
    for year in sorted({s.fiscal_year for s in lines}):
        funds = rates.egt_funds_cents(year)
        if funds is not None:
            lines = cap_to_budget(lines, catalogue, year, funds)
    return sorted(lines, key=lambda s: (s.fiscal_year, s.quarter, s.federal_title, s.category))


def cap_to_budget(
    lines: list[SplitLine], catalogue: Catalogue, year: int, funds_cents: int
) -> list[SplitLine]:
    """The Bund pays Eingliederungsleistungen up to the year's budget; beyond it, the Kommune.

    The budget is used up in quarter order: the quarter in which cumulative net spending passes it
    has its federal part shared over its categories by net amount (largest remainder), later
    quarters are municipal. Receipts that bring spending back under the budget give back to the Bund,
    and so do receipts that take the year's net below zero: the budget caps what the Bund pays, it
    does not move refunds of federal money to the Kommune (a year below zero splits as without a
    budget on file).
    """
    budget = max(0, funds_cents)  # more shifted out than allocated: nothing left for the Bund to pay
    egt = [
        s for s in lines if s.fiscal_year == year and catalogue.get(s.category).funding is Funding.EGT_BUDGET
    ]
    others = [s for s in lines if s not in egt]
    out: list[SplitLine] = []
    cumulative_net = federal_before = 0
    for quarter in sorted({s.quarter for s in egt}):
        q_lines = sorted((s for s in egt if s.quarter == quarter), key=lambda s: s.category)
        net = sum(s.net_cents for s in q_lines)
        cumulative_net += net
        # Clamped above only: a negative cumulative net is a refund to the Bund (domain.md: the split
        # applies to the net amount), whether or not a budget is on file.
        federal_after = min(cumulative_net, budget)
        federal_q = federal_after - federal_before
        federal_before = federal_after
        shares = allocate_proportional_cents([s.net_cents for s in q_lines], federal_q)
        for s, federal in zip(q_lines, shares, strict=True):
            if federal == s.federal_cents:
                out.append(s)
                continue
            rate = (
                (Decimal(federal) / Decimal(s.net_cents)).quantize(Decimal("0.000001"))
                if s.net_cents
                else Decimal(0)
            )
            out.append(
                replace(
                    s,
                    federal_rate=rate,
                    rate_label=f"Bund bis zum Eingliederungsbudget {year} ({format_eur(budget)} €), darüber Kommune",
                    federal_cents=federal,
                    municipal_cents=s.net_cents - federal,
                    budget_capped=True,
                )
            )
    assert sum(s.federal_cents for s in out) == min(cumulative_net, budget) or not out
    assert sum(s.federal_cents for s in out) <= budget or not out
    return others + out


@dataclass(frozen=True, slots=True)
class Sum:
    """Totals over several split lines (a title, a quarter, a year)."""

    expenditure_cents: int = 0
    receipts_cents: int = 0
    net_cents: int = 0
    federal_cents: int = 0
    municipal_cents: int = 0
    booking_count: int = 0

    @classmethod
    def of(cls, lines: Iterable[SplitLine]) -> Sum:
        e = r = n = f = m = c = 0
        for s in lines:
            e += s.expenditure_cents
            r += s.receipts_cents
            n += s.net_cents
            f += s.federal_cents
            m += s.municipal_cents
            c += s.booking_count
        assert f + m == n
        return cls(e, r, n, f, m, c)


def sum_by_title(lines: Iterable[SplitLine]) -> dict[str, Sum]:
    by_title: dict[str, list[SplitLine]] = {}
    for s in lines:
        by_title.setdefault(s.federal_title, []).append(s)
    return {t: Sum.of(ls) for t, ls in sorted(by_title.items())}
