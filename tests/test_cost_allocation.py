"""Cost allocation runs (KoA-VV § 18): the formulas to the cent, the stored Computed event an auditor
recomputes, reruns by reversal, four eyes, closed periods, the CSV files and `koa allocation`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from domain.cost_allocation import (
    AllocationParameters,
    CostsBookedDirectly,
    OverlappingAllocation,
    SharedCost,
    StaffRecord,
    allocation_id,
    compute,
    recompute,
    staff_to_json,
)
from domain.errors import FourEyesViolation, KeyConflict, NotFound, ValidationError
from domain.periods import YEAR, PeriodClosed
from ledger import allocation_commands as ac
from ledger import bulk_import
from ledger.allocation_checks import RunsInForce
from ledger.allocation_file import read_shared, read_staff
from ledger.application import ApprovalsRefused, ImportRefused
from ledger.bootstrap import open_books
from ledger.commands import InputError
from ledger.payment_run import RunFileError
from ledger.recorders import SealingPostgresApplicationRecorder
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import booking
from tests.races import meanwhile

D = Decimal
STAFF = [
    # 60.000,00 € of a civil servant's costs, 25.000,00 € surcharge paid: capped at 30 % = 18.000,00 €
    StaffRecord("B-1", D(1), D(1), 6_000_000, "beamter", 2_500_000),
    StaffRecord("T-2", D("0.5"), D("0.6"), 3_000_001, "beschaeftigter"),
    StaffRecord("T-3", D("0.75"), D("0.25"), 4_444_444, "beschaeftigter"),
]
SHARED = [
    SharedCost("IT-Dienstleistung", "vwk.sachkosten", 1_000_000, D("0.35")),
    SharedCost("Hausdruckerei", "vwk.sonstige", 100_001, D("0.5")),
    SharedCost("Server", "vwk.investitionen", 200_000, D("0.25")),
]
# Personalkosten 60.000,00 + 18.000,006 + 11.111,11 = 89.111,116 -> 89.111,12
# SGB II VZÄ 1 + 0,3 + 0,1875 = 1,4875; Personalnebenkosten 1.500,00 × 1,4875 = 2.231,25
# Sachkosten 12.000,00 × 1,4875 = 17.850,00 + 3.500,00 shared; Gemeinkosten 20 % × 89.111,116 = 17.822,2232
# Versorgungszuschlag min(25.000,00, 30 % × 60.000,00) × 1; shared sonstige 1.000,01 × 0,5 = 500,005 -> 500,01
YEAR_RESULTS = {
    "vwk.personal": 8_911_112,
    "vwk.personalnebenkosten": 223_125,
    "vwk.sachkosten": 2_135_000,
    "vwk.personalgemeinkosten": 1_782_222,
    "vwk.versorgungszuschlag": 1_800_000,
    "vwk.sonstige": 50_001,
    "vwk.investitionen": 50_000,
}


def params(quarter=YEAR, cap="0.30"):
    return AllocationParameters(D("0.20"), 150_000, 1_200_000, D(cap), quarter)


def run(books, quarter=YEAR, staff=STAFF, shared=SHARED, by="runner", year=2025):
    return ac.run_allocation(
        books, year=year, quarter=quarter, staff=staff, shared=shared, by=by, on=date(year, 12, 31)
    )


def computed_events(books, year=2025, quarter=YEAR):
    return [
        e for e in books.ledger.events.get(allocation_id(year, quarter)) if type(e).__name__ == "Computed"
    ]


def vwk_net(books, year=2025, quarter=None):
    catch_up(books.ledger, books.split_view)
    out: dict[str, int] = {}
    for s in split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", year, quarter):
        if s.category.startswith("vwk."):
            out[s.category] = out.get(s.category, 0) + s.net_cents
    return {k: v for k, v in out.items() if v}


def set_param(books, name, value, year=2025):
    books.ledger.set_parameter(name=name, year=year, value=D(value), land="", reason="Erlass", set_by="admin")


# ---- the formulas (pure) --------------------------------------------------------------------


def test_the_formulas_for_a_whole_year_to_the_cent():
    assert compute(STAFF, SHARED, params()) == YEAR_RESULTS


def test_flat_amounts_count_a_quarter_in_a_quarterly_run():
    q = compute(STAFF, [], params(quarter=2))
    assert q["vwk.personalnebenkosten"] == 55_781  # 2.231,25 / 4 = 557,8125
    assert q["vwk.sachkosten"] == 446_250  # 17.850,00 / 4
    assert q["vwk.personal"] == YEAR_RESULTS["vwk.personal"]  # actual costs of the period, not prorated
    assert "vwk.sonstige" not in q and "vwk.investitionen" not in q


@pytest.mark.parametrize(
    ("cap", "paid", "expected"),
    [
        ("0.30", 2_500_000, 1_800_000),  # domain.md: at most 18.000,00 € at 30 %
        ("0.35", 2_500_000, 2_100_000),  # and 21.000,00 € at 35 %
        ("0.35", 1_900_000, 1_900_000),  # never more than was paid
        ("0.30", 0, 0),
    ],
)
def test_the_versorgungszuschlag_is_capped_at_a_share_of_personnel_costs(cap, paid, expected):
    staff = [StaffRecord("B-1", D(1), D(1), 6_000_000, "beamter", paid)]
    assert compute(staff, [], params(cap=cap))["vwk.versorgungszuschlag"] == expected
    half = [StaffRecord("B-1", D(1), D("0.5"), 6_000_000, "beamter", paid)]
    assert compute(half, [], params(cap=cap))["vwk.versorgungszuschlag"] == expected // 2


def test_employees_carry_no_versorgungszuschlag():
    with pytest.raises(ValidationError) as e:
        StaffRecord("T-1", D(1), D(1), 100, "beschaeftigter", 1).validate()
    assert e.value.field == "versorgungszuschlag"


# ---- runs on the stores -----------------------------------------------------------------------


def test_a_run_is_booked_per_cost_type_and_stored_with_inputs_parameters_and_results(books):
    out = run(books)
    assert (out.number, out.results_cents, out.reversed_keys) == (1, YEAR_RESULTS, [])
    assert out.booked_keys == sorted(f"KOA-2025-J-L1-{t.removeprefix('vwk.')}" for t in YEAR_RESULTS)
    for key in out.booked_keys:
        b = books.ledger.get_booking(key)
        assert b.amount_cents == YEAR_RESULTS[b.category] and b.kind == "payment"
        assert (b.payment_date, b.service_from, b.service_to) == (
            date(2025, 12, 31),
            date(2025, 1, 1),
            date(2025, 12, 31),
        )
        assert (b.document_ref, b.cost_centre, b.recorded_by) == ("KOA-2025-J-L1", "KOA-VV18", "runner")
        assert b.state == ("awaiting_approval" if b.amount_cents > 1_000_000 else "recorded")
    [event] = computed_events(books)
    assert event.staff == [staff_to_json(s) for s in STAFF]
    assert event.parameters == {
        "personalgemeinkosten_rate": "0.20",
        "personalnebenkosten_per_vzae_cents": 150_000,
        "sachkosten_per_vzae_cents": 1_200_000,
        "versorgungszuschlag_cap": "0.30",
        "quarter": 0,
    }
    assert event.sgb2_vzae == "1.4875" and event.computed_by == "runner"
    assert event.results_cents == YEAR_RESULTS
    assert recompute(event) == event.results_cents
    # Only what counts shows in the split until the large bookings are approved.
    assert vwk_net(books) == {
        "vwk.personalnebenkosten": 223_125,
        "vwk.sonstige": 50_001,
        "vwk.investitionen": 50_000,
    }


def test_a_changed_cap_parameter_changes_the_next_run_not_the_stored_one(books):
    run(books)
    set_param(books, "versorgungszuschlag_cap", "0.35")
    second = run(books)
    assert second.results_cents["vwk.versorgungszuschlag"] == 2_100_000
    first, again = computed_events(books)
    assert first.parameters["versorgungszuschlag_cap"] == "0.30" and recompute(first) == YEAR_RESULTS
    assert again.parameters["versorgungszuschlag_cap"] == "0.35"
    assert recompute(again) == second.results_cents


def test_the_other_dated_parameters_feed_the_run(books):
    set_param(books, "personalgemeinkosten_rate", "0.25")
    set_param(books, "personalnebenkosten_per_vzae", "2000.00")
    set_param(books, "sachkosten_per_vzae", "10000.01")
    set_param(books, "sachkosten_per_vzae", "99999.00", year=2026)  # a later year's value
    r = run(books, shared=[]).results_cents
    assert r["vwk.personalgemeinkosten"] == 2_227_778  # 25 % × 89.111,116 = 22.277,779 €
    assert r["vwk.personalnebenkosten"] == 297_500  # 2.000,00 × 1,4875
    assert r["vwk.sachkosten"] == 1_487_501  # 10.000,01 × 1,4875 = 14.875,014875


@pytest.mark.parametrize(
    ("staff", "shared", "field"),
    [
        ([], [], "staff"),
        ([STAFF[0], StaffRecord("T-2", D(0), D("0.5"), 100, "beschaeftigter")], [], "staff[2].vzae"),
        ([StaffRecord("T-1", D(1), D("1.5"), 100, "beschaeftigter")], [], "staff[1].sgb2_share"),
        ([StaffRecord("Max Muster", D(1), D(1), 100, "beschaeftigter")], [], "staff[1].person_key"),
        ([STAFF[0], STAFF[0]], [], "staff[2].person_key"),
        ([StaffRecord("T-1", D(1), D(1), 100, "angestellt")], [], "staff[1].status"),
        ([StaffRecord("T-1", D(1), D(1), 100, "beschaeftigter", 5)], [], "staff[1].versorgungszuschlag"),
        ([StaffRecord("T-1", D(1), D(1), -1, "beschaeftigter")], [], "staff[1].personnel_costs"),
        (STAFF, [SharedCost("IT", "vwk.personal", 100, D("0.5"))], "shared[1].cost_type"),
        (STAFF, [SHARED[0], SharedCost("IT", "vwk.sachkosten", 100, D("1.0000001"))], "shared[2].sgb2_key"),
    ],
)
def test_invalid_input_is_refused_naming_the_field_and_nothing_is_written(books, staff, shared, field):
    with pytest.raises(ValidationError) as e:
        run(books, quarter=1, staff=staff, shared=shared)
    assert e.value.field == field
    with pytest.raises(NotFound):
        ac.get_allocation(books, 2025, 1)
    assert books.ledger.max_notification_id() == 0


def test_a_rerun_reverses_the_previous_run_and_the_split_shows_only_the_new_one(books):
    first = run(books)
    approved = ac.approve_allocation(books, year=2025, quarter=YEAR, by="approver", on=date(2025, 12, 31))
    assert sorted(approved) == sorted(
        k for k in first.booked_keys if books.ledger.get_booking(k).amount_cents > 1_000_000
    )
    assert vwk_net(books) == YEAR_RESULTS
    staff = [*STAFF[:2], StaffRecord("T-3", D("0.75"), D("0.25"), 4_000_000, "beschaeftigter")]
    second = run(books, staff=staff)
    assert second.number == 2 and second.reversed_keys == first.booked_keys
    for key in first.booked_keys:
        original = books.ledger.get_booking(key)
        assert original.state == "reversed" and original.amount_cents == YEAR_RESULTS[original.category]
        counter = books.ledger.get_booking(original.reversal_key)
        assert counter.state == "reversal" and "Lauf 2" in counter.reason
    ac.approve_allocation(books, year=2025, quarter=YEAR, by="approver", on=date(2025, 12, 31))
    assert vwk_net(books) == second.results_cents
    assert second.results_cents["vwk.personal"] == 8_911_112 - 111_111
    assert [e.run for e in computed_events(books)] == [1, 2]
    assert computed_events(books)[1].reverses_keys == first.booked_keys


def test_a_rerun_withdraws_bookings_that_were_never_approved(books):
    first = run(books)
    second = run(books)
    states = {
        books.ledger.get_booking(books.ledger.get_booking(k).reversal_key).state for k in first.booked_keys
    }
    assert states == {"withdrawal", "reversal"}  # large ones never counted; small ones did
    ac.approve_allocation(books, year=2025, quarter=YEAR, by="approver", on=date(2025, 12, 31))
    assert vwk_net(books) == second.results_cents == YEAR_RESULTS


def test_the_runner_may_not_approve_the_run(books):
    first = run(books)
    with pytest.raises(FourEyesViolation):
        ac.approve_allocation(books, year=2025, quarter=YEAR, by="runner", on=date(2025, 12, 31))
    assert {books.ledger.get_booking(k).state for k in first.booked_keys} == {"awaiting_approval", "recorded"}
    with pytest.raises(NotFound) as e:
        ac.approve_allocation(books, year=2025, quarter=3, by="approver")
    assert "2025 Q3" in str(e.value)


def test_a_run_for_a_closed_period_is_refused_naming_it(books):
    q1 = run(books, quarter=1, shared=[])
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    with pytest.raises(PeriodClosed) as e:
        run(books, quarter=1, shared=[])
    assert "cost allocation for 2025 Q1: the period is closed (closed by head)" in str(e.value)
    assert "open period" in str(e.value)
    assert [e.run for e in computed_events(books, quarter=1)] == [1]
    assert all(not books.ledger.get_booking(k).reversal_key for k in q1.booked_keys)
    assert run(books, quarter=2, shared=[]).number == 1  # the open quarter takes a run
    books.ledger.close_period(year=2025, quarter=YEAR, closed_by="head")
    with pytest.raises(PeriodClosed) as e:
        run(books)
    assert "cost allocation for 2025: the period is closed" in str(e.value)


# An administrative cost paid in May 2025 (Q2), without a case.
IN_MAY = dict(
    payment_date=date(2025, 5, 5), service_from=date(2025, 5, 1), service_to=date(2025, 5, 31), case_ref=""
)
IN_MARCH = dict(
    IN_MAY, payment_date=date(2025, 3, 5), service_from=date(2025, 3, 1), service_to=date(2025, 3, 31)
)
IN_AUGUST = dict(
    IN_MAY, payment_date=date(2025, 8, 5), service_from=date(2025, 8, 1), service_to=date(2025, 8, 31)
)


def test_directly_booked_investitionen_and_sonstige_are_reported_beside_the_run(books):
    d = IN_MAY
    books.ledger.record_booking(
        booking("INV-1", category="vwk.investitionen", amount_cents=300_000, **d), recorded_by="clerk"
    )
    books.ledger.record_booking(
        booking("SON-1", category="vwk.sonstige", amount_cents=20_000, **d), recorded_by="clerk"
    )
    direct = {"vwk.investitionen": 300_000, "vwk.sonstige": 20_000}
    first = run(books, quarter=2)
    assert first.allocation.direct_cents == direct
    # A rerun must not report the previous run's own bookings of shared costs as booked directly.
    second = run(books, quarter=2)
    assert computed_events(books, quarter=2)[1].direct_cents == direct
    assert second.allocation.direct_cents == direct


def test_a_run_is_refused_while_its_cost_types_are_booked_by_hand_in_the_period(books):
    """Personalkosten booked by hand and a run computing them for the same period would both count;
    the run refuses, naming type, amount and keys, until the bookings are reversed."""
    d = IN_MAY
    books.ledger.record_booking(
        booking("PK-1", category="vwk.personal", amount_cents=410_000, **d), recorded_by="clerk"
    )
    books.ledger.record_booking(  # above the approval threshold: awaits approval, still refused
        booking("SK-1", category="vwk.sachkosten", amount_cents=2_000_000, **d), recorded_by="clerk"
    )
    before = books.ledger.max_notification_id()
    for quarter in (2, YEAR):
        with pytest.raises(CostsBookedDirectly) as e:
            run(books, quarter=quarter)
        assert e.value.field == "quarter"
        assert "vwk.personal 4.100,00 € (PK-1)" in e.value.reason
        assert "vwk.sachkosten 20.000,00 € (SK-1)" in e.value.reason
        assert "reverse them first" in e.value.reason
    assert books.ledger.max_notification_id() == before  # nothing written
    assert run(books, quarter=1, shared=[]).number == 1  # another quarter is free of them
    for key in ("PK-1", "SK-1"):
        books.ledger.reverse_booking(key, reason="gehört in die Kostenaufteilung", reversed_by="clerk")
    assert run(books, quarter=2, shared=[]).number == 1  # reversed by hand: they net to nothing


def test_a_booking_by_hand_of_a_type_a_run_in_force_books_is_refused_on_every_path(books):
    """The other order: with a run in force for the period (or its year), a booking by hand of one
    of its cost types is refused, single or in a payment run (both store paths), naming the run."""
    q2 = run(books, quarter=2, shared=[])
    ledger = books.ledger
    before = ledger.max_notification_id()
    with pytest.raises(CostsBookedDirectly) as e:
        ledger.record_booking(booking("PK-1", category="vwk.personal", **IN_MAY), recorded_by="clerk")
    assert e.value.field == "category"
    assert (
        "vwk.personal of 2025 Q2 is booked by the cost allocation run KOA-2025-Q2-L1 in force"
        in e.value.reason
    )
    row = booking("PK-2", category="vwk.sachkosten", **IN_MAY)
    others = [booking(f"BG-{i}", amount_cents=10_000 + i) for i in range(3)]
    for path in (ledger.import_bookings, ledger._import_with_aggregates):  # bulk and aggregate paths
        with pytest.raises(ImportRefused) as refused:
            path([*others, row], recorded_by="clerk")
        ((conflict,),) = [refused.value.conflicts]
        assert conflict.index == 3 and isinstance(conflict.error, CostsBookedDirectly)
    assert ledger.max_notification_id() == before  # nothing written
    # What the run does not book, and other periods, stay open to bookings by hand.
    ledger.record_booking(booking("INV-1", category="vwk.investitionen", **IN_MAY), recorded_by="clerk")
    ledger.record_booking(booking("PK-3", category="vwk.personal", **IN_AUGUST), recorded_by="clerk")
    # Out of force once its bookings are reversed: then the cost may be booked by hand.
    reverse_run(books, q2)
    ledger.record_booking(booking("PK-1", category="vwk.personal", **IN_MAY), recorded_by="clerk")


def test_a_year_run_in_force_refuses_bookings_by_hand_of_its_types_in_every_quarter(books):
    run(books)
    in_november = dict(
        IN_MAY, payment_date=date(2025, 11, 5), service_from=date(2025, 11, 1), service_to=date(2025, 11, 30)
    )
    with pytest.raises(CostsBookedDirectly, match="KOA-2025-J-L1"):
        books.ledger.record_booking(
            booking("PK-4", category="vwk.personalnebenkosten", **in_november), recorded_by="clerk"
        )


# ---- a run and a booking by hand decided at the same time: one of them is refused ---------------


def test_a_run_stored_while_a_booking_by_hand_is_decided_makes_the_booking_refuse(
    books, settings, monkeypatch
):
    """The race: the booking finds no run in force, then a run of its quarter is stored before the
    booking is: its save fails (its period's allocation changed), it decides again, refused."""
    raced = meanwhile(monkeypatch, settings, RunsInForce, "refuse", lambda o: run(o, quarter=2, shared=[]))
    with pytest.raises(CostsBookedDirectly, match="KOA-2025-Q2-L1"):
        books.ledger.record_booking(booking("PK-1", category="vwk.personal", **IN_MAY), recorded_by="clerk")
    assert raced[0][1].key == "PK-1"
    assert books.ledger._find("PK-1") is None
    assert ac.get_allocation(books, 2025, 2).runs == 1


def test_two_runs_stored_while_a_booking_by_hand_is_decided_make_the_booking_refuse(
    books, settings, monkeypatch
):
    """The race with a run that books nothing (every result zero) and the next one after it: not
    just the next run's keys, any new version of the period's allocation fails the booking's save."""
    reverse_run(books, run(books, quarter=2, shared=[]))  # out of force: bookings by hand may come

    def two_runs(other):
        nothing = [StaffRecord("Z-1", D(1), D(0), 0, "beschaeftigter")]
        assert run(other, quarter=2, staff=nothing, shared=[]).booked_keys == []
        assert run(other, quarter=2, shared=[]).number == 3

    raced = meanwhile(monkeypatch, settings, RunsInForce, "refuse", two_runs)
    with pytest.raises(CostsBookedDirectly, match="KOA-2025-Q2-L3"):
        books.ledger.record_booking(booking("PK-1", category="vwk.personal", **IN_MAY), recorded_by="clerk")
    assert raced and books.ledger._find("PK-1") is None


def test_a_payment_run_checked_while_an_allocation_run_is_stored_books_nothing_of_its_types(
    books, settings, monkeypatch
):
    """The same race for a payment run: an allocation run of a quarter the payment run books
    Personalkosten into by hand is stored while its rows are checked. Nothing is stored; decided
    again, the row is refused by name (the streamed PostgreSQL path hands the file over to
    import_bookings for that, as for invoices under a commitment)."""
    monkeypatch.setattr(bulk_import, "CHUNK_ROWS", 2)  # the rows are decided before the run is stored
    rows = [booking("BG-1"), booking("PK-1", category="vwk.personal", **IN_MAY)]

    def rows_then_a_run():
        yield from rows
        with open_books(settings) as other:  # after the rows were checked, before they are stored
            run(other, quarter=2, shared=[])

    before = books.ledger.max_notification_id()
    streamed = isinstance(books.ledger.recorder, SealingPostgresApplicationRecorder)
    with pytest.raises(bulk_import.AllocationRunMeanwhile if streamed else ImportRefused):
        books.ledger.import_stream(rows_then_a_run(), recorded_by="clerk")
    assert books.ledger._find("BG-1") is None and books.ledger._find("PK-1") is None
    with pytest.raises(ImportRefused) as refused:
        books.ledger.import_bookings(rows, recorded_by="clerk")
    ((conflict,),) = [refused.value.conflicts]
    assert conflict.index == 1 and isinstance(conflict.error, CostsBookedDirectly)
    assert books.ledger.max_notification_id() > before  # the allocation run only
    assert books.ledger._find("BG-1") is None


def test_a_storno_in_the_period_of_a_booking_of_a_closed_one_does_not_stop_a_rerun(books):
    """Correcting a closed quarter books the Storno into the open one, where a run may be in force:
    the correction belongs to the closed quarter's figure, so the run may still be rerun."""
    books.ledger.record_booking(
        booking("PK-1", category="vwk.personal", amount_cents=100_000, **IN_MARCH), recorded_by="clerk"
    )
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    run(books, quarter=2, shared=[])
    storno = books.ledger.reverse_booking("PK-1", reason="falsch", reversed_by="head", on=date(2025, 5, 20))
    assert (storno.fiscal_year, storno.quarter) == (2025, 2)
    assert run(books, quarter=2, shared=[]).number == 2
    with pytest.raises(CostsBookedDirectly, match="KOA-2025-Q2-L2"):  # a cost by hand is still refused
        books.ledger.record_booking(booking("PK-2", category="vwk.personal", **IN_MAY), recorded_by="clerk")


def test_a_booking_by_hand_stored_while_a_run_is_decided_makes_the_run_refuse(books, settings, monkeypatch):
    """The other side of the race: the run reads the split view without the booking, the booking is
    stored before the run is; the run's save looks at what was recorded since, decides again and
    refuses, naming the booking."""

    def book_by_hand(other):
        other.ledger.record_booking(
            booking("PK-1", category="vwk.personal", amount_cents=410_000, **IN_MAY), recorded_by="clerk"
        )

    raced = meanwhile(monkeypatch, settings, ac, "check_no_overlap", book_by_hand)
    with pytest.raises(CostsBookedDirectly, match=r"vwk.personal 4.100,00 € \(PK-1\)"):
        run(books, quarter=2, shared=[])
    assert raced[0][1:] == (2025, 2)
    with pytest.raises(NotFound):
        ac.get_allocation(books, 2025, 2)


def test_an_approval_moving_a_booking_by_hand_into_the_period_while_a_run_is_decided_makes_it_refuse(
    books, settings, monkeypatch
):
    """The race through an approval: a booking awaiting approval in a quarter closed since counts,
    approved, in the approval's quarter; approved there while that quarter's run is decided, the
    run decides again and refuses, naming it."""
    books.ledger.record_booking(  # above the approval threshold
        booking("PK-1", category="vwk.personal", amount_cents=2_000_000, **IN_MARCH), recorded_by="clerk"
    )
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")

    def approve_in_may(other):
        other.ledger.approve_booking("PK-1", approved_by="approver", on=date(2025, 5, 20))

    raced = meanwhile(monkeypatch, settings, ac, "check_no_overlap", approve_in_may)
    with pytest.raises(CostsBookedDirectly, match=r"vwk.personal 20.000,00 € \(PK-1\)"):
        run(books, quarter=2, shared=[])
    assert raced and books.ledger.get_booking("PK-1").quarter == 2


def test_a_booking_by_hand_of_another_period_or_type_stored_meanwhile_does_not_stop_the_run(
    books, settings, monkeypatch
):
    def other_bookings(other):
        for key, category, when in (
            ("PK-8", "vwk.personal", IN_AUGUST),
            ("INV-1", "vwk.investitionen", IN_MAY),
            ("BG-1", "buergergeld", IN_MAY),
        ):
            other.ledger.record_booking(booking(key, category=category, **when), recorded_by="clerk")

    raced = meanwhile(monkeypatch, settings, ac, "check_no_overlap", other_bookings)
    assert run(books, quarter=2, shared=[]).number == 1
    assert len(raced) == 1  # decided once: nothing to decide again


def test_a_view_emptied_for_a_rebuild_while_a_run_is_decided_hides_nothing_from_it(
    books, settings, monkeypatch
):
    """A rebuild empties the split view, then refills it from the log. A run that read the view in
    between would see neither the costs booked directly (reported beside it) nor the bookings by
    hand of its types (refused). It reads the view again until it holds what the run caught up to."""
    for key, category in (("INV-1", "vwk.investitionen"), ("PK-1", "vwk.personal")):
        books.ledger.record_booking(
            booking(key, category=category, amount_cents=300_000, **IN_MAY), recorded_by="clerk"
        )
    empty_view = meanwhile(
        monkeypatch, settings, ac, "check_no_overlap", lambda o: o.split_view.reset(o.ledger.name)
    )
    with pytest.raises(CostsBookedDirectly, match=r"vwk.personal 3.000,00 € \(PK-1\)"):
        run(books, quarter=2, shared=[])
    assert empty_view
    books.ledger.reverse_booking("PK-1", reason="gehört in die Kostenaufteilung", reversed_by="clerk")
    empty_view = meanwhile(
        monkeypatch, settings, ac, "check_no_overlap", lambda o: o.split_view.reset(o.ledger.name)
    )
    outcome = run(books, quarter=2, shared=[])
    assert empty_view and outcome.number == 1
    assert outcome.allocation.direct_cents == {"vwk.investitionen": 300_000}


def test_an_approval_that_moves_a_booking_by_hand_into_a_period_with_a_run_in_force_is_refused(books):
    """A booking awaiting approval whose own quarter is closed counts, once approved, in the quarter
    of the approval: where a run books its cost type, that would count twice."""
    ledger = books.ledger
    ledger.record_booking(  # above the approval threshold
        booking("PK-1", category="vwk.personal", amount_cents=2_000_000, **IN_MARCH), recorded_by="clerk"
    )
    ledger.close_period(year=2025, quarter=1, closed_by="head")
    run(books, quarter=2, shared=[])
    with pytest.raises(CostsBookedDirectly) as e:
        ledger.approve_booking("PK-1", approved_by="approver", on=date(2025, 5, 20))
    assert e.value.field == "on"
    assert e.value.reason == (
        "approved now, PK-1 would count in 2025 Q2 (its own period 2025 Q1 is closed), where the cost "
        "allocation run KOA-2025-Q2-L1 in force books vwk.personal: it would count twice; withdraw it "
        "(koa reverse PK-1) and put the cost into the run's input"
    )
    with pytest.raises(ApprovalsRefused) as batch:  # in a Sammelanordnung: named by its kind
        ledger.approve_bookings(["PK-1"], approved_by="approver", on=date(2025, 5, 20))
    assert [r.kind for r in batch.value.refusals] == ["costs-booked-directly"]
    assert ledger.get_booking("PK-1").state == "awaiting_approval"
    # Approved in a quarter without a run, it is let through.
    ledger.approve_booking("PK-1", approved_by="approver", on=date(2025, 8, 20))
    assert (ledger.get_booking("PK-1").fiscal_year, ledger.get_booking("PK-1").quarter) == (2025, 3)


# ---- a year run and quarterly runs of the same year never both count -------------------------


def reverse_run(books, out):
    for key in out.booked_keys:
        books.ledger.reverse_booking(
            key, reason="Lauf zurückgenommen", reversed_by="head", on=date(2025, 12, 31)
        )


def test_a_year_run_is_refused_while_a_quarterly_run_of_the_year_is_in_force(books):
    q1 = run(books, quarter=1, shared=[])
    before = books.ledger.max_notification_id()
    with pytest.raises(OverlappingAllocation) as e:
        run(books)
    assert e.value.field == "quarter"
    assert "quarterly cost allocation runs of 2025 are in force (KOA-2025-Q1-L1)" in e.value.reason
    assert "count the Verwaltungskosten twice" in e.value.reason
    assert books.ledger.max_notification_id() == before  # nothing written
    with pytest.raises(NotFound):
        ac.get_allocation(books, 2025, YEAR)
    assert run(books, quarter=2, shared=[]).number == 1  # quarters do not overlap one another
    # Out of force once its bookings are reversed: the year may then be run instead of the quarters.
    reverse_run(books, q1)
    with pytest.raises(OverlappingAllocation, match=r"in force \(KOA-2025-Q2-L1\)"):
        run(books)


def test_a_quarterly_run_is_refused_while_the_year_run_is_in_force(books):
    year = run(books)
    with pytest.raises(OverlappingAllocation) as e:
        run(books, quarter=3, shared=[])
    assert e.value.field == "quarter"
    assert "the cost allocation run for the whole year 2025 is in force (KOA-2025-J-L1)" in e.value.reason
    assert "a run for 2025 Q3 would count the Verwaltungskosten twice" in e.value.reason
    rerun = run(books)  # a rerun of the year replaces the year run, as before
    assert (year.number, rerun.number) == (1, 2)
    ac.approve_allocation(books, year=2025, quarter=YEAR, by="approver", on=date(2025, 12, 31))
    assert vwk_net(books) == YEAR_RESULTS  # counted once
    reverse_run(books, rerun)
    assert run(books, quarter=3, shared=[]).number == 1  # the year is out of force


def test_a_quarterly_run_stored_while_a_year_run_is_decided_makes_the_year_run_refuse(
    books, settings, monkeypatch
):
    """The race: both decide on books without the other; the year run's save finds a booking of the
    quarter's run stored meanwhile, decides again and refuses instead of both being booked."""
    raced = meanwhile(monkeypatch, settings, ac, "check_no_overlap", lambda o: run(o, quarter=1, shared=[]))
    with pytest.raises(OverlappingAllocation, match=r"KOA-2025-Q1-L1"):
        run(books)
    assert raced[0][1:] == (2025, YEAR)
    with pytest.raises(NotFound):
        ac.get_allocation(books, 2025, YEAR)
    assert ac.get_allocation(books, 2025, 1).runs == 1


def test_a_run_whose_booking_key_is_taken_by_hand_is_refused_naming_the_key(books):
    d = dict(
        payment_date=date(2025, 3, 5),
        service_from=date(2025, 3, 1),
        service_to=date(2025, 3, 31),
        case_ref="",
    )
    books.ledger.record_booking(
        booking("KOA-2025-Q1-L1-sachkosten", category="vwk.sachkosten", amount_cents=10_000, **d),
        recorded_by="clerk",
    )
    before = books.ledger.max_notification_id()
    with pytest.raises(KeyConflict) as e:  # was: IntegrityError, retried and "try again" for ever
        run(books, quarter=1, shared=[])
    assert e.value.field == "key"
    assert (
        "'KOA-2025-Q1-L1-sachkosten' of cost allocation run KOA-2025-Q1-L1 is already taken" in e.value.reason
    )
    assert books.ledger.max_notification_id() == before
    with pytest.raises(NotFound):
        ac.get_allocation(books, 2025, 1)
    assert run(books, quarter=2, shared=[]).number == 1  # other periods are not affected


# ---- CSV files ----------------------------------------------------------------------------------


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_staff_and_shared_files_with_decimal_comma_and_percent_shares(tmp_path):
    staff = read_staff(
        write(
            tmp_path / "staff.csv",
            "person_key;vzae;sgb2_share;personnel_costs;status;versorgungszuschlag",
            "B-1;1;100 %;60.000,00;Beamter;25.000,00",
            "T-2;0,5;60 %;30.000,01;beschaeftigter;",
            ";;;;;",
            "T-3;0,75;0,25;44.444,44;beschaeftigter;",
        )
    )
    assert staff == STAFF
    shared = read_shared(
        write(
            tmp_path / "shared.csv",
            "service,cost_type,amount,sgb2_key",
            "IT-Dienstleistung,vwk.sachkosten,10000.00,35 %",
            "Hausdruckerei,vwk.sonstige,1000.01,0.5",
            "Server,vwk.investitionen,2000,25%",
        )
    )
    assert shared == SHARED


def test_bad_cells_are_all_reported_as_file_line_and_field(tmp_path):
    path = write(
        tmp_path / "staff.csv",
        "person_key;vzae;sgb2_share;personnel_costs;status",
        "B-1;1;100 %;60.000,00;beamter",
        "T-2;eins;60 %;30.000,00;beschaeftigter",
        "T-3;0,5;150 %;1.234,567;beschaeftigter",
        "T-4;0,5;50 %;1.000,00;",
    )
    with pytest.raises(InputError) as e:
        read_staff(path)
    assert [er.field for er in e.value.errors] == [
        f"{path}:line 3: vzae",
        f"{path}:line 4: sgb2_share",
        f"{path}:line 5: status",
    ]
    assert "not a number: 'eins'" in str(e.value)


@pytest.mark.parametrize("cell", ["NaN", "Infinity", "-0,5", "0", "sNaN"])
def test_a_vzae_cell_that_is_no_positive_share_is_reported(tmp_path, cell):
    path = write(
        tmp_path / "staff.csv",
        "person_key;vzae;sgb2_share;personnel_costs;status",
        f"T-1;{cell};50 %;1.000,00;beschaeftigter",
    )
    with pytest.raises(InputError) as e:
        read_staff(path)
    assert [er.field for er in e.value.errors] == [f"{path}:line 2: vzae"]


def test_a_file_with_a_wrong_header_is_refused(tmp_path):
    with pytest.raises(RunFileError) as e:
        read_staff(
            write(
                tmp_path / "staff.csv", "person_key;vzae;anteil;personnel_costs;status", "T-1;1;1;1;beamter"
            )
        )
    assert "missing sgb2_share" in str(e.value) and "unknown anteil" in str(e.value)
    with pytest.raises(RunFileError):
        read_shared(tmp_path / "fehlt.csv")


# ---- command line -----------------------------------------------------------------------------


def test_allocation_cli_run_approve_show_with_exit_codes(koa, tmp_path: Path):
    staff = write(
        tmp_path / "staff.csv",
        "person_key;vzae;sgb2_share;personnel_costs;status;versorgungszuschlag",
        "B-1;1;100 %;60.000,00;beamter;25.000,00",
        "T-2;0,5;60 %;30.000,01;beschaeftigter;",
        "T-3;0,75;25 %;44.444,44;beschaeftigter;",
    )
    shared = write(
        tmp_path / "shared.csv",
        "service;cost_type;amount;sgb2_key",
        "IT-Dienstleistung;vwk.sachkosten;10.000,00;35 %",
    )
    assert koa("allocation", "show", "--year", 2025, "--quarter", 2).exit_code == 1  # no run yet
    first = koa(
        "allocation",
        "run",
        "--year",
        2025,
        "--quarter",
        2,
        "--staff",
        staff,
        "--shared",
        shared,
        "--user",
        "runner",
    )
    assert first.exit_code == 0, first.output
    assert "cost allocation 2025 Q2 run 1: 3 staff records" in first.stdout
    assert "vwk.versorgungszuschlag" in first.stdout and "18.000,00 €" in first.stdout
    assert "vwk.sachkosten" in first.stdout and "7.962,50 €" in first.stdout  # 4.462,50 + 3.500,00
    own = koa("allocation", "approve", "--year", 2025, "--quarter", 2, "--user", "runner")
    assert own.exit_code == 1 and "four eyes" in own.stderr
    ok = koa("allocation", "approve", "--year", 2025, "--quarter", 2, "--user", "approver")
    assert ok.exit_code == 0 and ok.stdout.startswith("3 bookings approved: ")
    second = koa("allocation", "run", "--year", 2025, "--quarter", 2, "--staff", staff, "--user", "runner")
    assert second.exit_code == 0 and "replaces run 1: 5 bookings reversed" in second.stdout
    shown = koa("allocation", "show", "--year", 2025, "--quarter", 2)
    assert shown.exit_code == 0
    assert "run 1 (replaced, reversed)" in shown.stdout and "run 2 (in force)" in shown.stdout
    assert shown.stdout.count("recomputed: equal") == 2 and "DIFFERENT" not in shown.stdout
    bad = write(
        tmp_path / "bad.csv", "person_key;vzae;sgb2_share;personnel_costs;status", "T-1;1;1;x;beamter"
    )
    refused = koa("allocation", "run", "--year", 2025, "--quarter", 3, "--staff", bad)
    assert refused.exit_code == 1 and f"{bad}:line 2: personnel_costs" in refused.stderr
    assert koa("close", "--year", 2025, "--quarter", 1, "--user", "head").exit_code == 0
    closed = koa("allocation", "run", "--year", 2025, "--quarter", 1, "--staff", staff)
    assert closed.exit_code == 1 and "2025 Q1: the period is closed" in closed.stderr
    year = koa("allocation", "run", "--year", 2025, "--staff", staff)
    assert year.exit_code == 1 and year.stdout == ""
    assert "quarter: quarterly cost allocation runs of 2025 are in force (KOA-2025-Q2-L2)" in year.stderr
