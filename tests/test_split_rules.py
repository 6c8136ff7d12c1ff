"""The federal/municipal split by category, year and Land (domain.split, rates, catalogue)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import Catalogue, Funding
from domain.errors import RateMissing, UnknownCategory
from domain.money import share_cents
from domain.rates import RateTable, pct
from domain.split import GroupTotal, SplitLine, Sum, split_group, split_groups, sum_by_title

CATALOGUE = Catalogue.load()
RATES = RateTable.load()
LAND = "BW"

MILLION = 100_000_000  # 1,000,000.00 €


def group(
    category: str,
    expenditure: int,
    receipts: int = 0,
    year: int = 2024,
    quarter: int = 1,
    count: int = 1,
) -> GroupTotal:
    return GroupTotal(year, quarter, category, expenditure, receipts, count)


def split(
    category: str, expenditure: int, receipts: int = 0, year: int = 2024, quarter: int = 1
) -> SplitLine:
    return split_group(group(category, expenditure, receipts, year, quarter), CATALOGUE, RATES, LAND)


# ---- the shipped catalogue ---------------------------------------------------------------------

DOMAIN_MD_CODES = [
    "buergergeld",
    "einmal_bund",
    "kdu",
    "kdu_sonst",
    "erstausstattung",
    "but",
    "kommunal_egl",
    "egt.vermittlungsbudget",
    "egt.aktivierung",
    "egt.weiterbildung",
    "egt.eingliederungszuschuss",
    "egt.einstiegsgeld",
    "egt.arbeitsgelegenheiten",
    "egt.teilhabe_arbeitsmarkt",
    "egt.freie_foerderung",
    "vwk.personal",
    "vwk.personalnebenkosten",
    "vwk.sachkosten",
    "vwk.personalgemeinkosten",
    "vwk.versorgungszuschlag",
    "vwk.investitionen",
    "vwk.sonstige",
]

FEDERAL_TITLES = {"", "1101/681 12", "1101/685 11", "1101/636 13", "1101/632 11"}


@pytest.mark.parametrize("code", DOMAIN_MD_CODES)
def test_catalogue_has_every_category_of_domain_md(code: str) -> None:
    assert code in CATALOGUE
    assert CATALOGUE.get(code).code == code


def test_every_federal_title_is_a_known_title() -> None:
    titles = {c.federal_title for c in CATALOGUE}
    assert titles <= FEDERAL_TITLES
    assert titles == FEDERAL_TITLES  # each title is used by some category


EXPECTED_FUNDING = {
    "buergergeld": (Funding.BUND, "1101/681 12", "31.20.04"),
    "einmal_bund": (Funding.BUND, "1101/681 12", "31.20.04"),
    "kdu": (Funding.KDU_QUOTA, "1101/632 11", "31.20.01"),
    "kdu_sonst": (Funding.KOMMUNE, "", "31.20.01"),
    "erstausstattung": (Funding.KOMMUNE, "", "31.20.03"),
    "but": (Funding.KOMMUNE, "", "31.20.06"),
    "kommunal_egl": (Funding.KOMMUNE, "", "31.20.02"),
}


@pytest.mark.parametrize("code", sorted(EXPECTED_FUNDING))
def test_catalogue_payer_title_and_product_match_domain_md(code: str) -> None:
    c = CATALOGUE.get(code)
    assert (c.funding, c.federal_title, c.municipal_product) == EXPECTED_FUNDING[code]


def test_instrument_and_cost_type_families() -> None:
    for c in CATALOGUE:
        if c.code.startswith("egt."):
            assert (c.funding, c.federal_title, c.municipal_product) == (
                Funding.EGT_BUDGET,
                "1101/685 11",
                "31.20.05",
            )
        elif c.code.startswith("vwk."):
            assert (c.funding, c.federal_title) == (Funding.VWK_SHARE, "1101/636 13")
        else:
            assert c.code in EXPECTED_FUNDING, c.code
        # a federal title exactly when the Bund pays some of it
        assert (c.federal_title == "") == (c.funding == Funding.KOMMUNE), c.code


def test_title_label_of_municipal_categories() -> None:
    assert CATALOGUE.get("kdu_sonst").title_label == "kommunal"
    assert CATALOGUE.get("kdu").title_label == "1101/632 11"


def test_unknown_category_in_split_is_refused() -> None:
    with pytest.raises(UnknownCategory):
        split("nope", 100)


# ---- rates by category -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [c for c in DOMAIN_MD_CODES if c.startswith("vwk.")])
def test_verwaltungskosten_at_87_4(code: str) -> None:
    line = split(code, MILLION)
    assert line.federal_rate == Decimal("0.874")
    assert line.federal_cents == 87_400_000
    assert line.municipal_cents == 12_600_000
    assert line.rate_label == "Verwaltungskostenanteil 87,4 %"
    assert line.federal_title == "1101/636 13"


def test_a_year_booked_over_four_quarters_is_rounded_once() -> None:
    # 1.000.000,00 € of Verwaltungskosten in four quarters: rounded quarter by quarter their
    # shares came to 873.999,99 €; the year's share is 874.000,00 € as domain.md says.
    nets = [25_000_004, 25_000_004, 25_000_004, 24_999_988]
    assert sum(nets) == MILLION
    assert sum(share_cents(n, Decimal("0.874")) for n in nets) == 87_399_999  # the old figure
    lines = split_groups(
        [group("vwk.personal", n, quarter=q) for q, n in enumerate(nets, 1)], CATALOGUE, RATES, LAND
    )
    assert [s.federal_cents for s in lines] == [21_850_003, 21_850_004, 21_850_003, 21_849_990]
    assert Sum.of(lines).federal_cents == 87_400_000
    assert Sum.of(lines).municipal_cents == 12_600_000
    # Up to every quarter, the share is the cumulative net's, rounded once.
    for q in range(1, 5):
        assert sum(s.federal_cents for s in lines[:q]) == share_cents(sum(nets[:q]), Decimal("0.874"))


def test_kdu_difference_of_domain_md_over_four_quarters() -> None:
    # 100.000,00 € of KdU in four quarters: provisional 71.900,00 €, final 72.100,00 €, 200,00 €
    # apart (quarter by quarter the two came to 71.900,01 € and 72.100,01 €, or 199,98 € apart).
    nets = [2_500_005, 2_500_005, 2_500_005, 2_499_985]
    for rate, federal in ((Decimal("0.719"), 7_190_000), (Decimal("0.721"), 7_210_000)):
        rates = RATES.with_settings([("kdu_quota_final", 2024, LAND, rate)])
        lines = split_groups(
            [group("kdu", n, year=2024, quarter=q) for q, n in enumerate(nets, 1)], CATALOGUE, rates, LAND
        )
        assert Sum.of(lines).federal_cents == federal


def test_verwaltungskosten_share_in_every_year_from_2005() -> None:
    for year in (2005, 2011, 2024, 2030):
        assert RATES.vwk_share(year) == Decimal("0.874")
    with pytest.raises(RateMissing, match="2004"):
        RATES.vwk_share(2004)


def test_kdu_bw_2024_uses_final_quota() -> None:
    q = RATES.kdu_quota("BW", 2024)
    assert (q.provisional, q.final, q.in_force) == (
        Decimal("0.719"),
        Decimal("0.721"),
        Decimal("0.721"),
    )
    line = split("kdu", 10_000_000, year=2024)
    assert line.federal_rate == Decimal("0.721")
    assert line.federal_cents == 7_210_000
    assert line.municipal_cents == 2_790_000
    assert "endgültig" in line.rate_label
    assert "72,1 %" in line.rate_label
    assert line.rate_label == "KdU-Quote BW 2024 endgültig 72,1 %"
    # the settlement difference of domain.md
    assert line.federal_cents - share_cents(10_000_000, q.provisional) == 20_000


@pytest.mark.parametrize(
    ("year", "rate"),
    [
        (2020, "0.764"),
        (2021, "0.736"),
        (2022, "0.715"),
        (2023, "0.719"),
        (2024, "0.721"),
        (2025, "0.725"),
    ],
)
def test_kdu_bw_final_quotas_of_domain_md(year: int, rate: str) -> None:
    line = split("kdu", 10_000_000, year=year)
    assert line.federal_rate == Decimal(rate)
    assert line.federal_cents == int(Decimal(rate) * 10_000_000)
    assert str(year) in line.rate_label


@pytest.mark.parametrize("year", [2019, 2030])
def test_kdu_year_without_quota_raises_rate_missing(year: int) -> None:
    with pytest.raises(RateMissing) as e:
        split("kdu", 10_000_000, year=year)
    assert str(year) in str(e.value)
    assert "BW" in str(e.value)


def test_kdu_other_land_without_quota_raises_rate_missing() -> None:
    with pytest.raises(RateMissing, match="BY"):
        split_group(group("kdu", 100, year=2024), CATALOGUE, RATES, "BY")


def test_provisional_only_quota_is_labelled_provisional() -> None:
    from domain.rates import KduQuota

    rates = RateTable(
        [(2005, Decimal("0.874"))],
        [KduQuota("BW", 2026, Decimal("0.7"), None)],
        1_000_000,
        (1, 20),
        {},
    )
    line = split_group(group("kdu", 1_000, year=2026), CATALOGUE, rates, LAND)
    assert line.federal_rate == Decimal("0.7")
    assert line.rate_label == "KdU-Quote BW 2026 vorläufig 70 %"


def test_buergergeld_is_federal() -> None:
    for code in ("buergergeld", "einmal_bund"):
        line = split(code, 123_457, year=2019)  # no rate needed: any year
        assert line.federal_rate == Decimal(1)
        assert (line.federal_cents, line.municipal_cents) == (123_457, 0)
        assert line.rate_label == "Bund 100 %"
        assert line.federal_title == "1101/681 12"


@pytest.mark.parametrize("code", ["kdu_sonst", "erstausstattung", "but", "kommunal_egl"])
def test_municipal_categories_are_municipal(code: str) -> None:
    line = split(code, 123_457, year=2030)
    assert line.federal_rate == Decimal(0)
    assert (line.federal_cents, line.municipal_cents) == (0, 123_457)
    assert line.rate_label == "Kommune 100 %"
    assert line.federal_title == "kommunal"


@pytest.mark.parametrize("code", [c for c in DOMAIN_MD_CODES if c.startswith("egt.")])
def test_eingliederung_is_federal_within_budget(code: str) -> None:
    line = split(code, 999_999)
    assert line.federal_rate == Decimal(1)
    assert (line.federal_cents, line.municipal_cents) == (999_999, 0)
    assert "Eingliederungsbudget" in line.rate_label
    assert line.federal_title == "1101/685 11"


def test_pct_formatting() -> None:
    assert pct(Decimal("0.874")) == "87,4 %"
    assert pct(Decimal("0.848")) == "84,8 %"
    assert pct(Decimal("0.72")) == "72 %"
    assert pct(Decimal(1)) == "100 %"
    assert pct(Decimal(0)) == "0 %"


# ---- receipts and net --------------------------------------------------------------------------


def test_receipts_reduce_net_before_the_split() -> None:
    line = split("vwk.sachkosten", 100_000, receipts=20_000)
    assert (line.expenditure_cents, line.receipts_cents, line.net_cents) == (
        100_000,
        20_000,
        80_000,
    )
    assert line.federal_cents == 69_920  # 800.00 * 0.874
    assert line.municipal_cents == 10_080
    kdu = split("kdu", 100_000, receipts=20_000, year=2024)
    assert kdu.federal_cents == 57_680  # 800.00 * 0.721
    assert kdu.municipal_cents == 22_320


def test_receipts_above_expenditure_give_negative_net_split_symmetrically() -> None:
    line = split("vwk.sachkosten", 20_000, receipts=100_000)
    assert line.net_cents == -80_000
    assert line.federal_cents == -69_920
    assert line.municipal_cents == -10_080


def test_split_rounds_the_group_half_up() -> None:
    # 0.05 € at 87.4 % = 4.37 cents -> 4; 0.10 € at 87.4 % = 8.74 -> 9;
    # 0.50 € at 72.1 % = 36.05 -> 36
    assert split("vwk.personal", 5).federal_cents == 4
    assert split("vwk.personal", 10).federal_cents == 9
    assert split("kdu", 50, year=2024).federal_cents == 36  # 36.05 -> 36
    assert split("vwk.personal", 0, receipts=5).federal_cents == -4  # -4.37 -> -4


def test_split_line_refuses_inconsistent_parts() -> None:
    with pytest.raises(AssertionError):
        SplitLine(2024, 1, "kdu", "1101/632 11", 100, 0, 100, Decimal("0.721"), "x", 72, 27, 1)
    with pytest.raises(AssertionError):
        SplitLine(2024, 1, "kdu", "1101/632 11", 100, 10, 100, Decimal("0.721"), "x", 72, 28, 1)


# ---- split_groups, Sum, sum_by_title -----------------------------------------------------------


def test_split_groups_sorted_and_summed_by_title() -> None:
    totals = [
        group("vwk.personal", MILLION, quarter=2, count=10),
        group("kdu", 10_000_000, quarter=1, count=7),
        group("buergergeld", 500_000, quarter=1, count=3),
        group("kdu_sonst", 40_000, quarter=1, count=2),
        group("egt.aktivierung", 75_000, 5_000, quarter=1, count=4),
        group("vwk.sachkosten", 100_000, 20_000, quarter=1, count=5),
        group("kdu", 1_000_000, quarter=1, year=2023, count=1),
    ]
    lines = split_groups(totals, CATALOGUE, RATES, LAND)
    keys = [(s.fiscal_year, s.quarter, s.federal_title, s.category) for s in lines]
    assert keys == sorted(keys)
    assert keys[0] == (2023, 1, "1101/632 11", "kdu")
    assert keys[-1] == (2024, 2, "1101/636 13", "vwk.personal")
    assert len(lines) == len(totals)

    by_title = sum_by_title(lines)
    assert list(by_title) == sorted(by_title)
    assert set(by_title) == {"1101/632 11", "1101/636 13", "1101/681 12", "1101/685 11", "kommunal"}
    assert by_title["1101/632 11"] == Sum(
        11_000_000, 0, 11_000_000, 7_210_000 + 719_000, 2_790_000 + 281_000, 8
    )
    assert by_title["1101/636 13"] == Sum(
        MILLION + 100_000, 20_000, MILLION + 80_000, 87_400_000 + 69_920, 12_600_000 + 10_080, 15
    )
    assert by_title["1101/681 12"] == Sum(500_000, 0, 500_000, 500_000, 0, 3)
    assert by_title["1101/685 11"] == Sum(75_000, 5_000, 70_000, 70_000, 0, 4)
    assert by_title["kommunal"] == Sum(40_000, 0, 40_000, 0, 40_000, 2)

    whole = Sum.of(lines)
    assert whole == Sum.of(by_title_sum_lines(by_title))
    assert whole.booking_count == 32


def by_title_sum_lines(by_title: dict[str, Sum]) -> list[SplitLine]:
    """Turn title sums back into lines so Sum.of can add them (a Sum of Sums)."""
    return [
        SplitLine(
            0,
            1,
            t,
            t,
            s.expenditure_cents,
            s.receipts_cents,
            s.net_cents,
            Decimal(0),
            "",
            s.federal_cents,
            s.municipal_cents,
            s.booking_count,
        )
        for t, s in by_title.items()
    ]


def test_empty_sums() -> None:
    assert Sum.of([]) == Sum()
    assert sum_by_title([]) == {}
    assert split_groups([], CATALOGUE, RATES, LAND) == []


def test_split_groups_propagates_rate_missing() -> None:
    with pytest.raises(RateMissing, match="2019"):
        split_groups([group("buergergeld", 1), group("kdu", 1, year=2019)], CATALOGUE, RATES, LAND)


# ---- properties --------------------------------------------------------------------------------

CODES = CATALOGUE.codes()
KDU_YEARS = [2020, 2021, 2022, 2023, 2024, 2025]

group_totals = st.builds(
    GroupTotal,
    fiscal_year=st.sampled_from(KDU_YEARS),
    quarter=st.integers(min_value=1, max_value=4),
    category=st.sampled_from(CODES),
    expenditure_cents=st.integers(min_value=0, max_value=10**12),
    receipts_cents=st.integers(min_value=0, max_value=10**11),
    booking_count=st.integers(min_value=0, max_value=10_000),
)


def group_key(t: GroupTotal) -> tuple[int, int, str]:
    return (t.fiscal_year, t.quarter, t.category)


@given(st.lists(group_totals, max_size=60, unique_by=group_key))
@settings(max_examples=200, deadline=None)
def test_sums_are_sums_of_parts(totals: list[GroupTotal]) -> None:
    lines = split_groups(totals, CATALOGUE, RATES, LAND)
    assert len(lines) == len(totals)
    for s in lines:
        assert s.federal_cents + s.municipal_cents == s.net_cents
        assert s.net_cents == s.expenditure_cents - s.receipts_cents
        # the federal part lies between 0 and the net, on the net's side
        assert min(0, s.net_cents) <= s.federal_cents <= max(0, s.net_cents)
    # A year's share up to each quarter is its cumulative net times the rate, rounded once.
    for s in lines:
        before = [x for x in lines if (x.fiscal_year, x.category) == (s.fiscal_year, s.category)]
        upto = [x for x in before if x.quarter <= s.quarter]
        assert sum(x.federal_cents for x in upto) == share_cents(
            sum(x.net_cents for x in upto), s.federal_rate
        )
    whole = Sum.of(lines)
    assert whole.expenditure_cents == sum(t.expenditure_cents for t in totals)
    assert whole.receipts_cents == sum(t.receipts_cents for t in totals)
    assert whole.net_cents == sum(t.net_cents for t in totals)
    assert whole.federal_cents == sum(s.federal_cents for s in lines)
    assert whole.municipal_cents == sum(s.municipal_cents for s in lines)
    assert whole.booking_count == sum(t.booking_count for t in totals)
    assert whole.federal_cents + whole.municipal_cents == whole.net_cents
    by_title = sum_by_title(lines)
    for field in (
        "expenditure_cents",
        "receipts_cents",
        "net_cents",
        "federal_cents",
        "municipal_cents",
        "booking_count",
    ):
        assert sum(getattr(s, field) for s in by_title.values()) == getattr(whole, field)
    for title, s in by_title.items():
        assert s == Sum.of(x for x in lines if x.federal_title == title)
        assert s.federal_cents + s.municipal_cents == s.net_cents


@given(st.lists(group_totals, max_size=30, unique_by=group_key), st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_split_groups_does_not_depend_on_input_order(totals: list[GroupTotal], rnd) -> None:
    shuffled = list(totals)
    rnd.shuffle(shuffled)
    a = split_groups(totals, CATALOGUE, RATES, LAND)
    b = split_groups(shuffled, CATALOGUE, RATES, LAND)
    assert Sum.of(a) == Sum.of(b)
    assert sum_by_title(a) == sum_by_title(b)
    assert [(s.fiscal_year, s.quarter, s.federal_title, s.category) for s in a] == [
        (s.fiscal_year, s.quarter, s.federal_title, s.category) for s in b
    ]
