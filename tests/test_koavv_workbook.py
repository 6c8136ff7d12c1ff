"""The KoA-VV workbook, read back with openpyxl: every figure, formula, link and print setting.

Reports are built by hand (no store): the bookings first, then the lines as their sums, the way
the report builder does it. openpyxl does not evaluate formulas, so the tests evaluate the simple
ones the workbook uses (SUM over ranges and cells, X-Y) from the cells they reference.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.workbook.workbook import Workbook as LoadedWorkbook

from domain.money import allocate_share_cents, share_cents
from exports import koavv_belege
from exports.koavv_data import figures, figures_sha256
from exports.koavv_model import (
    TITLE_NAMES,
    TITLE_ORDER,
    BelegRow,
    CategoryLine,
    DrawLine,
    KduLine,
    KoaVvReport,
    RepaymentLine,
    TitleLine,
)
from exports.koavv_workbook import (
    BELEGE_HEADER,
    DIFFERENCE_LABEL,
    EMPTY_PERIOD,
    MONEY_FORMAT,
    NO_QUOTA,
    NO_TRANSFERS,
    PERCENT_FORMAT,
    belege_path,
    plan_belege,
    write_workbook,
)

ROOT = Path(__file__).resolve().parent.parent

# category -> (federal title, name, rate, rate label)
CATALOGUE = {
    "buergergeld": (
        "1101/681 12",
        "Bürgergeld: Regelbedarf, Mehrbedarfe, Sozialgeld",
        Decimal(1),
        "Bund 100 %",
    ),
    "einmal_bund": ("1101/681 12", "Einmalige Bedarfe § 24 Abs. 3 Nr. 3 (Bund)", Decimal(1), "Bund 100 %"),
    "egt.aktivierung": ("1101/685 11", "Maßnahmen zur Aktivierung", Decimal(1), "Eingliederungsbudget"),
    "egt.weiterbildung": ("1101/685 11", "Förderung der beruflichen Weiterbildung", Decimal(1), "EGT"),
    "vwk.personal": ("1101/636 13", "Personalkosten", Decimal("0.874"), "VwK-Anteil 2025: 87,4 %"),
    "vwk.sachkosten": ("1101/636 13", "Sachkosten", Decimal("0.874"), "VwK-Anteil 2025: 87,4 %"),
    "kdu": ("1101/632 11", "Bedarfe für Unterkunft und Heizung", Decimal("0.721"), "KdU-Quote BW 2025"),
    "but": ("kommunal", "Bildung und Teilhabe", Decimal(0), "Kommune 100 %"),
    "kdu_sonst": ("kommunal", "Umzugskosten, Mietkaution, Mietschulden", Decimal(0), "Kommune 100 %"),
}
AS_OF = datetime(2025, 4, 15, 10, 30, 15, 123456, tzinfo=UTC)
NOT_YET_BUILT = {
    "Verwaltungskosten": "Die VZÄ kommen mit den Kostenaufteilungsläufen.",
    "Eingliederung": "Plan, Zuteilung und Bindungen werden noch nicht erfasst.",
}


def beleg(key: str, category: str, net_cents: int, n: int = 0, **changes) -> BelegRow:
    """A booking with its own shares still to be set (make_report distributes them)."""
    base = BelegRow(
        booking_key=key,
        fiscal_year=2025,
        quarter=1 + n % 4,
        payment_date=date(2025, 1, 2) + timedelta(days=n),
        service_from=date(2025, 1, 1) + timedelta(days=n),
        service_to=date(2025, 1, 31) + timedelta(days=n),
        recorded_at=datetime(2025, 1, 3, 8, 15, 30, 250_000, tzinfo=UTC) + timedelta(hours=n),
        category=category,
        federal_title=CATALOGUE[category][0],
        kind="payment" if net_cents >= 0 else "receipt",
        net_cents=net_cents,
        federal_cents=0,
        municipal_cents=0,
        document_ref=f"RE-{n:04d}",
        case_ref=f"08221BG{n:07d}" if n % 3 else "",
        cost_centre=("JC-NORD", "JC-SUED")[n % 2],
        reverses_key="",
        approved_by="schmidt" if n % 2 else "",
    )
    return replace(base, **changes)


def make_report(
    belege: list[BelegRow],
    *,
    drawn: dict[str, int] | None = None,
    kdu: KduLine | None | str = "auto",
    not_yet_built: dict[str, str] | None = None,
    shuffle: bool = True,
) -> KoaVvReport:
    """Shares per booking by largest remainder (they add up to the line), lines and titles as sums."""
    drawn = drawn or {}
    by_category: dict[str, list[BelegRow]] = defaultdict(list)
    for b in sorted(belege, key=lambda b: b.booking_key):
        by_category[b.category].append(b)
    shared: list[BelegRow] = []
    categories = []
    for code in sorted(by_category, key=lambda c: (TITLE_ORDER.index(CATALOGUE[c][0]), c)):
        title, name, rate, label = CATALOGUE[code]
        rows = by_category[code]
        federal = allocate_share_cents([b.net_cents for b in rows], rate)
        rows = [
            replace(b, federal_cents=f, municipal_cents=b.net_cents - f)
            for b, f in zip(rows, federal, strict=True)
        ]
        shared += rows
        net = sum(b.net_cents for b in rows)
        categories.append(
            CategoryLine(
                federal_title=title,
                category=code,
                category_name=name,
                expenditure_cents=sum(b.net_cents for b in rows if b.net_cents > 0),
                receipts_cents=-sum(b.net_cents for b in rows if b.net_cents < 0),
                net_cents=net,
                federal_rate=rate,
                rate_label=label,
                federal_cents=sum(federal),
                municipal_cents=net - sum(federal),
                booking_count=len(rows),
            )
        )
    titles = []
    for title in TITLE_ORDER:
        cs = [c for c in categories if c.federal_title == title]
        if not cs and title not in drawn:
            continue
        titles.append(
            TitleLine(
                federal_title=title,
                title_name=TITLE_NAMES[title],
                expenditure_cents=sum(c.expenditure_cents for c in cs),
                receipts_cents=sum(c.receipts_cents for c in cs),
                net_cents=sum(c.net_cents for c in cs),
                federal_cents=sum(c.federal_cents for c in cs),
                municipal_cents=sum(c.municipal_cents for c in cs),
                drawn_cents=drawn.get(title, 0),
                booking_count=sum(c.booking_count for c in cs),
            )
        )
    if kdu == "auto":
        net = sum(b.net_cents for b in shared if b.category == "kdu")
        p, f = Decimal("0.719"), Decimal("0.721")
        kdu = KduLine("BW", 2025, net, p, f, share_cents(net, p), share_cents(net, f))
    # Each title's funds drawn as one draw at the end of March (Mittelabrufe lists them).
    draws = [
        DrawLine(title, date(2025, 3, 31), cents, f"HKR-2025-{i:03d}", "kasse")
        for i, (title, cents) in enumerate(drawn.items())
        if cents
    ]
    if shuffle:  # the writer must not rely on the builder's order
        random.Random(4711).shuffle(shared)
    return KoaVvReport(
        year=2025,
        quarter=1,
        land="BW",
        as_of=AS_OF,
        last_position=4242,
        program_version="koa-ledger 0.1.0",
        store="sqlite:var/koa.sqlite",
        categories=categories,
        titles=titles,
        kdu=kdu,
        belege=shared,
        parameters=[("Land", "BW"), ("Verwaltungskostenanteil des Bundes", "0.874"), ("Satz kdu", "0.721")],
        not_yet_built=dict(NOT_YET_BUILT if not_yet_built is None else not_yet_built),
        draws=draws,
    )


def standard_report() -> KoaVvReport:
    """Every title, a receipt, a negative-free and a rounding-heavy category; also imported by the
    cross-process determinism test."""
    spec = [
        ("buergergeld", [56_300, 56_300, 112_601, -56_300]),
        ("einmal_bund", [12_345]),
        ("egt.aktivierung", [2_350_000, 99_999]),
        ("egt.weiterbildung", [1_234_567]),
        ("vwk.personal", [510_033, 499_999, 1]),
        ("vwk.sachkosten", [77_777]),
        ("kdu", [65_001, 70_003, -1_234, 48_999]),
        ("but", [4_500]),
        ("kdu_sonst", [150_000]),
    ]
    belege, n = [], 0
    for code, amounts in spec:
        for amount in amounts:
            belege.append(beleg(f"K-{code[:3].upper()}-{n:03d}", code, amount, n))
            n += 1
    return make_report(belege, drawn={"1101/681 12": 200_000, "1101/685 11": 5_000_000, "1101/636 13": 0})


# ---------------------------------------------------------------------------------------------
# Reading back


def to_cents(value) -> int:
    """A number read back (float or int) as exact cents."""
    cents = Decimal(repr(value)) * 100
    assert cents == cents.to_integral_value(), value
    return int(cents)


def number(value) -> Decimal:
    if value is None or isinstance(value, str):
        return Decimal(0)  # as Excel's SUM does with empty and text cells
    return Decimal(repr(value))


_REF = r"\$?([A-Z]+)\$?(\d+)"


def evaluate(wb: LoadedWorkbook, sheet: str, formula: str) -> Decimal:
    """The value of the workbook's formulas: =SUM(A1:A9,B3,...) and =X-Y, recursively."""
    ws = wb[sheet]

    def cell_value(coord: str) -> Decimal:
        cell = ws[coord]
        return evaluate(wb, sheet, cell.value) if cell.data_type == "f" else number(cell.value)

    if m := re.fullmatch(r"=SUM\((.*)\)", formula):
        total = Decimal(0)
        for arg in m.group(1).split(","):
            lo_col, lo_row, hi_col, hi_row = range_boundaries(arg.replace("$", ""))
            for r in range(lo_row, hi_row + 1):
                for c in range(lo_col, hi_col + 1):
                    total += cell_value(f"{get_column_letter(c)}{r}")
        return total
    if m := re.fullmatch(rf"={_REF}-{_REF}", formula):
        return cell_value(f"{m[1]}{m[2]}") - cell_value(f"{m[3]}{m[4]}")
    raise AssertionError(f"formula the test cannot evaluate: {formula}")


def header_columns(ws, header_row: int) -> dict[str, str]:
    return {c.value: c.column_letter for c in ws[header_row] if c.value}


def find_row(ws, text: str, col: str = "A") -> int:
    rows = [c.row for c in ws[col] if c.value == text]
    assert len(rows) == 1, (ws.title, text, rows)
    return rows[0]


def header_row_of(ws, first_label: str) -> int:
    return find_row(ws, first_label)


def all_text(ws) -> str:
    return "\n".join(str(c.value) for row in ws.iter_rows() for c in row if c.value is not None)


def parse_lines(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"Belegliste Zeilen (\d+)–(\d+)", text)
    assert m, text
    return int(m[1]), int(m[2])


def belegliste(path: Path) -> list[list[str]]:
    """The Belegliste beside the workbook at path, as rows of text (index 0 is line 1, the header)."""
    import csv
    import io

    return list(csv.reader(io.StringIO(belege_path(path).read_bytes().decode("utf-8"))))


def list_order(belege) -> list[BelegRow]:
    return sorted(
        belege, key=lambda b: (TITLE_ORDER.index(b.federal_title), b.category, b.quarter, b.booking_key)
    )


@pytest.fixture(scope="module")
def standard(tmp_path_factory) -> tuple[KoaVvReport, Path, LoadedWorkbook]:
    report = standard_report()
    path = tmp_path_factory.mktemp("koavv") / "koa-vv-2025-Q1.xlsx"
    write_workbook(report, path)
    return report, path, load_workbook(path)


# ---------------------------------------------------------------------------------------------
# Figures


SHEETS = ["Übersicht", "Verwaltungskosten", "Eingliederung", "KdU", "Mittelabrufe", "Belege", "Protokoll"]


def test_sheets_in_order(standard) -> None:
    _, _, wb = standard
    assert wb.sheetnames == SHEETS


def test_overview_figures_to_the_cent(standard) -> None:
    report, _, wb = standard
    ws = wb["Übersicht"]
    hr = header_row_of(ws, "Titel / Kategorie")
    col = header_columns(ws, hr)
    assert list(col) == [
        "Titel / Kategorie",
        "Bezeichnung",
        "Ausgaben",
        "Einnahmen",
        "Netto",
        "Satz Bund",
        "Grundlage des Satzes",
        "Bundesanteil",
        "Kommunaler Anteil",
        "Buchungen",
        "Abgerufene Mittel",
        DIFFERENCE_LABEL,
        "Belege",
    ]
    money = {
        "Ausgaben": "expenditure_cents",
        "Einnahmen": "receipts_cents",
        "Netto": "net_cents",
        "Bundesanteil": "federal_cents",
        "Kommunaler Anteil": "municipal_cents",
    }
    for c in report.categories:
        r = find_row(ws, c.category)
        assert ws[f"{col['Bezeichnung']}{r}"].value == c.category_name
        for label, field in money.items():
            cell = ws[f"{col[label]}{r}"]
            assert to_cents(cell.value) == getattr(c, field), (c.category, label)
            assert cell.number_format == MONEY_FORMAT
        rate = ws[f"{col['Satz Bund']}{r}"]
        assert Decimal(repr(rate.value)) == c.federal_rate and rate.number_format == PERCENT_FORMAT
        assert ws[f"{col['Grundlage des Satzes']}{r}"].value == c.rate_label
        assert ws[f"{col['Buchungen']}{r}"].value == c.booking_count
    for t in report.titles:
        r = find_row(ws, f"Summe {t.federal_title}")
        for label, field in money.items():
            formula = ws[f"{col[label]}{r}"].value
            assert formula.startswith("=SUM(")
            assert evaluate(wb, "Übersicht", formula) * 100 == getattr(t, field), (t.federal_title, label)
        assert evaluate(wb, "Übersicht", ws[f"{col['Buchungen']}{r}"].value) == t.booking_count
        assert to_cents(ws[f"{col['Abgerufene Mittel']}{r}"].value) == t.drawn_cents
        diff = ws[f"{col[DIFFERENCE_LABEL]}{r}"].value
        assert diff == f"={col['Bundesanteil']}{r}-{col['Abgerufene Mittel']}{r}"
        assert evaluate(wb, "Übersicht", diff) * 100 == t.to_settle_cents
        # the title heading row names the title
        heading = find_row(ws, t.federal_title)
        assert ws[f"B{heading}"].value == t.title_name and heading < r
    r = find_row(ws, "Gesamt")
    for label, field in money.items():
        total = sum(getattr(t, field) for t in report.titles)
        assert evaluate(wb, "Übersicht", ws[f"{col[label]}{r}"].value) * 100 == total
    assert evaluate(wb, "Übersicht", ws[f"{col['Abgerufene Mittel']}{r}"].value) * 100 == sum(
        t.drawn_cents for t in report.titles
    )
    assert evaluate(wb, "Übersicht", ws[f"{col[DIFFERENCE_LABEL]}{r}"].value) * 100 == sum(
        t.to_settle_cents for t in report.titles
    )
    assert evaluate(wb, "Übersicht", ws[f"{col['Buchungen']}{r}"].value) == len(report.belege)


def test_title_block(standard) -> None:
    report, _, wb = standard
    ws = wb["Übersicht"]
    assert ws["B" + str(find_row(ws, "Land"))].value == "BW"
    assert ws["B" + str(find_row(ws, "Zeitraum"))].value == report.period_label == "2025 Q1"
    stand = ws["B" + str(find_row(ws, "Stand"))].value
    assert "15.04.2025 10:30:15 UTC" in stand and "4242" in stand
    assert ws["B" + str(find_row(ws, "SHA-256 der Zahlen"))].value == figures_sha256(report)
    assert EMPTY_PERIOD not in all_text(ws)


def test_verwaltungskosten(standard) -> None:
    report, _, wb = standard
    ws = wb["Verwaltungskosten"]
    col = header_columns(ws, header_row_of(ws, "Kostenart"))
    lines = [c for c in report.categories if c.category.startswith("vwk.")]
    assert len(lines) == 2
    for c in lines:
        r = find_row(ws, c.category)
        assert ws[f"{col['Bezeichnung']}{r}"].value == c.category_name
        assert to_cents(ws[f"{col['Ausgaben']}{r}"].value) == c.expenditure_cents
        assert to_cents(ws[f"{col['Einnahmen']}{r}"].value) == c.receipts_cents
        assert to_cents(ws[f"{col['Netto']}{r}"].value) == c.net_cents
        assert ws[f"{col['Buchungen']}{r}"].value == c.booking_count
        assert ws[f"{col['Grundlage des Satzes']}{r}"].value == c.rate_label
        assert Decimal(repr(ws[f"{col['Anteil Bund']}{r}"].value)) == c.federal_rate
        assert ws[f"{col['Anteil Bund']}{r}"].number_format == PERCENT_FORMAT
        assert to_cents(ws[f"{col['Bundesanteil']}{r}"].value) == c.federal_cents
        assert to_cents(ws[f"{col['Kommunaler Anteil']}{r}"].value) == c.municipal_cents
    r = find_row(ws, "Summe")
    title = next(t for t in report.titles if t.federal_title == "1101/636 13")
    for label, field in (
        ("Netto", "net_cents"),
        ("Bundesanteil", "federal_cents"),
        ("Kommunaler Anteil", "municipal_cents"),
        ("Ausgaben", "expenditure_cents"),
        ("Einnahmen", "receipts_cents"),
    ):
        assert evaluate(wb, ws.title, ws[f"{col[label]}{r}"].value) * 100 == getattr(title, field)


def test_eingliederung(standard) -> None:
    report, _, wb = standard
    ws = wb["Eingliederung"]
    col = header_columns(ws, header_row_of(ws, "Instrument"))
    lines = [c for c in report.categories if c.category.startswith("egt.")]
    for c in lines:
        r = find_row(ws, c.category)
        assert ws[f"{col['Bezeichnung']}{r}"].value == c.category_name
        assert to_cents(ws[f"{col['Ausgaben (netto)']}{r}"].value) == c.net_cents
        assert ws[f"{col['Buchungen']}{r}"].value == c.booking_count
        for label in ("Plan", "Zuteilung", "Bindungen", "Verfügbar"):
            assert ws[f"{col[label]}{r}"].value is None  # not in the model: empty, not 0
    r = find_row(ws, "Summe")
    assert evaluate(wb, ws.title, ws[f"{col['Ausgaben (netto)']}{r}"].value) * 100 == sum(
        c.net_cents for c in lines
    )
    assert evaluate(wb, ws.title, ws[f"{col['Buchungen']}{r}"].value) == sum(c.booking_count for c in lines)


def test_kdu(standard) -> None:
    report, _, wb = standard
    ws = wb["KdU"]
    hr = header_row_of(ws, "Land")
    col = header_columns(ws, hr)
    r, k = hr + 1, report.kdu
    assert ws[f"A{r}"].value == "BW" and ws[f"B{r}"].value == 2025
    assert to_cents(ws[f"{col['Netto § 22 Abs. 1 SGB II']}{r}"].value) == k.net_cents
    assert Decimal(repr(ws[f"{col['Quote vorläufig']}{r}"].value)) == k.provisional_rate
    assert Decimal(repr(ws[f"{col['Quote endgültig']}{r}"].value)) == k.final_rate
    assert to_cents(ws[f"{col['Bundesanteil vorläufig']}{r}"].value) == k.federal_provisional_cents
    assert to_cents(ws[f"{col['Bundesanteil endgültig']}{r}"].value) == k.federal_final_cents
    diff = ws[f"{col['Differenz (endgültig − vorläufig)']}{r}"].value
    assert evaluate(wb, "KdU", diff) * 100 == k.difference_cents


def test_kdu_without_quota(tmp_path: Path) -> None:
    report = standard_report()
    k = report.kdu
    report = replace(report, kdu=replace(k, provisional_rate=None, federal_provisional_cents=None))
    path = tmp_path / "k.xlsx"
    write_workbook(report, path)
    ws = load_workbook(path)["KdU"]
    hr = header_row_of(ws, "Land")
    col = header_columns(ws, hr)
    assert ws[f"{col['Quote vorläufig']}{hr + 1}"].value == NO_QUOTA
    assert ws[f"{col['Bundesanteil vorläufig']}{hr + 1}"].value is None
    assert to_cents(ws[f"{col['Bundesanteil endgültig']}{hr + 1}"].value) == k.federal_final_cents
    assert not str(ws[f"{col['Differenz (endgültig − vorläufig)']}{hr + 1}"].value).startswith("=")

    write_workbook(replace(report, kdu=None), path)
    assert "keine Quote hinterlegt" in all_text(load_workbook(path)["KdU"])


def test_belegliste_rows_are_the_bookings(standard) -> None:
    """Every booking once, in list order (title, category, quarter, key), every field as in the
    report; the header names the fields."""
    report, path, _ = standard
    rows = belegliste(path)
    assert tuple(rows[0]) == koavv_belege.FIELDS
    expected = list_order(report.belege)
    assert [r[0] for r in rows[1:]] == [b.booking_key for b in expected]
    for r, b in zip(rows[1:], expected, strict=True):
        assert r == [str(v) for v in koavv_belege.csv_values(b)]
        assert r[6].endswith("+00") and r[3] == b.payment_date.isoformat()
        assert [int(x) for x in r[10:13]] == [b.net_cents, b.federal_cents, b.municipal_cents]
    raw = belege_path(path).read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw and raw.count(b"\n") == len(report.belege) + 1


def test_belegverzeichnis_groups_add_up_and_point_into_the_list(standard) -> None:
    report, path, wb = standard
    ws = wb["Belege"]
    hr = header_row_of(ws, BELEGE_HEADER[0])
    assert tuple(c.value for c in ws[hr]) == BELEGE_HEADER
    rows = belegliste(path)
    seen = 0
    for row in ws.iter_rows(min_row=hr + 1, values_only=True):
        title, category, quarter, count, net, federal, municipal, first, last = row
        lines = rows[first - 1 : last]
        assert len(lines) == count == last - first + 1 and first == seen + 2
        assert all((r[8], r[7], int(r[2])) == (title, category, quarter) for r in lines)
        for value, col in ((net, 10), (federal, 11), (municipal, 12)):
            assert to_cents(value) == sum(int(r[col]) for r in lines)
        seen += count
    assert seen == len(report.belege)


def test_every_formula_is_accounted_for_and_evaluates(standard) -> None:
    """No formula in the workbook that the figure tests did not check: they are exactly the totals
    rows' cells, and each evaluates to a stored figure (or a sum of them)."""
    report, _, wb = standard
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    formulas = {(c.parent.title, c.coordinate): c.value for c in cells if c.data_type == "f"}
    # a formula is stored as one, not as text that looks like one
    assert all(c.data_type == "f" for c in cells if isinstance(c.value, str) and c.value.startswith("="))
    assert formulas
    rows_with_formulas = {(s, re.sub(r"[A-Z]+", "", coord)) for s, coord in formulas}
    ov = wb["Übersicht"]
    expected_rows = {("Übersicht", str(find_row(ov, f"Summe {t.federal_title}"))) for t in report.titles}
    expected_rows |= {("Übersicht", str(find_row(ov, "Gesamt")))}
    expected_rows |= {(s, str(find_row(wb[s], "Summe"))) for s in ("Verwaltungskosten", "Eingliederung")}
    kdu_header = header_row_of(wb["KdU"], "Land")
    expected_rows |= {("KdU", str(kdu_header + 1))}
    transfers = wb["Mittelabrufe"]
    expected_rows |= {
        ("Mittelabrufe", str(find_row(transfers, f"Summe {d.federal_title}"))) for d in report.draws
    }
    expected_rows |= {("Mittelabrufe", str(find_row(transfers, "Gesamt")))}
    assert rows_with_formulas == expected_rows
    for (sheet, _), formula in formulas.items():
        evaluate(wb, sheet, formula)  # every one parses and its references resolve


def test_belege_column_points_to_exactly_the_categorys_bookings(standard) -> None:
    report, path, wb = standard
    rows = belegliste(path)
    planned = {c.category: c.belege_rows for c in plan_belege(report).categories}
    index = wb["Belege"]
    for sheet_name, first_col in (
        ("Übersicht", "Titel / Kategorie"),
        ("Verwaltungskosten", "Kostenart"),
        ("Eingliederung", "Instrument"),
    ):
        ws = wb[sheet_name]
        col = header_columns(ws, header_row_of(ws, first_col))["Belege"]
        for c in report.categories:
            if sheet_name != "Übersicht" and not c.category.startswith(
                first_col == "Kostenart" and "vwk." or "egt."
            ):
                continue
            cell = ws[f"{col}{find_row(ws, c.category)}"]
            first, last = parse_lines(cell.value)
            assert (first, last) == planned[c.category]
            keys = [r[0] for r in rows[first - 1 : last]]
            assert keys == [
                b.booking_key for b in list_order(b for b in report.belege if b.category == c.category)
            ]
            target = int(cell.hyperlink.location.removeprefix("Belege!A"))
            assert index[f"B{target}"].value == c.category and index[f"H{target}"].value == first


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 7), min_size=len(CATALOGUE), max_size=len(CATALOGUE)))
def test_plan_covers_each_category_exactly(counts: list[int]) -> None:
    belege, n = [], 0
    for code, count in zip(CATALOGUE, counts, strict=True):
        for _ in range(count):
            belege.append(beleg(f"P-{n:03d}", code, 1_000 + n, n))
            n += 1
    report = make_report(belege)
    planned = plan_belege(report)
    assert planned.belege is report.belege  # the figures (and their hash) stay as they were
    line = {b.booking_key: i + 2 for i, b in enumerate(list_order(report.belege))}
    for c in planned.categories:
        first, last = c.belege_rows
        assert last - first + 1 == c.booking_count
        assert set(range(first, last + 1)) == {
            line[b.booking_key] for b in report.belege if b.category == c.category
        }


def test_protokoll(standard) -> None:
    report, path, wb = standard
    ws = wb["Protokoll"]
    values = {row[0].value: row[1].value for row in ws.iter_rows(min_row=2) if row[0].value}
    assert values["Stand (ISO 8601, wie abgefragt)"] == "2025-04-15T10:30:15.123456+00:00"
    assert values["Letzte Ereignisposition"] == 4242
    assert values["Zeitraum"] == report.period_label
    assert values["Land"] == "BW"
    assert values["Datenbestand"] == report.store
    assert values["Programmversion"] == report.program_version
    assert values["SHA-256 der Zahlen"] == figures_sha256(report)
    assert values["Buchungen in der Belegliste"] == len(report.belege)
    assert values["SHA-256 der Belegliste"] == hashlib.sha256(belege_path(path).read_bytes()).hexdigest()
    # the parameters, in order, under their heading; then the notes under theirs
    rows = [(row[0].value, row[1].value) for row in ws.iter_rows(min_row=2)]
    start = rows.index(("Parameter", None)) + 1
    assert rows[start : start + len(report.parameters)] == report.parameters
    start = rows.index(("Noch nicht enthalten", None)) + 1
    assert rows[start:] == list(NOT_YET_BUILT.items())


def plain_figures_sha256(report) -> str:
    """The definition: SHA-256 of the canonical JSON of figures(report)."""
    import json

    text = json.dumps(figures(report), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_figures_hash_covers_the_belegliste(tmp_path: Path) -> None:
    report = standard_report()
    path = tmp_path / "h.xlsx"
    write_workbook(report, path)
    assert figures(report)["belege_sha256"] == hashlib.sha256(belege_path(path).read_bytes()).hexdigest()
    changed = replace(report, belege=[replace(report.belege[0], approved_by="Müller"), *report.belege[1:]])
    for r in (report, replace(report, kdu=None), make_report([], drawn={"1101/681 12": 5}), changed):
        assert figures_sha256(r) == plain_figures_sha256(r)
    assert figures_sha256(changed) != figures_sha256(report)  # one booking's field moves the hash


# ---------------------------------------------------------------------------------------------
# Made for people: formats, panes, printing, notes


def test_print_setup_on_every_sheet(standard) -> None:
    _, _, wb = standard
    headers = {
        "Übersicht": ("Titel / Kategorie", "C"),
        "Verwaltungskosten": ("Kostenart", "C"),
        "Eingliederung": ("Instrument", "C"),
        "KdU": ("Land", "A"),
        "Mittelabrufe": ("Titel", "A"),
        "Belege": ("Titel", "C"),
        "Protokoll": ("Angabe", "A"),
    }
    for ws in wb.worksheets:
        label, freeze_col = headers[ws.title]
        hr = header_row_of(ws, label)
        assert ws.freeze_panes == f"{freeze_col}{hr + 1}", ws.title
        assert ws.print_title_rows in (f"{hr}:{hr}", f"${hr}:${hr}"), ws.title
        assert ws.page_setup.orientation == "landscape"
        assert ws.sheet_properties.pageSetUpPr.fitToPage is True
        assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0)
        assert ws[f"A{hr}"].font.b, ws.title
        assert all(ws.column_dimensions[get_column_letter(i)].width >= 8 for i in range(1, ws.max_column + 1))
        assert "&P" in ws.oddFooter.right.text


def test_not_yet_built_notes(tmp_path: Path, standard) -> None:
    _, _, wb = standard
    assert NOT_YET_BUILT["Verwaltungskosten"] in all_text(wb["Verwaltungskosten"])
    assert NOT_YET_BUILT["Eingliederung"] in all_text(wb["Eingliederung"])
    overview = all_text(wb["Übersicht"])
    assert all(why in overview for why in NOT_YET_BUILT.values())
    ws = wb["Verwaltungskosten"]
    note = ws[f"A{find_row(ws, NOT_YET_BUILT['Verwaltungskosten'])}"]
    assert note.font.b and note.fill.fgColor.rgb.endswith("FFEB9C")

    path = tmp_path / "built.xlsx"
    write_workbook(replace(standard_report(), not_yet_built={}), path)
    wb = load_workbook(path)
    for why in NOT_YET_BUILT.values():
        assert all(why not in all_text(ws) for ws in wb.worksheets)


def test_empty_report(tmp_path: Path) -> None:
    report = make_report([], kdu=None)
    assert report.is_empty
    path = tmp_path / "empty.xlsx"
    write_workbook(report, path)
    wb = load_workbook(path)
    assert wb.sheetnames == SHEETS
    assert EMPTY_PERIOD in all_text(wb["Übersicht"]) and EMPTY_PERIOD in all_text(wb["Protokoll"])
    ov = wb["Übersicht"]
    r = find_row(ov, "Gesamt")
    assert all(evaluate(wb, "Übersicht", ov[f"{c}{r}"].value) == 0 for c in "CDEHIJKL")
    assert EMPTY_PERIOD in all_text(wb["Belege"])
    assert belegliste(path) == [list(koavv_belege.FIELDS)]
    for s in ("Verwaltungskosten", "Eingliederung"):
        ws = wb[s]
        r = find_row(ws, "Summe")
        assert all(
            evaluate(wb, s, c.value) == 0
            for c in ws[r]
            if isinstance(c.value, str) and c.value.startswith("=")
        )


def test_title_with_draws_but_no_bookings(tmp_path: Path) -> None:
    report = make_report([beleg("X-1", "buergergeld", 100)], drawn={"1101/685 11": 70_000})
    path = tmp_path / "d.xlsx"
    write_workbook(report, path)
    wb = load_workbook(path)
    ov = wb["Übersicht"]
    col = header_columns(ov, header_row_of(ov, "Titel / Kategorie"))
    r = find_row(ov, "Summe 1101/685 11")
    assert evaluate(wb, "Übersicht", ov[f"{col['Bundesanteil']}{r}"].value) == 0
    assert evaluate(wb, "Übersicht", ov[f"{col[DIFFERENCE_LABEL]}{r}"].value) * 100 == -70_000
    assert ov[f"B{r - 1}"].value == "keine Buchungen im Zeitraum"


def test_mittelabrufe_list_the_draws_and_repayments_behind_funds_drawn(tmp_path: Path) -> None:
    """Each title's funds drawn in the Übersicht lead to its draws and repayments: their total on
    Mittelabrufe is the figure (draws less repayments), and the figure links to that total."""
    bg, egt = "1101/681 12", "1101/685 11"
    report = make_report(
        [beleg("X-1", "buergergeld", 150_000_00), beleg("X-2", "egt.aktivierung", 90_000_00)],
        drawn={bg: 100_000_00, egt: 80_000_00},
    )
    draws = [*report.draws, DrawLine(bg, date(2025, 1, 31), 60_000_00, "HKR-2025-001", "kasse")]
    repayments = [RepaymentLine(bg, date(2025, 2, 14), 10_000_00, 12_34, "RZ-2025-1", "kasse")]
    titles = [
        replace(t, drawn_cents=t.drawn_cents + 60_000_00 - 10_000_00) if t.federal_title == bg else t
        for t in report.titles
    ]
    report = replace(report, draws=draws, repayments=repayments, titles=titles)
    path = tmp_path / "m.xlsx"
    write_workbook(report, path)
    wb = load_workbook(path)
    ws = wb["Mittelabrufe"]
    col = header_columns(ws, header_row_of(ws, "Titel"))
    rows = [
        (r[0].value, r[1].value.date(), r[2].value, r[3].value, to_cents(r[4].value), r[6].value)
        for r in ws.iter_rows(min_row=header_row_of(ws, "Titel") + 1)
        if r[0].value in (bg, egt) and isinstance(r[1].value, datetime)
    ]
    assert rows == [  # per title in settlement order, by value date
        (bg, date(2025, 1, 31), "Abruf (HKR)", "HKR-2025-001", 60_000_00, "kasse"),
        (bg, date(2025, 2, 14), "Rückzahlung an den Bund", "RZ-2025-1", -10_000_00, "kasse"),
        (bg, date(2025, 3, 31), "Abruf (HKR)", "HKR-2025-000", 100_000_00, "kasse"),
        (egt, date(2025, 3, 31), "Abruf (HKR)", "HKR-2025-001", 80_000_00, "kasse"),
    ]
    repaid = find_row(ws, "RZ-2025-1", col["Beleg"])
    assert to_cents(ws[f"{col['Zinsen (kommunal)']}{repaid}"].value) == 12_34
    ov = wb["Übersicht"]
    ov_col = header_columns(ov, header_row_of(ov, "Titel / Kategorie"))
    for t in report.titles:
        total = find_row(ws, f"Summe {t.federal_title}")
        assert evaluate(wb, "Mittelabrufe", ws[f"{col['Betrag']}{total}"].value) * 100 == t.drawn_cents
        drawn = ov[f"{ov_col['Abgerufene Mittel']}{find_row(ov, f'Summe {t.federal_title}')}"]
        assert to_cents(drawn.value) == t.drawn_cents
        assert drawn.hyperlink.location == f"Mittelabrufe!A{total}"
    gesamt = find_row(ws, "Gesamt")
    assert evaluate(wb, "Mittelabrufe", ws[f"{col['Betrag']}{gesamt}"].value) * 100 == 230_000_00
    assert evaluate(wb, "Mittelabrufe", ws[f"{col['Zinsen (kommunal)']}{gesamt}"].value) * 100 == 12_34
    figs = figures(report)
    assert [d["document_ref"] for d in figs["draws"]] == ["HKR-2025-000", "HKR-2025-001", "HKR-2025-001"]
    assert figs["repayments"][0]["recorded_by"] == "kasse"
    # a draw's voucher is part of the figures: the hash moves with it
    moved = replace(report, draws=[replace(draws[0], document_ref="HKR-2025-999"), *draws[1:]])
    assert figures_sha256(moved) != figures_sha256(report)


def test_a_period_without_draws_says_so_on_mittelabrufe(tmp_path: Path) -> None:
    report = make_report([beleg("X-1", "buergergeld", 100)])
    assert "draws" not in figures(report)  # absent, so earlier reports keep their hash
    path = tmp_path / "none.xlsx"
    write_workbook(report, path)
    wb = load_workbook(path)
    assert NO_TRANSFERS in all_text(wb["Mittelabrufe"])
    ov = wb["Übersicht"]
    drawn = ov[f"K{find_row(ov, 'Summe 1101/681 12')}"]
    assert to_cents(drawn.value) == 0 and drawn.hyperlink is None


def test_no_value_of_the_belegliste_can_look_like_a_formula() -> None:
    """The Belegliste is CSV, which spreadsheet programs open with formulas evaluated. Its values
    are safe by the booking rules: every text field starts with a letter or digit (keys, vouchers,
    case numbers, cost centres, users, category codes), so none can start with = + - @."""
    from domain.booking import check_user
    from domain.catalogue import Catalogue
    from domain.errors import ValidationError
    from tests.factories import booking

    catalogue = Catalogue.load()
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", '=HYPERLINK("x")'):
        for field in ("key", "document_ref", "case_ref", "cost_centre", "contract_ref"):
            with pytest.raises(ValidationError):
                replace(booking(), **{field: bad}).validate(catalogue)
        with pytest.raises(ValidationError):
            check_user(bad, "approved_by")
    assert all(code[0].isalnum() for code in catalogue.codes())


def test_text_that_looks_like_a_formula_stays_text_in_the_workbook(tmp_path: Path) -> None:
    report = standard_report()
    c = report.categories[0]
    report = replace(
        report,
        categories=[replace(c, category_name="=HYPERLINK(1)", rate_label="#N/A"), *report.categories[1:]],
    )
    path = tmp_path / "f.xlsx"
    write_workbook(report, path)
    ws = load_workbook(path)["Übersicht"]
    r = find_row(ws, c.category)
    assert [ws[f"{x}{r}"].value for x in "BG"] == ["=HYPERLINK(1)", "#N/A"]
    assert [ws[f"{x}{r}"].data_type for x in "BG"] == ["s", "s"]


# ---------------------------------------------------------------------------------------------
# Reproducible and atomic


def test_byte_identical_twice(tmp_path: Path) -> None:
    report = standard_report()
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    write_workbook(report, a)
    time.sleep(2.1)  # zip times have a 2-second resolution
    write_workbook(standard_report(), b)
    assert a.read_bytes() == b.read_bytes()
    assert belege_path(a).read_bytes() == belege_path(b).read_bytes()
    core = load_workbook(a).properties
    assert core.created == core.modified == datetime(2025, 4, 15, 10, 30, 15)


def test_byte_identical_across_processes(tmp_path: Path, standard) -> None:
    """`koa submit` exports again in another process: hash seed and time zone must not matter."""
    _, path, _ = standard
    out = tmp_path / "again.xlsx"
    code = (
        "import sys; from pathlib import Path; from tests.test_koavv_workbook import standard_report; "
        "from exports.koavv_workbook import write_workbook; write_workbook(standard_report(), Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "America/New_York"}
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, env=env, check=True, timeout=120)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()
    assert belege_path(out).read_bytes() == belege_path(path).read_bytes()


def test_inconsistent_report_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    report = standard_report()
    path = tmp_path / "keep.xlsx"
    path.write_bytes(b"the old file")
    t = report.titles[0]
    bad_title = replace(report, titles=[replace(t, federal_cents=t.federal_cents + 1), *report.titles[1:]])
    c = report.categories[0]
    bad_line = replace(
        report, categories=[replace(c, booking_count=c.booking_count + 1), *report.categories[1:]]
    )
    extra = replace(report, belege=[*report.belege, beleg("Z-1", "kdu_sonst", 0)])
    draws_off = replace(
        report, draws=[replace(report.draws[0], amount_cents=report.draws[0].amount_cents - 1)]
    )
    for bad, message in (
        (bad_title, "1101/681 12: federal_cents is not the sum"),
        (draws_off, "funds drawn are not its draws less its repayments"),
        (bad_line, "do not add up"),
        (extra, "do not add up"),
    ):
        with pytest.raises(ValueError, match=message):
            write_workbook(bad, path)
    no_line = replace(report, categories=[c for c in report.categories if c.category != "but"])
    with pytest.raises(ValueError, match="without a category line: but"):
        write_workbook(no_line, path)
    assert path.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.xlsx"]


def test_replaces_an_existing_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    path.write_bytes(b"old")
    write_workbook(standard_report(), path)
    assert load_workbook(path).sheetnames[0] == "Übersicht"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.belege.csv", "out.xlsx"]


def test_column_letters_used_by_tests_match_the_header() -> None:
    # the Belegverzeichnis column positions the tests rely on
    assert BELEGE_HEADER[column_index_from_string("B") - 1] == "Kategorie"
    assert BELEGE_HEADER[column_index_from_string("H") - 1] == "Belegliste ab Zeile"
