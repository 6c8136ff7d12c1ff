"""The machine-readable twin of the KoA-VV workbook (JSON, CSV) and the hash of its figures."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, fields
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from exports import koavv_belege
from exports.koavv_model import BelegRow, KoaVvReport


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def figures(report: KoaVvReport, belege_sha256: str | None = None) -> dict[str, Any]:
    """The figures only (no as-of, no program version): what the hash covers. The bookings behind
    them enter by the SHA-256 of the Belegliste (exports/koavv_belege.py) and their number;
    `belege_sha256` saves writing the list a second time when the caller has just written it."""
    figures_ = {
        "year": report.year,
        "quarter": report.quarter,
        "land": report.land,
        "categories": [
            _plain({k: v for k, v in asdict(c).items() if k != "belege_rows"}) for c in report.categories
        ],
        "titles": [_plain(asdict(t) | {"to_settle_cents": t.to_settle_cents}) for t in report.titles],
        "kdu": _plain(asdict(report.kdu) | {"difference_cents": report.kdu.difference_cents})
        if report.kdu
        else None,
        "belege_count": len(report.belege),
        "belege_sha256": belege_sha256 or koavv_belege.sha256(report.belege),
        "egt_budget": _plain(asdict(report.egt_budget)) if report.egt_budget else None,
        "vwk_allocation_runs": [_plain(asdict(a)) for a in report.allocation_runs],
    }
    # Absent, not empty, where there are none: reports without them keep their earlier hash.
    if report.repayments:
        figures_["repayments"] = [_plain(asdict(r)) for r in report.repayments]
    if report.draws:
        figures_["draws"] = [_plain(asdict(d)) for d in report.draws]
    return figures_


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_BELEG_FIELDS = tuple(f.name for f in fields(BelegRow))


def _beleg(b: BelegRow) -> dict[str, Any]:
    # A BelegRow holds only scalars: a shallow dict is the same document as asdict(), far cheaper.
    return _plain({name: getattr(b, name) for name in _BELEG_FIELDS})


def figures_sha256(report: KoaVvReport, belege_sha256: str | None = None) -> str:
    """SHA-256 of the canonical JSON of figures(report)."""
    return hashlib.sha256(_canonical(figures(report, belege_sha256)).encode()).hexdigest()


def as_document(report: KoaVvReport, belege_sha256: str | None = None) -> dict[str, Any]:
    """Protocol and figures as one dict (without the bookings themselves: write_json adds them)."""
    belege_sha256 = belege_sha256 or koavv_belege.sha256(report.belege)
    return {
        "protocol": {
            "as_of": report.as_of.isoformat(),
            "last_position": report.last_position,
            "program_version": report.program_version,
            "store": report.store,
            "parameters": [list(p) for p in report.parameters],
            "not_yet_built": report.not_yet_built,
            "figures_sha256": figures_sha256(report, belege_sha256),
        },
        **figures(report, belege_sha256),
    }


def belege_in_order(report: KoaVvReport) -> Any:
    """The bookings in Belegliste order (a ViewBelege gives them so already)."""
    if isinstance(report.belege, koavv_belege.ViewBelege):
        return report.belege
    return sorted(report.belege, key=koavv_belege.list_key)


def write_json(report: KoaVvReport, path: Path) -> None:
    """The document of as_document() with the bookings under "belege" (in Belegliste order),
    written booking by booking (a big year does not fit in memory as one string). Keys are
    sorted, so "belege" comes first after nothing but the opening brace."""
    doc = as_document(report)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write('{\n "belege": [')
        for i, b in enumerate(belege_in_order(report)):
            f.write("," if i else "")
            f.write("\n  " + json.dumps(_beleg(b), sort_keys=True, ensure_ascii=False))
        f.write("\n ]")
        for key in sorted(k for k in doc if k != "belege"):
            f.write(
                f",\n {json.dumps(key)}: "
                + json.dumps(doc[key], sort_keys=True, indent=1, ensure_ascii=False).replace("\n", "\n ")
            )
        f.write("\n}\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def write_csv(report: KoaVvReport, path: Path) -> None:
    """One CSV of the Übersicht lines (categories and titles), ';' separated, amounts in cents."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\n")
        w.writerow(
            [
                "level",
                "federal_title",
                "category",
                "expenditure_cents",
                "receipts_cents",
                "net_cents",
                "federal_rate",
                "federal_cents",
                "municipal_cents",
                "drawn_cents",
                "to_settle_cents",
                "booking_count",
            ]
        )
        for c in report.categories:
            w.writerow(
                [
                    "category",
                    c.federal_title,
                    c.category,
                    c.expenditure_cents,
                    c.receipts_cents,
                    c.net_cents,
                    c.federal_rate,
                    c.federal_cents,
                    c.municipal_cents,
                    "",
                    "",
                    c.booking_count,
                ]
            )
        for t in report.titles:
            w.writerow(
                [
                    "title",
                    t.federal_title,
                    "",
                    t.expenditure_cents,
                    t.receipts_cents,
                    t.net_cents,
                    "",
                    t.federal_cents,
                    t.municipal_cents,
                    t.drawn_cents,
                    t.to_settle_cents,
                    t.booking_count,
                ]
            )
    tmp.replace(path)
