"""Closed periods (BHO § 76): once a quarter or a year is closed nothing more is booked into it;
a correction lands in the open period and points to what it corrects.

One calendar per ledger holds the closings; each closing is an event with who closed what.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, StateRefused, ValidationError

CALENDAR_ID = uuid5(NAMESPACE_URL, "urn:koa-ledger:period-calendar")
YEAR = 0  # quarter number that stands for the whole year


class PeriodClosed(DomainError):
    """A booking, reversal or approval would change a closed period."""


class AlreadyClosed(DomainError):
    pass


def label(year: int, quarter: int) -> str:
    return f"{year}" if quarter == YEAR else f"{year} Q{quarter}"


class PeriodCalendar(Aggregate):
    @staticmethod
    def create_id() -> UUID:  # type: ignore[override]
        return CALENDAR_ID

    @event("Opened")
    def __init__(self) -> None:
        # "2025-1" -> "closed by X" ; str keys keep snapshots JSON-safe
        self.closings: dict[str, str] = {}

    # ---- commands --------------------------------------------------------------------------

    def close(self, *, year: int, quarter: int, closed_by: str) -> None:
        if not 0 <= quarter <= 4:
            raise ValidationError("must be 1 to 4, or none for the whole year", "quarter")
        if self.closing_of(year, quarter):
            raise AlreadyClosed(
                f"{label(year, quarter)} is already closed ({self.closing_of(year, quarter)})"
            )
        if quarter > 1 and not self.closing_of(year, quarter - 1):
            raise StateRefused(f"close {label(year, quarter - 1)} first: quarters close in order", "quarter")
        self._closed(year=year, quarter=quarter, closed_by=closed_by)

    def guard_open(self, year: int, quarter: int, what: str) -> None:
        closing = self.closing_of(year, quarter)
        if closing:
            raise PeriodClosed(
                f"{what}: fiscal period {label(year, quarter)} is closed ({closing}); "
                "book the correction into the open period",
                field="payment_date",
            )

    # ---- events ----------------------------------------------------------------------------

    @event("Closed")
    def _closed(self, year: int, quarter: int, closed_by: str) -> None:
        self.closings[f"{year}-{quarter}"] = f"closed by {closed_by}"

    # ---- queries ---------------------------------------------------------------------------

    def closing_of(self, year: int, quarter: int) -> str:
        """How the period was closed ('' if open). A closed year closes its quarters."""
        return self.closings.get(f"{year}-{quarter}") or self.closings.get(f"{year}-{YEAR}") or ""

    def closed(self) -> list[tuple[int, int, str]]:
        out = [(int(k.split("-")[0]), int(k.split("-")[1]), v) for k, v in self.closings.items()]
        return sorted(out)
