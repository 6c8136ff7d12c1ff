"""A hot endpoint's declared dependencies, resolved by a short function of its own when a request
passes them all.

FastAPI 0.165 spends about 0.3 ms of the event loop's time per request walking the dependency tree
of POST /bookings (cache keys, scopes, generator checks; py-spy under the 50-client load: 60 % of
the loop's busy time, against ~5 % in the dependencies' own code). A presolver calls the same
dependency functions directly, in the declared order, and returns the endpoint's arguments. It
answers only the plain case: wherever the declared path would collect a validation error (a query
parameter, a malformed header, a body that is not a valid JSON object of the schema) or the app
overrides a dependency, it returns None and the request takes the declared path, which gives the
canonical answer. The declaration stays the contract (OpenAPI, error answers);
tests/test_presolve.py checks, for generated requests, that a presolver gives what FastAPI's own
resolution gives or raises what it raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request

Presolver = Callable[[Request], Awaitable[dict[str, Any] | None]]
F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__koa_presolver__"


def presolved(presolver: Presolver) -> Callable[[F], F]:
    """Marks an endpoint (put it below the route decorator, which reads the mark)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, presolver)
        return endpoint

    return mark


def presolver_of(endpoint: Callable[..., Any]) -> Presolver | None:
    return getattr(endpoint, _ATTRIBUTE, None)


def may_presolve(request: Request) -> bool:
    """Not while the app overrides dependencies (tests may): only the declared path sees those."""
    return not getattr(request.app, "dependency_overrides", None)
