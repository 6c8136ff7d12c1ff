"""Benchmark: the KoA-VV settlement workbook of a year, against a bare CSV dump of the same bookings.

    .venv/bin/python benchmarks/export_workbook.py [--bookings N] [--store postgres|sqlite]

A demo year of about N bookings (ledger.demo.generate, deterministic) is stored in a fresh store:
PostgreSQL database `koa_bench_export_<pid>` (dropped at the end, also on error) or an SQLite file in
a temp dir. It is stored through Ledger.import_bookings in runs of at most 100,000 bookings (the
monthly payment runs and single bookings of the demo), plus the demo's approvals and reversals, and
the split view is caught up in an untimed step, so the reports below read the live view as a
`koa export koa-vv` right after the last payment run would. Then, each in its own child process so
that each peak RSS is that phase's own:
  1. baseline: one SELECT of the year's counted bookings from the split view table
     (split_bookings), every row written with the csv module: the least any export of these
     bookings has to do (no shares, no order, no formatting);
  2. workbook: the report 2025 Q4 (cumulative, i.e. the whole year) as of now, assembled through
     report_for (build_report over the live view) and written with write_report(..., "xlsx");
  3. JSON: the same report, written with write_report(..., "json"), for comparison;
  4. check: the workbook's Belege rows (all Belege sheets) are counted back from the file.
Throughputs are also given as a ratio to the baseline, which is measured in the same run on the
same store, so the ratio travels between machines. There are no speed limits here; the run fails
(exit 1) only if a figure is wrong: every reader must have seen exactly the year's counted bookings.
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
SQLITE_FILE = "koa.sqlite"  # ledger.persistence.store_env: <data dir>/koa.sqlite
VIEW_TABLE = "split_bookings"  # projections.split_view: one row per booking, same database
YEAR = 2025
QUARTER = 4  # cumulative from 1 January: the whole year, the largest report of a year
SEED = 2025
# ledger.demo.generate yields per household 12 x (2 x 97 % run rows + ~0.15 single bookings).
BOOKINGS_PER_HOUSEHOLD = 25
HOUSEHOLDS_MAX = 200_000  # ledger.demo.HOUSEHOLDS_MAX
RUN_MAX = 100_000  # bookings per import_bookings call, i.e. per transaction
RECORDED_BY, APPROVED_BY = "sachbearbeitung", "pruefung"  # as `koa demo`: four eyes need two
# The split view's columns behind the Belege sheet's (its shares and federal title are computed,
# not stored). Spelled out here because the baseline must not import the product.
BASELINE_COLUMNS = (
    "booking_key",
    "fiscal_year",
    "quarter",
    "payment_date",
    "service_from",
    "service_to",
    "recorded_at",
    "category",
    "kind",
    "amount_cents",
    "sign",
    "document_ref",
    "case_ref",
    "cost_centre",
    "reverses_key",
    "approved_by",
)
BELEGE_SHEET = "Belege"  # exports.koavv_workbook.belege_sheet_name: "Belege", "Belege 2", ...
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
    # and a KOA_DATABASE_URL or KOA_LAND must not matter either: the child must only ever see the
    # bench store, and the report the default Land.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEDGER_", "SPLITPROJECTION_", "KOA_", "POSTGRES_"))
    }
    env.pop("PERSISTENCE_MODULE", None)
    cmd = [sys.executable, __file__, "--child", json.dumps(job)]
    # Linux carries the parent's RSS at fork over exec into the child's ru_maxrss: the parent
    # therefore never imports the product nor openpyxl, never holds any bookings, and stays small.
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
    decimals: int = 0  # file sizes in MB need one


def print_table(title: str, base_rate: float, table: list[Row]) -> None:
    print(title)
    print(f"{'figure':<58} {'value':>12}  {'unit':<10} {'seconds':>8}  {'÷ base':>7}")
    print("-" * 101)
    for r in table:
        secs = f"{r.seconds:8.3f}" if r.seconds is not None else " " * 8
        ratio = f"{r.value / base_rate:7.3f}" if r.rate else ""
        print(f"{r.label:<58} {r.value:>12,.{r.decimals}f}  {r.unit:<10} {secs}  {ratio:>7}".rstrip())


def report_rows(name: str, fmt: str, phase: dict[str, Any]) -> list[Row]:
    """The rows of one report phase: assembling, writing, both; its memory and its file."""
    n = phase["bookings"]
    assemble, write = phase["assemble_seconds"], phase["write_seconds"]
    total = assemble + write
    return [
        Row(f"{name}: assemble (report_for, as of now)", n / assemble, "bookings/s", assemble, rate=True),
        Row(f'{name}: write (write_report, "{fmt}")', n / write, "bookings/s", write, rate=True),
        Row(f"{name}: total", n / total, "bookings/s", total, rate=True),
        Row(f"peak RSS of the {name} process", phase["peak_rss_mib"], "MiB"),
        Row("  of it before assembling (libraries, pools)", phase["base_rss_mib"], "MiB"),
        Row("  of it up to the report being assembled", phase["assembled_rss_mib"], "MiB"),
        Row(f"size of the {fmt} file", phase["file_bytes"] / 1e6, "MB", decimals=1),
    ]


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
    dbname = f"koa_bench_export_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="koa-bench-export-") as tmp:
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
            # Untimed as far as the table goes: the view is live before anyone exports.
            caught_up = run_child({**job, "phase": "catch-up"}, Path(tmp))
            if args.store == "postgres":
                vacuum(dbname)
            # The baseline first: every phase reads the same, already cached and vacuumed rows.
            base = run_child({**job, "phase": "baseline"}, Path(tmp))
            xlsx = run_child({**job, "phase": "xlsx"}, Path(tmp))
            as_json = run_child({**job, "phase": "json"}, Path(tmp))
            check = run_child({**job, "phase": "check", "file": xlsx["file"]}, Path(tmp))
        finally:
            if args.store == "postgres":
                drop_database(dbname)

    base_rate = base["rows"] / base["seconds"]
    table = [
        Row(
            "baseline: one SELECT from split_bookings, csv module",
            base_rate,
            "rows/s",
            base["seconds"],
            rate=True,
        ),
        Row("peak RSS of the baseline process", base["peak_rss_mib"], "MiB"),
        Row("size of the baseline CSV", base["file_bytes"] / 1e6, "MB", decimals=1),
        *report_rows("workbook", "xlsx", xlsx),
        *report_rows("JSON", "json", as_json),
    ]
    print_table(
        f"KoA-VV report {YEAR} Q{QUARTER} (cumulative, the whole year) as of now: "
        f"{xlsx['bookings']:,} counted bookings, {stored['events']:,} events, {where}",
        base_rate,
        table,
    )
    # The ratio the benchmark is for: how many times the bare dump's time per booking each takes.
    per_base = base["seconds"] / base["rows"]
    for name, phase in (("workbook", xlsx), ("JSON", as_json)):
        total = phase["assemble_seconds"] + phase["write_seconds"]
        print(
            f"{name} ÷ baseline: {total / phase['bookings'] / per_base:.1f} × the baseline's time per booking"
        )
    print(
        f"workbook: {check['belege_rows']:,} rows on {len(check['belege_sheets'])} Belege sheet(s) "
        f"({', '.join(check['belege_sheets'])}), counted back from the file in {check['seconds']:.1f} s"
    )
    print(
        f"context, not a target: storing took {stored['seconds']:.1f} s "
        f"({stored['bookings'] / stored['seconds']:,.0f} bookings/s) in {stored['runs']} "
        f"import_bookings runs of at most {RUN_MAX:,},\n"
        f"  {stored['approvals']} approvals and {stored['reversals']} reversals; "
        f"peak RSS of the storing process {stored['peak_rss_mib']:,.0f} MiB;\n"
        f"  the untimed catch-up of the split view applied {caught_up['events']:,} events "
        f"in {caught_up['seconds']:.1f} s"
    )

    # Correctness, not speed. Every demo booking belongs to the year and counts (the large ones are
    # approved, the run-off invoices fall within the run-off period), and so does each reversal's
    # counter-booking: the Belege must list exactly these, and every reader must agree.
    expected = stored["bookings"] + stored["reversals"]
    counts = {
        "the generator (bookings + reversals' counter-bookings)": expected,
        "the split totals (booking_count of the year)": caught_up["totals_count"],
        "the baseline's SELECT of counted bookings": base["rows"],
        "the workbook report (len(report.belege))": xlsx["bookings"],
        "the JSON report (len(report.belege))": as_json["bookings"],
        "the workbook's Belege rows": check["belege_rows"],
    }
    problems = [f"{what}: {n:,}, expected {expected:,}" for what, n in counts.items() if n != expected]
    if caught_up["position"] != stored["events"]:
        problems.append(f"the catch-up reached position {caught_up['position']:,} of {stored['events']:,}")
    for name, phase in (("workbook", xlsx), ("JSON", as_json)):
        if phase["last_position"] != stored["events"]:
            problems.append(
                f"the {name} report is as of position {phase['last_position']:,}, "
                f"not the last event {stored['events']:,}"
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


def catch_up_phase(job: dict[str, Any]) -> dict[str, Any]:
    """Bring the split view up to the last event, so the timed reports find nothing left to apply
    (report_for still asks, which costs one empty page of the log)."""
    from projections.split_projection import catch_up

    with open_bench_books(job) as books:
        result = catch_up(books.ledger, books.split_view)
        totals_count = sum(t.booking_count for t in books.split_view.totals(YEAR))
    return {
        "events": result.events,
        "position": result.position,
        "seconds": result.seconds,
        "totals_count": totals_count,
    }


def baseline_phase(job: dict[str, Any]) -> dict[str, Any]:
    """One SELECT of the year's counted bookings, each row handed to csv.writer as it comes."""
    import csv

    columns = ", ".join(BASELINE_COLUMNS)
    if job["store"] == "postgres":
        query: Any = sql.SQL("SELECT {} FROM {}.{} WHERE fiscal_year = %s AND counted").format(
            sql.SQL(columns), sql.Identifier(SCHEMA), sql.Identifier(VIEW_TABLE)
        )
        params: tuple = (YEAR,)
        conn: Any = psycopg.connect(dbname=job["dbname"], autocommit=True, connect_timeout=10, **PG)
    else:
        # SQLite stores the view's booleans as integers.
        query = f"SELECT {columns} FROM {VIEW_TABLE} WHERE fiscal_year = ? AND counted = 1"
        params = (YEAR,)
        conn = sqlite3.connect(f"file:{Path(job['dir']) / SQLITE_FILE}?mode=ro", uri=True)
    path = Path(job["dir"]) / f"baseline-{YEAR}.csv"
    rows = 0
    try:
        t0 = time.perf_counter()
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter=";", lineterminator="\n")
            writer.writerow(BASELINE_COLUMNS)
            for row in conn.execute(query, params):
                writer.writerow(row)
                rows += 1
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return {
        "rows": rows,
        "seconds": seconds,
        "file_bytes": path.stat().st_size,
        "peak_rss_mib": peak_rss_mib(),
    }


def report_phase(job: dict[str, Any]) -> dict[str, Any]:
    """The report as `koa export koa-vv --year 2025 --quarter 4 [--format json]` makes it."""
    from ledger.cli_settlement import report_for, write_report

    fmt = job["phase"]
    path = Path(job["dir"]) / f"koa-vv-{YEAR}-Q{QUARTER}.{fmt}"
    with open_bench_books(job) as books:
        base_rss = peak_rss_mib()
        t0 = time.perf_counter()
        with report_for(books, YEAR, QUARTER, None) as report:
            t1 = time.perf_counter()
            # ru_maxrss only grows: read now, it is the peak of assembling alone.
            assembled_rss = peak_rss_mib()
            write_report(report, path, fmt)
            t2 = time.perf_counter()
            bookings, last_position = len(report.belege), report.last_position
    return {
        "bookings": bookings,
        "last_position": last_position,
        "assemble_seconds": t1 - t0,
        "write_seconds": t2 - t1,
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "base_rss_mib": base_rss,
        "assembled_rss_mib": assembled_rss,
        "peak_rss_mib": peak_rss_mib(),
    }


def check_phase(job: dict[str, Any]) -> dict[str, Any]:
    """Count the bookings on the workbook's Belege sheets, as a reader of the file finds them."""
    from openpyxl import load_workbook

    t0 = time.perf_counter()
    # read_only: rows are parsed lazily from the zip, nothing of the sheet is kept.
    wb = load_workbook(job["file"], read_only=True)
    try:
        sheets = [n for n in wb.sheetnames if n == BELEGE_SHEET or n.startswith(BELEGE_SHEET + " ")]
        rows = 0
        for name in sheets:
            ws = wb[name]
            if ws.max_row is None:
                # openpyxl's write-only mode writes no <dimension> element, so the size is not
                # declared: count the rows once (streamed, one row at a time).
                ws.calculate_dimension(force=True)
            rows += ws.max_row - 1  # row 1 is the header
    finally:
        wb.close()
    return {"belege_rows": rows, "belege_sheets": sheets, "seconds": time.perf_counter() - t0}


PHASES = {
    "store": store_phase,
    "catch-up": catch_up_phase,
    "baseline": baseline_phase,
    "xlsx": report_phase,
    "json": report_phase,
    "check": check_phase,
}


def child(job: dict[str, Any]) -> int:
    print(json.dumps(PHASES[job["phase"]](job)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(json.loads(sys.argv[2])))
    sys.exit(main())
