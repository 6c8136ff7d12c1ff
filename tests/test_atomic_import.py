"""A payment run is stored all or nothing, also when the importing process is killed (SIGKILL)
while its transaction is being written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from ledger.bootstrap import open_books
from tests.factories import CSV_HEADER, csv_row

ROWS = 60_000
WAIT_S_MAX = 60


def _write_run(path: Path) -> None:
    lines = [CSV_HEADER] + [csv_row(f"KILL-{i:06d}", f"{100 + i % 900},{i % 100:02d}") for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _start_import(store: dict[str, str], path: Path) -> subprocess.Popen:
    env = {**os.environ, **store}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ledger.cli import main; main()",
            "import",
            "payments",
            str(path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _writing(store: dict[str, str]) -> bool:
    """True once the import's transaction is writing events (and has not committed)."""
    if "KOA_DATABASE_URL" in store:
        url = urlsplit(store["KOA_DATABASE_URL"])
        dbname = url.path.strip("/")
        with psycopg.connect(
            host=url.hostname, port=url.port, user=url.username, dbname=dbname, autocommit=True
        ) as c:
            # The import's transaction holds the library's EXCLUSIVE lock on the events table
            # from its first insert until it commits or rolls back.
            row = c.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class t ON l.relation = t.oid "
                "WHERE t.relname = 'ledger_events' AND l.mode = 'ExclusiveLock' AND l.granted"
            ).fetchone()
            return bool(row and row[0])
    # SQLite: the uncommitted transaction's pages spill into the write-ahead log as it grows.
    wal = Path(store["KOA_DATA_DIR"]) / "koa.sqlite-wal"
    return wal.exists() and wal.stat().st_size > 1024 * 1024


def test_killed_import_leaves_nothing_and_a_rerun_stores_everything(store, settings, tmp_path, pg_server):
    path = tmp_path / "run.csv"
    _write_run(path)
    with open_books(settings):  # create the store and its tables before the race starts
        pass

    proc = _start_import(store, path)
    deadline = time.monotonic() + WAIT_S_MAX
    while not _writing(store):
        assert proc.poll() is None, f"import ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the import never started writing"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    if "KOA_DATABASE_URL" in store:  # the server rolls back once it notices the client is gone
        deadline = time.monotonic() + WAIT_S_MAX
        while _writing(store):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with open_books(settings) as books:
        assert books.ledger.max_notification_id() == 0 or books.ledger._find("KILL-000000") is None
        assert books.ledger._find(f"KILL-{ROWS - 1:06d}") is None

    # Running the same file again stores the whole run.
    done = _start_import(store, path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()
    assert f"{ROWS} bookings imported, 0 already present".encode() in out
    with open_books(settings) as books:
        assert books.ledger._find("KILL-000000") is not None
        assert sum(t.booking_count for t in books.split_view.totals(2025)) == ROWS
