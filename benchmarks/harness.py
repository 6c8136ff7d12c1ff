"""What the benchmark scripts share: the bench store, the phases in child processes, the table.

The scripts run as `.venv/bin/python benchmarks/<script>.py`, so this directory is on sys.path and
`import harness` finds this module without making benchmarks a package.

Every figure comes from a child process, so that each peak RSS is that phase's own. Linux carries
the parent's RSS at fork over exec into the child's ru_maxrss, so the parent must stay small: this
module, which the parent imports, never imports the product at module level (only the child-side
functions below do, when they run) and never holds any bookings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SCHEMA = "bench"
SQLITE_FILE = "koa.sqlite"  # ledger.persistence.store_env: <data dir>/koa.sqlite
# A statement whose input has stopped arriving for this long is not slow but stuck.
STUCK_SECONDS = 60
WATCH_EVERY_SECONDS = 5

# The demo year that replay.py and export_workbook.py store and then measure.
YEAR = 2025
SEED = 2025
# ledger.demo.generate yields per household 12 x (2 x 97 % run rows + ~0.15 single bookings).
BOOKINGS_PER_HOUSEHOLD = 25
HOUSEHOLDS_MAX = 200_000  # ledger.demo.HOUSEHOLDS_MAX
RUN_MAX = 100_000  # bookings per import_bookings call, i.e. per transaction
RECORDED_BY, APPROVED_BY = "sachbearbeitung", "pruefung"  # as `koa demo`: four eyes need two

Job = dict[str, Any]  # what a phase is told (store, dbname, dir, ...); JSON on the child's argv


# ---- PostgreSQL: the server and the bench databases -----------------------------------------------


def connect(dbname: str, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(dbname=dbname, autocommit=autocommit, connect_timeout=10, **PG)


def admin_connect() -> psycopg.Connection:
    return connect("postgres", autocommit=True)


def database_url(dbname: str) -> str:
    """The product's database URL for a bench database; its tables go to the schema SCHEMA."""
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}?schema={SCHEMA}"


def describe_server() -> str:
    """'PostgreSQL 15.2 at 127.0.0.1', for the title of a table."""
    with admin_connect() as conn:
        server = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    return f"PostgreSQL {server} at {PG['host']}"


def create_database(name: str) -> None:
    drop_database(name)  # a leftover of a killed run with the same pid, or of the last repetition
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def copy_database(source: str, name: str) -> None:
    """A copy of a database as it stands (its template); then settle(), so that the copy's writes
    are not left to the phase that follows."""
    drop_database(name)
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(source))
        )
    settle()


def drop_database(name: str) -> None:
    # FORCE: a child that died midway may leave connections behind.
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with admin_connect() as conn:
        conn.execute(drop)


def vacuum(dbname: str) -> None:
    """Set hint bits and the visibility map, untimed: otherwise whichever phase reads the fresh
    rows first pays for writing them back, and autovacuum would have done it on a live ledger.
    Then settle()."""
    with connect(dbname, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    settle()


def settle() -> None:
    """Write out what earlier phases left dirty (a CHECKPOINT, then the OS's page cache), untimed:
    otherwise the next timed phase shares the disk with the writes of the last one, and the more
    so the bigger the store: the growth figures would measure the leftovers, not the code."""
    with admin_connect() as conn:
        conn.execute("CHECKPOINT")
    os.sync()


def stuck_statements(dbname: str) -> list[str]:
    """Statements of the bench database that have waited STUCK_SECONDS for their own input."""
    query = (
        "SELECT pid, date_trunc('second', now() - query_start) AS age, "
        "left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query FROM pg_stat_activity "
        "WHERE datname = %s AND state = 'active' AND wait_event = 'ClientRead' "
        "AND now() - query_start > make_interval(secs => %s)"
    )
    with admin_connect() as conn:
        rows = conn.execute(query, (dbname, STUCK_SECONDS)).fetchall()
    return [f"backend {pid}, active for {age}: {text.strip()}" for pid, age, text in rows]


# ---- parent: child processes ---------------------------------------------------------------------


def exit_on_sigterm() -> None:
    # Turn SIGTERM into SystemExit, so that the finally blocks kill the child and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def child_env() -> dict[str, str]:
    # Prefixed library variables (LEDGER_POSTGRES_DBNAME, ...) beat the env the Ledger is given,
    # and a KOA_DATABASE_URL or KOA_LAND must not matter either: the child must only ever see the
    # bench store, and a report the default Land.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEDGER_", "SPLITPROJECTION_", "KOA_", "POSTGRES_"))
    }
    env.pop("PERSISTENCE_MODULE", None)
    return env


def run_child(argv: list[str], cwd: Path, *, name: str, watch_db: str | None, stuck: str) -> dict[str, Any]:
    """Run `python *argv` in a fresh interpreter and return the figures it prints last, as JSON.

    name: the child in the message if it fails; watch_db: the PostgreSQL database whose statements
    are watched while it runs (None on SQLite, where no server waits); stuck: the message's first
    line if one of them is stuck.
    """
    # cwd: Settings reads a .env file from the working directory; the temp dir has none.
    proc = subprocess.Popen(
        [sys.executable, *argv],
        env=child_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=WATCH_EVERY_SECONDS)
                break
            except subprocess.TimeoutExpired:
                # No time limit (a slow machine is no error), but a statement whose input stopped
                # arriving never finishes: PostgreSQL waits for the client, the client for the result.
                if watch_db is not None and (statements := stuck_statements(watch_db)):
                    raise SystemExit(stuck + ":\n  " + "\n  ".join(statements)) from None
    finally:
        if proc.poll() is None:  # stuck, interrupted or terminated: the child must not outlive us
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        sys.stderr.write(err)
        raise SystemExit(f"the {name} child failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def run_phase(script: str, job: Job, phase: str, **extra: Any) -> dict[str, Any]:
    """Run one phase of `script` in a child (see main_or_phase, the other end) and return its figures."""
    job = {**job, "phase": phase, **extra}
    return run_child(
        [script, "--child", json.dumps(job)],
        Path(job["dir"]),
        name=phase,
        watch_db=job["dbname"] if job["store"] == "postgres" else None,
        stuck=f"the {phase} phase is stuck: the server is still waiting for data the client never sent",
    )


def main_or_phase(main: Callable[[], int], phases: dict[str, Callable[[Job], dict[str, Any]]]) -> int:
    """A script's entry point: its main, or the one phase run_phase started it for. The phase's
    figures go to stdout as the last line, in JSON, where run_child reads them."""
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        job = json.loads(sys.argv[2])
        print(json.dumps(phases[job["phase"]](job)))
        return 0
    return main()


# ---- parent: the table ---------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    value: float
    unit: str
    seconds: float | None = None
    rate: bool = False  # a throughput: gets a ratio to the baseline
    decimals: int = 0  # file sizes in MB need one

    @classmethod
    def throughput(cls, label: str, count: float, unit: str, seconds: float) -> Row:
        return cls(label, count / seconds, unit, seconds, rate=True)


def print_table(
    title: str,
    base_rate: float,
    table: list[Row],
    *,
    label_width: int,
    unit_width: int,
    ratio_head: str = "÷ base",
) -> None:
    """The table under its title; each throughput also as a ratio to the baseline's (base_rate)."""
    print(title)
    print(f"{'figure':<{label_width}} {'value':>12}  {'unit':<{unit_width}} {'seconds':>8}  {ratio_head:>7}")
    print("-" * (label_width + unit_width + 33))  # as wide as the header
    for r in table:
        secs = f"{r.seconds:8.3f}" if r.seconds is not None else " " * 8
        ratio = f"{r.value / base_rate:7.3f}" if r.rate else ""
        value = f"{r.value:>12,.{r.decimals}f}"
        print(f"{r.label:<{label_width}} {value}  {r.unit:<{unit_width}} {secs}  {ratio:>7}".rstrip())


def exit_code(problems: list[str]) -> int:
    """Correctness, not speed, decides the exit code: 1 if any figure was wrong."""
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


# ---- children: shared by the phases --------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def children_peak_rss_mib() -> float:
    """The largest peak RSS of this process's children that have ended (a replay's writer)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def open_bench_books(job: Job) -> Any:
    # Imported only here: the parent and the baselines never load the product code.
    from ledger.bootstrap import open_books
    from ledger.settings import Settings

    url = database_url(job["dbname"]) if job["store"] == "postgres" else None
    return open_books(Settings(database_url=url, data_dir=Path(job["dir"]), _env_file=None))


def baseline_connection(job: Job) -> Any:
    """A bare DB-API connection to the bench store, for a baseline that must not load the product:
    on PostgreSQL in autocommit, so each statement is its own as with the product's readers; on
    SQLite read-only, straight from the file the product writes."""
    if job["store"] == "postgres":
        return connect(job["dbname"], autocommit=True)
    return sqlite3.connect(f"file:{Path(job['dir']) / SQLITE_FILE}?mode=ro", uri=True)


# ---- the demo year: options, store, storing phase -------------------------------------------------


def year_options(description: str, argv: list[str] | None) -> argparse.Namespace:
    """--bookings and --store; args.households is the demo's size for about that many bookings."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bookings", type=int, default=500_000, help="about this many bookings")
    ap.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    args = ap.parse_args(argv)
    bookings_max = HOUSEHOLDS_MAX * BOOKINGS_PER_HOUSEHOLD
    if not 1_000 <= args.bookings <= bookings_max:
        ap.error(f"--bookings must be between 1,000 and {bookings_max:,}")
    args.households = round(args.bookings / BOOKINGS_PER_HOUSEHOLD)
    return args


@contextmanager
def year_store(args: argparse.Namespace, name: str) -> Iterator[tuple[Job, str]]:
    """A fresh store for the demo year: a temp dir, and on PostgreSQL the database
    koa_bench_<name>_<pid>, dropped on the way out, also on error. Yields the job every phase is
    given and where the store is, for the title."""
    dbname = f"koa_bench_{name}_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix=f"koa-bench-{name}-") as tmp:
        job = {"store": args.store, "dbname": dbname, "dir": tmp, "households": args.households}
        if args.store == "postgres":
            where = describe_server()
            create_database(dbname)
        else:
            where = f"SQLite {sqlite3.sqlite_version} in a temp dir"
        try:
            yield job, where
        finally:
            if args.store == "postgres":
                drop_database(dbname)


def demo_year(job: Job) -> Any:
    """The year as the city's systems hand it over (ledger.demo.generate, deterministic)."""
    from ledger.demo import generate

    return generate(YEAR, job["households"], SEED)


def store_year(job: Job, demo: Any) -> dict[str, Any]:
    """The storing phase: the demo's runs through Ledger.import_bookings, then its approvals and
    reversals. The caller generates the demo (untimed), so that it can derive what to expect."""
    runs = 0
    with open_bench_books(job) as books:
        t0 = time.perf_counter()
        for _label, run in demo.runs:
            # The monthly payment run is the realistic unit; only a very large year is split further.
            for start in range(0, len(run), RUN_MAX):
                result = books.ledger.import_bookings(run[start : start + RUN_MAX], recorded_by=RECORDED_BY)
                if result.unchanged:
                    raise SystemExit(f"{result.unchanged} bookings of a fresh store already stored")
                runs += 1
        for key in demo.approvals:
            books.ledger.approve_booking(key, approved_by=APPROVED_BY)
        for key, reason in demo.reversals:
            books.ledger.reverse_booking(key, reason=reason, reversed_by=RECORDED_BY)
        seconds = time.perf_counter() - t0
        events = books.ledger.max_notification_id()
    return {
        "bookings": demo.booking_count,
        "events": events,
        "runs": runs,
        "approvals": len(demo.approvals),
        "reversals": len(demo.reversals),
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def storing_context(stored: dict[str, Any]) -> str:
    """The storing phase's figures, printed below the table: context, not a target."""
    return (
        f"context, not a target: storing took {stored['seconds']:.1f} s "
        f"({stored['bookings'] / stored['seconds']:,.0f} bookings/s) in {stored['runs']} "
        f"import_bookings runs of at most {RUN_MAX:,},\n"
        f"  {stored['approvals']} approvals and {stored['reversals']} reversals; "
        f"peak RSS of the storing process {stored['peak_rss_mib']:,.0f} MiB"
    )
