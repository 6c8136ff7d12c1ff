"""`koa audit ...`: for the audit office. Everything here reads, except `sample`, which records
its draw so that a redraw shows (`sample --check` records nothing)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from domain.money import format_eur
from domain.rates import RateTable
from domain.sampling import MONTH_RE
from exports.audit_export import AuditExportError, write_audit_export
from exports.split_report import format_split_table
from ledger import audit as audit_service
from ledger import commands, samples
from ledger.cli_support import USER_OPTION, Refused, acting_user, books_in, with_books
from ledger.seals import Anchor
from projections.replay import AsOfBeforeFirstEvent, replay_as_of
from projections.split_projection import snapshot_now
from projections.split_queries import booking_shares, split_lines
from projections.split_view import SplitViewQueries


def parse_moment(text: str) -> datetime:
    """--as-of: an ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        return commands.parse_moment(text)
    except ValueError:
        raise Refused(
            f"--as-of: not a timestamp (ISO 8601, e.g. 2025-04-15T12:00:00+02:00): {text!r}"
        ) from None


@click.group()
def audit() -> None:
    """Replay, verify, history, drill-down, samples and the auditors' export."""


@audit.command()
@click.option("--as-of", "as_of", required=True, help="ISO 8601 moment; without an offset it is UTC")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    help="where the separate replay store is written (default: a new temporary directory)",
)
@with_books
def replay(ctx: click.Context, as_of: str, work_dir: Path | None) -> None:
    """Rebuild the split from the events recorded up to a moment, into a separate store."""
    books = books_in(ctx)
    moment = parse_moment(as_of)
    target = work_dir or Path(tempfile.mkdtemp(prefix="koa-replay-"))
    try:
        result = replay_as_of(books.ledger, moment, target)
    except AsOfBeforeFirstEvent as e:
        raise Refused(f"--as-of: {e}") from None
    except OSError as e:
        raise Refused(f"--work-dir: cannot write {target}: {e.strerror}") from None
    try:
        click.echo(f"Replay as of {moment.isoformat()} from {books.where}")
        # At the rates (and Eingliederungsbudget) as they stood at the moment, as the export does.
        _print_split(result.view, books, books.ledger.rates_as_of(moment))
        _print_adoptions(books, result.view.years(), moment)
        rate = result.events_read / result.seconds if result.seconds else 0.0
        click.echo(
            f"{result.events_read} events read up to position {result.position}, {result.events_applied} "
            f"recorded up to the moment applied, in {result.seconds:.2f} s ({rate:,.0f} events/s)"
        )
        click.echo(f"replay store: {target.resolve()}")
    finally:
        result.close()


def _print_split(view: SplitViewQueries, books, rates: RateTable) -> None:
    years = view.years()
    if not years:
        click.echo("(no bookings)")
    for year in years:
        lines = split_lines(view, books.ledger.catalogue, rates, books.settings.land, year)
        click.echo(format_split_table(lines), nl=False)


def _print_adoptions(books, years: list[int], moment: datetime) -> None:
    """The adoptions of the years' accounts as recorded up to the moment, from which their retention
    periods run (`koa retention --as-of` gives the whole register)."""
    for year in years:
        a = books.ledger.adoption_as_of(year, moment)
        if a is not None:
            click.echo(
                f"accounts of {year} adopted on {a.adopted_on.isoformat()} by resolution {a.resolution_ref} "
                "(as recorded up to the moment)"
            )


@audit.command()
@click.option("--anchor", help="POSITION:SEAL from an earlier `koa audit head`, kept outside the database")
@with_books
def verify(ctx: click.Context, anchor: str | None) -> None:
    """Recompute the seal chain; name the first position where stored data no longer matches."""
    try:
        parsed = Anchor.parse(anchor) if anchor else None
    except ValueError as e:
        raise Refused(f"--anchor: {e}") from None
    verdict = audit_service.verify_log(books_in(ctx).ledger, parsed)
    if not verdict.intact:
        raise Refused(str(verdict))
    click.echo(str(verdict) + (f"; anchor {parsed} confirmed" if parsed else ""))


@audit.command()
@with_books
def head(ctx: click.Context) -> None:
    """Print the verified head of the log as POSITION:SEAL, to be written down outside."""
    verdict = audit_service.head(books_in(ctx).ledger)
    if not verdict.intact:
        raise Refused(str(verdict))
    if verdict.count == 0:
        raise Refused("the log is empty: there is no head yet")
    click.echo(f"{verdict.position}:{verdict.head.hex()}")
    click.echo(
        f"({verdict.count} events, verified at {datetime.now(UTC).isoformat(timespec='seconds')})",
        err=True,
    )


@audit.command()
@click.argument("key")
@with_books
def booking(ctx: click.Context, key: str) -> None:
    """Every event of a booking (and of its counter-booking): what, who, when."""
    for h in audit_service.booking_history(books_in(ctx).ledger, key):
        click.echo(
            f"{h.at.isoformat(timespec='seconds')}  {h.key}  v{h.version}  {h.event:<9} {h.who:<16} {h.detail}"
        )


@audit.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option("--quarter", required=True, type=click.IntRange(1, 4))
@click.option("--category", required=True)
@with_books
def explain(ctx: click.Context, year: int, quarter: int, category: str) -> None:
    """The bookings behind one figure of the split, each with its share; they add up to the figure."""
    books = books_in(ctx)
    books.ledger.catalogue.get(category)  # an unknown category is an error, not an empty list
    # One state: with the Eingliederungsbudget's cap, the rows and the capped figure they share
    # are two reads, and under a catch-up or a rebuild two live reads see two states.
    with snapshot_now(books.ledger, books.split_view) as view:
        shares = booking_shares(
            view,
            books.ledger.catalogue,
            books.ledger.rates,
            books.settings.land,
            year,
            quarter,
            category,
        )
    for s in shares:
        r = s.row
        click.echo(
            f"{r.booking_key:<32} {r.payment_date.isoformat()} {r.kind:<8} {format_eur(s.net_cents):>15} "
            f"Bund {format_eur(s.federal_cents):>15} Kommune {format_eur(s.municipal_cents):>15}  {r.document_ref}"
        )
    net = sum(s.net_cents for s in shares)
    fed = sum(s.federal_cents for s in shares)
    click.echo(
        f"{len(shares)} bookings, {year} Q{quarter} {category}: net {format_eur(net)}, "
        f"Bund {format_eur(fed)}, Kommune {format_eur(net - fed)}"
    )


@audit.command()
@click.option("--month", required=True, help="YYYY-MM: bookings paid in this month")
@click.option("--per-branch", type=int, help="bookings drawn per cost centre  [default: 10]")
@click.option("--seed", help="chosen by the auditor; the same seed gives the same sample (required to draw)")
@click.option(
    "--check",
    is_flag=True,
    help="draw nothing: re-check the month's recorded draws (of --seed, if given) against the "
    "population as of each draw's log position",
)
@USER_OPTION
@with_books
def sample(
    ctx: click.Context, month: str, per_branch: int | None, seed: str | None, check: bool, user: str | None
) -> None:
    """Draw a reproducible random sample per cost centre and record the draw (or, with --check,
    re-check the recorded draws)."""
    books = books_in(ctx)
    if not MONTH_RE.fullmatch(month):
        raise Refused(f"--month: must be YYYY-MM, not {month!r}")
    if check:
        if per_branch is not None:
            raise Refused("--per-branch: not with --check (each draw is re-checked with its own size)")
        _check_samples(books, month, seed)
        return
    if seed is None:
        raise Refused("--seed: required to draw a sample (or --check to re-check the recorded draws)")
    earlier = books.ledger.sample_draws(month)
    try:
        drawn = samples.draw_sample(
            books.ledger,
            books.split_view,
            month,
            10 if per_branch is None else per_branch,
            seed,
            drawn_by=acting_user(ctx, user),
        )
    except samples.NoPopulation:
        raise Refused(f"--month: no bookings paid in {month}") from None
    for branch, keys in drawn.sample.items():
        click.echo(f"{branch} ({drawn.population_sizes[branch]} bookings): {', '.join(keys)}")
    click.echo(
        f"draw {drawn.id} recorded by {drawn.drawn_by} at {drawn.created_on.isoformat(timespec='seconds')}"
    )
    click.echo(
        f"population: {sum(drawn.population_sizes.values())} bookings recorded up to log position "
        f"{drawn.position}, SHA-256 {drawn.population_fingerprint} (method {drawn.method}); "
        f"re-check: koa audit sample --month {month} --check"
    )
    if earlier:
        click.echo(f"note: {len(earlier)} earlier draw(s) for {month}:")
        for d in earlier:
            click.echo(
                f"  {d.created_on.isoformat(timespec='seconds')} by {d.drawn_by}, seed {d.seed}, {d.per_branch} per branch"
            )


def _check_samples(books, month: str, seed: str | None) -> None:
    checks = samples.check_draws(books.ledger, books.split_view, month, seed=seed)
    if not checks:
        raise Refused(f"--month: no recorded draws for {month}" + (f" with seed {seed}" if seed else ""))
    for c in checks:
        d = c.draw
        click.echo(
            f"draw {d.id} at {d.created_on.isoformat(timespec='seconds')} by {d.drawn_by}, seed {d.seed}, "
            f"{d.per_branch} per branch, method {d.method}: "
            + ("reproduced" if c.reproduced else "NOT reproduced")
        )
        if c.fingerprint_recorded:
            where = f"recorded up to log position {c.population_position}"
            verdict = "as recorded" if c.population_equal else f"recorded was {d.population_fingerprint}"
        else:
            where = (
                f"recorded before the draw's own position {c.event_position} "
                "(position and fingerprint were not recorded then)"
            )
            verdict = "sizes as recorded" if c.population_equal else "sizes not as recorded"
        click.echo(
            f"  population: {c.population_size} bookings {where}, SHA-256 {c.population_fingerprint}: {verdict}"
            + ("" if c.population_equal else f" (differs: {', '.join(c.population_differs)})")
        )
        click.echo(
            "  sample: as recorded"
            if c.sample_equal
            else f"  sample: differs ({', '.join(c.sample_differs)})"
        )
    failed = [c for c in checks if not c.reproduced]
    if failed:
        raise Refused(
            f"{len(failed)} of {len(checks)} draw(s) for {month} not reproduced: "
            + ", ".join(str(c.draw.id) for c in failed)
        )
    click.echo(f"{len(checks)} of {len(checks)} draw(s) for {month} reproduced")


@audit.command(name="export")
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="directory to write into"
)
@with_books
def export_(ctx: click.Context, year: int, out_dir: Path) -> None:
    """The auditors' data export (GDPdU/GoBD): bookings, sealed events, index.xml, JSON Lines."""
    books = books_in(ctx)
    # Every file of the export shows the log up to one position: the position of the view's state
    # its bookings are read from (a snapshot, so that a rebuild refilling the view cannot leave
    # bookings out). Events, seals and transfers saved after it are in none of the files.
    with snapshot_now(books.ledger, books.split_view) as state:
        rows = state.bookings(year, counted_only=False)
        upto = state.position or 0
    verdict = audit_service.verify_log(books.ledger, upto=upto)
    if not verdict.intact:
        raise Refused(f"the log does not verify, nothing exported: {verdict}")
    transfers = audit_service.transfers(books.ledger, upto)
    try:
        paths = write_audit_export(
            out_dir,
            year=year,
            bookings=sorted(rows, key=lambda r: r.booking_key),
            events=audit_service.sealed_events(books.ledger, upto),
            transfers=transfers,
            location=books.where,
            created_at=datetime.now(UTC),
        )
    except AuditExportError as e:
        raise Refused(f"--out: {e}") from None
    drawn = sum(t.fiscal_year == year for t in transfers)
    click.echo(
        f"{len(rows)} bookings of {year}, {drawn} draws and repayments of {year} and "
        f"{verdict.count} sealed events (head {verdict.position}:"
        f"{verdict.head.hex()}) written:"
    )
    for p in paths:
        click.echo(f"  {p.resolve()}")
