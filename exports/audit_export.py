"""The auditors' data export: a folder after the GDPdU/GoBD "Beschreibungsstandard für die
Datenträgerüberlassung", which the audit software IDEA imports as it is.

    buchungen.csv         the split read model's bookings of one fiscal year
    mittelabrufe.csv      the year's draws of federal funds (HKR) and repayments to the Bund
    ereignisse.csv        the sealed event log, one record per event
    ereignisse.jsonl      the same events as JSON Lines, for tools that read JSON
    index.xml             describes the CSV tables column by column (DOCTYPE gdpdu-01-09-2004.dtd)
    gdpdu-01-09-2004.dtd  the standard's DTD, next to index.xml, where the DOCTYPE finds it

The CSV files have no header line. Under the standard, index.xml is the description of a table:
its columns are listed in record order and every record of the file is data unless a table-level
Range says where to start. A header would need `<Range><From>2</From></Range>` and would be one
more thing an importer can get wrong, so the files hold data only: records = rows.

Formats follow the German conventions the standard defaults to: ';' between columns, CR LF after
each record, text in '"' (a '"' inside is doubled), decimal comma without digit grouping, dates
DD.MM.YYYY, booleans 1/0. Timestamps are text in ISO 8601, UTC, fixed width: the standard's Date
type has no portable notation for time of day and zone, and fixed-width UTC text sorts correctly.

The event log may hold millions of events: it is read once, as a stream, and written to both event
files in the same pass. Files are written under temporary names and renamed only when all of them
are complete, so a failed export leaves no partial files behind (earlier exports stay intact).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

from projections.split_view import BookingRow

DTD_NAME = "gdpdu-01-09-2004.dtd"
INDEX_NAME = "index.xml"
BOOKINGS_FILE = "buchungen.csv"
TRANSFERS_FILE = "mittelabrufe.csv"
EVENTS_FILE = "ereignisse.csv"
EVENTS_JSONL_FILE = "ereignisse.jsonl"

COLUMN_DELIMITER = ";"
RECORD_DELIMITER = "\r\n"
TEXT_ENCAPSULATOR = '"'
DECIMAL_SYMBOL = ","
# Never written (amounts have no grouping), but the DTD wants it together with DecimalSymbol.
DIGIT_GROUPING_SYMBOL = "."
DATE_FORMAT = "DD.MM.YYYY"

_BUFFER = 1 << 20
# Characters XML 1.0 cannot carry at all, not even as a character reference.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class AuditExportError(OSError):
    """The export folder cannot be created or written."""


@dataclass(frozen=True, slots=True)
class SealedEvent:
    position: int  # notification id in the event log
    originator_id: str  # aggregate id (uuid as str)
    originator_version: int
    topic: str  # e.g. "domain.booking:Booking.Recorded"
    recorded_at: datetime  # tz-aware UTC
    state: bytes  # the stored JSON bytes of the event
    seal: str  # hex SHA-256 hash-chain seal covering this event
    prev_seal: str  # hex seal of the previous event ('' for the first)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Federal funds drawn for a fiscal year (HKR-Mittelabruf) or repaid to the Bund: what the
    KoA-VV report's funds drawn add up from (draws less repayments, per title)."""

    kind: str  # "draw" | "repayment"
    document_ref: str  # unique per kind
    federal_title: str
    fiscal_year: int
    value_date: date
    amount_cents: int
    interest_cents: int  # repayments: the interest paid from municipal money; draws: 0
    reason: str  # repayments: why (the Bund's notice); draws: ''
    recorded_by: str
    recorded_at: datetime
    notification_id: int


def _state_text(e: SealedEvent) -> str:
    try:
        return e.state.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"event at position {e.position}: stored state is not UTF-8") from err


# ---- table descriptions --------------------------------------------------------------------------


class Kind(Enum):
    """How a value is written, and which GDPdU data type index.xml declares for it."""

    TEXT = "text"  # AlphaNumeric, encapsulated
    TIMESTAMP = "timestamp"  # AlphaNumeric: ISO 8601, UTC
    INTEGER = "integer"  # Numeric (Accuracy 0); booleans as 1/0
    AMOUNT = "amount"  # Numeric, Accuracy 2: integer cents written as euros
    DATE = "date"  # Date, DD.MM.YYYY


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    description: str
    source: str  # the attribute of the exported object the value comes from
    read: Callable[[Any], Any] | None = None  # when the value needs more than the attribute


def _value(col: Column, obj: Any) -> Any:
    return col.read(obj) if col.read else getattr(obj, col.source)


@dataclass(frozen=True, slots=True)
class TableSpec:
    url: str
    name: str
    columns: tuple[Column, ...]  # the primary key's columns first (the DTD wants keys first)
    key_columns: int = 1


def _col(
    name: str,
    kind: Kind,
    description: str,
    source: str | None = None,
    read: Callable[[Any], Any] | None = None,
) -> Column:
    return Column(name, kind, description, source or name, read)


T, TS, INT, EUR, D = Kind.TEXT, Kind.TIMESTAMP, Kind.INTEGER, Kind.AMOUNT, Kind.DATE

BOOKINGS = TableSpec(
    BOOKINGS_FILE,
    "Buchungen",
    (
        _col("booking_id", T, "Buchungs-ID (UUID, aus dem Buchungsschlüssel abgeleitet)"),
        _col("booking_key", T, "Buchungsschlüssel (für immer eindeutig)"),
        _col("kind", T, "Art: payment = Auszahlung, receipt = Einzahlung (mindert die Kategorie)"),
        _col("category", T, "Kategorie (Code im Kategorienkatalog)"),
        # Named for what the file holds: euros, while the read model keeps integer cents.
        _col("amount", EUR, "Betrag in Euro (stets positiv)", "amount_cents"),
        _col("sign", INT, "Vorzeichen: 1 = Buchung, -1 = Gegenbuchung (Storno)"),
        _col("fiscal_year", INT, "Haushaltsjahr"),
        _col("quarter", INT, "Quartal im Haushaltsjahr"),
        _col(
            "fiscal_rule",
            T,
            "Regel der Zuordnung zum Haushaltsjahr: cash = Zahlungsdatum, "
            "december_for_january = Januarleistung im Dezember gezahlt, runoff = Auslaufzeitraum",
        ),
        _col("payment_date", D, "Zahlungsdatum"),
        _col("service_from", D, "Leistungszeitraum von"),
        _col("service_to", D, "Leistungszeitraum bis"),
        _col("document_ref", T, "Beleg"),
        _col("case_ref", T, "Nummer der Bedarfsgemeinschaft (pseudonym)"),
        _col("contract_ref", T, "Vertrag mit dem Leistungserbringer"),
        _col("cost_centre", T, "Kostenstelle bzw. Standort"),
        _col("text", T, "Buchungstext"),
        _col("recorded_by", T, "Erfasst von"),
        _col("recorded_at", TS, "Erfasst am (ISO 8601, UTC)"),
        _col("requires_approval", INT, "Freigabe (Vier-Augen-Prinzip) erforderlich: 1 = ja, 0 = nein"),
        _col("approved_by", T, "Freigegeben von (leer: nicht freigegeben)"),
        _col("approved_at", TS, "Freigegeben am (ISO 8601, UTC; leer: nicht freigegeben)"),
        _col("reverses_key", T, "Storniert die Buchung mit diesem Schlüssel (nur bei Gegenbuchungen)"),
        _col("reversal_key", T, "Schlüssel der Gegenbuchung, die diese Buchung storniert"),
        _col("reason", T, "Grund der Stornierung"),
        _col(
            "counted",
            INT,
            "Zählt in der Aufteilung Bund/Kommune: 1 = ja, 0 = nein (Freigabe fehlt)",
        ),
        _col("notification_id", INT, "Position des Erfassungsereignisses im Ereignisprotokoll"),
    ),
)

TRANSFERS = TableSpec(
    TRANSFERS_FILE,
    "Mittelabrufe",
    (
        _col("kind", T, "Art: draw = Abruf beim Bund (HKR), repayment = Rückzahlung an den Bund"),
        _col("document_ref", T, "Beleg (je Art eindeutig)"),
        _col("federal_title", T, "Haushaltstitel des Bundes (Kapitel 1101)"),
        _col("fiscal_year", INT, "Haushaltsjahr, für das abgerufen bzw. zurückgezahlt wurde"),
        _col("value_date", D, "Wertstellung"),
        _col("amount", EUR, "Betrag in Euro (Rückzahlungen ohne Zinsen)", "amount_cents"),
        _col(
            "interest",
            EUR,
            "Zinsen auf die Rückzahlung (Basiszins + Aufschlag), aus kommunalen Mitteln; bei Abrufen 0",
            "interest_cents",
        ),
        _col("reason", T, "Grund der Rückzahlung (leer bei Abrufen)"),
        _col("recorded_by", T, "Erfasst von"),
        _col("recorded_at", TS, "Erfasst am (ISO 8601, UTC)"),
        _col("notification_id", INT, "Position des Ereignisses im Ereignisprotokoll"),
    ),
    key_columns=2,
)

EVENTS = TableSpec(
    EVENTS_FILE,
    "Ereignisse",
    (
        _col("position", INT, "Position im Ereignisprotokoll (aufsteigend)"),
        _col("originator_id", T, "Aggregat-ID (bei Buchungen die Buchungs-ID)"),
        _col("originator_version", INT, "Version des Aggregats nach diesem Ereignis"),
        _col("topic", T, "Ereignistyp"),
        _col("recorded_at", TS, "Gespeichert am (ISO 8601, UTC)"),
        # The stored bytes as they are, so the seals can be recomputed from this file alone.
        _col("state", T, "Gespeicherter Inhalt des Ereignisses (JSON, unverändert)", read=_state_text),
        _col(
            "seal",
            T,
            "Siegel (SHA-256, hex) über Vorgängersiegel, Position, Aggregat-ID, Version, "
            "Ereignistyp und gespeicherten Inhalt",
        ),
        _col("prev_seal", T, "Siegel des vorangehenden Ereignisses (leer beim ersten)"),
    ),
)


# ---- the export ----------------------------------------------------------------------------------


def write_audit_export(
    out_dir: Path,
    *,
    year: int,
    bookings: Iterable[BookingRow],
    events: Iterable[SealedEvent],
    transfers: Iterable[Transfer] = (),
    supplier: str = "koa-ledger",
    location: str = "",
    created_at: datetime,
) -> list[Path]:
    """Write the export of fiscal year `year` into `out_dir` (created if missing); return its files.

    `bookings` and `transfers` may hold other years; only rows of `year` are written, in the order
    given.
    `events` must come in log order (strictly ascending positions) and should be the whole log:
    the bookings' notification_id refers to it, and the seal chain is only checkable from its
    start. Same input, same bytes: `created_at` is the only time that enters the files.
    Raises AuditExportError (an OSError) when the folder cannot be written, ValueError for input
    the files cannot represent faithfully; either way no export file is left half-written.
    """
    out_dir = Path(out_dir)
    created = _utc(created_at, "created_at")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _staging(out_dir) as stage:
            with stage(BOOKINGS_FILE) as f:
                n_bookings = _write_of_year(f, BOOKINGS, year, bookings)
            with stage(TRANSFERS_FILE) as f:
                n_transfers = _write_of_year(f, TRANSFERS, year, transfers)
            with stage(EVENTS_FILE) as f_csv, stage(EVENTS_JSONL_FILE) as f_jsonl:
                n_events, first, last = _write_events(f_csv, f_jsonl, events)
            index = _index_xml(
                year=year,
                supplier=supplier,
                location=location,
                created_at=created,
                n_bookings=n_bookings,
                n_transfers=n_transfers,
                n_events=n_events,
                positions=(first, last),
            )
            with stage(DTD_NAME, binary=True) as f:
                f.write(resources.files(f"{__package__}.gdpdu").joinpath(DTD_NAME).read_bytes())
            # Staged last, so renamed last: the entry point appears only beside complete files.
            with stage(INDEX_NAME) as f:
                f.write(index)
    except AuditExportError:
        raise
    except OSError as e:
        reason = e.strerror or str(e)
        where = f" ({e.filename})" if e.filename else ""
        message = f"cannot write the audit export into {out_dir}: {reason}{where}"
        raise (AuditExportError(e.errno, message) if e.errno else AuditExportError(message)) from e
    names = (BOOKINGS_FILE, TRANSFERS_FILE, EVENTS_FILE, EVENTS_JSONL_FILE, INDEX_NAME, DTD_NAME)
    return [out_dir / name for name in names]


@contextmanager
def _staging(out_dir: Path) -> Iterator[Callable[..., Any]]:
    """Open files under temporary names; rename them all at the end, or remove them on error."""
    staged: list[tuple[Path, Path]] = []

    @contextmanager
    def stage(name: str, *, binary: bool = False) -> Iterator[IO[Any]]:
        final = out_dir / name
        tmp = out_dir / f".{name}.part"
        staged.append((tmp, final))
        if binary:
            f: IO[Any] = tmp.open("wb")
        else:
            # newline="" so that the CR LF record delimiter is written as given, on every platform.
            f = tmp.open("w", encoding="utf-8", newline="", buffering=_BUFFER)
        with f:
            yield f

    try:
        yield stage
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)


def _write_of_year(f: IO[str], table: TableSpec, year: int, rows: Iterable[Any]) -> int:
    n = 0
    for row in rows:
        if row.fiscal_year != year:
            continue
        f.write(_record(table, row))
        n += 1
    return n


def _write_events(
    f_csv: IO[str], f_jsonl: IO[str], events: Iterable[SealedEvent]
) -> tuple[int, int | None, int | None]:
    """One pass over the log; returns the count and the first and last position."""
    n, first, last = 0, None, None
    for e in events:
        if last is not None and e.position <= last:
            raise ValueError(f"events must come in log order: position {e.position} after position {last}")
        f_csv.write(_record(EVENTS, e))
        f_jsonl.write(_jsonl_line(e))
        first = e.position if first is None else first
        last = e.position
        n += 1
    return n, first, last


def _record(table: TableSpec, obj: Any) -> str:
    cells = (_cell(c, _value(c, obj)) for c in table.columns)
    return COLUMN_DELIMITER.join(cells) + RECORD_DELIMITER


def _cell(col: Column, value: Any) -> str:
    if col.kind is Kind.TEXT:
        return _encapsulate(str(value))
    if col.kind is Kind.TIMESTAMP:
        return _encapsulate("" if value is None else _iso_utc(value, col.name))
    if col.kind is Kind.INTEGER:
        if not isinstance(value, int):
            raise ValueError(f"{col.name}: not an integer: {value!r}")
        return str(int(value))  # int() turns a bool into 1/0
    if col.kind is Kind.AMOUNT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{col.name}: amount must be integer cents, not {value!r}")
        return _euro(value)
    if not isinstance(value, date):
        raise ValueError(f"{col.name}: not a date: {value!r}")
    return _german_date(value)


def _encapsulate(text: str) -> str:
    # Every text value is encapsulated, also empty ones, so '' and a missing column differ.
    return TEXT_ENCAPSULATOR + text.replace(TEXT_ENCAPSULATOR, 2 * TEXT_ENCAPSULATOR) + TEXT_ENCAPSULATOR


def _euro(cents: int) -> str:
    """1234567,89: decimal comma, no digit grouping (domain.money.format_eur groups, for display)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros}{DECIMAL_SYMBOL}{rest:02d}"


def _german_date(d: date) -> str:
    return f"{d.day:02d}.{d.month:02d}.{d.year:04d}"


def _utc(dt: datetime, what: str) -> datetime:
    # A naive time would be written as if it were UTC: refuse it rather than guess its zone.
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what}: timestamp without time zone: {dt.isoformat()}")
    return dt.astimezone(UTC)


def _iso_utc(dt: datetime, what: str) -> str:
    """2025-03-20T10:15:00.000000Z: always with microseconds, so all values have the same width."""
    return _utc(dt, what).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _jsonl_line(e: SealedEvent) -> str:
    try:
        state = json.loads(_state_text(e))
    except json.JSONDecodeError as err:
        raise ValueError(f"event at position {e.position}: stored state is not JSON: {err}") from err
    obj = {
        "position": e.position,
        "originator_id": str(e.originator_id),
        "originator_version": e.originator_version,
        "topic": e.topic,
        "recorded_at": _iso_utc(e.recorded_at, f"event at position {e.position}"),
        "state": state,
        "seal": e.seal,
        "prev_seal": e.prev_seal,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


# ---- index.xml -----------------------------------------------------------------------------------


def _index_xml(
    *,
    year: int,
    supplier: str,
    location: str,
    created_at: datetime,
    n_bookings: int,
    n_transfers: int,
    n_events: int,
    positions: tuple[int | None, int | None],
) -> str:
    first, last = positions
    span = f", Positionen {first} bis {last}" if n_events else ""
    comment = (
        f"Datenträgerüberlassung nach dem Beschreibungsstandard (GDPdU/GoBD): Buchungen des "
        f"Haushaltsjahres {year}, Mittelabrufe und Rückzahlungen des Jahres und versiegeltes "
        f"Ereignisprotokoll. Erstellt am "
        f"{_german_date(created_at)} um {created_at:%H:%M:%S} UTC."
    )
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<!DOCTYPE DataSet SYSTEM "{DTD_NAME}">',
        "<DataSet>",
        "  <Version>1.0</Version>",
        "  <DataSupplier>",
        f"    <Name>{_x(supplier)}</Name>",
        f"    <Location>{_x(location)}</Location>",
        f"    <Comment>{_x(comment)}</Comment>",
        "  </DataSupplier>",
        "  <Media>",
        f"    <Name>{_x(f'{supplier} Haushaltsjahr {year}')}</Name>",
        *_table_xml(
            BOOKINGS,
            f"Buchungen des Haushaltsjahres {year} (eine Zeile je Buchung, Gegenbuchungen "
            f"eingeschlossen); {_records(n_bookings)}",
            validity=(date(year, 1, 1), date(year, 12, 31)),
            # Each booking leads to the event that recorded it: its position in the log.
            foreign_key=("notification_id", EVENTS.name, EVENTS.columns[0].name),
        ),
        *_table_xml(
            TRANSFERS,
            f"Mittelabrufe beim Bund (HKR) und Rückzahlungen an den Bund für das Haushaltsjahr {year}; "
            f"je Titel ergeben Abrufe abzüglich Rückzahlungen die abgerufenen Mittel der "
            f"KoA-VV-Abrechnung; {_records(n_transfers)}",
            foreign_key=("notification_id", EVENTS.name, EVENTS.columns[0].name),
        ),
        *_table_xml(
            EVENTS,
            f"Ereignisprotokoll mit Hash-Ketten-Siegeln in Protokollreihenfolge; "
            f"{_records(n_events)}{span}. Dieselben Ereignisse als JSON Lines: {EVENTS_JSONL_FILE}",
        ),
        "  </Media>",
        "</DataSet>",
    ]
    return "\n".join(lines) + "\n"


def _table_xml(
    table: TableSpec,
    description: str,
    *,
    validity: tuple[date, date] | None = None,
    foreign_key: tuple[str, str, str] | None = None,
) -> list[str]:
    out = [
        "    <Table>",
        f"      <URL>{_x(table.url)}</URL>",
        f"      <Name>{_x(table.name)}</Name>",
        f"      <Description>{_x(description)}</Description>",
    ]
    if validity:
        out += [
            "      <Validity>",
            f"        <Range><From>{_german_date(validity[0])}</From>"
            f"<To>{_german_date(validity[1])}</To></Range>",
            f"        <Format>{DATE_FORMAT}</Format>",
            "      </Validity>",
        ]
    out += [
        "      <UTF8/>",
        f"      <DecimalSymbol>{DECIMAL_SYMBOL}</DecimalSymbol>",
        f"      <DigitGroupingSymbol>{DIGIT_GROUPING_SYMBOL}</DigitGroupingSymbol>",
        "      <VariableLength>",
        f"        <ColumnDelimiter>{_x(COLUMN_DELIMITER)}</ColumnDelimiter>",
        # As character references: a literal CR would be turned into LF by any XML parser.
        "        <RecordDelimiter>"
        + "".join(f"&#{ord(c)};" for c in RECORD_DELIMITER)
        + "</RecordDelimiter>",
        f"        <TextEncapsulator>{_x(TEXT_ENCAPSULATOR)}</TextEncapsulator>",
    ]
    for i, col in enumerate(table.columns):
        tag = "VariablePrimaryKey" if i < table.key_columns else "VariableColumn"
        out += [
            f"        <{tag}>",
            f"          <Name>{_x(col.name)}</Name>",
            f"          <Description>{_x(col.description)}</Description>",
            f"          {_type_xml(col.kind)}",
            f"        </{tag}>",
        ]
    if foreign_key:
        column, references, key = foreign_key
        out += [
            "        <ForeignKey>",
            f"          <Name>{_x(column)}</Name>",
            f"          <References>{_x(references)}</References>",
            f"          <Alias><From>{_x(column)}</From><To>{_x(key)}</To></Alias>",
            "        </ForeignKey>",
        ]
    out += ["      </VariableLength>", "    </Table>"]
    return out


def _type_xml(kind: Kind) -> str:
    if kind is Kind.AMOUNT:
        return "<Numeric><Accuracy>2</Accuracy></Numeric>"
    if kind is Kind.INTEGER:
        return "<Numeric/>"
    if kind is Kind.DATE:
        return f"<Date><Format>{DATE_FORMAT}</Format></Date>"
    return "<AlphaNumeric/>"


def _records(n: int) -> str:
    return "1 Datensatz" if n == 1 else f"{n} Datensätze"


def _x(text: str) -> str:
    if _NOT_XML.search(text):
        raise ValueError(f"not representable in XML: {text!r}")
    return escape(text)
