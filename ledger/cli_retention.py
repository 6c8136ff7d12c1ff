"""`koa retention`: the retention register (GemHVO BW § 39), and `koa retention adopt`, the council's
adoption of a year's accounts from which the periods run."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from domain.errors import DomainError
from ledger.cli_audit import parse_moment
from ledger.cli_support import USER_OPTION, Refused, acting_user, books_in, with_books
from ledger.commands import parse_date
from ledger.retention import NOTHING_DELETED, Register, register, year_line
from projections.split_projection import snapshot_now

# The domain names its fields; the user typed options.
OPTION_OF = {
    "year": "--year",
    "date": "--date",
    "resolution": "--resolution",
    "corrects": "--corrects",
    "reason": "--reason",
    "recorded_by": "--user",
    "corrected_by": "--user",
}
ON_HELP = (
    "the day the status is for, YYYY-MM-DD or DD.MM.YYYY (default: today; with --as-of: that moment's day)"
)
AS_OF_HELP = (
    "as recorded up to this moment (ISO 8601; without an offset it is UTC): what the register said then"
)


@click.group(invoke_without_command=True)
@click.option("--on", "on_text", help=ON_HELP)
@click.option("--as-of", "as_of", help=AS_OF_HELP)
@click.pass_context
def retention(ctx: click.Context, on_text: str | None, as_of: str | None) -> None:
    """The retention register (GemHVO BW § 39): per fiscal year, the adoption of its accounts, until
    when its vouchers (6 years) and books (10 years) are kept, and what may be destroyed on a day.
    The ledger itself deletes nothing. `koa retention adopt` records an adoption."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show, on_text=on_text, as_of=as_of)
    elif on_text is not None or as_of is not None:
        raise click.UsageError(f"--on and --as-of belong to the register, not to `{ctx.invoked_subcommand}`")


@retention.command()
@click.option("--on", "on_text", help=ON_HELP)
@click.option("--as-of", "as_of", help=AS_OF_HELP)
@with_books
def show(ctx: click.Context, on_text: str | None, as_of: str | None) -> None:
    """The register (the same as `koa retention`)."""
    books = books_in(ctx)
    moment = None
    if as_of is not None:
        moment = parse_moment(as_of)
        if moment > datetime.now(UTC):
            raise Refused(f"--as-of: {moment.isoformat()} is in the future")
    try:
        on = parse_date(on_text) if on_text else (moment.date() if moment else date.today())
    except ValueError as e:
        raise Refused(f"--on: {e}") from None
    with snapshot_now(books.ledger, books.split_view) as view:
        found = register(books.ledger, view, on=on, as_of=moment)
    _print_register(found)


def _print_register(r: Register) -> None:
    when = f" as recorded up to {r.as_of.isoformat()}" if r.as_of else ""
    click.echo(f"Retention register (GemHVO BW § 39) on {r.on.isoformat()}{when}")
    if not r.lines:
        click.echo("(no fiscal year with bookings or an adoption)")
    else:
        click.echo(
            f"{'year':<6}{'adopted on':<12}{'resolution':<22}{'vouchers kept until':<22}"
            f"{'books kept until':<22}status"
        )
    for line in r.lines:
        t = line.retention
        adopted = t.adopted_on.isoformat() if t.adopted_on else "–"
        resolution = line.adoption.resolution_ref if line.adoption else "–"
        vouchers = f"{t.vouchers_until.isoformat() if t.vouchers_until else '–'} ({t.vouchers_years} y)"
        books = f"{t.books_until.isoformat() if t.books_until else '–'} ({t.books_years} y)"
        click.echo(f"{t.fiscal_year:<6}{adopted:<12}{resolution:<22}{vouchers:<22}{books:<22}{t.status_text}")
        for rec in line.recordings:
            what = "recorded" if rec.corrects_version is None else f"corrected ({rec.reason})"
            click.echo(
                f"      {what} by {rec.by} at {rec.at.isoformat(timespec='seconds')}: "
                f"adopted on {rec.adopted_on.isoformat()} by resolution {rec.resolution_ref}"
            )
    click.echo(NOTHING_DELETED)


@retention.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100), help="the fiscal year whose accounts")
@click.option(
    "--date", "date_text", required=True, help="the day the council adopted them, YYYY-MM-DD or DD.MM.YYYY"
)
@click.option(
    "--resolution", required=True, help="the council's resolution (document reference, e.g. GR-2025-117)"
)
@click.option(
    "--corrects", help="for a correction: the resolution of the adoption on record that this corrects"
)
@click.option("--reason", help="why it is corrected (required with --corrects; kept with the correction)")
@USER_OPTION
@with_books
def adopt(
    ctx: click.Context,
    year: int,
    date_text: str,
    resolution: str,
    corrects: str | None,
    reason: str | None,
    user: str | None,
) -> None:
    """Record that the council adopted a fiscal year's accounts (Feststellung des Jahresabschlusses):
    the retention periods run from 1 January after it. The year must be closed (`koa close`)."""
    books = books_in(ctx)
    try:
        adopted_on = parse_date(date_text)
    except ValueError as e:
        raise Refused(f"--date: {e}") from None
    before = books.ledger.adoption_as_of(year) if corrects else None
    try:
        adoption, created = books.ledger.record_adoption(
            fiscal_year=year,
            adopted_on=adopted_on,
            resolution_ref=resolution,
            recorded_by=acting_user(ctx, user),
            corrects=corrects,
            reason=reason,
        )
    except DomainError as e:
        if e.field in OPTION_OF:
            raise Refused(f"{OPTION_OF[e.field]}: {e.reason}") from None
        raise
    figures = f"adopted on {adoption.adopted_on.isoformat()} by resolution {adoption.resolution_ref}"
    if not created:
        click.echo(f"accounts of {year}: {figures}: already on record (unchanged)")
    elif before is not None:
        click.echo(
            f"accounts of {year}: adoption corrected: {figures} (was {before.adopted_on.isoformat()}, "
            f"resolution {before.resolution_ref}): recorded"
        )
    else:
        click.echo(f"accounts of {year}: {figures}: recorded")
    t = year_line(books.ledger, books.ledger.rates, year, date.today()).retention
    assert t.vouchers_until is not None and t.books_until is not None
    click.echo(
        f"vouchers kept until {t.vouchers_until.isoformat()} ({t.vouchers_years} years), "
        f"books until {t.books_until.isoformat()} ({t.books_years} years), counted from 1 January "
        f"{adoption.adopted_on.year + 1}"
    )


__all__ = ["retention"]
