"""The federal/municipal split per fiscal year and quarter, from the split view (as `koa split`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.auth import Reader
from api.problems import problem_responses
from api.routing import resource_router
from api.schemas.settlement import SplitRead
from api.services import Svc
from projections.split_queries import split_lines

router = resource_router("/split", "split")


@router.get(
    "",
    response_model=SplitRead,
    summary="Federal and municipal shares per quarter and category",
    responses=problem_responses(409),
)
def get_split(
    _: Reader,
    svc: Svc,
    year: Annotated[int, Query(ge=2005, le=2100, description="fiscal year")],
    quarter: Annotated[int | None, Query(ge=1, le=4, description="one quarter only")] = None,
) -> SplitRead:
    ledger, land = svc.books.ledger, svc.books.settings.land
    with svc.view.snapshot() as view:  # with the budget's cap, a quarter reads the ones before
        lines = split_lines(view, ledger.catalogue, ledger.rates, land, year, quarter)
        return SplitRead.of(year, quarter, land, lines, view.position)
