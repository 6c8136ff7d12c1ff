"""POST /bookings resolves its dependencies with a presolver of its own (api/presolve.py). Whatever
a request holds, the answer must be the one the declared dependencies give: two servers over two
stores get the same requests in the same order, one presolving, one forced onto the declared path
(an app with dependency overrides never presolves), and must answer alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.app import create_app
from api.json_body import DecimalJSONRequest
from api.presolve import presolver_of
from api.problems import ApiProblem
from api.routers import bookings as bookings_router
from api.routers.bookings import create_booking
from api.schemas.bookings import BookingCreate
from api.settings import ApiSettings
from ledger.settings import Settings
from tests.api_fixtures import booking_body, token_of, write_token_file


def _unused_dependency() -> None:  # overriding it changes nothing but the path taken
    return None


@pytest.fixture
def twin_clients(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    tokens = write_token_file(tmp_path / "tokens.toml")
    api = ApiSettings(env="production", tokens_file=tokens, _env_file=None)

    def app(name: str) -> FastAPI:
        return create_app(Settings(data_dir=tmp_path / name, user="tester", _env_file=None), api)

    declared = app("declared")
    declared.dependency_overrides[_unused_dependency] = _unused_dependency
    with TestClient(app("presolved")) as fast, TestClient(declared) as slow:
        yield fast, slow


AUTHORIZATIONS = st.sampled_from(
    [
        None,
        f"Bearer {token_of('clerk')}",
        f"bearer {token_of('clerk')}",
        f"Bearer {token_of('approver')}",  # no clerk: 403
        f"Bearer {token_of('clerk')}x",  # unknown: 401
        "Bearer ",
        f"Basic {token_of('clerk')}",
    ]
)
IDEMPOTENCY_KEYS = st.sampled_from([None, "K-1", "K-2", "", "ä", "a b", "x" * 255, "x" * 256])
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/plain", "application/json; charset=utf-8"])
QUERIES = st.sampled_from(["", "?x=1", "?"])
KEYS = st.sampled_from(["P-1", "P-2", "P-3", "P" * 81])
CHANGES = st.dictionaries(
    st.sampled_from(["amount", "kind", "category", "payment_date", "service_to", "case_ref", "unknown"]),
    st.sampled_from(["1,00", "-5", "1.001", "abc", "receipt", "sgb3", "31.02.2025", "", 7, 1.5, None]),
    max_size=2,
)
RAW_BODIES = st.sampled_from([b"", b"{", b"[]", b"null", b'{"key": NaN}', b"\xff\xfe", b'"text"'])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(RAW_BODIES)
    body: dict[str, Any] = booking_body(draw(KEYS)) | draw(CHANGES)
    for field in draw(st.lists(st.sampled_from(["text", "document_ref", "cost_centre"]), max_size=1)):
        del body[field]
    return json.dumps(body).encode()


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not k.endswith("_at")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=AUTHORIZATIONS,
    idempotency_key=IDEMPOTENCY_KEYS,
    content_type=CONTENT_TYPES,
    query=QUERIES,
    body=bodies(),
)
def test_a_presolved_booking_is_answered_as_the_declared_dependencies_answer(
    twin_clients: tuple[TestClient, TestClient],
    authorization: str | None,
    idempotency_key: str | None,
    content_type: str | None,
    query: str,
    body: bytes,
) -> None:
    headers = {
        name: value.encode("latin-1")  # as a client may send them (the server decodes latin-1)
        for name, value in [
            ("Authorization", authorization),
            ("Idempotency-Key", idempotency_key),
            ("Content-Type", content_type),
        ]
        if value is not None
    }
    fast, slow = (c.post(f"/bookings{query}", content=body, headers=headers) for c in twin_clients)
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    for name in ("content-type", "location", "www-authenticate"):
        assert fast.headers.get(name) == slow.headers.get(name)
    assert _without_times(fast.json()) == _without_times(slow.json())


def _request(app: FastAPI, *, query: bytes = b"", headers: dict[str, str], body: bytes) -> DecimalJSONRequest:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/bookings",
        "root_path": "",
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": app,
        "scheme": "http",
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return DecimalJSONRequest(scope, receive)


@pytest.mark.anyio
async def test_the_presolver_takes_the_plain_request_and_leaves_the_rest(
    twin_clients: tuple[TestClient, TestClient],
) -> None:
    app = twin_clients[0].app
    presolver = presolver_of(create_booking)
    assert presolver is not None
    plain = {"Authorization": f"Bearer {token_of('clerk')}", "Content-Type": "application/json"}
    body = json.dumps(booking_body("PS-1")).encode()

    arguments = await presolver(_request(app, headers=plain | {"Idempotency-Key": "K-9"}, body=body))
    assert arguments is not None
    assert arguments["body"] == BookingCreate.model_validate(booking_body("PS-1"))
    assert arguments["caller"].user == "mueller"
    assert (arguments["idem"].key, arguments["idem"].owner, arguments["idem"].route) == (
        "K-9",
        "mueller",
        "POST /bookings",
    )
    assert arguments["svc"] is app.state.services

    # What the declared path reports as a validation error goes there.
    assert await presolver(_request(app, query=b"x=1", headers=plain, body=body)) is None
    assert await presolver(_request(app, headers=plain | {"Idempotency-Key": "a b"}, body=body)) is None
    assert await presolver(_request(app, headers=plain, body=b"{")) is None
    assert await presolver(_request(app, headers=plain, body=body.replace(b'"kind"', b'"knd"'))) is None
    # A caller without the role is refused as the declared path refuses it.
    with pytest.raises(ApiProblem) as refused:
        await presolver(
            _request(app, headers=plain | {"Authorization": f"Bearer {token_of('auditor')}"}, body=body)
        )
    assert refused.value.status == 403


def test_the_presolver_covers_every_declared_dependency() -> None:
    """A dependency added to POST /bookings must be added to its presolver too: this names them."""
    (route,) = [
        r for r in bookings_router.router.routes if isinstance(r, APIRoute) and r.endpoint is create_booking
    ]

    def calls(dependant: Dependant) -> Iterator[str]:
        call = dependant.call
        yield getattr(call, "__qualname__", type(call).__qualname__)
        for sub in dependant.dependencies:
            yield from calls(sub)

    assert sorted(calls(route.dependant)) == sorted(
        [
            "create_booking",
            "known_query_only",
            "require.<locals>.dependency",
            "authenticated",
            "HTTPBearer",
            "idempotency",
            "authenticated",
            "HTTPBearer",
            "services",
        ]
    )
    assert [p.name for p in route.dependant.header_params] == []
    assert [p.alias for d in route.dependant.dependencies for p in d.header_params] == ["Idempotency-Key"]
    assert [p.name for p in route.dependant.body_params] == ["body"]
