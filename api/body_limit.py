"""Request bodies have a size limit: uploads (payment runs) a large one, everything else a small one.

A declared Content-Length above the limit is refused before anything is read; a body streamed
without one is counted and refused once it passes the limit. Either way the answer is a 413 problem.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem, respond


class BodyLimit:
    def __init__(
        self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, upload_paths: tuple[str, ...]
    ) -> None:
        self.app = app
        self.default_bytes, self.upload_bytes, self.upload_paths = default_bytes, upload_bytes, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.default_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException passes FastAPI's body parsing unchanged to the problem handler.
                    raise HTTPException(413, _detail(limit))
            return message

        await self.app(scope, counting_receive, send)


def _detail(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


def _too_large(limit: int):
    return respond(413, problem(413, "too-large", "Request too large", _detail(limit)))
