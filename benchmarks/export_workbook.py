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
  4. check: the bookings of the Belegliste beside the workbook are counted back from the file, and
     its SHA-256 compared with the one the workbook states.
Throughputs are also given as a ratio to the baseline, which is measured in the same run on the
same store, so the ratio travels between machines. There are no speed limits here; the run fails
(exit 1) only if a figure is wrong: every reader must have seen exactly the year's counted bookings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    SCHEMA,
    YEAR,
    Job,
    Row,
    baseline_connection,
    demo_year,
    exit_code,
    exit_on_sigterm,
    main_or_phase,
    open_bench_books,
    peak_rss_mib,
    print_table,
    run_phase,
    store_year,
    storing_context,
    vacuum,
    year_options,
    year_store,
)
from psycopg import sql

VIEW_TABLE = "split_bookings"  # projections.split_view: one row per booking, same database
QUARTER = 4  # cumulative from 1 January: the whole year, the largest report of a year
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


# ---- parent: orchestration, table ----------------------------------------------------------------


def report_rows(name: str, fmt: str, phase: dict[str, Any]) -> list[Row]:
    """The rows of one report phase: assembling, writing, both; its memory and its file."""
    n = phase["bookings"]
    assemble, write = phase["assemble_seconds"], phase["write_seconds"]
    total = assemble + write
    return [
        Row.throughput(f"{name}: assemble (report_for, as of now)", n, "bookings/s", assemble),
        Row.throughput(f'{name}: write (write_report, "{fmt}")', n, "bookings/s", write),
        Row.throughput(f"{name}: total", n, "bookings/s", total),
        Row(f"peak RSS of the {name} process", phase["peak_rss_mib"], "MiB"),
        Row("  of it before assembling (libraries, pools)", phase["base_rss_mib"], "MiB"),
        Row("  of it up to the report being assembled", phase["assembled_rss_mib"], "MiB"),
        Row(f"size of the {fmt} file", phase["file_bytes"] / 1e6, "MB", decimals=1),
    ]


def main(argv: list[str] | None = None) -> int:
    args = year_options(__doc__.splitlines()[0], argv)
    exit_on_sigterm()
    with year_store(args, "export") as (job, where):
        stored = run_phase(__file__, job, "store")
        # Untimed as far as the table goes: the view is live before anyone exports.
        caught_up = run_phase(__file__, job, "catch-up")
        if args.store == "postgres":
            vacuum(job["dbname"])
        # The baseline first: every phase reads the same, already cached and vacuumed rows.
        base = run_phase(__file__, job, "baseline")
        xlsx = run_phase(__file__, job, "xlsx")
        as_json = run_phase(__file__, job, "json")
        check = run_phase(__file__, job, "check", file=xlsx["file"])

    base_rate = base["rows"] / base["seconds"]
    table = [
        Row.throughput(
            "baseline: one SELECT from split_bookings, csv module", base["rows"], "rows/s", base["seconds"]
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
        label_width=58,
        unit_width=10,
    )
    # The ratio the benchmark is for: how many times the bare dump's time per booking each takes.
    per_base = base["seconds"] / base["rows"]
    for name, phase in (("workbook", xlsx), ("JSON", as_json)):
        total = phase["assemble_seconds"] + phase["write_seconds"]
        print(
            f"{name} ÷ baseline: {total / phase['bookings'] / per_base:.1f} × the baseline's time per booking"
        )
    print(
        f"workbook: {check['belege_rows']:,} bookings in the Belegliste beside it "
        f"({check['list_bytes'] / 1e6:.1f} MB), counted back in {check['seconds']:.1f} s; "
        f"its SHA-256 {'is' if check['hash_matches'] else 'is NOT'} the one the workbook states"
    )
    print(
        f"{storing_context(stored)};\n"
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
        "the bookings of the workbook's Belegliste": check["belege_rows"],
    }
    problems = [f"{what}: {n:,}, expected {expected:,}" for what, n in counts.items() if n != expected]
    if not check["hash_matches"]:
        problems.append("the Belegliste's SHA-256 is not the one the workbook states")
    if caught_up["position"] != stored["events"]:
        problems.append(f"the catch-up reached position {caught_up['position']:,} of {stored['events']:,}")
    for name, phase in (("workbook", xlsx), ("JSON", as_json)):
        if phase["last_position"] != stored["events"]:
            problems.append(
                f"the {name} report is as of position {phase['last_position']:,}, "
                f"not the last event {stored['events']:,}"
            )
    return exit_code(problems)


# ---- children: one phase each ------------------------------------------------------------------


def store_phase(job: Job) -> dict[str, Any]:
    return store_year(job, demo_year(job))  # the demo generated untimed


def catch_up_phase(job: Job) -> dict[str, Any]:
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


def baseline_phase(job: Job) -> dict[str, Any]:
    """One SELECT of the year's counted bookings, each row handed to csv.writer as it comes."""
    import csv

    columns = ", ".join(BASELINE_COLUMNS)
    if job["store"] == "postgres":
        query: Any = sql.SQL("SELECT {} FROM {}.{} WHERE fiscal_year = %s AND counted").format(
            sql.SQL(columns), sql.Identifier(SCHEMA), sql.Identifier(VIEW_TABLE)
        )
        params: tuple = (YEAR,)
    else:
        # SQLite stores the view's booleans as integers.
        query = f"SELECT {columns} FROM {VIEW_TABLE} WHERE fiscal_year = ? AND counted = 1"
        params = (YEAR,)
    conn = baseline_connection(job)
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


def report_phase(job: Job) -> dict[str, Any]:
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


def check_phase(job: Job) -> dict[str, Any]:
    """Count the bookings in the Belegliste beside the workbook, and check its hash is the one
    the workbook's Protokoll states."""
    import hashlib

    from openpyxl import load_workbook

    t0 = time.perf_counter()
    workbook = Path(job["file"])
    listing = workbook.with_name(workbook.stem + ".belege.csv")
    h, lines = hashlib.sha256(), 0
    with listing.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            lines += block.count(b"\n")
    wb = load_workbook(workbook, read_only=True)
    try:
        stated = {r[0]: r[1] for r in wb["Protokoll"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
    finally:
        wb.close()
    return {
        "belege_rows": lines - 1,  # line 1 is the header
        "hash_matches": stated.get("SHA-256 der Belegliste") == h.hexdigest(),
        "list_bytes": listing.stat().st_size,
        "seconds": time.perf_counter() - t0,
    }


PHASES = {
    "store": store_phase,
    "catch-up": catch_up_phase,
    "baseline": baseline_phase,
    "xlsx": report_phase,
    "json": report_phase,
    "check": check_phase,
}


if __name__ == "__main__":
    sys.exit(main_or_phase(main, PHASES))
