"""How every resource router is made, so a new resource (budgets, commitments) behaves like the rest:
JSON numbers read as Decimal, problem responses documented, unknown query parameters refused."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.json_body import DecimalJSONRoute
from api.problems import problem_responses
from api.strict_query import known_query_only


def resource_router(prefix: str, tag: str) -> APIRouter:
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        route_class=DecimalJSONRoute,
        responses=problem_responses(),
        dependencies=[Depends(known_query_only)],
    )
