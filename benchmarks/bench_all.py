"""Every figure of issue 7 in one table: a generated big-city year on PostgreSQL, each figure with the
baseline measured in the same run, the ratio, the target and whether it is met.

    .venv/bin/python benchmarks/bench_all.py [--quick] [--year-bookings N] [--small-bookings M]
                                             [--run-rows R] [--big-rows B]

Default (make bench): a year of about 2,000,000 bookings, the growth reference at 100,000, a payment
run of 180,000 lines, a file of 1,000,000 lines for the memory figure. --quick (make bench QUICK=1):
200,000 / 20,000 / 20,000 / 100,000, a few minutes.

For each year size a fresh database `koa_bench_all_<size>_<pid>` is filled through the product
(Ledger.import_bookings in runs of at most 100,000, then the demo's approvals and reversals) and
dropped at the end, also on error. Then, each phase in its own child process (its own peak RSS):
  year: VACUUM, catch-up of the split view (timed), the baseline read (pages of 10,000 rows of the
        event table, each state parsed as JSON, amounts added up), a full rebuild of the view,
        the library's ProjectionRunner (one transaction per event) for a few seconds from an emptied
        view (then rebuilt), replay as of now into a fresh SQLite store, the seal chain verified,
        the KoA-VV workbook 2025 Q4 (cumulative: the whole year) with its Belegliste, the baseline
        CSV dump of the same bookings, the Belegliste counted back and its hash checked, and a
        payment run of R lines imported (streamed) into a copy of the full store;
  import (large store): text COPY of the run's file into a bare table (the baseline), the floor of
        any idempotent import in SQL alone (staged, cast, kept under a unique key), the library's
        default path in a fresh database (an aggregate per booking, 100 per save), the re-import
        (idempotent), and a file of B lines imported streamed for its peak RSS;
  approval (a fresh database, benchmarks/batch_approval.py): 10,000 bookings awaiting approval
        approved in one batch, against one plain SELECT of their events; their read key by key
        through the library's repository printed beside.
Growth: per-booking cost in the large store ÷ the same in the small one, each the median of
GROWTH_ROUNDS measurements of import, rebuild, workbook and replay, the two stores side by side and
the sizes alternating (the machine's load drifts over the minutes between them).
Correctness, not speed, decides the exit code: every reader must see the whole log, the chain
must verify, the Belegliste must hold every counted booking under the hash the workbook states.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import api_load
import batch_approval
import export_workbook
import harness
import import_payment_run
import replay
from harness import Job, exit_code, exit_on_sigterm, main_or_phase, peak_rss_mib, run_phase

LIBRARY_RUNNER_SECONDS = 10
RUN_PREFIX = "ZL-202503"  # keys of the measured payment run: none of the demo year's ("LR-...")


# ---- children -------------------------------------------------------------------------------------


def store_phase(job: Job) -> dict[str, Any]:
    return replay.store_phase(job)


def catch_up_phase(job: Job) -> dict[str, Any]:
    from projections.split_projection import catch_up, rebuild

    with harness.open_bench_books(job) as books:
        t0 = time.perf_counter()
        if job.get("rebuild"):
            result = rebuild(books.ledger, books.split_view)
        else:
            result = catch_up(books.ledger, books.split_view)
        seconds = time.perf_counter() - t0
        counted = sum(t.booking_count for t in books.split_view.totals(harness.YEAR))
    return {
        "events": result.events,
        "position": result.position,
        "seconds": seconds,
        "counted": counted,
        "peak_rss_mib": peak_rss_mib(),
    }


def library_runner_phase(job: Job) -> dict[str, Any]:
    """The library's ProjectionRunner (subscription, one transaction per event) applying the same
    split view from an emptied view, for LIBRARY_RUNNER_SECONDS; the view is rebuilt afterwards."""
    from eventsourcing.projection import Projection, ProjectionRunner

    from ledger.application import Ledger
    from projections.split_projection import VIEW_NAME, rebuild, to_batch
    from projections.split_view import PostgresSplitView

    class OneByOne(Projection[PostgresSplitView]):
        name = VIEW_NAME

        def __init__(self, view: PostgresSplitView) -> None:
            super().__init__(view)
            self.position = view.max_tracking_id(Ledger.name) or 0

        def process_event(self, domain_event: Any, tracking: Any) -> None:  # type: ignore[override]
            batch = to_batch([domain_event], [tracking.notification_id])
            self.view.apply_batch(batch, tracking, start=self.position)
            self.position = tracking.notification_id

    with harness.open_bench_books(job) as books:
        books.split_view.reset(books.ledger.name)
        env = books.env
        runner = ProjectionRunner(
            application_class=Ledger, projection_class=OneByOne, view_class=PostgresSplitView, env=env
        )
        with runner:
            t0 = time.perf_counter()
            time.sleep(LIBRARY_RUNNER_SECONDS)
            done = books.split_view.max_tracking_id(books.ledger.name) or 0
            seconds = time.perf_counter() - t0
        # Position != count where ids have gaps; the demo year's log has none.
        rebuild(books.ledger, books.split_view)
    return {"events": done, "seconds": seconds}


def _lock_line(imp: dict[str, Any]) -> Line:
    """How long the import kept other writers out: single postings wait at most 30 s for the lock."""
    held_s = (imp["lock_held_ms"] or 0) / 1000
    return Line(
        "  event table locked (others wait)",
        f"{held_s:,.1f} s",
        f"{imp['seconds']:,.1f} s import",
        f"{held_s / imp['seconds']:.3f}",
        "< 30 s lock timeout",
        held_s < 30,
    )


def import_run_phase(job: Job) -> dict[str, Any]:
    """A payment run file streamed into this store (as `koa import payments`)."""
    from ledger.payment_run import open_payment_run

    with harness.open_bench_books(job) as books:
        base = books.ledger.max_notification_id()
        t0 = time.perf_counter()
        with open_payment_run(Path(job["file"]), books.ledger.catalogue) as run:
            result = books.ledger.import_stream(run, recorded_by="bench")
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        if job.get("again"):
            with open_payment_run(Path(job["file"]), books.ledger.catalogue) as run:
                again = books.ledger.import_stream(run, recorded_by="bench")
            if again.created or books.ledger.max_notification_id() != base + result.created:
                raise SystemExit("the re-import wrote to the event log")
        again_s = time.perf_counter() - t1
    return {
        "created": result.created,
        "seconds": seconds,
        "lock_held_ms": result.lock_held_ms,
        "again_seconds": again_s,
        "peak_rss_mib": peak_rss_mib(),
    }


def library_import_phase(job: Job) -> dict[str, Any]:
    from ledger.settings import Settings

    path = Path(job["file"])
    from ledger.bootstrap import open_books

    settings = Settings(
        database_url=harness.database_url(job["dbname"]), data_dir=path.parent, _env_file=None
    )
    with open_books(settings) as books:
        return import_payment_run.library_path(books.ledger, path, job["rows"])


PHASES = {
    "store": store_phase,
    "catch-up": catch_up_phase,
    "baseline-read": replay.baseline_phase,
    "library-runner": library_runner_phase,
    "replay": replay.replay_phase,
    "verify": replay.verify_phase,
    "baseline-csv": export_workbook.baseline_phase,
    "xlsx": export_workbook.report_phase,
    "check": export_workbook.check_phase,
    "import-run": import_run_phase,
    "library-import": library_import_phase,
}


# ---- parent ---------------------------------------------------------------------------------------


@dataclass
class Line:
    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


def year_figures(size: int, label: str, run_file: Path, run_rows: int, stores: ExitStack) -> dict:
    """Store a year of about `size` bookings and measure it; every figure of one year size. The
    store stays (until `stores` closes) for the growth rounds."""
    args = argparse.Namespace(
        store="postgres", households=max(1, round(size / harness.BOOKINGS_PER_HOUSEHOLD))
    )
    out: dict[str, Any] = {}
    job, out["where"] = stores.enter_context(harness.year_store(args, f"all_{label}"))
    out["job"] = job
    print(f"[{label}] storing a year of about {size:,} bookings ...", file=sys.stderr, flush=True)
    out["stored"] = run_phase(__file__, job, "store")
    harness.vacuum(job["dbname"])  # as autovacuum would have, before anyone reads the new events
    out["catch_up"] = run_phase(__file__, job, "catch-up")
    print(f"[{label}] measuring ...", file=sys.stderr, flush=True)
    out["base_read"] = run_phase(__file__, job, "baseline-read")
    out["rebuild"] = run_phase(__file__, job, "catch-up", rebuild=True)
    if label == "large":
        out["library_runner"] = run_phase(__file__, job, "library-runner")
    harness.vacuum(job["dbname"])
    out["replay"] = run_phase(__file__, job, "replay")
    out["verify"] = run_phase(__file__, job, "verify")
    out["base_csv"] = run_phase(__file__, job, "baseline-csv")
    out["xlsx"] = run_phase(__file__, job, "xlsx")
    out["check"] = run_phase(__file__, job, "check", file=out["xlsx"]["file"])
    out["import"] = import_into_copy(job, run_file, again=(label == "large"))
    if label == "large":
        out["copy_s"] = import_payment_run.copy_baseline(job["dbname"], run_file, run_rows)
        out["floor_s"] = import_payment_run.sql_floor(job["dbname"], run_file, run_rows)
    return out


def import_into_copy(job: Job, run_file: Path, *, again: bool = False) -> dict[str, Any]:
    """The run streamed into a copy of the store, so that every import measured (each growth
    round's too) finds the year exactly as stored."""
    copy = f"{job['dbname']}_run"
    harness.copy_database(job["dbname"], copy)
    try:
        return run_phase(__file__, {**job, "dbname": copy}, "import-run", file=str(run_file), again=again)
    finally:
        harness.drop_database(copy)


# The growth figures compare a year of 100,000 bookings with one of 2,000,000. Measured once each,
# minutes apart, they followed the machine's load as much as the size: alternating the sizes on two
# stores kept side by side, import and rebuild cost the same per booking within ±20 % from one
# measurement to the next, while the single measurements gave 1.16-1.25 x. So each growth phase is
# measured GROWTH_ROUNDS times per size, the sizes alternating, and the medians are compared.
GROWTH_ROUNDS = 3
GROWTH_PHASES = ("import", "rebuild", "export", "replay")


def cost_per_booking(m: dict[str, Any], what: str) -> float:
    """Seconds per booking of one measurement of a growth phase."""
    if what == "import":
        return m["import"]["seconds"] / m["import"]["created"]
    if what == "rebuild":
        return m["rebuild"]["seconds"] / m["rebuild"]["events"]
    if what == "export":
        z = m["xlsx"]
        return (z["assemble_seconds"] + z["write_seconds"]) / z["bookings"]
    return m["replay"]["seconds"] / m["replay"]["events_read"]


def growth_rounds(years: dict[str, dict], run_file: Path) -> dict[str, dict[str, list[float]]]:
    """Per size and growth phase, the cost per booking of every round: the years' own measurement
    first (small, then large), then the other rounds in alternating order."""
    costs = {label: {w: [cost_per_booking(y, w)] for w in GROWTH_PHASES} for label, y in years.items()}
    order = ["small", "large"]
    for r in range(1, GROWTH_ROUNDS):
        order.reverse()
        print(
            f"[growth] round {r + 1} of {GROWTH_ROUNDS}: {' then '.join(order)} ...",
            file=sys.stderr,
            flush=True,
        )
        for label in order:
            job = years[label]["job"]
            harness.settle()
            m = {
                "rebuild": run_phase(__file__, job, "catch-up", rebuild=True),
                "replay": run_phase(__file__, job, "replay"),
                "xlsx": run_phase(__file__, job, "xlsx"),
                "import": import_into_copy(job, run_file),
            }
            for w in GROWTH_PHASES:
                costs[label][w].append(cost_per_booking(m, w))
    return costs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a scaled-down run of a few minutes")
    ap.add_argument("--year-bookings", type=int)
    ap.add_argument("--small-bookings", type=int)
    ap.add_argument("--run-rows", type=int)
    ap.add_argument("--big-rows", type=int)
    args = ap.parse_args(argv)
    large = args.year_bookings or (200_000 if args.quick else 2_000_000)
    small = args.small_bookings or (20_000 if args.quick else 100_000)
    run_rows = args.run_rows or (20_000 if args.quick else 180_000)
    big_rows = args.big_rows or (100_000 if args.quick else 1_000_000)
    exit_on_sigterm()
    t_start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="koa-bench-all-") as tmp_name:
        tmp = Path(tmp_name)
        run_file = tmp / "zahllauf.csv"
        import_payment_run.write_payment_run(run_file, run_rows, prefix=RUN_PREFIX)
        with ExitStack() as stores:
            years = {
                "small": year_figures(small, "small", run_file, run_rows, stores),
                "large": year_figures(large, "large", run_file, run_rows, stores),
            }
            growth = growth_rounds(years, run_file)
        # The library's default import path and the memory of a big file, each in a fresh database.
        dbname = f"koa_bench_all_import_{os.getpid()}"
        try:
            print("[import] the library's default path, the big file ...", file=sys.stderr, flush=True)
            harness.create_database(dbname)
            job = {
                "store": "postgres",
                "dbname": dbname,
                "dir": tmp_name,
                "file": str(run_file),
                "rows": run_rows,
            }
            library = run_phase(__file__, job, "library-import")
            big_file = tmp / "zahllauf-gross.csv"
            import_payment_run.write_payment_run(big_file, big_rows, prefix=RUN_PREFIX)
            harness.create_database(dbname)
            big = run_phase(__file__, {**job, "file": str(big_file)}, "import-run")
        finally:
            harness.drop_database(dbname)

    print("[approve] a batch approval of 10,000 bookings ...", file=sys.stderr, flush=True)
    approval = batch_approval.measure(batch_approval.BOOKINGS_MAX)

    harness.settle()  # the dropped stores' files and the big import's writes, before the API's run
    print("[api] 50 clients posting single bookings through koa serve ...", file=sys.stderr, flush=True)
    api = api_figures(seconds=5 if args.quick else 20)
    lines, problems = table(years, growth, library, big, run_rows, big_rows)
    lines += approval_lines(approval)
    if approval["approved"] != approval["bookings"]:
        problems.append(f"approval: {approval['approved']} of {approval['bookings']} bookings approved")
    lines += api_lines(api)
    if api["errors"] or not api["created"]:
        problems.append(f"api: {api['created']} bookings created, responses other than 201: {api['errors']}")
    large_y = years["large"]
    print(
        f"\nkoa-ledger issue 7 benchmark: a year of {large_y['stored']['bookings']:,} bookings "
        f"({large_y['stored']['events']:,} events; growth reference {years['small']['stored']['bookings']:,}), "
        f"a payment run of {run_rows:,} lines, {large_y['where']}; "
        f"{time.perf_counter() - t_start:,.0f} s in all\n"
    )
    widths = [
        max(
            len(getattr(x, f))
            for x in lines + [Line("figure", "value", "baseline (same run)", "ratio", "target")]
        )
        for f in ("figure", "value", "baseline", "ratio", "target")
    ]
    head = Line("figure", "value", "baseline (same run)", "ratio", "target")
    for line in [head, None, *lines]:
        if line is None:
            print("-" * (sum(widths) + 4 * 3 + 6))
            continue
        mark = "" if line.ok is None else ("ok" if line.ok else "BELOW")
        print(
            f"{line.figure:<{widths[0]}} | {line.value:>{widths[1]}} | {line.baseline:>{widths[2]}} | "
            f"{line.ratio:>{widths[3]}} | {line.target:<{widths[4]}} | {mark}"
        )
    print("\n" + harness.storing_context(large_y["stored"]))
    return exit_code(problems)


def api_figures(*, seconds: float, clients: int = 50) -> dict[str, Any]:
    """benchmarks/api_load.py's measurement: its own server on a fresh database, health baseline first."""
    import asyncio

    token = os.urandom(24).hex()
    # One server process per core (koa serve --workers), as a deployment would run it.
    with api_load.bench_server(token, workers=os.cpu_count() or 1) as (url, _where):
        done, base_s, _cpu_s = asyncio.run(api_load.health_rate(url, clients, 5.0))
        result = asyncio.run(api_load.load(url, token, clients, seconds))
    return result | {"health_rate": done / base_s, "clients": clients, "workers": os.cpu_count() or 1}


def approval_lines(m: dict[str, Any]) -> list[Line]:
    """batch_approval.measure's figures: the batch, and the old key-by-key read beside it."""
    n, base_rate = m["bookings"], m["bookings"] / m["base_s"]
    return [
        Line(
            f"batch approval of {n:,} bookings (one transaction)",
            f"{m['approve_s']:.2f} s",
            _rate(n, m["base_s"], "bookings/s one SELECT"),
            f"{n / m['approve_s'] / base_rate:.3f}",
        ),
        Line(
            "  its bookings read key by key (repository.get, the old path)",
            f"{m['per_key_s']:.2f} s",
            "",
            f"{n / m['per_key_s'] / base_rate:.3f}",
            "printed beside",
        ),
    ]


def api_lines(api: dict[str, Any]) -> list[Line]:
    rate = api["created"] / api["seconds"]
    p99_ms = api_load.percentile(api["latencies"], 99) * 1000
    lag_ms = api_load.percentile(api["lags"], 99) * 1000
    return [
        Line(
            f"API: {api['clients']} clients posting single bookings ({api['workers']} server processes)",
            f"{rate:,.0f} bookings/s",
            f"{api['health_rate']:,.0f} requests/s GET /health",
            f"{rate / api['health_rate']:.3f}",
            "≥ 1,000 bookings/s",
            rate >= 1000,
        ),
        Line("  POST latency p99", f"{p99_ms:,.0f} ms", "", "", "< 50 ms", p99_ms < 50),
        Line("  connections per server process", api_load.split_text(api["split"]), "", "", "", None),
        Line(
            "  CPU of the load generator per POST (shares the cores)",
            f"{api['cpu_s'] / max(len(api['latencies']), 1) * 1000:.2f} ms",
            "",
            "",
            "",
            None,
        ),
        Line(
            "lag: a booking posted through the API shows in the split, p99",
            f"{lag_ms:,.0f} ms",
            "",
            "",
            "< 1 s",
            lag_ms < 1000,
        ),
    ]


def _rate(n: float, seconds: float, unit: str) -> str:
    return f"{n / seconds:,.0f} {unit}"


def table(
    years: dict, growth: dict, library: dict, big: dict, run_rows: int, big_rows: int
) -> tuple[list[Line], list[str]]:
    L, S = years["large"], years["small"]
    problems: list[str] = []
    lines: list[Line] = []

    copy_rate = run_rows / L["copy_s"]
    imp = L["import"]
    imp_rate = run_rows / imp["seconds"]
    lines.append(
        Line(
            f"import {run_rows:,}-line run, streamed, into the full store",
            _rate(run_rows, imp["seconds"], "bookings/s"),
            _rate(run_rows, L["copy_s"], "rows/s COPY"),
            f"{imp_rate / copy_rate:.3f}",
            "≥ 0.5 × COPY",
            imp_rate / copy_rate >= 0.5,
        )
    )
    floor_rate = run_rows / L["floor_s"]
    lines.append(
        Line(
            "  floor: the same file in SQL alone, keyed (no rules, no events)",
            _rate(run_rows, L["floor_s"], "rows/s"),
            "",
            f"{floor_rate / copy_rate:.3f}",
            "printed beside",
        )
    )
    lib_rate = run_rows / library["total_s"]
    lines.append(
        Line(
            "  library default path (aggregate per booking, 100 per save)",
            _rate(run_rows, library["total_s"], "bookings/s"),
            "",
            f"{lib_rate / copy_rate:.3f}",
            "printed beside",
        )
    )
    lines.append(
        Line(
            "  re-import of the same run (idempotent, 0 written)",
            _rate(run_rows, imp["again_seconds"], "rows/s"),
            "",
            f"{run_rows / imp['again_seconds'] / copy_rate:.3f}",
            "",
        )
    )
    lines.append(_lock_line(imp))
    lines.append(Line("  peak RSS of that import", f"{imp['peak_rss_mib']:,.0f} MiB"))
    lines.append(
        Line(
            f"import {big_rows:,}-line file, streamed: peak RSS",
            f"{big['peak_rss_mib']:,.0f} MiB",
            "",
            "",
            "< 500 MiB",
            big["peak_rss_mib"] < 500,
        )
    )
    lines.append(Line("  its speed", _rate(big_rows, big["seconds"], "bookings/s")))
    lines.append(_lock_line(big))

    base = L["base_read"]
    base_rate = base["rows"] / base["seconds"]
    base_txt = _rate(base["rows"], base["seconds"], "rows/s read+sum")
    for key, label in (
        ("catch_up", "split view catch-up of the year"),
        ("rebuild", "split view full rebuild"),
    ):
        r = L[key]
        rate = r["events"] / r["seconds"]
        lines.append(
            Line(
                f"{label} ({r['events']:,} events)",
                _rate(r["events"], r["seconds"], "events/s"),
                base_txt,
                f"{rate / base_rate:.3f}",
                "≥ 0.5 × read+sum",
                rate / base_rate >= 0.5,
            )
        )
    lr = L.get("library_runner")
    if lr:
        lines.append(
            Line(
                f"  library ProjectionRunner, 1 transaction per event ({lr['events']:,} in {lr['seconds']:.0f} s)",
                _rate(lr["events"], lr["seconds"], "events/s"),
                "",
                f"{lr['events'] / lr['seconds'] / base_rate:.3f}",
                "printed beside",
            )
        )
    rp = L["replay"]
    lines.append(
        Line(
            "replay as of now into a fresh SQLite store",
            _rate(rp["events_read"], rp["seconds"], "events/s"),
            base_txt,
            f"{rp['events_read'] / rp['seconds'] / base_rate:.3f}",
            "",
        )
    )
    vf = L["verify"]
    lines.append(
        Line(
            "verify the seal chain",
            _rate(vf["count"], vf["seconds"], "events/s"),
            base_txt,
            f"{vf['count'] / vf['seconds'] / base_rate:.3f}",
            "",
        )
    )

    x = L["xlsx"]
    total = x["assemble_seconds"] + x["write_seconds"]
    bc = L["base_csv"]
    lines.append(
        Line(
            f"KoA-VV workbook 2025 Q4 (cumulative), {x['bookings']:,} bookings",
            f"{total:.1f} s",
            f"{bc['seconds']:.1f} s CSV dump",
            f"{bc['seconds'] / total:.3f}",
            "< 10 s",
            total < 10,
        )
    )
    lines.append(
        Line(
            "  of it: assemble / Belegliste + workbook",
            f"{x['assemble_seconds']:.1f} / {x['write_seconds']:.1f} s",
        )
    )
    lines.append(
        Line(
            "  peak RSS of the export",
            f"{x['peak_rss_mib']:,.0f} MiB",
            f"{bc['peak_rss_mib']:,.0f} MiB",
            "",
            "< 1 GiB",
            x["peak_rss_mib"] < 1024,
        )
    )
    lines.append(
        Line(
            "  sizes: workbook / Belegliste",
            f"{x['file_bytes'] / 1e6:.2f} / {L['check']['list_bytes'] / 1e6:.0f} MB",
        )
    )

    for what, unit in (
        ("import", "import of the run"),
        ("rebuild", "full rebuild"),
        ("export", "workbook"),
        ("replay", "replay"),
    ):
        small, large = (statistics.median(growth[size][what]) for size in ("small", "large"))
        g = large / small
        lines.append(
            Line(
                f"growth {S['stored']['bookings']:,} -> {L['stored']['bookings']:,}: {unit}, cost per booking",
                f"{large * 1e6:,.1f} µs",
                f"{small * 1e6:,.1f} µs",
                f"{g:.2f}",
                "≤ 1.2 ×",
                g <= 1.2,
            )
        )
        rounds = [f"{b / a:.2f}" for a, b in zip(growth["small"][what], growth["large"][what], strict=True)]
        lines.append(Line(f"  each round (medians above, of {len(rounds)})", " / ".join(rounds)))

    for name, y in years.items():
        events = y["stored"]["events"]
        if not y["verify"]["intact"] or y["verify"]["count"] != events:
            problems.append(f"{name}: verify: {y['verify']['verdict']}")
        if y["replay"]["events_read"] != events:
            problems.append(f"{name}: replay read {y['replay']['events_read']} of {events}")
        if y["base_read"]["rows"] != events:
            problems.append(f"{name}: the baseline read {y['base_read']['rows']} of {events}")
        for key in ("catch_up", "rebuild"):
            if y[key]["position"] != events:
                problems.append(f"{name}: {key} reached {y[key]['position']} of {events}")
        expected = y["stored"]["bookings"] + y["stored"]["reversals"]
        for what, n in (
            ("workbook", y["xlsx"]["bookings"]),
            ("Belegliste", y["check"]["belege_rows"]),
            ("baseline CSV", y["base_csv"]["rows"]),
            ("split totals", y["rebuild"]["counted"]),
        ):
            if n != expected:
                problems.append(f"{name}: {what} has {n} bookings, expected {expected}")
        if not y["check"]["hash_matches"]:
            problems.append(f"{name}: the Belegliste's SHA-256 is not the one the workbook states")
        if y["import"]["created"] != run_rows:
            problems.append(f"{name}: the run import created {y['import']['created']} of {run_rows}")
    if big["created"] != big_rows:
        problems.append(f"the big import created {big['created']} of {big_rows}")
    return lines, problems


if __name__ == "__main__":
    sys.exit(main_or_phase(main, PHASES))
