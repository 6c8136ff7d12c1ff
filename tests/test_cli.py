"""The `koa` command line, driven in-process with click's CliRunner, on SQLite and on PostgreSQL.

Each store-facing test gets the `store` fixture's KOA_* variables through monkeypatch, so the CLI
opens exactly the store the fixture made (and nothing is left set afterwards).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from domain.catalogue import Catalogue
from ledger.cli import main
from tests.factories import CSV_HEADER, csv_row

MONEY_RE = re.compile(r"^-?\d{1,3}(\.\d{3})*,\d{2}$")


def cents(text: str) -> int:
    """'1.234,56' -> 123456 (German number format, as the split CSV writes it)."""
    assert MONEY_RE.match(text), text
    return int(text.replace(".", "").replace(",", ""))


def figures(table: str, category: str) -> tuple[str, str, str, int]:
    """(net, federal, municipal, count) of a category's line in the split table."""
    line = next(ln for ln in table.splitlines() if ln.split()[:1] == [category])
    money = [t for t in line.split() if MONEY_RE.match(t)]
    assert len(money) == 3, line
    return money[0], money[1], money[2], int(line.split()[-1])


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]




BOOK_MN = tuple(
    "book --key MN-2025-0042 --kind payment --amount 23.500,00 --category egt.aktivierung"
    " --payment-date 2025-03-20 --service-from 2025-03-01 --service-to 2025-03-31"
    " --document-ref RE-4711 --contract-ref V-2025-001 --cost-centre JC-NORD --user mueller".split()
)


def book_args(
    key: str,
    amount: str = "500,00",
    payment_date: str = "2025-02-27",
    category: str = "kdu",
    user: str = "mueller",
) -> tuple[str, ...]:
    return (
        *("book", "--key", key, "--kind", "payment", "--amount", amount, "--category", category),
        *("--payment-date", payment_date, "--service-from", "2025-03-01"),
        *("--service-to", "2025-03-31", "--document-ref", "ZA-202503"),
        *("--case-ref", "08221BG0000001", "--cost-centre", "JC-NORD", "--text", "Miete"),
        *("--user", user),
    )


def write_run(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([CSV_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


# ---- demo -------------------------------------------------------------------------------------


def test_demo_prints_the_year_and_writes_a_consistent_csv(koa, tmp_path: Path):
    out = tmp_path / "demo-out"
    result = koa("demo", "--households", 30, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Haushaltsjahr 2025" in result.stdout
    assert "Summe Jahr" in result.stdout
    path = out / "split-2025.csv"
    assert str(path.resolve()) in result.stdout
    assert path.is_file()
    assert re.search(r"^[1-9]\d* bookings stored, 0 already there", result.stdout, re.M)

    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert len(rows) > 10
    assert {r["Haushaltsjahr"] for r in rows} == {"2025"}
    assert {r["Quartal"] for r in rows} == {"1", "2", "3", "4"}
    for r in rows:
        net = cents(r["Netto"])
        assert cents(r["Bundesanteil"]) + cents(r["Kommunalanteil"]) == net, r
        assert cents(r["Ausgaben"]) - cents(r["Einnahmen"]) == net, r
    # The year's total printed on screen is the sum of the CSV lines.
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("Summe Jahr"))
    net_total, federal_total, municipal_total = (cents(t) for t in total_line.split() if MONEY_RE.match(t))
    assert net_total == sum(cents(r["Netto"]) for r in rows)
    assert federal_total == sum(cents(r["Bundesanteil"]) for r in rows)
    assert municipal_total == sum(cents(r["Kommunalanteil"]) for r in rows)

    # Each quarter's federal share was drawn from the Bund, rounded down to 1.000 €: the year's
    # report shows the draws behind each title's funds drawn and less than 4 × 1.000 € to settle.
    drawn = int(re.search(r"^funds drawn from the Bund: (\d+) draws", result.stdout, re.M).group(1))
    assert drawn > 0
    doc_path = tmp_path / "year.json"
    exported = koa("export", "koa-vv", "--year", 2025, "--format", "json", "--out", doc_path)
    assert exported.exit_code == 0, exported.output
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    assert len(doc["draws"]) == drawn
    for t in doc["titles"]:
        behind = sum(d["amount_cents"] for d in doc["draws"] if d["federal_title"] == t["federal_title"])
        assert t["drawn_cents"] == behind
        if behind:
            assert 0 <= t["to_settle_cents"] < 4 * 100_000, t


def test_demo_twice_stores_nothing_new(koa, tmp_path: Path):
    first = koa("demo", "--households", 30, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    stored = int(re.search(r"^(\d+) bookings stored", first.stdout, re.M).group(1))
    assert stored > 0
    second = koa("demo", "--households", 30, "--out", tmp_path / "b")
    assert second.exit_code == 0, second.output
    assert f"0 bookings stored, {stored} already there" in second.stdout
    assert "split view: 0 events applied" in second.stdout
    draws = re.search(r"^funds drawn from the Bund: \d+ draws", first.stdout, re.M).group(0)
    assert draws in second.stdout  # the same vouchers again: repeats, not second draws
    # Same figures both times.
    assert (tmp_path / "a" / "split-2025.csv").read_text() == (tmp_path / "b" / "split-2025.csv").read_text()


# ---- book -------------------------------------------------------------------------------------


def test_book_records_then_repeats_idempotently_then_refuses_other_content(koa):
    result = koa(*book_args("K-1"))
    assert result.exit_code == 0, result.output
    assert "K-1: recorded" in result.stdout
    # Paid on 27 Feb for March (paid in advance): cash rule, fiscal year 2025 Q1.
    assert "fiscal year 2025 Q1" in result.stdout

    again = koa(*book_args("K-1"))
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.stdout
    assert "fiscal year 2025 Q1" in again.stdout

    conflict = koa(*book_args("K-1", amount="600,00"))
    assert conflict.exit_code == 1
    assert conflict.stdout == ""
    lines = stderr_lines(conflict)
    assert len(lines) == 1, conflict.stderr
    assert lines[0].startswith("koa: key:")
    assert "'K-1'" in lines[0] and "amount_cents" in lines[0]
    assert "Traceback" not in conflict.output


def test_book_reports_every_bad_field_in_one_line(koa):
    result = koa(*book_args("K-2", amount="12,345", payment_date="2025-13-01"))
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "amount" in lines[0] and "12,345" in lines[0]
    assert "payment_date" in lines[0] and "2025-13-01" in lines[0]
    # Nothing was stored.
    split = koa("split", "--year", 2025)
    assert split.exit_code == 0, split.output
    assert "(no bookings in this period)" in split.stdout


def test_book_missing_option_is_a_usage_error(koa):
    args = list(book_args("K-3"))
    i = args.index("--category")
    del args[i : i + 2]
    result = koa(*args)
    assert result.exit_code == 2
    assert "--category" in result.stderr


# ---- approve and reverse ----------------------------------------------------------------------


def test_four_eyes_approval_and_reversal(koa):
    booked = koa(*BOOK_MN)
    assert booked.exit_code == 0, booked.output
    assert "MN-2025-0042: recorded" in booked.stdout
    assert "fiscal year 2025 Q1" in booked.stdout

    # Above the approval threshold: not counted until approved.
    before = koa("split", "--year", 2025, "--quarter", 1)
    assert before.exit_code == 0, before.output
    assert "egt.aktivierung" not in before.stdout

    own = koa("approve", "MN-2025-0042", "--user", "mueller")
    assert own.exit_code == 1
    lines = stderr_lines(own)
    assert len(lines) == 1, own.stderr
    assert "four eyes" in lines[0]
    assert "mueller" in lines[0]

    other = koa("approve", "MN-2025-0042", "--user", "schmidt")
    assert other.exit_code == 0, other.output
    assert "MN-2025-0042: approved by schmidt" in other.stdout

    after = koa("split", "--year", 2025, "--quarter", 1)
    assert after.exit_code == 0, after.output
    assert figures(after.stdout, "egt.aktivierung") == ("23.500,00", "23.500,00", "0,00", 1)

    reversed_ = koa("reverse", "MN-2025-0042", "--reason", "Rechnung doppelt", "--user", "mueller")
    assert reversed_.exit_code == 0, reversed_.output
    assert "MN-2025-0042: reversed by MN-2025-0042/storno (fiscal year 2025 Q1)" in reversed_.stdout

    again = koa("reverse", "MN-2025-0042", "--reason", "nochmal", "--user", "mueller")
    assert again.exit_code == 1
    lines = stderr_lines(again)
    assert len(lines) == 1, again.stderr
    assert "already reversed" in lines[0] and "MN-2025-0042/storno" in lines[0]

    # The counter-booking is as large as the original: it counts once a second person approved it.
    pending = koa("split", "--year", 2025, "--quarter", 1)
    assert figures(pending.stdout, "egt.aktivierung") == ("23.500,00", "23.500,00", "0,00", 1)
    own_storno = koa("approve", "MN-2025-0042/storno", "--user", "mueller")
    assert own_storno.exit_code == 1
    assert "four eyes" in own_storno.stderr
    storno = koa("approve", "MN-2025-0042/storno", "--user", "schmidt")
    assert storno.exit_code == 0, storno.output

    # The reversal cancels the booking: net 0 for the category, both bookings still visible.
    net = koa("split", "--year", 2025, "--quarter", 1)
    assert figures(net.stdout, "egt.aktivierung") == ("0,00", "0,00", "0,00", 2)

    # A reversal cannot itself be reversed.
    twice = koa("reverse", "MN-2025-0042/storno", "--reason", "zurück", "--user", "mueller")
    assert twice.exit_code == 1
    assert len(stderr_lines(twice)) == 1
    assert "itself a reversal" in twice.stderr


def test_reversing_an_unapproved_booking_never_leaves_a_negative_split(koa):
    """A large booking reversed before anyone approved it never counted; its counter-booking must
    not count alone either, whatever is approved afterwards: the two cancel out."""
    assert koa(*BOOK_MN).exit_code == 0
    reversed_ = koa("reverse", "MN-2025-0042", "--reason", "Rechnung doppelt", "--user", "mueller")
    assert reversed_.exit_code == 0, reversed_.output
    original = koa("approve", "MN-2025-0042", "--user", "schmidt")
    assert original.exit_code == 1  # a reversed booking can no longer be approved
    koa("approve", "MN-2025-0042/storno", "--user", "schmidt")  # refused or not: the sum must hold
    split = koa("split", "--year", 2025, "--quarter", 1)
    assert split.exit_code == 0, split.output
    assert "-23.500,00" not in split.stdout
    if "egt.aktivierung" in split.stdout:
        assert figures(split.stdout, "egt.aktivierung")[:3] == ("0,00", "0,00", "0,00")


def test_approve_twice_is_refused(koa):
    assert koa(*BOOK_MN).exit_code == 0
    assert koa("approve", "MN-2025-0042", "--user", "schmidt").exit_code == 0
    again = koa("approve", "MN-2025-0042", "--user", "meier")
    assert again.exit_code == 1
    assert len(stderr_lines(again)) == 1
    assert "already approved by schmidt" in again.stderr


def test_approve_unknown_key_names_the_key(koa):
    result = koa("approve", "NO-SUCH-KEY", "--user", "schmidt")
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "NO-SUCH-KEY" in lines[0]
    assert "Traceback" not in result.output


def test_reverse_without_reason_is_a_usage_error(koa):
    result = koa("reverse", "X-1", "--user", "mueller")
    assert result.exit_code == 2
    assert "--reason" in result.stderr


def test_user_defaults_to_koa_user(koa, store):
    booked = koa(*book_args("U-1")[:-2])  # no --user: KOA_USER applies
    assert booked.exit_code == 0, booked.output
    result = koa("approve", "U-1")  # the same KOA_USER: four eyes refuses
    assert result.exit_code == 1
    assert "four eyes" in result.stderr and store["KOA_USER"] in result.stderr


# ---- split ------------------------------------------------------------------------------------


def test_split_quarter_prints_the_table_and_writes_the_csv(koa, tmp_path: Path):
    for args in (book_args("S-1", "650,00"), book_args("S-2", "350,00")):
        assert koa(*args).exit_code == 0
    path = tmp_path / "x.csv"
    result = koa("split", "--year", 2025, "--quarter", 1, "--csv", path)
    assert result.exit_code == 0, result.output
    assert "Haushaltsjahr 2025, Quartal 1" in result.stdout
    # 1.000,00 at the 2025 BW KdU quota of 72.5 %.
    assert figures(result.stdout, "kdu") == ("1.000,00", "725,00", "275,00", 2)
    assert "72,5 %" in result.stdout
    assert f"CSV: {path.resolve()}" in result.stdout
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert [
        (r["Quartal"], r["Kategorie"], r["Netto"], r["Bundesanteil"], r["Kommunalanteil"]) for r in rows
    ] == [("1", "kdu", "1.000,00", "725,00", "275,00")]


def test_split_quarter_out_of_range_is_a_usage_error(koa):
    result = koa("split", "--year", 2025, "--quarter", 5)
    assert result.exit_code == 2
    assert "--quarter" in result.stderr
    assert result.stdout == ""


def test_split_year_without_bookings(koa):
    assert koa(*book_args("S-1")).exit_code == 0
    result = koa("split", "--year", 2030)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "(no bookings in this period)"


# ---- import payments --------------------------------------------------------------------------


def test_import_payments_then_reimport_changes_nothing(koa, tmp_path: Path):
    rows = [csv_row(f"R-{n}", "650,00", "kdu", case=f"08221BG000000{n}") for n in range(1, 6)]
    path = write_run(tmp_path / "run.csv", rows)
    first = koa("import", "payments", path, "--user", "clerk")
    assert first.exit_code == 0, first.output
    assert "5 bookings imported, 0 already present" in first.stdout

    second = koa("import", "payments", path, "--user", "clerk")
    assert second.exit_code == 0, second.output
    assert "0 bookings imported, 5 already present" in second.stdout

    split = koa("split", "--year", 2025)
    assert figures(split.stdout, "kdu")[0] == "3.250,00"
    assert figures(split.stdout, "kdu")[3] == 5


def test_import_with_bad_rows_lists_them_and_stores_nothing(koa, tmp_path: Path):
    rows = [
        csv_row("R-1"),  # line 2
        csv_row("R-2", "12,345"),  # line 3: bad amount
        csv_row("R-3"),  # line 4
        csv_row("R-4", category="nope"),  # line 5: unknown category
        csv_row("R-5"),  # line 6
    ]
    path = write_run(tmp_path / "bad.csv", rows)
    result = koa("import", "payments", path, "--user", "clerk")
    assert result.exit_code == 1
    assert "imported," not in result.stdout
    lines = stderr_lines(result)
    row_lines = [line for line in lines if re.search(r"line \d+", line) and not line.startswith("koa:")]
    assert len(row_lines) == 2, result.stderr
    assert row_lines[0].startswith(f"{path}:line 3: amount")
    assert row_lines[1].startswith(f"{path}:line 5: category")
    assert lines[-1].startswith("koa:") and "nothing was imported" in lines[-1]
    assert "2 errors in 2 rows" in lines[-1]

    split = koa("split", "--year", 2025)
    assert split.exit_code == 0, split.output
    assert "(no bookings in this period)" in split.stdout


def test_import_conflicting_with_stored_keys_is_refused_as_a_whole(koa, tmp_path: Path):
    ok = koa("import", "payments", write_run(tmp_path / "a.csv", [csv_row("R-1"), csv_row("R-2")]))
    assert ok.exit_code == 0, ok.output
    path = write_run(tmp_path / "b.csv", [csv_row("R-9"), csv_row("R-2", "1,00")])
    result = koa("import", "payments", path)
    assert result.exit_code == 1
    assert f"{path}:line 3: key" in result.stderr
    assert "nothing was imported" in stderr_lines(result)[-1]
    split = koa("split", "--year", 2025)
    assert figures(split.stdout, "kdu")[0] == "1.000,00"  # only: R-9 was not stored


def test_import_missing_file_is_one_line(koa, tmp_path: Path):
    path = tmp_path / "no-such-run.csv"
    result = koa("import", "payments", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert lines == [f"koa: {path}: no such file"], result.stderr


# ---- project, categories ----------------------------------------------------------------------


def test_project_rebuild_reports_the_number_of_events(koa):
    assert koa(*BOOK_MN).exit_code == 0  # event 1
    assert koa("approve", "MN-2025-0042", "--user", "schmidt").exit_code == 0  # event 2
    assert koa(*book_args("P-1")).exit_code == 0  # event 3
    caught_up = koa("project")
    assert caught_up.exit_code == 0, caught_up.output
    assert caught_up.stdout.startswith("0 events applied")
    rebuilt = koa("project", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rebuilt.stdout.startswith("3 events applied up to position 3")
    # The rebuilt view gives the same split.
    split = koa("split", "--year", 2025, "--quarter", 1)
    assert figures(split.stdout, "egt.aktivierung")[0] == "23.500,00"


def test_categories_lists_the_catalogue(koa):
    result = koa("categories")
    assert result.exit_code == 0, result.output
    codes = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert "egt.aktivierung" in codes
    assert codes == Catalogue.load().codes()


# ---- settings errors (no store needed) --------------------------------------------------------


@pytest.fixture
def bare_koa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KOA_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    "url",
    [
        "mysql://x",
        "sqlite:///tmp/koa.sqlite",
        "postgresql://localhost",
        "postgresql://localhost/db?schema=Bad-Name",
    ],
)
def test_malformed_database_url_is_one_line_naming_the_variable(bare_koa, monkeypatch, url):
    monkeypatch.setenv("KOA_DATABASE_URL", url)
    result = bare_koa("categories")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("koa:")
    assert "KOA_DATABASE_URL" in lines[0]
    assert "Traceback" not in result.output


def test_unknown_land_is_one_line_naming_the_variable(bare_koa, monkeypatch):
    monkeypatch.setenv("KOA_LAND", "XX")
    result = bare_koa("split", "--year", 2025)
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "KOA_LAND" in lines[0] and "XX" in lines[0]


@pytest.mark.parametrize("query", ["connect_timeout=2", "schema=koa_ledger&connect_timeout=2"])
def test_unreachable_postgres_is_one_line(bare_koa, monkeypatch, query):
    """Port 1 on the loopback: nothing listens there. With the default schema and with a schema
    of its own (which koa creates first) the answer is the same: one line, exit code 1."""
    monkeypatch.setenv("KOA_DATABASE_URL", f"postgresql://postgres@127.0.0.1:1/koa?{query}")
    result = bare_koa("categories")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("koa: the store refused or could not be reached")
