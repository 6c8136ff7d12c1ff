"""Reading a payment run file (CSV): every row is validated before anything is stored.

Accepted: UTF-8 with or without BOM; ';' or ',' as separator (taken from the header line);
decimal comma or dot; dates as YYYY-MM-DD or DD.MM.YYYY. Columns are named in the header, in any
order: see ledger.commands.BOOKING_FIELDS.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

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
    """The whole run in memory (tests, small runs); `koa import payments` streams: open_payment_run."""
    with open_payment_run(path, catalogue, progress=progress) as run:
        return _collect(run)


def parse_payment_run(
    text: str, catalogue: Catalogue, *, progress: Callable[[int], None] | None = None
) -> ParsedRun:
    return _collect(PaymentRunStream(io.StringIO(text, newline=""), catalogue, progress=progress))


def _collect(run: PaymentRunStream) -> ParsedRun:
    contents = [c for c in run if c is not None]
    lines = [line for line, good in zip(run.lines, run.good, strict=True) if good]
    return ParsedRun(contents, lines, run.errors)


@contextmanager
def open_payment_run(
    path: Path, catalogue: Catalogue, *, progress: Callable[[int], None] | None = None
) -> Iterator[PaymentRunStream]:
    """The run as a stream of rows, read from the file as they are needed (a million rows are
    never in memory at once). File-level problems (missing, header) raise RunFileError here; a
    file that turns out not to be UTF-8 raises it while iterating, naming the byte."""
    try:
        size = path.stat().st_size
        if size > FILE_BYTES_MAX:
            raise RunFileError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
        f = path.open("r", encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunFileError(f"{path}: is a directory") from None
    except PermissionError:
        raise RunFileError(f"{path}: not readable") from None
    with f:
        try:
            yield PaymentRunStream(f, catalogue, progress=progress)
        except UnicodeDecodeError:
            raise RunFileError(f"{path}: not UTF-8 (byte {_first_bad_utf8_byte(path)})") from None


def _first_bad_utf8_byte(path: Path) -> int:
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                return done - pending + e.start
            done += len(block)
    return done


class PaymentRunStream:
    """Iterating gives, row by row, the BookingContent of a good row and None for a bad one; the
    bad rows' errors collect in `errors`, the file line of every item in `lines`. At the end of
    the file, RunFileError if it held no bookings at all."""

    def __init__(
        self, f: TextIO, catalogue: Catalogue, *, progress: Callable[[int], None] | None = None
    ) -> None:
        header_line = f.readline()
        if not header_line.strip():
            raise RunFileError("the file is empty or its first line (the header) is blank")
        delimiter = ";" if header_line.count(";") >= header_line.count(",") else ","
        reader = csv.DictReader(itertools.chain([header_line], f), delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        unknown = [h for h in header if h not in BOOKING_FIELDS]
        missing = [h for h in REQUIRED_FIELDS if h not in header]
        # A column named twice would silently give the row its last cell (DictReader).
        twice = sorted({h for h in header if header.count(h) > 1})
        if unknown or missing or twice:
            parts = []
            if missing:
                parts.append(f"missing columns: {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown columns: {', '.join(unknown)}")
            if twice:
                parts.append(f"columns named twice: {', '.join(twice)}")
            raise RunFileError(f"header: {'; '.join(parts)} (expected: {', '.join(BOOKING_FIELDS)})")
        self.reader, self.header, self.catalogue, self.progress = reader, header, catalogue, progress
        self.errors: list[RowError] = []
        self.lines = array("q")  # file line of each item given out
        self.good = bytearray()  # 1 where the item was a booking, 0 where it was None

    def __iter__(self) -> Iterator[BookingContent | None]:
        reader, header, catalogue, progress = self.reader, self.header, self.catalogue, self.progress
        errors, lines, good = self.errors, self.lines, self.good
        first_line_of_key: dict[str, int] = {}
        line = ended = 1  # ended: the line the previous row ended on
        try:
            for row in reader:
                # line_num is where the row ends; a row may span lines (a quoted value with line
                # breaks, or blank lines before it): only then are its line breaks counted.
                line = reader.line_num
                if line - ended > 1:
                    line -= sum((v or "").count("\n") for v in row.values() if isinstance(v, str))
                ended = reader.line_num
                if progress:
                    progress(1)
                if len(lines) >= IMPORT_ROWS_MAX:
                    raise RunFileError(f"more than {IMPORT_ROWS_MAX} rows: split the run")
                if None in row:  # more cells than header columns
                    errors.append(
                        RowError(
                            line, "row", f"{len(header) + len(row[None])} cells, header has {len(header)}"
                        )
                    )
                    content = None
                elif not (row.get("key") or "").strip() and all(not (v or "").strip() for v in row.values()):
                    continue  # blank line (a row with a key is not: no need to look at every cell)
                else:
                    try:
                        content = parse_booking(row, catalogue)
                    except InputError as e:
                        errors.extend(RowError(line, fe.field, fe.reason) for fe in e.errors)
                        content = None
                    else:
                        first = first_line_of_key.setdefault(content.key, line)
                        if first != line:
                            errors.append(
                                RowError(line, "key", f"{content.key!r} already used on line {first}")
                            )
                            content = None
                lines.append(line)
                good.append(content is not None)
                yield content
        except csv.Error as e:  # e.g. a cell beyond the csv module's field size limit (128 KiB)
            # (DictReader.line_num is set after each good row only: the reader's own counts this one)
            raise RunFileError(f"line {reader.reader.line_num}: {e}") from None
        if not lines:
            raise RunFileError("the file has a header but no bookings")
