"""Reading payment run files: formats that must be accepted, and every way a file or row is refused.

Pure parsing, no store: ledger.payment_run against the real category catalogue.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from domain.booking import Kind
from domain.catalogue import Catalogue
from ledger.commands import BOOKING_FIELDS
from ledger.payment_run import (
    ParsedRun,
    RowError,
    RunFileError,
    parse_payment_run,
    read_payment_run,
)
from tests.factories import CSV_HEADER, csv_row


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def parse(lines: list[str], catalogue: Catalogue, newline: str = "\n") -> ParsedRun:
    return parse_payment_run(newline.join(lines) + newline, catalogue)


def errors_of(run: ParsedRun) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in run.errors]


# ---- accepted formats ------------------------------------------------------------------------


def test_semicolon_file_gives_one_content_per_row_with_typed_values(catalogue):
    run = parse(
        [
            CSV_HEADER,
            csv_row("A-1", "1.234,56", "kdu"),
            csv_row("A-2", "563,00", "buergergeld", kind="receipt"),
        ],
        catalogue,
    )
    assert run.errors == []
    assert [c.key for c in run.contents] == ["A-1", "A-2"]
    assert run.lines == [2, 3]
    a1, a2 = run.contents
    assert (a1.kind, a1.amount_cents, a1.category) == (Kind.PAYMENT, 123_456, "kdu")
    assert (a1.payment_date, a1.service_from, a1.service_to) == (
        date(2025, 2, 27),
        date(2025, 3, 1),
        date(2025, 3, 31),
    )
    assert (a1.document_ref, a1.case_ref, a1.cost_centre, a1.text) == (
        "ZA-202503",
        "08221BG0000001",
        "JC-NORD",
        "Miete",
    )
    assert a1.contract_ref == ""
    assert (a2.kind, a2.amount_cents, a2.category) == (Kind.RECEIPT, 56_300, "buergergeld")


def test_comma_separated_file_with_quoted_decimal_comma_amounts(catalogue):
    header = CSV_HEADER.replace(";", ",")
    rows = [
        'K-1,payment,"1.234,56",kdu,27.02.2025,01.03.2025,31.03.2025,ZA-1,08221BG0000001,JC-NORD,Miete',
        'K-2,payment,"99,90",buergergeld,2025-02-27,2025-03-01,2025-03-31,ZA-1,,JC-SUED,"Text, mit Komma"',
        "K-3,payment,1234.56,kdu,27.02.2025,01.03.2025,31.03.2025,ZA-1,,JC-NORD,",
    ]
    run = parse([header, *rows], catalogue)
    assert run.errors == []
    assert [(c.key, c.amount_cents) for c in run.contents] == [
        ("K-1", 123_456),
        ("K-2", 9_990),
        ("K-3", 123_456),
    ]
    assert run.contents[1].text == "Text, mit Komma"
    assert run.contents[1].cost_centre == "JC-SUED"


def test_comma_separated_file_with_unquoted_decimal_comma_is_a_row_error(catalogue):
    header = CSV_HEADER.replace(";", ",")
    row = "K-1,payment,500,00,kdu,27.02.2025,01.03.2025,31.03.2025,ZA-1,,JC-NORD,Miete"
    run = parse([header, row], catalogue)
    assert run.contents == []
    assert errors_of(run) == [(2, "row")]
    assert "12 cells" in run.errors[0].reason and "11" in run.errors[0].reason


def test_utf8_bom_is_accepted_by_read_payment_run(tmp_path: Path, catalogue):
    text = "\r\n".join([CSV_HEADER, csv_row("B-1"), csv_row("B-2", "12,50")]) + "\r\n"
    path = tmp_path / "run-bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    run = read_payment_run(path, catalogue)
    assert run.errors == []
    assert [(c.key, c.amount_cents) for c in run.contents] == [("B-1", 50_000), ("B-2", 1_250)]


def test_bom_with_comma_separator_and_umlauts(tmp_path: Path, catalogue):
    header = CSV_HEADER.replace(";", ",")
    row = 'U-1,payment,"10,00",kdu,27.02.2025,01.03.2025,31.03.2025,ZA-1,,JC-NORD,Miete für März'
    path = tmp_path / "run.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\n{row}\n".encode())
    run = read_payment_run(path, catalogue)
    assert run.errors == []
    assert run.contents[0].key == "U-1"
    assert run.contents[0].text == "Miete für März"


def test_crlf_line_endings(catalogue):
    run = parse([CSV_HEADER, csv_row("C-1"), csv_row("C-2"), csv_row("C-3")], catalogue, newline="\r\n")
    assert run.errors == []
    assert [c.key for c in run.contents] == ["C-1", "C-2", "C-3"]
    assert run.lines == [2, 3, 4]
    # No '\r' sticks to the last column.
    assert [c.text for c in run.contents] == ["Miete"] * 3


def test_crlf_line_numbers_of_errors(catalogue):
    run = parse([CSV_HEADER, csv_row("C-1"), csv_row("C-2", "abc")], catalogue, newline="\r\n")
    assert errors_of(run) == [(3, "amount")]


def test_columns_in_another_order(catalogue):
    header = "text;cost_centre;document_ref;service_to;service_from;payment_date;category;amount;"
    header += "kind;key"
    row = "Kurs;JC-WEST;RE-4711;31.03.2025;01.03.2025;20.03.2025;egt.aktivierung;23.500,00;"
    row += "payment;MN-1"
    run = parse([header, row], catalogue)
    assert run.errors == []
    (c,) = run.contents
    assert (c.key, c.kind, c.amount_cents, c.category) == (
        "MN-1",
        Kind.PAYMENT,
        2_350_000,
        "egt.aktivierung",
    )
    assert (c.document_ref, c.cost_centre, c.text) == ("RE-4711", "JC-WEST", "Kurs")
    assert c.payment_date == date(2025, 3, 20)


def test_optional_columns_may_be_absent(catalogue):
    header = "key;kind;amount;category;payment_date;service_from;service_to;document_ref;cost_centre"
    row = "O-1;payment;100,00;kdu;2025-02-27;2025-03-01;2025-03-31;ZA-1;JC-NORD"
    run = parse([header, row], catalogue)
    assert run.errors == []
    (c,) = run.contents
    assert (c.case_ref, c.contract_ref, c.text) == ("", "", "")
    assert c.amount_cents == 10_000


def test_all_columns_including_contract_ref(catalogue):
    header = ";".join(BOOKING_FIELDS)
    values = {
        "key": "V-1",
        "kind": "payment",
        "amount": "1234.56",
        "category": "egt.aktivierung",
        "payment_date": "2025-03-20",
        "service_from": "2025-03-01",
        "service_to": "2025-03-31",
        "document_ref": "RE-1",
        "cost_centre": "JC-NORD",
        "case_ref": "",
        "contract_ref": "V-2025-001",
        "text": "Maßnahme",
    }
    run = parse([header, ";".join(values[f] for f in BOOKING_FIELDS)], catalogue)
    assert run.errors == []
    assert run.contents[0].contract_ref == "V-2025-001"
    assert run.contents[0].amount_cents == 123_456


def test_german_and_iso_dates_mean_the_same_day(catalogue):
    german = csv_row("D-1", paid="27.02.2025")
    iso = "D-2;payment;500,00;kdu;2025-02-27;2025-03-01;2025-03-31;ZA-202503;08221BG0000001;JC-NORD;Miete"
    run = parse([CSV_HEADER, german, iso], catalogue)
    assert run.errors == []
    d1, d2 = run.contents
    assert (d1.payment_date, d1.service_from, d1.service_to) == (
        d2.payment_date,
        d2.service_from,
        d2.service_to,
    )
    assert d1.payment_date == date(2025, 2, 27)
    assert d2.service_to == date(2025, 3, 31)


def test_kind_aliases_are_accepted(catalogue):
    run = parse(
        [CSV_HEADER, csv_row("K-1", kind="Auszahlung"), csv_row("K-2", kind="einzahlung")],
        catalogue,
    )
    assert run.errors == []
    assert [c.kind for c in run.contents] == [Kind.PAYMENT, Kind.RECEIPT]


def test_blank_lines_are_ignored_but_counted_for_line_numbers(catalogue):
    run = parse(
        [
            CSV_HEADER,
            "",
            csv_row("E-1"),
            "",
            "   ",
            ";;;;;;;;;;",
            csv_row("E-2", "x"),
            csv_row("E-3"),
            "",
        ],
        catalogue,
    )
    assert [c.key for c in run.contents] == ["E-1", "E-3"]
    assert run.lines == [3, 8]
    assert errors_of(run) == [(7, "amount")]


def test_progress_is_called_once_per_row(catalogue):
    calls: list[int] = []
    text = "\n".join([CSV_HEADER, csv_row("P-1"), csv_row("P-2"), csv_row("P-3")])
    run = parse_payment_run(text, catalogue, progress=calls.append)
    assert len(run.contents) == 3
    assert calls == [1, 1, 1]


def test_whitespace_around_header_names_and_values_is_ignored(catalogue):
    header = " key ; kind ;amount;category;payment_date;service_from;service_to;document_ref;cost_centre"
    row = " W-1 ; payment ; 100,00 ;kdu; 27.02.2025 ;01.03.2025;31.03.2025; ZA-1 ; JC-NORD "
    run = parse([header, row], catalogue)
    assert run.errors == []
    c = run.contents[0]
    assert (c.key, c.amount_cents, c.document_ref, c.cost_centre) == (
        "W-1",
        10_000,
        "ZA-1",
        "JC-NORD",
    )


# ---- bad rows ---------------------------------------------------------------------------------


def test_each_bad_row_names_its_file_line_field_and_reason(catalogue):
    run = parse(
        [
            CSV_HEADER,  # line 1
            csv_row("G-1"),  # line 2
            csv_row("G-2", "12,345"),  # line 3: amount
            csv_row("G-3"),  # line 4
            csv_row("G-4", category="nope"),  # line 5: category
            csv_row("G-5", paid="31.02.2025"),  # line 6: payment_date
            csv_row("G-6", kind="gift"),  # line 7: kind
            csv_row("G-7", "0,00"),  # line 8: amount must be > 0
            csv_row("G-8", case="Max Mustermann"),  # line 9: case_ref
        ],
        catalogue,
    )
    assert [c.key for c in run.contents] == ["G-1", "G-3"]
    assert run.lines == [2, 4]
    assert errors_of(run) == [
        (3, "amount"),
        (5, "category"),
        (6, "payment_date"),
        (7, "kind"),
        (8, "amount"),
        (9, "case_ref"),
    ]
    by_line = {e.line: e for e in run.errors}
    assert "more than two decimals" in by_line[3].reason and "12,345" in by_line[3].reason
    assert "unknown category" in by_line[5].reason and "nope" in by_line[5].reason
    assert "not a date" in by_line[6].reason and "31.02.2025" in by_line[6].reason
    assert "payment or receipt" in by_line[7].reason and "gift" in by_line[7].reason
    assert "greater than zero" in by_line[8].reason
    assert "Bedarfsgemeinschaft" in by_line[9].reason
    assert str(by_line[3]).startswith("line 3: amount: ")


def test_several_errors_in_one_row_are_all_reported(catalogue):
    bad = "M-1;gift;12,345;nope;2025-13-01;01.03.2025;32.03.2025;ZA-1;;JC-NORD;x"
    run = parse([CSV_HEADER, csv_row("M-0"), bad], catalogue)
    assert run.contents[0].key == "M-0"
    assert len(run.contents) == 1
    assert sorted(errors_of(run)) == sorted(
        [(3, "kind"), (3, "amount"), (3, "category"), (3, "payment_date"), (3, "service_to")]
    )


def test_missing_required_values_are_reported_per_field(catalogue):
    row = ";payment;;kdu;27.02.2025;01.03.2025;31.03.2025;;;JC-NORD;"
    run = parse([CSV_HEADER, row], catalogue)
    assert run.contents == []
    assert errors_of(run) == [(2, "key"), (2, "amount"), (2, "document_ref")]
    assert all(e.reason == "required" for e in run.errors)


def test_a_row_with_too_few_cells_reports_the_missing_fields(catalogue):
    run = parse([CSV_HEADER, "F-1;payment;100,00;kdu;27.02.2025"], catalogue)
    assert run.contents == []
    assert errors_of(run) == [
        (2, "service_from"),
        (2, "service_to"),
        (2, "document_ref"),
        (2, "cost_centre"),
    ]


def test_a_row_with_too_many_cells_is_an_error_naming_the_counts(catalogue):
    run = parse([CSV_HEADER, csv_row("T-1"), csv_row("T-2") + ";extra;more", csv_row("T-3")], catalogue)
    assert [c.key for c in run.contents] == ["T-1", "T-3"]
    assert run.errors == [RowError(3, "row", "13 cells, header has 11")]


def test_duplicate_key_within_the_file_names_the_first_line(catalogue):
    run = parse(
        [CSV_HEADER, csv_row("D-1"), csv_row("D-2"), "", csv_row("D-1", "1,00"), csv_row("D-2")],
        catalogue,
    )
    assert [c.key for c in run.contents] == ["D-1", "D-2"]
    assert errors_of(run) == [(5, "key"), (6, "key")]
    assert "'D-1'" in run.errors[0].reason and "line 2" in run.errors[0].reason
    assert "'D-2'" in run.errors[1].reason and "line 3" in run.errors[1].reason


def test_rows_after_a_quoted_multiline_cell_keep_their_file_line_numbers(catalogue):
    text = (
        CSV_HEADER
        + "\n"
        + csv_row("Q-1")
        + "\n"
        # lines 3-4: a quoted text with a line break
        + 'Q-2;payment;1,00;kdu;27.02.2025;01.03.2025;31.03.2025;ZA-1;;JC-NORD;"zwei\nZeilen"\n'
        + csv_row("Q-3", "x")
        + "\n"  # line 5
    )
    run = parse_payment_run(text, catalogue)
    assert [c.key for c in run.contents] == ["Q-1"]
    assert "text" in [e.field for e in run.errors]  # a text must be one line
    assert (5, "amount") in errors_of(run)


def test_a_row_spanning_lines_is_reported_at_the_line_where_it_starts(catalogue):
    """The row of key Q-2 starts on line 3 (its quoted text runs on to line 4): a clerk looks for
    the key, so the message must say line 3."""
    text = (
        CSV_HEADER
        + "\n"
        + csv_row("Q-1")
        + "\n"
        # lines 3-4: a quoted text with a line break
        + 'Q-2;payment;1,00;kdu;27.02.2025;01.03.2025;31.03.2025;ZA-1;;JC-NORD;"zwei\nZeilen"\n'
        + csv_row("Q-3")
        + "\n"  # line 5
    )
    run = parse_payment_run(text, catalogue)
    assert errors_of(run) == [(3, "text")]
    assert run.lines == [2, 5]


# ---- the file as a whole is refused -----------------------------------------------------------


def test_unknown_column_is_refused_naming_it(catalogue):
    with pytest.raises(RunFileError) as e:
        parse([CSV_HEADER + ";betrag_brutto", csv_row("X-1") + ";1"], catalogue)
    msg = str(e.value)
    assert "unknown columns: betrag_brutto" in msg
    assert "missing" not in msg


def test_missing_columns_are_refused_naming_them(catalogue):
    header = CSV_HEADER.replace("cost_centre;", "").replace("amount;", "")
    with pytest.raises(RunFileError) as e:
        parse([header, "x"], catalogue)
    msg = str(e.value)
    assert "missing columns: amount, cost_centre" in msg
    assert "unknown" not in msg


def test_missing_and_unknown_columns_are_both_named(catalogue):
    header = CSV_HEADER.replace("amount", "betrag")
    with pytest.raises(RunFileError) as e:
        parse([header, csv_row("X-1")], catalogue)
    msg = str(e.value)
    assert "missing columns: amount" in msg
    assert "unknown columns: betrag" in msg
    assert "expected: key, kind, amount" in msg


@pytest.mark.parametrize("text", ["", "\n", "   \n" + CSV_HEADER + "\n" + csv_row("X-1")])
def test_empty_file_or_blank_first_line_is_refused(catalogue, text):
    with pytest.raises(RunFileError) as e:
        parse_payment_run(text, catalogue)
    assert "empty" in str(e.value) and "header" in str(e.value)


@pytest.mark.parametrize("text", [CSV_HEADER, CSV_HEADER + "\n", CSV_HEADER + "\r\n\r\n;;;;;;;;;;\r\n"])
def test_header_only_is_refused(catalogue, text):
    with pytest.raises(RunFileError) as e:
        parse_payment_run(text, catalogue)
    assert "no bookings" in str(e.value)


def test_empty_file_on_disk_is_refused(tmp_path: Path, catalogue):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(RunFileError) as e:
        read_payment_run(path, catalogue)
    assert "empty" in str(e.value)


def test_bom_only_file_is_refused_as_empty(tmp_path: Path, catalogue):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(RunFileError) as e:
        read_payment_run(path, catalogue)
    assert "empty" in str(e.value)


def test_non_utf8_bytes_are_refused_naming_the_file_and_position(tmp_path: Path, catalogue):
    # A Latin-1 export: 'ä' is the single byte 0xE4.
    head = (CSV_HEADER + "\n").encode()
    row = csv_row("L-1").replace("Miete", "Mietzuschuss M\u00e4rz").encode("latin-1")
    path = tmp_path / "latin1.csv"
    path.write_bytes(head + row + b"\n")
    with pytest.raises(RunFileError) as e:
        read_payment_run(path, catalogue)
    msg = str(e.value)
    assert str(path) in msg
    assert "not UTF-8" in msg
    position = len(head) + row.index(bytes([0xE4]))
    assert f"byte {position}" in msg


def test_missing_file_is_refused_naming_it(tmp_path: Path, catalogue):
    path = tmp_path / "nowhere" / "run.csv"
    with pytest.raises(RunFileError) as e:
        read_payment_run(path, catalogue)
    assert str(e.value) == f"{path}: no such file"


def test_a_directory_is_refused(tmp_path: Path, catalogue):
    with pytest.raises(RunFileError) as e:
        read_payment_run(tmp_path, catalogue)
    assert str(e.value) == f"{tmp_path}: is a directory"


@pytest.mark.parametrize(
    "text",
    ["2025-02-29", "29.02.2025", "2025-13-01", "31.04.2025", "2025-1-05", "5.1.2025", "２０２５-01-01"],
)
def test_parse_date_shortcut_agrees_with_strptime(text):
    from datetime import datetime

    from ledger.commands import parse_date

    expected = None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            expected = datetime.strptime(text, fmt).date()
            break
        except ValueError:
            pass
    if expected is None:
        with pytest.raises(ValueError):
            parse_date(text)
    else:
        assert parse_date(text) == expected
