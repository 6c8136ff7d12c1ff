"""`koa params list/set`: the rates set by law, changed only by audited events; `koa reconcile`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import click

from domain.errors import RateMissing, ValidationError
from domain.interest import check_base_rate
from domain.money import format_eur
from domain.parameters import NAMES, kind_of, parse_signed_percent, parse_value
from domain.rates import pct
from ledger.cli_support import USER_OPTION, Refused, acting_user, books_in, with_books
from ledger.commands import parse_date
from projections.split_projection import snapshot_now
from projections.split_queries import SPLIT_PARAMETERS, federal_before_after, split_lines


@click.group()
def params() -> None:
    """Dated rates: the administrative-cost share and the KdU quota per Land and year."""


@params.command(name="list")
@click.option("--year", type=click.IntRange(2005, 2100), help="default: the current year and the five before")
@with_books
def list_(ctx: click.Context, year: int | None) -> None:
    """The rates in force per fiscal year, and every change with who, when and why."""
    books = books_in(ctx)
    rates, land = books.ledger.rates, books.settings.land
    years = [year] if year else list(range(date.today().year - 5, date.today().year + 1))
    for y in years:
        kdu = "no KdU quota on file"
        if y in rates.kdu_years(land):
            q = rates.kdu_quota(land, y)
            kdu = (
                f"KdU {land} provisional {pct(q.provisional) if q.provisional is not None else '–'}, "
                f"final {pct(q.final) if q.final is not None else '–'}"
            )
        click.echo(f"{y}: Verwaltungskosten Bund {pct(rates.vwk_share(y))}; {kdu}")
        click.echo(
            f"      Versorgungszuschlag max {pct(rates.dated('versorgungszuschlag_cap', y))}; "
            f"Personalgemeinkosten {pct(rates.dated('personalgemeinkosten_rate', y))}; "
            f"je VZÄ: Personalnebenkosten "
            f"{format_eur(rates.dated_amount_cents('personalnebenkosten_per_vzae', y))} €, "
            f"Sachkosten {format_eur(rates.dated_amount_cents('sachkosten_per_vzae', y))} €; "
            f"Deckungsfähigkeit {pct(rates.dated('deckungsfaehigkeit_limit', y))}"
        )
        click.echo(
            f"      Rückzahlungszinsen: Basiszinssatz {_base_rate(rates, date(y, 1, 1))} (1. Januar), "
            f"{_base_rate(rates, date(y, 7, 1))} (1. Juli) + {pct(rates.dated('repayment_interest_points', y))}"
        )
        click.echo(
            f"      Aufbewahrung (GemHVO BW § 39) Bücher {rates.dated_years('retention_years_books', y)} Jahre, "
            f"Belege {rates.dated_years('retention_years_vouchers', y)} Jahre"
        )
    changes = books.ledger.parameter_changes()
    base_rate_changes = books.ledger.base_rate_changes()
    click.echo(f"changes since the shipped defaults: {len(changes) + len(base_rate_changes)}")
    for e in changes:
        where = f" {e.land}" if e.land else ""
        click.echo(
            f"  {e.timestamp.isoformat(timespec='seconds')} {e.set_by}: {e.name}{where} {e.year} = "
            f"{e.value} ({e.reason})"
        )
    for e in base_rate_changes:
        click.echo(
            f"  {e.timestamp.isoformat(timespec='seconds')} {e.set_by}: Basiszinssatz from "
            f"{e.valid_from.isoformat()} = {pct(Decimal(e.value))} ({e.reason})"
        )


def _base_rate(rates, half_year: date) -> str:
    try:
        return pct(rates.basiszinssatz.on(half_year))
    except RateMissing:
        return "not on file"


@params.command(name="set-base-rate")
@click.option("--from", "valid_from", required=True, help="the half-year: YYYY-01-01 or YYYY-07-01")
@click.option("--value", required=True, help="as the Bundesbank announced it, e.g. '1,27 %' or '-0,88 %'")
@click.option("--reason", required=True, help="why (e.g. the Bundesanzeiger notice)")
@USER_OPTION
@with_books
def set_base_rate(ctx: click.Context, valid_from: str, value: str, reason: str, user: str | None) -> None:
    """The Basiszinssatz (§ 247 BGB) of a half-year, for the interest on repayments to the Bund."""
    try:
        start = parse_date(valid_from)
    except ValueError as e:
        raise Refused(f"--from: {e}") from None
    try:
        rate = parse_signed_percent(value)
    except ValueError as e:
        raise Refused(f"--value: {e}") from None
    try:
        check_base_rate(start, rate)
    except ValidationError as e:
        raise Refused(f"{'--from' if e.field == 'valid_from' else '--value'}: {e.reason}") from None
    books = books_in(ctx)
    books.ledger.set_base_rate(valid_from=start, value=rate, reason=reason, set_by=acting_user(ctx, user))
    click.echo(f"Basiszinssatz from {start.isoformat()} = {pct(rate)} set")


@params.command(name="set")
@click.argument("name", type=click.Choice(sorted(NAMES)))
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option(
    "--value", required=True, help="a rate (0.848, 0,848 or 84,8 %), an amount in euros (12.000,00) or years (10)"
)
@click.option("--reason", required=True, help="why (kept with the change)")
@click.option("--land", help="for KdU quotas (default: KOA_LAND)")
@USER_OPTION
@with_books
def set_(
    ctx: click.Context, name: str, year: int, value: str, reason: str, land: str | None, user: str | None
) -> None:
    """Change a rate for a fiscal year; the split follows, and the difference is shown."""
    books = books_in(ctx)
    land = (land or books.settings.land).upper()
    try:
        rate = parse_value(name, value)
    except ValueError as e:
        raise Refused(f"--value: {e}") from None
    moved = None
    if name in SPLIT_PARAMETERS:
        with snapshot_now(books.ledger, books.split_view) as view:
            moved = federal_before_after(view, books.ledger.catalogue, books.ledger.rates, land, year, (name, rate))
    books.ledger.set_parameter(
        name=name, year=year, value=rate, land=land, reason=reason, set_by=acting_user(ctx, user)
    )
    _allocation_differences(books, name, year)
    shown = {"amount": f"{format_eur(int(rate * 100))} €", "years": f"{rate} years"}.get(kind_of(name), str(rate))
    click.echo(f"{name} {year}{' ' + land if name.startswith('kdu_') else ''} = {shown} set")
    if moved is not None:
        before, after = moved
        click.echo(
            f"federal share {year}: {format_eur(before)} -> {format_eur(after)} "
            f"(difference {format_eur(after - before)})"
        )


def _allocation_differences(books, name: str, year: int) -> None:
    from ledger.allocation_commands import rerun_differences

    for d in rerun_differences(books, name, year):
        click.echo(
            f"cost allocation {d.document_ref}: {format_eur(d.booked_cents)} € booked; with the new value "
            f"{format_eur(d.with_new_value_cents)} € (difference {format_eur(d.difference_cents)} €): "
            f"rerun `koa allocation run --year {d.year}{f' --quarter {d.quarter}' if d.quarter else ''}` to book it"
        )


@click.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@click.option("--all", "show_all", is_flag=True, help="list every booking that moves, not only the first 50")
@with_books
def reconcile(ctx: click.Context, year: int, show_all: bool) -> None:
    """Überleitung: the year by payment date, by fiscal year (cash) and by service period (accrual)."""
    from projections.reconciliation import reconcile as reconcile_year

    books = books_in(ctx)
    with snapshot_now(books.ledger, books.split_view) as view:
        r = reconcile_year(view, year)
    click.echo(
        f"{year}: by payment date {format_eur(r.payment_cents)}; by fiscal year (Kameralistik) "
        f"{format_eur(r.cash_cents)}; by service period (Doppik) {format_eur(r.accrual_cents)}"
    )
    by_reason: dict[tuple[str, str], list] = {}
    for m in r.moves:
        by_reason.setdefault((m.from_view, m.reason), []).append(m)
    for (view, reason), moves in sorted(by_reason.items()):
        arrow = "payment date -> fiscal year" if view == "payment" else "fiscal year -> service period"
        click.echo(f"  {arrow}: {reason}: {len(moves)} bookings, {format_eur(sum(m.cents for m in moves))}")
    shown = r.moves if show_all else r.moves[:50]
    for m in shown:
        click.echo(f"    {m.booking_key:<32} {m.category:<24} {format_eur(m.cents):>15}  {m.reason}")
    if len(shown) < len(r.moves):
        click.echo(f"    ... {len(r.moves) - len(shown)} more (--all)")


@click.command()
@click.option("--year", required=True, type=click.IntRange(2005, 2100))
@with_books
def kdu(ctx: click.Context, year: int) -> None:
    """The KdU quota of the Land for a year: spending (§ 22 Abs. 1, net of receipts), the federal
    amount under the provisional and the final quota, and the difference to settle with the Land."""
    from exports.koavv_report import kdu_line

    books = books_in(ctx)
    land, rates = books.settings.land, books.ledger.rates
    with snapshot_now(books.ledger, books.split_view) as view:
        lines = [s for q in (1, 2, 3, 4) for s in split_lines(view, books.ledger.catalogue, rates, land, year, q)]
    k = kdu_line(lines, rates, land, year)
    if k is None:
        raise Refused(f"--year: no KdU quota of {land} on file for {year} (koa params set kdu_quota_...)")

    def amount(cents: int | None) -> str:
        return "–" if cents is None else format_eur(cents)

    def rate(r) -> str:
        return "–" if r is None else pct(r)

    click.echo(f"KdU {land} {year}: spending § 22 Abs. 1 net {format_eur(k.net_cents)}")
    click.echo(f"  provisional quota {rate(k.provisional_rate)}: Bund {amount(k.federal_provisional_cents)}")
    click.echo(f"  final quota       {rate(k.final_rate)}: Bund {amount(k.federal_final_cents)}")
    click.echo(f"  difference to settle with the Land: {amount(k.difference_cents)}")
