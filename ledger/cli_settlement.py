"""`koa export koa-vv`, `koa draw`, `koa submit`: the settlement with the Bund."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import click

from domain.interest import Interest
from domain.money import format_eur, parse_amount_cents
from domain.rates import pct
from domain.settlement import Submission
from exports import koavv_data
from exports.koavv_model import KoaVvReport
from exports.koavv_report import build_report
from ledger.audit import books_identity
from ledger.cli_audit import parse_moment
from ledger.cli_support import USER_OPTION, Refused, acting_user, books_in, with_books
from ledger.commands import parse_date
from projections.replay import AsOfBeforeFirstEvent, replay_as_of
from projections.split_projection import catch_up
from projections.split_view import SplitViewQueries

YEAR_MIN = 2005
POSITION_MAX = 2**63 - 1  # a log position is a bigint (PostgreSQL) or an INTEGER (SQLite)


@contextmanager
def report_for(
    books, year: int, quarter: int | None, as_of_text: str | None, up_to_position: int | None = None
):
    """The report as of a moment: a snapshot of the live view for now, a replay into a separate
    store otherwise. Write it inside the context: its Belegliste is read from that state when it is
    written, and a live report's snapshot ends with the context."""
    now = datetime.now(UTC)
    if not YEAR_MIN <= year <= now.year:
        raise Refused(f"--year: unknown year {year} (the ledger keeps {YEAR_MIN} to {now.year})")
    if up_to_position is not None:
        if as_of_text is None:
            raise Refused("--position: reproduces an export: give its --as-of as well")
        if not 1 <= up_to_position <= POSITION_MAX:
            raise Refused(f"--position: must be a log position (1 to {POSITION_MAX}), not {up_to_position}")
    if as_of_text is None:
        with _settled_snapshot(books) as (view, as_of):
            yield _report(books, view, year, quarter, as_of, view.position, by_position=True)
        return
    as_of = parse_moment(as_of_text)
    if as_of > now:
        raise Refused(f"--as-of: {as_of.isoformat()} is in the future")
    with tempfile.TemporaryDirectory(prefix="koa-asof-") as tmp:
        try:
            replay = replay_as_of(books.ledger, as_of, Path(tmp), up_to_position=up_to_position)
        except AsOfBeforeFirstEvent as e:
            raise Refused(f"--as-of: {e}") from None
        try:
            yield _report(
                books,
                replay.view,
                year,
                quarter,
                as_of,
                replay.last_included,
                by_position=up_to_position is not None,
            )
        finally:
            replay.close()


def _report(
    books,
    view: SplitViewQueries,
    year: int,
    quarter: int | None,
    as_of: datetime,
    last_position: int,
    *,
    by_position: bool,
) -> KoaVvReport:
    return build_report(
        view,
        books.ledger,
        land=books.settings.land,
        year=year,
        quarter=quarter,
        as_of=as_of,
        last_position=last_position,
        # By its content, not its location: the same books reached by another name reproduce it.
        store=books_identity(books.ledger, last_position),
        by_position=by_position,
    )


@contextmanager
def _settled_snapshot(books, attempts: int = 5) -> Iterator[tuple[SplitViewQueries, datetime]]:
    """Catch the view up, hold one state of it and take the moment; if events were committed
    meanwhile, again. Yields the snapshot (its `position` is the report's last position) and the
    moment.

    Everything a live report reads from the view, the quarters' totals behind the figures and the
    bookings of the Belegliste (read only while it is written), is read in that one state:
    other processes' catch-ups (every `koa book`, the API's follower) move the shared view on
    meanwhile and would otherwise put bookings into the list that the figures do not count.
    A replay as of the moment must see the same events as that state: none may have been committed
    beyond its position before the moment was taken. (An event created before the moment but
    committed long after it, inside a long transaction, is the remaining gap; an export is
    therefore reproduced by its moment and its log position: --position, POSITION_HELP.)
    """
    for _ in range(attempts):
        catch_up(books.ledger, books.split_view)
        with books.split_view.snapshot(books.ledger.name) as view:
            as_of = datetime.now(UTC)
            if books.ledger.max_notification_id() == view.position:
                yield view, as_of
                return
    raise Refused("the log keeps growing; try the export again in a moment")


def write_report(report: KoaVvReport, path: Path, fmt: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "xlsx":
            from exports.koavv_workbook import write_workbook

            write_workbook(report, path)
        elif fmt == "json":
            koavv_data.write_json(report, path)
        else:
            koavv_data.write_csv(report, path)
    except OSError as e:
        raise Refused(f"--out: cannot write {path}: {e.strerror or e}") from None


def export_name(year: int, quarter: int | None, suffix: str) -> str:
    """koa-vv-2025-Q1.xlsx, koa-vv-2025.json, koa-vv-2025-Q1.belege.csv"""
    return f"koa-vv-{year}" + (f"-Q{quarter}" if quarter else "") + suffix


def default_path(books, year: int, quarter: int | None, fmt: str) -> Path:
    return books.settings.data_dir / "exports" / export_name(year, quarter, f".{fmt}")


# An event is stamped when it is made, and committed a moment later (a payment run's events
# seconds later): one made before an export's moment but committed after it is not in the export,
# yet a replay by the moment alone would count it. The export's log position settles that.
POSITION_HELP = (
    "with --as-of: only events up to this log position as well (the export's Protokoll names it: "
    "'Ereignisse bis Position N'); reproduces the export exactly"
)


@click.group(name="export")
def export() -> None:
    """Settlement reports."""


@export.command(name="koa-vv")
@click.option("--year", required=True, type=int)
@click.option("--quarter", type=click.IntRange(1, 4), help="cumulative from 1 January; without: the year")
@click.option("--as-of", "as_of", help="only events recorded up to this moment (ISO 8601; default: now)")
@click.option("--position", type=int, help=POSITION_HELP)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="default: <data dir>/exports/koa-vv-YEAR[-QN].FORMAT",
)
@click.option(
    "--format", "fmt", type=click.Choice(["xlsx", "csv", "json"]), default="xlsx", show_default=True
)
@click.option(
    "--changes-since-submission",
    is_flag=True,
    help="list what differs from the last submitted report",
)
@with_books
def koa_vv(
    ctx,
    year: int,
    quarter: int | None,
    as_of: str | None,
    position: int | None,
    out: Path | None,
    fmt: str,
    changes_since_submission: bool,
) -> None:
    """The KoA-VV settlement workbook for a quarter (cumulative) or a year."""
    books = books_in(ctx)
    if changes_since_submission:
        if position is not None:
            raise Refused("--position: the submission's own position is used")
        _changes(books, year, quarter, as_of)
        return
    with report_for(books, year, quarter, as_of, up_to_position=position) as report:
        path = out or default_path(books, year, quarter, fmt)
        write_report(report, path, fmt)
    click.echo(
        f"{report.period_label} as of {report.as_of.isoformat()} (position {report.last_position}): "
        f"{len(report.belege)} bookings" + (" (empty period)" if report.is_empty else "")
    )
    click.echo(f"written: {path.resolve()}")
    if fmt == "xlsx":
        from exports.koavv_workbook import belege_path

        click.echo(
            f"written: {belege_path(path).resolve()} (the Belegliste: every booking behind the figures)"
        )


@click.command()
@click.option("--title", required=True, help="federal title, e.g. '1101/681 12'")
@click.option("--year", required=True, type=int, help="fiscal year the funds are for")
@click.option("--date", "value_date", required=True, help="value date, YYYY-MM-DD or DD.MM.YYYY")
@click.option("--amount", required=True, help="euros, e.g. 1.000.000,00")
@click.option("--document-ref", required=True, help="the HKR voucher")
@USER_OPTION
@with_books
def draw(
    ctx, title: str, year: int, value_date: str, amount: str, document_ref: str, user: str | None
) -> None:
    """Record federal funds drawn (Mittelabruf) for a title."""
    when, cents = _date_option("--date", value_date), _amount_option(amount)
    d = books_in(ctx).ledger.record_funds_draw(
        federal_title=title,
        fiscal_year=year,
        value_date=when,
        amount_cents=cents,
        document_ref=document_ref,
        recorded_by=acting_user(ctx, user),
    )
    click.echo(
        f"{d.document_ref}: {format_eur(d.amount_cents)} € drawn for {d.federal_title} {d.fiscal_year} "
        f"on {d.value_date.isoformat()}"
    )


@click.command()
@click.option("--title", required=True, help="federal title, e.g. '1101/636 13'")
@click.option("--year", required=True, type=int, help="fiscal year the funds were drawn for")
@click.option("--date", "value_date", required=True, help="repaid on (value date), YYYY-MM-DD or DD.MM.YYYY")
@click.option("--amount", required=True, help="euros repaid, without the interest, e.g. 12.345,67")
@click.option(
    "--interest-since",
    required=True,
    help="the day the funds were obtained without legal ground (the Bund's notice names it); "
    "interest runs from the day after, up to and including the repayment",
)
@click.option("--document-ref", help="the voucher of the repayment (required unless --quote)")
@click.option("--reason", help="why the funds are repaid, e.g. the Bund's notice (required unless --quote)")
@click.option("--quote", is_flag=True, help="only compute the interest for that date; record nothing")
@USER_OPTION
@with_books
def repay(
    ctx,
    title: str,
    year: int,
    value_date: str,
    amount: str,
    interest_since: str,
    document_ref: str | None,
    reason: str | None,
    quote: bool,
    user: str | None,
) -> None:
    """Record federal funds repaid to the Bund, with interest at the Basiszinssatz + 3 points."""
    when, cents = _date_option("--date", value_date), _amount_option(amount)
    since = _date_option("--interest-since", interest_since)
    ledger = books_in(ctx).ledger
    if quote:
        interest = ledger.repayment_interest(amount_cents=cents, interest_since=since, value_date=when)
        click.echo(
            f"quote: {format_eur(cents)} € for {title} {year} repaid on {when.isoformat()}; nothing recorded"
        )
        _echo_interest(interest, interest.total_cents)
        return
    for option, value in (("--document-ref", document_ref), ("--reason", reason)):
        if not value:
            raise Refused(f"{option}: required to record a repayment (or give --quote)")
    r = ledger.record_funds_repayment(
        federal_title=title,
        fiscal_year=year,
        value_date=when,
        amount_cents=cents,
        interest_since=since,
        document_ref=document_ref,
        reason=reason,
        recorded_by=acting_user(ctx, user),
    )
    click.echo(
        f"{r.document_ref}: {format_eur(r.amount_cents)} € repaid for {r.federal_title} {r.fiscal_year} "
        f"on {r.value_date.isoformat()} (funds drawn for it now "
        f"{format_eur(ledger.net_drawn_cents(r.federal_title, r.fiscal_year))} €)"
    )
    interest = r.interest
    assert interest.total_cents == r.interest_cents, (interest, r.interest_cents)
    _echo_interest(interest, r.interest_cents)


def _date_option(option: str, text: str) -> date:
    try:
        return parse_date(text)
    except ValueError as e:
        raise Refused(f"{option}: {e}") from None


def _amount_option(text: str) -> int:
    try:
        return parse_amount_cents(text)
    except ValueError as e:
        raise Refused(f"--amount: {e}") from None


def _echo_interest(interest: Interest, total_cents: int) -> None:
    click.echo(
        f"interest from {interest.since.isoformat()} (not counted) to {interest.until.isoformat()}: "
        f"{interest.days} days"
    )
    for line in interest.lines:
        click.echo(
            f"  {line.first_day.isoformat()} – {line.last_day.isoformat()}: {line.days:>3} days × "
            f"(Basiszinssatz {pct(line.base_rate)} + {pct(line.points)} = {pct(line.rate)}) / {line.year_days}"
        )
    click.echo(f"interest: {format_eur(total_cents)} € (the city's own money, paid with the repayment)")


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--year", required=True, type=int)
@click.option("--quarter", type=click.IntRange(1, 4))
@click.option(
    "--as-of",
    "as_of",
    required=True,
    help="the moment the file was exported for (from its Protokoll)",
)
@click.option("--position", type=int, help=POSITION_HELP)
@USER_OPTION
@with_books
def submit(
    ctx, file: Path, year: int, quarter: int | None, as_of: str, position: int | None, user: str | None
) -> None:
    """Record that a workbook was handed in; it must be the exact export for that moment."""
    books = books_in(ctx)
    try:
        given = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as e:
        raise Refused(f"{file}: {e.strerror}") from None
    with (
        report_for(books, year, quarter, as_of, up_to_position=position) as report,
        tempfile.TemporaryDirectory() as tmp,
    ):
        again = Path(tmp) / "again.xlsx"
        write_report(report, again, "xlsx")
        expected = hashlib.sha256(again.read_bytes()).hexdigest()
        if given != expected:
            raise Refused(
                f"{file} is not the export of {report.period_label} as of {report.as_of.isoformat()} "
                "(its SHA-256 differs from a fresh export); nothing was recorded"
            )
        s = books.ledger.record_submission(
            year=year,
            quarter=quarter,
            as_of=report.as_of,
            last_position=report.last_position,
            file_sha256=given,
            figures_sha256=koavv_data.figures_sha256(report),
            submitted_by=acting_user(ctx, user),
        )
    click.echo(f"submitted {report.period_label} as of {s.as_of.isoformat()}: file SHA-256 {given}")


def _changes(books, year: int, quarter: int | None, as_of: str | None) -> None:
    subs = [
        e
        for e in books.ledger.recorded(Submission.Recorded)
        if e.year == year and e.quarter == (quarter or 0)
    ]
    if not subs:
        raise Refused(f"no submitted report for {year}" + (f" Q{quarter}" if quarter else ""))
    last = subs[-1]
    with report_for(books, year, quarter, last.as_of.isoformat(), up_to_position=last.last_position) as old:
        with report_for(books, year, quarter, as_of) as new:
            lines = diff_reports(old, new)
    click.echo(f"changes since the report submitted by {last.submitted_by} (as of {last.as_of.isoformat()}):")
    for line in lines or ["(none: the figures are the same)"]:
        click.echo(line)


def diff_reports(old: KoaVvReport, new: KoaVvReport) -> list[str]:
    out: list[str] = []
    fields = (
        "expenditure_cents",
        "receipts_cents",
        "net_cents",
        "federal_cents",
        "municipal_cents",
    )
    o = {(c.federal_title, c.category): c for c in old.categories}
    n = {(c.federal_title, c.category): c for c in new.categories}
    for key in sorted(o.keys() | n.keys()):
        for f in fields:
            a, b = getattr(o.get(key), f, 0), getattr(n.get(key), f, 0)
            if a != b:
                out.append(
                    f"{key[0]} {key[1]} {f.removesuffix('_cents')}: {format_eur(a)} -> {format_eur(b)}"
                )
    ot = {t.federal_title: t for t in old.titles}
    nt = {t.federal_title: t for t in new.titles}
    for key in sorted(ot.keys() | nt.keys()):
        for f in ("drawn_cents",):
            a, b = getattr(ot.get(key), f, 0), getattr(nt.get(key), f, 0)
            if a != b:
                out.append(f"{key} drawn: {format_eur(a)} -> {format_eur(b)}")
    for kind, o_list, n_list in (
        ("draw", old.draws, new.draws),
        ("repayment", old.repayments, new.repayments),
    ):
        o_refs = {t.document_ref: t for t in o_list}
        for t in n_list:
            if t.document_ref not in o_refs:
                out.append(
                    f"  {kind} {t.document_ref} ({t.federal_title}, {t.value_date.isoformat()}, "
                    f"{format_eur(t.amount_cents)}): new since the submission"
                )
    ob = {b.booking_key: b for b in old.belege}
    nb = {b.booking_key: b for b in new.belege}
    for key in sorted(ob.keys() | nb.keys()):
        a, b = ob.get(key), nb.get(key)
        if a is None:
            out.append(f"  booking {key} ({b.category}, {format_eur(b.net_cents)}): new since the submission")
        elif b is None:
            out.append(f"  booking {key} ({a.category}): no longer counted")
        elif (a.net_cents, a.federal_cents) != (b.net_cents, b.federal_cents):
            out.append(
                f"  booking {key}: share {format_eur(a.federal_cents)} -> {format_eur(b.federal_cents)} "
                "(rounding cent moved)"
            )
    return out


__all__ = ["export", "draw", "submit"]
