"""The machine-readable twin of the KoA-VV workbook (JSON, CSV) and the hash of its figures."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from exports.koavv_model import KoaVvReport


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


def figures(report: KoaVvReport) -> dict[str, Any]:
    """The figures only (no as-of, no program version): what the hash covers."""
    return {
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
        "belege": [_plain(asdict(b)) for b in report.belege],
    }


def figures_sha256(report: KoaVvReport) -> str:
    canonical = json.dumps(figures(report), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_document(report: KoaVvReport) -> dict[str, Any]:
    return {
        "protocol": {
            "as_of": report.as_of.isoformat(),
            "last_position": report.last_position,
            "program_version": report.program_version,
            "store": report.store,
            "parameters": [list(p) for p in report.parameters],
            "not_yet_built": report.not_yet_built,
            "figures_sha256": figures_sha256(report),
        },
        **figures(report),
    }


def write_json(report: KoaVvReport, path: Path) -> None:
    text = json.dumps(as_document(report), sort_keys=True, indent=1, ensure_ascii=False)
    _atomic_write(path, (text + "\n").encode())


def write_csv(report: KoaVvReport, path: Path) -> None:
    """One CSV of the Übersicht lines (categories and titles), ';' separated, amounts in cents."""
    tmp = path.with_suffix(path.suffix + ".tmp")
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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
