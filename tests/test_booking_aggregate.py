"""The booking aggregate: validation, four eyes, reversal, events and replay (domain.booking)."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date
from uuid import uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.booking import (
    BOOKING_NAMESPACE,
    REVERSAL_SUFFIX,
    Booking,
    BookingContent,
    booking_id,
    booking_id_bytes,
)
from domain.catalogue import Catalogue
from domain.errors import (
    AlreadyApproved,
    DomainError,
    FourEyesViolation,
    ReversalRefused,
    UnknownCategory,
    ValidationError,
)
from domain.money import AMOUNT_CENTS_MAX
from domain.rates import RateTable
from tests.factories import BASE as FACTORY_BASE

CATALOGUE = Catalogue.load()
RATES = RateTable.load()
THRESHOLD = RATES.approval_threshold_cents

BASE = replace(FACTORY_BASE, key="B-1")


def content(**changes) -> BookingContent:
    return replace(BASE, **changes)


def record(c: BookingContent | None = None, recorded_by: str = "anna", **changes) -> Booking:
    c = c if c is not None else content(**changes)
    return Booking.record(c, recorded_by=recorded_by, catalogue=CATALOGUE, rates=RATES)


def replay(events) -> Booking:
    return functools.reduce(lambda agg, e: e.mutate(agg), events, None)


def test_shipped_threshold_is_positive() -> None:
    assert THRESHOLD == 1_000_000


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, -50_000, AMOUNT_CENTS_MAX + 1, 10**15])
def test_amount_out_of_range_is_refused(amount: int) -> None:
    with pytest.raises(ValidationError) as e:
        record(amount_cents=amount)
    assert e.value.field == "amount"


@pytest.mark.parametrize("amount", [1.5, "100", True])
def test_amount_must_be_integer_cents(amount) -> None:
    with pytest.raises(ValidationError) as e:
        record(amount_cents=amount)
    assert e.value.field == "amount"


def test_amount_at_the_limit_is_accepted() -> None:
    b = record(amount_cents=AMOUNT_CENTS_MAX)
    assert b.amount_cents == AMOUNT_CENTS_MAX
    assert record(amount_cents=1).amount_cents == 1


def test_unknown_category_is_refused() -> None:
    with pytest.raises(UnknownCategory) as e:
        record(category="kdu.unknown")
    assert e.value.field == "category"
    assert isinstance(e.value, ValidationError)
    assert "kdu.unknown" in str(e.value)


@pytest.mark.parametrize(
    "case_ref",
    [
        "Max Mustermann",
        "Mustermann",
        "12345BG000123",
        "BG0001234",
        "12345bg0001234",
        "12345BG0001234 ",
    ],
)
def test_case_ref_must_be_pseudonymous(case_ref: str) -> None:
    with pytest.raises(ValidationError) as e:
        record(case_ref=case_ref)
    assert e.value.field == "case_ref"


@pytest.mark.parametrize("case_ref", ["", "12345BG0001234", "082BG0000001"])
def test_case_ref_pseudonymous_or_empty_is_accepted(case_ref: str) -> None:
    assert record(case_ref=case_ref).case_ref == case_ref


def test_service_to_before_service_from_is_refused() -> None:
    with pytest.raises(ValidationError) as e:
        record(service_from=date(2025, 3, 31), service_to=date(2025, 3, 1))
    assert e.value.field == "service_to"


def test_one_day_service_period_is_accepted() -> None:
    b = record(service_from=date(2025, 3, 1), service_to=date(2025, 3, 1))
    assert b.service_from == b.service_to


@pytest.mark.parametrize("doc", ["", " ", "ZA 1", "-ZA"])
def test_document_ref_is_required(doc: str) -> None:
    with pytest.raises(ValidationError) as e:
        record(document_ref=doc)
    assert e.value.field == "document_ref"


@pytest.mark.parametrize("key", ["", " B", "B 1", "x" * 81])
def test_bad_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError) as e:
        record(key=key)
    assert e.value.field == "key"


def test_key_with_reversal_suffix_is_refused() -> None:
    with pytest.raises(ValidationError) as e:
        record(key="B-1" + REVERSAL_SUFFIX)
    assert e.value.field == "key"


def test_payment_year_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError) as e:
        record(payment_date=date(2004, 12, 31))
    assert e.value.field == "payment_date"


def test_empty_cost_centre_and_multiline_text_are_refused() -> None:
    with pytest.raises(ValidationError) as e:
        record(cost_centre="")
    assert e.value.field == "cost_centre"
    with pytest.raises(ValidationError) as e:
        record(text="a\nb")
    assert e.value.field == "text"


def test_recorder_is_required() -> None:
    with pytest.raises(ValidationError) as e:
        record(recorded_by="")
    assert e.value.field == "recorded_by"


def test_validation_errors_are_domain_errors_with_field_in_message() -> None:
    with pytest.raises(DomainError) as e:
        record(amount_cents=0)
    assert str(e.value).startswith("amount: ")
    assert e.value.reason


# ---- approval and four eyes --------------------------------------------------------------------


def test_requires_approval_above_threshold_only() -> None:
    assert record(amount_cents=THRESHOLD + 1).requires_approval is True
    assert record(amount_cents=THRESHOLD).requires_approval is False
    assert record(amount_cents=1).requires_approval is False


def test_counts_follows_approval() -> None:
    small = record(amount_cents=THRESHOLD)
    assert small.counts is True
    assert small.state == "recorded"
    big = record(amount_cents=THRESHOLD + 1)
    assert big.counts is False
    assert big.state == "awaiting_approval"
    big.approve(approved_by="bert")
    assert big.counts is True
    assert big.state == "approved"
    assert big.approved_by == "bert"


def test_small_booking_may_still_be_approved() -> None:
    small = record(amount_cents=100)
    small.approve(approved_by="bert")
    assert small.state == "approved"
    assert small.counts is True


def test_recorder_may_not_approve() -> None:
    b = record(amount_cents=THRESHOLD + 1, recorded_by="anna")
    with pytest.raises(FourEyesViolation) as e:
        b.approve(approved_by="anna")
    assert e.value.field == "approved_by"
    assert b.approved_by == ""
    assert b.state == "awaiting_approval"
    assert [type(ev).__name__ for ev in b.collect_events()] == ["Recorded"]


def test_second_approval_is_refused() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.approve(approved_by="bert")
    with pytest.raises(AlreadyApproved):
        b.approve(approved_by="carl")
    with pytest.raises(AlreadyApproved):
        b.approve(approved_by="bert")
    assert b.approved_by == "bert"


def test_approver_is_required() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    with pytest.raises(ValidationError) as e:
        b.approve(approved_by="")
    assert e.value.field == "approved_by"


def test_reversed_booking_cannot_be_approved() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.reverse(reason="Doppelzahlung", reversed_by="carl")
    with pytest.raises(AlreadyApproved):
        b.approve(approved_by="bert")


# ---- reversal ----------------------------------------------------------------------------------


def test_reverse_returns_counter_booking() -> None:
    original = record(
        key="B-7",
        amount_cents=123_456,
        category="vwk.sachkosten",
        payment_date=date(2025, 1, 10),
        service_from=date(2024, 12, 1),
        service_to=date(2024, 12, 31),
    )
    assert (original.fiscal_year, original.quarter, original.fiscal_rule) == (2024, 4, "runoff")
    counter = original.reverse(reason="falscher Titel", reversed_by="carl")
    assert counter.key == "B-7/storno"
    assert counter.id == booking_id("B-7/storno")
    assert counter.id != original.id
    assert counter.reverses_key == "B-7"
    assert counter.reason == "falscher Titel"
    assert counter.recorded_by == "carl"
    assert counter.amount_cents == original.amount_cents
    assert counter.category == original.category
    assert counter.kind == original.kind
    assert (counter.fiscal_year, counter.quarter, counter.fiscal_rule) == (2024, 4, "runoff")
    assert counter.requires_approval == original.requires_approval
    assert original.reversal_key == "B-7/storno"
    assert original.state == "reversed"
    assert counter.state == "reversal"
    assert counter.reversal_key == ""


def test_counter_booking_keeps_fiscal_period_even_if_rules_would_differ_now() -> None:
    original = record(
        payment_date=date(2024, 12, 29),
        service_from=date(2025, 1, 1),
        service_to=date(2025, 1, 31),
        category="kdu",
    )
    assert (original.fiscal_year, original.quarter) == (2025, 1)
    counter = original.reverse(reason="Storno", reversed_by="carl")
    assert (counter.fiscal_year, counter.quarter, counter.fiscal_rule) == (
        2025,
        1,
        "december_for_january",
    )


def test_reversal_reason_is_stripped() -> None:
    counter = record().reverse(reason="  Doppelzahlung  ", reversed_by="carl")
    assert counter.reason == "Doppelzahlung"


def test_reversal_of_reversal_is_refused() -> None:
    original = record()
    counter = original.reverse(reason="Doppelzahlung", reversed_by="carl")
    with pytest.raises(ReversalRefused):
        counter.reverse(reason="zurück", reversed_by="dora")
    assert counter.reversal_key == ""


def test_second_reversal_is_refused() -> None:
    original = record()
    original.reverse(reason="Doppelzahlung", reversed_by="carl")
    with pytest.raises(ReversalRefused):
        original.reverse(reason="nochmal", reversed_by="dora")
    assert original.reversal_key == "B-1/storno"


@pytest.mark.parametrize("reason", ["", "   ", "a\nb", "x" * 501])
def test_reversal_needs_a_reason(reason: str) -> None:
    b = record()
    with pytest.raises(ValidationError) as e:
        b.reverse(reason=reason, reversed_by="carl")
    assert e.value.field == "reason"
    assert b.reversal_key == ""
    assert b.state == "recorded"


def test_reverser_is_required() -> None:
    with pytest.raises(ValidationError) as e:
        record().reverse(reason="x", reversed_by="")
    assert e.value.field == "reversed_by"


def test_counter_booking_of_large_booking_needs_its_own_four_eyes() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.approve(approved_by="bert")
    counter = b.reverse(reason="Doppelzahlung", reversed_by="carl")
    assert counter.requires_approval is True
    with pytest.raises(FourEyesViolation):
        counter.approve(approved_by="carl")
    counter.approve(approved_by="bert")
    assert counter.approved_by == "bert"
    assert counter.state == "reversal"


# ---- events and replay -------------------------------------------------------------------------


def test_content_round_trips() -> None:
    c = content(key="B-9", contract_ref="V-2025/7", text="Kaution")
    assert record(c).content() == c


def test_id_is_derived_from_key() -> None:
    b = record(key="B-42")
    assert b.id == booking_id("B-42")
    assert booking_id("B-42") == booking_id("B-42")
    assert booking_id("B-42") != booking_id("B-43")


def test_pending_events_names() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.approve(approved_by="bert")
    counter = b.reverse(reason="Doppelzahlung", reversed_by="carl")
    events = b.collect_events()
    assert [type(e).__name__ for e in events] == ["Recorded", "Approved", "Reversed"]
    assert isinstance(events[0], Booking.Recorded)
    assert isinstance(events[1], Booking.Approved)
    assert isinstance(events[2], Booking.Reversed)
    assert [e.originator_version for e in events] == [1, 2, 3]
    assert events[1].approved_by == "bert"
    assert events[2].reversal_key == "B-1/storno"
    assert events[2].reason == "Doppelzahlung"
    assert events[2].reversed_by == "carl"
    assert b.collect_events() == []
    counter_events = counter.collect_events()
    assert [type(e).__name__ for e in counter_events] == ["Recorded"]
    assert counter_events[0].reverses_key == "B-1"


def test_refused_commands_emit_no_events() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.collect_events()
    with pytest.raises(FourEyesViolation):
        b.approve(approved_by="anna")
    b.reverse(reason="x", reversed_by="carl")
    b.collect_events()
    with pytest.raises(ReversalRefused):
        b.reverse(reason="y", reversed_by="carl")
    with pytest.raises(AlreadyApproved):
        b.approve(approved_by="bert")
    assert b.collect_events() == []
    assert b.version == 2


def _state(b: Booking) -> dict:
    return {k: v for k, v in vars(b).items() if k != "_pending_events"}


@pytest.mark.parametrize("steps", ["record", "approve", "reverse", "approve_reverse"])
def test_replaying_events_gives_the_same_state(steps: str) -> None:
    b = record(
        amount_cents=THRESHOLD + 1,
        payment_date=date(2024, 12, 29),
        service_from=date(2025, 1, 1),
        service_to=date(2025, 1, 31),
    )
    if "approve" in steps:
        b.approve(approved_by="bert")
    counter = None
    if "reverse" in steps:
        counter = b.reverse(reason="Doppelzahlung", reversed_by="carl")
    events = b.collect_events()
    copy = replay(events)
    assert isinstance(copy, Booking)
    assert _state(copy) == _state(b)
    assert copy.state == b.state
    assert copy.counts == b.counts
    assert copy.content() == b.content()
    assert copy.version == len(events)
    if counter is not None:
        c_copy = replay(counter.collect_events())
        assert _state(c_copy) == _state(counter)
        # An unapproved booking above the threshold is withdrawn, an approved one reversed.
        assert c_copy.state == ("reversal" if "approve" in steps else "withdrawal")


def test_replay_of_a_prefix_gives_the_earlier_state() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.approve(approved_by="bert")
    b.reverse(reason="Doppelzahlung", reversed_by="carl")
    events = b.collect_events()
    assert replay(events[:1]).state == "awaiting_approval"
    assert replay(events[:2]).state == "approved"
    assert replay(events[:3]).state == "reversed"


def test_replay_does_not_rerun_guards() -> None:
    # the recorded fiscal period is the event's, not recomputed on replay
    b = record(
        payment_date=date(2025, 1, 20),
        service_from=date(2024, 12, 1),
        service_to=date(2024, 12, 31),
    )
    copy = replay(b.collect_events())
    assert (copy.fiscal_year, copy.quarter, copy.fiscal_rule) == (2024, 4, "runoff")


# ---- anchoring of the input patterns -----------------------------------------------------------
# The patterns end in `$`, which also matches before a final "\n": a trailing newline must not slip
# through (it would make "B-1\n" a second booking beside "B-1", and "anna\n" a second person).


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", "B-1\n"),
        ("case_ref", "08221BG0000001\n"),
        ("document_ref", "ZA-202503\n"),
        ("contract_ref", "V-1\n"),
        ("cost_centre", "JC-NORD\n"),
    ],
)
def test_trailing_newline_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as e:
        record(**{field: value})
    assert e.value.field == field


def test_recorder_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError) as e:
        record(recorded_by="anna\n")
    assert e.value.field == "recorded_by"


def test_four_eyes_cannot_be_bypassed_by_a_trailing_newline() -> None:
    b = record(amount_cents=THRESHOLD + 1, recorded_by="anna")
    with pytest.raises(DomainError):
        b.approve(approved_by="anna\n")
    assert b.approved_by == ""
    assert b.counts is False


# ---- a reversed booking and its counter-booking cancel out -------------------------------------


def _signed_counted(original: Booking, counter: Booking) -> int:
    return (original.amount_cents if original.counts else 0) - (counter.amount_cents if counter.counts else 0)


def test_approved_booking_and_approved_counter_cancel_out() -> None:
    b = record(amount_cents=THRESHOLD + 1)
    b.approve(approved_by="bert")
    counter = b.reverse(reason="Doppelzahlung", reversed_by="carl")
    counter.approve(approved_by="bert")
    assert _signed_counted(b, counter) == 0


def test_small_booking_and_its_counter_cancel_out() -> None:
    b = record(amount_cents=THRESHOLD)
    counter = b.reverse(reason="Doppelzahlung", reversed_by="carl")
    assert b.counts and counter.counts
    assert _signed_counted(b, counter) == 0


def test_reversal_of_a_never_approved_booking_cannot_count_negative() -> None:
    # The original awaits approval (it never counted) and, once reversed, can no longer be approved.
    # Its counter-booking must then not be able to count on its own: that would take money out of
    # the split that was never put in.
    b = record(amount_cents=THRESHOLD + 1)
    assert b.counts is False
    counter = b.reverse(reason="irrtümlich erfasst", reversed_by="carl")
    with pytest.raises(AlreadyApproved):
        b.approve(approved_by="bert")
    try:
        counter.approve(approved_by="bert")
    except DomainError:
        pass
    assert _signed_counted(b, counter) == 0


@given(st.text(max_size=100))
def test_a_bookings_id_is_the_name_based_uuid_of_its_key(key: str) -> None:
    """The hand-written derivation (fast path of the payment run) is the standard library's uuid5."""
    expected = uuid5(BOOKING_NAMESPACE, key)
    assert booking_id(key) == expected
    assert booking_id_bytes(key) == expected.bytes
    assert expected.version == 5
