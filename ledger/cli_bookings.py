"""`koa bookings`: the bookings of the split view by filter, in key order, e.g. what awaits approval.

With --keys-only it writes one key per line: a keys file for `koa approve --keys-file`, so an
approver can approve a payment run's lines above the threshold as a whole (a Sammelanordnung):

    koa bookings --state awaiting_approval --document-ref ZA-2025-03 --keys-only > run.keys
    koa approve --keys-file run.keys
"""

from __future__ import annotations

import click

from domain.money import format_eur
from ledger.cli_support import Refused, books_in, with_books
from projections.booking_list import STATES, BookingFilter, list_bookings
from projections.split_projection import snapshot_now

PAGE_ROWS = 1_000  # read a page at a time (keyset), so memory does not grow with the books
ROWS_MAX_DEFAULT = 10_000  # the size of one batch approval (ledger.application.APPROVE_KEYS_MAX)
ROWS_MAX = 10_000_000


@click.command(name="bookings")
@click.option("--year", type=click.IntRange(2005, 2100), help="fiscal year")
@click.option("--quarter", type=click.IntRange(1, 4))
@click.option("--category", help="a category code (koa categories)")
@click.option("--state", type=click.Choice(STATES), help="e.g. awaiting_approval")
@click.option("--document-ref", help="the Beleg, e.g. a payment run's Anordnung")
@click.option("--case-ref", help="the Bedarfsgemeinschaft (pseudonymous)")
@click.option(
    "--limit",
    type=click.IntRange(1, ROWS_MAX),
    default=ROWS_MAX_DEFAULT,
    show_default=True,
    help="at most this many bookings; more are announced on stderr",
)
@click.option("--keys-only", is_flag=True, help="one key per line (a keys file for koa approve)")
@with_books
def bookings(
    ctx: click.Context,
    year: int | None,
    quarter: int | None,
    category: str | None,
    state: str | None,
    document_ref: str | None,
    case_ref: str | None,
    limit: int,
    keys_only: bool,
) -> None:
    """List bookings by filter, in key order: key, state, fiscal year and quarter, category, net
    amount (receipts and Stornos negative), payment date, Beleg, recorder."""
    books = books_in(ctx)
    if category is not None and category not in books.ledger.catalogue:
        raise Refused(f"--category: unknown category {category!r}; see `koa categories`")
    f = BookingFilter(year, quarter, category, state, case_ref, document_ref)
    shown, after, more = 0, None, False
    with snapshot_now(books.ledger, books.split_view) as view:  # every page from one state
        while True:
            want = min(PAGE_ROWS, limit - shown)
            page = list_bookings(view, f, after_key=after, limit=want + 1)  # +1: more to come?
            for row, row_state in page[:want]:
                if keys_only:
                    click.echo(row.booking_key)
                    continue
                amount = format_eur(row.net_cents)  # net: a receipt or a Storno is negative
                click.echo(
                    f"{row.booking_key:<32} {row_state:<18} {row.fiscal_year} Q{row.quarter}  "
                    f"{row.category:<28} {amount:>16}  {row.payment_date}  {row.document_ref:<20} "
                    f"{row.recorded_by}"
                )
            shown += min(want, len(page))
            if len(page) <= want:
                break
            if shown >= limit:
                more = True
                break
            after = page[want - 1][0].booking_key
    if more:
        click.echo(f"more than {limit} bookings match: raise --limit or narrow the filter", err=True)
    if not keys_only:
        click.echo(f"{shown} booking{'s' if shown != 1 else ''}", err=True)
