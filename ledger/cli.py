"""`koa`: the command line of koa-ledger. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from exports.split_report import format_split_table, write_split_csv
from ledger import demo as demo_data
from ledger.application import APPROVE_KEYS_MAX, ApprovalsRefused, ImportRefused
from ledger.bootstrap import Books
from ledger.bulk_import import NotThisPath, RunHadBadRows
from ledger.cli_support import (
    ERRORS_SHOWN_MAX,
    USER_OPTION,
    Refused,
    acting_user,
    books_in,
    with_books,
)
from ledger.commands import BOOKING_FIELDS, parse_booking, parse_date
from ledger.payment_run import PaymentRunStream, open_payment_run, read_payment_run
from projections.split_projection import catch_up, rebuild, snapshot_now
from projections.split_queries import split_lines


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """koa-ledger: SGB II bookings, the federal/municipal split and the KoA-VV settlement."""
    ctx.ensure_object(dict)


@main.command()
@click.option("--key", required=True, help="booking key, unique; the same key again is idempotent")
@click.option("--kind", required=True, type=click.Choice(["payment", "receipt"]))
@click.option("--amount", required=True, help="euros, e.g. 1234,56 or 1234.56")
@click.option("--category", required=True, help="category code, see `koa categories`")
@click.option("--payment-date", required=True, help="YYYY-MM-DD or DD.MM.YYYY")
@click.option("--service-from", required=True)
@click.option("--service-to", required=True)
@click.option("--document-ref", required=True, help="the voucher (Beleg)")
@click.option("--case-ref", default="", help="Bedarfsgemeinschaft number, e.g. 12345BG0001234")
@click.option("--contract-ref", default="")
@click.option("--cost-centre", required=True)
@click.option("--text", default="")
@USER_OPTION
@with_books
def book(ctx: click.Context, user: str | None, **values: str) -> None:
    """Record one booking."""
    books = books_in(ctx)
    content = parse_booking(values, books.ledger.catalogue)
    posted = books.ledger.record_booking(content, recorded_by=acting_user(ctx, user))
    b = posted.booking
    word = "recorded" if posted.created else "already recorded (same content), unchanged"
    click.echo(
        f"{b.key}: {word}; fiscal year {b.fiscal_year} Q{b.quarter} ({b.fiscal_rule}); state {b.state}"
    )
    catch_up(books.ledger, books.split_view)


@main.command()
@click.argument("keys", nargs=-1, metavar="KEY [KEY ...]")
@click.option(
    "--keys-file",
    type=click.Path(path_type=Path),
    help="the keys to approve, one per line (blank lines and lines starting with # are skipped)",
)
@USER_OPTION
@with_books
def approve(ctx: click.Context, keys: tuple[str, ...], keys_file: Path | None, user: str | None) -> None:
    """Approve bookings (someone other than their recorder). Several keys, or a file of them, are
    approved together (a Sammelanordnung): all in one transaction, or none, naming every key refused."""
    if bool(keys) == (keys_file is not None):
        raise click.UsageError("give the keys as arguments or as --keys-file, one of the two")
    books = books_in(ctx)
    approver = acting_user(ctx, user)
    if len(keys) == 1:
        b = books.ledger.approve_booking(keys[0], approved_by=approver)
        click.echo(f"{b.key}: approved by {b.approved_by}")
        catch_up(books.ledger, books.split_view)
        return
    if keys_file is not None:
        batch, lines = _read_keys_file(keys_file)
        where = [f"{keys_file}:line {n}: " for n in lines]
    else:
        batch, where = list(keys), [""] * len(keys)
    try:
        approved = books.ledger.approve_bookings(batch, approved_by=approver)
    except ApprovalsRefused as e:
        for r in e.refusals:
            click.echo(f"{where[r.index]}{r.key}: {r.reason}", err=True)
        raise Refused(f"{len(e.refusals)} of {e.total} keys refused; nothing was approved") from None
    for b in approved:
        click.echo(f"{b.key}: approved by {b.approved_by}")
    plural = "s" if len(approved) != 1 else ""
    click.echo(f"{len(approved)} booking{plural} approved by {approver}")
    catch_up(books.ledger, books.split_view)


KEYS_FILE_LINE_BYTES_MAX = 1024  # a key has at most 80 characters; a longer line is not a key list


def _read_keys_file(path: Path) -> tuple[list[str], list[int]]:
    """The keys of a --keys-file and the line each stands on; at most APPROVE_KEYS_MAX keys."""
    keys: list[str] = []
    lines: list[int] = []
    try:
        with path.open("rb") as f:
            for n in range(1, APPROVE_KEYS_MAX * 100):  # bounded: comments and blank lines included
                raw = f.readline(KEYS_FILE_LINE_BYTES_MAX + 1)
                if not raw:
                    break
                if len(raw) > KEYS_FILE_LINE_BYTES_MAX:
                    raise Refused(f"{path}:line {n}: longer than {KEYS_FILE_LINE_BYTES_MAX} bytes")
                try:
                    text = raw.decode("utf-8").removeprefix("\ufeff").strip()
                except UnicodeDecodeError:
                    raise Refused(f"{path}:line {n}: not UTF-8 text") from None
                if not text or text.startswith("#"):
                    continue
                if len(keys) == APPROVE_KEYS_MAX:
                    raise Refused(f"{path}: more than {APPROVE_KEYS_MAX} keys in one batch; split the file")
                keys.append(text)
                lines.append(n)
            else:
                raise Refused(f"{path}: too many lines")
    except OSError as e:
        raise Refused(f"{path}: {e.strerror or e}") from None
    if not keys:
        raise Refused(f"{path}: no keys (only blank lines and comments)")
    return keys, lines


@main.command()
@click.argument("key")
@click.option("--reason", required=True, help="why the booking is reversed (kept with it)")
@click.option("--on", "on_text", help="day of the correction, used if the original's period is closed (default: today)")
@USER_OPTION
@with_books
def reverse(ctx: click.Context, key: str, reason: str, on_text: str | None, user: str | None) -> None:
    """Reverse a booking by a counter-booking (Storno); the original stays visible."""
    books = books_in(ctx)
    try:
        on = parse_date(on_text) if on_text else None
    except ValueError as e:
        raise Refused(f"--on: {e}") from None
    counter = books.ledger.reverse_booking(key, reason=reason, reversed_by=acting_user(ctx, user), on=on)
    click.echo(f"{key}: reversed by {counter.key} (fiscal year {counter.fiscal_year} Q{counter.quarter})")
    catch_up(books.ledger, books.split_view)


@main.group(name="import")
def import_() -> None:
    """Import files."""


@import_.command(name="payments")
@click.argument("file", type=click.Path(path_type=Path))
@USER_OPTION
@with_books
def import_payments(ctx: click.Context, file: Path, user: str | None) -> None:
    """Import a payment run (CSV). Every row is checked first; one bad row writes nothing."""
    books = books_in(ctx)
    user = acting_user(ctx, user)
    t0 = time.perf_counter()
    # Streamed: rows are checked and stored as they are read, in one transaction that is rolled
    # back if any row is bad, so a million-row file is never held in memory.
    with _open_run(file, books) as run:
        try:
            result = books.ledger.import_stream(run, recorded_by=user)
        except NotThisPath:
            result = None  # e.g. invoices under a commitment: stored with their drawdowns, below
        except RunHadBadRows:
            _refuse_bad_rows(file, run.errors)
        except ImportRefused as e:
            _refuse_conflicts(file, e.conflicts, run.lines)
    if result is None:
        parsed = read_payment_run(file, books.ledger.catalogue)
        if parsed.errors:
            _refuse_bad_rows(file, parsed.errors)
        try:
            result = books.ledger.import_bookings(parsed.contents, recorded_by=user)
        except ImportRefused as e:
            _refuse_conflicts(file, e.conflicts, parsed.lines)
    seconds = time.perf_counter() - t0
    click.echo(
        f"{file}: {result.created} bookings imported, {result.unchanged} already present "
        f"(unchanged), in {seconds:.1f} s"
    )
    catch_up(books.ledger, books.split_view)


def _refuse_bad_rows(file: Path, errors: list) -> NoReturn:
    for e in errors[:ERRORS_SHOWN_MAX]:
        click.echo(f"{file}:{e}", err=True)
    more = len(errors) - ERRORS_SHOWN_MAX
    if more > 0:
        click.echo(f"... and {more} more", err=True)
    raise Refused(f"{file}: {len(errors)} errors in {len({e.line for e in errors})} rows; nothing was imported")


def _refuse_conflicts(file: Path, conflicts: list, lines: list[int]) -> NoReturn:
    for c in conflicts[:ERRORS_SHOWN_MAX]:
        click.echo(f"{file}:line {lines[c.index]}: {c.error}", err=True)
    raise Refused(f"{file}: {len(conflicts)} rows refused; nothing was imported")


@contextmanager
def _open_run(file: Path, books: Books) -> Iterator[PaymentRunStream]:
    """The file as a stream of rows; a progress bar on a terminal only (stderr stays one line otherwise)."""
    if not sys.stderr.isatty():
        with open_payment_run(file, books.ledger.catalogue) as run:
            yield run
        return
    size = file.stat().st_size if file.is_file() else 0
    row_bytes = max(1, size // 50_000)  # a rough guess; the bar is corrected at the end
    with click.progressbar(length=max(size, 1), label="checking and storing", file=sys.stderr) as bar:
        with open_payment_run(file, books.ledger.catalogue, progress=lambda n: bar.update(row_bytes)) as run:
            yield run
        bar.update(size)


@main.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option("--quarter", type=click.IntRange(1, 4), help="one quarter only")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="also write the figures as CSV")
@with_books
def split(ctx: click.Context, year: int, quarter: int | None, csv_path: Path | None) -> None:
    """Federal and municipal shares per quarter and category."""
    books = books_in(ctx)
    with snapshot_now(books.ledger, books.split_view) as view:
        lines = split_lines(view, books.ledger.catalogue, books.ledger.rates, books.settings.land, year, quarter)
    click.echo(format_split_table(lines), nl=False)
    if csv_path:
        _write_csv(lines, csv_path)


def _write_csv(lines: list, path: Path) -> None:
    try:
        write_split_csv(lines, path)
    except OSError as e:
        raise Refused(f"cannot write {path}: {e.strerror}") from None
    click.echo(f"CSV: {path.resolve()}")


@main.command()
@click.option("--rebuild", "full", is_flag=True, help="forget the read model and replay the whole log")
@with_books
def project(ctx: click.Context, full: bool) -> None:
    """Bring the split read model up to date with the event log."""
    books = books_in(ctx)
    result = (rebuild if full else catch_up)(books.ledger, books.split_view)
    rate = result.events / result.seconds if result.seconds else 0
    click.echo(
        f"{result.events} events applied up to position {result.position} in {result.seconds:.2f} s ({rate:,.0f}/s)"
    )


@main.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option("--quarter", type=click.IntRange(1, 4), help="without: the whole year")
@USER_OPTION
@with_books
def close(ctx: click.Context, year: int, quarter: int | None, user: str | None) -> None:
    """Close a quarter or a fiscal year: nothing more is booked into it."""
    books = books_in(ctx)
    books.ledger.close_period(year=year, quarter=quarter or 0, closed_by=acting_user(ctx, user))
    click.echo(f"{year}" + (f" Q{quarter}" if quarter else "") + " closed")


@main.command()
@with_books
def periods(ctx: click.Context) -> None:
    """List the closed periods."""
    closed = books_in(ctx).ledger.calendar().closed()
    for year, quarter, how in closed:
        click.echo(f"{year}" + (f" Q{quarter}" if quarter else " (year)") + f": {how}")
    if not closed:
        click.echo("(no period is closed)")


@main.command()
@with_books
def categories(ctx: click.Context) -> None:
    """List the category catalogue."""
    for c in books_in(ctx).ledger.catalogue:
        click.echo(f"{c.code:<38} {c.title_label:<12} {c.funding:<11} {c.legal_basis}")


@main.command()
@click.option("--year", default=2025, show_default=True, type=click.IntRange(2020, 2025))
@click.option(
    "--households",
    default=2000,
    show_default=True,
    type=click.IntRange(1, demo_data.HOUSEHOLDS_MAX),
)
@click.option("--seed", default=2025, show_default=True, type=int)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="default: <data dir>/demo",
)
@with_books
def demo(ctx: click.Context, year: int, households: int, seed: int, out_dir: Path | None) -> None:
    """Fill the store with a realistic year of a mid-size city, print the split, write it as CSV."""
    books = books_in(ctx)
    click.echo(f"store: {books.where}")
    data = demo_data.generate(year, households, seed)
    t0 = time.perf_counter()
    created = unchanged = 0
    for _label, run in data.runs:
        r = books.ledger.import_bookings(run, recorded_by="sachbearbeitung")
        created += r.created
        unchanged += r.unchanged
    for key in data.approvals:
        b = books.ledger.get_booking(key)
        if not b.approved_by:
            books.ledger.approve_booking(key, approved_by="pruefung")
    for key, reason in data.reversals:
        if not books.ledger.get_booking(key).reversal_key:
            books.ledger.reverse_booking(key, reason=reason, reversed_by="sachbearbeitung")
    stored = time.perf_counter() - t0
    click.echo(
        f"{created} bookings stored, {unchanged} already there, {len(data.approvals)} approvals, "
        f"{len(data.reversals)} reversals in {stored:.1f} s"
    )
    _demo_budget(books, data, year)
    result = catch_up(books.ledger, books.split_view)
    click.echo(f"split view: {result.events} events applied in {result.seconds:.1f} s")
    draws = _demo_draws(books, year)
    click.echo(f"funds drawn from the Bund: {draws} draws (HKR), listed on each workbook's Mittelabrufe\n")
    lines = split_lines(
        books.split_view, books.ledger.catalogue, books.ledger.rates, books.settings.land, year
    )
    click.echo(format_split_table(lines), nl=False)
    out = out_dir or books.settings.data_dir / "demo"
    _write_csv(lines, out / f"split-{year}.csv")
    from ledger.cli_settlement import report_for, write_report

    for quarter in (1, 2, 3, 4):
        with report_for(books, year, quarter, None) as report:
            path = out / f"koa-vv-{year}-Q{quarter}.xlsx"
            write_report(report, path, "xlsx")
        click.echo(f"KoA-VV {report.period_label}: {path.resolve()} (bookings: {path.stem}.belege.csv)")


DEMO_DRAWN_TITLES = ("1101/681 12", "1101/685 11", "1101/636 13")  # 632 11 flows through the Land


def _demo_draws(books: Books, year: int) -> int:
    """The city draws the Bund's share from the Bundeskasse (HKR): here once a quarter per title, on
    the quarter's last working day, the quarter's federal share rounded down to 1.000 €, so each
    report has a little left to settle. Vouchers name quarter and title: a second run repeats them."""
    count = 0
    for quarter in (1, 2, 3, 4):
        lines = split_lines(
            books.split_view, books.ledger.catalogue, books.ledger.rates, books.settings.land, year, quarter
        )
        last_day = demo_data.quarter_last_workday(year, quarter)
        for title in DEMO_DRAWN_TITLES:
            federal = sum(s.federal_cents for s in lines if s.federal_title == title)
            cents = federal // 100_000 * 100_000
            if cents <= 0:
                continue
            books.ledger.record_funds_draw(
                federal_title=title,
                fiscal_year=year,
                value_date=last_day,
                amount_cents=cents,
                document_ref=f"HKR-{year}-Q{quarter}-{title.replace('1101/', '').replace(' ', '')}",
                recorded_by="kasse",
            )
            count += 1
    return count


def _demo_budget(books: Books, data, year: int) -> None:
    """The Bund's allocation for the demo year: the year's measures and the Bund's share of its
    administrative costs fit with a tenth to spare, and each instrument has a plan of what was
    spent, rounded up to 10,000 €."""
    from domain.money import share_cents
    from ledger import budget_commands

    spent: dict[str, int] = {}
    for _label, run in data.runs:
        for c in run:
            if c.category.startswith(("egt.", "vwk.")):
                spent[c.category] = spent.get(c.category, 0) + (c.amount_cents if c.kind == "payment" else -c.amount_cents)

    def rounded(cents: int) -> int:
        return -(-cents // 1_000_000) * 1_000_000

    egt = sum(v for k, v in spent.items() if k.startswith("egt."))
    vwk = sum(v for k, v in spent.items() if k.startswith("vwk."))
    budget = books.ledger.budget_as_of(year)
    if budget is not None and budget.has_allocation["egt"]:
        return  # a second `koa demo` on the same store changes nothing
    # The Verwaltungsbudget holds the Bund's share of the Verwaltungskosten only.
    vwk_federal = share_cents(vwk, books.ledger.rates.vwk_share(year))
    for title, cents in (("egt", rounded(egt * 11 // 10)), ("vwk", rounded(vwk_federal * 11 // 10))):
        budget_commands.allocate(
            books, year=year, title=title, amount_cents=cents, reference=f"BMAS-{year}-Z1",
            reason="Zuteilung (Demo)", by="leitung",
        )
    for code, cents in sorted(spent.items()):
        if code.startswith("egt."):
            budget_commands.plan(
                books, year=year, instrument=code, amount_cents=rounded(cents), reason="Plan (Demo)", by="leitung"
            )


__all__ = ["main", "BOOKING_FIELDS"]


from ledger.cli_audit import audit  # noqa: E402  (command groups of their own modules)
from ledger.cli_bookings import bookings  # noqa: E402
from ledger.cli_budget import allocation, budget, commitment  # noqa: E402
from ledger.cli_params import kdu, params, reconcile  # noqa: E402
from ledger.cli_retention import retention  # noqa: E402
from ledger.cli_serve import serve  # noqa: E402
from ledger.cli_settlement import draw, export, repay, submit  # noqa: E402

for command in (
    audit, bookings, export, draw, repay, submit, params, reconcile, kdu, budget, commitment, allocation,
    retention, serve,
):
    main.add_command(command)
