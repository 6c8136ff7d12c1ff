"""Commands on budgets and measure commitments: a thin service layer over the aggregates.

Each command catches the split view up (spending decides what is available), loads the aggregates,
lets their guards decide, and saves everything it changed in one transaction. A concurrent writer
on the same budget or commitment makes the save fail on the aggregate's version; the command then
decides again from the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.budget import Budget, budget_id, check_title
from domain.commitment import Commitment
from domain.errors import KeyConflict, ValidationError
from ledger.bootstrap import Books
from projections.budget_status import BudgetStatus, budget_status
from projections.split_projection import catch_up

ATTEMPTS_MAX = 3
T = TypeVar("T")


def _retrying(books: Books, attempt: Callable[[], T]) -> T:
    for _ in range(ATTEMPTS_MAX):
        catch_up(books.ledger, books.split_view)
        try:
            return attempt()
        except IntegrityError:
            continue  # another writer changed the budget or commitment: decide again
    raise IntegrityError("the budget kept changing under concurrent writers; try again")


def _budget(books: Books, year: int) -> Budget:
    try:
        return books.ledger.repository.get(budget_id(year))
    except AggregateNotFoundError:
        return Budget.open(year)


def status(books: Books, year: int) -> BudgetStatus:
    catch_up(books.ledger, books.split_view)
    return budget_status(books.ledger, books.split_view, year)


def allocate(books: Books, *, year: int, title: str, amount_cents: int, reference: str, reason: str, by: str) -> Budget:
    check_title(title)  # before the status is asked for the title

    def attempt() -> Budget:
        budget = _budget(books, year)
        available = budget_status(books.ledger, books.split_view, year, budget).title(title).available_cents
        budget.allocate(
            title=title,
            amount_cents=amount_cents,
            reference=reference,
            reason=reason,
            allocated_by=by,
            available_cents=available if budget.has_allocation.get(title) else None,
            # Only where money left the title: a shift needed the limit, so it is on file then.
            limit_rate=(
                books.ledger.rates.dated("deckungsfaehigkeit_limit", year)
                if budget.shifted_in_cents[title] < 0
                else None
            ),
        )
        books.ledger.save(budget)
        return budget

    return _retrying(books, attempt)


def shift(books: Books, *, year: int, from_title: str, to_title: str, amount_cents: int, reason: str, by: str) -> Budget:
    def attempt() -> Budget:
        budget = _budget(books, year)
        check_title(from_title, "from")
        st = budget_status(books.ledger, books.split_view, year, budget)
        available = st.title(from_title).available_cents
        budget.shift(
            from_title=from_title,
            to_title=to_title,
            amount_cents=amount_cents,
            limit_rate=books.ledger.rates.dated("deckungsfaehigkeit_limit", year),
            available_cents=available or 0,
            reason=reason,
            shifted_by=by,
        )
        books.ledger.save(budget)
        return budget

    return _retrying(books, attempt)


def plan(books: Books, *, year: int, instrument: str, amount_cents: int, reason: str, by: str) -> Budget:
    if instrument not in books.ledger.catalogue:
        raise ValidationError(f"unknown category {instrument!r}; see `koa categories`", "instrument")

    def attempt() -> Budget:
        budget = _budget(books, year)
        budget.plan(instrument=instrument, amount_cents=amount_cents, reason=reason, planned_by=by)
        books.ledger.save(budget)
        return budget

    return _retrying(books, attempt)


def _egt_available(books: Books, budget: Budget) -> int | None:
    """What the year's Eingliederungsbudget has available; None where nothing is allocated yet."""
    if budget.funds_cents("egt") is None:
        return None
    return budget_status(books.ledger, books.split_view, budget.year, budget).title("egt").available_cents


def make_commitment(
    books: Books,
    *,
    contract_ref: str,
    instrument: str,
    provider: str,
    slices_cents: dict[int, int],
    reason: str,
    by: str,
) -> tuple[Commitment, bool]:
    """Bind budget for a contract; the same contract with the same terms again is a repeat (False)."""
    known = {c.code for c in books.ledger.catalogue if c.code.startswith("egt.")}

    def attempt() -> tuple[Commitment, bool]:
        commitment = Commitment.make(
            contract_ref=contract_ref,
            instrument=instrument,
            provider=provider,
            slices_cents=slices_cents,
            reason=reason,
            made_by=by,
            known_instruments=known,
        )
        existing = books.ledger._commitment(contract_ref)
        if existing is not None:
            same = (existing.instrument, existing.provider) == (commitment.instrument, commitment.provider)
            if not same or _made_slices(books, existing) != commitment.slice_cents:
                raise KeyConflict(f"contract {contract_ref} is already committed with other terms", "contract_ref")
            return existing, False
        budgets = []
        for year, cents in sorted(slices_cents.items()):
            budget = _budget(books, year)
            budget.bind(
                contract_ref=contract_ref,
                instrument=instrument,
                delta_cents=cents,
                available_cents=_egt_available(books, budget),
            )
            budgets.append(budget)
        books.ledger.save(commitment, *budgets)
        return commitment, True

    return _retrying(books, attempt)


def _made_slices(books: Books, commitment: Commitment) -> dict[str, int]:
    made = next(iter(books.ledger.events.get(commitment.id, lte=1)))
    return dict(made.slices_cents)


def change_commitment(
    books: Books, *, contract_ref: str, year: int, amount_cents: int, increase: bool, reason: str, by: str
) -> Commitment:
    """Increase (binds more of the year's budget) or reduce a year's slice."""

    def attempt() -> Commitment:
        commitment = books.ledger.get_commitment(contract_ref)
        budget = _budget(books, year)
        if increase:
            commitment.increase(year=year, amount_cents=amount_cents, reason=reason, changed_by=by)
            budget.bind(
                contract_ref=contract_ref,
                instrument=commitment.instrument,
                delta_cents=amount_cents,
                available_cents=_egt_available(books, budget),
            )
        else:
            commitment.reduce(year=year, amount_cents=amount_cents, reason=reason, changed_by=by)
            budget.bind(
                contract_ref=contract_ref, instrument=commitment.instrument, delta_cents=-amount_cents,
                available_cents=None,
            )
        books.ledger.save(commitment, budget)
        return commitment

    return _retrying(books, attempt)


def release_commitment(books: Books, *, contract_ref: str, year: int, reason: str, by: str) -> tuple[Commitment, int]:
    """Release what remains of a year's slice; returns the commitment and the amount released."""

    def attempt() -> tuple[Commitment, int]:
        commitment = books.ledger.get_commitment(contract_ref)
        amount = commitment.release(year=year, reason=reason, released_by=by)
        changed: list = [commitment]
        if amount:
            budget = _budget(books, year)
            budget.bind(
                contract_ref=contract_ref, instrument=commitment.instrument, delta_cents=-amount, available_cents=None
            )
            changed.append(budget)
        books.ledger.save(*changed)
        return commitment, amount

    return _retrying(books, attempt)
