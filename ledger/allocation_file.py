"""Reading the inputs of a cost allocation run from CSV files (as personnel offices export them).

Staff file columns:  person_key; vzae; sgb2_share; personnel_costs; status; versorgungszuschlag (optional)
Shared costs file:   service; cost_type; amount; sgb2_key
';' or ',' as separator (from the header line), decimal comma or dot, shares as 0,5 or 50 %.
Every bad cell is reported as line N: column: reason; nothing is computed from a file with errors.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from pathlib import Path

from domain.cost_allocation import SHARED_MAX, STAFF_MAX, SharedCost, StaffRecord
from domain.errors import ValidationError
from domain.money import parse_amount_cents
from domain.parameters import parse_rate
from ledger.commands import FieldError, InputError
from ledger.payment_run import RunFileError

FILE_BYTES_MAX = 50 * 1024**2
STAFF_COLUMNS = ("person_key", "vzae", "sgb2_share", "personnel_costs", "status", "versorgungszuschlag")
SHARED_COLUMNS = ("service", "cost_type", "amount", "sgb2_key")
EXTRA_CELLS = ""  # the key a row's cells beyond the header are reported under (no column is named so)


def _rows(
    path: Path, columns: tuple[str, ...], required: tuple[str, ...], rows_max: int
) -> list[tuple[int, dict]]:
    try:
        if path.stat().st_size > FILE_BYTES_MAX:
            raise RunFileError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 (byte {e.start})") from None
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") >= header_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    unknown = [h for h in header if h not in columns]
    twice = sorted({h for h in header if header.count(h) > 1})  # DictReader would keep the last cell
    if missing or unknown or twice:
        raise RunFileError(
            f"{path}: header: missing {', '.join(missing) or '-'}; unknown {', '.join(unknown) or '-'}"
            + (f"; named twice {', '.join(twice)}" if twice else "")
            + f" (expected: {', '.join(columns)})"
        )
    rows: list[tuple[int, dict]] = []
    try:
        for row in reader:
            if all(not (v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            if len(rows) >= rows_max:
                raise RunFileError(f"{path}: more than {rows_max} rows")
            cells = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}
            if None in row:  # more cells than header columns: refused in _collect, never dropped
                cells[EXTRA_CELLS] = f"{len(header) + len(row[None])} cells, header has {len(header)}"
            rows.append((reader.line_num, cells))
    except csv.Error as e:  # e.g. a cell beyond the csv module's field size limit (128 KiB)
        raise RunFileError(f"{path}: line {reader.reader.line_num}: {e}") from None
    return rows


def _decimal(text: str, field: str) -> Decimal:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise ValidationError(f"not a number: {text!r}", field) from None


def _share(text: str, field: str) -> Decimal:
    if not text:
        raise ValidationError("required: a share like 0,5 or 50 %", field)
    try:
        return parse_rate(text)
    except ValidationError as e:
        raise ValidationError(e.reason, field) from None


def _cents(text: str, field: str) -> int:
    try:
        return parse_amount_cents(text)
    except ValueError as e:
        raise ValidationError(str(e), field) from None


def _collect(path: Path, rows: list[tuple[int, dict]], build) -> list:
    out, errors = [], []
    for line, row in rows:
        try:
            if EXTRA_CELLS in row:
                raise ValidationError(row[EXTRA_CELLS], "row")
            item = build(row)
            item.validate()
            out.append(item)
        except ValidationError as e:
            errors.append(FieldError(f"{path}:line {line}: {e.field}", e.reason))
    if errors:
        raise InputError(errors)
    return out


def read_staff(path: Path) -> list[StaffRecord]:
    rows = _rows(path, STAFF_COLUMNS, STAFF_COLUMNS[:5], STAFF_MAX)

    def build(r: dict) -> StaffRecord:
        return StaffRecord(
            person_key=r["person_key"],
            vzae=_decimal(r["vzae"], "vzae"),
            sgb2_share=_share(r["sgb2_share"], "sgb2_share"),
            personnel_costs_cents=_cents(r["personnel_costs"], "personnel_costs"),
            status=r["status"].lower(),
            versorgungszuschlag_cents=_cents(r["versorgungszuschlag"], "versorgungszuschlag")
            if r.get("versorgungszuschlag")
            else 0,
        )

    return _collect(path, rows, build)


def read_shared(path: Path) -> list[SharedCost]:
    rows = _rows(path, SHARED_COLUMNS, SHARED_COLUMNS, SHARED_MAX)

    def build(r: dict) -> SharedCost:
        return SharedCost(
            service=r["service"],
            cost_type=r["cost_type"],
            amount_cents=_cents(r["amount"], "amount"),
            sgb2_key=_share(r["sgb2_key"], "sgb2_key"),
        )

    return _collect(path, rows, build)
