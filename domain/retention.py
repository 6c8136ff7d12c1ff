"""Retention of the books (Aufbewahrungsfristen, GemHVO BW § 39 Abs. 2): books are kept 10 years,
vouchers (Belege) 6 years, both counted from 1 January after the year in which the council adopted
the fiscal year's accounts (Feststellung des Jahresabschlusses).

The adoption is an audited event, one aggregate per fiscal year; the periods are dated parameters
(domain/data/rates.toml, `koa params set`). The ledger itself deletes nothing: the register says
what the archive and the document management system may destroy, and from when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REF_RE, YEAR_MAX, YEAR_MIN, check_reason, check_user
from domain.errors import KeyConflict, StateRefused, ValidationError
from domain.periods import PeriodCalendar

ADOPTION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:accounts-adoption")
# The dated parameters (domain/rates.py DATED_PARAMETERS) that hold the two periods, in years.
BOOKS_YEARS = "retention_years_books"
VOUCHERS_YEARS = "retention_years_vouchers"


def adoption_id(fiscal_year: int) -> UUID:
    return uuid5(ADOPTION_NAMESPACE, str(fiscal_year))


class YearNotClosed(StateRefused):
    """The accounts of a year whose four quarters are not all closed cannot have been adopted."""


def year_closed(calendar: PeriodCalendar, fiscal_year: int) -> bool:
    return all(calendar.closing_of(fiscal_year, q) for q in (1, 2, 3, 4))


def _checked(fiscal_year: int, adopted_on: date, resolution_ref: str, today: date) -> None:
    """The rules every recording of an adoption keeps, first or corrected."""
    if not YEAR_MIN <= fiscal_year <= YEAR_MAX:
        raise ValidationError(f"must be between {YEAR_MIN} and {YEAR_MAX}", "year")
    if adopted_on <= date(fiscal_year, 12, 31):
        raise ValidationError(
            f"{adopted_on.isoformat()} is not after the end of fiscal year {fiscal_year}: "
            "its accounts are adopted once the year is over",
            "date",
        )
    if adopted_on > today:
        raise ValidationError(
            f"{adopted_on.isoformat()} is in the future (today is {today.isoformat()})", "date"
        )
    if not REF_RE.fullmatch(resolution_ref):
        raise ValidationError(
            "required: the council's resolution, 1-64 letters, digits or ._:/-", "resolution"
        )


class AccountsAdoption(Aggregate):
    """The council's adoption of a fiscal year's accounts (Feststellung des Jahresabschlusses).

    Recorded once per year; a wrong date or resolution is corrected by a later event that names
    the recording it corrects and gives a reason. Nothing is updated in place or deleted."""

    @staticmethod
    def create_id(fiscal_year: int) -> UUID:  # type: ignore[override]
        return adoption_id(fiscal_year)

    @classmethod
    def record(
        cls,
        *,
        fiscal_year: int,
        adopted_on: date,
        resolution_ref: str,
        recorded_by: str,
        calendar: PeriodCalendar,
        today: date,
    ) -> AccountsAdoption:
        _checked(fiscal_year, adopted_on, resolution_ref, today)
        check_user(recorded_by, "recorded_by")
        if not year_closed(calendar, fiscal_year):
            open_ = [f"Q{q}" for q in (1, 2, 3, 4) if not calendar.closing_of(fiscal_year, q)]
            raise YearNotClosed(
                f"fiscal year {fiscal_year} is not closed ({', '.join(open_)} open): "
                "its accounts cannot have been adopted; close the year first",
                "year",
            )
        return cls(fiscal_year, adopted_on, resolution_ref, recorded_by)

    @event("Adopted")
    def __init__(self, fiscal_year: int, adopted_on: date, resolution_ref: str, recorded_by: str) -> None:
        self.fiscal_year = fiscal_year
        self.adopted_on = adopted_on
        self.resolution_ref = resolution_ref
        self.recorded_by = recorded_by
        self.corrections = 0

    # ---- commands --------------------------------------------------------------------------

    def same_figures(self, adopted_on: date, resolution_ref: str) -> bool:
        return (self.adopted_on, self.resolution_ref) == (adopted_on, resolution_ref)

    def refuse_other_figures(self, adopted_on: date, resolution_ref: str) -> None:
        """A second recording without `corrects`: a repeat if the figures are the same, else a conflict
        naming the first field that differs."""
        if self.same_figures(adopted_on, resolution_ref):
            return
        field = "date" if adopted_on != self.adopted_on else "resolution"
        raise KeyConflict(
            f"the accounts of {self.fiscal_year} are on record as adopted on {self.adopted_on.isoformat()} "
            f"by resolution {self.resolution_ref}; to correct that, name it (corrects "
            f"{self.resolution_ref}) and give a reason",
            field,
        )

    def correct(
        self,
        *,
        adopted_on: date,
        resolution_ref: str,
        corrects: str,
        reason: str,
        corrected_by: str,
        today: date,
    ) -> None:
        """A new recording that replaces the figures on record from now on; `corrects` names the
        recording on record by its resolution reference (the register shows it), so a correction
        made on a stale view of the books is refused instead of overriding another."""
        _checked(self.fiscal_year, adopted_on, resolution_ref, today)
        reason = check_reason(reason)
        check_user(corrected_by, "corrected_by")
        if corrects != self.resolution_ref:
            raise StateRefused(
                f"the adoption of {self.fiscal_year} on record is by resolution {self.resolution_ref} "
                f"of {self.adopted_on.isoformat()}, not {corrects!r}: name the one to correct",
                "corrects",
            )
        if self.same_figures(adopted_on, resolution_ref):
            raise ValidationError(
                "the date and the resolution are those on record: nothing to correct", "date"
            )
        self._corrected(
            adopted_on=adopted_on,
            resolution_ref=resolution_ref,
            corrects_version=self.version,
            corrects_adopted_on=self.adopted_on,
            corrects_resolution_ref=self.resolution_ref,
            reason=reason,
            corrected_by=corrected_by,
        )

    # ---- events ----------------------------------------------------------------------------

    @event("Corrected")
    def _corrected(
        self,
        adopted_on: date,
        resolution_ref: str,
        corrects_version: int,
        corrects_adopted_on: date,
        corrects_resolution_ref: str,
        reason: str,
        corrected_by: str,
    ) -> None:
        # The corrected figures stay in their own event (and in this one, named): nothing is lost.
        self.adopted_on = adopted_on
        self.resolution_ref = resolution_ref
        self.corrections += 1


# ---- the periods -------------------------------------------------------------------------------


def kept_until(adopted_on: date, years: int) -> date:
    """The last day of a period of `years` counted from 1 January after the year of adoption:
    adopted on 2025-11-20, six years run 2026-01-01 to 2031-12-31."""
    return date(adopted_on.year + years, 12, 31)


class Status(StrEnum):
    NOT_ADOPTED = "not_adopted"
    KEEP = "keep"
    VOUCHERS_MAY_GO = "vouchers_may_be_destroyed"
    BOOKS_MAY_GO = "books_may_be_destroyed"  # only if the vouchers' period were set longer
    ALL_MAY_GO = "books_and_vouchers_may_be_destroyed"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Status.NOT_ADOPTED: "accounts not adopted: keep everything",
    Status.KEEP: "keep",
    Status.VOUCHERS_MAY_GO: "vouchers may be destroyed",
    Status.BOOKS_MAY_GO: "books may be destroyed; keep the vouchers",
    Status.ALL_MAY_GO: "books and vouchers may be destroyed",
}


@dataclass(frozen=True, slots=True)
class Retention:
    """Until when a fiscal year's books and vouchers are kept, and what may go on a given day."""

    fiscal_year: int
    adopted_on: date | None  # None: no adoption on record (as of the moment asked)
    books_years: int
    vouchers_years: int
    on: date

    @property
    def books_until(self) -> date | None:
        return None if self.adopted_on is None else kept_until(self.adopted_on, self.books_years)

    @property
    def vouchers_until(self) -> date | None:
        return None if self.adopted_on is None else kept_until(self.adopted_on, self.vouchers_years)

    @property
    def status(self) -> Status:
        # Adopted after the day asked about: on that day the periods had not begun.
        if self.adopted_on is None or self.adopted_on > self.on:
            return Status.NOT_ADOPTED
        assert self.books_until is not None and self.vouchers_until is not None
        books_go, vouchers_go = self.on > self.books_until, self.on > self.vouchers_until
        if books_go and vouchers_go:
            return Status.ALL_MAY_GO
        if books_go:
            return Status.BOOKS_MAY_GO
        return Status.VOUCHERS_MAY_GO if vouchers_go else Status.KEEP

    @property
    def status_text(self) -> str:
        if self.adopted_on is not None and self.adopted_on > self.on:  # on record, adopted after the day
            return "accounts not adopted by then: keep everything"
        return self.status.label
