"""Budgets per fiscal year, as `koa budget allocate/shift/plan/status`: allocations, shifts between the
titles and the plan per instrument are an admin's; the status is read by every role.

The same service layer as the CLI (ledger.budget_commands); its guards refuse beyond what is
available, answered 409 with the domain's reason (which names the amount available).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Path, Response

from api.auth import Admin, Reader
from api.idempotency import Idem, Outcome
from api.problems import documented, state_conflict
from api.routing import resource_router
from api.schemas.budgets import (
    BudgetAllocation,
    BudgetPlan,
    BudgetRead,
    BudgetShift,
    BudgetStatusRead,
    CommitmentInYear,
    StatusLineRead,
    cents,
)
from api.services import Svc
from domain.budget import BudgetExceeded
from domain.commitment import CommitmentExceeded
from ledger import budget_commands
from projections.budget_status import budget_status

router = resource_router("/budgets", "budgets")

Year = Annotated[int, Path(ge=2005, le=2100, description="fiscal year")]


@contextmanager
def exceeded_as_conflict() -> Iterator[None]:
    """BudgetExceeded / CommitmentExceeded: 409 with a type of their own and the domain's reason."""
    try:
        yield
    except BudgetExceeded as e:
        raise state_conflict("budget-exceeded", "Budget exceeded", e) from None
    except CommitmentExceeded as e:
        raise state_conflict("commitment-exceeded", "Commitment exceeded", e) from None


def _location(year: int) -> dict[str, str]:
    return {"Location": f"/budgets/{year}/status"}


@router.post(
    "/{year}/allocations",
    status_code=201,
    response_model=BudgetRead,
    summary="Record the Bund's allocation of a title for a year (a later one replaces the figure)",
    responses=documented({409: "lowering the allocation below what is bound and spent; a concurrent change"}),
)
def allocate(year: Year, body: BudgetAllocation, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        amount = cents(body.amount, "amount")
        with exceeded_as_conflict():
            budget = budget_commands.allocate(
                svc.books,
                year=year,
                title=body.title,
                amount_cents=amount,
                reference=body.reference,
                reason=body.reason,
                by=caller.user,
            )
        svc.view.poke()  # the split caps Eingliederung spending at the budget
        return 201, BudgetRead.of(budget), _location(year)

    return idem.run(body, action)


@router.post(
    "/{year}/shifts",
    status_code=201,
    response_model=BudgetRead,
    summary="Shift money between the titles (Deckungsfähigkeit, up to the limit parameter)",
    responses=documented({409: "beyond the Deckungsfähigkeit limit or what the giving title has available"}),
)
def shift(year: Year, body: BudgetShift, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        amount = cents(body.amount, "amount")
        with exceeded_as_conflict():
            budget = budget_commands.shift(
                svc.books,
                year=year,
                from_title=body.from_title,
                to_title=body.to_title,
                amount_cents=amount,
                reason=body.reason,
                by=caller.user,
            )
        svc.view.poke()
        return 201, BudgetRead.of(budget), _location(year)

    return idem.run(body, action)


@router.post(
    "/{year}/plans",
    status_code=201,
    response_model=BudgetRead,
    summary="Set the planned amount of an Eingliederung instrument (a later plan replaces it)",
    responses=documented({409: "a concurrent change"}),
)
def plan(year: Year, body: BudgetPlan, caller: Admin, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        budget = budget_commands.plan(
            svc.books,
            year=year,
            instrument=body.instrument,
            amount_cents=cents(body.amount, "amount"),
            reason=body.reason,
            by=caller.user,
        )
        return 201, BudgetRead.of(budget), _location(year)

    return idem.run(body, action)


@router.get(
    "/{year}/status",
    response_model=BudgetStatusRead,
    summary="Planned, allocated, shifted, committed, spent and available per title and instrument",
)
def status(year: Year, _: Reader, svc: Svc) -> BudgetStatusRead:
    ledger = svc.books.ledger
    st = budget_status(ledger, svc.view.fresh(), year)
    commitments = [
        CommitmentInYear(
            contract_ref=c.contract_ref,
            instrument=c.instrument,
            provider=c.provider,
            remaining=c.remaining_cents(year),
            remaining_cents=c.remaining_cents(year),
        )
        for c in st.commitments
    ]
    return BudgetStatusRead(
        year=year, lines=[StatusLineRead.of(s) for s in st.lines], commitments=commitments
    )
