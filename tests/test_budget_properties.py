"""Properties of budgets, commitments, allocation parameters and the EGT cap (hypothesis).

Store-backed properties get a fresh store of the parametrised kind per example (SQLite file or
PostgreSQL schema), so an example never depends on the ones before it and shrinking replays it exactly.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from domain.catalogue import Catalogue, Funding
from domain.cost_allocation import StaffRecord, compute
from domain.errors import DomainError
from domain.money import allocate_proportional_cents
from domain.rates import RateTable, pct
from domain.split import GroupTotal, split_group, split_groups
from ledger import allocation_commands as ac
from ledger import budget_commands as bc
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.factories import booking

STORE_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
CATALOGUE = Catalogue.load()
RATES = RateTable.load()
EGT_CODES = sorted(c.code for c in CATALOGUE if c.funding is Funding.EGT_BUDGET)[:4]
INSTRUMENT = "egt.arbeitsgelegenheiten"
AMOUNTS = [1, 250_000, 999_999, 1_000_000, 1_000_001, 1_500_000, 3_000_000]  # threshold: 1_000_000


class History:
    """Drives budget and commitment commands; refused commands change nothing and are fine."""

    def __init__(self, books, years=(2025,), *, committed_only=False):
        self.books, self.years, self.committed_only = books, years, committed_only
        self.keys: list[str] = []
        self.under: dict[str, tuple[str, int, int]] = {}  # booking key -> (contract, year, cents)
        self.counters: list[
            tuple[str, int, int]
        ] = []  # reversals under a contract: (key, original's year, cents)
        self.today = date(2025, 12, 1)  # the day of approvals and reversals

    def apply(self, step) -> None:
        action, *args = step
        try:
            getattr(self, action)(*args)
        except DomainError:
            pass

    def allocate(self, cents):
        bc.allocate(
            self.books,
            year=2025,
            title="egt",
            amount_cents=cents,
            reference="ZS-1",
            reason="Zuteilung",
            by="head",
        )

    def commit(self, c, cents, year_index=0):
        slices = {y: cents for y in self.years[: year_index + 1]}
        bc.make_commitment(
            self.books,
            contract_ref=f"C{c}",
            instrument=INSTRUMENT,
            provider="Träger",
            slices_cents=slices,
            reason="Vertrag",
            by="head",
        )

    def increase(self, c, cents, year_index=0):
        bc.change_commitment(
            self.books,
            contract_ref=f"C{c}",
            year=self.years[year_index],
            amount_cents=cents,
            increase=True,
            reason="Nachtrag",
            by="head",
        )

    def reduce(self, c, cents, year_index=0):
        bc.change_commitment(
            self.books,
            contract_ref=f"C{c}",
            year=self.years[year_index],
            amount_cents=cents,
            increase=False,
            reason="Kürzung",
            by="head",
        )

    def release(self, c, year_index=0):
        bc.release_commitment(
            self.books, contract_ref=f"C{c}", year=self.years[year_index], reason="Ende", by="head"
        )

    def draw(self, c, cents, approve, year_index=0):
        if self.committed_only and self.books.ledger._commitment(f"C{c}") is None:
            return  # spending outside a commitment is not part of this history
        key = f"B{len(self.keys)}"
        paid = date(self.years[year_index], 3, 10)
        content = booking(
            key,
            amount_cents=cents,
            category=INSTRUMENT,
            contract_ref=f"C{c}",
            payment_date=paid,
            service_from=date(paid.year, 3, 1),
            service_to=date(paid.year, 3, 31),
        )
        b = self.books.ledger.record_booking(content, recorded_by="clerk").booking
        self.keys.append(key)
        if self.books.ledger._commitment(f"C{c}") is not None:
            self.under[key] = (f"C{c}", b.fiscal_year, cents)
        if approve and b.state == "awaiting_approval":
            self.approve(len(self.keys) - 1)

    def approve(self, i):
        if self.keys:
            key = self.keys[i % len(self.keys)]
            b = self.books.ledger.approve_booking(key, approved_by="approver", on=self.today)
            if key in self.under:  # approved after its year was closed: it draws on the next year's slice
                self.under[key] = (self.under[key][0], b.fiscal_year, self.under[key][2])

    def reverse(self, i):
        if self.keys:
            key = self.keys[i % len(self.keys)]
            counter = self.books.ledger.reverse_booking(
                key, reason="Storno", reversed_by="clerk", on=self.today
            )
            if key in self.under:
                _, year, cents = self.under.pop(key)
                self.counters.append((counter.key, year, cents))

    def returned_cents(self, year) -> int:
        """Money given back in `year` by reversals of invoices that counted in an earlier year."""
        counters = [(self.books.ledger.get_booking(key), was, cents) for key, was, cents in self.counters]
        return sum(cents for b, was, cents in counters if b.counts and b.fiscal_year == year and was < year)

    def close(self):
        """2025 is closed: from now on approvals and reversals of 2025's bookings count in 2026."""
        self.books.ledger.close_period(year=2025, quarter=0, closed_by="head")
        self.today = date(2026, 2, 1)


contract = st.integers(0, 2)
amount = st.sampled_from(AMOUNTS)


def steps(year_index):
    return st.lists(
        st.one_of(
            st.tuples(st.just("allocate"), st.sampled_from([0, 1_000_000, 2_500_000, 6_000_000])),
            st.tuples(st.just("commit"), contract, amount, year_index),
            st.tuples(st.just("increase"), contract, amount, year_index),
            st.tuples(st.just("reduce"), contract, amount, year_index),
            st.tuples(st.just("release"), contract, year_index),
            st.tuples(st.just("draw"), contract, amount, st.booleans(), year_index),
            st.tuples(st.just("approve"), st.integers(0, 9)),
            st.tuples(st.just("reverse"), st.integers(0, 9)),
            st.tuples(st.just("close")),
        ),
        max_size=16,
    )


# ---- available never goes negative --------------------------------------------------------------

# A drawdown above the approval threshold leaves "committed" at once but enters "spent" only when
# approved: a commitment made in between must not bind the same money twice.
AWAITING_THEN_COMMIT = [
    ("commit", 0, 3_000_000, 0),
    ("draw", 0, 1_500_000, False, 0),
    ("commit", 1, 1_500_000, 0),
    ("approve", 0),
]

# A reversal above the threshold awaits approval: it gives the drawdown back at once, but the
# invoice stays spent until the reversal is approved (found by hypothesis: available went negative).
REVERSAL_AWAITING = [
    ("commit", 1, 3_000_000, 0),
    ("draw", 1, 1_000_001, True, 0),
    ("reverse", 0),
    ("commit", 2, 1, 0),
]


# A reversal after the invoice's year was closed counts in the next year: the year keeps the
# invoice as spent, so the drawdown given back to its slice is not bound there again.
REVERSAL_NEXT_YEAR = [
    ("commit", 0, 3_000_000, 0),
    ("draw", 0, 250_000, True, 0),
    ("close",),
    ("reverse", 0),
]


def test_available_never_goes_negative_when_all_spending_goes_through_commitments(fresh_books):
    @STORE_SETTINGS
    @given(steps(st.just(0)))
    @example(AWAITING_THEN_COMMIT)
    @example(REVERSAL_AWAITING)
    @example(REVERSAL_NEXT_YEAR)
    def history(sequence):
        with fresh_books() as books:
            h = History(books, committed_only=True)
            h.allocate(3_000_000)
            for step in sequence:
                h.apply(step)
                line = bc.status(books, 2025).title("egt")
                assert line.available_cents >= 0, (step, line)

    history()


# ---- every committed euro is either still bound or spent, in each year ---------------------------


def test_committed_plus_spent_is_what_the_commitments_bind_in_each_year(fresh_books):
    """With all spending under commitments, the status's committed + spent of a year is exactly
    the commitments' slices of that year less what was released (and less what reversals of an
    earlier year's invoices brought back in it): a drawdown moves money from committed to spent (on
    approval), a reversal back (or, counting in a later year, not at all), and nothing is lost or
    counted twice on the way, through closings and moved drawdowns."""

    @STORE_SETTINGS
    @given(steps(st.integers(0, 1)))
    @example(AWAITING_THEN_COMMIT)
    @example(REVERSAL_AWAITING)
    @example(REVERSAL_NEXT_YEAR)
    @example(APPROVED_AFTER_CLOSING)
    @example(COUNTED_APPROVED_AFTER_CLOSING)
    def history(sequence):
        with fresh_books() as books:
            h = History(books, years=(2025, 2026), committed_only=True)
            h.allocate(6_000_000)
            for step in sequence:
                h.apply(step)
                for year in (2025, 2026):
                    status = bc.status(books, year)
                    bound = sum(
                        c.slice_cents.get(str(year), 0) - c.released_cents.get(str(year), 0)
                        for c in status.commitments
                    )
                    expected = bound - h.returned_cents(
                        year
                    )  # a late reversal lowers the later year's spending
                    line = status.title("egt")
                    assert line.committed_cents + line.spent_cents == expected, (step, year, line)
                    instrument = status.instrument(INSTRUMENT)
                    if instrument is not None:
                        assert instrument.committed_cents + instrument.spent_cents == expected, (step, year)

    history()


# ---- drawdowns never exceed their slice ---------------------------------------------------------


# An invoice approved after its year was closed counts in the next year, and draws on that slice.
APPROVED_AFTER_CLOSING = [
    ("commit", 0, 3_000_000, 1),
    ("draw", 0, 1_000_001, False, 0),
    ("close",),
    ("approve", 0),
]

# A booking below the threshold counted when it was recorded; approving it after its year was
# closed must not move it (or its drawdown) to the next year (found by hypothesis: counted twice).
COUNTED_APPROVED_AFTER_CLOSING = [
    ("commit", 0, 1, 1),
    ("draw", 0, 1, False, 0),
    ("close",),
    ("approve", 0),
]


def test_drawdowns_never_exceed_their_slice_and_equal_the_bookings_under_the_contract(fresh_books):
    @STORE_SETTINGS
    @given(steps(st.integers(0, 1)))
    @example(APPROVED_AFTER_CLOSING)
    def history(sequence):
        with fresh_books() as books:
            h = History(books, years=(2025, 2026))
            h.allocate(6_000_000)
            for step in sequence:
                h.apply(step)
                for c in range(3):
                    commitment = books.ledger._commitment(f"C{c}")
                    if commitment is None:
                        continue
                    for y in commitment.years():
                        s = str(y)
                        drawn, cap = (
                            commitment.drawn_cents[s],
                            commitment.slice_cents[s] - commitment.released_cents[s],
                        )
                        assert 0 <= drawn <= cap, (step, c, y, drawn, cap)
                        expected = sum(v for ref, yy, v in h.under.values() if ref == f"C{c}" and yy == y)
                        assert drawn == expected, (step, c, y)
                        assert commitment.remaining_cents(y) == cap - drawn

    history()


# ---- a parameter change and its reversal restore the figures exactly ------------------------------

ALLOCATION_STAFF = [  # small enough that every cost type stays below the approval threshold
    StaffRecord("B-1", Decimal("0.5"), Decimal("0.5"), 1_000_000, "beamter", 400_000),
    StaffRecord("T-2", Decimal(1), Decimal("0.3"), 1_200_000, "beschaeftigter"),
]
rate_value = st.decimals(min_value=0, max_value=1, places=3)
flat_value = st.integers(0, 5_000_000).map(lambda cents: Decimal(cents) / 100)


def _figures(books):
    catch_up(books.ledger, books.split_view)
    lines = split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", 2025, 1)
    return sorted((s.category, s.net_cents, s.federal_cents, s.municipal_cents) for s in lines if s.net_cents)


def test_an_allocation_parameter_change_and_its_reversal_restore_results_and_split(fresh_books):
    @STORE_SETTINGS
    @given(
        st.one_of(
            st.tuples(st.sampled_from(["versorgungszuschlag_cap", "personalgemeinkosten_rate"]), rate_value),
            st.tuples(st.sampled_from(["personalnebenkosten_per_vzae", "sachkosten_per_vzae"]), flat_value),
        )
    )
    def change_and_revert(change):
        name, value = change
        with fresh_books() as books:

            def rerun():
                return ac.run_allocation(
                    books,
                    year=2025,
                    quarter=1,
                    staff=ALLOCATION_STAFF,
                    shared=[],
                    by="runner",
                    on=date(2025, 3, 31),
                ).results_cents

            def set_to(v, reason):
                books.ledger.set_parameter(
                    name=name, year=2025, value=v, land="", reason=reason, set_by="admin"
                )

            original_value = books.ledger.rates.dated(name, 2025)
            before, split_before = rerun(), _figures(books)
            set_to(value, "Erlass")
            changed = rerun()
            assert changed == compute(ALLOCATION_STAFF, [], ac.parameters_for(books, 2025, 1))
            assert books.ledger.rates.dated(name, 2025) == value
            set_to(original_value, "Rücknahme")
            assert rerun() == before
            assert _figures(books) == split_before
            assert books.ledger.rates.dated(name, 2024) == original_value  # the year before never moved

    change_and_revert()


def test_a_deckungsfaehigkeit_limit_change_and_its_reversal_restore_what_may_be_shifted(books):
    bc.allocate(
        books, year=2025, title="egt", amount_cents=100_000_000, reference="ZS-1", reason="Z", by="head"
    )
    bc.allocate(
        books, year=2025, title="vwk", amount_cents=50_000_000, reference="ZS-2", reason="Z", by="head"
    )

    def refusal(cents):
        with pytest.raises(DomainError) as e:
            bc.shift(
                books, year=2025, from_title="egt", to_title="vwk", amount_cents=cents, reason="D", by="head"
            )
        return str(e.value)

    original = books.ledger.rates.dated("deckungsfaehigkeit_limit", 2025)
    message = refusal(10_000_001)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.decimals(min_value=0, max_value=Decimal("0.99"), places=4))
    def change_and_revert(value):
        books.ledger.set_parameter(
            name="deckungsfaehigkeit_limit", year=2025, value=value, land="", reason="E", set_by="admin"
        )
        limit = int(100_000_000 * value)
        assert f"({pct(value)} of its allocation)" in refusal(limit + 1)
        books.ledger.set_parameter(
            name="deckungsfaehigkeit_limit",
            year=2025,
            value=original,
            land="",
            reason="Rücknahme",
            set_by="admin",
        )
        assert refusal(10_000_001) == message

    change_and_revert()
    assert books.ledger.budget_as_of(2025).shifted_in_cents == {"egt": 0, "vwk": 0}


# ---- the EGT cap and proportional shares (pure) ---------------------------------------------------


def _totals(draw_nets) -> list[GroupTotal]:
    by_group: dict[tuple[int, str], int] = {}
    for quarter, code, net in draw_nets:
        by_group[(quarter, code)] = by_group.get((quarter, code), 0) + net
    return [
        GroupTotal(2025, q, code, max(net, 0), max(-net, 0), 1) for (q, code), net in sorted(by_group.items())
    ]


OTHERS = [GroupTotal(2025, 2, "vwk.personal", 1_000_000, 0, 1), GroupTotal(2025, 3, "kdu", 333_333, 0, 1)]


def _split(totals, budget):
    rates = RATES.with_egt_funds(lambda year: budget if year == 2025 else None)
    lines = split_groups(totals + OTHERS, CATALOGUE, rates, "BW")
    egt = [s for s in lines if s.category.startswith("egt.")]
    return lines, egt


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(EGT_CODES), st.integers(0, 5_000_000)), max_size=12
    ),
    st.integers(-1_000_000, 20_000_000),
)
def test_the_cap_gives_the_bund_at_most_the_budget_in_quarter_order(nets, budget):
    totals = _totals(nets)
    lines, egt = _split(totals, budget)
    total = sum(t.net_cents for t in totals)
    assert sum(s.federal_cents for s in egt) == min(max(total, 0), max(budget, 0))
    cumulative = 0
    for q in (1, 2, 3, 4):
        q_lines = [s for s in egt if s.quarter == q]
        q_net = sum(s.net_cents for s in q_lines)
        for s in q_lines:
            assert s.federal_cents + s.municipal_cents == s.net_cents
            assert 0 <= s.federal_cents <= s.net_cents
            if cumulative + q_net <= max(budget, 0):
                assert s.federal_cents == s.net_cents  # wholly within the budget
            if cumulative >= max(budget, 0):
                assert s.federal_cents == 0  # the budget was used up before this quarter
        cumulative += q_net
    for other in OTHERS:  # other titles are untouched by the cap
        assert split_group(other, CATALOGUE, RATES, "BW") in lines


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(EGT_CODES), st.integers(-2_000_000, 5_000_000)),
        max_size=12,
    ),
    st.integers(-1_000_000, 20_000_000),
)
def test_with_receipts_the_cap_still_adds_up_line_by_line_and_over_the_year(nets, budget):
    totals = _totals(nets)
    lines, egt = _split(totals, budget)
    assert all(s.federal_cents + s.municipal_cents == s.net_cents for s in lines)
    total = sum(t.net_cents for t in totals)
    # Capped above only: a year whose receipts exceed its spending gives the refund to the Bund.
    assert sum(s.federal_cents for s in egt) == min(total, max(budget, 0))
    assert sum(s.federal_cents for s in egt) <= max(budget, 0) or not egt


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(EGT_CODES), st.integers(-5_000_000, 2_000_000)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 20_000_000),
)
@example(nets=[(1, EGT_CODES[0], -10_000), (2, EGT_CODES[0], 5_000)], budget=100_000_000)
def test_a_budget_never_reached_changes_no_split_even_below_zero(nets, budget):
    """While the year's cumulative net stays within the budget (below zero included), the split is
    the one without a budget on file: Bund 100 %, refunds too. Before the fix a net below zero went
    to the Kommune only because a budget was on file."""
    totals = _totals(nets)
    cumulative = 0
    for q in (1, 2, 3, 4):
        cumulative += sum(t.net_cents for t in totals if t.quarter == q)
        assume(cumulative <= budget)
    _, capped = _split(totals, budget)
    uncapped = split_groups(totals, CATALOGUE, RATES, "BW")
    assert [(s.quarter, s.category, s.federal_cents, s.municipal_cents) for s in capped] == [
        (s.quarter, s.category, s.federal_cents, s.municipal_cents) for s in uncapped
    ]
    assert all(s.municipal_cents == 0 for s in capped)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(-10_000_000, 10_000_000), min_size=1, max_size=20), st.integers(-(10**9), 10**9))
def test_allocate_proportional_cents_always_sums_to_its_total(amounts, total):
    assume(sum(amounts) != 0 or total == 0)
    shares = allocate_proportional_cents(amounts, total)
    assert sum(shares) == total and len(shares) == len(amounts)
    if sum(amounts):
        for a, s in zip(amounts, shares, strict=True):
            assert abs(s - Fraction(a * total, sum(amounts))) < 1
    if all(a >= 0 for a in amounts) and total >= 0:
        assert all(s >= 0 for s in shares)
