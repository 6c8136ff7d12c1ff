"""Measure commitments (Mittelbindung) on both stores: slices by fiscal year, drawdowns by bookings
under the contract, increase, reduce, release, reversals, import runs and concurrent commitments."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from domain.booking import Kind
from domain.budget import BudgetExceeded, budget_id
from domain.commitment import CommitmentExceeded, commitment_id
from domain.errors import KeyConflict, NotFound, StateRefused, ValidationError
from ledger import budget_commands as bc
from ledger.application import ImportRefused
from ledger.bootstrap import open_books
from tests.factories import booking
from tests.races import meanwhile

AGH = "AGH-2025-07"
INSTRUMENT_AGH = "egt.arbeitsgelegenheiten"


def allocate(books, cents, year=2025, title="egt"):
    return bc.allocate(books, year=year, title=title, amount_cents=cents, reference=f"ZS-{year}", reason="Zuteilung",
                       by="head")


def commit(books, slices, ref=AGH, instrument="egt.arbeitsgelegenheiten", provider="Beschäftigungsträger e.V."):
    return bc.make_commitment(
        books, contract_ref=ref, instrument=instrument, provider=provider, slices_cents=slices, reason="Vertrag",
        by="head",
    )


def content(key, cents, *, contract=AGH, category="egt.arbeitsgelegenheiten", paid=date(2025, 3, 10),
            kind=Kind.PAYMENT, service=None):
    first, last = service or (paid.replace(day=1), paid.replace(day=28))
    return booking(key, amount_cents=cents, category=category, kind=kind, payment_date=paid, service_from=first,
                   service_to=last, contract_ref=contract, document_ref="RE-1")


def pay(books, key, cents, **kw):
    return books.ledger.record_booking(content(key, cents, **kw), recorded_by="clerk").booking


def get(books, ref=AGH):
    return books.ledger.get_commitment(ref)


def change(books, year, cents, *, increase, ref=AGH, reason="Nachtrag"):
    return bc.change_commitment(books, contract_ref=ref, year=year, amount_cents=cents, increase=increase,
                                reason=reason, by="head")


def release(books, year, ref=AGH):
    return bc.release_commitment(books, contract_ref=ref, year=year, reason="Maßnahme beendet", by="head")


def egt(books, year=2025):
    return bc.status(books, year).title("egt")


def event_names(books, ref=AGH):
    return [type(e).__name__ for e in books.ledger.events.get(commitment_id(ref))]


# ---- making a commitment --------------------------------------------------------------------


def test_a_commitment_binds_slices_over_two_years_the_later_one_without_allocation(books):
    allocate(books, 100_000_000)
    c, created = commit(books, {2025: 6_000_000, 2026: 4_000_000})  # 2026: Verpflichtungsermächtigung
    assert created is True
    assert c.years() == [2025, 2026]
    assert (c.remaining_cents(2025), c.remaining_cents(2026), c.remaining_cents(2027)) == (6_000_000, 4_000_000, 0)
    assert (egt(books).committed_cents, egt(books).available_cents) == (6_000_000, 94_000_000)
    assert egt(books, 2026).committed_cents == 4_000_000
    assert bc.status(books, 2025).instrument("egt.arbeitsgelegenheiten").committed_cents == 6_000_000
    assert books.ledger.budget_as_of(2026).bound_cents == {"egt.arbeitsgelegenheiten": 4_000_000}


def test_committing_more_than_available_is_refused_naming_the_available_amount(books):
    allocate(books, 10_000_000)
    pay(books, "FREI-1", 250_000, contract="", category="egt.weiterbildung")  # spending outside commitments
    commit(books, {2025: 5_000_000}, ref="V-0")
    with pytest.raises(BudgetExceeded) as e:
        commit(books, {2025: 4_750_001})
    assert e.value.field == "amount"
    assert AGH in str(e.value) and "Eingliederungsbudget available: 47.500,00 €" in str(e.value)
    with pytest.raises(NotFound):
        get(books)
    c, _ = commit(books, {2025: 4_750_000})  # exactly what is available
    assert egt(books).available_cents == 0 and c.remaining_cents(2025) == 4_750_000


def test_a_commitment_refused_for_one_year_binds_no_year(books):
    allocate(books, 10_000_000)
    allocate(books, 1_000_000, year=2026)
    with pytest.raises(BudgetExceeded) as e:
        commit(books, {2025: 5_000_000, 2026: 1_000_001})
    assert "in 2026" in str(e.value) and "10.000,00 €" in str(e.value)
    assert books.ledger.budget_as_of(2025).contract_refs == []
    assert egt(books).committed_cents == 0


def test_the_same_contract_with_the_same_terms_is_a_repeat_with_other_terms_a_conflict(books):
    allocate(books, 100_000_000)
    first, created = commit(books, {2025: 6_000_000, 2026: 4_000_000})
    again, created_again = commit(books, {2026: 4_000_000, 2025: 6_000_000})
    assert (created, created_again) == (True, False)
    assert again.id == first.id and event_names(books) == ["Made"]
    assert egt(books).committed_cents == 6_000_000  # bound once
    for other in (
        dict(slices={2025: 6_000_001, 2026: 4_000_000}),
        dict(slices={2025: 6_000_000}),
        dict(slices={2025: 6_000_000, 2026: 4_000_000}, provider="Anderer Träger"),
        dict(slices={2025: 6_000_000, 2026: 4_000_000}, instrument="egt.aktivierung"),
    ):
        with pytest.raises(KeyConflict) as e:
            commit(books, **other)
        assert e.value.field == "contract_ref"
    assert egt(books).committed_cents == 6_000_000
    # An increase since does not make the original terms a conflict.
    change(books, 2025, 100_000, increase=True)
    assert commit(books, {2025: 6_000_000, 2026: 4_000_000})[1] is False


@pytest.mark.parametrize(
    ("change_", "field"),
    [
        (dict(ref="mit Leerzeichen"), "contract_ref"),
        (dict(instrument="kdu"), "instrument"),
        (dict(instrument="egt.gibt_es_nicht"), "instrument"),
        (dict(provider=" "), "provider"),
        (dict(slices={}), "slices"),
        (dict(slices={2025: 0}), "slices.2025"),
        (dict(slices={2004: 100}), "year"),
    ],
)
def test_a_commitment_with_a_bad_field_is_refused_naming_it(books, change_, field):
    args = dict(slices={2025: 100_000})
    with pytest.raises(ValidationError) as e:
        commit(books, **(args | change_))
    assert e.value.field == field
    assert books.ledger.budget_as_of(2025) is None


# ---- drawdowns --------------------------------------------------------------------------------


def test_bookings_under_the_contract_draw_down_the_slice_of_their_fiscal_year(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 3_000_000, 2026: 2_000_000})
    pay(books, "AGH-R1", 1_000_000)
    # Paid on 10 January 2026 for December 2025: the run-off period counts it in 2025.
    runoff = pay(books, "AGH-R2", 500_000, paid=date(2026, 1, 10), service=(date(2025, 12, 1), date(2025, 12, 31)))
    assert runoff.fiscal_year == 2025
    pay(books, "AGH-R3", 300_000, paid=date(2026, 2, 10))
    c = get(books)
    assert (c.drawn_cents["2025"], c.drawn_cents["2026"]) == (1_500_000, 300_000)
    assert (c.remaining_cents(2025), c.remaining_cents(2026)) == (1_500_000, 1_700_000)
    assert c.drawdowns == {"AGH-R1": [2025, 1_000_000], "AGH-R2": [2025, 500_000], "AGH-R3": [2026, 300_000]}
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (1_500_000, 1_500_000, 97_000_000)
    # A repeat of the same booking draws nothing more.
    assert books.ledger.record_booking(content("AGH-R1", 1_000_000), recorded_by="clerk").created is False
    assert get(books).drawn_cents["2025"] == 1_500_000


def test_a_drawdown_beyond_the_remaining_amount_is_refused_naming_it_and_nothing_is_written(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    pay(books, "AGH-R1", 600_000)
    with pytest.raises(CommitmentExceeded) as e:
        pay(books, "AGH-R2", 400_001)
    assert e.value.field == "amount"
    assert f"2025 slice of commitment {AGH}: 4.000,00 €" in str(e.value)
    assert books.ledger._find("AGH-R2") is None
    assert get(books).drawn_cents["2025"] == 600_000
    pay(books, "AGH-R2", 400_000)  # exactly the rest
    assert get(books).remaining_cents(2025) == 0
    with pytest.raises(CommitmentExceeded) as e:  # a year without a slice has nothing to draw
        pay(books, "AGH-R3", 1, paid=date(2027, 3, 10))
    assert "2027 slice" in str(e.value) and ": 0,00 €" in str(e.value)


def test_an_import_with_a_drawdown_beyond_the_remaining_amount_is_refused_as_a_whole(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    run = [
        content("IMP-1", 400_000),
        content("IMP-2", 100_000, contract="", category="kdu"),
        content("IMP-3", 500_000),
        content("IMP-4", 100_001),  # 1,00 € more than the 1.000,00 € that remain
        content("IMP-5", 50_000, category="egt.aktivierung"),  # another instrument under the contract
    ]
    with pytest.raises(ImportRefused) as e:
        books.ledger.import_bookings(run, recorded_by="clerk")
    assert [c.index for c in e.value.conflicts] == [3, 4]
    assert isinstance(e.value.conflicts[0].error, CommitmentExceeded)
    assert "1.000,00 €" in str(e.value.conflicts[0].error)
    assert e.value.conflicts[1].error.field == "category"
    assert all(books.ledger._find(c.key) is None for c in run)
    assert get(books).drawn_cents["2025"] == 0 and get(books).drawdowns == {}
    fixed = [*run[:3], content("IMP-4", 100_000)]  # exactly what remains
    assert books.ledger.import_bookings(fixed, recorded_by="clerk").created == 4
    assert get(books).remaining_cents(2025) == 0
    assert books.ledger.import_bookings(fixed, recorded_by="clerk").created == 0  # re-import draws nothing
    assert get(books).drawn_cents["2025"] == 1_000_000


def test_a_booking_of_another_category_under_the_contract_is_refused(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    with pytest.raises(ValidationError) as e:
        pay(books, "FALSCH-1", 1_000, category="egt.aktivierung")
    assert e.value.field == "category"
    assert "egt.arbeitsgelegenheiten" in str(e.value) and "egt.aktivierung" in str(e.value)
    assert books.ledger._find("FALSCH-1") is None


def test_receipts_and_unknown_contracts_leave_commitments_alone(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    pay(books, "ERST-1", 200_000, kind=Kind.RECEIPT)  # a refund under the contract
    pay(books, "ANDERS-1", 300_000, contract="AGH-UNBEKANNT")
    c = get(books)
    assert (c.drawn_cents["2025"], c.drawdowns, c.remaining_cents(2025)) == (0, {}, 1_000_000)
    assert egt(books).spent_cents == 100_000  # 3.000,00 paid, 2.000,00 refunded


# ---- reversals ------------------------------------------------------------------------------


def test_a_reversal_gives_the_drawn_amount_back(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    pay(books, "AGH-R1", 700_000)
    before = egt(books).available_cents
    counter = books.ledger.reverse_booking("AGH-R1", reason="Doppelzahlung", reversed_by="clerk")
    c = get(books)
    assert (c.drawn_cents["2025"], c.remaining_cents(2025), c.drawdowns) == (0, 1_000_000, {})
    undrawn = list(books.ledger.events.get(commitment_id(AGH)))[-1]
    assert (type(undrawn).__name__, undrawn.booking_key, undrawn.reversal_key) == ("Undrawn", "AGH-R1", counter.key)
    assert egt(books).available_cents == before  # committed again what is no longer spent
    pay(books, "AGH-R2", 1_000_000)  # the whole slice may be drawn again


def test_withdrawing_a_booking_awaiting_approval_gives_the_amount_back(books):
    allocate(books, 100_000_000)
    commit(books, {2025: 3_000_000})
    big = pay(books, "AGH-GROSS", 2_500_000)
    assert big.state == "awaiting_approval" and get(books).remaining_cents(2025) == 500_000
    counter = books.ledger.reverse_booking("AGH-GROSS", reason="falscher Betrag", reversed_by="clerk")
    assert counter.state == "withdrawal"
    assert get(books).remaining_cents(2025) == 3_000_000
    st = egt(books)
    assert (st.committed_cents, st.spent_cents) == (3_000_000, 0)


def test_a_drawn_booking_awaiting_approval_still_binds_the_budget(books):
    """Between drawdown and approval the amount is neither committed nor spent in the status; the
    budget must not count it as available (else a second commitment overbinds the year)."""
    allocate(books, 10_000_000)
    commit(books, {2025: 10_000_000})
    assert egt(books).available_cents == 0
    pay(books, "AGH-GROSS", 2_000_000)  # above the approval threshold: awaits approval
    assert egt(books).available_cents == 0
    with pytest.raises(BudgetExceeded):
        commit(books, {2025: 2_000_000}, ref="AGH-ZWEI")


def test_a_reversal_awaiting_approval_gives_back_the_drawdown_but_not_yet_the_budget(books):
    """The reversal of an approved invoice above the approval threshold awaits approval: the
    commitment has the drawdown back at once, but the invoice counts as spent until the reversal
    is approved. Until then that money is not available (else a second commitment overbinds)."""
    allocate(books, 3_000_000)
    commit(books, {2025: 3_000_000})
    pay(books, "AGH-GROSS", 1_000_001)
    books.ledger.approve_booking("AGH-GROSS", approved_by="approver")
    counter = books.ledger.reverse_booking("AGH-GROSS", reason="Doppelzahlung", reversed_by="clerk")
    assert counter.requires_approval and not counter.approved_by
    assert get(books).remaining_cents(2025) == 3_000_000
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (1_999_999, 1_000_001, 0)
    with pytest.raises(BudgetExceeded):
        commit(books, {2025: 1}, ref="AGH-ZWEI")
    books.ledger.approve_booking(counter.key, approved_by="approver")
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (3_000_000, 0, 0)


def test_a_reversal_that_counts_in_the_next_year_does_not_free_the_closed_years_budget(books):
    """2025 is closed when its invoice is reversed: the counter-booking counts in 2026, the open
    period. The commitment's 2025 slice has the drawdown back, but 2025 keeps the invoice as spent,
    so 2025's status must not show that money as committed again (it would count twice); 2026 has
    the refund as negative spending. The same when the reversal was recorded in 2025 and approved
    only after the year was closed."""
    allocate(books, 3_000_000)
    commit(books, {2025: 3_000_000})
    pay(books, "AGH-ALT", 500_000)
    pay(books, "AGH-GROSS", 1_000_001, paid=date(2025, 11, 10))
    books.ledger.approve_booking("AGH-GROSS", approved_by="approver", on=date(2025, 11, 11))
    late = books.ledger.reverse_booking(
        "AGH-GROSS", reason="Doppelzahlung", reversed_by="clerk", on=date(2025, 12, 1)
    )
    assert late.requires_approval and late.fiscal_year == 2025
    books.ledger.close_period(year=2025, quarter=0, closed_by="head")
    counter = books.ledger.reverse_booking(
        "AGH-ALT", reason="Rückforderung", reversed_by="clerk", on=date(2026, 2, 3)
    )
    assert counter.fiscal_year == 2026 and get(books).remaining_cents(2025) == 3_000_000
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (1_499_999, 1_500_001, 0)
    books.ledger.approve_booking(late.key, approved_by="approver", on=date(2026, 2, 4))
    assert books.ledger.get_booking(late.key).fiscal_year == 2026
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (1_499_999, 1_500_001, 0)
    assert egt(books, 2026).spent_cents == -1_500_001


def test_an_invoice_approved_after_its_year_was_closed_draws_on_the_next_years_slice(books):
    """The invoice drew on 2025 when recorded, but 2025 was closed before it was approved: it counts
    in 2026, so its drawdown moves to the 2026 slice with the approval (one transaction). Without a
    2026 slice that holds it, the approval is refused, naming the remainder, and nothing changes."""
    allocate(books, 5_000_000)
    commit(books, {2025: 3_000_000, 2026: 1_000_000})
    pay(books, "AGH-SPAET", 1_000_001, paid=date(2025, 12, 10))
    books.ledger.close_period(year=2025, quarter=0, closed_by="head")
    with pytest.raises(CommitmentExceeded) as e:
        books.ledger.approve_booking("AGH-SPAET", approved_by="approver", on=date(2026, 1, 20))
    assert "2026" in str(e.value) and "10.000,00 €" in str(e.value)
    assert books.ledger.get_booking("AGH-SPAET").state == "awaiting_approval"
    assert event_names(books) == ["Made", "Drawn"]
    change(books, 2026, 1, increase=True)
    approved = books.ledger.approve_booking("AGH-SPAET", approved_by="approver", on=date(2026, 1, 20))
    assert approved.fiscal_year == 2026
    c = get(books)
    assert c.drawdowns["AGH-SPAET"] == [2026, 1_000_001]
    assert (c.remaining_cents(2025), c.remaining_cents(2026)) == (3_000_000, 0)
    assert event_names(books)[-1] == "DrawdownMoved"
    assert (egt(books, 2026).committed_cents, egt(books, 2026).spent_cents) == (0, 1_000_001)
    books.ledger.reverse_booking("AGH-SPAET", reason="Doppelzahlung", reversed_by="clerk", on=date(2026, 2, 1))
    assert get(books).remaining_cents(2026) == 1_000_001  # given back to the slice it drew on last


# ---- increase, reduce, release --------------------------------------------------------------


def test_increase_and_reduce_are_events_with_reasons(books):
    allocate(books, 10_000_000)
    commit(books, {2025: 4_000_000})
    pay(books, "AGH-R1", 1_000_000)
    change(books, 2025, 2_000_000, increase=True, reason="Nachtrag 1")
    change(books, 2026, 1_500_000, increase=True, reason="Verlängerung")  # a new year's slice
    change(books, 2025, 500_000, increase=False, reason="weniger Plätze")
    c = get(books)
    assert (c.slice_cents, c.remaining_cents(2025)) == ({"2025": 5_500_000, "2026": 1_500_000}, 4_500_000)
    changes = [(type(e).__name__, e.year, e.amount_cents, e.reason, e.changed_by)
               for e in books.ledger.events.get(commitment_id(AGH)) if type(e).__name__ in ("Increased", "Reduced")]
    assert changes == [
        ("Increased", 2025, 2_000_000, "Nachtrag 1", "head"),
        ("Increased", 2026, 1_500_000, "Verlängerung", "head"),
        ("Reduced", 2025, 500_000, "weniger Plätze", "head"),
    ]
    st = egt(books)
    assert (st.committed_cents, st.available_cents) == (4_500_000, 4_500_000)
    with pytest.raises(ValidationError) as e:
        change(books, 2025, 1, increase=True, reason=" ")
    assert e.value.field == "reason"


def test_an_increase_beyond_the_available_is_refused_naming_it(books):
    allocate(books, 10_000_000)
    commit(books, {2025: 4_000_000})
    with pytest.raises(BudgetExceeded) as e:
        change(books, 2025, 6_000_001, increase=True)
    assert "available: 60.000,00 €" in str(e.value)
    assert get(books).slice_cents["2025"] == 4_000_000 and event_names(books) == ["Made"]


def test_a_reduction_below_what_was_drawn_is_refused_naming_the_remaining(books):
    allocate(books, 10_000_000)
    commit(books, {2025: 4_000_000})
    pay(books, "AGH-R1", 900_000)
    with pytest.raises(CommitmentExceeded) as e:
        change(books, 2025, 3_100_001, increase=False)
    assert "at most its remaining 31.000,00 €" in str(e.value) and "drawn 9.000,00 €" in str(e.value)
    change(books, 2025, 3_100_000, increase=False)
    assert get(books).remaining_cents(2025) == 0 and get(books).slice_cents["2025"] == 900_000
    assert egt(books).available_cents == 10_000_000 - 900_000


def test_releasing_the_remainder_frees_it_and_closes_the_year_to_drawdowns(books):
    allocate(books, 10_000_000)
    commit(books, {2025: 4_000_000, 2026: 1_000_000})
    pay(books, "AGH-R1", 900_000)
    _, amount = release(books, 2025)
    assert amount == 3_100_000
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (0, 900_000, 9_100_000)
    with pytest.raises(CommitmentExceeded) as e:
        pay(books, "AGH-R2", 1)
    assert "(released)" in str(e.value)
    for refused in (lambda: change(books, 2025, 1, increase=True), lambda: change(books, 2025, 1, increase=False),
                    lambda: release(books, 2025)):
        with pytest.raises(StateRefused) as e:
            refused()
        assert e.value.field == "year" and "released" in str(e.value)
    pay(books, "AGH-R3", 100_000, paid=date(2026, 3, 10))  # the other year is still open
    assert get(books).remaining_cents(2026) == 900_000
    with pytest.raises(ValidationError):
        release(books, 2027)  # no slice


def test_a_reversal_after_release_keeps_the_year_released(books):
    allocate(books, 10_000_000)
    commit(books, {2025: 4_000_000})
    pay(books, "AGH-R1", 900_000)
    release(books, 2025)
    books.ledger.reverse_booking("AGH-R1", reason="Rückforderung", reversed_by="clerk")
    c = get(books)
    assert (c.drawn_cents["2025"], c.released_cents["2025"], c.remaining_cents(2025)) == (0, 4_000_000, 0)
    assert c.is_released(2025)
    st = egt(books)
    assert (st.committed_cents, st.spent_cents, st.available_cents) == (0, 0, 10_000_000)
    with pytest.raises(CommitmentExceeded):
        pay(books, "AGH-R4", 1)


# ---- concurrency ----------------------------------------------------------------------------


def test_two_commitments_made_at_once_cannot_together_exceed_the_available(books, settings):
    for year in (2025, 2026, 2027):  # three races, each for a year of its own
        allocate(books, 10_000_000, year=year)
        outcomes: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def make(ref: str, year: int = year, outcomes: dict = outcomes, barrier=barrier) -> None:
            with open_books(settings) as own:
                barrier.wait()
                try:
                    commit(own, {year: 6_000_000}, ref=ref)
                    outcomes[ref] = "made"
                except Exception as e:  # noqa: BLE001 - the test inspects which error
                    outcomes[ref] = e

        threads = [threading.Thread(target=make, args=(f"{ref}-{year}",)) for ref in ("AGH-A", "AGH-B")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        made = [ref for ref, o in outcomes.items() if o == "made"]
        refused = [o for o in outcomes.values() if o != "made"]
        assert len(made) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], BudgetExceeded) and "available: 40.000,00 €" in str(refused[0])
        st = egt(books, year)
        assert (st.committed_cents, st.available_cents) == (6_000_000, 4_000_000)
        assert books.ledger.budget_as_of(year).contract_refs == made


def test_a_binding_decided_on_a_stale_budget_is_not_saved(books, settings):
    """The mechanism behind the race above: both writers bind on the same budget version; the
    second save conflicts on the budget's version instead of binding past the available."""
    allocate(books, 10_000_000)
    with open_books(settings) as other:
        mine = books.ledger.repository.get(budget_id(2025))
        theirs = other.ledger.repository.get(budget_id(2025))
        mine.bind(contract_ref="X-1", instrument=INSTRUMENT_AGH, delta_cents=6_000_000, available_cents=10_000_000)
        theirs.bind(contract_ref="X-2", instrument=INSTRUMENT_AGH, delta_cents=6_000_000, available_cents=10_000_000)
        books.ledger.save(mine)
        with pytest.raises(IntegrityError):
            other.ledger.save(theirs)
    assert books.ledger.budget_as_of(2025).contract_refs == ["X-1"]


# ---- command line -----------------------------------------------------------------------------


def test_commitment_cli_make_increase_reduce_release_show_with_exit_codes(koa, tmp_path: Path):
    assert koa("budget", "allocate", "--year", 2025, "--title", "egt", "--amount", "100.000,00", "--reference",
               "ZS-1", "--reason", "Zuteilung").exit_code == 0
    make = ("commitment", "make", "--contract", AGH, "--instrument", "egt.arbeitsgelegenheiten", "--provider",
            "Träger e.V.", "--slice", "2025=60.000,00", "--slice", "2026=40.000,00", "--reason", "Vertrag")
    made = koa(*make)
    assert made.exit_code == 0, made.output
    assert f"{AGH}: committed; 2025: slice 60.000,00 €" in made.stdout
    assert "already committed (same terms), unchanged" in koa(*make).stdout
    conflict = koa(*make[:8], "--slice", "2025=60.000,01", "--slice", "2026=40.000,00", "--reason", "Vertrag")
    assert conflict.exit_code == 1 and "other terms" in conflict.stderr
    too_much = koa("commitment", "increase", "--contract", AGH, "--year", 2025, "--amount", "40.000,01",
                   "--reason", "Nachtrag")
    assert too_much.exit_code == 1 and "available: 40.000,00 €" in too_much.stderr
    ok = koa("commitment", "reduce", "--contract", AGH, "--year", 2025, "--amount", "10.000,00", "--reason", "weniger")
    assert ok.exit_code == 0 and "2025: slice 50.000,00 €" in ok.stdout
    released = koa("commitment", "release", "--contract", AGH, "--year", 2025, "--reason", "beendet")
    assert released.exit_code == 0 and "50.000,00 € of 2025 released" in released.stdout
    shown = koa("commitment", "show", "--contract", AGH)
    assert shown.exit_code == 0
    assert [w for w in ("Made", "Reduced", "Released") if f" {w} " in shown.stdout] == ["Made", "Reduced", "Released"]
    assert koa("commitment", "show", "--contract", "GIBT-ES-NICHT").exit_code == 1
    assert koa("commitment", "make", *make[2:-6], "--slice", "2025:5", "--reason", "x").exit_code == 1


def test_a_streamed_run_with_an_invoice_under_a_commitment_stops_and_the_sequence_path_draws(books):
    """The bulk path writes booking events only: a run with a drawdown is refused there, nothing
    stored, and goes through import_bookings, which saves the commitment's Drawn event with it."""
    from ledger.bulk_import import DrawsOnCommitment

    bc.allocate(books, year=2025, title="egt", amount_cents=10_000_000, reference="Z-1", reason="Zuteilung", by="head")
    bc.make_commitment(books, contract_ref="V-S", instrument="egt.aktivierung", provider="Träger",
                       slices_cents={2025: 500_000}, reason="Vertrag", by="clerk")
    run = [
        booking("S-KDU", amount_cents=10_000),
        booking("S-INV", category="egt.aktivierung", case_ref="", contract_ref="V-S", amount_cents=200_000),
    ]
    before = books.ledger.max_notification_id()
    with pytest.raises(DrawsOnCommitment):
        books.ledger.import_stream(iter(run), recorded_by="clerk")
    assert books.ledger.max_notification_id() == before
    result = books.ledger.import_bookings(run, recorded_by="clerk")
    assert result.created == 2
    assert books.ledger.get_commitment("V-S").remaining_cents(2025) == 300_000


@pytest.mark.parametrize("path", ["single", "run"])
def test_a_commitment_made_while_a_payment_under_its_contract_is_decided_is_drawn_on(
    books, settings, monkeypatch, path
):
    """The payment finds no commitment for its contract and draws on none; another process makes
    the commitment before the payment is saved. Saved as decided, the payment would count twice
    against the Eingliederungsbudget, committed and spent. Its save fails, it decides again, draws.
    (A run takes this path when another of its invoices draws on a commitment; else the bulk path.)"""
    allocate(books, 100_000_000)
    commit(books, {2025: 500_000}, ref="V-OTHER")
    made = meanwhile(monkeypatch, settings, books.ledger, "_draw_commitments", lambda o: commit(o, {2025: 1_000_000}))
    if path == "single":
        pay(books, "INV-1", 200_000)
    else:
        run = [content("INV-0", 100_000, contract="V-OTHER"), content("INV-1", 200_000)]
        assert books.ledger.import_bookings(run, recorded_by="clerk").created == 2
        assert get(books, "V-OTHER").remaining_cents(2025) == 400_000
    assert made
    assert event_names(books) == ["Made", "Drawn"]
    assert get(books).remaining_cents(2025) == 800_000


def test_an_invoice_stored_while_the_budget_is_read_counts_once(books, settings, monkeypatch):
    """Another process stores an invoice under the commitment after this one caught the view up,
    before it reads the commitment: the commitment shows the drawdown, the view not yet the
    invoice. Read so, the invoice's money counted nowhere and the budget looked 150.000 € richer."""
    allocate(books, 100_000_000)
    commit(books, {2025: 1_000_000})
    stored = meanwhile(monkeypatch, settings, books.ledger, "budget_as_of", lambda o: pay(o, "INV-1", 150_000))
    status = egt(books)
    assert stored
    assert get(books).remaining_cents(2025) == 850_000
    assert status.committed_cents + status.spent_cents == 1_000_000
    assert status.available_cents == 99_000_000
