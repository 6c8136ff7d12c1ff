"""Group commit: concurrent single-booking saves share one transaction.

Every save takes the event table's lock (the library's, for gapless notification ids), extends the
seal chain and commits; under many concurrent writers (the HTTP API) they queue for that lock and
for pooled connections. Here the first writer to arrive leads: it saves the events of everybody
waiting in one `save()`, then hands the lead to the next waiting writer (so no request does others'
work for long). Each writer still gets its own outcome: if the joint save fails (a key stored
meanwhile, a period closed meanwhile), each writer's events are saved on their own and each gets its
own result or error, which its command handles as before (look again, decide again).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ledger.recorders import rows_for_every_save, without_rows_for_every_save

BATCH_EVENTS_MAX = 500  # events per joint transaction: bounds the lock time and the message size


@dataclass(eq=False)
class _Waiting:
    events: list[Any]
    calendar_version: int
    side_rows: tuple[Any, ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead rather than because its events were saved
    error: BaseException | None = None
    saved: bool = False


class GroupCommit:
    def __init__(self, app: Any, *, batch_events_max: int = BATCH_EVENTS_MAX) -> None:
        assert batch_events_max > 0
        self._app = app
        self._batch_events_max = batch_events_max
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False
        self.largest_batch = 0  # writers in the largest joint save so far (for tests and tuning)

    def save(self, events: list[Any], *, calendar_version: int, side_rows: tuple[Any, ...] = ()) -> None:
        """Store the events (of one command), and its side rows in the same transaction, together
        with those of concurrent callers; raises what storing them on their own would raise."""
        assert events
        # This thread's rows for every save (recorders.with_every_save) go with its own events
        # only: the leader saves others' events too, in its own thread.
        me = _Waiting(list(events), calendar_version, (*side_rows, *rows_for_every_save()))
        with self._lock:
            self._queue.append(me)
            if not self._leading:
                self._leading = me.lead = True
        while True:
            if me.lead:
                me.lead = False
                self._lead_once()
            if me.saved or me.error is not None:
                break
            me.done.wait()
            me.done.clear()
        if me.error is not None:
            raise me.error

    def _lead_once(self) -> None:
        """Save one batch from the head of the queue, then pass the lead on (or lay it down)."""
        with self._lock:
            batch, count = [], 0
            for w in self._queue:
                if batch and (
                    count + len(w.events) > self._batch_events_max
                    or w.calendar_version != batch[0].calendar_version
                ):
                    break
                batch.append(w)
                count += len(w.events)
            del self._queue[: len(batch)]
        try:
            with without_rows_for_every_save():
                self._store(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False
            for w in batch:
                if not w.saved and w.error is None:  # interrupted before an outcome
                    w.error = RuntimeError("the joint save was interrupted; try again")
                w.done.set()

    def _store(self, batch: list[_Waiting]) -> None:
        self.largest_batch = max(self.largest_batch, len(batch))
        version = batch[0].calendar_version
        try:
            self._app.save(
                *(e for w in batch for e in w.events),
                calendar_version=version,
                side_rows=[r for w in batch for r in w.side_rows],
            )
        except Exception as joint_error:  # noqa: BLE001 - each writer gets its own outcome below
            if len(batch) == 1:
                batch[0].error = joint_error
                return
            for w in batch:
                try:
                    self._app.save(*w.events, calendar_version=version, side_rows=w.side_rows)
                except Exception as e:  # noqa: BLE001 - handed to the writer, who handles or raises it
                    w.error = e
                else:
                    w.saved = True
            return
        for w in batch:
            w.saved = True
