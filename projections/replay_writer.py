"""The writing half of a replay: pages of view operations into a fresh SQLite store, then its
indexes. Runs in the replaying process for a small log, else in a process of its own:

    python -m projections.replay_writer <pages fd> <answer fd> <db> <application name> <held back max>

That process reads pickled pages from the first descriptor until it gets None, and answers once on
the second: ("done",) or ("failed", its traceback). It is started as a plain interpreter on this
module, not through multiprocessing's spawn, which would import the parent's main script again
(for `koa`, the whole CLI: 0.6 s) and fail on scripts that do not guard their main code.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Tracking

from projections.batch import ViewBatch
from projections.split_projection import open_split_view
from projections.split_view import ReplaySplitView, SplitViewQueries

# SQLite's page cache for the replay store. Measured writing 2M bookings: 512, 64 and 16 MiB all
# took 20-22 s; the writer's peak RSS was 704, 181 and 83 MiB.
REPLAY_CACHE_KIB = 64 * 1024
WRITER_EXIT_SECONDS_MAX = 60  # the writer exits right after its answer; this long at most

# One page of the log as the writer receives it: the log position of its last event, and the view
# operations of the events it kept (rows as plain tuples with dates as ISO text), maybe none.
Page = tuple[int, list[tuple[str, Any]]]


class ReplayWriterFailed(RuntimeError):
    """The writer process stopped without finishing the replay store."""


def write_replay_store(db: Path, application_name: str, held_back_max: int, pages: Iterable[Page]) -> None:
    """Write the pages into a new SQLite store at `db`, then build its indexes.

    Bookings are inserted page by page while the id index is absent (one sorted build afterwards);
    approvals and reversals, which look bookings up by id, are held back until the index is built:
    at the end, or once `held_back_max` of them wait, after which pages are applied whole. The
    position is moved only from then on, so a store left half-built by a crash has none."""
    view = open_store(db)
    try:
        _throwaway_settings(view)
        view.drop_list_index()
        view.drop_id_index()
        held_back: ViewBatch | None = ViewBatch()  # None once the id index is built
        position = tracked = 0
        applied_any = False
        for position, ops in pages:
            if not ops:
                continue
            applied_any = True
            batch = ViewBatch(ops)
            if held_back is None:
                view.apply_batch(batch, Tracking(application_name, position), start=tracked)
                tracked = position
                continue
            records, others = batch.split_records()
            view.apply_untracked(records)
            held_back.ops += others.ops
            if len(held_back) > held_back_max:
                _index_and_apply(view, application_name, held_back, position)
                held_back, tracked = None, position
        if applied_any and held_back is not None:
            _index_and_apply(view, application_name, held_back, position)
        view.create_list_index()
    finally:
        view.datastore.close()  # type: ignore[attr-defined]


def open_store(db: Path) -> ReplaySplitView:
    view = open_split_view(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)}, sqlite_view=ReplaySplitView
    )
    assert isinstance(view, ReplaySplitView)
    return view


def _throwaway_settings(view: SplitViewQueries) -> None:
    """The replay store is made and dropped within one command: no fsync per page and its journal
    in memory (a crash only means the replay is made again)."""
    with view.datastore.get_connection(commit=True) as conn:  # type: ignore[attr-defined]
        c = conn.cursor()
        c.execute("PRAGMA synchronous = OFF")
        c.execute(f"PRAGMA cache_size = -{REPLAY_CACHE_KIB}")
        c.execute("PRAGMA journal_mode = MEMORY")
        assert c.fetchone()[0] == "memory", "the replay store's journal stayed on disk"


def _index_and_apply(
    view: ReplaySplitView, application_name: str, held_back: ViewBatch, position: int
) -> None:
    """Build the id index, then apply what was held back and set the position (the first time)."""
    view.create_id_index()
    view.apply_batch(held_back, Tracking(application_name, position), start=0)


# ---- the writer in a process of its own ------------------------------------------------------------


def write_in_writer_process(
    db: Path, application_name: str, held_back_max: int, pages: Iterable[Page]
) -> None:
    """Send the pages to a new writer process while the next ones are read. A pipe holds about a
    page, so the reader is never more than a page or two ahead (memory stays bounded); a writer
    that fails or dies stops the reader at its next page, and a reader that fails stops the writer
    (it reads the end of its pipe)."""
    pages_r, pages_w = os.pipe()
    answer_r, answer_w = os.pipe()
    try:
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                str(pages_r),
                str(answer_w),
                str(db),
                application_name,
                str(held_back_max),
            ],
            pass_fds=(pages_r, answer_w),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        for fd in (pages_r, pages_w, answer_r, answer_w):
            os.close(fd)
        raise
    os.close(pages_r)
    os.close(answer_w)
    to_writer, from_writer = Connection(pages_w, readable=False), Connection(answer_r, writable=False)
    try:
        _send_pages(to_writer, pages)
        answer = from_writer.recv() if from_writer.poll(WRITER_EXIT_SECONDS_MAX) else None
    except EOFError:
        answer = None  # it ended without a word
    finally:
        to_writer.close()
        from_writer.close()
        try:
            writer.wait(WRITER_EXIT_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
    if answer != ("done",):
        detail = answer[1] if answer else f"it exited ({writer.returncode}) without an answer"
        raise ReplayWriterFailed(f"the replay's writer process failed: {detail}")


def _send_pages(conn: Connection, pages: Iterable[Page]) -> None:
    """Every page, then the end (None). A writer that stopped early closes its end of the pipe:
    sending stops there, and its answer says why."""
    with contextlib.suppress(BrokenPipeError):
        for page in pages:
            conn.send(page)
        conn.send(None)


def _received(conn: Connection) -> Iterator[Page]:
    while (page := conn.recv()) is not None:
        yield page


def _main(argv: list[str]) -> int:
    pages_fd, answer_fd, db, application_name, held_back_max = argv
    pages, answer = Connection(int(pages_fd), writable=False), Connection(int(answer_fd), readable=False)
    try:
        write_replay_store(Path(db), application_name, int(held_back_max), _received(pages))
        answer.send(("done",))
        return 0
    except EOFError:
        return 1  # the reader stopped (it failed): nobody waits for an answer
    except BaseException:
        answer.send(("failed", traceback.format_exc(limit=5)))
        return 1
    finally:
        pages.close()
        answer.close()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
