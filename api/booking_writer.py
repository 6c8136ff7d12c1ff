"""POST /bookings without a thread per request: one writer thread per server process records the
bookings of every request waiting, in one transaction.

With a thread per request (FastAPI's pool for plain `def` endpoints) 50 clients kept ~25 request
threads per process runnable: the server processes used about half a core each and the rest went to
handing the GIL from thread to thread (~50 context switches per booking), and the group commit's
batches were only the threads that happened to wait together. Here the endpoint is a coroutine: it
queues its request and awaits the answer. The writer thread takes everything queued, looks the
Idempotency-Keys up in one query, decides each booking against the kept calendar, saves them all
with their remembered answers in one transaction, and hands each request its answer.

The common case only. A request this does not settle goes its own way, the endpoint's plain path
(`Job.fallback`, the code that ran before), one at a time in the writer thread, so each keeps its own
outcome and error: a key with a stored answer, a booking the rules refuse, an invoice that draws on a
commitment, and every request of a joint save that failed (a key stored meanwhile, a period closed
meanwhile, an Idempotency-Key taken meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError
from fastapi import Response

from api.idempotency import KEYS_PER_QUERY_MAX, Idempotency, IdempotencyStore
from api.problems import ApiProblem
from domain.booking import Booking
from ledger.application import Ledger
from ledger.recorders import SideRow

BATCH_REQUESTS_MAX = 200  # per transaction: bounds the lock time, the message and the key look-up
STOP_WAIT_S_MAX = 60
QUEUED_REQUESTS_MAX = 5_000  # beyond this the server is overloaded: 503, the client retries later
assert BATCH_REQUESTS_MAX <= KEYS_PER_QUERY_MAX

log = logging.getLogger("koa.api")


@dataclass(frozen=True)
class Decided:
    """A request's booking, decided and not yet saved, and what to answer once it is."""

    booking: Booking
    calendar_version: int
    side_rows: tuple[SideRow, ...]
    response: Response


@dataclass(eq=False)
class Job:
    """One request. `decide()` runs in the writer thread: the booking as new (None: take the
    fallback); `fallback()` is the request's own path, run when the batch does not settle it."""

    idem: Idempotency
    decide: Callable[[], Decided | None]
    fallback: Callable[[], Response]
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    future: asyncio.Future[Response] = field(init=False)

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()


class BookingWriter:
    def __init__(
        self,
        ledger: Ledger,
        idempotency: IdempotencyStore,
        *,
        on_saved: Callable[[], None],
        queued_requests_max: int = QUEUED_REQUESTS_MAX,
    ) -> None:
        assert queued_requests_max > 0
        self._ledger = ledger
        self._idempotency = idempotency
        self._on_saved = on_saved  # the split view's poke
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queued_requests_max)
        self._held = threading.Lock()  # see hold()
        self._counted = threading.Lock()  # submitted, _stopped and the queue's end
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.submitted = 0  # requests queued so far (for tests: to know when all have arrived)
        self.largest_batch = 0  # requests in the largest batch so far (for tests and tuning)
        self.saved_jointly = 0  # bookings stored by joint saves (the rest went their own way)

    def start(self) -> None:
        assert self._thread is None and not self._stopped
        self._thread = threading.Thread(target=self._run, name="koa-booking-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Answer what is queued, then end the thread."""
        with self._counted:
            self._stopped = True  # from now on submit() refuses: nothing is queued behind the end
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=STOP_WAIT_S_MAX)
            if self._thread.is_alive():
                log.error("the booking writer did not finish within %d s", STOP_WAIT_S_MAX)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def submit(self, job: Job) -> Response:
        with self._counted:
            if self._stopped or (self._thread is not None and not self._thread.is_alive()):
                raise ApiProblem(
                    503,
                    "unavailable",
                    "Server stopping",
                    "the server is shutting down; retry shortly",
                    headers={"Retry-After": "1"},
                )
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise ApiProblem(
                    503,
                    "overloaded",
                    "Server busy",
                    f"{self._queue.maxsize} bookings are waiting to be stored already; retry shortly",
                    headers={"Retry-After": "1"},
                ) from None
            self.submitted += 1
        return await job.future

    def queued(self) -> int:
        return self._queue.qsize()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the writer from starting its next batch (tests: to have requests meet in one)."""
        with self._held:
            yield

    # ---- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            with self._held:
                batch, stop = [first], False
                while len(batch) < BATCH_REQUESTS_MAX:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                self.largest_batch = max(self.largest_batch, len(batch))
                try:
                    answers = self._write(batch)
                except BaseException as e:  # noqa: BLE001 - a bug here must not leave requests waiting
                    log.exception("the booking writer failed a batch")
                    answers = [(job, e) for job in batch]
            _settle(answers)
            if stop:
                return

    def _write(self, batch: list[Job]) -> list[tuple[Job, Response | BaseException]]:
        """Every job of the batch with its answer (a response or what its path raised)."""
        own_way: set[int] = set()  # positions in the batch; they go their own way in this order
        decided: list[tuple[int, Decided]] = []
        try:
            seen = self._keys_seen(batch)
        except Exception:  # noqa: BLE001 - the store is unwell: each request meets that on its own
            log.exception("looking up a batch's Idempotency-Keys failed")
            seen, own_way = set(), set(range(len(batch)))
        # A key twice in one batch would fail the joint save for all (and, on PostgreSQL, spend
        # notification ids on the rolled-back insert): the first goes in it, the others their own
        # way after it, where they meet it as stored.
        in_batch: set[Any] = set()
        for i, job in enumerate(batch):
            if i in own_way:
                continue
            idem_key = (job.idem.owner, job.idem.key) if job.idem.key is not None else None
            if idem_key is not None and (idem_key in seen or idem_key in in_batch):
                own_way.add(i)  # a repeat (or a request in flight elsewhere): its path answers
                continue
            try:
                d = job.decide()
            except Exception:  # noqa: BLE001 - refused by the rules: its own path says why
                d = None
            if (
                d is None
                or d.booking.id in in_batch
                or (decided and d.calendar_version != decided[0][1].calendar_version)
            ):
                own_way.add(i)
                continue
            decided.append((i, d))
            in_batch.add(d.booking.id)
            if idem_key is not None:
                in_batch.add(idem_key)
        answers: list[tuple[Job, Response | BaseException]] = []
        if decided:
            # A booking stored before (a retry without Idempotency-Key) would fail the joint save
            # of all: one look-up finds such repeats first.
            try:
                stored = self._ledger.bookings_stored([d.booking.id for _, d in decided])
            except Exception:  # noqa: BLE001 - as above
                log.exception("looking up a batch's booking keys failed")
                stored = {d.booking.id for _, d in decided}
            own_way.update(i for i, d in decided if d.booking.id in stored)
            decided = [(i, d) for i, d in decided if d.booking.id not in stored]
        if decided:
            try:
                self._ledger.save_new_bookings(
                    [d.booking for _, d in decided],
                    calendar_version=decided[0][1].calendar_version,
                    side_rows=[r for _, d in decided for r in d.side_rows],
                )
            except Exception as e:  # noqa: BLE001 - something changed meanwhile: each on its own path
                # expected: a key or an Idempotency-Key stored meanwhile, a period closed meanwhile
                level = logging.DEBUG if isinstance(e, IntegrityError) else logging.WARNING
                log.log(
                    level, "a joint save of %d bookings failed (%r); each goes its own way", len(decided), e
                )
                own_way.update(i for i, _ in decided)
            else:
                self.saved_jointly += len(decided)
                answers.extend((batch[i], d.response) for i, d in decided)
                try:
                    self._on_saved()
                except Exception:  # noqa: BLE001 - the follower's next round catches up anyway
                    log.exception("poking the split view failed")
        for i in sorted(own_way):  # in the order they came
            job = batch[i]
            try:
                answers.append((job, job.fallback()))
            except BaseException as e:  # noqa: BLE001 - raised in the request's coroutine
                answers.append((job, e))
        return answers

    def _keys_seen(self, batch: list[Job]) -> set[tuple[str, str]]:
        by_owner: dict[str, list[str]] = {}
        for job in batch:
            if job.idem.key is not None:
                by_owner.setdefault(job.idem.owner, []).append(job.idem.key)
        return {
            (owner, key)
            for owner, keys in by_owner.items()
            for key in self._idempotency.keys_stored(owner, keys)
        }


def _settle(answers: list[tuple[Job, Response | BaseException]]) -> None:
    """Hand the answers to their event loops: one wake-up per loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Any]]] = {}
    for job, answer in answers:
        by_loop.setdefault(job.loop, []).append((job, answer))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, settled)
        except RuntimeError:  # the loop has closed (its server stopped): nobody waits any more
            pass


def _resolve(settled: list[tuple[Job, Response | BaseException]]) -> None:
    for job, answer in settled:
        if job.future.done():  # the client went away (cancelled)
            continue
        if isinstance(answer, BaseException):
            job.future.set_exception(answer)
        else:
            job.future.set_result(answer)
