"""Commands as the outside world gives them (strings), parsed into typed domain input.

Every problem is reported with the field it concerns; parsing collects all field errors of one
input before giving up, so a clerk can fix a row in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from domain.booking import ALLOCATION_KEY_PREFIX, BookingContent, Kind
from domain.catalogue import Catalogue
from domain.errors import DomainError
from domain.money import parse_amount_cents

KIND_ALIASES = {
    "payment": Kind.PAYMENT,
    "auszahlung": Kind.PAYMENT,
    "receipt": Kind.RECEIPT,
    "einzahlung": Kind.RECEIPT,
}
REQUIRED_FIELDS = (
    "key",
    "kind",
    "amount",
    "category",
    "payment_date",
    "service_from",
    "service_to",
    "document_ref",
    "cost_centre",
)
OPTIONAL_FIELDS = ("case_ref", "contract_ref", "text")
BOOKING_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InputError(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        assert errors
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


_DATES_SEEN: dict[str, date] = {}  # a payment run repeats a few dates on every row
DATES_SEEN_MAX = 4096


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC. ValueError otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 moment (e.g. 2025-04-15T12:00:00+02:00): {text!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)  # every store compares moments in UTC
    except OverflowError:
        raise ValueError(f"out of range in UTC: {text!r}") from None
    return moment


def parse_date(text: str) -> date:
    """ISO (2025-01-31) or German (31.01.2025)."""
    seen = _DATES_SEEN.get(text)
    if seen is not None:
        return seen
    parsed = _parse_date(text)
    if len(_DATES_SEEN) >= DATES_SEEN_MAX:
        _DATES_SEEN.clear()
    _DATES_SEEN[text] = parsed
    return parsed


def _parse_date(text: str) -> date:
    s = text.strip()
    # The two canonical spellings without strptime (about 10 µs each, three dates per row of a
    # payment run); anything else, and any invalid date, takes the general path below.
    if len(s) == 10 and s.isascii():
        try:
            if s[4] == "-" == s[7] and s[:4].isdigit() and s[5:7].isdigit() and s[8:].isdigit():
                return date(int(s[:4]), int(s[5:7]), int(s[8:]))
            if s[2] == "." == s[5] and s[:2].isdigit() and s[3:5].isdigit() and s[6:].isdigit():
                return date(int(s[6:]), int(s[3:5]), int(s[:2]))
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date (YYYY-MM-DD or DD.MM.YYYY): {text!r}")


def parse_booking(values: Mapping[str, str | None], catalogue: Catalogue) -> BookingContent:
    """Parse and validate one booking; raises InputError listing every bad field."""
    errors: list[FieldError] = []
    v = {k: (values.get(k) or "").strip() for k in BOOKING_FIELDS}
    for name in REQUIRED_FIELDS:
        if not v[name]:
            errors.append(FieldError(name, "required"))
    if v["key"][: len(ALLOCATION_KEY_PREFIX)].upper() == ALLOCATION_KEY_PREFIX:
        errors.append(
            FieldError("key", f"keys starting with {ALLOCATION_KEY_PREFIX} are kept for cost allocation runs")
        )

    kind = KIND_ALIASES.get(v["kind"].lower()) if v["kind"] else None
    if v["kind"] and kind is None:
        errors.append(FieldError("kind", f"must be payment or receipt, not {v['kind']!r}"))
    amount = None
    if v["amount"]:
        try:
            amount = parse_amount_cents(v["amount"])
        except ValueError as e:
            errors.append(FieldError("amount", str(e)))
    dates: dict[str, date] = {}
    for name in ("payment_date", "service_from", "service_to"):
        if v[name]:
            try:
                dates[name] = parse_date(v[name])
            except ValueError as e:
                errors.append(FieldError(name, str(e)))
    if v["category"] and v["category"] not in catalogue:
        errors.append(FieldError("category", f"unknown category {v['category']!r}"))
    if errors:
        raise InputError(errors)

    assert kind is not None and amount is not None
    content = BookingContent(
        key=v["key"],
        kind=kind,
        amount_cents=amount,
        category=v["category"],
        payment_date=dates["payment_date"],
        service_from=dates["service_from"],
        service_to=dates["service_to"],
        document_ref=v["document_ref"],
        case_ref=v["case_ref"],
        contract_ref=v["contract_ref"],
        cost_centre=v["cost_centre"],
        text=v["text"],
    )
    try:
        content.validate(catalogue)
    except DomainError as e:
        raise InputError([FieldError(e.field or "booking", e.reason)]) from None
    return content
