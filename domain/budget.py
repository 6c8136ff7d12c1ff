"""The year's Gesamtbudget from the Bund: the Eingliederungsbudget (1101/685 11) and the
Verwaltungsbudget (1101/636 13), their allocation, shifts between them, the plan per instrument,
and the amounts measure commitments bind in the year.

One aggregate per fiscal year. Guards that need what was spent take the figure as an argument
(`available_cents`): spending lives in the split view, not here. Binding is recorded here as well as
on the commitment, so two commitments made at once for the same year conflict on this aggregate's
version and the second is decided again against what the first left available.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REF_RE, YEAR_MAX, YEAR_MIN, check_reason, check_user
from domain.errors import DomainError, StateRefused, ValidationError
from domain.money import format_eur
from domain.rates import pct

BUDGET_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:budget")
TITLES = {"egt": "1101/685 11", "vwk": "1101/636 13"}
TITLE_NAMES = {"egt": "Eingliederungsbudget", "vwk": "Verwaltungsbudget"}
BUDGET_CENTS_MAX = 1_000_000_000_000  # 10 billion €: beyond any city's budget, so a typo
PLAN_LINES_MAX = 200


class BudgetExceeded(DomainError):
    """A commitment, shift or lowered allocation would leave less than nothing available."""


def budget_id(year: int) -> UUID:
    return uuid5(BUDGET_NAMESPACE, str(year))


def check_year(year: int) -> None:
    if not isinstance(year, int) or not YEAR_MIN <= year <= YEAR_MAX:
        raise ValidationError(f"must be between {YEAR_MIN} and {YEAR_MAX}", "year")


def check_title(title: str, field: str = "title") -> None:
    if title not in TITLES:
        raise ValidationError(f"must be one of {', '.join(TITLES)} ({', '.join(TITLES.values())})", field)


def check_amount(amount_cents: int, *, zero_ok: bool, field: str = "amount") -> None:
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
        raise ValidationError("must be an integer number of cents", field)
    low = 0 if zero_ok else 1
    if not low <= amount_cents <= BUDGET_CENTS_MAX:
        raise ValidationError(
            f"must be {'at least 0' if zero_ok else 'greater than zero'} and at most "
            f"{format_eur(BUDGET_CENTS_MAX)} €",
            field,
        )


def shift_limit_cents(allocated_cents: int, limit_rate) -> int:
    """What the shifts out of a title may total in net: the Deckungsfähigkeit limit's share of its
    allocation, floored (never above the limit)."""
    return int(allocated_cents * limit_rate)


class Budget(Aggregate):
    @staticmethod
    def create_id(year: int) -> UUID:  # type: ignore[override]
        return budget_id(year)

    @classmethod
    def open(cls, year: int) -> Budget:
        check_year(year)
        return cls(year)

    @event("Opened")
    def __init__(self, year: int) -> None:
        self.year = year
        self.allocated_cents = {t: 0 for t in TITLES}
        self.allocation_refs: dict[str, str] = {}
        self.shifted_in_cents = {t: 0 for t in TITLES}  # net: negative where money left the title
        self.plan_cents: dict[str, int] = {}  # Eingliederung instrument -> planned amount
        self.bound_cents: dict[str, int] = {}  # instrument -> amount bound by commitments
        self.contract_refs: list[str] = []  # every commitment that has bound money in the year
        self.has_allocation = {t: False for t in TITLES}

    # ---- commands --------------------------------------------------------------------------

    def allocate(
        self,
        *,
        title: str,
        amount_cents: int,
        reference: str,
        reason: str,
        allocated_by: str,
        available_cents: int | None = None,
        limit_rate=None,
    ) -> None:
        """Set the year's allocation of a title (a later Zuteilung replaces the earlier figure).

        `available_cents` is what the title has available now; lowering the allocation by more is refused.
        `limit_rate` is the year's Deckungsfähigkeit limit: an allocation lowered below what the
        shifts out of the title need (their net total may be at most that share of it) is refused;
        shift money back first.
        """
        check_title(title)
        check_amount(amount_cents, zero_ok=True)
        if not REF_RE.fullmatch(reference):
            raise ValidationError("required: the allocation letter, 1-64 letters, digits or ._:/-", "reference")
        reason = check_reason(reason)
        check_user(allocated_by, "allocated_by")
        lowered_by = self.allocated_cents[title] - amount_cents
        if available_cents is not None and lowered_by > available_cents:
            raise BudgetExceeded(
                f"lowering the {TITLE_NAMES[title]} {self.year} by {format_eur(lowered_by)} € leaves less "
                f"than nothing: only {format_eur(available_cents)} € are available (not bound or spent)",
                field="amount",
            )
        shifted_out = -self.shifted_in_cents[title]
        if limit_rate is not None and lowered_by > 0 and shifted_out > shift_limit_cents(amount_cents, limit_rate):
            raise BudgetExceeded(
                f"{format_eur(shifted_out)} € are shifted out of the {TITLE_NAMES[title]} {self.year}, more "
                f"than {pct(limit_rate)} of {format_eur(amount_cents)} € "
                f"({format_eur(shift_limit_cents(amount_cents, limit_rate))} €): shift money back before "
                "lowering the allocation",
                field="amount",
            )
        self._allocated(
            title=title,
            amount_cents=amount_cents,
            previous_cents=self.allocated_cents[title],
            reference=reference,
            reason=reason,
            allocated_by=allocated_by,
        )

    def shift(
        self,
        *,
        from_title: str,
        to_title: str,
        amount_cents: int,
        limit_rate,
        available_cents: int,
        reason: str,
        shifted_by: str,
    ) -> None:
        """Move money between the titles (Deckungsfähigkeit), up to limit_rate of the giving title's
        allocation in net, and never more than the giving title has available."""
        check_title(from_title, "from")
        check_title(to_title, "to")
        if from_title == to_title:
            raise ValidationError("must differ from the giving title", "to")
        check_amount(amount_cents, zero_ok=False)
        reason = check_reason(reason)
        check_user(shifted_by, "shifted_by")
        if not self.has_allocation[from_title]:
            raise StateRefused(f"the {TITLE_NAMES[from_title]} {self.year} has no allocation yet", "from")
        limit_cents = shift_limit_cents(self.allocated_cents[from_title], limit_rate)
        out_after = -self.shifted_in_cents[from_title] + amount_cents
        if out_after > limit_cents:
            already = max(0, -self.shifted_in_cents[from_title])
            raise BudgetExceeded(
                f"shifts out of the {TITLE_NAMES[from_title]} {self.year} may total at most "
                f"{format_eur(limit_cents)} € ({pct(limit_rate)} of its allocation); "
                f"{format_eur(already)} € are shifted already, so at most "
                f"{format_eur(max(0, limit_cents - already))} € more",
                field="amount",
            )
        if amount_cents > available_cents:
            raise BudgetExceeded(
                f"the {TITLE_NAMES[from_title]} {self.year} has only {format_eur(available_cents)} € "
                "available (not bound or spent)",
                field="amount",
            )
        self._shifted(from_title=from_title, to_title=to_title, amount_cents=amount_cents, reason=reason,
                      shifted_by=shifted_by)

    def plan(self, *, instrument: str, amount_cents: int, reason: str, planned_by: str) -> None:
        """Set the planned amount of an Eingliederung instrument (a *darunter* figure: the plan of the
        instruments need not add up to the budget)."""
        if not instrument.startswith("egt."):
            raise ValidationError("must be an Eingliederung instrument (egt.*)", "instrument")
        check_amount(amount_cents, zero_ok=True)
        reason = check_reason(reason)
        check_user(planned_by, "planned_by")
        if instrument not in self.plan_cents and len(self.plan_cents) >= PLAN_LINES_MAX:
            raise ValidationError(f"at most {PLAN_LINES_MAX} planned instruments", "instrument")
        self._planned(instrument=instrument, amount_cents=amount_cents, reason=reason, planned_by=planned_by)

    def bind(self, *, contract_ref: str, instrument: str, delta_cents: int, available_cents: int | None) -> None:
        """Record a commitment's change for this year (positive binds, negative frees).

        `available_cents` is the Eingliederungsbudget available before the change; None where the
        year has no allocation yet (a Verpflichtungsermächtigung for a later year).
        """
        assert delta_cents != 0
        if delta_cents > 0 and available_cents is not None and delta_cents > available_cents:
            raise BudgetExceeded(
                f"{contract_ref}: binding {format_eur(delta_cents)} € in {self.year} exceeds the "
                f"Eingliederungsbudget available: {format_eur(max(0, available_cents))} €",
                field="amount",
            )
        self._bound(contract_ref=contract_ref, instrument=instrument, delta_cents=delta_cents)

    # ---- events (state only) ---------------------------------------------------------------

    @event("Allocated")
    def _allocated(
        self, title: str, amount_cents: int, previous_cents: int, reference: str, reason: str, allocated_by: str
    ) -> None:
        self.allocated_cents[title] = amount_cents
        self.allocation_refs[title] = reference
        self.has_allocation[title] = True

    @event("Shifted")
    def _shifted(self, from_title: str, to_title: str, amount_cents: int, reason: str, shifted_by: str) -> None:
        self.shifted_in_cents[from_title] -= amount_cents
        self.shifted_in_cents[to_title] += amount_cents

    @event("Planned")
    def _planned(self, instrument: str, amount_cents: int, reason: str, planned_by: str) -> None:
        self.plan_cents[instrument] = amount_cents

    @event("Bound")
    def _bound(self, contract_ref: str, instrument: str, delta_cents: int) -> None:
        self.bound_cents[instrument] = self.bound_cents.get(instrument, 0) + delta_cents
        if contract_ref not in self.contract_refs:
            self.contract_refs.append(contract_ref)

    # ---- queries ---------------------------------------------------------------------------

    def funds_cents(self, title: str) -> int | None:
        """Allocation plus net shifts in: what the title may spend; None without an allocation."""
        if not self.has_allocation[title] and self.shifted_in_cents[title] == 0:
            return None
        return self.allocated_cents[title] + self.shifted_in_cents[title]
