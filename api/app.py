"""The FastAPI application: create_app(settings) builds it over the same store as the CLI.

Authentication is set up (and refused if insecure) when the app is built, before any request; the
store is opened once in the lifespan and shared by all requests (api.services).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import problems
from api.auth import Authenticator
from api.body_limit import BodyLimit
from api.booking_writer import BookingWriter
from api.idempotency import IdempotencyStore
from api.problems import MEDIA_TYPE
from api.routers import (
    allocations,
    audit,
    bookings,
    budgets,
    commitments,
    funds_draws,
    funds_repayments,
    health,
    parameters,
    payment_runs,
    periods,
    retention,
    settlement,
    split,
)
from api.services import Services, ViewKeeper
from api.settings import ApiSettings
from ledger.bootstrap import open_books
from ledger.settings import Settings

DESCRIPTION = """
Bookings, payment runs, parameters, funds drawn, closed periods, the federal/municipal split, the
KoA-VV workbook and the retention register of koa-ledger, for finance staff and auditors.

* **Authentication**: `Authorization: Bearer <token>` on every endpoint but `/health`: an OpenID
  Connect access token or a static token of the server's token file. Roles: `clerk` records,
  `approver` approves (never their own bookings), `auditor` reads everything and draws IKS samples,
  `admin` sets parameters and closes periods.
* **Retries**: every POST takes an `Idempotency-Key` header; the same key and body return the first
  response again, the same key with another body is refused (409).
* **Errors**: problem details (RFC 9457, `application/problem+json`); 422 lists each invalid field.
* **Amounts**: strings of euros (`"1234.56"`, `"1.234,56"`) or JSON numbers with at most two decimals;
  responses give them as strings with two decimals and as integer cents.
"""


GC_YOUNG_THRESHOLD = 10_000


def create_app(settings: Settings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    api_settings = api_settings or ApiSettings()
    authenticator = Authenticator(api_settings)  # raises AuthConfigError before anything is served

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with open_books(settings) as books:
            store = IdempotencyStore(books, ttl_hours=api_settings.idempotency_hours)
            store.purge()
            keeper = ViewKeeper(books)
            keeper.fresh()
            keeper.start()
            writer = BookingWriter(books.ledger, store, on_saved=keeper.poke)
            writer.start()
            app.state.services = Services(books, keeper, store, api_settings, writer)
            # What is alive now (modules, schemas, catalogue, pools: ~100,000 objects) lives as
            # long as the server: out of the collector's sight, a full collection under load took
            # 2-11 ms instead of 60-100 ms, every few seconds, during which the process stood still.
            gc.freeze()
            # A request leaves a few hundred container objects alive for a moment, so the default
            # threshold (700 more allocations than frees) started a young collection every ~15
            # requests: ~1,600 a process in a 20 s load, with the older generations they drag
            # along ~1.9 % of its time, pauses up to 8 ms. At 10,000 almost none start under the
            # same load (measured with gc.callbacks); garbage in cycles is still collected.
            thresholds = gc.get_threshold()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
            try:
                yield
            finally:
                gc.set_threshold(*thresholds)
                gc.unfreeze()  # an app in a longer-lived process (tests): its objects can go again
                await anyio.to_thread.run_sync(writer.stop)  # it answers what is queued first
                keeper.stop()

    app = FastAPI(
        title="koa-ledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if api_settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.authenticator = authenticator
    problems.install(app)
    for module in (
        health,
        bookings,
        payment_runs,
        parameters,
        funds_draws,
        funds_repayments,
        periods,
        split,
        settlement,
        audit,
        budgets,
        commitments,
        allocations,
        retention,
    ):
        app.include_router(module.router)
    app.add_middleware(
        BodyLimit,
        default_bytes=api_settings.body_bytes_max,
        upload_bytes=api_settings.upload_bytes_max,
        upload_paths=(payment_runs.router.prefix,),
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with problem responses documented as problem+json only."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if MEDIA_TYPE in content and not str(status).startswith("2"):
                    content.pop("application/json", None)
    app.openapi_schema = schema
    return schema
