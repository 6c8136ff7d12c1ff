"""The retention register (GemHVO BW § 39): for each fiscal year found in the books, when its
accounts were adopted and by which resolution, until when its vouchers and its books are kept, and
what may be destroyed on a given day. Read by `koa retention` and `GET /retention`.

The ledger deletes nothing (its events are an immutable, sealed log): the register tells the
archive and the document management system what may go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from domain.rates import RateTable
from domain.retention import BOOKS_YEARS, VOUCHERS_YEARS, AccountsAdoption, Retention, adoption_id
from ledger.application import Ledger
from projections.split_view import SplitViewQueries

NOTHING_DELETED = (
    "The ledger deletes nothing: its events are kept for ever (an immutable, sealed log). This register "
    "tells the archive and the document management system what may go; the annual accounts themselves "
    "are kept permanently (GemHVO BW § 39 Abs. 2)."
)


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording of a year's adoption: the first, or a correction of the one before it."""

    at: datetime
    version: int
    adopted_on: date
    resolution_ref: str
    by: str
    corrects_version: int | None  # None: the first recording
    reason: str | None


@dataclass(frozen=True, slots=True)
class RegisterLine:
    retention: Retention
    adoption: AccountsAdoption | None  # as recorded up to the register's moment
    recordings: list[Recording]  # oldest first; the last one holds the figures in force


@dataclass(frozen=True, slots=True)
class Register:
    on: date
    as_of: datetime | None  # None: as recorded now
    lines: list[RegisterLine]


def register(ledger: Ledger, view: SplitViewQueries, *, on: date, as_of: datetime | None = None) -> Register:
    """The register on a day, from the events recorded up to `as_of` (None: all). The caller has
    brought the view up to date."""
    booked = set(view.booked_years(as_of))
    # An adoption needs its year closed, and a closing is never undone: the years closed now are
    # all that can have one.
    closed = {year for year, quarter, _ in ledger.calendar().closed() if quarter in (0, 4)}
    rates = ledger.rates_as_of(as_of)  # the periods as they were set up to the moment
    lines = [year_line(ledger, rates, year, on, as_of) for year in sorted(booked | closed)]
    return Register(
        on, as_of, [line for line in lines if line.adoption or line.retention.fiscal_year in booked]
    )


def year_line(
    ledger: Ledger, rates: RateTable, year: int, on: date, as_of: datetime | None = None
) -> RegisterLine:
    """A fiscal year's line: its adoption as recorded up to `as_of`, every recording of it, and its
    periods (the parameters of `rates`) and status on a day."""
    adoption, recordings = None, []
    for e in ledger.events.get(adoption_id(year)):
        if as_of is not None and e.timestamp > as_of:
            break
        adoption = e.mutate(adoption)
        corrected = isinstance(e, AccountsAdoption.Corrected)
        recordings.append(
            Recording(
                at=e.timestamp,
                version=e.originator_version,
                adopted_on=e.adopted_on,
                resolution_ref=e.resolution_ref,
                by=e.corrected_by if corrected else e.recorded_by,
                corrects_version=e.corrects_version if corrected else None,
                reason=e.reason if corrected else None,
            )
        )
    retention = Retention(
        fiscal_year=year,
        adopted_on=adoption.adopted_on if adoption else None,
        books_years=rates.dated_years(BOOKS_YEARS, year),
        vouchers_years=rates.dated_years(VOUCHERS_YEARS, year),
        on=on,
    )
    return RegisterLine(retention, adoption, recordings)
