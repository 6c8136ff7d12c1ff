"""The auditors' export after the GDPdU description standard (exports.audit_export): index.xml valid
under the DTD, CSV tables that match their description, exact amounts, the event log as JSON Lines,
seals checkable from the export alone, byte-identical output, clear errors. No database needed."""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import tempfile
import tracemalloc
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from domain.money import AMOUNT_CENTS_MAX
from exports.audit_export import (
    BOOKINGS,
    DTD_NAME,
    TRANSFERS,
    AuditExportError,
    SealedEvent,
    Transfer,
    write_audit_export,
)
from ledger import seals
from projections.split_view import BOOKING_COLUMNS, BookingRow

YEAR = 2025
CREATED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
TOPIC = "domain.booking:Booking.Recorded"


def booking(n: int, **changes) -> BookingRow:
    key = f"MN-{YEAR}-{n:04d}"
    row = BookingRow(
        booking_id=str(uuid5(NAMESPACE_URL, key)),
        booking_key=key,
        kind="payment",
        category="kdu",
        amount_cents=50_000 + n,
        sign=1,
        fiscal_year=YEAR,
        quarter=1,
        fiscal_rule="cash",
        payment_date=date(YEAR, 2, 27),
        service_from=date(YEAR, 3, 1),
        service_to=date(YEAR, 3, 31),
        document_ref="ZA-202503",
        case_ref="08221BG0000001",
        contract_ref="",
        cost_centre="JC-NORD",
        text='Miete März; "Nachzahlung"',
        recorded_by="mueller",
        recorded_at=datetime(YEAR, 2, 27, 10, 15, 0, 123_456, tzinfo=UTC),
        requires_approval=True,
        approved_by="schmidt",
        approved_at=datetime(YEAR, 2, 28, 8, 0, tzinfo=UTC),
        reverses_key="",
        reversal_key="",
        reason="",
        counted=True,
        notification_id=2 * n + 1,
    )
    return replace(row, **changes)


def sealed_events(count: int, state_padding: int = 0) -> Iterator[SealedEvent]:
    """A real seal chain (ledger.seals) over synthetic events; positions have gaps, as in PostgreSQL."""
    prev = seals.GENESIS
    for i in range(count):
        position = 2 * i + 1
        originator = str(uuid5(NAMESPACE_URL, f"MN-{YEAR}-{i:04d}"))
        state = json.dumps(
            {
                "key": f"MN-{YEAR}-{i:04d}",
                "text": 'Miete "März"; Nachzahlung',
                "n": i,
                "pad": "x" * state_padding,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        sealed = seals.seal(prev, position, originator, 1, TOPIC, state)
        yield SealedEvent(
            position=position,
            originator_id=originator,
            originator_version=1,
            topic=TOPIC,
            recorded_at=datetime(YEAR, 1, 2, tzinfo=UTC) + timedelta(seconds=i, microseconds=7 * i),
            state=state,
            seal=sealed.hex(),
            prev_seal="" if i == 0 else prev.hex(),
        )
        prev = sealed


def transfer(n: int, **changes) -> Transfer:
    row = Transfer(
        kind="draw",
        document_ref=f"HKR-{YEAR}-{n:03d}",
        federal_title="1101/681 12",
        fiscal_year=YEAR,
        value_date=date(YEAR, 3, 31),
        amount_cents=1_000_000_00 + n,
        interest_cents=0,
        reason="",
        recorded_by="kasse",
        recorded_at=datetime(YEAR, 3, 31, 14, 0, tzinfo=UTC),
        notification_id=1 + n,
    )
    return replace(row, **changes)


def export(out: Path, bookings=None, events=None, transfers=None, **kwargs) -> list[Path]:
    return write_audit_export(
        out,
        year=YEAR,
        bookings=[booking(i) for i in range(5)] if bookings is None else bookings,
        events=sealed_events(7) if events is None else events,
        transfers=[transfer(i) for i in range(2)] if transfers is None else transfers,
        location="Musterstadt",
        created_at=CREATED,
        **kwargs,
    )


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter=";", quotechar='"'))


def tables(index: Path) -> dict[str, etree._Element]:
    return {t.findtext("URL"): t for t in etree.parse(str(index)).getroot().iter("Table")}


def declared_columns(table: etree._Element) -> list[etree._Element]:
    return table.findall("VariableLength/VariablePrimaryKey") + table.findall("VariableLength/VariableColumn")


# ---- index.xml and the DTD ---------------------------------------------------------------------


def test_index_xml_is_valid_under_the_dtd_next_to_it(tmp_path: Path) -> None:
    paths = export(tmp_path)
    assert [p.name for p in paths] == [
        "buchungen.csv",
        "mittelabrufe.csv",
        "ereignisse.csv",
        "ereignisse.jsonl",
        "index.xml",
        DTD_NAME,
    ]
    assert all(p.is_file() for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no leftovers

    index = tmp_path / "index.xml"
    tree = etree.parse(str(index))
    assert tree.docinfo.root_name == "DataSet"
    assert tree.docinfo.system_url == DTD_NAME
    dtd = etree.DTD(str(tmp_path / DTD_NAME))
    assert dtd.validate(tree), dtd.error_log.filter_from_errors()
    # The DOCTYPE resolves to the copy next to index.xml: a validating parser finds it there.
    etree.parse(str(index), etree.XMLParser(dtd_validation=True, no_network=True))


@pytest.mark.parametrize(
    "breakage",
    ["table without URL", "key after a column", "supplier without comment", "unknown element"],
)
def test_the_dtd_rejects_a_broken_index(tmp_path: Path, breakage: str) -> None:
    export(tmp_path)
    tree = etree.parse(str(tmp_path / "index.xml"))
    assert etree.DTD(str(tmp_path / DTD_NAME)).validate(tree)  # intact, it is valid
    root = tree.getroot()
    table = root.find("Media/Table")
    if breakage == "table without URL":
        table.remove(table.find("URL"))
    elif breakage == "key after a column":
        vl = table.find("VariableLength")
        key = vl.find("VariablePrimaryKey")
        vl.remove(key)
        vl.append(key)
    elif breakage == "supplier without comment":
        supplier = root.find("DataSupplier")
        supplier.remove(supplier.find("Comment"))
    else:
        table.find("VariableLength/VariableColumn").append(etree.Element("Currency"))
    dtd = etree.DTD(str(tmp_path / DTD_NAME))
    assert not dtd.validate(tree)
    assert dtd.error_log.filter_from_errors()


# Uses every element of the DTD once at least, in the layouts the export itself does not use
# (fixed length, extensions, commands, maps, aliases): each content model must be usable.
EVERY_ELEMENT = """<?xml version="1.0" encoding="UTF-8"?>
<DataSet>
  <Extension><Name>x</Name><URL>x.xml</URL></Extension>
  <Version>1.0</Version>
  <DataSupplier><Name>a</Name><Location>b</Location><Comment>c</Comment></DataSupplier>
  <Command>vorher</Command>
  <Media>
    <Name>m</Name><Command>c1</Command>
    <Table>
      <URL>f.txt</URL><Name>F</Name><Description>d</Description>
      <Validity><Range><From>01.01.2025</From><Length>10</Length></Range><Format>DD.MM.YYYY</Format></Validity>
      <OEM/><DecimalSymbol>,</DecimalSymbol><DigitGroupingSymbol>.</DigitGroupingSymbol>
      <SkipNumBytes>0</SkipNumBytes><Range><From>2</From></Range><Epoch>30</Epoch>
      <FixedLength><Length>20</Length>
        <FixedPrimaryKey><Name>k</Name><Numeric><ImpliedAccuracy>2</ImpliedAccuracy></Numeric>
          <FixedRange><From>1</From><To>5</To></FixedRange></FixedPrimaryKey>
        <FixedColumn><Name>c</Name><Description>x</Description><AlphaNumeric/>
          <Map><Description>m</Description><From>T</From><To>1</To></Map>
          <FixedRange><From>6</From><Length>5</Length></FixedRange></FixedColumn>
        <FixedColumn><Name>d</Name><Date/><FixedRange><From>11</From><To>20</To></FixedRange></FixedColumn>
        <ForeignKey><Name>c</Name><Name>d</Name><References>G</References>
          <Alias><From>c</From><To>x</To></Alias><Alias><From>d</From><To>y</To></Alias></ForeignKey>
      </FixedLength>
    </Table>
    <Table><URL>g.csv</URL><ANSI/><VariableLength>
      <VariableColumn><Name>x</Name><AlphaNumeric/><MaxLength>10</MaxLength></VariableColumn>
      <VariableColumn><Name>y</Name><Numeric><Accuracy>2</Accuracy></Numeric></VariableColumn>
    </VariableLength></Table>
    <Table><URL>h.csv</URL><Macintosh/><VariableLength><VariablePrimaryKey><Name>z</Name>
      <Date><Format>YYYYMMDD</Format></Date></VariablePrimaryKey></VariableLength></Table>
    <Table><URL>i.csv</URL><UTF16/><VariableLength><RecordDelimiter>&#10;</RecordDelimiter>
      <VariableColumn><Name>z</Name><Numeric/></VariableColumn></VariableLength></Table>
    <Table><URL>k.csv</URL><UTF8/><VariableLength><ColumnDelimiter>|</ColumnDelimiter>
      <TextEncapsulator>'</TextEncapsulator><VariableColumn><Name>z</Name><AlphaNumeric/></VariableColumn>
    </VariableLength></Table>
    <Table><URL>j.csv</URL><UTF7/><FixedLength><RecordDelimiter>&#10;</RecordDelimiter>
      <FixedColumn><Name>z</Name><Numeric/><FixedRange><From>1</From><To>2</To></FixedRange></FixedColumn>
    </FixedLength></Table>
    <Command>c2</Command>
  </Media>
  <Media><Name>n</Name><AcceptNoTables>1</AcceptNoTables></Media>
  <Command>nachher</Command>
</DataSet>
"""


def test_every_element_of_the_dtd_can_be_validated(tmp_path: Path) -> None:
    export(tmp_path)
    dtd = etree.DTD(str(tmp_path / DTD_NAME))
    doc = etree.fromstring(EVERY_ELEMENT.encode())
    assert {e.name for e in dtd.iterelements()} == {el.tag for el in doc.iter()}
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()


def test_media_accepts_exactly_what_the_standard_writes(tmp_path: Path) -> None:
    """The DTD's Media model is a deterministic rewrite of the standard's
    (Name, Command*, Table*, Command*, AcceptNoTables?): same children allowed, in every order."""
    export(tmp_path)
    dtd = etree.DTD(str(tmp_path / DTD_NAME))
    standard = re.compile(r"C*T*C*A?")  # after Name; C = Command, T = Table, A = AcceptNoTables
    table = "<Table><URL>t.csv</URL><VariableLength><VariableColumn><Name>x</Name><AlphaNumeric/>"
    table += "</VariableColumn></VariableLength></Table>"
    xml = {"C": "<Command>c</Command>", "T": table, "A": "<AcceptNoTables>1</AcceptNoTables>"}
    checked = 0
    for length in range(6):
        for seq in itertools.product("CTA", repeat=length):
            media = "<Media><Name>m</Name>" + "".join(xml[c] for c in seq) + "</Media>"
            doc = etree.fromstring(f"<DataSet><Version>1</Version>{media}</DataSet>".encode())
            expected = standard.fullmatch("".join(seq)) is not None
            assert dtd.validate(doc) is expected, "".join(seq)
            checked += 1
    assert checked == sum(3**n for n in range(6))


def test_index_declares_keys_types_and_the_link_to_the_log(tmp_path: Path) -> None:
    export(tmp_path)
    t = tables(tmp_path / "index.xml")
    bookings, events = t["buchungen.csv"], t["ereignisse.csv"]
    assert bookings.findtext("VariableLength/VariablePrimaryKey/Name") == "booking_id"
    assert events.findtext("VariableLength/VariablePrimaryKey/Name") == "position"
    for table in (bookings, events):
        assert table.find("UTF8") is not None
        assert table.findtext("DecimalSymbol") == ","
        vl = table.find("VariableLength")
        assert (vl.findtext("ColumnDelimiter"), vl.findtext("TextEncapsulator")) == (";", '"')
        assert vl.findtext("RecordDelimiter") == "\r\n"  # survives XML parsing as CR LF
        assert all(c.findtext("Description") for c in declared_columns(table))

    by_name = {c.findtext("Name"): c for c in declared_columns(bookings)}
    assert by_name["amount"].findtext("Numeric/Accuracy") == "2"
    for name in ("payment_date", "service_from", "service_to"):
        assert by_name[name].findtext("Date/Format") == "DD.MM.YYYY"
    for name in (
        "sign",
        "fiscal_year",
        "quarter",
        "requires_approval",
        "counted",
        "notification_id",
    ):
        assert by_name[name].find("Numeric") is not None
        assert by_name[name].find("Numeric/Accuracy") is None
    for name in ("booking_key", "text", "recorded_at", "approved_at"):
        assert by_name[name].find("AlphaNumeric") is not None
    assert bookings.findtext("Validity/Range/From") == "01.01.2025"
    assert bookings.findtext("Validity/Range/To") == "31.12.2025"

    # notification_id leads to the event that recorded the booking.
    fk = bookings.find("VariableLength/ForeignKey")
    assert fk.findtext("Name") == "notification_id"
    assert fk.findtext("References") == events.findtext("Name")
    assert fk.findtext("Alias/To") == "position"


def test_every_field_of_the_read_model_is_exported_in_its_order() -> None:
    assert [c.source for c in BOOKINGS.columns] == list(BOOKING_COLUMNS)
    assert {c.source for c in BOOKINGS.columns} == {f.name for f in fields(BookingRow)}


# ---- the CSV tables ------------------------------------------------------------------------------


def test_csv_tables_have_one_record_per_input_and_the_declared_columns(tmp_path: Path) -> None:
    export(
        tmp_path,
        bookings=[booking(i) for i in range(12)],
        events=sealed_events(30),
        transfers=[transfer(i) for i in range(3)],
    )
    expected_rows = {"buchungen.csv": 12, "mittelabrufe.csv": 3, "ereignisse.csv": 30}
    for url, table in tables(tmp_path / "index.xml").items():
        raw = (tmp_path / url).read_bytes()
        assert raw.endswith(b"\r\n") and b"\r\n\r\n" not in raw
        rows = read_rows(tmp_path / url)
        assert len(rows) == expected_rows[url]  # no header line: every record is data
        width = len(declared_columns(table))
        assert all(len(row) == width for row in rows)


def test_booking_values_are_written_the_german_way(tmp_path: Path) -> None:
    rows = [
        booking(1, amount_cents=123_456_789),
        booking(2, approved_by="", approved_at=None, requires_approval=False, counted=False),
        booking(3, sign=-1, reverses_key="MN-2025-0001", reason='Rechnung "doppelt"'),
    ]
    export(tmp_path, bookings=rows)
    names = [c.name for c in BOOKINGS.columns]
    first, second, third = (dict(zip(names, r, strict=True)) for r in read_rows(tmp_path / "buchungen.csv"))
    assert first["amount"] == "1234567,89"  # decimal comma, no digit grouping
    assert first["payment_date"] == "27.02.2025"
    assert first["text"] == 'Miete März; "Nachzahlung"'  # ';' and '"' survive encapsulation
    assert first["recorded_at"] == "2025-02-27T10:15:00.123456Z"
    assert first["approved_at"] == "2025-02-28T08:00:00.000000Z"
    assert (first["requires_approval"], first["counted"]) == ("1", "1")
    assert (second["requires_approval"], second["counted"]) == ("0", "0")
    assert (second["approved_by"], second["approved_at"]) == ("", "")
    assert (third["sign"], third["reverses_key"], third["reason"]) == (
        "-1",
        "MN-2025-0001",
        'Rechnung "doppelt"',
    )
    # Numbers and dates are bare; only text is encapsulated.
    raw = (tmp_path / "buchungen.csv").read_text(encoding="utf-8").split("\r\n")[0]
    assert ';1234567,89;1;2025;1;"cash";27.02.2025;01.03.2025;31.03.2025;' in raw


def test_draws_and_repayments_of_the_year_lead_to_their_events(tmp_path: Path) -> None:
    rows = [
        transfer(1),
        transfer(2, fiscal_year=YEAR - 1),  # another year's: not in this year's export
        transfer(
            3,
            kind="repayment",
            document_ref="RZ-1",
            amount_cents=100_800,
            interest_cents=3_042,
            reason='Bescheid "BMAS" vom 1.3.',
            value_date=date(YEAR, 3, 15),
        ),
    ]
    export(tmp_path, transfers=rows)
    names = [c.name for c in TRANSFERS.columns]
    draw, repayment = (dict(zip(names, r, strict=True)) for r in read_rows(tmp_path / "mittelabrufe.csv"))
    assert (draw["kind"], draw["document_ref"], draw["amount"], draw["interest"]) == (
        "draw",
        "HKR-2025-001",
        "1000000,01",
        "0,00",
    )
    assert (draw["value_date"], draw["recorded_at"], draw["notification_id"]) == (
        "31.03.2025",
        "2025-03-31T14:00:00.000000Z",
        "2",
    )
    assert (repayment["kind"], repayment["amount"], repayment["interest"]) == (
        "repayment",
        "1008,00",
        "30,42",
    )
    assert repayment["reason"] == 'Bescheid "BMAS" vom 1.3.'
    table = tables(tmp_path / "index.xml")["mittelabrufe.csv"]
    # A voucher is unique per kind: the key is both columns.
    assert [k.findtext("Name") for k in table.findall("VariableLength/VariablePrimaryKey")] == [
        "kind",
        "document_ref",
    ]
    assert table.findtext("Description").endswith("; 2 Datensätze")  # the other year's is not counted
    fk = table.find("VariableLength/ForeignKey")
    assert (fk.findtext("Name"), fk.findtext("Alias/To")) == ("notification_id", "position")
    by_name = {c.findtext("Name"): c for c in declared_columns(table)}
    assert by_name["amount"].findtext("Numeric/Accuracy") == "2"
    assert by_name["value_date"].findtext("Date/Format") == "DD.MM.YYYY"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-AMOUNT_CENTS_MAX, AMOUNT_CENTS_MAX), min_size=1, max_size=20))
def test_amounts_read_back_exactly(amounts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        export(out, bookings=[booking(i, amount_cents=a) for i, a in enumerate(amounts)], events=[])
        column = [c.name for c in BOOKINGS.columns].index("amount")
        cells = [row[column] for row in read_rows(out / "buchungen.csv")]
    assert [int(Decimal(c.replace(",", ".")) * 100) for c in cells] == amounts
    assert all(c.count(",") == 1 and "." not in c and len(c.split(",")[1]) == 2 for c in cells)


def test_only_bookings_of_the_fiscal_year_are_written(tmp_path: Path) -> None:
    rows = [
        booking(1, fiscal_year=YEAR - 1),
        booking(2),
        booking(3, fiscal_year=YEAR + 1),
        booking(4, payment_date=date(YEAR - 1, 12, 30), fiscal_rule="december_for_january"),
    ]
    export(tmp_path, bookings=iter(rows))
    keys = [row[1] for row in read_rows(tmp_path / "buchungen.csv")]
    assert keys == ["MN-2025-0002", "MN-2025-0004"]
    description = tables(tmp_path / "index.xml")["buchungen.csv"].findtext("Description")
    assert "2 Datensätze" in description


# ---- the event log ---------------------------------------------------------------------------------


def test_jsonl_round_trips_state_and_seals(tmp_path: Path) -> None:
    originals = list(sealed_events(25))
    export(tmp_path, events=iter(originals))
    text = (tmp_path / "ereignisse.jsonl").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == len(originals)
    for line, e in zip(lines, originals, strict=True):
        obj = json.loads(line)
        assert list(obj) == [
            "position",
            "originator_id",
            "originator_version",
            "topic",
            "recorded_at",
            "state",
            "seal",
            "prev_seal",
        ]
        assert obj["state"] == json.loads(e.state)
        assert (obj["seal"], obj["prev_seal"]) == (e.seal, e.prev_seal)
        assert (obj["position"], obj["originator_id"], obj["originator_version"], obj["topic"]) == (
            e.position,
            e.originator_id,
            e.originator_version,
            e.topic,
        )
        assert datetime.fromisoformat(obj["recorded_at"]) == e.recorded_at
    positions = [json.loads(line)["position"] for line in lines]
    assert positions == sorted(positions)


def _log_entries(rows: list[list[str]]) -> Iterator[seals.LogEntry]:
    for position, originator, version, topic, _at, state, seal, _prev in rows:
        yield seals.LogEntry(
            int(position),
            originator,
            int(version),
            topic,
            state.encode("utf-8"),
            bytes.fromhex(seal),
        )


def test_the_seal_chain_can_be_checked_from_the_csv_alone(tmp_path: Path) -> None:
    originals = list(sealed_events(20))
    export(tmp_path, events=iter(originals))
    rows = read_rows(tmp_path / "ereignisse.csv")
    # The state column holds the stored bytes unchanged, so the auditor recomputes every seal.
    assert [r[5].encode("utf-8") for r in rows] == [e.state for e in originals]
    assert [r[7] for r in rows[1:]] == [r[6] for r in rows[:-1]]
    verdict = seals.verify(_log_entries(rows))
    assert verdict.intact and verdict.count == 20
    assert verdict.head.hex() == originals[-1].seal

    rows[7][5] = rows[7][5].replace('"n":7', '"n":8')  # an altered event in the export shows
    broken = seals.verify(_log_entries(rows))
    assert not broken.intact and broken.position == originals[7].position


def test_events_out_of_log_order_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    out = tmp_path / "export"
    export(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    shuffled = list(sealed_events(5))
    shuffled[2], shuffled[3] = shuffled[3], shuffled[2]
    with pytest.raises(ValueError, match="log order"):
        export(out, events=iter(shuffled))
    # The earlier export is untouched, and no partial file of the failed one remains.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_event_log_is_streamed_not_held(tmp_path: Path) -> None:
    count, padding = 20_000, 2_000  # ~40 MB of stored state in all
    tracemalloc.start()
    try:
        export(tmp_path, events=sealed_events(count, state_padding=padding))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB: the events were held in memory"
    assert len(read_rows(tmp_path / "ereignisse.csv")) == count


# ---- determinism and errors ------------------------------------------------------------------------


def test_same_input_gives_byte_identical_files(tmp_path: Path) -> None:
    a = export(tmp_path / "a", bookings=[booking(i) for i in range(9)], events=sealed_events(40))
    b = export(tmp_path / "b", bookings=[booking(i) for i in range(9)], events=sealed_events(40))
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for out in (blocker / "export", blocker):
        with pytest.raises(AuditExportError, match="cannot write the audit export into") as info:
            export(out)
        assert isinstance(info.value, OSError)
        assert str(out) in str(info.value)


def test_times_without_zone_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="created_at"):
        write_audit_export(
            tmp_path, year=YEAR, bookings=[], events=[], created_at=datetime(2026, 1, 15, 9, 30)
        )
    with pytest.raises(ValueError, match="recorded_at"):
        export(tmp_path, bookings=[booking(1, recorded_at=datetime(YEAR, 2, 27, 10, 15))])
    assert list(tmp_path.iterdir()) == []
