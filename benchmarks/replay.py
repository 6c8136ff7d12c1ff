"""Benchmark: replaying and verifying a year of bookings, against a bare read of the same rows.

    .venv/bin/python benchmarks/replay.py [--bookings N] [--store postgres|sqlite]

A demo year of about N bookings (ledger.demo.generate, deterministic) is stored in a fresh store:
PostgreSQL database `koa_bench_replay_<pid>` (dropped at the end, also on error) or an SQLite file in
a temp dir. It is stored through Ledger.import_bookings in runs of at most 100,000 bookings (the
monthly payment runs and single bookings of the demo), plus the demo's approvals and reversals.
Then, each in its own child process so that each peak RSS is that phase's own:
  1. baseline: a bare loop reads (position, state) from the events table in pages of 10,000 and
     adds up the amounts: the least any reader of the whole log has to do;
  2. replay: replay_as_of(now) rebuilds the split from every event into a fresh SQLite view;
  3. verify: verify_log recomputes the seal chain over every event; it must say intact.
Throughputs are also given as a ratio to the baseline, which is measured in the same run on the
same store, so the ratio travels between machines. Storing time is printed as context only.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SCHEMA = "bench"
PG_EVENTS_TABLE = "ledger_events"  # the library's table for the application named "Ledger"
SQLITE_EVENTS_TABLE = "stored_events"  # the library's SQLite table; rowid is the log position
SQLITE_FILE = "koa.sqlite"  # ledger.persistence.store_env: <data dir>/koa.sqlite
YEAR = 2025
SEED = 2025
# ledger.demo.generate yields per household 12 x (2 x 97 % run rows + ~0.15 single bookings).
BOOKINGS_PER_HOUSEHOLD = 25
HOUSEHOLDS_MAX = 200_000  # ledger.demo.HOUSEHOLDS_MAX
RUN_MAX = 100_000  # bookings per import_bookings call, i.e. per transaction
BASELINE_PAGE = 10_000
RECORDED_BY, APPROVED_BY = "sachbearbeitung", "pruefung"  # as `koa demo`: four eyes need two
# A statement whose input has stopped arriving for this long is not slow but stuck.
STUCK_SECONDS = 60
WATCH_EVERY_SECONDS = 5


# ---- parent: store, orchestration, table -------------------------------------------------------


def admin_connect() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **PG)


def create_database(name: str) -> None:
    drop_database(name)  # a leftover of a killed run with the same pid
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    # FORCE: a child that died midway may leave connections behind.
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with admin_connect() as conn:
        conn.execute(drop)


def vacuum(dbname: str) -> None:
    """Set hint bits and the visibility map, untimed: otherwise whichever phase reads the fresh
    rows first pays for writing them back, and autovacuum would have done it on a live ledger."""
    with psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=10, **PG) as conn:
        conn.execute("VACUUM (ANALYZE)")


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


def run_child(job: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return the figures it prints as JSON."""
    # Prefixed library variables (LEDGER_POSTGRES_DBNAME, ...) beat the env the Ledger is given,
    # and a KOA_DATABASE_URL must not matter either: the child must only ever see the bench store.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEDGER_", "SPLITPROJECTION_", "KOA_", "POSTGRES_"))
    }
    env.pop("PERSISTENCE_MODULE", None)
    cmd = [sys.executable, __file__, "--child", json.dumps(job)]
    # Linux carries the parent's RSS at fork over exec into the child's ru_maxrss: the parent
    # therefore never imports the product nor holds any bookings, and stays small.
    # cwd: Settings reads a .env file from the working directory; the temp dir has none.
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=WATCH_EVERY_SECONDS)
                break
            except subprocess.TimeoutExpired:
                # No time limit (a slow machine is no error), but a statement whose input stopped
                # arriving never finishes: PostgreSQL waits for the client, the client for the result.
                if job["store"] == "postgres" and (stuck := stuck_statements(job["dbname"])):
                    raise SystemExit(
                        f"the {job['phase']} phase is stuck: the server is still waiting for data "
                        "the client never sent:\n  " + "\n  ".join(stuck)
                    ) from None
    finally:
        if proc.poll() is None:  # stuck, interrupted or terminated: the child must not outlive us
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        sys.stderr.write(err)
        raise SystemExit(f"the {job['phase']} child failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class Row:
    label: str
    value: float
    unit: str
    seconds: float | None = None
    rate: bool = False  # a throughput: gets a ratio to the baseline


def print_table(title: str, base_rate: float, table: list[Row]) -> None:
    print(title)
    print(f"{'figure':<54} {'value':>12}  {'unit':<9} {'seconds':>8}  {'÷ base':>7}")
    print("-" * 96)
    for r in table:
        secs = f"{r.seconds:8.3f}" if r.seconds is not None else " " * 8
        ratio = f"{r.value / base_rate:7.3f}" if r.rate else ""
        print(f"{r.label:<54} {r.value:>12,.0f}  {r.unit:<9} {secs}  {ratio:>7}".rstrip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bookings", type=int, default=500_000, help="about this many bookings")
    ap.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    args = ap.parse_args(argv)
    bookings_max = HOUSEHOLDS_MAX * BOOKINGS_PER_HOUSEHOLD
    if not 1_000 <= args.bookings <= bookings_max:
        ap.error(f"--bookings must be between 1,000 and {bookings_max:,}")
    households = round(args.bookings / BOOKINGS_PER_HOUSEHOLD)

    # Turn SIGTERM into SystemExit, so that the finally blocks kill the child and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    dbname = f"koa_bench_replay_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="koa-bench-replay-") as tmp:
        job = {"store": args.store, "dbname": dbname, "dir": tmp, "households": households}
        if args.store == "postgres":
            with admin_connect() as conn:
                server = conn.execute("SHOW server_version").fetchone()[0].split()[0]
            where = f"PostgreSQL {server} at {PG['host']}"
            create_database(dbname)
        else:
            where = f"SQLite {sqlite3.sqlite_version} in a temp dir"
        try:
            stored = run_child({**job, "phase": "store"}, Path(tmp))
            if args.store == "postgres":
                vacuum(dbname)
            # The baseline first: every phase reads the same, already cached and vacuumed rows.
            base = run_child({**job, "phase": "baseline"}, Path(tmp))
            replay = run_child({**job, "phase": "replay"}, Path(tmp))
            verify = run_child({**job, "phase": "verify"}, Path(tmp))
        finally:
            if args.store == "postgres":
                drop_database(dbname)

    events = stored["events"]
    table = [
        Row(
            f"baseline: read rows in pages of {BASELINE_PAGE:,}, sum amounts",
            base["rows"] / base["seconds"],
            "rows/s",
            base["seconds"],
            rate=True,
        ),
        Row(
            "replay as of now (replay_as_of, fresh SQLite view)",
            replay["events_read"] / replay["seconds"],
            "events/s",
            replay["seconds"],
            rate=True,
        ),
        Row(
            "verify the seal chain (verify_log)",
            verify["count"] / verify["seconds"],
            "events/s",
            verify["seconds"],
            rate=True,
        ),
        Row("peak RSS of the baseline process", base["peak_rss_mib"], "MiB"),
        Row("peak RSS of the replay process", replay["peak_rss_mib"], "MiB"),
        Row("  of it before the replay (libraries, pools)", replay["base_rss_mib"], "MiB"),
        Row("peak RSS of the verify process", verify["peak_rss_mib"], "MiB"),
        Row("  of it before verifying (libraries, pools)", verify["base_rss_mib"], "MiB"),
    ]
    print_table(
        f"Replay and verification of a year: {events:,} events of {stored['bookings']:,} bookings, {where}",
        base["rows"] / base["seconds"],
        table,
    )
    print(f"verify_log: {verify['verdict']}")
    print(
        f"context, not a target: storing took {stored['seconds']:.1f} s "
        f"({stored['bookings'] / stored['seconds']:,.0f} bookings/s) in {stored['runs']} "
        f"import_bookings runs of at most {RUN_MAX:,},\n"
        f"  {stored['approvals']} approvals and {stored['reversals']} reversals; "
        f"peak RSS of the storing process {stored['peak_rss_mib']:,.0f} MiB"
    )

    # Correctness, not speed: every reader must have seen the whole log, and the chain must hold.
    problems = []
    if not verify["intact"]:
        problems.append(f"the seal chain is not intact: {verify['verdict']}")
    if verify["count"] != events:
        problems.append(f"verify_log checked {verify['count']:,} of {events:,} events")
    if replay["events_read"] != events or replay["events_applied"] != events:
        problems.append(
            f"replay read {replay['events_read']:,} and applied {replay['events_applied']:,} "
            f"of {events:,} events"
        )
    if base["rows"] != events or base["amount_cents"] != stored["amount_cents"]:
        problems.append(
            f"baseline read {base['rows']:,} rows summing {base['amount_cents']} cents; "
            f"stored {events:,} events summing {stored['amount_cents']} cents"
        )
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


# ---- children: one phase each ------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def open_bench_books(job: dict[str, Any]) -> Any:
    # Imported only here: the parent and the baseline never load the product code.
    from ledger.bootstrap import open_books
    from ledger.settings import Settings

    url = None
    if job["store"] == "postgres":
        url = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{job['dbname']}?schema={SCHEMA}"
    return open_books(Settings(database_url=url, data_dir=Path(job["dir"]), _env_file=None))


def store_phase(job: dict[str, Any]) -> dict[str, Any]:
    from ledger.demo import generate

    # Untimed: the year as the city's systems hand it over.
    demo = generate(YEAR, job["households"], SEED)
    # The split view's money, read back by the baseline: every Recorded event's amount, including
    # the counter-bookings of the reversals (they repeat the original's amount).
    amounts = {c.key: c.amount_cents for _, run in demo.runs for c in run}
    amount_cents = sum(amounts.values()) + sum(amounts[key] for key, _ in demo.reversals)
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
        "amount_cents": amount_cents,
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def baseline_phase(job: dict[str, Any]) -> dict[str, Any]:
    """Keyset pages of (position, state), each state parsed as JSON and its amount added up."""
    rows = total = 0
    if job["store"] == "postgres":
        query: Any = sql.SQL(
            "SELECT notification_id, state FROM {}.{} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(sql.Identifier(SCHEMA), sql.Identifier(PG_EVENTS_TABLE))
        # Autocommit: each page is its own statement, as the product's readers page the log.
        conn: Any = psycopg.connect(dbname=job["dbname"], autocommit=True, connect_timeout=10, **PG)
    else:
        query = f"SELECT rowid, state FROM {SQLITE_EVENTS_TABLE} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        conn = sqlite3.connect(f"file:{Path(job['dir']) / SQLITE_FILE}?mode=ro", uri=True)
    try:
        t0 = time.perf_counter()
        after = 0
        while True:
            page = conn.execute(query, (after, BASELINE_PAGE)).fetchall()
            if not page:
                break
            for _position, state in page:
                total += json.loads(state).get("amount_cents", 0)
            rows += len(page)
            after = page[-1][0]
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return {"rows": rows, "amount_cents": total, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}


def replay_phase(job: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from projections.replay import replay_as_of

    with open_bench_books(job) as books:
        base_rss = peak_rss_mib()
        t0 = time.perf_counter()
        replay = replay_as_of(books.ledger, datetime.now(UTC), Path(job["dir"]) / "replay")
        seconds = time.perf_counter() - t0
        replay.close()
    return {
        "events_read": replay.events_read,
        "events_applied": replay.events_applied,
        "seconds": seconds,
        "base_rss_mib": base_rss,
        "peak_rss_mib": peak_rss_mib(),
    }


def verify_phase(job: dict[str, Any]) -> dict[str, Any]:
    from ledger.audit import verify_log

    with open_bench_books(job) as books:
        base_rss = peak_rss_mib()
        t0 = time.perf_counter()
        verdict = verify_log(books.ledger)
        seconds = time.perf_counter() - t0
    return {
        "intact": verdict.intact,
        "count": verdict.count,
        "verdict": str(verdict),
        "seconds": seconds,
        "base_rss_mib": base_rss,
        "peak_rss_mib": peak_rss_mib(),
    }


PHASES = {
    "store": store_phase,
    "baseline": baseline_phase,
    "replay": replay_phase,
    "verify": verify_phase,
}


def child(job: dict[str, Any]) -> int:
    print(json.dumps(PHASES[job["phase"]](job)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(json.loads(sys.argv[2])))
    sys.exit(main())
