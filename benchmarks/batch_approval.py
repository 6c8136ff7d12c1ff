"""Benchmark: a batch approval (Sammelanordnung) of N bookings, against one plain read of their events.

    .venv/bin/python benchmarks/batch_approval.py [--bookings N] [--repeat R] [--store postgres|sqlite]

Each repetition gets a fresh store: PostgreSQL database `koa_bench_approve_<pid>` (dropped at the
end, also on error) or an SQLite file in a temp dir. N bookings above the approval threshold (each
awaiting its second pair of eyes) are stored by one Ledger.import_bookings, untimed. Then, each in
its own child process:
  1. baseline: one plain SELECT of the N bookings' events by their ids, each state parsed as JSON:
     the least any reader of these bookings has to do;
  2. read: the N bookings read without approving, by the library's repository one key at a time
     (what a batch approval did before) and by the ledger's bulk reader (Ledger.find_bookings);
  3. approve: Ledger.approve_bookings of all N keys in one call (`koa approve --keys-file`,
     POST /bookings/approvals): one transaction, all or none. Every key must end up approved.
Figures are medians over the repetitions; throughputs are also given as a ratio to the baseline,
which is measured in the same run on the same store, so the ratio travels between machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    APPROVED_BY,
    RECORDED_BY,
    SCHEMA,
    Job,
    Row,
    baseline_connection,
    exit_code,
    exit_on_sigterm,
    main_or_phase,
    open_bench_books,
    peak_rss_mib,
    print_table,
    run_phase,
    vacuum,
    year_store,
)
from psycopg import sql

PG_EVENTS_TABLE = "ledger_events"  # the library's table for the application named "Ledger"
SQLITE_EVENTS_TABLE = "stored_events"
KEYS_FILE = "keys.txt"  # one key per line, as `koa approve --keys-file` reads it
IDS_FILE = "ids.txt"  # their aggregate ids (hex), for the baseline, which must not load the product
BOOKINGS_MAX = 10_000  # ledger.application.APPROVE_KEYS_MAX


# ---- parent: orchestration, table ----------------------------------------------------------------


def options(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bookings", type=int, default=BOOKINGS_MAX, help="keys in the batch")
    ap.add_argument("--repeat", type=int, default=3, help="fresh stores, medians")
    ap.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    args = ap.parse_args(argv)
    if not 1 <= args.bookings <= BOOKINGS_MAX:
        ap.error(f"--bookings must be between 1 and {BOOKINGS_MAX:,} (one batch)")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    args.households = 0  # harness.year_store names the job's size; this store holds no demo year
    return args


def measure(bookings: int, store: str = "postgres", repeat: int = 1) -> dict[str, Any]:
    """Medians of every figure over `repeat` fresh stores, and where they were measured (for
    this script's table and bench_all's)."""
    args = argparse.Namespace(store=store, households=0)
    runs: list[dict[str, Any]] = []
    for _ in range(repeat):
        with year_store(args, "approve") as (job, where):
            job = {**job, "bookings": bookings}
            run_phase(__file__, job, "store")
            if store == "postgres":
                vacuum(job["dbname"])
            base = run_phase(__file__, job, "baseline")  # first: the others read cached rows too
            read = run_phase(__file__, job, "read")
            approve = run_phase(__file__, job, "approve")
        runs.append({"base": base, "read": read, "approve": approve})

    def median(phase: str, key: str) -> float:
        return statistics.median(r[phase][key] for r in runs)

    return {
        "where": where,
        "bookings": bookings,
        "repeat": repeat,
        "base_rows": runs[0]["base"]["rows"],
        "base_s": median("base", "seconds"),
        "per_key_s": median("read", "per_key_seconds"),
        "bulk_s": median("read", "bulk_seconds"),
        "approve_s": median("approve", "seconds"),
        "approve_runs_s": [r["approve"]["seconds"] for r in runs],
        "approved": min(r["approve"]["approved"] for r in runs),
        "peak_rss_mib": max(r["approve"]["peak_rss_mib"] for r in runs),
        "base_counts": [r["base"]["rows"] for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    exit_on_sigterm()
    m = measure(args.bookings, args.store, args.repeat)
    n = m["bookings"]
    table = [
        Row.throughput(
            f"baseline: one SELECT of their {m['base_rows']:,} events, JSON", n, "bookings/s", m["base_s"]
        ),
        Row.throughput("read: repository.get per key (the old path)", n, "bookings/s", m["per_key_s"]),
        Row.throughput("read: Ledger.find_bookings (in bulk: pages of ids)", n, "bookings/s", m["bulk_s"]),
        Row.throughput("approve_bookings: the whole batch, one save", n, "bookings/s", m["approve_s"]),
        Row("peak RSS of the approving process", m["peak_rss_mib"], "MiB"),
    ]
    print_table(
        f"Batch approval of {n:,} bookings, {m['where']} (median of {m['repeat']})",
        n / m["base_s"],
        table,
        label_width=52,
        unit_width=10,
    )
    print("approve_bookings, each run: " + ", ".join(f"{s:.3f} s" for s in m["approve_runs_s"]))
    problems = []
    if m["approved"] != n:
        problems.append(f"approve_bookings approved {m['approved']:,} of {n:,} bookings")
    if any(rows != n for rows in m["base_counts"]):
        problems.append(f"the baseline read {m['base_counts']} events, expected {n:,} each time")
    return exit_code(problems)


# ---- children: one phase each ------------------------------------------------------------------


def store_phase(job: Job) -> dict[str, Any]:
    """N bookings of 20,000.00 EUR (above the approval threshold), awaiting approval."""
    from datetime import date

    from domain.booking import BookingContent, Kind, booking_id

    keys = [f"SA-202503-{i:06d}" for i in range(job["bookings"])]
    contents = [
        BookingContent(
            key=key,
            kind=Kind.PAYMENT,
            amount_cents=2_000_000,
            category="egt.aktivierung",
            payment_date=date(2025, 3, 14),
            service_from=date(2025, 3, 1),
            service_to=date(2025, 3, 31),
            document_ref="ZA-202503-EGT",
            case_ref="",
            contract_ref="",
            cost_centre="JC-NORD",
            text="Maßnahme März",
        )
        for key in keys
    ]
    with open_bench_books(job) as books:
        result = books.ledger.import_bookings(contents, recorded_by=RECORDED_BY)
        awaiting = books.ledger.get_booking(keys[-1]).state
    if result.created != len(keys) or awaiting != "awaiting_approval":
        raise SystemExit(f"stored {result.created} of {len(keys)}; the last is {awaiting}")
    Path(job["dir"], KEYS_FILE).write_text("".join(k + "\n" for k in keys))
    Path(job["dir"], IDS_FILE).write_text("".join(booking_id(k).hex + "\n" for k in keys))
    return {"created": result.created}


def baseline_phase(job: Job) -> dict[str, Any]:
    """One statement for every event of the N aggregates; each state parsed as JSON."""
    ids = Path(job["dir"], IDS_FILE).read_text().split()
    if job["store"] == "postgres":
        query: Any = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = ANY(%s::uuid[])"
        ).format(sql.Identifier(SCHEMA), sql.Identifier(PG_EVENTS_TABLE))
        param: Any = "{" + ",".join(ids) + "}"
    else:
        query = (
            f"SELECT originator_id, originator_version, topic, state FROM {SQLITE_EVENTS_TABLE} "
            "WHERE originator_id IN (SELECT value FROM json_each(?))"
        )
        param = json.dumps(ids)
    conn = baseline_connection(job)
    try:
        t0 = time.perf_counter()
        rows = conn.execute(query, (param,)).fetchall()
        keys = {json.loads(state)["key"] for _id, _version, _topic, state in rows}
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    if len(keys) != len(ids):
        raise SystemExit(f"the baseline found {len(keys)} of {len(ids)} bookings")
    return {"rows": len(rows), "seconds": seconds}


def read_phase(job: Job) -> dict[str, Any]:
    from domain.booking import booking_id

    keys = Path(job["dir"], KEYS_FILE).read_text().split()
    with open_bench_books(job) as books:
        ledger = books.ledger
        t0 = time.perf_counter()
        one_by_one = [ledger.repository.get(booking_id(k)) for k in keys]
        t1 = time.perf_counter()
        bulk = ledger.find_bookings(keys)
        t2 = time.perf_counter()
    if [b.key for b in one_by_one] != keys or [b.key for b in bulk] != keys:
        raise SystemExit("the readers did not return every booking in the keys' order")
    return {"per_key_seconds": t1 - t0, "bulk_seconds": t2 - t1}


def approve_phase(job: Job) -> dict[str, Any]:
    keys = Path(job["dir"], KEYS_FILE).read_text().split()
    with open_bench_books(job) as books:
        ledger = books.ledger
        before = ledger.max_notification_id()
        t0 = time.perf_counter()
        approved = ledger.approve_bookings(keys, approved_by=APPROVED_BY)
        seconds = time.perf_counter() - t0
        written = ledger.max_notification_id() - before
        stored = sum(b is not None and b.state == "approved" for b in ledger.find_bookings(keys))
    if written != len(keys) or len(approved) != len(keys):
        raise SystemExit(f"{len(approved)} approved, {written} events written for {len(keys)} keys")
    return {"seconds": seconds, "approved": stored, "peak_rss_mib": peak_rss_mib()}


PHASES = {
    "store": store_phase,
    "baseline": baseline_phase,
    "read": read_phase,
    "approve": approve_phase,
}


if __name__ == "__main__":
    sys.exit(main_or_phase(main, PHASES))
