"""A budget year told end to end through `koa`, on SQLite and PostgreSQL: budgets and a shift,
commitments spanning two years drawn down by invoices, a cost allocation run, a closed Q1, the KdU
quota going from provisional to final; then the budget status, the KdU difference and the
reconciliation, each checked to the cent."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result

YEAR = 2026
HEADER = "key;kind;amount;category;payment_date;service_from;service_to;document_ref;case_ref;contract_ref;cost_centre"


def row(key, amount, category, paid, service_from, service_to, contract="", case="") -> str:
    return f"{key};payment;{amount};{category};{paid};{service_from};{service_to};{key};{case};{contract};JC-NORD"


@pytest.fixture
def koa(koa):
    """The suite's `koa`, checking the exit code: 0, or non-zero where ok=False."""

    def run(*args: object, ok: bool = True) -> Result:
        result = koa(*args)
        assert (result.exit_code == 0) == ok, (args, result.output, result.stderr)
        return result

    return run


def status_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return {(r["instrument"] or r["title"]): r for r in csv.DictReader(f, delimiter=";")}


def test_a_budget_year_through_koa(koa, tmp_path: Path):
    admin, clerk, approver = ("--user", "leitung"), ("--user", "mueller"), ("--user", "schmidt")

    # The Land's quota is first known provisionally.
    koa("params", "set", "kdu_quota_provisional", "--year", YEAR, "--value", "71,9 %", "--reason", "BBFestV", *admin)

    # The Bund allocates; 100,000 € move from administration to measures (10 % would allow 200,000).
    koa("budget", "allocate", "--year", YEAR, "--title", "egt", "--amount", "1.000.000,00",
        "--reference", "BMAS-2026-01", "--reason", "Zuteilung", *admin)
    koa("budget", "allocate", "--year", YEAR, "--title", "vwk", "--amount", "2.000.000,00",
        "--reference", "BMAS-2026-01", "--reason", "Zuteilung", *admin)
    koa("budget", "shift", "--year", YEAR, "--from", "vwk", "--to", "egt", "--amount", "100.000,00",
        "--reason", "Deckungsfähigkeit", *admin)
    refused = koa("budget", "shift", "--year", YEAR, "--from", "vwk", "--to", "egt", "--amount", "100.000,01",
                  "--reason", "mehr", *admin, ok=False)
    assert "at most 100.000,00 € more" in refused.stderr
    koa("budget", "plan", "--year", YEAR, "--instrument", "egt.arbeitsgelegenheiten", "--amount", "600.000,00",
        "--reason", "Maßnahmeplanung", *admin)
    koa("budget", "plan", "--year", YEAR, "--instrument", "egt.weiterbildung", "--amount", "300.000,00",
        "--reason", "Maßnahmeplanung", *admin)

    # Commitments: Arbeitsgelegenheiten over two years (2027 is a Verpflichtungsermächtigung).
    koa("commitment", "make", "--contract", "V-AGH-1", "--instrument", "egt.arbeitsgelegenheiten",
        "--provider", "Beschäftigungsträger Nord", "--slice", f"{YEAR}=400.000,00", "--slice", f"{YEAR + 1}=300.000,00",
        "--reason", "AGH-Vertrag 2026/27", *clerk)
    koa("commitment", "make", "--contract", "V-WB-1", "--instrument", "egt.weiterbildung",
        "--provider", "Bildungswerk", "--slice", f"{YEAR}=200.000,00", "--reason", "FbW-Vertrag", *clerk)
    refused = koa("commitment", "make", "--contract", "V-X", "--instrument", "egt.weiterbildung",
                  "--provider", "Bildungswerk", "--slice", f"{YEAR}=500.000,01", "--reason", "zu viel", *clerk, ok=False)
    assert "available: 500.000,00 €" in refused.stderr  # 1,100,000 − 600,000 bound

    # Invoices and benefits in one run; KdU for January paid at the end of December belongs to 2026,
    # an Einstiegsgeld for December paid in the run-off period belongs to 2026 too.
    lines = [HEADER]
    lines += [row(f"AGH-{n}", "50.000,00", "egt.arbeitsgelegenheiten", f"{YEAR}-02-1{n}", f"{YEAR}-01-01",
                  f"{YEAR}-01-31", contract="V-AGH-1") for n in (1, 2)]
    lines += [row("AGH-3", "100.000,00", "egt.arbeitsgelegenheiten", f"{YEAR}-05-15", f"{YEAR}-04-01",
                  f"{YEAR}-04-30", contract="V-AGH-1")]
    lines += [row(f"KDU-{n:02}", "5.000,00", "kdu", f"{YEAR}-02-26", f"{YEAR}-03-01", f"{YEAR}-03-31",
                  case=f"08221BG00000{n:02}") for n in range(1, 20)]
    lines += [row("KDU-DEZ", "5.000,00", "kdu", f"{YEAR - 1}-12-29", f"{YEAR}-01-01", f"{YEAR}-01-31",
                  case="08221BG0000020")]
    lines += [row("ESG-1", "1.000,00", "egt.einstiegsgeld", f"{YEAR}-03-10", f"{YEAR}-03-01", f"{YEAR}-03-31")]
    lines += [row("ESG-2", "1.000,00", "egt.einstiegsgeld", f"{YEAR}-02-10", f"{YEAR - 1}-12-01",
                  f"{YEAR - 1}-12-31")]
    lines += [row("ESG-3", "1.000,00", "egt.einstiegsgeld", f"{YEAR + 1}-01-10", f"{YEAR}-12-01", f"{YEAR}-12-31")]
    run = tmp_path / "run.csv"
    run.write_text("\n".join(lines) + "\n", encoding="utf-8")
    over = tmp_path / "over.csv"
    over.write_text(HEADER + "\n" + row("AGH-9", "200.000,01", "egt.arbeitsgelegenheiten", f"{YEAR}-06-01",
                                        f"{YEAR}-05-01", f"{YEAR}-05-31", contract="V-AGH-1") + "\n", encoding="utf-8")
    koa("import", "payments", run, *clerk)
    refused = koa("import", "payments", over, *clerk, ok=False)
    assert "line 2" in refused.stderr and "remains of the 2026 slice of commitment V-AGH-1: 200.000,00 €" in refused.stderr
    for key in ("AGH-1", "AGH-2", "AGH-3"):
        koa("approve", key, *approver)  # above the threshold: counts once a second person approved

    # The Q1 cost allocation from the staff list; run by one person, approved by another.
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "person_key;vzae;sgb2_share;personnel_costs;status;versorgungszuschlag\n"
        "P-0001;1;100 %;15.000,00;beamter;5.000,00\n"  # surcharge capped at 30 %: 4.500,00
        "P-0002;0,5;0,8;8.000,00;beschaeftigter;\n",
        encoding="utf-8",
    )
    shared = tmp_path / "shared.csv"
    shared.write_text("service;cost_type;amount;sgb2_key\nIT-Dienstleister;vwk.sachkosten;10.000,00;25 %\n",
                      encoding="utf-8")
    out = koa("allocation", "run", "--year", YEAR, "--quarter", 1, "--staff", staff, "--shared", shared, *clerk)
    assert "37.405,00 €" in out.output  # 21.400 + 525 + 6.700 + 4.280 + 4.500
    koa("allocation", "approve", "--year", YEAR, "--quarter", 1, *clerk, ok=False)  # four eyes
    koa("allocation", "approve", "--year", YEAR, "--quarter", 1, *approver)

    # Q1 is closed; nothing more goes into it, a correction of a Q1 invoice lands in the open period.
    koa("close", "--year", YEAR, "--quarter", 1, *admin)
    refused = koa("book", "--key", "LATE-1", "--kind", "payment", "--amount", "10,00", "--category",
                  "egt.einstiegsgeld", "--payment-date", f"{YEAR}-03-30", "--service-from", f"{YEAR}-03-01",
                  "--service-to", f"{YEAR}-03-31", "--document-ref", "LATE-1", "--cost-centre", "JC", *clerk, ok=False)
    assert "2026 Q1 is closed" in refused.stderr and "open period" in refused.stderr
    refused = koa("allocation", "run", "--year", YEAR, "--quarter", 1, "--staff", staff, *clerk, ok=False)
    assert "2026 Q1: the period is closed" in refused.stderr
    out = koa("reverse", "AGH-2", "--reason", "Rechnung doppelt", "--on", f"{YEAR}-05-20", *clerk)
    assert "fiscal year 2026 Q2" in out.output
    koa("approve", "AGH-2/storno", *approver)

    # The Land fixes the final quota.
    koa("params", "set", "kdu_quota_final", "--year", YEAR, "--value", "72,1 %", "--reason", "BBFestV 2027", *admin)

    # Budget status, to the cent.
    status_csv = tmp_path / "status.csv"
    koa("budget", "status", "--year", YEAR, "--csv", status_csv)
    s = status_rows(status_csv)
    egt, vwk = s["1101/685 11"], s["1101/636 13"]
    # AGH: 400,000 bound, 200,000 invoiced, 50,000 of it reversed: 250,000 still bound, 150,000 spent.
    assert (egt["allocated_cents"], egt["shifted_cents"], egt["planned_cents"]) == ("100000000", "10000000", "90000000")
    assert (egt["committed_cents"], egt["spent_cents"]) == ("45000000", "15300000")  # 250k + 200k; 150k + 3k
    assert egt["available_cents"] == str(110_000_000 - 45_000_000 - 15_300_000)
    agh = s["egt.arbeitsgelegenheiten"]
    assert (agh["planned_cents"], agh["committed_cents"], agh["spent_cents"], agh["available_cents"]) == (
        "60000000", "25000000", "15000000", "20000000",
    )
    assert s["egt.weiterbildung"]["available_cents"] == "10000000"
    assert s["egt.einstiegsgeld"]["spent_cents"] == "300000" and s["egt.einstiegsgeld"]["planned_cents"] == ""
    assert (vwk["allocated_cents"], vwk["shifted_cents"], vwk["spent_cents"]) == ("200000000", "-10000000", "3740500")
    # The Verwaltungsbudget holds federal money: it is charged with the Bund's 87,4 % of the
    # Verwaltungskosten, per cost type and quarter as the split rounds them, not with the gross.
    assert vwk["federal_share_cents"] == str(1_870_360 + 45_885 + 585_580 + 374_072 + 393_300) == "3269197"
    assert vwk["available_cents"] == str(190_000_000 - 3_269_197)
    assert egt["federal_share_cents"] == ""  # the Eingliederungsbudget is charged with all it spends

    # The commitment spanning two years: the 2027 slice is untouched; releasing 2026's rest frees it.
    out = koa("commitment", "show", "--contract", "V-AGH-1")
    assert "2027: slice 300.000,00 €, drawn 0,00 €, remaining 300.000,00 €" in out.output
    koa("commitment", "release", "--contract", "V-WB-1", "--year", YEAR, "--reason", "Maßnahme entfallen", *clerk)
    koa("budget", "status", "--year", YEAR, "--csv", status_csv)
    assert status_rows(status_csv)["1101/685 11"]["committed_cents"] == "25000000"

    # KdU: § 22 Abs. 1 spending of 2026 is 100,000 € (incl. January paid in December).
    out = koa("kdu", "--year", YEAR).output
    assert "spending § 22 Abs. 1 net 100.000,00" in out
    assert "71,9 %: Bund 71.900,00" in out and "72,1 %: Bund 72.100,00" in out
    assert "difference to settle with the Land: 200,00" in out

    # Reconciliation: cash differs from payment dates by the December-for-January KdU (+5,000) and the
    # run-off Einstiegsgeld (+1,000); accrual differs from cash by the December 2025 Einstiegsgeld (−1,000).
    out = koa("reconcile", "--year", YEAR, "--all").output
    head = out.splitlines()[0]
    # KdU 19 × 5,000; AGH 50,000 + 50,000 − 50,000 (reversed) + 100,000; two Einstiegsgeld; the allocation.
    paid = 19 * 500_000 + 5_000_000 * 2 - 5_000_000 + 10_000_000 + 2 * 100_000 + 3_740_500
    cash = paid + 500_000 + 100_000
    accrual = cash - 100_000
    assert head == (
        f"{YEAR}: by payment date {fmt(paid)}; by fiscal year (Kameralistik) {fmt(cash)}; "
        f"by service period (Doppik) {fmt(accrual)}"
    ), head
    assert "KDU-DEZ" in out and "ESG-3" in out and "ESG-2" in out


def fmt(cents: int) -> str:
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def test_the_settlement_workbook_shows_budget_commitments_and_allocation(koa, tmp_path: Path):
    from openpyxl import load_workbook

    admin, clerk, approver = ("--user", "leitung"), ("--user", "mueller"), ("--user", "schmidt")
    koa("budget", "allocate", "--year", YEAR, "--title", "egt", "--amount", "1.000,00", "--reference", "Z-1",
        "--reason", "Zuteilung", *admin)
    koa("budget", "plan", "--year", YEAR, "--instrument", "egt.weiterbildung", "--amount", "800,00",
        "--reason", "Plan", *admin)
    koa("commitment", "make", "--contract", "V-1", "--instrument", "egt.weiterbildung", "--provider", "BW",
        "--slice", f"{YEAR}=600,00", "--reason", "FbW", *clerk)
    run = tmp_path / "run.csv"
    run.write_text(HEADER + "\n" + row("WB-1", "250,00", "egt.weiterbildung", f"{YEAR}-02-02", f"{YEAR}-01-01",
                                       f"{YEAR}-01-31", contract="V-1") + "\n"
                   + row("WB-2", "900,00", "egt.weiterbildung", f"{YEAR}-02-03", f"{YEAR}-01-01", f"{YEAR}-01-31")
                   + "\n", encoding="utf-8")
    koa("import", "payments", run, *clerk)
    staff = tmp_path / "staff.csv"
    staff.write_text("person_key;vzae;sgb2_share;personnel_costs;status\nP-1;1;0,5;1.000,00;beschaeftigter\n",
                     encoding="utf-8")
    koa("allocation", "run", "--year", YEAR, "--quarter", 1, "--staff", staff, *clerk)
    koa("allocation", "approve", "--year", YEAR, "--quarter", 1, *approver)
    path = tmp_path / "q1.xlsx"
    koa("export", "koa-vv", "--year", YEAR, "--quarter", 1, "--out", path)
    wb = load_workbook(path)
    ws = wb["Eingliederung"]
    values = [[c.value for c in r] for r in ws.iter_rows()]
    wb_row = next(r for r in values if r[0] == "egt.weiterbildung")
    # Plan 800, commitment 600 − 250 drawn = 350 outstanding, spent 1,150 (250 under the contract + 900).
    assert wb_row[2:6] == [Decimal("800.00"), None, Decimal("350.00"), Decimal("1150.00")]
    total = next(r for r in values if r[0] == "Summe")
    assert total[3] == Decimal("1000.00")  # the allocation
    # Beyond the budget: 1,150 spent of 1,000 allocated; the Bund pays 1,000, the Kommune 150.
    split_csv = tmp_path / "split.csv"
    koa("split", "--year", YEAR, "--csv", split_csv)
    with split_csv.open(encoding="utf-8") as f:
        line = next(r for r in csv.DictReader(f, delimiter=";") if r["Kategorie"] == "egt.weiterbildung")
    assert (line["Bundesanteil"], line["Kommunalanteil"]) == ("1.000,00", "150,00"), line
    assert "darüber Kommune" in line["Satz_Grundlage"]
    vwk = [[c.value for c in r] for r in wb["Verwaltungskosten"].iter_rows()]
    run_row = next(r for r in vwk if r[0] == f"KOA-{YEAR}-Q1-L1")
    assert run_row[1] == f"{YEAR} Q1" and run_row[2] == Decimal("0.5")

    # A new overhead rate for the year: the booked run stays, the difference a rerun would book is shown.
    out = koa("params", "set", "personalgemeinkosten_rate", "--year", YEAR, "--value", "25 %", "--reason",
              "Satz 2026", *admin).output
    assert f"KOA-{YEAR}-Q1-L1" in out and "(difference 25,00 €)" in out  # 25 % instead of 20 % of 500,00
