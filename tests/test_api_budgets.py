"""Budgets, measure commitments, cost allocation runs and the new parameters over HTTP, on both
stores: the figures of `koa budget/commitment/allocation/params` to the cent, who may do what,
the refusals (422 naming the field, 409 naming what is available, 404, four eyes) and retries."""

from __future__ import annotations

from datetime import date

import pytest
from eventsourcing.persistence import IntegrityError

from api.idempotency import PENDING_STALE_MS
from tests.api_fixtures import auth, booking_body
from tests.factories import booking

P = "urn:koa-ledger:problem:"
STAFF = [  # tests/test_cost_allocation.STAFF, as a personnel office would send it
    {
        "person_key": "B-1",
        "vzae": 1,
        "sgb2_share": "100 %",
        "personnel_costs": "60.000,00",
        "status": "beamter",
        "versorgungszuschlag": "25.000,00",
    },
    {
        "person_key": "T-2",
        "vzae": "0,5",
        "sgb2_share": 0.6,
        "personnel_costs": "30000.01",
        "status": "beschaeftigter",
    },
    {
        "person_key": "T-3",
        "vzae": 0.75,
        "sgb2_share": "25 %",
        "personnel_costs": 44444.44,
        "status": "Beschaeftigter",
    },
]
SHARED = [
    {
        "service": "IT-Dienstleistung",
        "cost_type": "vwk.sachkosten",
        "amount": "10.000,00",
        "sgb2_key": "0,35",
    },
    {"service": "Hausdruckerei", "cost_type": "vwk.sonstige", "amount": "1.000,01", "sgb2_key": 0.5},
    {"service": "Server", "cost_type": "vwk.investitionen", "amount": 2000, "sgb2_key": "25 %"},
]
YEAR_RESULTS = {  # the same figures as tests/test_cost_allocation.YEAR_RESULTS
    "vwk.investitionen": 50_000,
    "vwk.personal": 8_911_112,
    "vwk.personalgemeinkosten": 1_782_222,
    "vwk.personalnebenkosten": 223_125,
    "vwk.sachkosten": 2_135_000,
    "vwk.sonstige": 50_001,
    "vwk.versorgungszuschlag": 1_800_000,
}
RUN_2025 = {"year": 2025, "quarter": None, "staff": STAFF, "shared": SHARED}


def _post(client, path: str, body: dict | None, who: str, **headers: str):
    return client.post(path, json=body, headers=auth(who, **headers))


def _allocate(client, amount: str = "1.000.000,00", title: str = "egt", year: int = 2026, who: str = "admin"):
    body = {"title": title, "amount": amount, "reference": f"BMAS-{year}-01", "reason": "Zuteilung"}
    return _post(client, f"/budgets/{year}/allocations", body, who)


def _line(status: dict, title: str, instrument: str | None = None) -> dict:
    return next(s for s in status["lines"] if (s["title"], s["instrument"]) == (title, instrument))


def _commitment(ref: str = "V-AGH-1", slices: object = None, **changes: object) -> dict:
    body = {
        "contract_ref": ref,
        "instrument": "egt.arbeitsgelegenheiten",
        "provider": "Träger Nord",
        "slices": slices if slices is not None else {"2026": "60.000,00", "2027": "30.000,00"},
        "reason": "AGH-Vertrag",
    }
    return body | changes


def _errors(r) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


def test_budgets_allocate_shift_plan_and_the_status_to_the_cent(client):
    r = _allocate(client)
    assert r.status_code == 201, r.text
    egt = r.json()["titles"][0]
    assert (egt["title"], egt["allocated"], egt["allocated_cents"], egt["reference"]) == (
        "egt",
        "1000000.00",
        100_000_000,
        "BMAS-2026-01",
    )
    assert r.headers["location"] == "/budgets/2026/status"
    assert _allocate(client, amount=500000, title="vwk").status_code == 201
    shift = {"from": "vwk", "to": "egt", "amount": "40.000,00", "reason": "Deckungsfähigkeit"}
    r = _post(client, "/budgets/2026/shifts", shift, "admin")
    assert r.status_code == 201, r.text
    assert [t["shifted_in"] for t in r.json()["titles"]] == ["40000.00", "-40000.00"]
    beyond = _post(client, "/budgets/2026/shifts", shift | {"amount": "20.000,00"}, "admin")
    assert beyond.status_code == 409 and beyond.json()["type"] == P + "budget-exceeded"
    assert "at most 50.000,00 €" in beyond.json()["detail"] and "10.000,00 € more" in beyond.json()["detail"]
    plan = {"instrument": "egt.arbeitsgelegenheiten", "amount": "600.000,00", "reason": "Planung"}
    r = _post(client, "/budgets/2026/plans", plan, "admin")
    assert r.status_code == 201 and r.json()["plan"] == [
        {"instrument": "egt.arbeitsgelegenheiten", "planned": "600000.00", "planned_cents": 60_000_000}
    ]

    for role in ("clerk", "approver", "auditor", "admin"):
        assert client.get("/budgets/2026/status", headers=auth(role)).status_code == 200
    status = client.get("/budgets/2026/status", headers=auth("auditor")).json()
    title = _line(status, "egt")
    assert {k: title[k] for k in ("planned", "allocated", "shifted", "committed", "spent", "available")} == {
        "planned": "600000.00",
        "allocated": "1000000.00",
        "shifted": "40000.00",
        "committed": "0.00",
        "spent": "0.00",
        "available": "1040000.00",
    }
    assert title["federal_title"] == "1101/685 11" and title["beyond_budget_cents"] == 0
    agh = _line(status, "egt", "egt.arbeitsgelegenheiten")
    assert (agh["planned"], agh["allocated"], agh["shifted"], agh["available_cents"]) == (
        "600000.00",
        None,
        None,
        60_000_000,
    )
    vwk = _line(status, "vwk")
    assert (vwk["planned"], vwk["shifted_cents"], vwk["available"]) == (None, -4_000_000, "460000.00")
    assert (vwk["federal_share"], vwk["federal_share_cents"], title["federal_share"]) == ("0.00", 0, None)
    empty = client.get("/budgets/2027/status", headers=auth("clerk")).json()
    assert _line(empty, "egt")["allocated"] is None and _line(empty, "egt")["available"] == "0.00"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("allocations", {"title": "egt", "amount": "12,345"}, "amount"),
        ("allocations", {"title": "egt", "amount": 12.345}, "amount"),
        ("allocations", {"title": "xyz", "amount": "1,00"}, "title"),
        ("allocations", {"title": "egt", "amount": "-1,00"}, "amount"),
        ("allocations", {"title": "egt", "amount": "1,00", "reference": "a b"}, "reference"),
        ("shifts", {"from": "egt", "to": "egt", "amount": "1,00"}, "to"),
        ("plans", {"instrument": "egt.gibt_es_nicht", "amount": "1,00"}, "instrument"),
        ("plans", {"instrument": "kdu", "amount": "1,00"}, "instrument"),
    ],
)
def test_bad_budget_input_is_422_naming_the_field(client, path, body, field):
    body = {"reference": "BMAS-1", "reason": "x"} | body
    if path == "shifts":
        assert _allocate(client).status_code == 201
        body.pop("reference")
    if path == "plans":
        body.pop("reference")
    r = _post(client, f"/budgets/2026/{path}", body, "admin")
    assert r.status_code == 422, r.text
    assert _errors(r) == [field]


def test_commitments_bind_the_budget_are_drawn_and_refused_beyond_what_is_available(client):
    assert _allocate(client, amount="100.000,00").status_code == 201
    r = _post(client, "/commitments", _commitment(), "clerk")
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.headers["location"] == "/commitments/V-AGH-1"
    assert [(s["year"], s["slice"], s["remaining_cents"]) for s in r.json()["commitment"]["slices"]] == [
        (2026, "60000.00", 6_000_000),
        (2027, "30000.00", 3_000_000),
    ]
    again = _post(
        client,
        "/commitments",
        _commitment(slices=[{"year": 2027, "amount": 30000}, {"year": 2026, "amount": "60000"}]),
        "clerk2",
    )
    assert again.status_code == 200 and again.json()["created"] is False
    other = _post(client, "/commitments", _commitment(provider="Träger Süd"), "clerk")
    assert other.status_code == 409 and other.json()["type"] == P + "key-conflict"
    too_much = _post(
        client, "/commitments", _commitment("V-FBW-7", [{"year": 2026, "amount": "40.000,01"}]), "clerk"
    )
    assert too_much.status_code == 409 and too_much.json()["type"] == P + "budget-exceeded"
    assert "available: 40.000,00 €" in too_much.json()["detail"]

    # A payment under the contract draws down its year's slice.
    pay = booking_body(
        "AGH-2026-1",
        amount="5.000,00",
        category="egt.arbeitsgelegenheiten",
        payment_date="2026-03-10",
        service_from="2026-03-01",
        service_to="2026-03-31",
        case_ref="",
        contract_ref="V-AGH-1",
    )
    assert _post(client, "/bookings", pay, "clerk").status_code == 201
    reduce = {"year": 2026, "amount": "60.000,00", "reason": "Kürzung"}
    r = _post(client, "/commitments/V-AGH-1/reduce", reduce, "clerk")
    assert r.status_code == 409 and r.json()["type"] == P + "commitment-exceeded"
    assert "remaining 55.000,00 €" in r.json()["detail"]
    increase = {"year": 2026, "amount": "40.000,01", "reason": "Nachtrag"}
    r = _post(client, "/commitments/V-AGH-1/increase", increase, "clerk")
    assert r.status_code == 409 and "available: 40.000,00 €" in r.json()["detail"]
    r = _post(client, "/commitments/V-AGH-1/increase", increase | {"amount": "10.000,00"}, "clerk")
    assert r.status_code == 200, r.text
    assert r.json()["slices"][0] == {
        "year": 2026,
        "slice": "70000.00",
        "slice_cents": 7_000_000,
        "drawn": "5000.00",
        "drawn_cents": 500_000,
        "released": "0.00",
        "released_cents": 0,
        "remaining": "65000.00",
        "remaining_cents": 6_500_000,
        "is_released": False,
    }
    r = _post(client, "/commitments/V-AGH-1/release", {"year": 2027, "reason": "Maßnahme beendet"}, "clerk")
    assert r.status_code == 200 and (r.json()["released"], r.json()["released_cents"]) == (
        "30000.00",
        3_000_000,
    )

    shown = client.get("/commitments/V-AGH-1", headers=auth("auditor")).json()
    assert [(e["type"], e["by"], e["year"], e["amount"]) for e in shown["events"]] == [
        ("Made", "mueller", None, None),
        ("Drawn", None, 2026, "5000.00"),
        ("Increased", "mueller", 2026, "10000.00"),
        ("Released", "mueller", 2027, "30000.00"),
    ]
    assert shown["events"][1]["booking_key"] == "AGH-2026-1" and shown["events"][0]["at"]
    assert shown["slices"][1]["is_released"] is True and shown["slices"][1]["remaining"] == "0.00"
    egt = _line(client.get("/budgets/2026/status", headers=auth("clerk")).json(), "egt")
    assert (egt["committed"], egt["spent"], egt["available"]) == ("65000.00", "5000.00", "30000.00")
    status = client.get("/budgets/2026/status", headers=auth("clerk")).json()
    assert (
        status["commitments"][0]["contract_ref"] == "V-AGH-1"
        and status["commitments"][0]["remaining"] == "65000.00"
    )


def test_unknown_contracts_are_404_and_bad_slices_422_naming_them(client):
    assert client.get("/commitments/V-NONE", headers=auth("auditor")).status_code == 404
    for action, body in (
        ("increase", {"year": 2026, "amount": "1,00", "reason": "x"}),
        ("reduce", {"year": 2026, "amount": "1,00", "reason": "x"}),
        ("release", {"year": 2026, "reason": "x"}),
    ):
        r = _post(client, f"/commitments/V-NONE/{action}", body, "clerk")
        assert r.status_code == 404 and r.json()["type"] == P + "not-found", action
        assert "V-NONE" in r.json()["detail"]
    bad = _post(
        client, "/commitments", _commitment(slices={"26": "1,00", "2026": "1,234", "2027": "0"}), "clerk"
    )
    assert bad.status_code == 422 and _errors(bad) == ["slices.26", "slices.2026"]
    zero = _post(client, "/commitments", _commitment(slices={"2027": "0"}), "clerk")
    assert zero.status_code == 422 and _errors(zero) == ["slices.2027"]
    twice = _post(
        client,
        "/commitments",
        _commitment(slices=[{"year": 2026, "amount": 1}, {"year": 2026, "amount": 2}]),
        "clerk",
    )
    assert twice.status_code == 422 and _errors(twice) == ["slices[1].year"]
    kdu = _post(client, "/commitments", _commitment(instrument="kdu"), "clerk")
    assert kdu.status_code == 422 and _errors(kdu) == ["instrument"]


def test_a_repeat_with_the_same_idempotency_key_changes_nothing(client):
    assert _allocate(client, amount="100.000,00").status_code == 201
    key = {"Idempotency-Key": "c-1"}
    first = _post(client, "/commitments", _commitment(), "clerk", **key)
    second = _post(client, "/commitments", _commitment(), "clerk", **key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["idempotent-replayed"] == "true" and second.json() == first.json()
    inc = {"year": 2026, "amount": "1.000,00", "reason": "Nachtrag"}
    key = {"Idempotency-Key": "i-1"}
    assert _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key).status_code == 200
    again = _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["slices"][0]["slice"] == "61000.00"
    other = _post(client, "/commitments/V-AGH-1/increase", inc | {"amount": "2,00"}, "clerk", **key)
    assert other.status_code == 409 and other.json()["type"] == P + "idempotency-mismatch"
    events = client.get("/commitments/V-AGH-1", headers=auth("clerk")).json()["events"]
    assert [e["type"] for e in events] == ["Made", "Increased"]
    a = _post(
        client,
        "/budgets/2026/allocations",
        {"title": "vwk", "amount": 7, "reference": "B-2", "reason": "x"},
        "admin",
        **key,
    )
    b = _post(
        client,
        "/budgets/2026/allocations",
        {"title": "vwk", "amount": 7, "reference": "B-2", "reason": "x"},
        "admin",
        **key,
    )
    assert a.status_code == 201 and b.headers["idempotent-replayed"] == "true"


def test_an_allocation_run_to_the_cent_approved_by_a_second_person_and_recomputed(client):
    r = _post(client, "/allocations", RUN_2025, "clerk_approver")
    assert r.status_code == 201, r.text
    run = r.json()
    assert {x["cost_type"]: x["amount_cents"] for x in run["results"]} == YEAR_RESULTS
    assert next(x for x in run["results"] if x["cost_type"] == "vwk.personal")["amount"] == "89111.12"
    assert (run["period"], run["run"], run["total"], run["reversed_keys"]) == ("year", 1, "149514.60", [])
    assert run["document_ref"] == "KOA-2025-J-L1" and "KOA-2025-J-L1-personal" in run["booked_keys"]
    assert r.headers["location"] == "/allocations/2025/year"

    own = _post(client, "/allocations/2025/year/approve", None, "clerk_approver")
    assert own.status_code == 403 and own.json()["type"] == P + "four-eyes"
    assert _post(client, "/allocations/2025/year/approve", None, "clerk").status_code == 403
    ok = _post(client, "/allocations/2025/year/approve", None, "approver")
    assert ok.status_code == 200, ok.text
    assert ok.json()["approved_keys"] == [
        "KOA-2025-J-L1-personal",
        "KOA-2025-J-L1-personalgemeinkosten",
        "KOA-2025-J-L1-sachkosten",
        "KOA-2025-J-L1-versorgungszuschlag",
    ]
    assert (
        client.get("/bookings/KOA-2025-J-L1-personal", headers=auth("auditor")).json()["state"] == "approved"
    )

    rerun = _post(client, "/allocations", RUN_2025 | {"staff": STAFF[:1]}, "clerk2")
    assert rerun.status_code == 201 and rerun.json()["run"] == 2
    assert rerun.json()["reversed_keys"] == run["booked_keys"]
    shown = client.get("/allocations/2025/year", headers=auth("auditor")).json()
    first, second = shown["runs"]
    assert (first["in_force"], second["in_force"], first["computed_by"], second["computed_by"]) == (
        False,
        True,
        "meier",
        "weber",
    )
    assert (first["staff_count"], first["shared_count"], first["sgb2_vzae"]) == (3, 3, "1.4875")
    assert first["recomputed_equal"] and second["recomputed_equal"]
    assert {x["cost_type"]: x["amount_cents"] for x in first["results"]} == YEAR_RESULTS
    assert first["parameters"] == {
        "personalgemeinkosten_rate": "0.20",
        "personalnebenkosten_per_vzae": "1500.00",
        "personalnebenkosten_per_vzae_cents": 150_000,
        "sachkosten_per_vzae": "12000.00",
        "sachkosten_per_vzae_cents": 1_200_000,
        "versorgungszuschlag_cap": "0.30",
        "part_of_year": "1",
    }
    assert client.get("/allocations/2025/q3", headers=auth("clerk")).status_code == 404
    assert client.get("/allocations/2025/q5", headers=auth("clerk")).status_code == 422
    assert _post(client, "/allocations/2024/q1/approve", None, "approver").status_code == 404


def test_runs_that_would_count_twice_or_whose_key_is_taken_are_409_and_not_to_be_retried(client, books):
    assert _post(client, "/allocations", RUN_2025, "clerk").status_code == 201
    q1 = _post(client, "/allocations", RUN_2025 | {"quarter": 1}, "clerk")
    assert q1.status_code == 409, q1.text
    assert q1.json()["type"] == P + "allocation-overlap" and "retry-after" not in q1.headers
    assert _errors(q1) == ["quarter"]
    assert "whole year 2025 is in force (KOA-2025-J-L1)" in q1.json()["detail"]
    assert "count the Verwaltungskosten twice" in q1.json()["detail"]
    assert client.get("/allocations/2025/q1", headers=auth("auditor")).status_code == 404

    # A booking by hand under one of the run's keys: refused naming it, not "concurrent change, retry".
    # Such keys are refused at input now (422); one stored before that rule is made on the ledger.
    d = {"payment_date": "2024-05-02", "service_from": "2024-05-01", "service_to": "2024-05-31"}
    manual = booking_body("KOA-2024-Q2-L1-personal", category="vwk.personal", case_ref="", **d)
    assert _post(client, "/bookings", manual, "clerk").status_code == 422
    books.ledger.record_booking(
        booking(
            "KOA-2024-Q2-L1-personal",
            category="vwk.personal",
            case_ref="",
            **{k: date.fromisoformat(v) for k, v in d.items()},
        ),
        recorded_by="mueller",
    )
    taken = _post(client, "/allocations", RUN_2025 | {"year": 2024, "quarter": 2}, "clerk")
    assert taken.status_code == 409, taken.text
    assert taken.json()["type"] == P + "key-conflict" and "retry-after" not in taken.headers
    assert (
        "'KOA-2024-Q2-L1-personal' of cost allocation run KOA-2024-Q2-L1 is already taken"
        in taken.json()["detail"]
    )

    # Personalkosten booked by hand in a period: a run computing them there would count them twice.
    d = {"payment_date": "2023-02-02", "service_from": "2023-02-01", "service_to": "2023-02-28"}
    by_hand = booking_body("PK-2023-1", category="vwk.personal", case_ref="", amount="1.234,56", **d)
    assert _post(client, "/bookings", by_hand, "clerk").status_code == 201
    twice = _post(client, "/allocations", RUN_2025 | {"year": 2023, "quarter": 1}, "clerk")
    assert twice.status_code == 409, twice.text
    assert twice.json()["type"] == P + "costs-booked-directly" and "retry-after" not in twice.headers
    assert _errors(twice) == ["quarter"]
    assert "vwk.personal 1.234,56 € (PK-2023-1)" in twice.json()["detail"]
    # And the other order: the year's run of 2025 is in force, so Personalkosten by hand are refused.
    d = {"payment_date": "2025-06-02", "service_from": "2025-06-01", "service_to": "2025-06-30"}
    beside = _post(
        client, "/bookings", booking_body("PK-2025-1", category="vwk.personal", case_ref="", **d), "clerk"
    )
    assert beside.status_code == 409, beside.text
    assert beside.json()["type"] == P + "costs-booked-directly" and _errors(beside) == ["category"]
    assert "cost allocation run KOA-2025-J-L1 in force" in beside.json()["detail"]


def test_bad_staff_records_are_422_naming_each_record_and_field(client):
    staff = [
        STAFF[0],
        STAFF[1] | {"vzae": "0", "sgb2_share": "150 %"},
        STAFF[2] | {"person_key": "B-1", "personnel_costs": "1,234"},
    ]
    shared = [SHARED[0] | {"cost_type": "vwk.personal"}]
    r = _post(client, "/allocations", RUN_2025 | {"staff": staff, "shared": shared}, "clerk")
    assert r.status_code == 422, r.text
    assert _errors(r) == [
        "staff[1].sgb2_share",
        "staff[2].personnel_costs",
        "shared[0].cost_type",
        "staff[2].person_key",
    ]
    r = _post(client, "/allocations", RUN_2025 | {"staff": [STAFF[0], STAFF[1] | {"vzae": "0"}]}, "clerk")
    assert r.status_code == 422 and _errors(r) == ["staff[1].vzae"]
    assert "greater than zero" in r.json()["errors"][0]["reason"]
    assert _post(client, "/allocations", RUN_2025 | {"staff": []}, "clerk").status_code == 422
    r = _post(client, "/allocations", RUN_2025 | {"staff": [STAFF[1] | {"vzae": True}]}, "clerk")
    assert r.status_code == 422
    assert client.get("/allocations/2025/year", headers=auth("auditor")).status_code == 404


def test_a_run_into_a_closed_period_is_409(client):
    assert _post(client, "/periods/close", {"year": 2025, "quarter": 1}, "admin").status_code == 201
    r = _post(client, "/allocations", RUN_2025 | {"quarter": 1}, "clerk")
    assert r.status_code == 409 and r.json()["type"] == P + "period-closed"
    assert "2025 Q1" in r.json()["detail"] and "closed" in r.json()["detail"]
    assert _post(client, "/allocations", RUN_2025 | {"quarter": 2}, "clerk").json()["period"] == "q2"


def test_the_new_parameters_are_set_listed_and_show_what_a_rerun_would_change(client):
    assert _post(client, "/allocations", RUN_2025, "clerk").status_code == 201
    body = {"name": "personalgemeinkosten_rate", "year": 2025, "value": "25 %", "reason": "Satz 2025"}
    r = _post(client, "/parameters", body, "admin")
    assert r.status_code == 201, r.text
    assert (r.json()["change"]["value"], r.json()["change"]["kind"], r.json()["federal_before"]) == (
        "0.25",
        "rate",
        None,
    )
    # Personalgemeinkosten 25 % × 89.111,116 = 22.277,779 instead of 17.822,22: + 4.455,56
    assert r.json()["allocation_reruns"] == [
        {
            "document_ref": "KOA-2025-J-L1",
            "year": 2025,
            "quarter": None,
            "booked": "149514.60",
            "booked_cents": 14_951_460,
            "with_new_value": "153970.16",
            "with_new_value_cents": 15_397_016,
            "difference": "4455.56",
            "difference_cents": 445_556,
        }
    ]
    amount = {"name": "sachkosten_per_vzae", "year": 2026, "value": "13.000,00", "reason": "Pauschale 2026"}
    r = _post(client, "/parameters", amount, "admin")
    assert r.status_code == 201 and (r.json()["change"]["value"], r.json()["change"]["kind"]) == (
        "13000",
        "amount",
    )
    assert r.json()["allocation_reruns"] == []
    assert _post(client, "/parameters", amount | {"value": 12500.5, "year": 2027}, "admin").status_code == 201
    # A JSON integer is read as written (it once became '13000.000000' and was refused as an amount).
    r = _post(client, "/parameters", amount | {"value": 13000, "year": 2028}, "admin")
    assert r.status_code == 201 and r.json()["change"]["value"] == "13000", r.text
    listed = client.get("/parameters", params={"year": 2026}, headers=auth("auditor")).json()
    y = listed["years"][0]
    assert (y["sachkosten_per_vzae"], y["sachkosten_per_vzae_cents"], y["personalgemeinkosten_rate"]) == (
        "13000.00",
        1_300_000,
        "0.25",
    )
    assert (
        y["versorgungszuschlag_cap"],
        y["deckungsfaehigkeit_limit"],
        y["personalnebenkosten_per_vzae"],
    ) == (
        "0.30",
        "0.10",
        "1500.00",
    )
    assert {p["name"] for p in listed["parameters"]} >= {"deckungsfaehigkeit_limit", "sachkosten_per_vzae"}
    for bad in (
        {"value": "12,345"},
        {"value": "nan"},
        {"value": "1e9999999 %", "name": "deckungsfaehigkeit_limit"},
        {"value": "1,5", "name": "deckungsfaehigkeit_limit"},
        {"value": "-1,00"},
    ):
        r = _post(client, "/parameters", amount | bad, "admin")
        assert r.status_code == 422 and _errors(r) == ["value"], bad


WRITES = [
    (
        "/budgets/2026/allocations",
        {"title": "egt", "amount": "1,00", "reference": "B-1", "reason": "x"},
        "admin",
    ),
    ("/budgets/2026/shifts", {"from": "vwk", "to": "egt", "amount": "1,00", "reason": "x"}, "admin"),
    ("/budgets/2026/plans", {"instrument": "egt.reha", "amount": "1,00", "reason": "x"}, "admin"),
    ("/commitments", _commitment(), "clerk"),
    ("/commitments/V-AGH-1/increase", {"year": 2026, "amount": "1,00", "reason": "x"}, "clerk"),
    ("/commitments/V-AGH-1/reduce", {"year": 2026, "amount": "1,00", "reason": "x"}, "clerk"),
    ("/commitments/V-AGH-1/release", {"year": 2026, "reason": "x"}, "clerk"),
    ("/allocations", RUN_2025, "clerk"),
    ("/allocations/2025/year/approve", None, "approver"),
]


def test_every_endpoint_needs_a_token_and_writes_need_their_role(client):
    for path, body, allowed in WRITES:
        assert client.post(path, json=body).status_code == 401, path
        for role in ("clerk", "approver", "auditor", "admin"):
            if role != allowed:
                r = _post(client, path, body, role)
                assert r.status_code == 403 and r.json()["type"] == P + "forbidden", (path, role)
    for path in ("/budgets/2026/status", "/commitments/V-AGH-1", "/allocations/2025/year"):
        assert client.get(path).status_code == 401
        for role in ("clerk", "approver", "auditor", "admin"):
            assert client.get(path, headers=auth(role)).status_code in (200, 404), (path, role)
    assert client.get("/budgets/2026/status", headers=auth("auditor")).status_code == 200


def test_a_change_whose_answer_was_lost_is_not_carried_out_again(client, monkeypatch):
    """The server stored the increase but died before it kept the answer (here: keeping it fails).
    The key's claim ages past the point where a request counts as dead; a retry with the key must
    not increase the commitment a second time: it learns the change was made and its answer lost."""
    store = client.app.state.services.idempotency
    assert _allocate(client, amount="100.000,00").status_code == 201
    assert _post(client, "/commitments", _commitment(), "clerk").status_code == 201
    inc = {"year": 2026, "amount": "1.000,00", "reason": "Nachtrag"}
    key = {"Idempotency-Key": "lost-1"}

    def lost(*args, **kwargs):
        raise OSError("connection to the database lost")

    monkeypatch.setattr(store, "complete", lost)
    assert _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key).status_code == 200
    monkeypatch.undo()
    with store._txn() as c:  # the claim is now older than any request may run
        c.execute(store._q(f"UPDATE {store.table} SET created_ms = created_ms - %s"), (PENDING_STALE_MS + 1,))

    retry = _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key)
    assert retry.status_code == 409, retry.text
    assert retry.json()["type"] == P + "idempotency-answer-lost"
    assert "retry-after" not in retry.headers
    events = client.get("/commitments/V-AGH-1", headers=auth("clerk")).json()["events"]
    assert [e["type"] for e in events] == ["Made", "Increased"]

    # A request that stored nothing and could not release its key is taken over once stale.
    def transient(*args, **kwargs):
        raise IntegrityError("kept conflicting with concurrent writers")

    key = {"Idempotency-Key": "died-1"}
    monkeypatch.setattr(store, "release", transient)
    monkeypatch.setattr(client.app.state.services.books.ledger, "save", transient)
    assert _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key).status_code == 409
    monkeypatch.undo()
    busy = _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key)
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    with store._txn() as c:
        c.execute(store._q(f"UPDATE {store.table} SET created_ms = created_ms - %s"), (PENDING_STALE_MS + 1,))
    assert _post(client, "/commitments/V-AGH-1/increase", inc, "clerk", **key).status_code == 200
    events = client.get("/commitments/V-AGH-1", headers=auth("clerk")).json()["events"]
    assert [e["type"] for e in events] == ["Made", "Increased", "Increased"]
