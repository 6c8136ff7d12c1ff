"""Benchmark: importing a monthly payment run (Zahllauf) into PostgreSQL, against a plain COPY.

    .venv/bin/python benchmarks/import_payment_run.py [--rows N] [--repeat R] [--big-rows M]

Each repetition gets a fresh database `koa_bench_<pid>` (dropped at the end, also on error):
  1. baseline: text COPY of the same CSV into a bare table, one transaction; then the floor of any
     idempotent import, all in SQL (staged, cast, stored under a unique key; no rules, no events);
  2. the product path in a child process, so that its peak RSS is its own: the file streamed
     through Ledger.import_stream (read, validate, store in one transaction, as `koa import
     payments` does), a second streamed pass that only reads and validates (its share of the
     time), the split view caught up, exactly N bookings checked, then the same file imported
     again (the idempotent path);
  3. the library's default path on a fresh database: one Booking aggregate per row, 100 per save();
  4. with --big-rows M, a file of M rows imported streamed, for the peak RSS of a big run.
Figures are medians over the repetitions; throughputs are also given as a ratio to the baseline,
which is measured in the same run on the same server, so the ratio travels between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from harness import (
    Row,
    connect,
    create_database,
    database_url,
    describe_server,
    drop_database,
    exit_on_sigterm,
    peak_rss_mib,
    print_table,
    run_child,
)

SEED = 202503
COPY_CHUNK_BYTES = 1 << 20
ROWS_MAX = 1_000_000  # ledger.application.IMPORT_ROWS_MAX; also what 7-digit keys can hold

# The file's columns and the type each gets in the baseline table. Dates are typed, so PostgreSQL
# parses them as the ledger does; the amount stays text, because COPY cannot read a decimal comma.
COLUMNS = {
    "key": "text",
    "kind": "text",
    "amount": "text",
    "category": "text",
    "payment_date": "date",
    "service_from": "date",
    "service_to": "date",
    "document_ref": "text",
    "case_ref": "text",
    "cost_centre": "text",
    "text": "text",
}
HEADER = ";".join(COLUMNS)
BASELINE_DDL = "CREATE TABLE payment_run_copy ({})".format(
    ", ".join(f"{name} {type_}" for name, type_ in COLUMNS.items())
)
COPY_OPTIONS = "FORMAT csv, DELIMITER ';', HEADER true"
BASELINE_COPY = f"COPY payment_run_copy ({', '.join(COLUMNS)}) FROM STDIN ({COPY_OPTIONS})"

# The floor: the least an idempotent import does, all inside PostgreSQL and in its most favourable
# form: the file copied into a staging table, the amount and the dates cast and checked, every line
# kept under its key (a unique index: a second import of the key is found). No domain rule, no
# event, no seal: whatever the product does on top of this comes on top of its time.
FLOOR_DDL = (
    "CREATE TABLE payment_run_lines (key text PRIMARY KEY, amount_cents bigint NOT NULL, "
    "payment_date date NOT NULL, service_from date NOT NULL, service_to date NOT NULL, "
    "CHECK (service_to >= service_from))"
)
FLOOR_STAGE = "CREATE TEMPORARY TABLE payment_run_stage ({}) ON COMMIT DROP".format(
    ", ".join(f"{name} text" for name in COLUMNS)
)
FLOOR_COPY = f"COPY payment_run_stage ({', '.join(COLUMNS)}) FROM STDIN ({COPY_OPTIONS})"
FLOOR_INSERT = (
    "INSERT INTO payment_run_lines SELECT key, replace(replace(amount, '.', ''), ',', '')::bigint, "
    "payment_date::date, service_from::date, service_to::date FROM payment_run_stage"
)


# ---- the input file ---------------------------------------------------------------------------


def german_amount(cents: int) -> str:
    """1234.56 EUR as '1.234,56', as a municipal payment system exports it."""
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def write_payment_run(path: Path, rows: int, seed: int = SEED, prefix: str = "LR-202503") -> None:
    """The March 2025 run paid on 27 Feb: per household one Bürgergeld and one KdU row.
    `prefix` starts every key (another than the demo year's "LR-..." to import into its store)."""
    rng = random.Random(seed)
    centres = ("JC-NORD", "JC-SUED", "JC-MITTE", "JC-WEST")
    # Written row by row: the parent must stay small (see harness).
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER + "\n")
        for i in range(rows):
            n = i // 2 + 1  # household number
            case = f"08221BG{n:07d}"
            cc = centres[n % len(centres)]
            if i % 2 == 0:  # Regelbedarf and Mehrbedarfe of the household
                suffix, cat, text = "BG", "buergergeld", "Regelbedarf März"
                cents = rng.randint(250_00, 1_600_00)
            else:  # rent and heating
                suffix, cat, text = "KDU", "kdu", "Unterkunft und Heizung März"
                cents = rng.randint(380_00, 1_150_00)
            f.write(
                f"{prefix}-{n:07d}-{suffix};payment;{german_amount(cents)};{cat};"
                f"2025-02-27;2025-03-01;2025-03-31;ZA-202503;{case};{cc};{text}\n"
            )


# ---- parent: database, baseline, orchestration ---------------------------------------------------


def copy_baseline(dbname: str, path: Path, rows: int) -> float:
    """Seconds for COPY + commit of the file into a bare table (created beforehand, untimed)."""
    with connect(dbname) as conn, path.open("rb") as f:
        conn.execute(BASELINE_DDL)
        conn.commit()
        # Streamed from the file like the product reads it (from the page cache), never held whole.
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(BASELINE_COPY) as copy:
                while chunk := f.read(COPY_CHUNK_BYTES):
                    copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - t0
        (count,) = conn.execute("SELECT count(*) FROM payment_run_copy").fetchone()
    if count != rows:
        raise SystemExit(f"baseline COPY loaded {count} rows, expected {rows}")
    return seconds


def sql_floor(dbname: str, path: Path, rows: int) -> float:
    """Seconds for the floor (FLOOR_*): staged, cast, stored under a unique key, in one transaction."""
    with connect(dbname) as conn, path.open("rb") as f:
        conn.execute(FLOOR_DDL)
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(FLOOR_STAGE)
            with cur.copy(FLOOR_COPY) as copy:
                while chunk := f.read(COPY_CHUNK_BYTES):
                    copy.write(chunk)
            cur.execute(FLOOR_INSERT)
            count = cur.rowcount
        conn.commit()
        seconds = time.perf_counter() - t0
    if count != rows:
        raise SystemExit(f"the SQL floor stored {count} lines, expected {rows}")
    return seconds


def run_import(dbname: str, path: Path, rows: int, data_dir: Path, phase: str = "product") -> dict:
    """One phase in a child process; the parent never holds the file or its rows."""
    return run_child(
        [__file__, "--child", phase, dbname, str(path), str(rows)],
        data_dir,
        name=f"import ({phase})",
        watch_db=dbname,
        stuck="the import is stuck: the server is still waiting for the statement's data "
        "that the client never sent",
    )


def measure(rows: int, repeat: int = 1, big_rows: int = 0) -> tuple[str, float, list[Row]]:
    """(title, COPY rows/s, rows of the table): the whole benchmark, for this script and bench_all."""
    dbname = f"koa_bench_{os.getpid()}"
    copies: list[float] = []
    floors: list[float] = []
    children: list[dict] = []
    library: list[dict] = []
    big: dict = {}
    with tempfile.TemporaryDirectory(prefix="koa-bench-") as tmp:
        path = Path(tmp) / "zahllauf-2025-03.csv"
        write_payment_run(path, rows)
        where = describe_server()
        try:
            for _ in range(repeat):
                create_database(dbname)
                copies.append(copy_baseline(dbname, path, rows))
                floors.append(sql_floor(dbname, path, rows))
                children.append(run_import(dbname, path, rows, Path(tmp)))
                create_database(dbname)
                library.append(run_import(dbname, path, rows, Path(tmp), "library"))
            if big_rows:
                path.unlink()
                big_path = Path(tmp) / "zahllauf-gross.csv"
                write_payment_run(big_path, big_rows)
                create_database(dbname)
                big = run_import(dbname, big_path, big_rows, Path(tmp), "big")
        finally:
            drop_database(dbname)

    n = rows

    def med(key: str, of: list[dict] = children) -> float:
        return statistics.median(c[key] for c in of)

    def rate(label: str, seconds: float, unit: str) -> Row:
        return Row.throughput(label, n, unit, seconds)

    copy_s = statistics.median(copies)
    table = [
        rate("baseline: COPY text into a bare table", copy_s, "rows/s"),
        rate("floor: in SQL alone, keyed (no rules, no events)", statistics.median(floors), "rows/s"),
        rate("import: read + validate + store, streamed (atomic)", med("total_s"), "bookings/s"),
        rate("  of it read + validate alone (a streamed pass)", med("parse_s"), "rows/s"),
        Row("  of it with the event table locked (others wait)", med("lock_s"), "s", decimals=2),
        rate("library path: aggregate per booking, 100 per save", med("total_s", library), "bookings/s"),
        rate("split view catch-up (1 event per booking)", med("catchup_s"), "events/s"),
        rate("re-import, idempotent (0 created)", med("reimport_s"), "rows/s"),
        Row("peak RSS of the import process", max(c["peak_rss_mib"] for c in children), "MiB"),
        Row(
            "  of it before the import (libraries, pools)",
            max(c["base_rss_mib"] for c in children),
            "MiB",
        ),
    ]
    if big:
        table += [
            Row.throughput(f"import of {big_rows:,} rows, streamed", big_rows, "bookings/s", big["total_s"]),
            Row(f"peak RSS of the {big_rows:,}-row import", big["peak_rss_mib"], "MiB"),
            Row("  of it with the event table locked (others wait)", big["lock_s"], "s", decimals=2),
        ]
    runs = "1 run" if repeat == 1 else f"median of {repeat} runs"
    return f"Payment run import, {n:,} rows ({runs}), {where}", n / copy_s, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=180_000, help="rows in the payment run")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions, each on a fresh database")
    ap.add_argument(
        "--big-rows", type=int, default=0, help="also import a file of this many rows (peak RSS); 0: not"
    )
    args = ap.parse_args(argv)
    if not 2 <= args.rows <= ROWS_MAX or not 0 <= args.big_rows <= ROWS_MAX:
        ap.error(f"--rows and --big-rows must be between 2 and {ROWS_MAX}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    exit_on_sigterm()
    title, base, table = measure(args.rows, args.repeat, args.big_rows)
    print_table(title, base, table, label_width=52, unit_width=11, ratio_head="÷ COPY")
    return 0


# ---- child: the product path -------------------------------------------------------------------


def child(phase: str, dbname: str, path: Path, rows: int) -> int:
    # Imported only here: the parent never needs the product code, and stays small and quick.
    from ledger.bootstrap import open_books
    from ledger.payment_run import open_payment_run
    from ledger.settings import Settings
    from projections.split_projection import catch_up

    def fail(message: str) -> NoReturn:
        raise SystemExit(f"import check failed: {message}")

    settings = Settings(database_url=database_url(dbname), data_dir=path.parent)
    with open_books(settings) as books:
        ledger = books.ledger
        base_rss = peak_rss_mib()
        if phase == "library":
            print(json.dumps(library_path(ledger, path, rows)))
            return 0

        t0 = time.perf_counter()
        with open_payment_run(path, ledger.catalogue) as run:
            result = ledger.import_stream(run, recorded_by="bench")
        t1 = time.perf_counter()
        if result.created != rows or result.unchanged != 0:
            fail(f"created {result.created}, unchanged {result.unchanged}, expected {rows} new")
        if phase == "big":
            print(
                json.dumps(
                    {"total_s": t1 - t0, "lock_s": result.lock_held_ms / 1000, "peak_rss_mib": peak_rss_mib()}
                )
            )
            return 0

        t2 = time.perf_counter()
        with open_payment_run(path, ledger.catalogue) as run:
            checked = sum(1 for c in run if c is not None)
        t3 = time.perf_counter()
        if checked != rows or run.errors:
            fail(f"{len(run.errors)} bad rows, {checked} read: {run.errors[:3]}")

        t4 = time.perf_counter()
        caught = catch_up(ledger, books.split_view)
        t5 = time.perf_counter()
        stored = ledger.max_notification_id()
        counted = sum(t.booking_count for t in books.split_view.totals(2025))
        if stored < rows or counted != rows or caught.events != rows:
            fail(f"log position {stored}, view counts {counted}, caught up {caught.events}")

        t6 = time.perf_counter()
        with open_payment_run(path, ledger.catalogue) as run:
            again = ledger.import_stream(run, recorded_by="bench")
        t7 = time.perf_counter()
        if again.created != 0 or again.unchanged != rows:
            fail(f"re-import created {again.created}, unchanged {again.unchanged}")
        if ledger.max_notification_id() != stored:
            fail("the re-import wrote to the event log")

    figures = {
        "total_s": t1 - t0,
        "lock_s": result.lock_held_ms / 1000,
        "parse_s": t3 - t2,
        "catchup_s": t5 - t4,
        "reimport_s": t7 - t6,
        "base_rss_mib": base_rss,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(figures))
    return 0


def library_path(ledger, path: Path, rows: int) -> dict:
    """The library's default way: read the file, one Booking aggregate per row, 100 per save()."""
    from domain.booking import Booking
    from ledger.payment_run import read_payment_run

    t0 = time.perf_counter()
    contents = read_payment_run(path, ledger.catalogue).contents
    calendar, seen = ledger._calendar_seen()
    batch = []
    for c in contents:
        batch.append(
            Booking.record(
                c, recorded_by="bench", catalogue=ledger.catalogue, rates=ledger.base_rates, calendar=calendar
            )
        )
        if len(batch) == 100:
            ledger.save(*batch, calendar_version=seen)
            batch = []
    if batch:
        ledger.save(*batch, calendar_version=seen)
    seconds = time.perf_counter() - t0
    if ledger.max_notification_id() != rows:
        raise SystemExit(f"library path stored {ledger.max_notification_id()} of {rows}")
    return {"total_s": seconds}


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])))
    sys.exit(main())
