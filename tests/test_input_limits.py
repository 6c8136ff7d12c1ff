"""Input that once got through or broke something (found in review), answered now with the field
and the reason, and nothing written: control characters in free texts (a NUL cannot be stored in a
PostgreSQL text column, and broke the split view for good), JSON nested past the recursion limit,
CSV cells beyond the csv module's limit, columns named twice, cells beyond the header, keys kept
for cost allocation runs, and correction or approval days before the booking's closed period."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from domain.booking import ALLOCATION_KEY_PREFIX, is_one_line
from domain.errors import ValidationError
from ledger.allocation_commands import RUN_KEY_PREFIX
from ledger.allocation_file import read_staff
from ledger.commands import InputError
from ledger.payment_run import RunFileError, parse_payment_run
from tests.api_fixtures import auth, booking_body
from tests.factories import booking

RUN_HEADER = (
    "key;kind;amount;category;payment_date;service_from;service_to;document_ref;case_ref;cost_centre;text"
)
RUN_ROW = "ZL-1;payment;563,00;buergergeld;2025-02-27;2025-03-01;2025-03-31;ZL-2025-03;08221BG0000001;JC-NORD;{text}"
NOT_ONE_LINE = [
    "\x00",
    "\r",
    "\t",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\ud800",
]


@pytest.mark.parametrize("char", NOT_ONE_LINE)
def test_a_free_text_with_a_control_character_is_not_one_line(char):
    assert not is_one_line(f"Miete{char}März")


def test_ordinary_german_texts_are_one_line():
    assert all(is_one_line(t) for t in ("Regelbedarf März", "Straße – Miete 12 € (Nachzahlung)", "", "«ok»"))


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\r", "\u202e"])
def test_a_booking_text_with_a_control_character_is_refused_and_nothing_is_stored(client, char):
    r = client.post("/bookings", json=booking_body("B-1", text=f"a{char}b"), headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["text"]
    assert "control characters" in r.json()["errors"][0]["reason"]
    assert client.get("/bookings/B-1", headers=auth("clerk")).status_code == 404
    # The view still answers: nothing reached it.
    assert client.get("/split?year=2025", headers=auth("auditor")).status_code == 200


def test_a_reversal_reason_with_a_control_character_is_refused(client):
    assert client.post("/bookings", json=booking_body("B-1"), headers=auth("clerk")).status_code == 201
    r = client.post("/bookings/B-1/reverse", json={"reason": "doppelt\x00"}, headers=auth("clerk2"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["reason"]
    assert client.get("/bookings/B-1", headers=auth("clerk")).json()["state"] != "reversed"


def test_a_commitment_provider_with_escape_sequences_is_refused(client):
    body = {
        "contract_ref": "V-1",
        "instrument": "egt.arbeitsgelegenheiten",
        "provider": "Träger\r\x1b[2J",
        "slices": {"2026": "1.000,00"},
        "reason": "AGH-Vertrag",
    }
    r = client.post("/commitments", json=body, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["provider"]
    assert client.get("/commitments/V-1", headers=auth("clerk")).status_code == 404


def test_json_nested_past_the_recursion_limit_is_invalid_json_not_a_server_error(client):
    body = "[" * 100_000 + "]" * 100_000
    for path in ("/bookings", "/bookings/B-1/reverse"):
        r = client.post(path, content=body, headers=auth("clerk") | {"Content-Type": "application/json"})
        assert r.status_code == 422, (path, r.status_code, r.text[:200])
        assert r.json()["errors"][0]["field"] == "body"


def test_keys_kept_for_cost_allocation_runs_are_refused_for_a_clerks_booking(client):
    assert ALLOCATION_KEY_PREFIX == RUN_KEY_PREFIX  # the run's keys are the ones refused here
    for key in ("KOA-2026-Q1-L1-personal", "koa-2026-x"):
        r = client.post("/bookings", json=booking_body(key), headers=auth("clerk"))
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["key"]
        assert "cost allocation" in r.json()["errors"][0]["reason"]


def test_a_payment_run_with_a_kept_key_reports_its_line(books):
    text = "\n".join([RUN_HEADER, RUN_ROW.format(text="x").replace("ZL-1", "KOA-1")]) + "\n"
    parsed = parse_payment_run(text, books.ledger.catalogue)
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "key")]


def test_a_cell_beyond_the_csv_field_limit_is_a_file_error_naming_its_line(books):
    text = "\n".join([RUN_HEADER, RUN_ROW.format(text="x" * 200_000)]) + "\n"
    with pytest.raises(RunFileError, match=r"^line 2: field larger than field limit"):
        parse_payment_run(text, books.ledger.catalogue)


def test_a_payment_run_cell_beyond_the_limit_is_answered_422_and_nothing_stored(client):
    data = ("\n".join([RUN_HEADER, RUN_ROW.format(text="x" * 200_000)]) + "\n").encode()
    r = client.post("/payment-runs", files={"file": ("run.csv", data, "text/csv")}, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "file" and "line 2" in r.json()["errors"][0]["reason"]
    assert client.get("/bookings/ZL-1", headers=auth("clerk")).status_code == 404


@pytest.mark.parametrize(
    "args, name",
    [
        (["reverse", "A\udcff", "--reason", "x"], "KEY"),
        (["reverse", "A", "--reason", "x\udcff"], "--reason"),
        (["bookings", "--year", "2025", "--category", "k\udcff"], "--category"),
        (["audit", "booking", "\ud800"], "KEY"),
    ],
)
def test_cli_text_that_is_not_utf8_is_refused_naming_its_option(koa, args, name):
    # A non-UTF-8 byte in argv reaches Python as a lone surrogate: it used to fail in the store as
    # "'utf-8' codec can't encode character '\udcff'", naming no option.
    result = koa(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"koa: {name}: not UTF-8 text"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_cli_reports_a_cell_beyond_the_limit_without_a_traceback(koa, tmp_path):
    run = tmp_path / "run.csv"
    run.write_text("\n".join([RUN_HEADER, RUN_ROW.format(text="x" * 200_000)]) + "\n", encoding="utf-8")
    result = koa("import", "payments", run)
    assert result.exit_code != 0
    assert "line 2: field larger than field limit" in result.output
    assert "Traceback" not in result.output


def test_a_payment_run_with_a_column_named_twice_is_refused(books):
    header = RUN_HEADER.replace("kind;amount;", "kind;amount;amount;")
    row = RUN_ROW.format(text="x").replace(";563,00;", ";999999,00;1,00;")
    with pytest.raises(RunFileError, match="columns named twice: amount"):
        parse_payment_run(f"{header}\n{row}\n", books.ledger.catalogue)


def _staff(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "staff.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_staff_file_with_a_column_named_twice_is_refused(tmp_path):
    path = _staff(
        tmp_path,
        "person_key;vzae;sgb2_share;personnel_costs;personnel_costs;status",
        "T-1;1;50 %;111.000,00;1,00;beschaeftigter",
    )
    with pytest.raises(RunFileError, match="named twice personnel_costs"):
        read_staff(path)


def test_a_staff_row_with_more_cells_than_the_header_is_reported_not_cut(tmp_path):
    path = _staff(
        tmp_path,
        "person_key;vzae;sgb2_share;personnel_costs;status",
        "T-1;1;50 %;1.000,00;beschaeftigter;500.000,00",
        "T-2;eins;50 %;1.000,00;beschaeftigter",
    )
    with pytest.raises(InputError) as e:
        read_staff(path)
    assert [er.field for er in e.value.errors] == [f"{path}:line 2: row", f"{path}:line 3: vzae"]
    assert "6 cells, header has 5" in str(e.value)


def test_a_staff_cell_beyond_the_csv_field_limit_is_a_file_error(tmp_path):
    path = _staff(
        tmp_path, "person_key;vzae;sgb2_share;personnel_costs;status", "T-1;1;" + "5" * 200_000 + ";1;x"
    )
    with pytest.raises(RunFileError, match="line 2: field larger than field limit"):
        read_staff(path)


@pytest.mark.parametrize("on", [date(2024, 12, 1), date(1, 1, 1)])
def test_a_correction_cannot_be_dated_before_the_closed_period_it_leaves(books, on):
    """2024 is still open when 2025 Q1 is closed: a Storno dated there would cancel a 2025 payment
    in 2024, at 2024's rates."""
    books.ledger.record_booking(booking("A", amount_cents=40_000), recorded_by="clerk")
    books.ledger.approve_booking("A", approved_by="approver")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    with pytest.raises(ValidationError) as e:
        books.ledger.reverse_booking("A", reason="doppelt", reversed_by="clerk", on=on)
    assert e.value.field == "on" and "after the booking's closed period 2025 Q1" in e.value.reason
    assert books.ledger.get_booking("A").state == "approved"
    counter = books.ledger.reverse_booking("A", reason="doppelt", reversed_by="clerk", on=date(2025, 4, 2))
    assert (counter.fiscal_year, counter.quarter) == (2025, 2)


def test_an_approval_cannot_be_dated_before_the_closed_period_it_leaves(books):
    books.ledger.record_booking(booking("BIG", amount_cents=5_000_000), recorded_by="clerk")
    books.ledger.close_period(year=2025, quarter=1, closed_by="head")
    for on in (date(2024, 11, 15), date(2101, 1, 2)):
        with pytest.raises(ValidationError) as e:
            books.ledger.approve_booking("BIG", approved_by="approver", on=on)
        assert e.value.field == "on"
    approved = books.ledger.approve_booking("BIG", approved_by="approver", on=date(2025, 5, 2))
    assert (approved.fiscal_year, approved.quarter, approved.fiscal_rule) == (2025, 2, "after_closing")


def test_the_cli_refuses_a_correction_day_before_the_closed_period(koa, tmp_path):
    run = tmp_path / "run.csv"
    run.write_text(f"{RUN_HEADER}\n{RUN_ROW.format(text='Regelbedarf')}\n", encoding="utf-8")
    assert koa("import", "payments", run, "--user", "mueller").exit_code == 0
    assert koa("close", "--year", 2025, "--quarter", 1, "--user", "head").exit_code == 0
    result = koa("reverse", "ZL-1", "--reason", "Doppelzahlung", "--on", "2024-12-01", "--user", "mueller")
    assert result.exit_code != 0
    assert "on" in result.output and "after the booking's closed period 2025 Q1" in result.output


FUNDS_DRAW = {
    "title": "1101/681 12",
    "year": 2025,
    "date": "31.03.2025",
    "amount": "100,00",
    "document_ref": "HKR-1",
}


@pytest.mark.parametrize(
    "change, field, reason",
    [
        ({"date": "0001-01-01"}, "date", "between 2005 and 2100"),
        ({"date": "31.12.9999"}, "date", "between 2005 and 2100"),
        ({"amount": "999999999999,00"}, "amount", "exceeds the limit of 10.000.000.000,00 €"),
        ({"amount": "0"}, "amount", "greater than zero"),
    ],
)
def test_a_funds_draw_outside_the_limits_names_the_field_and_the_reason(client, change, field, reason):
    r = client.post("/funds-draws", json=FUNDS_DRAW | change, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert [(e["field"], reason in e["reason"]) for e in r.json()["errors"]] == [(field, True)]
    assert client.get("/funds-draws", params={"year": 2025}, headers=auth("auditor")).json() == []


@pytest.mark.parametrize(
    "path, body",
    [
        ("/periods/close", {"year": 2025, "quarter": True}),
        ("/periods/close", {"year": True}),
        ("/funds-draws", FUNDS_DRAW | {"year": True}),
    ],
)
def test_true_is_not_a_year_or_a_quarter(client, path, body):
    """pydantic's lax mode read true as 1: a quarter closed for good by a boolean."""
    r = client.post(path, json=body, headers=auth("all"))
    assert r.status_code == 422, r.text
    assert client.get("/periods", headers=auth("auditor")).json() == []


def test_a_released_slice_changed_is_refused_by_the_books_state_not_as_bad_input(client):
    body = {
        "contract_ref": "V-1",
        "instrument": "egt.arbeitsgelegenheiten",
        "provider": "Träger Nord",
        "slices": {"2026": "1.000,00"},
        "reason": "AGH-Vertrag",
    }
    assert client.post("/commitments", json=body, headers=auth("clerk")).status_code == 201
    change = {"year": 2026, "reason": "Restmittel"}
    assert client.post("/commitments/V-1/release", json=change, headers=auth("clerk")).status_code == 200
    for path, extra in (("release", {}), ("increase", {"amount": "10,00"})):
        r = client.post(f"/commitments/V-1/{path}", json=change | extra, headers=auth("clerk"))
        assert r.status_code == 409, (path, r.text)
        assert "is released" in r.json()["detail"]


def test_a_shift_from_a_title_without_allocation_is_refused_by_the_books_state(client):
    body = {"from": "egt", "to": "vwk", "amount": "10,00", "reason": "Deckungsfähigkeit"}
    r = client.post("/budgets/2026/shifts", json=body, headers=auth("admin"))
    assert r.status_code == 409, r.text
    assert "has no allocation yet" in r.json()["detail"]


# ---- found in review, 22 November 2026 ------------------------------------------------------


def test_a_json_number_beyond_python_s_digit_limit_is_invalid_json_not_a_server_error(client):
    body = booking_body("BIG-1") | {"amount": "AMOUNT"}
    text = __import__("json").dumps(body).replace('"AMOUNT"', "1" * 4301)
    for headers in (auth("clerk"), {}):  # the body is read before the token is checked
        r = client.post("/bookings", content=text, headers=headers | {"Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:300]
        assert r.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("valid_from", "value", "field"),
    [
        ("2026-01-01", "1E+1000000", "value"),
        ("2026-01-01", "-1E+1000000", "value"),
        ("9999-07-01", "1,27 %", "valid_from"),
        ("0001-07-01", "1,27 %", "valid_from"),
    ],
)
def test_a_base_rate_out_of_range_is_refused_and_not_recorded(client, koa, valid_from, value, field):
    body = {"valid_from": valid_from, "value": value, "reason": "x"}
    r = client.post("/parameters/base-rates", json=body, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    cli = koa("params", "set-base-rate", "--from", valid_from, "--value", value, "--reason", "x")
    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert client.get("/parameters", headers=auth("auditor")).json()["base_rate_changes"] == []


def test_a_moment_beyond_utc_s_range_is_bad_input(client, koa):
    r = client.get("/retention", params={"as_of": "0001-01-01T00:00:00+01:00"}, headers=auth("auditor"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "as_of"
    cli = koa("retention", "--as-of", "0001-01-01T00:00:00+01:00")
    assert cli.exit_code == 1 and "--as-of" in cli.output and "Traceback" not in cli.output


def test_an_interest_quote_beyond_the_books_years_names_the_date(client):
    params = {"amount": "100", "interest_since": "9999-06-30", "date": "9999-07-01"}
    r = client.get("/funds-repayments/interest", params=params, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "date"


def test_a_position_beyond_a_bigint_is_bad_input(client, koa):
    huge = 10**20
    r = client.get(
        "/settlement/koa-vv",
        params={"year": 2025, "as_of": "2026-01-01T00:00:00+00:00", "position": huge},
        headers=auth("auditor"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "position"
    cli = koa("export", "koa-vv", "--year", 2025, "--as-of", "2026-01-01T00:00:00+00:00", "--position", huge)
    assert cli.exit_code == 1 and "--position" in cli.output and "Traceback" not in cli.output


def test_a_cursor_or_a_filter_a_store_cannot_take_is_bad_input_not_a_store_failure(client, koa):
    import base64

    forged = base64.urlsafe_b64encode(b'{"after": "\\ud800"}').decode()
    r = client.get("/bookings", params={"cursor": forged}, headers=auth("clerk"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "cursor"
    for field in ("document_ref", "case_ref"):
        r = client.get("/bookings", params={field: "a\x00b"}, headers=auth("clerk"))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field
    cli = koa("bookings", "--document-ref", "a\x00b")
    assert cli.exit_code == 1 and "document_ref" in cli.output and "store" not in cli.output


def test_a_slice_year_in_other_digits_is_named(koa):
    made = koa("commitment", "make", "--contract", "V-1", "--instrument", "egt.aktivierung", "--provider", "P",
               "--slice", "²=5", "--reason", "x")  # fmt: skip
    assert made.exit_code != 0 and "--slice" in made.output and "Traceback" not in made.output


def test_an_allocation_beyond_a_booking_s_limit_names_the_staff_list(koa, tmp_path):
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "person_key;vzae;sgb2_share;personnel_costs;status;versorgungszuschlag\n"
        "P-0001;1;100 %;60.000.000,00;beschaeftigter;\n"
        "P-0002;1;100 %;60.000.000,00;beschaeftigter;\n",
        encoding="utf-8",
    )
    refused = koa("allocation", "run", "--year", 2025, "--quarter", 1, "--staff", staff, "--user", "clerk")
    assert refused.exit_code == 1, refused.output
    assert "staff" in refused.output and "vwk.personal" in refused.output and "per quarter" in refused.output
    assert koa("bookings", "--keys-only").output == ""
