"""Measure commitments (Mittelbindung), as `koa commitment make/increase/reduce/release/show`:
recorded by a clerk, read by every role.

Making one binds the year's Eingliederungsbudget (refused beyond what is available, 409 naming it);
the same contract with the same terms again is a repeat (200), with other terms 409. Payments
booked with the contract reference draw it down (POST /bookings).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Response

from api.auth import Clerk, Reader
from api.idempotency import Idem, Outcome
from api.problems import documented, field_error, invalid
from api.routers.budgets import exceeded_as_conflict
from api.routing import resource_router
from api.schemas.budgets import (
    CommitmentChange,
    CommitmentCreate,
    CommitmentDetail,
    CommitmentEvent,
    CommitmentPosted,
    CommitmentRead,
    CommitmentRelease,
    CommitmentReleased,
    cents,
)
from api.services import Svc
from domain.errors import ValidationError
from ledger import budget_commands

router = resource_router("/commitments", "commitments")

ContractRef = Annotated[str, Path(description="the contract reference (URL-encoded; '/' may stay)")]
YEAR_KEY_RE = re.compile(r"^[0-9]{4}$")
UNKNOWN = "no commitment for this contract"


def _location(ref: str) -> dict[str, str]:
    return {"Location": f"/commitments/{quote(ref, safe='/')}"}


def _slices_cents(body: CommitmentCreate) -> dict[int, int]:
    """Both forms of `slices` as {year: cents}; every bad year or amount named at once."""
    if isinstance(body.slices, dict):  # {"2026": amount}: the key names both
        items = [(k, v, f"slices.{k[:8]}", f"slices.{k[:8]}") for k, v in body.slices.items()]
    else:
        items = [
            (str(s.year), s.amount, f"slices[{i}].year", f"slices[{i}].amount")
            for i, s in enumerate(body.slices)
        ]
    out: dict[int, int] = {}
    errors: list[dict] = []
    for year_text, amount, year_field, amount_field in items:
        if not YEAR_KEY_RE.fullmatch(year_text) or not 2005 <= int(year_text) <= 2100:
            errors.append(field_error(year_field, "not a fiscal year between 2005 and 2100", "body"))
        elif int(year_text) in out:
            errors.append(field_error(year_field, f"{year_text} is given twice", "body"))
        else:
            try:
                out[int(year_text)] = cents(amount, amount_field)
            except ValidationError as e:
                errors.append(field_error(e.field, e.reason, "body"))
    if errors:
        raise invalid(errors)
    return out


def _events(svc: Svc, commitment) -> list[CommitmentEvent]:
    out = []
    for e in svc.books.ledger.events.get(commitment.id):
        d = e.__dict__
        amount = d.get("amount_cents")
        out.append(
            CommitmentEvent(
                at=e.timestamp,
                version=e.originator_version,
                type=type(e).__name__,
                by=d.get("made_by") or d.get("changed_by") or d.get("released_by"),
                year=d.get("year"),
                amount=amount,
                amount_cents=amount,
                reason=d.get("reason"),
                booking_key=d.get("booking_key"),
                reversal_key=d.get("reversal_key"),
            )
        )
    return out


@router.post(
    "",
    status_code=201,
    response_model=CommitmentPosted,
    summary="Bind budget for a provider contract, sliced by fiscal year",
    responses={
        200: {"model": CommitmentPosted, "description": "the contract was already committed, same terms"}
    }
    | documented(
        {
            409: "more than the year's Eingliederungsbudget has available; the contract is committed with other terms"
        }
    ),
)
def make(body: CommitmentCreate, caller: Clerk, idem: Idem, svc: Svc) -> Response:
    def action() -> Outcome:
        slices = _slices_cents(body)
        with exceeded_as_conflict():
            commitment, created = budget_commands.make_commitment(
                svc.books,
                contract_ref=body.contract_ref,
                instrument=body.instrument,
                provider=body.provider,
                slices_cents=slices,
                reason=body.reason,
                by=caller.user,
            )
        svc.view.poke()
        posted = CommitmentPosted(created=created, commitment=CommitmentRead.of(commitment))
        return (201 if created else 200), posted, _location(commitment.contract_ref)

    return idem.run(body, action)


@router.get(
    "/{contract_ref:path}",
    response_model=CommitmentDetail,
    summary="A commitment: slices with drawn, released and remaining per year, and every event",
    responses=documented({404: UNKNOWN}),
)
def show(contract_ref: ContractRef, _: Reader, svc: Svc) -> CommitmentDetail:
    c = svc.books.ledger.get_commitment(contract_ref)
    return CommitmentDetail.of(c, events=_events(svc, c))


def _change(svc: Svc, ref: str, body: CommitmentChange, caller, *, increase: bool) -> Outcome:
    amount = cents(body.amount, "amount")
    with exceeded_as_conflict():
        c = budget_commands.change_commitment(
            svc.books,
            contract_ref=ref,
            year=body.year,
            amount_cents=amount,
            increase=increase,
            reason=body.reason,
            by=caller.user,
        )
    svc.view.poke()
    return 200, CommitmentRead.of(c), {}


@router.post(
    "/{contract_ref:path}/increase",
    response_model=CommitmentRead,
    summary="Increase a year's slice (binds more of the year's budget)",
    responses=documented({404: UNKNOWN, 409: "more than the year's Eingliederungsbudget has available"}),
)
def increase(
    contract_ref: ContractRef, body: CommitmentChange, caller: Clerk, idem: Idem, svc: Svc
) -> Response:
    return idem.run(body, lambda: _change(svc, contract_ref, body, caller, increase=True))


@router.post(
    "/{contract_ref:path}/reduce",
    response_model=CommitmentRead,
    summary="Reduce a year's slice (by at most what remains of it)",
    responses=documented({404: UNKNOWN, 409: "more than remains of the year's slice"}),
)
def reduce(
    contract_ref: ContractRef, body: CommitmentChange, caller: Clerk, idem: Idem, svc: Svc
) -> Response:
    return idem.run(body, lambda: _change(svc, contract_ref, body, caller, increase=False))


@router.post(
    "/{contract_ref:path}/release",
    response_model=CommitmentReleased,
    summary="Release what remains of a year's slice (the measure is done)",
    responses=documented({404: UNKNOWN, 409: "a concurrent change"}),
)
def release(
    contract_ref: ContractRef, body: CommitmentRelease, caller: Clerk, idem: Idem, svc: Svc
) -> Response:
    def action() -> Outcome:
        c, amount = budget_commands.release_commitment(
            svc.books, contract_ref=contract_ref, year=body.year, reason=body.reason, by=caller.user
        )
        svc.view.poke()
        released = CommitmentReleased(
            year=body.year, released=amount, released_cents=amount, commitment=CommitmentRead.of(c)
        )
        return 200, released, {}

    return idem.run(body, action)
