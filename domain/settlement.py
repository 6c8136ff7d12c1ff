"""Events of the settlement with the Bund: funds drawn (Mittelabruf) and reports handed in."""

from __future__ import annotations

import re
from datetime import date, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REF_RE, YEAR_MAX, YEAR_MIN, check_user
from domain.errors import ValidationError
from domain.money import AMOUNT_CENTS_MAX, format_eur

DRAWABLE_TITLES = ("1101/681 12", "1101/685 11", "1101/636 13", "1101/632 11")
DRAW_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:funds-draw")
DRAW_CENTS_MAX = AMOUNT_CENTS_MAX * 100  # a draw covers many bookings: 10.000.000.000,00 €
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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
        if federal_title not in DRAWABLE_TITLES:
            raise ValidationError(f"must be one of {', '.join(DRAWABLE_TITLES)}", "title")
        if not YEAR_MIN <= fiscal_year <= YEAR_MAX:
            raise ValidationError(f"must be between {YEAR_MIN} and {YEAR_MAX}", "year")
        if not YEAR_MIN <= value_date.year <= YEAR_MAX:
            raise ValidationError(f"year must be between {YEAR_MIN} and {YEAR_MAX}", "date")
        if amount_cents <= 0:
            raise ValidationError("must be greater than zero", "amount")
        if amount_cents > DRAW_CENTS_MAX:
            raise ValidationError(f"exceeds the limit of {format_eur(DRAW_CENTS_MAX)} € per draw", "amount")
        if not REF_RE.fullmatch(document_ref):
            raise ValidationError("required: 1-64 letters, digits or ._:/-", "document_ref")
        check_user(recorded_by, "recorded_by")
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
