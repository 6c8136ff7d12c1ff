"""What the endpoints share, built once per server in the app's lifespan: the Books (one composition
root, ledger.bootstrap.open_books), the split view kept up to date, the idempotency store.

Thread safety: endpoints are plain functions run in the server's thread pool (POST /bookings hands
its booking to one writer thread, api/booking_writer.py). The Ledger holds no per-request state
(repository reads and saves go through the recorder's connection pool; SQLite and PostgreSQL pools
hand each thread its own connection), and the split view's catch-up is exactly
once even across processes; here it is additionally serialised per process, so concurrent readers
wait for one catch-up instead of racing each other for the same pages.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.booking_writer import BookingWriter
from api.idempotency import IdempotencyStore
from api.settings import ApiSettings
from ledger.bootstrap import Books
from projections.split_projection import catch_up, snapshot_holding
from projections.split_view import SplitViewQueries

log = logging.getLogger("koa.api")
FOLLOW_INTERVAL_SECONDS = 1.0  # also picks up what the CLI or another server wrote
FOLLOW_GATHER_SECONDS = 0.1


class ViewKeeper:
    """Brings the split view up to date: at once when a write pokes it, else every second; and
    synchronously before a read that needs it (as the CLI does), so a client reads its own writes."""

    def __init__(self, books: Books) -> None:
        self.books = books
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fresh(self) -> SplitViewQueries:
        """The view, including at least every event committed before this call."""
        ledger = self.books.ledger
        # Up to the position seen now: under a steady stream of writes an open-ended catch-up would
        # keep finding new pages and hold the lock (and every reader) for as long as the stream lasts.
        target = ledger.max_notification_id()
        with self._lock:
            catch_up(ledger, self.books.split_view, until=target)
        return self.books.split_view

    def snapshot(self) -> AbstractContextManager[SplitViewQueries]:
        """One state of the view for a read, holding at least every event committed before this
        call: caught up as by fresh(); a rebuild that empties the view meanwhile is waited for
        (snapshot_holding), or the read answers 503."""
        target = self.books.ledger.max_notification_id()
        return snapshot_holding(self.books.ledger, self.fresh(), target)

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="koa-view-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FOLLOW_INTERVAL_SECONDS)
            # Writes that follow within the gathering time share one catch-up: under load a poke
            # comes with every joint save, and each catch-up has its fixed cost (reads, a commit,
            # a race with the other server processes). Readers catch up themselves (fresh()).
            self._stop.wait(FOLLOW_GATHER_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.fresh()
            except Exception:  # noqa: BLE001 - the next round or the next read tries again
                log.exception("split view catch-up failed")


@dataclass
class Services:
    books: Books
    view: ViewKeeper
    idempotency: IdempotencyStore
    settings: ApiSettings
    booking_writer: BookingWriter  # POST /bookings (api/booking_writer.py)


async def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]
