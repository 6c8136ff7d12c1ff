"""Budgets on both stores: allocation, shifts between the titles (Deckungsfähigkeit), the plan per
instrument, the budget status to the cent, and EGT spending beyond the budget in the split."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from domain.booking import Kind
from domain.budget import BudgetExceeded, budget_id
from domain.errors import StateRefused, ValidationError
from ledger import budget_commands as bc
from projections.split_projection import catch_up
from projections.split_queries import booking_shares, split_lines
from tests.factories import booking
from tests.races import meanwhile

EGT_2025 = 3_000_000  # 30.000,00 €


def allocate(books, cents, title="egt", year=2025, ref="ZS-2025-1"):
    return bc.allocate(
        books, year=year, title=title, amount_cents=cents, reference=ref, reason="Zuteilung", by="head"
    )


def shift(books, cents, from_title="egt", to_title="vwk", year=2025):
    return bc.shift(
        books,
        year=year,
        from_title=from_title,
        to_title=to_title,
        amount_cents=cents,
        reason="Deckung",
        by="head",
    )


def pay(
    books,
    key,
    cents,
    category="egt.aktivierung",
    month=2,
    *,
    year=2025,
    contract="",
    kind=Kind.PAYMENT,
    approve=True,
):
    d = date(year, month, 10)
    content = booking(
        key,
        amount_cents=cents,
        category=category,
        kind=kind,
        payment_date=d,
        service_from=d.replace(day=1),
        service_to=d.replace(day=28),
        contract_ref=contract,
    )
    posted = books.ledger.record_booking(content, recorded_by="clerk")
    if approve and posted.booking.state == "awaiting_approval":
        books.ledger.approve_booking(key, approved_by="approver")
    return posted.booking


def commit(books, ref, slices, instrument="egt.aktivierung"):
    return bc.make_commitment(
        books,
        contract_ref=ref,
        instrument=instrument,
        provider="Bildungsträger GmbH",
        slices_cents=slices,
        reason="Vertrag",
        by="head",
    )[0]


def lines(books, year=2025, quarter=None):
    catch_up(books.ledger, books.split_view)
    return split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", year, quarter)


def line(lines_, quarter, category):
    return next(s for s in lines_ if s.quarter == quarter and s.category == category)


# ---- allocation ---------------------------------------------------------------------------


def test_a_later_allocation_replaces_the_earlier(books):
    allocate(books, 100_000_000)
    budget = allocate(books, 120_000_000, ref="ZS-2025-2")
    assert budget.allocated_cents["egt"] == 120_000_000
    assert bc.status(books, 2025).title("egt").allocated_cents == 120_000_000
    events = [e for e in books.ledger.events.get(budget_id(2025)) if type(e).__name__ == "Allocated"]
    assert [(e.amount_cents, e.previous_cents, e.reference, e.allocated_by) for e in events] == [
        (100_000_000, 0, "ZS-2025-1", "head"),
        (120_000_000, 100_000_000, "ZS-2025-2", "head"),
    ]
    assert bc.status(books, 2025).title("vwk").allocated_cents is None  # the other title untouched


def test_lowering_the_allocation_below_what_is_bound_or_spent_is_refused_naming_the_available(books):
    allocate(books, 100_000_000)  # 1.000.000,00
    commit(books, "V-1", {2025: 60_000_000})
    pay(books, "E-1", 10_000_000, category="egt.weiterbildung")  # approved: counts
    assert bc.status(books, 2025).title("egt").available_cents == 30_000_000
    with pytest.raises(BudgetExceeded) as e:
        allocate(books, 69_999_999, ref="ZS-2025-2")
    assert e.value.field == "amount"
    assert "300.000,01" in str(e.value) and "only 300.000,00 € are available" in str(e.value)
    assert books.ledger.budget_as_of(2025).allocated_cents["egt"] == 100_000_000  # nothing written
    allocate(books, 70_000_000, ref="ZS-2025-2")  # down to exactly nothing available
    assert bc.status(books, 2025).title("egt").available_cents == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(title="egt.x"), "title"),
        (dict(amount_cents=-1), "amount"),
        (dict(reference=""), "reference"),
        (dict(reason=" "), "reason"),
        (dict(by=""), "allocated_by"),
        (dict(year=2004), "year"),
    ],
)
def test_an_allocation_with_a_bad_field_is_refused_naming_it(books, change, field):
    args = dict(year=2025, title="egt", amount_cents=1_000, reference="ZS-1", reason="Zuteilung", by="head")
    with pytest.raises(ValidationError) as e:
        bc.allocate(books, **(args | change))
    assert e.value.field == field
    assert books.ledger.budget_as_of(2025) is None


# ---- shifts (Deckungsfähigkeit) -------------------------------------------------------------


def test_shifts_out_of_a_title_are_limited_to_ten_percent_of_its_allocation_cumulative_net(books):
    allocate(books, 100_000_000)  # egt 1.000.000,00: at most 100.000,00 may leave it
    allocate(books, 50_000_000, title="vwk")
    shift(books, 6_000_000)
    shift(books, 4_000_000)
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 1)
    assert e.value.field == "amount"
    msg = str(e.value)
    assert "at most 100.000,00 € (10 % of its allocation)" in msg
    assert "100.000,00 € are shifted already, so at most 0,00 € more" in msg
    # Money shifted back counts against what left: the limit is on the net.
    shift(books, 3_000_000, from_title="vwk", to_title="egt")
    shift(books, 3_000_000)
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 1)
    st = bc.status(books, 2025)
    assert (st.title("egt").shifted_cents, st.title("vwk").shifted_cents) == (-10_000_000, 10_000_000)
    assert st.title("egt").available_cents == 90_000_000
    assert st.title("vwk").available_cents == 60_000_000


def test_the_limit_names_what_is_left_after_earlier_shifts(books):
    allocate(books, 100_000_000)
    allocate(books, 50_000_000, title="vwk")
    shift(books, 2_500_000)
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 7_500_001)
    assert "25.000,00 € are shifted already, so at most 75.000,00 € more" in str(e.value)
    shift(books, 7_500_000)  # exactly the limit


def test_a_shift_beyond_what_the_giving_title_has_available_is_refused(books):
    allocate(books, 100_000_000)
    allocate(books, 50_000_000, title="vwk")
    commit(books, "V-1", {2025: 95_000_000})  # 50.000,00 left in egt, below the 100.000,00 limit
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 5_000_001)
    assert "has only 50.000,00 € available" in str(e.value)
    shift(books, 5_000_000)
    assert bc.status(books, 2025).title("egt").available_cents == 0


def test_a_shift_without_an_allocation_or_within_one_title_is_refused(books):
    allocate(books, 50_000_000, title="vwk")
    with pytest.raises(StateRefused) as e:
        shift(books, 1_000)  # from egt, which has no allocation
    assert e.value.field == "from" and "no allocation yet" in str(e.value)
    with pytest.raises(ValidationError) as e:
        shift(books, 1_000, from_title="vwk", to_title="vwk")
    assert e.value.field == "to"
    with pytest.raises(ValidationError) as e:
        shift(books, 1_000, from_title="vwk", to_title="kdu")
    assert e.value.field == "to"
    with pytest.raises(ValidationError) as e:
        shift(books, 0, from_title="vwk", to_title="egt")
    assert e.value.field == "amount"
    assert books.ledger.budget_as_of(2025).shifted_in_cents == {"egt": 0, "vwk": 0}


def test_changing_the_limit_parameter_changes_what_may_be_shifted(books):
    allocate(books, 100_000_000)
    allocate(books, 50_000_000, title="vwk")

    def set_limit(value, year=2025):
        books.ledger.set_parameter(
            name="deckungsfaehigkeit_limit",
            year=year,
            value=Decimal(value),
            land="",
            reason="Erlass",
            set_by="admin",
        )

    set_limit("0.05")
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 5_000_001)
    assert "at most 50.000,00 € (5 % of its allocation)" in str(e.value)
    set_limit("0.2", year=2026)  # a later year's value does not apply to 2025
    with pytest.raises(BudgetExceeded):
        shift(books, 5_000_001)
    set_limit("0.15")
    shift(books, 15_000_000)
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 1)
    assert "(15 % of its allocation)" in str(e.value)
    set_limit("0.10")  # back to the default: what was shifted stays, nothing more may leave
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 1)
    assert "150.000,00 € are shifted already, so at most 0,00 € more" in str(e.value)


def test_an_allocation_lowered_below_what_its_shifts_out_need_is_refused_until_money_is_shifted_back(books):
    allocate(books, 100_000_000)  # egt 1.000.000,00
    allocate(books, 50_000_000, title="vwk")
    shift(books, 8_000_000)  # 80.000,00 out of egt: within 10 % of 1.000.000,00
    # The Bund lowers egt to 700.000,00: 10 % of it is 70.000,00, less than what already left it.
    with pytest.raises(BudgetExceeded) as e:
        allocate(books, 70_000_000, ref="ZS-2025-2")
    assert e.value.field == "amount"
    assert "80.000,00 € are shifted out of the Eingliederungsbudget 2025" in str(e.value)
    assert "more than 10 % of 700.000,00 € (70.000,00 €)" in str(e.value)
    assert books.ledger.budget_as_of(2025).allocated_cents["egt"] == 100_000_000  # nothing written
    allocate(books, 80_000_000, ref="ZS-2025-2")  # 10 % of 800.000,00 is exactly what left
    shift(books, 1_000_000, from_title="vwk", to_title="egt")  # 10.000,00 back: 70.000,00 out, net
    allocate(books, 70_000_000, ref="ZS-2025-3")
    assert bc.status(books, 2025).title("egt").allocated_cents == 70_000_000
    # The receiving title may be lowered freely: money shifted into it does not count against it.
    allocate(books, 10_000_000, title="vwk", ref="ZS-2025-4")


def test_the_verwaltungsbudget_is_charged_with_the_bunds_share_of_the_verwaltungskosten(books):
    allocate(books, 100_000_000)
    allocate(books, 11_000_000, title="vwk")  # vwk 110.000,00
    pay(books, "V-1", 10_000_000, category="vwk.personal")  # 100.000,00 spent: the Bund's 87.400,00
    pay(books, "V-2", 2_000_000, category="vwk.sachkosten", month=5, approve=False)  # awaiting: 17.480,00
    st = bc.status(books, 2025).title("vwk")
    assert (st.committed_cents, st.spent_cents, st.federal_share_cents) == (2_000_000, 10_000_000, 10_488_000)
    # 120.000,00 € of costs, more than the 110.000,00 € allocated: but the Bund pays 104.880,00 € of them.
    assert st.available_cents == 11_000_000 - 10_488_000 == 512_000
    assert st.beyond_budget_cents == 0  # the split caps only the Eingliederungsbudget
    # The 5.120,00 € of federal money left may go to egt (the limit, 10 %, would allow 11.000,00).
    with pytest.raises(BudgetExceeded) as e:
        shift(books, 512_001, from_title="vwk", to_title="egt")
    assert "has only 5.120,00 € available" in str(e.value)
    shift(books, 512_000, from_title="vwk", to_title="egt")
    assert bc.status(books, 2025).title("vwk").available_cents == 0
    # The share on file for the year decides what the title is charged with.
    books.ledger.set_parameter(
        name="vwk_federal_share",
        year=2025,
        value=Decimal("0.848"),
        land="",
        reason="§ 46 Abs. 3",
        set_by="admin",
    )
    st = bc.status(books, 2025).title("vwk")
    assert st.federal_share_cents == 8_480_000 + 1_696_000
    assert st.available_cents == 11_000_000 - 512_000 - 10_176_000 == 312_000


# ---- plan ------------------------------------------------------------------------------------


def test_the_plan_is_per_eingliederung_instrument_and_a_later_plan_replaces_it(books):
    bc.plan(books, year=2025, instrument="egt.aktivierung", amount_cents=40_000_000, reason="Plan", by="head")
    bc.plan(
        books, year=2025, instrument="egt.weiterbildung", amount_cents=15_000_000, reason="Plan", by="head"
    )
    bc.plan(
        books, year=2025, instrument="egt.aktivierung", amount_cents=35_000_000, reason="Nachtrag", by="head"
    )
    st = bc.status(books, 2025)
    assert st.instrument("egt.aktivierung").planned_cents == 35_000_000
    assert st.title("egt").planned_cents == 50_000_000
    assert st.title("egt").allocated_cents is None  # a plan is no allocation


@pytest.mark.parametrize("code", ["kdu", "vwk.personal", "egt.gibt_es_nicht"])
def test_a_plan_for_anything_but_a_known_eingliederung_instrument_is_refused_naming_the_field(books, code):
    with pytest.raises(ValidationError) as e:
        bc.plan(books, year=2025, instrument=code, amount_cents=1_000, reason="Plan", by="head")
    assert e.value.field == "instrument"
    assert books.ledger.budget_as_of(2025) is None


# ---- budget status ------------------------------------------------------------------------


def test_budget_status_per_title_and_instrument_to_the_cent(books):
    allocate(books, 100_000_000)  # egt 1.000.000,00
    allocate(books, 50_000_000, title="vwk")  # vwk 500.000,00
    shift(books, 2_000_000, from_title="vwk", to_title="egt")  # 20.000,00 into egt
    bc.plan(books, year=2025, instrument="egt.aktivierung", amount_cents=40_000_000, reason="Plan", by="head")
    bc.plan(
        books, year=2025, instrument="egt.weiterbildung", amount_cents=15_000_000, reason="Plan", by="head"
    )
    commit(books, "AGH-1", {2025: 30_000_000, 2026: 10_000_000})
    pay(books, "A-1", 999_999, contract="AGH-1")  # 9.999,99 below the threshold: counts at once
    pay(books, "A-2", 1_234_567, contract="AGH-1", month=5)  # 12.345,67: counts once approved
    pay(books, "W-1", 500_000, category="egt.weiterbildung")
    pay(books, "W-2", 123_456, category="egt.weiterbildung", kind=Kind.RECEIPT, month=3)  # reduces spending
    pay(books, "W-3", 5_000_000, category="egt.weiterbildung", approve=False)  # awaiting: bound, not spent
    pay(books, "S-1", 800_000, category="vwk.sachkosten")
    pay(books, "K-1", 700_000, category="kdu")  # not a budget title
    st = bc.status(books, 2025)
    egt, vwk = st.title("egt"), st.title("vwk")
    assert (egt.planned_cents, egt.allocated_cents, egt.shifted_cents) == (55_000_000, 100_000_000, 2_000_000)
    # Committed: what the commitment still binds, plus W-3 which waits for approval.
    assert egt.committed_cents == 30_000_000 - 999_999 - 1_234_567 + 5_000_000 == 32_765_434
    assert egt.spent_cents == 999_999 + 1_234_567 + 500_000 - 123_456 == 2_611_110
    assert egt.available_cents == 102_000_000 - 32_765_434 - 2_611_110 == 66_623_456
    akt, wb = st.instrument("egt.aktivierung"), st.instrument("egt.weiterbildung")
    assert (akt.planned_cents, akt.committed_cents, akt.spent_cents, akt.available_cents) == (
        40_000_000,
        27_765_434,
        2_234_566,
        10_000_000,
    )
    assert (wb.planned_cents, wb.committed_cents, wb.spent_cents, wb.available_cents) == (
        15_000_000,
        5_000_000,
        376_544,
        9_623_456,
    )
    assert (vwk.planned_cents, vwk.allocated_cents, vwk.shifted_cents) == (None, 50_000_000, -2_000_000)
    # The Verwaltungsbudget is charged with the Bund's share of the Verwaltungskosten only.
    assert (vwk.committed_cents, vwk.spent_cents, vwk.federal_share_cents) == (0, 800_000, 699_200)
    assert vwk.available_cents == 48_000_000 - 699_200 == 47_300_800
    assert egt.federal_share_cents is None
    assert egt.beyond_budget_cents == 0
    # The later year's slice is a Verpflichtungsermächtigung: bound there, nothing allocated yet.
    later = bc.status(books, 2026).title("egt")
    assert (later.allocated_cents, later.committed_cents, later.spent_cents) == (None, 10_000_000, 0)


def test_budget_cli_allocate_shift_plan_status_with_exit_codes(koa, tmp_path: Path):
    ok = koa(
        "budget",
        "allocate",
        "--year",
        2025,
        "--title",
        "egt",
        "--amount",
        "1.000.000,00",
        "--reference",
        "ZS-1",
        "--reason",
        "Zuteilung",
        "--user",
        "head",
    )
    assert ok.exit_code == 0, ok.output
    assert "allocated 1.000.000,00 €" in ok.stdout
    assert (
        koa(
            "budget",
            "allocate",
            "--year",
            2025,
            "--title",
            "vwk",
            "--amount",
            "500.000,00",
            "--reference",
            "ZS-2",
            "--reason",
            "Zuteilung",
        ).exit_code
        == 0
    )
    refused = koa(
        "budget",
        "shift",
        "--year",
        2025,
        "--from",
        "egt",
        "--to",
        "vwk",
        "--amount",
        "100.000,01",
        "--reason",
        "Deckung",
    )
    assert refused.exit_code == 1
    assert "at most 100.000,00 €" in refused.stderr
    ok = koa(
        "budget",
        "shift",
        "--year",
        2025,
        "--from",
        "egt",
        "--to",
        "vwk",
        "--amount",
        "100.000,00",
        "--reason",
        "Deckung",
    )
    assert ok.exit_code == 0, ok.output
    bad = koa("budget", "plan", "--year", 2025, "--instrument", "kdu", "--amount", "1,00", "--reason", "Plan")
    assert bad.exit_code == 1 and "instrument" in bad.stderr
    assert (
        koa(
            "budget",
            "plan",
            "--year",
            2025,
            "--instrument",
            "egt.aktivierung",
            "--amount",
            "250.000,00",
            "--reason",
            "Plan",
        ).exit_code
        == 0
    )
    out = tmp_path / "status.csv"
    st = koa("budget", "status", "--year", 2025, "--csv", out)
    assert st.exit_code == 0, st.output
    with out.open(encoding="utf-8", newline="") as f:
        rows = {(r["title"], r["instrument"]): r for r in csv.DictReader(f, delimiter=";")}
    assert rows[("1101/685 11", "")]["available_cents"] == "90000000"
    assert rows[("1101/636 13", "")]["shifted_cents"] == "10000000"
    assert rows[("1101/636 13", "")]["available_cents"] == "60000000"
    assert rows[("1101/685 11", "egt.aktivierung")]["planned_cents"] == "25000000"
    assert (
        koa(
            "budget",
            "allocate",
            "--year",
            2025,
            "--title",
            "egt",
            "--amount",
            "zehn",
            "--reference",
            "ZS-3",
            "--reason",
            "x",
        ).exit_code
        == 1
    )


# ---- EGT spending beyond the budget in the split ---------------------------------------------


def _egt_year(books):
    """Q1 15.000,00; Q2 17.333,34 (passes the 30.000,00 budget); Q3 500,00; plus KdU beside it."""
    pay(books, "A-Q1", 900_000, month=2)
    pay(books, "W-Q1", 600_000, category="egt.weiterbildung", month=3)
    pay(books, "A-Q2a", 600_000, month=4)
    pay(books, "A-Q2b", 400_001, month=5)
    pay(books, "W-Q2", 733_333, category="egt.weiterbildung", month=6)
    pay(books, "A-Q3", 50_000, month=8)
    pay(books, "K-Q2", 100_000, category="kdu", month=4)


def test_egt_spending_beyond_the_budget_is_municipal_in_quarter_order(books):
    _egt_year(books)
    allocate(books, EGT_2025)
    year = lines(books)
    for s in year:
        assert s.federal_cents + s.municipal_cents == s.net_cents
    assert (
        line(year, 1, "egt.aktivierung").federal_cents,
        line(year, 1, "egt.weiterbildung").federal_cents,
    ) == (
        900_000,
        600_000,
    )
    # Q2 crosses the budget: its 15.000,00 federal part is shared by net amount (largest remainder).
    q2a, q2w = line(year, 2, "egt.aktivierung"), line(year, 2, "egt.weiterbildung")
    assert (q2a.net_cents, q2a.federal_cents, q2a.municipal_cents) == (1_000_001, 865_385, 134_616)
    assert (q2w.net_cents, q2w.federal_cents, q2w.municipal_cents) == (733_333, 634_615, 98_718)
    assert "Eingliederungsbudget 2025 (30.000,00 €)" in q2a.rate_label
    q3 = line(year, 3, "egt.aktivierung")
    assert (q3.federal_cents, q3.municipal_cents) == (0, 50_000)  # later quarters: all municipal
    egt = [s for s in year if s.category.startswith("egt.")]
    assert sum(s.federal_cents for s in egt) == EGT_2025
    assert sum(s.municipal_cents for s in egt) == 1_500_000 + 1_733_334 + 50_000 - EGT_2025
    kdu = line(year, 2, "kdu")
    assert kdu.federal_cents == 72_500  # the KdU quota 2025, untouched by the cap
    # A quarter asked for alone is split as part of the year (the earlier quarters used the budget).
    assert lines(books, quarter=2) == [s for s in year if s.quarter == 2]
    assert lines(books, quarter=3) == [s for s in year if s.quarter == 3]
    st = bc.status(books, 2025).title("egt")
    assert st.beyond_budget_cents == 283_334


def test_booking_shares_of_a_capped_line_add_up_to_its_federal_share(books):
    _egt_year(books)
    allocate(books, EGT_2025)
    q2a = line(lines(books), 2, "egt.aktivierung")
    shares = booking_shares(
        books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 2, "egt.aktivierung"
    )
    assert [(b.row.booking_key, b.federal_cents) for b in shares] == [("A-Q2a", 519_230), ("A-Q2b", 346_155)]
    assert sum(b.federal_cents for b in shares) == q2a.federal_cents
    assert sum(b.municipal_cents for b in shares) == q2a.municipal_cents
    assert all(b.federal_cents + b.municipal_cents == b.net_cents for b in shares)
    q3 = booking_shares(
        books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 3, "egt.aktivierung"
    )
    assert [(b.federal_cents, b.municipal_cents) for b in q3] == [(0, 50_000)]


def test_a_storno_in_a_capped_line_cancels_its_original_exactly(books):
    _egt_year(books)
    pay(books, "A-Q2c", 298_897, month=5)
    pay(books, "A-Q2d", 34_461, month=5)
    books.ledger.reverse_booking("A-Q2c", reason="Doppelzahlung", reversed_by="clerk", on=date(2025, 5, 20))
    allocate(books, EGT_2025)
    q2a = line(lines(books), 2, "egt.aktivierung")
    assert (q2a.net_cents, q2a.federal_cents) == (1_034_462, 877_756)
    shares = booking_shares(
        books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 2, "egt.aktivierung"
    )
    # Shared by net amount apart, the pair got 253.618 and -253.619 cents. Now the original its own
    # share (2.988,97 × 877.756 / 1.034.462 = 2.536,18...), the Storno the negation, the others the rest.
    assert [(b.row.booking_key, b.federal_cents) for b in shares] == [
        ("A-Q2a", 509_109),
        ("A-Q2b", 339_406),
        ("A-Q2c", 253_618),
        ("A-Q2c/storno", -253_618),
        ("A-Q2d", 29_241),
    ]
    assert sum(b.federal_cents for b in shares) == q2a.federal_cents
    assert all(b.federal_cents + b.municipal_cents == b.net_cents for b in shares)


def test_a_shift_into_egt_raises_the_cap(books):
    _egt_year(books)
    allocate(books, EGT_2025)
    allocate(books, 10_000_000, title="vwk")
    shift(books, 250_000, from_title="vwk", to_title="egt")  # budget 32.500,00
    year = lines(books)
    assert line(year, 2, "egt.aktivierung").federal_cents == 1_000_001  # Q2 all federal now
    assert line(year, 2, "egt.weiterbildung").federal_cents == 733_333
    q3 = line(year, 3, "egt.aktivierung")
    assert (q3.federal_cents, q3.municipal_cents) == (16_666, 33_334)
    assert sum(s.federal_cents for s in year if s.category.startswith("egt.")) == 3_250_000


def test_receipts_that_bring_spending_back_under_the_budget_give_back_to_the_bund(books):
    _egt_year(books)
    allocate(books, EGT_2025)
    pay(books, "R-Q4", 400_000, month=11, kind=Kind.RECEIPT)  # cumulative 28.833,34: under the budget
    year = lines(books)
    q4 = line(year, 4, "egt.aktivierung")
    assert (q4.net_cents, q4.federal_cents, q4.municipal_cents) == (-400_000, -116_666, -283_334)
    assert sum(s.federal_cents for s in year if s.category.startswith("egt.")) == 2_883_334
    assert sum(s.municipal_cents for s in year if s.category.startswith("egt.")) == 0


def test_receipts_that_take_the_year_below_zero_are_the_bunds_with_a_budget_on_file_too(books):
    pay(books, "R-Q1", 10_000, month=2, kind=Kind.RECEIPT)  # a refund only: the year is at -100,00
    pay(books, "A-Q2", 5_000, month=5)
    without = [(s.quarter, s.federal_cents, s.municipal_cents) for s in lines(books)]
    assert without == [(1, -10_000, 0), (2, 5_000, 0)]
    allocate(books, 100_000_000)  # a budget far above the spending changes nothing
    year = lines(books)
    assert [(s.quarter, s.federal_cents, s.municipal_cents) for s in year] == without
    assert lines(books, quarter=2) == [s for s in year if s.quarter == 2]
    shares = booking_shares(
        books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 1, "egt.aktivierung"
    )
    assert [(b.row.booking_key, b.federal_cents, b.municipal_cents) for b in shares] == [("R-Q1", -10_000, 0)]


def test_without_a_budget_on_file_eingliederung_is_federal_in_full(books):
    _egt_year(books)
    allocate(books, 50_000_000, title="vwk")  # only the Verwaltungsbudget is on file
    commit(books, "VE-2026", {2026: 9_000_000})  # a budget aggregate for 2026, but no allocation
    pay(books, "A-2026", 20_000_000, year=2026, month=3)
    for s in lines(books) + lines(books, year=2026):
        if s.category.startswith("egt."):
            assert (s.federal_cents, s.municipal_cents) == (s.net_cents, 0), s
            assert "Bund 100 %" in s.rate_label


def test_a_report_as_of_before_the_allocation_shows_the_split_as_it_was(books):
    _egt_year(books)
    before = datetime.now(UTC)
    allocate(books, EGT_2025)
    catch_up(books.ledger, books.split_view)
    cat, view = books.ledger.catalogue, books.split_view
    then = split_lines(view, cat, books.ledger.rates_as_of(before), "BW", 2025)
    now = split_lines(view, cat, books.ledger.rates_as_of(None), "BW", 2025)
    assert line(then, 3, "egt.aktivierung").federal_cents == 50_000
    assert line(now, 3, "egt.aktivierung").federal_cents == 0


def test_explain_of_a_capped_line_reads_its_rows_and_its_figure_in_one_state(
    books, store, settings, monkeypatch
):
    """With the cap, `koa audit explain` reads the line's bookings and then the capped figure they
    share. Read live, a payment made in an earlier quarter by another process in between lowered
    the figure the rows shared: shares of one state, sum of another. Now both from one snapshot."""
    from click.testing import CliRunner

    from ledger.cli import main
    from projections.split_view import SplitViewQueries

    for k, v in store.items():
        monkeypatch.setenv(k, v)
    _egt_year(books)
    allocate(books, EGT_2025)

    def another_payment(other):
        pay(other, "A-Q1-DURING", 500_000, month=3)  # uses up more of the budget before Q2
        catch_up(other.ledger, other.split_view)

    paid = meanwhile(monkeypatch, settings, SplitViewQueries, "bookings", another_payment)
    explained = CliRunner().invoke(
        main, ["audit", "explain", "--year", "2025", "--quarter", "2", "--category", "egt.aktivierung"]
    )
    assert explained.exit_code == 0, explained.output
    assert paid
    rows = explained.stdout.splitlines()
    # as in test_booking_shares_of_a_capped_line_add_up_to_its_federal_share: the state before
    assert "Bund        5.192,30" in rows[0] and "Bund        3.461,55" in rows[1]
    assert rows[-1].endswith("net 10.000,01, Bund 8.653,85, Kommune 1.346,16")


def test_a_quarter_of_the_split_over_http_is_one_state(books, client, settings, monkeypatch):
    """With the cap, GET /split?quarter=2 reads the totals of Q1 and Q2 and the view's position:
    read live, a payment into Q2 made by another process after Q1 was read showed in Q2 but not in
    the position the answer names. Now one snapshot."""
    from projections.split_view import SplitViewQueries
    from tests.api_fixtures import auth

    _egt_year(books)
    allocate(books, EGT_2025)
    catch_up(books.ledger, books.split_view)
    position = books.ledger.max_notification_id()

    def another_payment(other):
        pay(other, "A-Q2-DURING", 500_000, month=5)
        catch_up(other.ledger, other.split_view)

    paid = meanwhile(monkeypatch, settings, SplitViewQueries, "totals", another_payment)
    r = client.get("/split", params={"year": 2025, "quarter": 2}, headers=auth("clerk"))
    assert r.status_code == 200, r.text
    assert paid
    q2a = next(s for s in r.json()["lines"] if s["category"] == "egt.aktivierung")
    assert (q2a["net_cents"], q2a["federal_cents"]) == (1_000_001, 865_385)  # as before the payment
    assert r.json()["position"] == position
