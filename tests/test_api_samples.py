"""IKS samples over HTTP on both stores (POST /audit/samples, GET /audit/samples, GET
/audit/samples/check), as `koa audit sample` does them: drawn and recorded by the audit office,
the same seed giving the same sample, re-checked after later bookings, a forged draw caught, and
every refusal recording nothing."""

from __future__ import annotations

import pytest

from domain.sampling import METHOD_HMAC
from tests.api_fixtures import auth, booking_body
from tests.factories import SAMPLE_BRANCHES, forged_sample_draw, sample_sha256, seed_sample_month

MONTH = "2025-11"
BRANCHES = SAMPLE_BRANCHES
DRAW = {"month": MONTH, "seed": "4711", "per_branch": 5}


def _ledger(client):
    return client.app.state.services.books.ledger


def seed_bookings(client) -> dict[str, list[str]]:
    return seed_sample_month(_ledger(client))


def late_booking(client, key: str, branch: str = "JC-NORD") -> None:
    body = booking_body(
        key,
        payment_date="2025-11-28",
        service_from="2025-11-01",
        service_to="2025-11-30",
        cost_centre=branch,
    )
    r = client.post("/bookings", json=body, headers=auth("clerk"))
    assert r.status_code == 201, r.text


def test_a_draw_is_recorded_as_the_tokens_user_and_the_same_seed_gives_the_same_sample(client):
    population = seed_bookings(client)
    position = _ledger(client).max_notification_id()
    r = client.post("/audit/samples", json=DRAW, headers=auth("auditor"))
    assert r.status_code == 201, r.text
    first = r.json()
    assert r.headers["location"] == f"/audit/samples?month={MONTH}"
    assert first["drawn_by"] == "pruefer" and first["method"] == METHOD_HMAC
    assert (first["month"], first["seed"], first["per_branch"]) == (MONTH, "4711", 5)
    assert set(first["sample"]) == set(BRANCHES)
    for branch, keys in first["sample"].items():
        assert len(keys) == 5 and set(keys) <= set(population[branch]) and keys == sorted(keys)
    assert first["population_sizes"] == dict.fromkeys(BRANCHES, 12) and first["population_size"] == 36
    assert first["position"] == position
    assert first["population_sha256"] == {b: sample_sha256(keys) for b, keys in population.items()}
    [recorded] = _ledger(client).sample_draws(MONTH)
    assert (
        str(recorded.id) == first["id"] and recorded.population_fingerprint == first["population_fingerprint"]
    )
    assert first["earlier"] == []

    # The same seed again, by an admin, from the same population: the same picks, another draw,
    # which lists the first.
    again = client.post("/audit/samples", json=DRAW, headers=auth("admin"))
    assert again.status_code == 201, again.text
    second = again.json()
    assert second["id"] != first["id"] and second["drawn_by"] == "leitung"
    assert second["sample"] == first["sample"]
    assert second["population_fingerprint"] == first["population_fingerprint"]
    assert [(e["id"], e["drawn_by"], e["seed"], e["per_branch"]) for e in second["earlier"]] == [
        (first["id"], "pruefer", "4711", 5)
    ]
    other_seed = client.post("/audit/samples", json=DRAW | {"seed": "0815"}, headers=auth("auditor"))
    assert other_seed.json()["sample"] != first["sample"]

    listed = client.get("/audit/samples", params={"month": MONTH}, headers=auth("auditor"))
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()] == [first["id"], second["id"], other_seed.json()["id"]]
    assert listed.json()[0] == {k: v for k, v in first.items() if k != "earlier"}
    assert client.get("/audit/samples", params={"month": "2025-10"}, headers=auth("admin")).json() == []
    assert client.get("/audit/verify", headers=auth("auditor")).json()["intact"] is True


def test_the_default_size_is_ten_per_branch(client):
    seed_bookings(client)
    r = client.post("/audit/samples", json={"month": MONTH, "seed": "4711"}, headers=auth("auditor"))
    assert r.status_code == 201, r.text
    assert r.json()["per_branch"] == 10
    assert all(len(keys) == 10 for keys in r.json()["sample"].values())


def test_a_repeat_with_the_idempotency_key_records_one_draw(client):
    seed_bookings(client)
    headers = auth("auditor", **{"Idempotency-Key": "iks-2025-11-1"})
    first = client.post("/audit/samples", json=DRAW, headers=headers)
    repeat = client.post("/audit/samples", json=DRAW, headers=headers)
    assert first.status_code == repeat.status_code == 201
    assert repeat.headers["idempotent-replayed"] == "true" and repeat.json() == first.json()
    assert len(_ledger(client).sample_draws(MONTH)) == 1
    other = client.post("/audit/samples", json=DRAW | {"seed": "0815"}, headers=headers)
    assert other.status_code == 409
    assert len(_ledger(client).sample_draws(MONTH)) == 1


def test_the_check_reproduces_after_later_bookings_and_catches_a_forged_draw(client):
    population = seed_bookings(client)
    drawn = client.post("/audit/samples", json=DRAW, headers=auth("auditor")).json()
    late_booking(client, "LR-202511-LATE")  # into the month, after the draw
    population["JC-NORD"].append("LR-202511-LATE")

    r = client.get("/audit/samples/check", params={"month": MONTH}, headers=auth("auditor"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["month"], body["seed"], body["draws"], body["reproduced"]) == (MONTH, None, 1, 1)
    assert body["all_reproduced"] is True
    [c] = body["checks"]
    assert c["draw"]["id"] == drawn["id"] and c["reproduced"] and c["population_equal"] and c["sample_equal"]
    assert c["population_differs"] == [] and c["sample_differs"] == []
    assert c["population_position"] == drawn["position"] and c["event_position"] == drawn["position"] + 1
    assert c["population_size"] == 36 and c["position_recorded"] and c["fingerprint_recorded"]
    assert (
        c["population_fingerprint"] == c["recorded_population_fingerprint"] == drawn["population_fingerprint"]
    )

    # Recorded as if drawn, but with a JC-SUED pick exchanged and a JC-WEST population made up.
    ledger = _ledger(client)
    position = ledger.max_notification_id()
    forged = forged_sample_draw(MONTH, population, position)
    ledger.save(forged)

    r = client.get("/audit/samples/check", params={"month": MONTH, "seed": "4711"}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["draws"], body["reproduced"], body["all_reproduced"]) == (2, 1, False)
    ok, bad = body["checks"]
    assert ok["reproduced"] is True
    assert bad["draw"]["id"] == str(forged.id) and bad["reproduced"] is False
    assert bad["population_differs"] == ["JC-WEST"] and bad["sample_differs"] == ["JC-SUED"]
    assert bad["population_equal"] is False and bad["sample_equal"] is False

    before = ledger.max_notification_id()
    none = client.get("/audit/samples/check", params={"month": "2025-10"}, headers=auth("auditor"))
    assert none.status_code == 404 and none.headers["content-type"] == "application/problem+json"
    assert none.json()["errors"][0]["field"] == "month"
    other = client.get(
        "/audit/samples/check", params={"month": MONTH, "seed": "0815"}, headers=auth("auditor")
    )
    assert other.status_code == 404 and other.json()["errors"][0]["field"] == "seed"
    assert "no recorded draws for 2025-11 with seed 0815" in other.json()["detail"]
    assert ledger.max_notification_id() == before  # checking records nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (DRAW | {"month": "2025-13"}, "month"),
        (DRAW | {"month": "11/2025"}, "month"),
        (DRAW | {"per_branch": 0}, "per_branch"),
        (DRAW | {"per_branch": 1001}, "per_branch"),
        (DRAW | {"per_branch": "5"}, "per_branch"),
        (DRAW | {"per_branch": True}, "per_branch"),
        (DRAW | {"seed": "a b"}, "seed"),
        (DRAW | {"seed": ""}, "seed"),
        ({"month": MONTH}, "seed"),
        (DRAW | {"month": "2025-06"}, "month"),  # no bookings paid in June
        (DRAW | {"drawn_by": "jemand"}, "drawn_by"),  # the drawer is the token's user
    ],
)
def test_bad_input_is_422_naming_the_field_and_records_nothing(client, body, field):
    seed_bookings(client)
    before = _ledger(client).max_notification_id()
    r = client.post("/audit/samples", json=body, headers=auth("auditor"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert (error["field"], error["location"]) == (field, "body")
    if body.get("month") == "2025-06":
        assert error["reason"] == "no bookings paid in 2025-06"
    assert _ledger(client).max_notification_id() == before
    assert _ledger(client).sample_draws(body.get("month", MONTH)) == []


def test_only_the_audit_office_draws_and_reads_samples(client):
    seed_bookings(client)
    before = _ledger(client).max_notification_id()
    for role in ("clerk", "approver", "clerk_approver"):
        r = client.post("/audit/samples", json=DRAW, headers=auth(role))
        assert r.status_code == 403, r.text
        assert "admin or auditor" in r.json()["detail"]
        assert client.get("/audit/samples", params={"month": MONTH}, headers=auth(role)).status_code == 403
        check = client.get("/audit/samples/check", params={"month": MONTH}, headers=auth(role))
        assert check.status_code == 403
    assert client.post("/audit/samples", json=DRAW).status_code == 401
    assert _ledger(client).max_notification_id() == before
    assert _ledger(client).sample_draws(MONTH) == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/audit/samples", {"month": "2025-13"}, "month"),
        ("/audit/samples", {}, "month"),
        ("/audit/samples", {"month": MONTH, "seed": "4711"}, "seed"),  # not a filter of the list
        ("/audit/samples/check", {"month": "März 2025"}, "month"),
        ("/audit/samples/check", {"month": MONTH, "seed": "a b"}, "seed"),
        ("/audit/samples/check", {"month": MONTH, "per_branch": "5"}, "per_branch"),
    ],
)
def test_bad_query_parameters_are_422_naming_them(client, path, params, field):
    r = client.get(path, params=params, headers=auth("auditor"))
    assert r.status_code == 422, r.text
    assert [(e["field"], e["location"]) for e in r.json()["errors"]] == [(field, "query")]


def test_the_draw_is_documented_with_examples(client):
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/audit/samples"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][body]["examples"][0] == {
        "month": "2025-03",
        "seed": "4711",
        "per_branch": 10,
    }
    assert "201" in post["responses"] and "404" in schema["paths"]["/audit/samples/check"]["get"]["responses"]
