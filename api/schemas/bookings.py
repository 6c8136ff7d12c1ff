"""Bookings: what a clerk sends (validated by ledger.commands.parse_booking, as on the command line)
and what everyone reads back."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import AmountIn, Euros
from domain.booking import Booking
from ledger.application import APPROVE_KEYS_MAX
from projections.split_view import BookingRow

DATE_TEXT = "YYYY-MM-DD or DD.MM.YYYY"

BOOKING_EXAMPLE = {
    "key": "MN-2025-0042",
    "kind": "payment",
    "amount": "23.500,00",
    "category": "egt.aktivierung",
    "payment_date": "2025-03-20",
    "service_from": "2025-03-01",
    "service_to": "2025-03-31",
    "document_ref": "RE-4711",
    "contract_ref": "V-2025-001",
    "cost_centre": "JC-NORD",
    "text": "Maßnahme März",
}


class BookingCreate(BaseModel):
    """One booking. Who records it is the caller (from the token), never a field of the body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                BOOKING_EXAMPLE,
                {
                    "key": "LR-202503-0000017-KDU",
                    "kind": "receipt",
                    "amount": 120.5,
                    "category": "kdu",
                    "payment_date": "14.03.2025",
                    "service_from": "01.02.2025",
                    "service_to": "28.02.2025",
                    "document_ref": "RF-2025-117",
                    "case_ref": "08221BG0000017",
                    "cost_centre": "JC-SUED",
                },
            ]
        },
    )

    key: str = Field(max_length=80, description="unique for ever; the same key and content again is a repeat")
    kind: str = Field(max_length=20, description="payment (Auszahlung) or receipt (Einzahlung)")
    amount: AmountIn
    category: str = Field(max_length=64, description="a code of the catalogue, e.g. kdu, egt.aktivierung")
    payment_date: str = Field(max_length=32, description=DATE_TEXT)
    service_from: str = Field(max_length=32, description=DATE_TEXT)
    service_to: str = Field(max_length=32, description=DATE_TEXT)
    document_ref: str = Field(max_length=64, description="the voucher (Beleg)")
    cost_centre: str = Field(max_length=20)
    case_ref: str = Field("", max_length=20, description="Bedarfsgemeinschaft number, e.g. 08221BG0000001")
    contract_ref: str = Field("", max_length=64)
    text: str = Field("", max_length=200)

    def as_text(self) -> dict[str, str]:
        """The fields as the command line hands them to parse_booking."""
        return self.model_dump()


class ReversalCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Rechnung doppelt"}]}
    )

    reason: str = Field(min_length=1, max_length=500, description="why (kept with the counter-booking)")


class ApprovalsCreate(BaseModel):
    """A Sammelanordnung: the keys of the bookings to approve together. Who approves is the caller
    (from the token), never a field of the body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"keys": ["MN-2025-0042", "MN-2025-0043", "MN-2025-0042/storno"]}]},
    )

    keys: list[str] = Field(
        min_length=1,
        max_length=APPROVE_KEYS_MAX,
        description="booking keys, each once: all are approved in one transaction, or none",
    )


class BookingRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **BOOKING_EXAMPLE,
                    "amount": "23500.00",
                    "amount_cents": 2350000,
                    "case_ref": "",
                    "fiscal_year": 2025,
                    "quarter": 1,
                    "fiscal_rule": "cash",
                    "state": "awaiting_approval",
                    "requires_approval": True,
                    "recorded_by": "mueller",
                    "recorded_at": "2025-03-20T09:12:00+00:00",
                    "approved_by": None,
                    "reverses_key": None,
                    "reversal_key": None,
                    "reason": None,
                }
            ]
        }
    )

    key: str
    kind: str
    amount: Euros
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
    fiscal_year: int = Field(
        description="the fiscal year the booking counts in (cash rule and its exceptions)"
    )
    quarter: int
    fiscal_rule: str
    state: str = Field(description="recorded, awaiting_approval, approved, reversed, reversal or withdrawal")
    requires_approval: bool
    recorded_by: str
    recorded_at: datetime
    approved_by: str | None
    reverses_key: str | None = Field(description="for a counter-booking: the booking it reverses")
    reversal_key: str | None = Field(description="for a reversed booking: its counter-booking")
    reason: str | None

    @classmethod
    def of(cls, b: Booking) -> BookingRead:
        return cls(
            key=b.key,
            kind=b.kind,
            amount=b.amount_cents,
            amount_cents=b.amount_cents,
            category=b.category,
            payment_date=b.payment_date,
            service_from=b.service_from,
            service_to=b.service_to,
            document_ref=b.document_ref,
            case_ref=b.case_ref,
            contract_ref=b.contract_ref,
            cost_centre=b.cost_centre,
            text=b.text,
            fiscal_year=b.fiscal_year,
            quarter=b.quarter,
            fiscal_rule=b.fiscal_rule,
            state=b.state,
            requires_approval=b.requires_approval,
            recorded_by=b.recorded_by,
            recorded_at=b.created_on,
            approved_by=b.approved_by or None,
            reverses_key=b.reverses_key or None,
            reversal_key=b.reversal_key or None,
            reason=b.reason or None,
        )

    @classmethod
    def of_row(cls, r: BookingRow, state: str) -> BookingRead:
        return cls(
            key=r.booking_key,
            kind=r.kind,
            amount=r.amount_cents,
            amount_cents=r.amount_cents,
            category=r.category,
            payment_date=r.payment_date,
            service_from=r.service_from,
            service_to=r.service_to,
            document_ref=r.document_ref,
            case_ref=r.case_ref,
            contract_ref=r.contract_ref,
            cost_centre=r.cost_centre,
            text=r.text,
            fiscal_year=r.fiscal_year,
            quarter=r.quarter,
            fiscal_rule=r.fiscal_rule,
            state=state,
            requires_approval=r.requires_approval,
            recorded_by=r.recorded_by,
            recorded_at=r.recorded_at,
            approved_by=r.approved_by or None,
            reverses_key=r.reverses_key or None,
            reversal_key=r.reversal_key or None,
            reason=r.reason or None,
        )


class BookingPosted(BaseModel):
    created: bool = Field(
        description="false: the key already held this content (a repeat); nothing was stored"
    )
    booking: BookingRead


class ReversalPosted(BaseModel):
    original: BookingRead
    counter_booking: BookingRead


class ApprovalsPosted(BaseModel):
    count: int = Field(description="how many bookings were approved (all of the request's keys)")
    bookings: list[BookingRead] = Field(description="the approved bookings, in the request's order")


class BookingPage(BaseModel):
    items: list[BookingRead]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")
