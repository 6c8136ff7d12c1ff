"""JSON request bodies read without float: numbers arrive as Decimal, so 0.1 stays 0.1 and an
amount with three decimals is seen as such. NaN and Infinity (which Python's json accepts) and
bodies that are not UTF-8 are refused as invalid JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        # Reported like any other malformed JSON (422), not as an unreadable body (400).
        raise json.JSONDecodeError(f"not UTF-8 (byte {e.start})", "", e.start) from None
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class DecimalJSONRoute(APIRoute):
    """Routes of this class hand their endpoint a body parsed by `loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler
