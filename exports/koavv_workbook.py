"""The KoA-VV settlement workbook (xlsx): what finance staff print, sign and send to the Bund.

Sheets: Übersicht (per federal title its categories, subtotal, funds drawn and the difference to
settle), Verwaltungskosten, Eingliederung, KdU, Mittelabrufe (the draws and repayments behind the
funds drawn, per title), Belege (the Belegverzeichnis: per category and
quarter the number and sums of its bookings and their lines in the Belegliste) and Protokoll (how
the report was made, the SHA-256 of its figures and of the Belegliste). Every total is an Excel
formula over the rows above it, and the workbook refuses a report whose stored totals would not
equal those formulas: what the reader recomputes is what was reported.

The bookings themselves are in the Belegliste, a CSV file written beside the workbook
(`<name>.belege.csv`, exports/koavv_belege.py): a year of a big city has millions of them, which
no workbook writer puts into sheets in seconds (openpyxl managed ~5,800 rows/s), and which would
need several sheets beyond Excel's row limit anyway. The workbook states the list's SHA-256 (the
figures' hash covers it too), so the list is as much part of the report as a sheet; from each
figure the Belege column leads to the lines of its bookings in the list.

Design choices, and why:

- **write_only mode**: openpyxl's write-only worksheets stream each row to a temporary file and
  write strings inline (no shared-string table in memory). Everything the sheets need works
  in that mode (freeze panes, column widths, print titles, page setup, hyperlinks, auto filter) as
  long as sheet-level settings are made before the first row is appended; hence every sheet
  computes its header row before writing.
- **Byte-identical output**: the settlement is checked by the SHA-256 of the file (`koa submit`
  exports again and compares). openpyxl stamps the save time into docProps/core.xml and the zip
  entries carry file times, so the saved file is copied entry by entry into a new zip with fixed
  entry metadata (1980-01-01, Unix, 0644) and a core.xml whose dates are the report's as-of moment.
  Nothing else in the output depends on time, randomness or hash order (a test checks this across
  processes with different hash seeds). The same openpyxl, lxml and zlib give the same bytes.
- **Atomic**: both files are written under temporary names in the target directory and renamed
  over the targets (the Belegliste first), so a reader sees an old file or a complete new one,
  never half a file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.xml.functions import tostring

from domain.money import cents_to_decimal, format_eur
from exports import koavv_belege
from exports.koavv_data import figures_sha256
from exports.koavv_model import TITLE_NAMES, CategoryLine, KoaVvReport, drawn_by_title

BELEGLISTE_SUFFIX = ".belege.csv"

# Number formats. Excel and LibreOffice localise separators: a German installation shows
# 1.234,56 € and 87,4 %. The euro sign is quoted because unquoted literals other than a few ASCII
# characters are not portable in format codes. Rates show one decimal and up to two more only when
# a rate has them (0.8485 must not print as 84,9 %).
MONEY_FORMAT = '#,##0.00 "€"'
PERCENT_FORMAT = "0.0## %"
DATE_FORMAT = "DD.MM.YYYY"
DATETIME_FORMAT = "DD.MM.YYYY HH:MM:SS"
COUNT_FORMAT = "#,##0"

EMPTY_PERIOD = "Im Zeitraum gibt es keine Buchungen."
NO_QUOTA = "keine Quote hinterlegt"
DIFFERENCE_LABEL = "Differenz (abzurufen + / zurückzuzahlen −)"

_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_CORE_XML = "docProps/core.xml"
_PAPER_A4 = "9"

_BOLD = Font(bold=True)
_HEADING = Font(bold=True, size=14)
_LINK = Font(color="0563C1", underline="single")
_BOLD_LINK = Font(bold=True, color="0563C1", underline="single")
_NOTE = Font(bold=True, color="9C0006")
_NOTE_FILL = PatternFill("solid", fgColor="FFEB9C")
_HEADER_FILL = PatternFill("solid", fgColor="D9D9D9")
_TITLE_FILL = PatternFill("solid", fgColor="F2F2F2")
_TOTAL_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_BORDER = Border(bottom=Side(style="thin"))
_TOTAL_BORDER = Border(top=Side(style="thin"))
_WRAP = Alignment(wrap_text=True, vertical="top")

# The figure columns every category row and every total row has, in Übersicht order.
_FIGURES = ("expenditure_cents", "receipts_cents", "net_cents", "federal_cents", "municipal_cents")


# ---------------------------------------------------------------------------------------------
# Where the bookings go


def belege_path(path: Path) -> Path:
    """The Belegliste beside a workbook: koa-vv-2025-Q1.xlsx -> koa-vv-2025-Q1.belege.csv."""
    return path.with_name(path.stem + BELEGLISTE_SUFFIX)


def plan_belege(report: KoaVvReport) -> KoaVvReport:
    """Return a copy of the report whose CategoryLine.belege_rows give the first and last line of
    the category's bookings in the Belegliste (ordered by federal title, category, quarter, key;
    line 1 is the header). The bookings themselves are not read: their groups say how many."""
    return _plan(report, koavv_belege.groups(report.belege))


def _plan(report: KoaVvReport, groups: Sequence[koavv_belege.Group]) -> KoaVvReport:
    spans: dict[str, list[int]] = {}
    for g in groups:
        if not g.booking_count:
            continue
        span = spans.setdefault(g.category, [g.first_line, g.last_line])
        if g.first_line != span[1] + 1 and g.first_line != span[0]:
            raise ValueError(f"the bookings of {g.category} are not together in the Belegliste")
        span[1] = g.last_line
    known = {c.category for c in report.categories}
    orphans = sorted(set(spans) - known)
    if orphans:
        raise ValueError(f"bookings of categories without a category line: {', '.join(orphans)}")
    categories = [replace(c, belege_rows=tuple(spans.get(c.category, (0, 0)))) for c in report.categories]
    return replace(report, categories=categories)


# ---------------------------------------------------------------------------------------------
# Consistency: the formulas in the workbook must give the reported figures


def _check_consistent(report: KoaVvReport, groups: Sequence[koavv_belege.Group]) -> None:
    """Refuse a report whose totals do not add up: the workbook's formulas would show other figures
    than the stored ones, or a figure would not lead to the bookings behind it."""
    problems: list[str] = []
    summed = (*_FIGURES, "booking_count")
    seen: set[str] = set()
    by_title: dict[str, list[int]] = defaultdict(lambda: [0] * len(summed))
    for c in report.categories:
        if c.category in seen:
            problems.append(f"category {c.category} appears twice")
        seen.add(c.category)
        if c.net_cents != c.expenditure_cents - c.receipts_cents:
            problems.append(f"{c.category}: net is not expenditure − receipts")
        if c.federal_cents + c.municipal_cents != c.net_cents:
            problems.append(f"{c.category}: federal + municipal share is not the net")
        sums = by_title[c.federal_title]
        for i, f in enumerate(summed):
            sums[i] += getattr(c, f)
    titles = {t.federal_title: t for t in report.titles}
    if len(titles) != len(report.titles):
        problems.append("a federal title appears twice")
    for title in sorted(set(by_title) | set(titles)):
        t = titles.get(title)
        if t is None:
            problems.append(f"categories under {title} but no title line")
            continue
        sums = by_title.get(title, [0] * len(summed))
        for i, f in enumerate(summed):
            if getattr(t, f) != sums[i]:
                problems.append(f"{title}: {f} is not the sum of its categories")
    transfers = drawn_by_title(report.draws, report.repayments)
    for title in sorted(set(transfers) | set(titles)):
        t = titles.get(title)
        if t is None:
            problems.append(f"funds drawn or repaid under {title} but no title line")
        elif t.drawn_cents != transfers.get(title, 0):
            problems.append(f"{title}: funds drawn are not its draws less its repayments (Mittelabrufe)")
    per_category: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for g in groups:
        agg = per_category[g.category]
        agg[0] += g.booking_count
        agg[1] += g.net_cents
        agg[2] += g.federal_cents
        agg[3] += g.municipal_cents
        if g.federal_cents + g.municipal_cents != g.net_cents:
            problems.append(f"{g.category} Q{g.quarter}: federal + municipal share is not the net")
    for c in report.categories:
        count, net, federal, municipal = per_category.get(c.category, (0, 0, 0, 0))
        if (count, net, federal, municipal) != (
            c.booking_count,
            c.net_cents,
            c.federal_cents,
            c.municipal_cents,
        ):
            problems.append(
                f"{c.category}: its bookings ({count}, net {net}, federal {federal}, "
                f"municipal {municipal} cents) do not add up to the line"
            )
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ValueError(f"inconsistent KoA-VV report: {shown}")


# ---------------------------------------------------------------------------------------------
# Cells


def _money(cents: int) -> Decimal:
    """Euros as an exact Decimal; openpyxl writes it with 16 significant digits (exact to the cent
    for any amount below 10^14 euros)."""
    return cents_to_decimal(cents)


def _utc_naive(moment: datetime) -> datetime:
    """Excel has no time zones: the workbook shows UTC, and says so. A naive moment is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _as_of_text(report: KoaVvReport) -> str:
    return f"{_utc_naive(report.as_of):%d.%m.%Y %H:%M:%S} UTC"


def _cell(
    ws: Any,
    value: Any,
    *,
    fmt: str | None = None,
    font: Font | None = None,
    fill: PatternFill | None = None,
    border: Border | None = None,
    align: Alignment | None = None,
    formula: bool = False,
) -> Cell:
    """A styled write-only cell. Text stays text even if it looks like a formula or an error code
    (a document reference '=A1' or '#N/A' from a payment run must not become one); only _formula
    makes formulas."""
    cell = WriteOnlyCell(ws, value)
    if isinstance(value, str) and cell.data_type in ("f", "e") and not formula:
        cell.data_type = "s"
    if fmt:
        cell.number_format = fmt
    if font:
        cell.font = font
    if fill:
        cell.fill = fill
    if border:
        cell.border = border
    if align:
        cell.alignment = align
    return cell


def _formula(ws: Any, formula: str, *, fmt: str = MONEY_FORMAT, font: Font | None = None, **kw: Any) -> Cell:
    assert formula.startswith("="), formula
    return _cell(ws, formula, fmt=fmt, font=font, formula=True, **kw)


def _link(ws: Any, lines: tuple[int, int], index_row: int | None) -> Cell | None:
    """Where the category's bookings are: their lines in the Belegliste, linked to the category's
    first row in the Belegverzeichnis."""
    first, last = lines
    if not first:
        return None
    cell = _cell(ws, belege_reference(lines), font=_LINK)
    if index_row:
        cell.hyperlink = Hyperlink(ref="", location=f"{BELEGE_SHEET}!A{index_row}")
    return cell


def belege_reference(lines: tuple[int, int]) -> str:
    """'Belegliste Zeilen 2–1234': the lines of the CSV file beside the workbook."""
    return f"Belegliste Zeilen {lines[0]}–{lines[1]}"


def _sum(col: str, first: int, last: int) -> str:
    return f"=SUM({col}{first}:{col}{last})"


# ---------------------------------------------------------------------------------------------
# Sheets


class _Sheet:
    """A write-only sheet that counts its rows (formulas need the addresses of what they add up).

    Sheet-level settings must be made before the first row is streamed, so the header row's number
    is fixed at creation."""

    def __init__(
        self,
        wb: Workbook,
        title: str,
        widths: Sequence[float],
        header_row: int,
        *,
        freeze_col: str = "A",
        header_height: float | None = None,
        footer: str = "",
    ) -> None:
        ws = wb.create_sheet(title)
        self.ws = ws
        self.row = 0
        self.header_row = header_row
        self.widths = widths
        for i, width in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = f"{freeze_col}{header_row + 1}"
        ws.print_title_rows = f"{header_row}:{header_row}"
        if header_height:
            ws.row_dimensions[header_row].height = header_height
        # Printable: A4 landscape, all columns on one page width, as many pages down as needed.
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = _PAPER_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.oddFooter.left.text = footer
        ws.oddFooter.right.text = "Seite &P von &N"

    def append(self, values: Sequence[Any]) -> int:
        self.ws.append(values)
        self.row += 1
        return self.row

    def header(self, labels: Sequence[str]) -> int:
        assert self.row + 1 == self.header_row, (self.row, self.header_row)
        return self.append(
            [
                _cell(self.ws, label, font=_BOLD, fill=_HEADER_FILL, border=_HEADER_BORDER, align=_WRAP)
                for label in labels
            ]
        )

    def note(self, text: str) -> int:
        """A note nobody overlooks: bold dark red on yellow, merged across the sheet's columns and
        wrapped. Spreadsheet programs do not fit the height of merged rows, so it is set here from
        an estimate of the wrapped lines (about one character per unit of column width)."""
        row = self.row + 1
        lines = -(-len(text) // max(1, int(sum(self.widths) * 0.9)))
        self.ws.row_dimensions[row].height = 15 * max(1, lines) + 3
        self.ws.merged_cells.add(f"A{row}:{get_column_letter(len(self.widths))}{row}")
        return self.append([_cell(self.ws, text, font=_NOTE, fill=_NOTE_FILL, align=_WRAP)])


def _footer(report: KoaVvReport) -> str:
    return f"KoA-VV {report.land} {report.period_label}, Stand {_as_of_text(report)}"


def _header_row(notes: Sequence[str]) -> int:
    """The header's row on a sheet with a preamble: heading, period line, one row per note, a blank
    row, then the header."""
    return 2 + len(notes) + 1 + 1


def _write_preamble(sheet: _Sheet, report: KoaVvReport, heading: str, notes: Sequence[str]) -> None:
    ws = sheet.ws
    sheet.append([_cell(ws, heading, font=_HEADING)])
    sheet.append(
        [_cell(ws, f"Land {report.land} · Zeitraum {report.period_label} · Stand {_as_of_text(report)}")]
    )
    for note in notes:
        sheet.note(note)
    sheet.append([])


def _titles_in_order(report: KoaVvReport) -> list[str]:
    present = {t.federal_title for t in report.titles} | {c.federal_title for c in report.categories}
    return sorted(present, key=koavv_belege.title_rank)


_OVERVIEW_HEADER = (
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
)
_OVERVIEW_WIDTHS = (30, 48, 16, 16, 16, 10, 30, 16, 16, 11, 16, 18, 34)


def _repayment_notes(report: KoaVvReport) -> list[str]:
    """Per title, the funds repaid to the Bund in the period: 'Abgerufene Mittel' is net of them."""
    by_title: dict[str, list] = defaultdict(list)
    for r in report.repayments:
        by_title[r.federal_title].append(r)
    return [
        f"Rückzahlung an den Bund ({title}): {format_eur(sum(r.amount_cents for r in rs))} € "
        f"(Belege {', '.join(r.document_ref for r in rs)}), von den abgerufenen Mitteln abgezogen; "
        f"Zinsen {format_eur(sum(r.interest_cents for r in rs))} € aus kommunalen Mitteln"
        for title, rs in by_title.items()
    ]


def _write_overview(wb: Workbook, report: KoaVvReport, sha: str, index_rows: dict[str, int]) -> None:
    notes = ([EMPTY_PERIOD] if report.is_empty else []) + [
        f"Noch nicht enthalten ({sheet}): {why}" for sheet, why in report.not_yet_built.items()
    ] + _repayment_notes(report)
    block = [
        ("Land", report.land),
        ("Zeitraum", report.period_label),
        ("Stand", f"{_as_of_text(report)} (Ereignisse bis Position {report.last_position})"),
        ("SHA-256 der Zahlen", sha),
    ]
    header_row = 1 + len(block) + len(notes) + 1 + 1
    sheet = _Sheet(
        wb,
        "Übersicht",
        _OVERVIEW_WIDTHS,
        header_row,
        freeze_col="C",
        header_height=48,
        footer=_footer(report),
    )
    ws = sheet.ws
    sheet.append([_cell(ws, "KoA-VV-Abrechnung mit dem Bund (Kapitel 1101)", font=_HEADING)])
    for label, value in block:
        sheet.append([_cell(ws, label, font=_BOLD), _cell(ws, value)])
    for note in notes:
        sheet.note(note)
    sheet.append([])
    sheet.header(_OVERVIEW_HEADER)

    titles = {t.federal_title: t for t in report.titles}
    transfer_rows = _transfer_rows(report)
    subtotal_rows: list[int] = []
    for title in _titles_in_order(report):
        t = titles[title]  # _check_consistent guarantees a title line for every category's title
        name = t.title_name or TITLE_NAMES.get(title, "")
        sheet.append(
            [_cell(ws, title, font=_BOLD, fill=_TITLE_FILL), _cell(ws, name, font=_BOLD, fill=_TITLE_FILL)]
        )
        lines = [c for c in report.categories if c.federal_title == title]
        first = sheet.row + 1
        for c in lines:
            sheet.append(
                [
                    _cell(ws, c.category),
                    _cell(ws, c.category_name, align=_WRAP),
                    _cell(ws, _money(c.expenditure_cents), fmt=MONEY_FORMAT),
                    _cell(ws, _money(c.receipts_cents), fmt=MONEY_FORMAT),
                    _cell(ws, _money(c.net_cents), fmt=MONEY_FORMAT),
                    _cell(ws, c.federal_rate, fmt=PERCENT_FORMAT),
                    _cell(ws, c.rate_label, align=_WRAP),
                    _cell(ws, _money(c.federal_cents), fmt=MONEY_FORMAT),
                    _cell(ws, _money(c.municipal_cents), fmt=MONEY_FORMAT),
                    _cell(ws, c.booking_count, fmt=COUNT_FORMAT),
                    None,
                    None,
                    _link(ws, c.belege_rows, index_rows.get(c.category)),
                ]
            )
        if not lines:  # a title with funds drawn but no bookings: its sums run over this row
            sheet.append([None, _cell(ws, "keine Buchungen im Zeitraum")])
        last = sheet.row
        row = sheet.row + 1
        total = {"font": _BOLD, "border": _TOTAL_BORDER}
        sheet.append(
            [
                _cell(ws, f"Summe {title}", **total),
                _cell(ws, name, align=_WRAP, **total),
                *(_formula(ws, _sum(col, first, last), **total) for col in "CDE"),
                _cell(ws, None, **total),
                _cell(ws, None, **total),
                *(_formula(ws, _sum(col, first, last), **total) for col in "HI"),
                _formula(ws, _sum("J", first, last), fmt=COUNT_FORMAT, **total),
                _drawn_cell(ws, t.drawn_cents, transfer_rows.get(title), total),
                _formula(ws, f"=H{row}-K{row}", **total),
                _cell(ws, None, **total),
            ]
        )
        subtotal_rows.append(row)
        sheet.append([])

    if not subtotal_rows:  # nothing at all: the grand total runs over this row and is 0
        sheet.append([None, _cell(ws, EMPTY_PERIOD)])
        subtotal_rows.append(sheet.row)
    row = sheet.row + 1
    grand = {"font": _BOLD, "fill": _TOTAL_FILL, "border": _TOTAL_BORDER}

    def over_titles(col: str, fmt: str = MONEY_FORMAT) -> Cell:
        return _formula(ws, "=SUM(" + ",".join(f"{col}{r}" for r in subtotal_rows) + ")", fmt=fmt, **grand)

    sheet.append(
        [
            _cell(ws, "Gesamt", **grand),
            _cell(ws, "alle Titel", **grand),
            over_titles("C"),
            over_titles("D"),
            over_titles("E"),
            _cell(ws, None, **grand),
            _cell(ws, None, **grand),
            over_titles("H"),
            over_titles("I"),
            over_titles("J", COUNT_FORMAT),
            over_titles("K"),
            _formula(ws, f"=H{row}-K{row}", **grand),
            _cell(ws, None, **grand),
        ]
    )


def _drawn_cell(ws: Any, cents: int, transfer_row: int | None, style: dict[str, Any]) -> Cell:
    """A title's funds drawn, linked to its total on Mittelabrufe (the draws and repayments behind it)."""
    if transfer_row is None:
        return _cell(ws, _money(cents), fmt=MONEY_FORMAT, **style)
    cell = _cell(ws, _money(cents), fmt=MONEY_FORMAT, **(style | {"font": _BOLD_LINK}))
    cell.hyperlink = Hyperlink(ref="", location=f"{TRANSFERS_SHEET}!A{transfer_row}")
    return cell


def _category_sheet_lines(report: KoaVvReport, prefix: str) -> list[CategoryLine]:
    return [c for c in report.categories if c.category.startswith(prefix)]


def _write_vwk(wb: Workbook, report: KoaVvReport, index_rows: dict[str, int]) -> None:
    notes = [report.not_yet_built["Verwaltungskosten"]] if "Verwaltungskosten" in report.not_yet_built else []
    header = (
        "Kostenart",
        "Bezeichnung",
        "Ausgaben",
        "Einnahmen",
        "Netto",
        "Anteil Bund",
        "Grundlage des Satzes",
        "Bundesanteil",
        "Kommunaler Anteil",
        "Buchungen",
        "Belege",
    )
    widths = (24, 44, 16, 16, 16, 11, 30, 16, 16, 11, 34)
    sheet = _Sheet(
        wb,
        "Verwaltungskosten",
        widths,
        _header_row(notes),
        freeze_col="C",
        header_height=32,
        footer=_footer(report),
    )
    ws = sheet.ws
    _write_preamble(sheet, report, "Verwaltungskosten (Titel 1101/636 13) nach Kostenart", notes)
    sheet.header(header)
    lines = _category_sheet_lines(report, "vwk.")
    first = sheet.row + 1
    for c in lines:
        sheet.append(
            [
                _cell(ws, c.category),
                _cell(ws, c.category_name, align=_WRAP),
                _cell(ws, _money(c.expenditure_cents), fmt=MONEY_FORMAT),
                _cell(ws, _money(c.receipts_cents), fmt=MONEY_FORMAT),
                _cell(ws, _money(c.net_cents), fmt=MONEY_FORMAT),
                _cell(ws, c.federal_rate, fmt=PERCENT_FORMAT),
                _cell(ws, c.rate_label, align=_WRAP),
                _cell(ws, _money(c.federal_cents), fmt=MONEY_FORMAT),
                _cell(ws, _money(c.municipal_cents), fmt=MONEY_FORMAT),
                _cell(ws, c.booking_count, fmt=COUNT_FORMAT),
                _link(ws, c.belege_rows, index_rows.get(c.category)),
            ]
        )
    if not lines:
        sheet.append([None, _cell(ws, "keine Verwaltungskosten im Zeitraum")])
    last = sheet.row
    total = {"font": _BOLD, "fill": _TOTAL_FILL, "border": _TOTAL_BORDER}
    sheet.append(
        [
            _cell(ws, "Summe", **total),
            _cell(ws, None, **total),
            *(_formula(ws, _sum(col, first, last), **total) for col in "CDE"),
            _cell(ws, None, **total),
            _cell(ws, None, **total),
            *(_formula(ws, _sum(col, first, last), **total) for col in "HI"),
            _formula(ws, _sum("J", first, last), fmt=COUNT_FORMAT, **total),
            _cell(ws, None, **total),
        ]
    )
    if report.allocation_runs:
        # The runs behind the booked cost types: their bookings carry the run's reference as Beleg.
        sheet.append([])
        sheet.append([_cell(ws, "Kostenaufteilung (KoA-VV § 18)", font=_BOLD), _cell(ws, "Zeitraum"),
                      _cell(ws, "VZÄ SGB II"), None, _cell(ws, "Summe des Laufs")])
        for run in report.allocation_runs:
            sheet.append([
                _cell(ws, run.document_ref),
                _cell(ws, run.period),
                _cell(ws, Decimal(run.sgb2_vzae), fmt="#,##0.0000"),
                None,
                _cell(ws, _money(sum(run.results_cents.values())), fmt=MONEY_FORMAT),
            ])


def _write_egt(wb: Workbook, report: KoaVvReport, index_rows: dict[str, int]) -> None:
    # Plan and commitments per instrument, the allocation (with shifts) on the total line; without a
    # budget on file those cells stay empty rather than show a budget of 0.
    notes = [report.not_yet_built["Eingliederung"]] if "Eingliederung" in report.not_yet_built else []
    header = (
        "Instrument",
        "Bezeichnung",
        "Plan",
        "Zuteilung",
        "Bindungen",
        "Ausgaben (netto)",
        "Verfügbar",
        "Buchungen",
        "Belege",
    )
    widths = (34, 48, 16, 16, 16, 16, 16, 11, 34)
    sheet = _Sheet(
        wb,
        "Eingliederung",
        widths,
        _header_row(notes),
        freeze_col="C",
        header_height=32,
        footer=_footer(report),
    )
    ws = sheet.ws
    _write_preamble(sheet, report, "Eingliederungsleistungen (Titel 1101/685 11) nach Instrument", notes)
    sheet.header(header)
    spent = {c.category: c for c in _category_sheet_lines(report, "egt.")}
    budget = {b.instrument: b for b in (report.egt_budget.instruments if report.egt_budget else [])}
    first = sheet.row + 1
    for code in sorted({*spent, *budget}):
        c, b = spent.get(code), budget.get(code)
        row = sheet.row + 1
        planned = b.planned_cents if b else None
        sheet.append(
            [
                _cell(ws, code),
                _cell(ws, c.category_name if c else b.name if b else "", align=_WRAP),
                _cell(ws, _money(planned), fmt=MONEY_FORMAT) if planned is not None else None,
                None,
                _cell(ws, _money(b.committed_cents), fmt=MONEY_FORMAT) if b else None,
                _cell(ws, _money(c.net_cents if c else 0), fmt=MONEY_FORMAT),
                _formula(ws, f"=C{row}-E{row}-F{row}") if planned is not None else None,
                _cell(ws, c.booking_count if c else 0, fmt=COUNT_FORMAT),
                _link(ws, c.belege_rows, index_rows.get(c.category)) if c else None,
            ]
        )
    if not spent and not budget:
        sheet.append([None, _cell(ws, "keine Eingliederungsleistungen im Zeitraum")])
    last = sheet.row
    total = {"font": _BOLD, "fill": _TOTAL_FILL, "border": _TOTAL_BORDER}
    funds = report.egt_budget.funds_cents if report.egt_budget else None
    row = sheet.row + 1
    sheet.append(
        [
            _cell(ws, "Summe", **total),
            _cell(ws, None, **total),
            _formula(ws, _sum("C", first, last), **total) if budget else _cell(ws, None, **total),
            _cell(ws, _money(funds), fmt=MONEY_FORMAT, **total) if funds is not None else _cell(ws, None, **total),
            _formula(ws, _sum("E", first, last), **total),
            _formula(ws, _sum("F", first, last), **total),
            _formula(ws, f"=D{row}-E{row}-F{row}", **total) if funds is not None else _cell(ws, None, **total),
            _formula(ws, _sum("H", first, last), fmt=COUNT_FORMAT, **total),
            _cell(ws, None, **total),
        ]
    )
    if report.egt_budget and report.egt_budget.allocated_cents is not None:
        e = report.egt_budget
        sheet.append([])
        sheet.append([_cell(ws, "Zuteilung des Bundes"), None, None, _cell(ws, _money(e.allocated_cents), fmt=MONEY_FORMAT)])
        sheet.append([_cell(ws, "Umschichtung (Deckungsfähigkeit)"), None, None, _cell(ws, _money(e.shifted_cents), fmt=MONEY_FORMAT)])


def _write_kdu(wb: Workbook, report: KoaVvReport) -> None:
    k = report.kdu
    notes = [report.not_yet_built["KdU"]] if "KdU" in report.not_yet_built else []
    if k is None:
        notes.append("Für Land und Jahr ist keine KdU-Bundesbeteiligung im Bericht (keine Quote hinterlegt).")
    header = (
        "Land",
        "Jahr",
        "Netto § 22 Abs. 1 SGB II",
        "Quote vorläufig",
        "Bundesanteil vorläufig",
        "Quote endgültig",
        "Bundesanteil endgültig",
        "Differenz (endgültig − vorläufig)",
    )
    widths = (10, 10, 20, 16, 20, 16, 20, 20)
    sheet = _Sheet(
        wb,
        "KdU",
        widths,
        _header_row(notes),
        header_height=32,
        footer=_footer(report),
    )
    ws = sheet.ws
    _write_preamble(
        sheet,
        report,
        "Bundesbeteiligung an den Leistungen für Unterkunft und Heizung (Titel 1101/632 11)",
        notes,
    )
    sheet.header(header)
    if k is None:
        return

    def quota(rate: Decimal | None) -> Cell:
        return _cell(ws, rate, fmt=PERCENT_FORMAT) if rate is not None else _cell(ws, NO_QUOTA)

    def amount(cents: int | None) -> Cell | None:
        return _cell(ws, _money(cents), fmt=MONEY_FORMAT) if cents is not None else None

    row = sheet.row + 1
    difference = (
        _formula(ws, f"=G{row}-E{row}")
        if k.federal_provisional_cents is not None and k.federal_final_cents is not None
        else _cell(ws, "—")
    )
    sheet.append(
        [
            _cell(ws, k.land),
            _cell(ws, k.year),
            _cell(ws, _money(k.net_cents), fmt=MONEY_FORMAT),
            quota(k.provisional_rate),
            amount(k.federal_provisional_cents),
            quota(k.final_rate),
            amount(k.federal_final_cents),
            difference,
        ]
    )


TRANSFERS_SHEET = "Mittelabrufe"
TRANSFERS_HEADER = ("Titel", "Wertstellung", "Art", "Beleg", "Betrag", "Zinsen (kommunal)", "erfasst von")
_TRANSFERS_WIDTHS = (14, 14, 26, 26, 18, 18, 18)
NO_TRANSFERS = "Im Zeitraum wurden keine Bundesmittel abgerufen und keine zurückgezahlt."


def _transfer_notes(report: KoaVvReport) -> list[str]:
    notes = [
        "Je Titel ergeben die Abrufe beim Bund (HKR) abzüglich der Rückzahlungen an den Bund die "
        "abgerufenen Mittel der Übersicht. Die Zinsen auf Rückzahlungen trägt die Kommune; sie "
        "mindern die abgerufenen Mittel nicht."
    ]
    if not report.draws and not report.repayments:
        notes.append(NO_TRANSFERS)
    return notes


def _transfers_by_title(report: KoaVvReport) -> dict[str, list[tuple[str, Any]]]:
    """Per title in settlement order, its draws and repayments by value date (then voucher)."""
    by_title: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for d in report.draws:
        by_title[d.federal_title].append(("draw", d))
    for r in report.repayments:
        by_title[r.federal_title].append(("repayment", r))
    return {
        title: sorted(by_title[title], key=lambda x: (x[1].value_date, x[1].document_ref, x[0]))
        for title in sorted(by_title, key=koavv_belege.title_rank)
    }


def _transfer_rows(report: KoaVvReport) -> dict[str, int]:
    """The row of each title's total on Mittelabrufe (the sheet is laid out in advance): a title's
    block is its heading, a row per draw or repayment, its total and a blank row."""
    rows: dict[str, int] = {}
    row = _header_row(_transfer_notes(report)) + 1
    for title, items in _transfers_by_title(report).items():
        rows[title] = row + 1 + len(items)
        row += len(items) + 3
    return rows


def _write_transfers(wb: Workbook, report: KoaVvReport) -> None:
    notes = _transfer_notes(report)
    sheet = _Sheet(
        wb, TRANSFERS_SHEET, _TRANSFERS_WIDTHS, _header_row(notes), header_height=32, footer=_footer(report)
    )
    ws = sheet.ws
    _write_preamble(sheet, report, "Mittelabrufe beim Bund und Rückzahlungen an den Bund", notes)
    sheet.header(TRANSFERS_HEADER)
    planned = _transfer_rows(report)
    subtotal_rows: list[int] = []
    for title, items in _transfers_by_title(report).items():
        name = TITLE_NAMES.get(title, "")
        sheet.append(
            [_cell(ws, title, font=_BOLD, fill=_TITLE_FILL), _cell(ws, name, font=_BOLD, fill=_TITLE_FILL)]
        )
        first = sheet.row + 1
        for kind, t in items:
            repaid = kind == "repayment"
            sheet.append(
                [
                    _cell(ws, title),
                    _cell(ws, t.value_date, fmt=DATE_FORMAT),
                    _cell(ws, "Rückzahlung an den Bund" if repaid else "Abruf (HKR)"),
                    _cell(ws, t.document_ref),
                    _cell(ws, _money(-t.amount_cents if repaid else t.amount_cents), fmt=MONEY_FORMAT),
                    _cell(ws, _money(t.interest_cents), fmt=MONEY_FORMAT) if repaid else None,
                    _cell(ws, t.recorded_by),
                ]
            )
        last, row = sheet.row, sheet.row + 1
        assert row == planned[title], (title, row, planned[title])
        total = {"font": _BOLD, "border": _TOTAL_BORDER}
        sheet.append(
            [
                _cell(ws, f"Summe {title}", **total),
                _cell(ws, "abgerufene Mittel", **total),
                _cell(ws, None, **total),
                _cell(ws, None, **total),
                _formula(ws, _sum("E", first, last), **total),
                _formula(ws, _sum("F", first, last), **total),
                _cell(ws, None, **total),
            ]
        )
        subtotal_rows.append(row)
        sheet.append([])
    if subtotal_rows:
        grand = {"font": _BOLD, "fill": _TOTAL_FILL, "border": _TOTAL_BORDER}
        sheet.append(
            [
                _cell(ws, "Gesamt", **grand),
                _cell(ws, "alle Titel", **grand),
                _cell(ws, None, **grand),
                _cell(ws, None, **grand),
                *(
                    _formula(ws, "=SUM(" + ",".join(f"{col}{r}" for r in subtotal_rows) + ")", **grand)
                    for col in "EF"
                ),
                _cell(ws, None, **grand),
            ]
        )


BELEGE_SHEET = "Belege"
BELEGE_HEADER = (
    "Titel",
    "Kategorie",
    "Quartal",
    "Buchungen",
    "Netto",
    "Bundesanteil",
    "Kommunaler Anteil",
    "Belegliste ab Zeile",
    "Belegliste bis Zeile",
)
_BELEGE_WIDTHS = (14, 26, 9, 12, 17, 17, 17, 14, 14)


def _index_header_row(report: KoaVvReport) -> int:
    return _header_row(_index_notes(report))


def _index_notes(report: KoaVvReport) -> list[str]:
    return [
        "Jede Buchung hinter den Zahlen steht mit ihren Anteilen in der Belegliste, der CSV-Datei "
        f"neben dieser Arbeitsmappe (gleicher Name, Endung {BELEGLISTE_SUFFIX}; Zeile 1 sind die "
        "Spaltennamen). Ihre SHA-256 steht im Protokoll."
    ]


def _index_rows(report: KoaVvReport, groups: Sequence[koavv_belege.Group]) -> dict[str, int]:
    """The Belegverzeichnis row of each category's first group (the sheet is laid out in advance)."""
    rows: dict[str, int] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g.category, _index_header_row(report) + 1 + i)
    return rows


def _write_index(wb: Workbook, report: KoaVvReport, groups: Sequence[koavv_belege.Group]) -> None:
    notes = _index_notes(report)
    sheet = _Sheet(
        wb,
        BELEGE_SHEET,
        _BELEGE_WIDTHS,
        _header_row(notes),
        freeze_col="C",
        header_height=32,
        footer=_footer(report),
    )
    ws = sheet.ws
    _write_preamble(sheet, report, "Belegverzeichnis: die Buchungen je Kategorie und Quartal", notes)
    sheet.header(BELEGE_HEADER)
    for g in groups:
        sheet.append(
            [
                _cell(ws, g.federal_title),
                _cell(ws, g.category),
                _cell(ws, g.quarter),
                _cell(ws, g.booking_count, fmt=COUNT_FORMAT),
                _cell(ws, _money(g.net_cents), fmt=MONEY_FORMAT),
                _cell(ws, _money(g.federal_cents), fmt=MONEY_FORMAT),
                _cell(ws, _money(g.municipal_cents), fmt=MONEY_FORMAT),
                _cell(ws, g.first_line or None),
                _cell(ws, g.last_line or None),
            ]
        )
    if not groups:
        sheet.append([None, _cell(ws, EMPTY_PERIOD)])


def _write_protocol(wb: Workbook, report: KoaVvReport, sha: str, belege_sha: str) -> None:
    sheet = _Sheet(wb, "Protokoll", (42, 100), 1, footer=_footer(report))
    ws = sheet.ws
    sheet.header(("Angabe", "Wert"))

    def pair(label: str, value: Any, font: Font | None = None) -> None:
        sheet.append([_cell(ws, label, font=_BOLD), _cell(ws, value, font=font, align=_WRAP)])

    if report.is_empty:
        sheet.append(
            [
                _cell(ws, "Hinweis", font=_NOTE, fill=_NOTE_FILL),
                _cell(ws, EMPTY_PERIOD, font=_NOTE, fill=_NOTE_FILL),
            ]
        )
    pair("Stand (ISO 8601, wie abgefragt)", report.as_of.isoformat())
    pair("Stand (UTC)", _as_of_text(report))
    pair("Letzte Ereignisposition", report.last_position)
    pair("Zeitraum", report.period_label)
    pair("Haushaltsjahr", report.year)
    pair("Quartal", f"Q1–Q{report.quarter} (kumuliert)" if report.quarter else "ganzes Jahr")
    pair("Land", report.land)
    pair("Datenbestand", report.store)
    pair("Programmversion", report.program_version)
    pair("SHA-256 der Zahlen", sha, _BOLD)
    pair("Buchungen in der Belegliste", len(report.belege))
    pair(
        "Belegliste", f"CSV-Datei neben dieser Arbeitsmappe, gleicher Name mit der Endung {BELEGLISTE_SUFFIX}"
    )
    pair("SHA-256 der Belegliste", belege_sha, _BOLD)
    sheet.append([])
    sheet.append([_cell(ws, "Parameter", font=_HEADING)])
    for name, value in report.parameters:
        sheet.append([_cell(ws, name), _cell(ws, value, align=_WRAP)])
    if report.not_yet_built:
        sheet.append([])
        sheet.append([_cell(ws, "Noch nicht enthalten", font=_HEADING)])
        for name, why in report.not_yet_built.items():
            sheet.append([_cell(ws, name, font=_NOTE), _cell(ws, why, font=_NOTE, align=_WRAP)])


# ---------------------------------------------------------------------------------------------
# Writing


def write_workbook(report: KoaVvReport, path: Path) -> None:
    """Write the settlement workbook for the report to path and its Belegliste beside it
    (belege_path(path)), atomically and byte-reproducibly.

    Raises ValueError, and leaves both files untouched, if the report's totals do not add up."""
    path = Path(path)
    groups = koavv_belege.groups(report.belege)
    report = _plan(report, groups)
    _check_consistent(report, groups)

    tag = f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    raw = path.with_name(tag + ".raw")
    tmp = path.with_name(tag + ".tmp")
    tmp_list = path.with_name(tag + ".csv")
    try:
        with open(tmp_list, "xb") as f:
            belege_sha = koavv_belege.write_csv_hashed(report.belege, f)
            f.flush()
            os.fsync(f.fileno())
        sha = figures_sha256(report, belege_sha)

        wb = Workbook(write_only=True)
        # Fixed document properties: the file says when its figures are from, not when it was written.
        made = _utc_naive(report.as_of).replace(microsecond=0)
        props = wb.properties
        props.creator = report.program_version
        props.lastModifiedBy = report.program_version
        props.created = made
        props.modified = made
        props.title = f"KoA-VV-Abrechnung {report.period_label}, Land {report.land}"
        props.subject = "Abrechnung mit dem Bund nach der KoA-VV"
        props.description = f"SHA-256 der Zahlen: {sha}"
        props.language = "de-DE"

        index_rows = _index_rows(report, groups)
        _write_overview(wb, report, sha, index_rows)
        _write_vwk(wb, report, index_rows)
        _write_egt(wb, report, index_rows)
        _write_kdu(wb, report)
        _write_transfers(wb, report)
        _write_index(wb, report, groups)
        _write_protocol(wb, report, sha, belege_sha)

        # save_workbook stamps the current time into `modified`; the rewrite puts ours back.
        core_xml = tostring(_core_tree(wb, made))
        wb.save(raw)
        with open(tmp, "xb") as out:
            _deterministic_zip(raw, out, {_CORE_XML: core_xml})
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_list, belege_path(path))
        os.replace(tmp, path)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        tmp_list.unlink(missing_ok=True)


def _core_tree(wb: Workbook, made: datetime) -> Any:
    wb.properties.created = made
    wb.properties.modified = made
    return wb.properties.to_tree()


def _deterministic_zip(source: Path, out: BinaryIO, replacements: dict[str, bytes]) -> None:
    """Copy the zip at source to out, entry by entry in the original order, with fixed entry
    metadata, and replace the named entries' contents. Streams: no entry is held in memory."""
    with ZipFile(source) as zin, ZipFile(out, "w", allowZip64=True) as zout:
        names = {i.filename for i in zin.infolist()}
        missing = set(replacements) - names
        if missing:  # openpyxl changed its layout: fail rather than write a nondeterministic file
            raise RuntimeError(f"workbook has no {', '.join(sorted(missing))}")
        for info in zin.infolist():
            entry = ZipInfo(info.filename, date_time=_ZIP_DATE_TIME)
            entry.compress_type = ZIP_DEFLATED
            entry.create_system = 3  # Unix, whatever system writes it
            entry.external_attr = 0o100644 << 16
            if info.filename in replacements:
                zout.writestr(entry, replacements[info.filename])
                continue
            entry.file_size = info.file_size  # lets zipfile decide on ZIP64 headers up front
            with zin.open(info) as src, zout.open(entry, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


__all__ = [
    "BELEGE_HEADER",
    "BELEGE_SHEET",
    "BELEGLISTE_SUFFIX",
    "belege_path",
    "belege_reference",
    "plan_belege",
    "write_workbook",
]
