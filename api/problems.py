"""Errors as problem details (RFC 9457, application/problem+json), one mapping for the whole API.

422: the input is malformed (each bad field with its reason); 409: the input is fine but the books'
state refuses it (key used, period closed, already approved, a concurrent change); 403: a role or the
four-eyes rule; 404: an unknown booking. Bad input never ends as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.cost_allocation import CostsBookedDirectly
from domain.errors import DomainError, FourEyesViolation, KeyConflict, NotFound, ValidationError
from domain.periods import PeriodClosed
from ledger.commands import InputError
from projections.split_view import ViewBehind

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:koa-ledger:problem:"
log = logging.getLogger("koa.api")


class FieldProblem(BaseModel):
    field: str = Field(description="the input at fault: a body field, a parameter, or a CSV column")
    reason: str
    location: str | None = Field(None, description="body, query, path, header or file")
    line: int | None = Field(None, description="line of the uploaded file, for payment runs")


class Problem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:koa-ledger:problem:validation",
                    "title": "Invalid input",
                    "status": 422,
                    "detail": "amount: more than two decimals: '12.345'",
                    "errors": [{"field": "amount", "reason": "more than two decimals: '12.345'"}],
                }
            ]
        }
    )

    type: str = Field(description="a URN naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class ApiProblem(Exception):
    """Raised by the API's own code for a problem response."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.errors, self.headers = errors, headers or {}


def state_conflict(kind: str, title: str, e: DomainError) -> ApiProblem:
    """409 with a type of its own for a refusal by the books' state, naming the body field at fault."""
    return ApiProblem(409, kind, title, e.reason, errors=[field_error(e.field, e.reason, "body")])


def problem(
    status: int, kind: str, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def field_error(field: str | None, reason: str, location: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field or "request", "reason": reason}
    if location:
        out["location"] = location
    return out | extra


def invalid(errors: list[dict[str, Any]]) -> ApiProblem:
    """422 listing every bad field; the detail names the first 20."""
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:20])
    more = f" … and {len(errors) - 20} more" if len(errors) > 20 else ""
    return ApiProblem(422, "validation", "Invalid input", detail + more, errors=errors)


def invalid_field(field: str, reason: str, location: str = "query") -> ApiProblem:
    """422 for one bad field."""
    return invalid([field_error(field, reason, location)])


def parsed_fields(parsers: dict[str, tuple[Callable[[str], Any], str]], location: str) -> dict[str, Any]:
    """{field: parser(text)} for {field: (parser, text)}, or one 422 naming every field whose parser
    raised ValueError (the CLI's parsers: dates, amounts)."""
    out: dict[str, Any] = {}
    errors = []
    for name, (parse, text) in parsers.items():
        try:
            out[name] = parse(text)
        except ValueError as e:
            errors.append(field_error(name, str(e), location))
    if errors:
        raise invalid(errors)
    return out


# Deterministic refusals: the same request against the same books gets the same answer, so an
# idempotency key may replay it. Transient ones (a concurrent change, an unreachable store) may not.
def problem_for(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str], bool]:
    """(status, body, headers, replayable) for an exception."""
    if isinstance(exc, ApiProblem):
        body = problem(exc.status, exc.kind, exc.title, exc.detail, exc.errors)
        return exc.status, body, exc.headers, exc.status < 500 and exc.status != 401
    if isinstance(exc, InputError):
        errors = [field_error(e.field, e.reason, "body") for e in exc.errors]
        return 422, problem(422, "validation", "Invalid input", str(exc), errors), {}, True
    if isinstance(exc, ValidationError):
        errors = [field_error(exc.field, exc.reason)]
        return 422, problem(422, "validation", "Invalid input", str(exc), errors), {}, True
    if isinstance(exc, FourEyesViolation):
        return 403, problem(403, "four-eyes", "Four eyes required", exc.reason), {}, True
    if isinstance(exc, NotFound):  # an unknown booking, commitment or allocation run
        return 404, problem(404, "not-found", "Not found", exc.reason), {}, True
    if isinstance(exc, KeyConflict):
        return 409, problem(409, "key-conflict", "Key already used", exc.reason), {}, True
    if isinstance(exc, PeriodClosed):
        return 409, problem(409, "period-closed", "Period closed", exc.reason), {}, True
    if isinstance(exc, CostsBookedDirectly):  # a booking by hand beside a cost allocation run
        errors = [field_error(exc.field, exc.reason, "body")]
        title = "Booked by a cost allocation run"
        return 409, problem(409, "costs-booked-directly", title, exc.reason, errors), {}, True
    if isinstance(exc, DomainError):
        return 409, problem(409, "conflict", "Refused by the books' state", exc.reason), {}, True
    if isinstance(exc, IntegrityError):
        detail = "the books changed under a concurrent request; send the request again"
        return (
            409,
            problem(409, "concurrent-change", "Concurrent change", detail),
            {"Retry-After": "1"},
            False,
        )
    if isinstance(exc, ViewBehind):
        return (
            503,
            problem(503, "view-rebuilding", "Split view rebuilding", str(exc)),
            {"Retry-After": "5"},
            False,
        )
    if isinstance(exc, PersistenceError):
        log.warning("store error: %s", exc)
        detail = "the store could not be reached or refused; try again later"
        return 503, problem(503, "unavailable", "Store unavailable", detail), {"Retry-After": "5"}, False
    log.exception("unexpected error", exc_info=exc)
    return (
        500,
        problem(500, "internal", "Internal error", "an unexpected error; it has been logged"),
        {},
        False,
    )


def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        where = loc[0] if loc else None
        field = ".".join(loc[1:]) if len(loc) > 1 else (where or "request")
        if e.get("type") == "json_invalid":
            field = "body"
        reason = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append(field_error(field, reason, where))
    return errors


def install(app: FastAPI) -> None:
    """Every error leaves as problem+json."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return respond(422, problem(422, "validation", "Invalid input", detail, errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. broken multipart): invalid input
            reason = str(exc.detail)
            return respond(
                422,
                problem(
                    422,
                    "validation",
                    "Invalid input",
                    f"body: {reason}",
                    [field_error("body", reason, "body")],
                ),
            )
        kinds = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Request refused")
        body = problem(exc.status_code, kinds.get(exc.status_code, "http"), title, str(exc.detail))
        return respond(exc.status_code, body, dict(exc.headers or {}))

    async def _mapped(_: Request, exc: Exception) -> JSONResponse:
        status, body, headers, _replayable = problem_for(exc)
        return respond(status, body, headers)

    # The known kinds are answered by the exception middleware; Exception (anything else) by the
    # server-error middleware, which answers 500 and still lets the server log the traceback.
    for kind in (ApiProblem, InputError, DomainError, PersistenceError, Exception):
        app.add_exception_handler(kind, _mapped)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems an operation may answer with; every secured one may answer
    401, 403, 413, 422 and 503."""
    described = {
        401: "no or an invalid Bearer token",
        403: "the caller's role does not allow this (or the four-eyes rule)",
        404: "unknown booking",
        409: "refused by the books' state: key used, period closed, already approved, a cost type booked "
        "by a cost allocation run in force, concurrent change",
        413: "body or upload too large",
        422: "invalid input: each field with its reason",
        503: "the store or the identity provider is unreachable",
    }
    return {
        s: {
            "description": described[s],
            "model": Problem,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in sorted({401, 403, 413, 422, 503, *statuses})
    }


def documented(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """problem_responses for these statuses, each described in the operation's own words."""
    out = problem_responses(*statuses)
    for status, text in statuses.items():
        out[status] = out[status] | {"description": text}
    return out
