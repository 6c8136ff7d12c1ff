"""Reading a payment run file (CSV): every row is validated before anything is stored.

Accepted: UTF-8 with or without BOM; ';' or ',' as separator (taken from the header line);
decimal comma or dot; dates as YYYY-MM-DD or DD.MM.YYYY. Columns are named in the header, in any
order: see ledger.commands.BOOKING_FIELDS.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domain.booking import BookingContent
from domain.catalogue import Catalogue
from ledger.application import IMPORT_ROWS_MAX
from ledger.commands import BOOKING_FIELDS, REQUIRED_FIELDS, InputError, parse_booking

FILE_BYTES_MAX = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class ParsedRun:
    contents: list[BookingContent]
    lines: list[int]  # file line of each content, for messages after parsing
    errors: list[RowError]


class RunFileError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, no header, unknown columns)."""


def read_payment_run(
    path: Path, catalogue: Catalogue, *, progress: Callable[[int], None] | None = None
) -> ParsedRun:
    try:
        size = path.stat().st_size
        if size > FILE_BYTES_MAX:
            raise RunFileError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunFileError(f"{path}: is a directory") from None
    except PermissionError:
        raise RunFileError(f"{path}: not readable") from None
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 (byte {e.start})") from None
    return parse_payment_run(text, catalogue, progress=progress)


def parse_payment_run(
    text: str, catalogue: Catalogue, *, progress: Callable[[int], None] | None = None
) -> ParsedRun:
    header_line = text.split("\n", 1)[0]
    if not header_line.strip():
        raise RunFileError("the file is empty or its first line (the header) is blank")
    delimiter = ";" if header_line.count(";") >= header_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    unknown = [h for h in header if h not in BOOKING_FIELDS]
    missing = [h for h in REQUIRED_FIELDS if h not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown columns: {', '.join(unknown)}")
        raise RunFileError(f"header: {'; '.join(parts)} (expected: {', '.join(BOOKING_FIELDS)})")

    contents: list[BookingContent] = []
    lines: list[int] = []
    errors: list[RowError] = []
    first_line_of_key: dict[str, int] = {}
    line = 1
    for row in reader:
        # line_num is where the row ends; a quoted value may span lines.
        line = reader.line_num - sum((v or "").count("\n") for v in row.values() if isinstance(v, str))
        if progress:
            progress(1)
        if len(contents) + len(errors) >= IMPORT_ROWS_MAX:
            raise RunFileError(f"more than {IMPORT_ROWS_MAX} rows: split the run")
        if None in row:  # more cells than header columns
            errors.append(
                RowError(line, "row", f"{len(header) + len(row[None])} cells, header has {len(header)}")
            )
            continue
        if all(not (v or "").strip() for v in row.values()):
            continue  # blank line
        try:
            content = parse_booking(row, catalogue)
        except InputError as e:
            errors.extend(RowError(line, fe.field, fe.reason) for fe in e.errors)
            continue
        first = first_line_of_key.setdefault(content.key, line)
        if first != line:
            errors.append(RowError(line, "key", f"{content.key!r} already used on line {first}"))
            continue
        contents.append(content)
        lines.append(line)
    if not contents and not errors:
        raise RunFileError("the file has a header but no bookings")
    return ParsedRun(contents, lines, errors)
