"""JSON request bodies read without float: numbers arrive as Decimal, so 0.1 stays 0.1 and an
amount with three decimals is seen as such. NaN and Infinity (which Python's json accepts) and
bodies that are not UTF-8 or nested too deeply are refused as invalid JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from api.presolve import may_presolve, presolver_of


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        # Reported like any other malformed JSON (422), not as an unreadable body (400).
        raise json.JSONDecodeError(f"not UTF-8 (byte {e.start})", "", e.start) from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except RecursionError:
        # Arrays or objects nested past the interpreter's recursion limit: malformed for us (422).
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


M = TypeVar("M", bound=BaseModel)
NOT_PLAIN = object()  # a body a presolver leaves to the declared path


async def plain_json(request: Request) -> Any:
    """For a presolver (api.presolve): the body as the declared path parses it before it solves any
    dependency (declared as application/json, parsed by `loads`); NOT_PLAIN otherwise, and where
    parsing fails (the declared path reports that before anything else)."""
    if request.headers.get("content-type") != "application/json":
        return NOT_PLAIN
    try:
        return await request.json()
    except ValueError:  # JSONDecodeError, and an integer beyond Python's 4,300 digits
        return NOT_PLAIN  # the body stays read: the declared path reports the error from it


def valid_as(model: type[M], value: Any) -> M | None:
    """`value` as `model`, validated as FastAPI validates a body parameter (ModelField.validate);
    None where that fails (the declared path reports it)."""
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError:
        return None


class DecimalJSONRoute(APIRoute):
    """Routes of this class hand their endpoint a body parsed by `loads`; a presolved endpoint
    (api.presolve) is called with its presolver's arguments where it gives them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        endpoint, presolver = self.endpoint, presolver_of(self.endpoint)

        async def decimal_handler(request: Request) -> Response:
            request = DecimalJSONRequest(request.scope, request.receive)
            if presolver is not None and may_presolve(request):
                arguments = await presolver(request)
                if arguments is not None:
                    response = await endpoint(**arguments)
                    assert isinstance(response, Response), "a presolved endpoint answers with a Response"
                    return response
            return await handler(request)  # the body read above is kept by the request

        return decimal_handler
