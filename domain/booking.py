"""The booking aggregate: recorded, approved by a second person, reversed by a counter-booking.

Commands validate in plain methods (guards); the @event methods only apply state, because their
bodies run again on every replay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import date
from enum import StrEnum
from hashlib import sha1
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.catalogue import Catalogue
from domain.errors import AlreadyApproved, FourEyesViolation, KeyConflict, ReversalRefused, ValidationError
from domain.fiscal import FiscalPeriod, FiscalRule, fiscal_period, quarter_of
from domain.money import AMOUNT_CENTS_MAX
from domain.periods import PeriodCalendar
from domain.rates import RateTable

BOOKING_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:booking")
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,79}$")
# Bedarfsgemeinschaft number (e.g. 12345BG0001234): pseudonymous, never a name.
CASE_REF_RE = re.compile(r"^[0-9]{3,5}BG[0-9]{7}$")
REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
COST_CENTRE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")
TEXT_LEN_MAX = 200
REASON_LEN_MAX = 500
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
YEAR_MIN, YEAR_MAX = 2005, 2100
# What a one-line free text must not hold: control characters (C0, DEL, C1: a NUL cannot be
# stored in a PostgreSQL text column, ESC drives a terminal), line and paragraph separators,
# the bidirectional overrides that make a text read otherwise than it is stored, and lone
# surrogates (not encodable as UTF-8).
_NOT_ONE_LINE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
REVERSAL_SUFFIX = "/storno"
# The keys of the bookings a cost allocation run makes (ledger.allocation_commands): a clerk's
# booking must never take one, or the run could not book it.
ALLOCATION_KEY_PREFIX = "KOA-"


class Kind(StrEnum):
    PAYMENT = "payment"  # Auszahlung: increases the category's expenditure
    RECEIPT = "receipt"  # Einzahlung (Rückforderung, Erstattung): reduces it


@dataclass(frozen=True, slots=True)
class BookingContent:
    """What a booking says, apart from who recorded it and when: the basis of idempotency."""

    key: str
    kind: Kind
    amount_cents: int
    category: str
    payment_date: date
    service_from: date
    service_to: date
    document_ref: str
    case_ref: str
    contract_ref: str
    cost_centre: str
    text: str

    def validate(self, catalogue: Catalogue) -> None:
        """Raise ValidationError naming the first field that breaks a rule."""
        if not KEY_RE.fullmatch(self.key):
            raise ValidationError("1-80 letters, digits or ._:/#- starting with a letter or digit", "key")
        if self.key.endswith(REVERSAL_SUFFIX):
            raise ValidationError(f"the suffix {REVERSAL_SUFFIX!r} is kept for reversals", "key")
        if not isinstance(self.amount_cents, int) or isinstance(self.amount_cents, bool):
            raise ValidationError("must be an integer number of cents", "amount")
        if self.amount_cents <= 0:
            raise ValidationError("must be greater than zero (a receipt is kind=receipt)", "amount")
        if self.amount_cents > AMOUNT_CENTS_MAX:
            raise ValidationError("exceeds the limit of 100.000.000,00 € per booking", "amount")
        catalogue.get(self.category)
        for name in ("payment_date", "service_from", "service_to"):
            d = getattr(self, name)
            if not YEAR_MIN <= d.year <= YEAR_MAX:
                raise ValidationError(f"year must be between {YEAR_MIN} and {YEAR_MAX}", name)
        if self.service_from > self.service_to:
            raise ValidationError("service period ends before it starts", "service_to")
        if not REF_RE.fullmatch(self.document_ref):
            raise ValidationError("required: 1-64 letters, digits or ._:/-", "document_ref")
        if self.case_ref and not CASE_REF_RE.fullmatch(self.case_ref):
            raise ValidationError(
                "must be a Bedarfsgemeinschaft number like 12345BG0001234 (never a name)",
                "case_ref",
            )
        if self.contract_ref and not REF_RE.fullmatch(self.contract_ref):
            raise ValidationError("1-64 letters, digits or ._:/-", "contract_ref")
        if not COST_CENTRE_RE.fullmatch(self.cost_centre):
            raise ValidationError("required: 1-20 letters, digits or ._-", "cost_centre")
        if len(self.text) > TEXT_LEN_MAX or not is_one_line(self.text):
            raise ValidationError(
                f"at most {TEXT_LEN_MAX} characters on one line, without control characters", "text"
            )


_CONTENT_FIELDS = tuple(f.name for f in fields(BookingContent))


def content_of(source: Any) -> BookingContent:
    """The content held by a Booking or carried by its Recorded event (both have the fields)."""
    values = {name: getattr(source, name) for name in _CONTENT_FIELDS}
    return BookingContent(**(values | {"kind": Kind(values["kind"])}))


def booking_id(key: str) -> UUID:
    """Bookings are addressed by their key; the id is derived, so the store enforces uniqueness."""
    return UUID(bytes=booking_id_bytes(key))


def booking_id_bytes(key: str) -> bytes:
    """booking_id(key).bytes: the name-based UUID (version 5, RFC 9562) of the key in
    BOOKING_NAMESPACE, written out here because uuid.uuid5 costs a payment run ~3 µs per row more."""
    digest = int.from_bytes(sha1(_NAMESPACE_BYTES + key.encode()).digest()[:16])
    return ((digest & _VERSION_VARIANT_CLEAR) | _VERSION_5_VARIANT_RFC).to_bytes(16)


_NAMESPACE_BYTES = BOOKING_NAMESPACE.bytes
_VERSION_VARIANT_CLEAR = ~((0xF << 76) | (0x3 << 62))  # the version nibble, the variant's two bits
_VERSION_5_VARIANT_RFC = (5 << 76) | (0x2 << 62)


def is_one_line(text: str) -> bool:
    """Whether a free text is one line of printable characters (see _NOT_ONE_LINE_RE)."""
    return _NOT_ONE_LINE_RE.search(text) is None


def check_reason(reason: str) -> str:
    """A reason kept with an event (reversal, parameter, budget change): one line, required."""
    reason = reason.strip()
    if not reason or len(reason) > REASON_LEN_MAX or not is_one_line(reason):
        raise ValidationError(
            f"required, one line of at most {REASON_LEN_MAX} characters, without control characters", "reason"
        )
    return reason


def require_same_content(stored: BookingContent, given: BookingContent) -> None:
    """A key stored again must carry the same content (an idempotent repeat), else KeyConflict."""
    if stored == given:
        return
    differing = [f.name for f in fields(BookingContent) if getattr(stored, f.name) != getattr(given, f.name)]
    raise KeyConflict(
        f"booking key {given.key!r} is already used for a booking with other {', '.join(differing)}",
        field="key",
    )


def check_user(user: str, field: str) -> None:
    if not USER_RE.fullmatch(user or ""):
        raise ValidationError("a user name is required (letters, digits, ._@-)", field)


def recording_terms(
    content: BookingContent,
    *,
    recorded_by: str,
    catalogue: Catalogue,
    rates: RateTable,
    calendar: PeriodCalendar | None = None,
) -> tuple[FiscalPeriod, bool]:
    """Validate a new booking and decide its fiscal period and whether it needs approval.

    Booking.record and the bulk import (ledger/bulk_import.py, which encodes the Recorded event
    itself) both decide here, so the two paths cannot drift apart."""
    content.validate(catalogue)
    check_user(recorded_by, "recorded_by")
    category = catalogue.get(content.category)
    period = fiscal_period(
        content.payment_date,
        content.service_from,
        content.service_to,
        paid_in_advance=category.paid_in_advance,
        runoff_last_day=rates.runoff_last_day(content.payment_date.year - 1),
    )
    if calendar is not None:
        if period.rule is not FiscalRule.CASH and calendar.closing_of(period.year, period.quarter):
            # The run-off and December-for-January rules may move a payment only into an open
            # year; once that is closed, the payment counts where it was made (cash rule).
            period = FiscalPeriod(
                content.payment_date.year, quarter_of(content.payment_date), FiscalRule.CASH
            )
        calendar.guard_open(period.year, period.quarter, f"booking {content.key}")
    return period, content.amount_cents > rates.approval_threshold_cents


def _guard_after(on: date, closed: FiscalPeriod, what: str) -> None:
    """A day `on` that moves a booking out of its closed period must lie after that period: an
    open earlier year (closing goes quarter by quarter within a year, not year by year) would
    otherwise take a correction before the payment it corrects."""
    if not on.year <= YEAR_MAX:
        raise ValidationError(f"year must be at most {YEAR_MAX}", "on")
    if (on.year, quarter_of(on)) < (closed.year, closed.quarter):  # within it: PeriodClosed follows
        raise ValidationError(
            f"{what} must fall after the booking's closed period {closed.year} Q{closed.quarter}", "on"
        )


class Booking(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:  # type: ignore[override]
        return booking_id(key)

    # ---- commands --------------------------------------------------------------------------

    @classmethod
    def record(
        cls,
        content: BookingContent,
        *,
        recorded_by: str,
        catalogue: Catalogue,
        rates: RateTable,
        calendar: PeriodCalendar | None = None,
    ) -> Booking:
        period, requires_approval = recording_terms(
            content, recorded_by=recorded_by, catalogue=catalogue, rates=rates, calendar=calendar
        )
        return cls._new(
            content,
            period,
            recorded_by=recorded_by,
            requires_approval=requires_approval,
            reverses_key="",
            reason="",
            withdraws_unapproved=False,
        )

    def approve(
        self, *, approved_by: str, calendar: PeriodCalendar | None = None, on: date | None = None
    ) -> None:
        """Approve (four eyes). If the booking's period was closed meanwhile and it did not count
        yet (it awaited approval), it counts from the approval day `on`, in the open period, so the
        closed period's figures stay as reported. A booking below the threshold counted when it
        was recorded: its approval moves nothing."""
        check_user(approved_by, "approved_by")
        self._guard_approvable(approved_by)
        period = FiscalPeriod(self.fiscal_year, self.quarter, FiscalRule(self.fiscal_rule))
        if not self.counts and calendar is not None and calendar.closing_of(period.year, period.quarter):
            if on is None:
                raise ValidationError("the booking's period is closed: the approval needs a date", "on")
            _guard_after(on, period, "the approval")
            period = FiscalPeriod(on.year, quarter_of(on), FiscalRule.AFTER_CLOSING)
            calendar.guard_open(period.year, period.quarter, f"approval of {self.key}")
        self._approved(
            approved_by=approved_by,
            fiscal_year=period.year,
            quarter=period.quarter,
            fiscal_rule=str(period.rule),
        )

    def reverse(
        self,
        *,
        reason: str,
        reversed_by: str,
        on: date | None = None,
        calendar: PeriodCalendar | None = None,
    ) -> Booking:
        """Mark this booking reversed and return the counter-booking (save both together).

        The counter-booking lands in the original's period; if that period is closed, it is booked
        on `on` (the day of the correction) into the open period, and still names the original.
        """
        check_user(reversed_by, "reversed_by")
        reason = check_reason(reason)
        self._guard_reversible()
        # Withdrawing a booking that never counted (still awaiting approval): the counter-booking
        # must never count either, or the split would show a negative amount never paid.
        withdraws = not self.counts
        content = replace(self.content(), key=self.key + REVERSAL_SUFFIX)
        period = FiscalPeriod(self.fiscal_year, self.quarter, self.fiscal_rule)
        closed = calendar is not None and calendar.closing_of(self.fiscal_year, self.quarter)
        if closed and not withdraws:
            if on is None:
                raise ValidationError("the original's period is closed: the correction needs a date", "on")
            _guard_after(on, period, "the correction")
            content = replace(content, payment_date=on)
            period = FiscalPeriod(on.year, quarter_of(on), FiscalRule.CASH)
            assert calendar is not None
            calendar.guard_open(period.year, period.quarter, f"reversal of {self.key}")
        counter = Booking._new(
            content,
            period,
            recorded_by=reversed_by,
            requires_approval=self.requires_approval or withdraws,
            reverses_key=self.key,
            reason=reason,
            withdraws_unapproved=withdraws,
        )
        self._reversed(reversal_key=counter.key, reason=reason, reversed_by=reversed_by)
        return counter

    # ---- guards ----------------------------------------------------------------------------

    def _guard_approvable(self, approved_by: str) -> None:
        if self.approved_by:
            raise AlreadyApproved(f"booking {self.key} was already approved by {self.approved_by}")
        if approved_by == self.recorded_by:
            raise FourEyesViolation(
                f"{approved_by} recorded booking {self.key} and may not approve it (four eyes)",
                field="approved_by",
            )
        if self.reversal_key:
            raise AlreadyApproved(f"booking {self.key} is reversed; there is nothing to approve")
        if self.withdraws_unapproved:
            raise AlreadyApproved(
                f"booking {self.key} withdraws {self.reverses_key}, which was never approved; "
                "neither counts, there is nothing to approve"
            )

    def _guard_reversible(self) -> None:
        if self.reverses_key:
            raise ReversalRefused(
                f"booking {self.key} is itself a reversal of {self.reverses_key} and cannot be reversed"
            )
        if self.reversal_key:
            raise ReversalRefused(f"booking {self.key} was already reversed by {self.reversal_key}")

    # ---- events (state only) ---------------------------------------------------------------

    @classmethod
    def _new(
        cls,
        c: BookingContent,
        period: FiscalPeriod,
        *,
        recorded_by: str,
        requires_approval: bool,
        reverses_key: str,
        reason: str,
        withdraws_unapproved: bool,
    ) -> Booking:
        return cls(
            key=c.key,
            kind=str(c.kind),
            amount_cents=c.amount_cents,
            category=c.category,
            payment_date=c.payment_date,
            service_from=c.service_from,
            service_to=c.service_to,
            document_ref=c.document_ref,
            case_ref=c.case_ref,
            contract_ref=c.contract_ref,
            cost_centre=c.cost_centre,
            text=c.text,
            fiscal_year=period.year,
            quarter=period.quarter,
            fiscal_rule=str(period.rule),
            recorded_by=recorded_by,
            requires_approval=requires_approval,
            reverses_key=reverses_key,
            reason=reason,
            withdraws_unapproved=withdraws_unapproved,
        )

    @event("Recorded")
    def __init__(
        self,
        key: str,
        kind: str,
        amount_cents: int,
        category: str,
        payment_date: date,
        service_from: date,
        service_to: date,
        document_ref: str,
        case_ref: str,
        contract_ref: str,
        cost_centre: str,
        text: str,
        fiscal_year: int,
        quarter: int,
        fiscal_rule: str,
        recorded_by: str,
        requires_approval: bool,
        reverses_key: str,
        reason: str,
        withdraws_unapproved: bool,
    ) -> None:
        self.key = key
        self.kind = kind
        self.amount_cents = amount_cents
        self.category = category
        self.payment_date = payment_date
        self.service_from = service_from
        self.service_to = service_to
        self.document_ref = document_ref
        self.case_ref = case_ref
        self.contract_ref = contract_ref
        self.cost_centre = cost_centre
        self.text = text
        self.fiscal_year = fiscal_year
        self.quarter = quarter
        self.fiscal_rule = fiscal_rule
        self.recorded_by = recorded_by
        self.requires_approval = requires_approval
        self.reverses_key = reverses_key
        self.reason = reason
        self.withdraws_unapproved = withdraws_unapproved
        self.approved_by = ""
        self.reversal_key = ""

    @event("Approved")
    def _approved(self, approved_by: str, fiscal_year: int, quarter: int, fiscal_rule: str) -> None:
        self.approved_by = approved_by
        self.fiscal_year, self.quarter, self.fiscal_rule = fiscal_year, quarter, fiscal_rule

    @event("Reversed")
    def _reversed(self, reversal_key: str, reason: str, reversed_by: str) -> None:
        self.reversal_key = reversal_key

    # ---- queries ---------------------------------------------------------------------------

    def content(self) -> BookingContent:
        return content_of(self)

    @property
    def counts(self) -> bool:
        """Whether the booking counts in the split: approved, or below the approval threshold."""
        return bool(self.approved_by) or not self.requires_approval

    @property
    def state(self) -> str:
        if self.reversal_key:
            return "reversed"
        if self.reverses_key:
            return "withdrawal" if self.withdraws_unapproved else "reversal"
        if self.requires_approval and not self.approved_by:
            return "awaiting_approval"
        return "approved" if self.approved_by else "recorded"
