"""Rates set by law, changed only by audited events: who set which value for which fiscal year, and why.

The shipped data file (domain/data/rates.toml) gives the defaults; every `Set` event overrides one
value from then on. Reports as of a moment use the values set up to that moment.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import YEAR_MAX, YEAR_MIN, check_reason, check_user
from domain.errors import ValidationError
from domain.interest import check_base_rate
from domain.money import parse_amount_cents
from domain.rates import DATED_PARAMETERS, LANDS, YEARS_MAX, YEARS_MIN

PARAMETERS_ID = uuid5(NAMESPACE_URL, "urn:koa-ledger:parameter-book")
NAMES = {
    "vwk_federal_share": "Bundesanteil an den Verwaltungskosten, ab dem Haushaltsjahr",
    "kdu_quota_provisional": "KdU-Quote des Landes, vorläufig, für das Haushaltsjahr",
    "kdu_quota_final": "KdU-Quote des Landes, endgültig, für das Haushaltsjahr",
    "versorgungszuschlag_cap": "Obergrenze des Versorgungszuschlags (Anteil der Personalkosten), ab dem Jahr",
    "personalgemeinkosten_rate": "Personalgemeinkostensatz (auf die Personalkosten), ab dem Jahr",
    "personalnebenkosten_per_vzae": "Pauschale Personalnebenkosten je VZÄ und Jahr (EUR), ab dem Jahr",
    "sachkosten_per_vzae": "Pauschale Sachkosten je VZÄ und Jahr (EUR), ab dem Jahr",
    "deckungsfaehigkeit_limit": "Grenze der Deckungsfähigkeit (Anteil des abgebenden Budgets), ab dem Jahr",
    "repayment_interest_points": "Zinsaufschlag auf den Basiszinssatz bei Rückzahlung an den Bund, ab dem Jahr",
    "retention_years_books": "Aufbewahrungsfrist der Bücher in Jahren (GemHVO BW § 39), für Abschlüsse ab dem Jahr",
    "retention_years_vouchers": "Aufbewahrungsfrist der Belege in Jahren (GemHVO BW § 39), für Abschlüsse ab dem Jahr",
}
AMOUNT_PARAMETER_CENTS_MAX = 100_000_000  # 1,000,000.00 € per VZÄ and year: anything above is a typo


def kind_of(name: str) -> str:
    """'rate' (a share between 0 and 1), 'amount' (euros) or 'years' (a whole number of years)."""
    return DATED_PARAMETERS.get(name, "rate")


def parse_value(name: str, text: str) -> Decimal:
    """A parameter's value from the command line: a rate, an amount in euros or a number of years,
    by the parameter."""
    if kind_of(name) == "rate":
        return parse_rate(text)
    if kind_of(name) == "years":
        return parse_years(text)
    try:
        cents = parse_amount_cents(text)
    except ValueError as e:
        raise ValidationError(str(e), "value") from None
    return Decimal(cents) / 100


def _rate_text(text: str) -> Decimal:
    """'0,848', '84,8 %' or '-0,88 %' as a fraction, not normalised (its decimals count)."""
    s = text.strip().replace(",", ".")
    percent = s.endswith("%")
    try:
        value = Decimal(s.rstrip("%").strip())
        if not value.is_finite():
            raise InvalidOperation
        return value / 100 if percent else value
    except ArithmeticError:  # also NaN, infinities and exponents beyond the context
        raise ValidationError(f"not a rate: {text!r}", "value") from None


def parse_signed_percent(text: str) -> Decimal:
    """'1,27 %', '-0,88 %' or '0.0127' -> Decimal('0.0127'): a rate that may be negative."""
    try:
        return _rate_text(text).normalize()
    except ArithmeticError:  # an exponent normalize() cannot hold (1E+1000000)
        raise ValidationError(f"not a rate: {text!r}", "value") from None


def parse_rate(text: str) -> Decimal:
    """'0.848', '0,848' or '84,8 %' -> Decimal('0.848')."""
    value = _rate_text(text)
    if not Decimal(0) <= value <= Decimal(1) or value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValidationError("must be between 0 and 1 (or 0 % and 100 %), at most 6 decimals", "value")
    return value.normalize()


def parse_years(text: str) -> Decimal:
    """'10' -> Decimal(10): a whole number of years."""
    s = text.strip()
    if not (s.isascii() and s.isdigit() and len(s) <= 3) or not YEARS_MIN <= int(s) <= YEARS_MAX:
        raise ValidationError(f"must be a whole number of years from {YEARS_MIN} to {YEARS_MAX}, not {text!r}", "value")
    return Decimal(int(s))


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
        if kind_of(name) == "rate" and not Decimal(0) <= value <= Decimal(1):
            raise ValidationError("must be between 0 and 1", "value")
        if kind_of(name) == "amount" and not (
            Decimal(0) <= value * 100 <= AMOUNT_PARAMETER_CENTS_MAX and value == round(value, 2)
        ):
            raise ValidationError("must be an amount between 0 and 1.000.000,00 € with at most 2 decimals", "value")
        if kind_of(name) == "years" and not (value == int(value) and YEARS_MIN <= value <= YEARS_MAX):
            raise ValidationError(f"must be a whole number of years from {YEARS_MIN} to {YEARS_MAX}", "value")
        if name.startswith("kdu_") and land not in LANDS:
            raise ValidationError(f"unknown Land; one of {', '.join(LANDS)}", "land")
        reason = check_reason(reason)
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

    def set_base_rate(self, *, valid_from: date, value: Decimal, reason: str, set_by: str) -> None:
        """The Basiszinssatz of a half-year (§ 247 BGB), as the Bundesbank announced it."""
        check_base_rate(valid_from, value)
        reason = check_reason(reason)
        check_user(set_by, "set_by")
        self._set_base_rate(valid_from=valid_from, value=str(value), reason=reason, set_by=set_by)

    @event("BaseRateSet")
    def _set_base_rate(self, valid_from: date, value: str, reason: str, set_by: str) -> None:
        self.changes += 1
