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

import json
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    SCHEMA,
    Job,
    Row,
    baseline_connection,
    children_peak_rss_mib,
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

PG_EVENTS_TABLE = "ledger_events"  # the library's table for the application named "Ledger"
SQLITE_EVENTS_TABLE = "stored_events"  # the library's SQLite table; rowid is the log position
BASELINE_PAGE = 10_000


# ---- parent: orchestration, table ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = year_options(__doc__.splitlines()[0], argv)
    exit_on_sigterm()
    with year_store(args, "replay") as (job, where):
        stored = run_phase(__file__, job, "store")
        if args.store == "postgres":
            vacuum(job["dbname"])
        # The baseline first: every phase reads the same, already cached and vacuumed rows.
        base = run_phase(__file__, job, "baseline")
        replay = run_phase(__file__, job, "replay")
        verify = run_phase(__file__, job, "verify")

    events = stored["events"]
    base_rate = base["rows"] / base["seconds"]
    table = [
        Row.throughput(
            f"baseline: read rows in pages of {BASELINE_PAGE:,}, sum amounts",
            base["rows"],
            "rows/s",
            base["seconds"],
        ),
        Row.throughput(
            "replay as of now (replay_as_of, fresh SQLite view)",
            replay["events_read"],
            "events/s",
            replay["seconds"],
        ),
        Row.throughput("verify the seal chain (verify_log)", verify["count"], "events/s", verify["seconds"]),
        Row("peak RSS of the baseline process", base["peak_rss_mib"], "MiB"),
        Row("peak RSS of the replay process", replay["peak_rss_mib"], "MiB"),
        Row("  of it before the replay (libraries, pools)", replay["base_rss_mib"], "MiB"),
        *(
            [Row("peak RSS of the replay's writer process", replay["writer_peak_rss_mib"], "MiB")]
            if replay["writer_peak_rss_mib"] is not None
            else []
        ),
        Row("peak RSS of the verify process", verify["peak_rss_mib"], "MiB"),
        Row("  of it before verifying (libraries, pools)", verify["base_rss_mib"], "MiB"),
    ]
    print_table(
        f"Replay and verification of a year: {events:,} events of {stored['bookings']:,} bookings, {where}",
        base_rate,
        table,
        label_width=54,
        unit_width=9,
    )
    print(f"verify_log: {verify['verdict']}")
    print(storing_context(stored))

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
    return exit_code(problems)


# ---- children: one phase each ------------------------------------------------------------------


def store_phase(job: Job) -> dict[str, Any]:
    demo = demo_year(job)  # untimed
    # The split view's money, read back by the baseline: every Recorded event's amount, including
    # the counter-bookings of the reversals (they repeat the original's amount).
    amounts = {c.key: c.amount_cents for _, run in demo.runs for c in run}
    amount_cents = sum(amounts.values()) + sum(amounts[key] for key, _ in demo.reversals)
    return {**store_year(job, demo), "amount_cents": amount_cents}


def baseline_phase(job: Job) -> dict[str, Any]:
    """Keyset pages of (position, state), each state parsed as JSON and its amount added up."""
    rows = total = 0
    if job["store"] == "postgres":
        query: Any = sql.SQL(
            "SELECT notification_id, state FROM {}.{} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(sql.Identifier(SCHEMA), sql.Identifier(PG_EVENTS_TABLE))
    else:
        query = f"SELECT rowid, state FROM {SQLITE_EVENTS_TABLE} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    # Each page is its own statement, as the product's readers page the log.
    conn = baseline_connection(job)
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


def replay_phase(job: Job) -> dict[str, Any]:
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
        "writer_peak_rss_mib": children_peak_rss_mib() if replay.in_writer_process else None,
    }


def verify_phase(job: Job) -> dict[str, Any]:
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


if __name__ == "__main__":
    sys.exit(main_or_phase(main, PHASES))
