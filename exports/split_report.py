"""The split as a text table (for the terminal) and as CSV (German conventions: ';' and decimal comma)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from domain.money import format_eur
from domain.rates import pct
from domain.split import SplitLine, Sum, sum_by_title

CSV_COLUMNS = (
    "Haushaltsjahr",
    "Quartal",
    "Bundestitel",
    "Kategorie",
    "Ausgaben",
    "Einnahmen",
    "Netto",
    "Bundesanteil_Satz",
    "Bundesanteil",
    "Kommunalanteil",
    "Buchungen",
    "Satz_Grundlage",
)


def format_split_table(lines: Sequence[SplitLine]) -> str:
    """One block per quarter: a line per category, subtotals per federal title, a quarter total."""
    if not lines:
        return "(no bookings in this period)\n"
    head = (
        f"{'category':<38} {'title':<12} {'net €':>17} {'rate':>8} "
        f"{'federal €':>17} {'municipal €':>17} {'count':>7}"
    )
    out: list[str] = []
    for (year, quarter), group in groupby(lines, key=lambda s: (s.fiscal_year, s.quarter)):
        qlines = list(group)
        out += [f"Haushaltsjahr {year}, Quartal {quarter}", head, "-" * len(head)]
        for s in qlines:
            out.append(
                f"{s.category:<38} {s.federal_title:<12} {format_eur(s.net_cents):>17} "
                f"{pct(s.federal_rate):>8} {format_eur(s.federal_cents):>17} "
                f"{format_eur(s.municipal_cents):>17} {s.booking_count:>7}"
            )
        out.append("-" * len(head))
        for title, t in sum_by_title(qlines).items():
            out.append(_sum_line(f"  Summe {title}", t))
        out.append(_sum_line(f"Summe Q{quarter}", Sum.of(qlines)))
        out.append("")
    if len({(s.fiscal_year, s.quarter) for s in lines}) > 1:
        out.append(_sum_line("Summe Jahr", Sum.of(lines)))
    return "\n".join(out) + "\n"


def _sum_line(label: str, t: Sum) -> str:
    return (
        f"{label:<51} {format_eur(t.net_cents):>17} {'':>8} {format_eur(t.federal_cents):>17} "
        f"{format_eur(t.municipal_cents):>17} {t.booking_count:>7}"
    )


def write_split_csv(lines: Sequence[SplitLine], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(CSV_COLUMNS)
        for s in lines:
            w.writerow(
                (
                    s.fiscal_year,
                    s.quarter,
                    s.federal_title,
                    s.category,
                    format_eur(s.expenditure_cents),
                    format_eur(s.receipts_cents),
                    format_eur(s.net_cents),
                    str(s.federal_rate).replace(".", ","),
                    format_eur(s.federal_cents),
                    format_eur(s.municipal_cents),
                    s.booking_count,
                    s.rate_label,
                )
            )
    tmp.replace(path)  # a reader never sees half a file
