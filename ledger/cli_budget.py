"""`koa budget`, `koa commitment`, `koa allocation`: the Gesamtbudget, measure commitments and
cost allocation runs (KoA-VV § 18)."""

from __future__ import annotations

import csv
from pathlib import Path

import click

from domain.budget import TITLE_NAMES, TITLES
from domain.cost_allocation import recompute
from domain.money import format_eur, parse_amount_cents
from domain.periods import YEAR, label
from ledger import allocation_commands, budget_commands
from ledger.allocation_file import read_shared, read_staff
from ledger.cli_support import USER_OPTION, Refused, acting_user, books_in, with_books
from projections.budget_status import BudgetStatus

YEAR_TYPE = click.IntRange(2005, 2100)
TITLE_CHOICE = click.Choice(sorted(TITLES))


def _amount(text: str, option: str = "--amount") -> int:
    try:
        return parse_amount_cents(text)
    except ValueError as e:
        raise Refused(f"{option}: {e}") from None


def _eur(cents: int | None) -> str:
    return "–" if cents is None else format_eur(cents)


# ---- budget ---------------------------------------------------------------------------------


@click.group()
def budget() -> None:
    """The year's Eingliederungsbudget (egt, 1101/685 11) and Verwaltungsbudget (vwk, 1101/636 13)."""


@budget.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@click.option("--title", required=True, type=TITLE_CHOICE)
@click.option("--amount", required=True, help="the year's allocation in euros (a later one replaces it)")
@click.option("--reference", required=True, help="the allocation letter (Zuteilungsschreiben)")
@click.option("--reason", required=True)
@USER_OPTION
@with_books
def allocate(ctx, year: int, title: str, amount: str, reference: str, reason: str, user: str | None) -> None:
    """Record the Bund's allocation of a title for a year."""
    b = budget_commands.allocate(
        books_in(ctx), year=year, title=title, amount_cents=_amount(amount), reference=reference, reason=reason,
        by=acting_user(ctx, user),
    )
    click.echo(f"{TITLE_NAMES[title]} {year} ({TITLES[title]}): allocated {format_eur(b.allocated_cents[title])} €")


@budget.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@click.option("--from", "from_title", required=True, type=TITLE_CHOICE)
@click.option("--to", "to_title", required=True, type=TITLE_CHOICE)
@click.option("--amount", required=True)
@click.option("--reason", required=True)
@USER_OPTION
@with_books
def shift(ctx, year: int, from_title: str, to_title: str, amount: str, reason: str, user: str | None) -> None:
    """Shift money between the titles (Deckungsfähigkeit, up to the limit parameter)."""
    b = budget_commands.shift(
        books_in(ctx), year=year, from_title=from_title, to_title=to_title, amount_cents=_amount(amount),
        reason=reason, by=acting_user(ctx, user),
    )
    click.echo(
        f"{year}: {format_eur(_amount(amount))} € shifted from {from_title} to {to_title}; net shifted in: "
        + ", ".join(f"{t} {format_eur(b.shifted_in_cents[t])} €" for t in TITLES)
    )


@budget.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@click.option("--instrument", required=True, help="an egt.* category")
@click.option("--amount", required=True)
@click.option("--reason", required=True)
@USER_OPTION
@with_books
def plan(ctx, year: int, instrument: str, amount: str, reason: str, user: str | None) -> None:
    """Set the planned amount of an Eingliederung instrument."""
    budget_commands.plan(
        books_in(ctx), year=year, instrument=instrument, amount_cents=_amount(amount), reason=reason,
        by=acting_user(ctx, user),
    )
    click.echo(f"{year} plan {instrument}: {format_eur(_amount(amount))} €")


# federal_share: the Bund's share of the Verwaltungskosten committed and spent, what the
# Verwaltungsbudget is charged with (the Eingliederungsbudget is charged with all of its spending).
STATUS_COLUMNS = ("planned", "allocated", "shifted", "committed", "spent", "federal_share", "available")


@budget.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="also write the status as CSV")
@with_books
def status(ctx, year: int, csv_path: Path | None) -> None:
    """Planned, allocated, shifted, committed, spent and available per title and instrument."""
    st = budget_commands.status(books_in(ctx), year)
    click.echo(format_status(st), nl=False)
    if csv_path:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=";")
            w.writerow(["title", "instrument", *(f"{c}_cents" for c in STATUS_COLUMNS)])
            for s in st.lines:
                w.writerow([TITLES[s.title], s.instrument, *(_cell(s, c) for c in STATUS_COLUMNS)])
        click.echo(f"written: {csv_path.resolve()}")


def _cell(line, column: str) -> str:
    value = line.available_cents if column == "available" else getattr(line, f"{column}_cents")
    return "" if value is None else str(value)


def format_status(st: BudgetStatus) -> str:
    head = f"{'Budgetstatus ' + str(st.year):<40}" + "".join(f"{c:>17}" for c in STATUS_COLUMNS) + "\n"
    out = [head]
    for s in st.lines:
        name = f"  {s.instrument}" if s.instrument else f"{TITLE_NAMES[s.title]} {TITLES[s.title]}"
        cells = [
            s.planned_cents, s.allocated_cents, s.shifted_cents, s.committed_cents, s.spent_cents,
            s.federal_share_cents, s.available_cents,
        ]
        out.append(f"{name:<40}" + "".join(f"{_eur(c):>17}" for c in cells) + "\n")
        if s.beyond_budget_cents:
            out.append(f"{'  beyond the budget (Kommune)':<40}{format_eur(s.beyond_budget_cents):>17}\n")
    return "".join(out)


# ---- commitments ----------------------------------------------------------------------------


@click.group()
def commitment() -> None:
    """Measure commitments (Mittelbindung) per provider contract, sliced by fiscal year."""


def _slices(values: tuple[str, ...]) -> dict[int, int]:
    slices: dict[int, int] = {}
    for v in values:
        year, _, amount = v.partition("=")
        if not (year.strip().isascii() and year.strip().isdigit()) or not amount:
            raise Refused(f"--slice: {v!r} is not YEAR=AMOUNT, e.g. 2025=60.000,00")
        if int(year) in slices:
            raise Refused(f"--slice: {year} given twice")
        slices[int(year)] = _amount(amount, "--slice")
    return slices


@commitment.command()
@click.option("--contract", "contract_ref", required=True, help="the contract reference bookings will carry")
@click.option("--instrument", required=True, help="an egt.* category")
@click.option("--provider", required=True)
@click.option("--slice", "slices", required=True, multiple=True, help="YEAR=AMOUNT, once per fiscal year")
@click.option("--reason", required=True)
@USER_OPTION
@with_books
def make(ctx, contract_ref: str, instrument: str, provider: str, slices: tuple[str, ...], reason: str, user) -> None:
    """Bind budget for a provider contract; later years are Verpflichtungsermächtigungen."""
    c, created = budget_commands.make_commitment(
        books_in(ctx), contract_ref=contract_ref, instrument=instrument, provider=provider,
        slices_cents=_slices(slices), reason=reason, by=acting_user(ctx, user),
    )
    word = "committed" if created else "already committed (same terms), unchanged"
    click.echo(f"{c.contract_ref}: {word}; " + _slice_text(c))


def _slice_text(c) -> str:
    return "; ".join(
        f"{y}: slice {format_eur(c.slice_cents[str(y)])} €, drawn {format_eur(c.drawn_cents[str(y)])} €, "
        f"remaining {format_eur(c.remaining_cents(y))} €" + (" (released)" if c.is_released(y) else "")
        for y in c.years()
    )


def _change(increase: bool):
    @click.option("--contract", "contract_ref", required=True)
    @click.option("--year", required=True, type=YEAR_TYPE)
    @click.option("--amount", required=True)
    @click.option("--reason", required=True)
    @USER_OPTION
    @with_books
    def command(ctx, contract_ref: str, year: int, amount: str, reason: str, user: str | None) -> None:
        c = budget_commands.change_commitment(
            books_in(ctx), contract_ref=contract_ref, year=year, amount_cents=_amount(amount), increase=increase,
            reason=reason, by=acting_user(ctx, user),
        )
        click.echo(f"{c.contract_ref}: {_slice_text(c)}")

    command.__doc__ = "Increase a year's slice (binds more budget)." if increase else "Reduce a year's slice."
    return command


commitment.command(name="increase")(_change(True))
commitment.command(name="reduce")(_change(False))


@commitment.command()
@click.option("--contract", "contract_ref", required=True)
@click.option("--year", required=True, type=YEAR_TYPE)
@click.option("--reason", required=True)
@USER_OPTION
@with_books
def release(ctx, contract_ref: str, year: int, reason: str, user: str | None) -> None:
    """Release what remains of a year's slice (the measure is done)."""
    c, amount = budget_commands.release_commitment(
        books_in(ctx), contract_ref=contract_ref, year=year, reason=reason, by=acting_user(ctx, user)
    )
    click.echo(f"{c.contract_ref}: {format_eur(amount)} € of {year} released; {_slice_text(c)}")


@commitment.command()
@click.option("--contract", "contract_ref", required=True)
@with_books
def show(ctx, contract_ref: str) -> None:
    """A commitment's slices, drawdowns and history."""
    books = books_in(ctx)
    c = books.ledger.get_commitment(contract_ref)
    click.echo(f"{c.contract_ref}: {c.instrument}, {c.provider} (made by {c.made_by})")
    click.echo(f"  {_slice_text(c)}")
    for e in books.ledger.events.get(c.id):
        fields = {k: v for k, v in e.__dict__.items() if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")}
        click.echo(f"  {e.timestamp.isoformat(timespec='seconds')} {type(e).__name__} {fields}")


# ---- cost allocation ------------------------------------------------------------------------


@click.group()
def allocation() -> None:
    """Cost allocation runs (KoA-VV § 18): Verwaltungskosten from staff records and parameters."""


QUARTER_OPTION = click.option("--quarter", type=click.IntRange(1, 4), help="default: the whole year")


@allocation.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@QUARTER_OPTION
@click.option("--staff", "staff_file", required=True, type=click.Path(path_type=Path), help="staff records (CSV)")
@click.option("--shared", "shared_file", type=click.Path(path_type=Path), help="shared costs with their SGB II key (CSV)")
@USER_OPTION
@with_books
def run(ctx, year: int, quarter: int | None, staff_file: Path, shared_file: Path | None, user: str | None) -> None:
    """Compute the period's Verwaltungskosten and book them; a rerun reverses the last run's bookings."""
    books = books_in(ctx)
    staff = read_staff(staff_file)
    shared = read_shared(shared_file) if shared_file else []
    out = allocation_commands.run_allocation(
        books, year=year, quarter=quarter or YEAR, staff=staff, shared=shared, by=acting_user(ctx, user)
    )
    click.echo(f"cost allocation {label(year, quarter or YEAR)} run {out.number}: {len(staff)} staff records")
    for t, cents in sorted(out.results_cents.items()):
        click.echo(f"  {t:<28}{format_eur(cents):>17} €")
    click.echo(f"  {'total':<28}{format_eur(sum(out.results_cents.values())):>17} €")
    if out.reversed_keys:
        click.echo(f"  replaces run {out.number - 1}: {len(out.reversed_keys)} bookings reversed")
    click.echo(f"  booked as {', '.join(out.booked_keys)}; `koa allocation approve` by a second person")


@allocation.command()
@click.option("--year", required=True, type=YEAR_TYPE)
@QUARTER_OPTION
@USER_OPTION
@with_books
def approve(ctx, year: int, quarter: int | None, user: str | None) -> None:
    """Approve the bookings of the run in force (not by the person who ran it)."""
    keys = allocation_commands.approve_allocation(
        books_in(ctx), year=year, quarter=quarter or YEAR, by=acting_user(ctx, user)
    )
    click.echo(f"{len(keys)} bookings approved" + (f": {', '.join(keys)}" if keys else " (none awaited approval)"))


@allocation.command(name="show")
@click.option("--year", required=True, type=YEAR_TYPE)
@QUARTER_OPTION
@with_books
def show_allocation(ctx, year: int, quarter: int | None) -> None:
    """Every run of the period with its inputs, parameters and results, each recomputed from its inputs."""
    books = books_in(ctx)
    a = allocation_commands.get_allocation(books, year, quarter or YEAR)
    for e in books.ledger.events.get(a.id):
        if type(e).__name__ != "Computed":
            continue
        again = recompute(e)
        check = "recomputed: equal" if again == e.results_cents else f"recomputed: DIFFERENT {again}"
        in_force = " (in force)" if e.run == a.runs else " (replaced, reversed)"
        click.echo(
            f"run {e.run}{in_force} {e.timestamp.isoformat(timespec='seconds')} by {e.computed_by}: "
            f"{len(e.staff)} staff, {len(e.shared)} shared costs, SGB II VZÄ {e.sgb2_vzae}; {check}"
        )
        click.echo(f"  parameters {e.parameters}")
        for t, cents in e.results_cents.items():
            click.echo(f"  {t:<28}{format_eur(cents):>17} €")
        for t, cents in e.direct_cents.items():
            click.echo(f"  {t + ' (booked directly)':<28}{format_eur(cents):>17} €")
