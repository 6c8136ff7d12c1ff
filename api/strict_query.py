"""Unknown query parameters are refused (422), so a mistyped filter (?yaer=2025) cannot silently
return the unfiltered list."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.problems import ApiProblem, field_error


def _declared(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


async def known_query_only(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared(route.dependant))
    if unknown:
        errors = [field_error(name, "unknown query parameter", "query") for name in unknown]
        raise ApiProblem(
            422,
            "validation",
            "Invalid input",
            f"unknown query parameters: {', '.join(unknown)}",
            errors=errors,
        )
