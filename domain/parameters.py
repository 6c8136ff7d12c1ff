"""Rates set by law, changed only by audited events: who set which value for which fiscal year, and why.

The shipped data file (domain/data/rates.toml) gives the defaults; every `Set` event overrides one
value from then on. Reports as of a moment use the values set up to that moment.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REASON_LEN_MAX, YEAR_MAX, YEAR_MIN, check_user
from domain.errors import ValidationError
from domain.rates import LANDS

PARAMETERS_ID = uuid5(NAMESPACE_URL, "urn:koa-ledger:parameter-book")
NAMES = {
    "vwk_federal_share": "Bundesanteil an den Verwaltungskosten, ab dem Haushaltsjahr",
    "kdu_quota_provisional": "KdU-Quote des Landes, vorläufig, für das Haushaltsjahr",
    "kdu_quota_final": "KdU-Quote des Landes, endgültig, für das Haushaltsjahr",
}


def parse_rate(text: str) -> Decimal:
    """'0.848', '0,848' or '84,8 %' -> Decimal('0.848')."""
    s = text.strip().replace(",", ".")
    percent = s.endswith("%")
    try:
        value = Decimal(s.rstrip("%").strip())
    except InvalidOperation:
        raise ValidationError(f"not a rate: {text!r}", "value") from None
    value = value / 100 if percent else value
    if not Decimal(0) <= value <= Decimal(1) or value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValidationError("must be between 0 and 1 (or 0 % and 100 %), at most 6 decimals", "value")
    return value.normalize()


class ParameterBook(Aggregate):
    @staticmethod
    def create_id() -> UUID:  # type: ignore[override]
        return PARAMETERS_ID

    @event("Opened")
    def __init__(self) -> None:
        self.changes = 0

    def set(self, *, name: str, year: int, value: Decimal, land: str, reason: str, set_by: str) -> None:
        if name not in NAMES:
            raise ValidationError(f"unknown parameter; one of {', '.join(NAMES)}", "name")
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise ValidationError(f"must be between {YEAR_MIN} and {YEAR_MAX}", "year")
        if not Decimal(0) <= value <= Decimal(1):
            raise ValidationError("must be between 0 and 1", "value")
        if name.startswith("kdu_") and land not in LANDS:
            raise ValidationError(f"unknown Land; one of {', '.join(LANDS)}", "land")
        reason = reason.strip()
        if not reason or len(reason) > REASON_LEN_MAX or "\n" in reason:
            raise ValidationError(f"required, one line of at most {REASON_LEN_MAX} characters", "reason")
        check_user(set_by, "set_by")
        self._set(
            name=name,
            year=year,
            value=str(value),
            land=land if name.startswith("kdu_") else "",
            reason=reason,
            set_by=set_by,
        )

    @event("Set")
    def _set(self, name: str, year: int, value: str, land: str, reason: str, set_by: str) -> None:
        self.changes += 1
