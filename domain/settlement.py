"""Events of the settlement with the Bund: funds drawn (Mittelabruf) and reports handed in."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REF_RE, YEAR_MAX, YEAR_MIN, check_reason, check_user
from domain.errors import ValidationError
from domain.interest import Interest, interest_line
from domain.money import AMOUNT_CENTS_MAX, format_eur

DRAWABLE_TITLES = ("1101/681 12", "1101/685 11", "1101/636 13", "1101/632 11")
DRAW_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:funds-draw")
REPAYMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:funds-repayment")
DRAW_CENTS_MAX = AMOUNT_CENTS_MAX * 100  # a draw covers many bookings: 10.000.000.000,00 €
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_transfer(
    federal_title: str,
    fiscal_year: int,
    value_date: date,
    amount_cents: int,
    document_ref: str,
    recorded_by: str,
) -> None:
    """The fields a draw and a repayment share: title, fiscal year, value date, amount, voucher."""
    if federal_title not in DRAWABLE_TITLES:
        raise ValidationError(f"must be one of {', '.join(DRAWABLE_TITLES)}", "title")
    if not YEAR_MIN <= fiscal_year <= YEAR_MAX:
        raise ValidationError(f"must be between {YEAR_MIN} and {YEAR_MAX}", "year")
    if not YEAR_MIN <= value_date.year <= YEAR_MAX:
        raise ValidationError(f"year must be between {YEAR_MIN} and {YEAR_MAX}", "date")
    if amount_cents <= 0:
        raise ValidationError("must be greater than zero", "amount")
    if amount_cents > DRAW_CENTS_MAX:
        raise ValidationError(f"exceeds the limit of {format_eur(DRAW_CENTS_MAX)} €", "amount")
    if not REF_RE.fullmatch(document_ref):
        raise ValidationError("required: 1-64 letters, digits or ._:/-", "document_ref")
    check_user(recorded_by, "recorded_by")


class FundsDraw(Aggregate):
    """Federal funds drawn for a title and fiscal year (HKR-Mittelabruf), identified by its voucher."""

    @staticmethod
    def create_id(document_ref: str) -> UUID:  # type: ignore[override]
        return uuid5(DRAW_NAMESPACE, document_ref)

    @classmethod
    def record(
        cls,
        *,
        federal_title: str,
        fiscal_year: int,
        value_date: date,
        amount_cents: int,
        document_ref: str,
        recorded_by: str,
    ) -> FundsDraw:
        check_transfer(federal_title, fiscal_year, value_date, amount_cents, document_ref, recorded_by)
        return cls(federal_title, fiscal_year, value_date, amount_cents, document_ref, recorded_by)

    @event("Recorded")
    def __init__(
        self,
        federal_title: str,
        fiscal_year: int,
        value_date: date,
        amount_cents: int,
        document_ref: str,
        recorded_by: str,
    ) -> None:
        self.federal_title = federal_title
        self.fiscal_year = fiscal_year
        self.value_date = value_date
        self.amount_cents = amount_cents
        self.document_ref = document_ref
        self.recorded_by = recorded_by


class FundsRepayment(Aggregate):
    """Federal funds repaid to the Bund for a title and fiscal year, with the interest on them.

    Funds obtained without legal ground (drawn beyond the Bund's share) are repaid with interest
    at the Basiszinssatz + 3 points from the day they were obtained (domain/interest.py). The
    event keeps each interest line's days and rates, so an auditor can recompute the interest.
    The principal reduces the funds drawn for the title; the interest is the city's own money.
    """

    @staticmethod
    def create_id(document_ref: str) -> UUID:  # type: ignore[override]
        return uuid5(REPAYMENT_NAMESPACE, document_ref)

    @classmethod
    def record(
        cls,
        *,
        federal_title: str,
        fiscal_year: int,
        value_date: date,
        amount_cents: int,
        interest: Interest,
        document_ref: str,
        reason: str,
        recorded_by: str,
    ) -> FundsRepayment:
        check_transfer(federal_title, fiscal_year, value_date, amount_cents, document_ref, recorded_by)
        reason = check_reason(reason)
        assert interest.principal_cents == amount_cents and interest.until == value_date, interest
        lines = [
            [line.first_day.isoformat(), line.last_day.isoformat(), str(line.base_rate), str(line.points)]
            for line in interest.lines
        ]
        return cls(
            federal_title,
            fiscal_year,
            value_date,
            amount_cents,
            interest.since,
            interest.total_cents,
            lines,
            document_ref,
            reason,
            recorded_by,
        )

    @event("Recorded")
    def __init__(
        self,
        federal_title: str,
        fiscal_year: int,
        value_date: date,
        amount_cents: int,
        interest_since: date,
        interest_cents: int,
        interest_lines: list[list[str]],
        document_ref: str,
        reason: str,
        recorded_by: str,
    ) -> None:
        self.federal_title = federal_title
        self.fiscal_year = fiscal_year
        self.value_date = value_date
        self.amount_cents = amount_cents
        self.interest_since = interest_since
        self.interest_cents = interest_cents
        # Per line: first and last day counted, the Basiszinssatz and the points in force.
        self.interest_lines = interest_lines
        self.document_ref = document_ref
        self.reason = reason
        self.recorded_by = recorded_by

    @property
    def interest(self) -> Interest:
        """The interest recomputed from the lines the event keeps (what an auditor does)."""
        lines = tuple(
            interest_line(
                self.amount_cents,
                date.fromisoformat(first),
                date.fromisoformat(last),
                Decimal(base),
                Decimal(points),
            )
            for first, last, base, points in self.interest_lines
        )
        return Interest(self.amount_cents, self.interest_since, self.value_date, lines)


class RepaidTally(Aggregate):
    """What was repaid for a title and fiscal year, saved with every repayment: two repayments
    decided against the same funds drawn cannot both be stored (the second's version conflicts)."""

    @staticmethod
    def create_id(federal_title: str, fiscal_year: int) -> UUID:  # type: ignore[override]
        return uuid5(REPAYMENT_NAMESPACE, f"tally:{federal_title}:{fiscal_year}")

    @event("Opened")
    def __init__(self, federal_title: str, fiscal_year: int) -> None:
        self.federal_title = federal_title
        self.fiscal_year = fiscal_year
        self.repaid_cents = 0

    @event("Repaid")
    def add(self, document_ref: str, amount_cents: int) -> None:
        assert amount_cents > 0, amount_cents
        self.repaid_cents += amount_cents


class Submission(Aggregate):
    """A settlement report handed in: which period, as of which moment, and the file's hash."""

    @classmethod
    def record(
        cls,
        *,
        year: int,
        quarter: int | None,
        as_of: datetime,
        last_position: int,
        file_sha256: str,
        figures_sha256: str,
        submitted_by: str,
    ) -> Submission:
        if not (SHA256_RE.fullmatch(file_sha256) and SHA256_RE.fullmatch(figures_sha256)):
            raise ValidationError("must be a lower-case hex SHA-256", "file_sha256")
        check_user(submitted_by, "submitted_by")
        return cls(year, quarter or 0, as_of, last_position, file_sha256, figures_sha256, submitted_by)

    @event("Recorded")
    def __init__(
        self,
        year: int,
        quarter: int,
        as_of: datetime,
        last_position: int,
        file_sha256: str,
        figures_sha256: str,
        submitted_by: str,
    ) -> None:
        self.year = year
        self.quarter = quarter  # 0: the whole year
        self.as_of = as_of
        self.last_position = last_position
        self.file_sha256 = file_sha256
        self.figures_sha256 = figures_sha256
        self.submitted_by = submitted_by
