"""Batch approval (Sammelanordnung) on both stores: Ledger.approve_bookings, `koa approve KEY ...` /
`--keys-file` and POST /bookings/approvals. All or nothing; every refused key is named."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.commitment import CommitmentExceeded, commitment_id
from domain.errors import AlreadyApproved, BookingNotFound, FourEyesViolation, ValidationError
from ledger import budget_commands as bc
from ledger.application import APPROVE_KEYS_MAX, ApprovalsRefused
from ledger.bootstrap import open_books
from projections.split_projection import catch_up
from projections.split_queries import split_lines
from tests.api_fixtures import auth, booking_body
from tests.factories import booking

BIG = 2_000_000  # above the approval threshold (10.000,00 €): counts only once approved
SMALL = 50_000


def record(books, key, cents=BIG, *, by="mueller", category="egt.aktivierung", **changes):
    content = booking(key, amount_cents=cents, category=category, case_ref="", **changes)
    return books.ledger.record_booking(content, recorded_by=by).booking


def split(books, year=2025, quarter=None):
    catch_up(books.ledger, books.split_view)
    return split_lines(books.split_view, books.ledger.catalogue, books.ledger.rates, "BW", year, quarter)


def states(books, *keys):
    return [books.ledger.get_booking(k).state for k in keys]


# ---- the Ledger --------------------------------------------------------------------------------


def test_a_batch_approves_every_booking_in_one_transaction_and_all_count(books):
    for key in ("S-1", "S-2", "S-3"):
        record(books, key)
    record(books, "S-4", SMALL, category="kdu")  # below the threshold: counted already, approvable
    assert split(books) == [line for line in split(books) if line.category == "kdu"]
    before = books.ledger.max_notification_id()
    approved = books.ledger.approve_bookings(["S-3", "S-1", "S-2", "S-4"], approved_by="schmidt")
    assert [b.key for b in approved] == ["S-3", "S-1", "S-2", "S-4"]
    assert states(books, "S-1", "S-2", "S-3", "S-4") == ["approved"] * 4
    assert all(b.approved_by == "schmidt" for b in approved)
    assert books.ledger.max_notification_id() == before + 4  # one Approved event each, nothing else
    lines = {line.category: line for line in split(books)}
    assert (lines["egt.aktivierung"].net_cents, lines["egt.aktivierung"].booking_count) == (3 * BIG, 3)


def test_one_refused_key_stores_nothing_and_every_refused_key_is_named(books):
    for key in ("R-1", "R-2", "R-DONE"):
        record(books, key)
    record(books, "R-OWN", by="schmidt")
    books.ledger.approve_booking("R-DONE", approved_by="fischer")
    before, split_before = books.ledger.max_notification_id(), split(books)
    with pytest.raises(ApprovalsRefused) as e:
        books.ledger.approve_bookings(["R-1", "R-OWN", "R-2", "R-DONE", "R-NOPE"], approved_by="schmidt")
    refused = [(r.index, r.key, r.kind, type(r.error)) for r in e.value.refusals]
    assert refused == [
        (1, "R-OWN", "four-eyes", FourEyesViolation),
        (3, "R-DONE", "already-approved", AlreadyApproved),
        (4, "R-NOPE", "not-found", BookingNotFound),
    ]
    assert "schmidt recorded booking R-OWN" in e.value.refusals[0].reason
    assert "already approved by fischer" in e.value.refusals[1].reason
    assert e.value.total == 5 and str(e.value) == "keys: 3 of 5 keys refused; nothing was approved"
    assert books.ledger.max_notification_id() == before
    assert states(books, "R-1", "R-2") == ["awaiting_approval"] * 2
    assert split(books) == split_before


def test_empty_too_many_repeated_and_malformed_keys_are_refused_before_the_books_are_read(books):
    record(books, "M-1")
    with pytest.raises(ValidationError) as empty:
        books.ledger.approve_bookings([], approved_by="schmidt")
    assert empty.value.field == "keys"
    too_many = [f"M-{i}" for i in range(APPROVE_KEYS_MAX + 1)]
    with pytest.raises(ValidationError) as many:
        books.ledger.approve_bookings(too_many, approved_by="schmidt")
    assert many.value.field == "keys" and str(APPROVE_KEYS_MAX) in many.value.reason
    with pytest.raises(ApprovalsRefused) as e:
        books.ledger.approve_bookings(["M-1", "M-NOPE", "M-1", "bad key", "M-1"], approved_by="schmidt")
    assert [(r.index, r.key, r.kind) for r in e.value.refusals] == [
        (2, "M-1", "invalid"),
        (3, "bad key", "invalid"),
        (4, "M-1", "invalid"),
    ]  # M-NOPE is not looked up: malformed input is answered first
    assert "more than once" in e.value.refusals[0].reason
    with pytest.raises(ValidationError) as user:
        books.ledger.approve_bookings(["M-1"], approved_by="")
    assert user.value.field == "approved_by"
    assert states(books, "M-1") == ["awaiting_approval"]


def test_the_single_approval_still_raises_the_domains_own_errors(books):
    record(books, "ONE-1")
    with pytest.raises(FourEyesViolation):
        books.ledger.approve_booking("ONE-1", approved_by="mueller")
    with pytest.raises(BookingNotFound):
        books.ledger.approve_booking("not a key", approved_by="schmidt")  # 404 as before, not 422
    assert books.ledger.approve_booking("ONE-1", approved_by="schmidt").approved_by == "schmidt"
    with pytest.raises(AlreadyApproved):
        books.ledger.approve_booking("ONE-1", approved_by="schmidt")


def test_a_reversal_and_other_bookings_approved_together(books):
    record(books, "ST-1")
    books.ledger.approve_booking("ST-1", approved_by="schmidt")
    counter = books.ledger.reverse_booking("ST-1", reason="doppelt", reversed_by="mueller")
    record(books, "ST-2")
    approved = books.ledger.approve_bookings([counter.key, "ST-2"], approved_by="fischer")
    assert [b.state for b in approved] == ["reversal", "approved"]
    lines = {line.category: line for line in split(books)}
    assert lines["egt.aktivierung"].net_cents == BIG  # ST-1 and its Storno cancel out; ST-2 counts


# ---- commitments: drawdowns moved by approvals after the year's closing -----------------------

AGH = "AGH-2025-07"
INSTRUMENT = "egt.arbeitsgelegenheiten"


def invoice(books, key, cents):
    content = booking(
        key,
        amount_cents=cents,
        category=INSTRUMENT,
        payment_date=date(2025, 12, 10),
        service_from=date(2025, 12, 1),
        service_to=date(2025, 12, 28),
        contract_ref=AGH,
        document_ref="RE-1",
        case_ref="",
    )
    return books.ledger.record_booking(content, recorded_by="clerk").booking


def commitment_events(books):
    return [type(e).__name__ for e in books.ledger.events.get(commitment_id(AGH))]


def setup_late_invoices(books, slice_2026):
    bc.allocate(books, year=2025, title="egt", amount_cents=10_000_000, reference="ZS", reason="Z", by="head")
    bc.make_commitment(
        books,
        contract_ref=AGH,
        instrument=INSTRUMENT,
        provider="Träger",
        slices_cents={2025: 3_000_000, 2026: slice_2026},
        reason="Vertrag",
        by="head",
    )
    invoice(books, "AGH-A", 1_000_001)
    invoice(books, "AGH-B", 1_200_000)
    books.ledger.close_period(year=2025, quarter=0, closed_by="head")


def test_a_batch_moves_two_drawdowns_under_one_commitment_and_keeps_it_consistent(books):
    setup_late_invoices(books, slice_2026=2_500_000)
    approved = books.ledger.approve_bookings(["AGH-A", "AGH-B"], approved_by="approver", on=date(2026, 1, 20))
    assert [(b.fiscal_year, b.fiscal_rule) for b in approved] == [(2026, "after_closing")] * 2
    c = books.ledger.get_commitment(AGH)
    assert c.drawdowns == {"AGH-A": [2026, 1_000_001], "AGH-B": [2026, 1_200_000]}
    assert (c.remaining_cents(2025), c.remaining_cents(2026)) == (3_000_000, 2_500_000 - 2_200_001)
    assert commitment_events(books) == ["Made", "Drawn", "Drawn", "DrawdownMoved", "DrawdownMoved"]


def test_moves_accumulate_so_the_second_beyond_the_slice_is_refused_and_nothing_moves(books):
    """Each invoice fits the 2026 slice alone, not both: the shared commitment refuses the second,
    naming it, and neither the approvals nor the first move are stored."""
    setup_late_invoices(books, slice_2026=1_500_000)
    with pytest.raises(ApprovalsRefused) as e:
        books.ledger.approve_bookings(["AGH-A", "AGH-B"], approved_by="approver", on=date(2026, 1, 20))
    [r] = e.value.refusals
    assert (r.key, r.kind, type(r.error)) == ("AGH-B", "commitment-exceeded", CommitmentExceeded)
    assert "AGH-B" in r.reason and "2026" in r.reason
    assert commitment_events(books) == ["Made", "Drawn", "Drawn"]
    assert states(books, "AGH-A", "AGH-B") == ["awaiting_approval"] * 2
    bc.change_commitment(
        books, contract_ref=AGH, year=2026, amount_cents=700_001, increase=True, reason="Nachtrag", by="head"
    )
    books.ledger.approve_bookings(["AGH-A", "AGH-B"], approved_by="approver", on=date(2026, 1, 20))
    assert books.ledger.get_commitment(AGH).remaining_cents(2026) == 0


# ---- concurrency -------------------------------------------------------------------------------


def test_a_booking_approved_meanwhile_refuses_the_batch_on_its_retry(books, settings):
    """The other writer approves one of the batch's bookings between our reading and our saving:
    the save fails, the batch decides again, and now refuses that key; nothing of ours is stored."""
    record(books, "C-1")
    record(books, "C-2")
    calls = []

    def meanwhile(bookings):
        if not calls:
            with open_books(settings) as other:
                other.ledger.approve_booking("C-2", approved_by="fischer")
        calls.append(len(bookings))
        return ()

    with pytest.raises(ApprovalsRefused) as e:
        books.ledger.approve_bookings(["C-1", "C-2"], approved_by="schmidt", side_rows=meanwhile)
    assert [(r.key, r.kind) for r in e.value.refusals] == [("C-2", "already-approved")]
    assert calls == [2]
    assert states(books, "C-1") == ["awaiting_approval"]
    assert books.ledger.get_booking("C-2").approved_by == "fischer"


def test_a_drawdown_meanwhile_on_the_shared_commitment_is_retried_and_kept(books, settings):
    setup_late_invoices(books, slice_2026=3_000_000)
    calls = []

    def meanwhile(bookings):
        if not calls:
            with open_books(settings) as other:
                late = booking(
                    "AGH-C",
                    amount_cents=500_000,
                    category=INSTRUMENT,
                    payment_date=date(2026, 1, 12),
                    service_from=date(2026, 1, 1),
                    service_to=date(2026, 1, 31),
                    contract_ref=AGH,
                    case_ref="",
                )
                other.ledger.record_booking(late, recorded_by="clerk")
        calls.append(len(bookings))
        return ()

    books.ledger.approve_bookings(
        ["AGH-A", "AGH-B"], approved_by="approver", on=date(2026, 1, 20), side_rows=meanwhile
    )
    assert calls == [2, 2]  # the first save failed on the commitment's version, the second held
    c = books.ledger.get_commitment(AGH)
    assert c.drawdowns == {"AGH-A": [2026, 1_000_001], "AGH-B": [2026, 1_200_000], "AGH-C": [2026, 500_000]}
    assert c.remaining_cents(2026) == 3_000_000 - 2_700_001


def test_two_batches_racing_over_one_booking_approve_it_once(books, settings):
    for key in ("P-1", "P-2", "P-3"):
        record(books, key)
    outcomes: dict[str, object] = {}
    start = threading.Barrier(2)

    def run(name, keys, user):
        with open_books(settings) as own:
            start.wait()
            try:
                outcomes[name] = own.ledger.approve_bookings(keys, approved_by=user)
            except ApprovalsRefused as e:
                outcomes[name] = e

    threads = [
        threading.Thread(target=run, args=("a", ["P-1", "P-2"], "schmidt")),
        threading.Thread(target=run, args=("b", ["P-2", "P-3"], "fischer")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [n for n, o in outcomes.items() if isinstance(o, list)]
    lost = [o for o in outcomes.values() if isinstance(o, ApprovalsRefused)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert [(r.key, r.kind) for r in lost[0].refusals] == [("P-2", "already-approved")]
    approved = {"a": {"P-1", "P-2"}, "b": {"P-2", "P-3"}}[won[0]]
    assert {k for k in ("P-1", "P-2", "P-3") if books.ledger.get_booking(k).approved_by} == approved


# ---- property: one batch gives what approving one by one gives ---------------------------------

PROPERTY_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


bookings_st = st.lists(
    st.tuples(
        st.sampled_from([SMALL, 999_999, 1_000_001, BIG]),
        st.sampled_from(["egt.aktivierung", "kdu", "vwk.personal"]),
        st.sampled_from(["mueller", "mueller", "schmidt"]),  # schmidt approves: not their own
        st.sampled_from([False, False, True]),  # approved by fischer before the batch
    ),
    min_size=1,
    max_size=6,
)


@PROPERTY_SETTINGS
@given(data=st.data(), made=bookings_st)
def test_one_batch_gives_the_split_of_approving_one_by_one(fresh_books, data, made):
    keys = [f"H-{i}" for i in range(len(made))]
    batch = data.draw(st.lists(st.sampled_from([*keys, "H-NOPE"]), min_size=1, unique=True), label="batch")

    def fill(books):
        for key, (cents, category, by, pre) in zip(keys, made, strict=True):
            record(books, key, cents, by=by, category=category)
            if pre:
                books.ledger.approve_booking(key, approved_by="fischer")

    with fresh_books() as one_by_one:
        fill(one_by_one)
        singly_refused = {}
        for key in batch:
            try:
                one_by_one.ledger.approve_booking(key, approved_by="schmidt")
            except Exception as e:  # noqa: BLE001 - compared with the batch's refusals below
                singly_refused[key] = type(e)
        expected = split(one_by_one)
    with fresh_books() as together:
        fill(together)
        before = split(together)
        try:
            together.ledger.approve_bookings(batch, approved_by="schmidt")
            refused = {}
        except ApprovalsRefused as e:
            refused = {r.key: type(r.error) for r in e.refusals}
        assert refused == singly_refused
        assert split(together) == (before if refused else expected)


# ---- the command line ----------------------------------------------------------------------------


def book_big(koa, key, user="mueller"):
    r = koa(
        *(
            "book",
            "--key",
            key,
            "--kind",
            "payment",
            "--amount",
            "20.000,00",
            "--category",
            "egt.aktivierung",
        ),
        *("--payment-date", "2025-03-20", "--service-from", "2025-03-01", "--service-to", "2025-03-31"),
        *("--document-ref", "RE-1", "--cost-centre", "JC-NORD", "--user", user),
    )
    assert r.exit_code == 0, r.output


def egt_count(koa) -> str:
    out = koa("split", "--year", 2025, "--quarter", 1).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("egt.aktivierung")), "")
    return line.split()[-1] if line else "0"


def test_cli_approves_several_keys_with_a_line_each_and_a_total(koa):
    for key in ("K-1", "K-2", "K-3"):
        book_big(koa, key)
    r = koa("approve", "K-1", "K-2", "K-3", "--user", "schmidt")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "K-1: approved by schmidt",
        "K-2: approved by schmidt",
        "K-3: approved by schmidt",
        "3 bookings approved by schmidt",
    ]
    assert egt_count(koa) == "3"


def test_cli_refuses_the_batch_naming_every_refused_key_and_stores_nothing(koa):
    book_big(koa, "K-1")
    book_big(koa, "K-2")
    book_big(koa, "K-OWN", user="schmidt")
    r = koa("approve", "K-1", "K-OWN", "K-NOPE", "K-2", "--user", "schmidt")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "K-OWN: schmidt recorded booking K-OWN and may not approve it (four eyes)",
        "K-NOPE: no booking with key 'K-NOPE'",
        "koa: 2 of 4 keys refused; nothing was approved",
    ]
    assert egt_count(koa) == "0"
    dup = koa("approve", "K-1", "K-2", "K-1", "--user", "schmidt")
    assert dup.exit_code == 1
    assert "K-1: key K-1 is given more than once in the batch" in dup.stderr
    assert egt_count(koa) == "0"


def test_cli_keys_file_skips_blanks_and_comments_and_names_the_file_line(koa, tmp_path: Path):
    for key in ("F-1", "F-2", "F-3/x"):
        book_big(koa, key)
    book_big(koa, "F-OWN", user="schmidt")
    bad = tmp_path / "bad.txt"
    bad.write_text("# Sammelanordnung 7\n\nF-1\n  F-2  \nF-OWN\n# done\nF-NOPE\n", encoding="utf-8")
    r = koa("approve", "--keys-file", bad, "--user", "schmidt")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"{bad}:line 5: F-OWN: schmidt recorded booking F-OWN and may not approve it (four eyes)",
        f"{bad}:line 7: F-NOPE: no booking with key 'F-NOPE'",
        "koa: 2 of 4 keys refused; nothing was approved",
    ]
    assert egt_count(koa) == "0"
    good = tmp_path / "good.txt"
    good.write_text("\ufeff# run 7\nF-1\r\nF-2\r\n\r\nF-3/x\n", encoding="utf-8")
    ok = koa("approve", "--keys-file", good, "--user", "schmidt")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == "3 bookings approved by schmidt"
    assert egt_count(koa) == "3"


def test_cli_keys_file_problems_and_usage(koa, tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n", encoding="utf-8")
    r = koa("approve", "--keys-file", empty, "--user", "schmidt")
    assert r.exit_code == 1 and "no keys" in r.stderr and len(r.stderr.splitlines()) == 1
    missing = koa("approve", "--keys-file", tmp_path / "nope.txt", "--user", "schmidt")
    assert missing.exit_code == 1 and "nope.txt" in missing.stderr and "Traceback" not in missing.output
    many = tmp_path / "many.txt"
    many.write_text("".join(f"K-{i}\n" for i in range(APPROVE_KEYS_MAX + 1)), encoding="utf-8")
    too_many = koa("approve", "--keys-file", many, "--user", "schmidt")
    assert too_many.exit_code == 1 and f"more than {APPROVE_KEYS_MAX} keys" in too_many.stderr
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"K-1\n\xff\xfe\n")
    assert "line 2: not UTF-8" in koa("approve", "--keys-file", binary, "--user", "schmidt").stderr
    assert koa("approve", "--user", "schmidt").exit_code == 2
    assert koa("approve", "K-1", "--keys-file", empty, "--user", "schmidt").exit_code == 2


# ---- the HTTP API ----------------------------------------------------------------------------------


def post_big(client, key, who="clerk"):
    body = booking_body(key, amount="20.000,00", category="egt.aktivierung", case_ref="")
    r = client.post("/bookings", json=body, headers=auth(who))
    assert r.status_code == 201, r.text


def approvals(client, keys, who="approver", **headers):
    return client.post("/bookings/approvals", json={"keys": keys}, headers=auth(who, **headers))


def egt_net(client) -> int:
    lines = client.get("/split", params={"year": 2025}, headers=auth("auditor")).json()["lines"]
    return sum(line["net_cents"] for line in lines if line["category"] == "egt.aktivierung")


def test_api_batch_approves_all_and_they_count(client):
    for key in ("H-1", "H-2", "H-3/a"):
        post_big(client, key)
    r = approvals(client, ["H-3/a", "H-1", "H-2"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3
    assert [(b["key"], b["state"], b["approved_by"]) for b in body["bookings"]] == [
        ("H-3/a", "approved", "schmidt"),
        ("H-1", "approved", "schmidt"),
        ("H-2", "approved", "schmidt"),
    ]
    assert egt_net(client) == 3 * BIG
    assert client.get("/bookings/H-3/a", headers=auth("auditor")).json()["state"] == "approved"


def test_api_refusals_name_every_key_and_store_nothing(client):
    post_big(client, "H-1")
    post_big(client, "H-DONE")
    post_big(client, "H-OWN", who="clerk_approver")
    assert client.post("/bookings/H-DONE/approve", headers=auth("approver2")).status_code == 200
    r = approvals(client, ["H-1", "H-OWN", "H-DONE", "H-NOPE"], who="clerk_approver")
    assert r.status_code == 403  # four eyes is the most severe of the refusals
    assert r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert p["type"] == "urn:koa-ledger:problem:approvals-refused"
    assert p["detail"] == "keys: 3 of 4 keys refused; nothing was approved"
    assert [
        (e["field"], e["location"], e["key"], e["status"], e["type"].rsplit(":", 1)[1]) for e in p["errors"]
    ] == [
        ("keys.1", "body", "H-OWN", 403, "four-eyes"),
        ("keys.2", "body", "H-DONE", 409, "conflict"),
        ("keys.3", "body", "H-NOPE", 404, "not-found"),
    ]
    assert "meier recorded booking H-OWN" in p["errors"][0]["reason"]
    state = client.get("/bookings/H-1", headers=auth("auditor")).json()["state"]
    assert state == "awaiting_approval"
    assert egt_net(client) == BIG  # H-DONE only
    # Without a four-eyes refusal the books' state decides (409); unknown keys alone are 404.
    assert approvals(client, ["H-1", "H-DONE", "H-NOPE"]).status_code == 409
    only_unknown = approvals(client, ["H-NOPE", "H-NOPE-2"])
    assert only_unknown.status_code == 404
    assert [e["key"] for e in only_unknown.json()["errors"]] == ["H-NOPE", "H-NOPE-2"]
    assert egt_net(client) == BIG


def test_api_malformed_batches_are_422_naming_the_field(client):
    post_big(client, "H-1")
    empty = approvals(client, [])
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "keys"
    too_many = approvals(client, [f"H-{i}" for i in range(APPROVE_KEYS_MAX + 1)])
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "keys"
    dup = approvals(client, ["H-1", "H-NOPE", "H-1", "no key!"])
    assert dup.status_code == 422
    assert dup.json()["type"] == "urn:koa-ledger:problem:validation"
    assert [(e["field"], e["key"]) for e in dup.json()["errors"]] == [
        ("keys.2", "H-1"),
        ("keys.3", "no key!"),
    ]
    assert "more than once" in dup.json()["errors"][0]["reason"]
    wrong = client.post(
        "/bookings/approvals", json={"keys": ["H-1"], "approved_by": "x"}, headers=auth("approver")
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "approved_by"
    number = client.post("/bookings/approvals", json={"keys": [1]}, headers=auth("approver"))
    assert number.status_code == 422 and number.json()["errors"][0]["field"] == "keys.0"
    assert client.get("/bookings/H-1", headers=auth("auditor")).json()["state"] == "awaiting_approval"


def test_api_only_approvers_approve_batches(client):
    post_big(client, "H-1")
    assert approvals(client, ["H-1"], who="clerk").status_code == 403
    assert approvals(client, ["H-1"], who="auditor").status_code == 403
    assert client.post("/bookings/approvals", json={"keys": ["H-1"]}).status_code == 401


def test_api_batch_idempotency_key_repeats_the_stored_answer(client):
    post_big(client, "H-1")
    post_big(client, "H-2")
    h = {"Idempotency-Key": "sammel-7"}
    first = approvals(client, ["H-1", "H-2"], **h)
    assert first.status_code == 200
    again = approvals(client, ["H-1", "H-2"], **h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = approvals(client, ["H-2", "H-1"], **h)
    assert other.status_code == 409 and other.json()["type"].endswith("idempotency-mismatch")
    # Without the key the same request is a new one: now refused, both already approved.
    fresh = approvals(client, ["H-1", "H-2"])
    assert fresh.status_code == 409 and len(fresh.json()["errors"]) == 2
    # A refusal is remembered too (nothing was stored; the same request gets the same answer).
    post_big(client, "H-3")
    h2 = {"Idempotency-Key": "sammel-8"}
    refused = approvals(client, ["H-3", "H-1"], **h2)
    assert refused.status_code == 409
    assert approvals(client, ["H-3", "H-1"], **h2).headers["idempotent-replayed"] == "true"


def test_api_batch_route_leaves_the_single_approval_of_any_key_alone(client):
    """/bookings/approvals is the batch; a booking keyed 'approvals' (or 'x/approvals') is still
    read at /bookings/<key> and approved at /bookings/<key>/approve."""
    post_big(client, "approvals")
    post_big(client, "x/approvals")
    assert client.get("/bookings/approvals", headers=auth("auditor")).json()["key"] == "approvals"
    one = client.post("/bookings/approvals/approve", headers=auth("approver"))
    assert one.status_code == 200 and one.json()["key"] == "approvals"
    two = client.post("/bookings/x/approvals/approve", headers=auth("approver"))
    assert two.status_code == 200 and two.json()["key"] == "x/approvals"
    assert approvals(client, ["approvals"]).status_code == 409  # approved already, via the batch route


def test_an_approver_lists_what_awaits_approval_and_approves_it_as_a_whole(koa, tmp_path: Path):
    for key in ("K-3", "K-1", "K-2"):
        book_big(koa, key)
    small = koa(
        *("book", "--key", "S-1", "--kind", "payment", "--amount", "10,00", "--category", "egt.aktivierung"),
        *("--payment-date", "2025-03-20", "--service-from", "2025-03-01", "--service-to", "2025-03-31"),
        *("--document-ref", "RE-1", "--cost-centre", "JC-NORD", "--user", "mueller"),
    )
    assert small.exit_code == 0, small.output  # below the threshold: counts at once
    listed = koa("bookings", "--state", "awaiting_approval", "--document-ref", "RE-1")
    assert listed.exit_code == 0, listed.output
    assert [ln.split()[:2] for ln in listed.stdout.splitlines()] == [
        ["K-1", "awaiting_approval"],
        ["K-2", "awaiting_approval"],
        ["K-3", "awaiting_approval"],
    ]
    assert "20.000,00" in listed.stdout and "3 bookings" in listed.stderr
    # A page smaller than the result: the rest is announced, not dropped silently.
    first = koa("bookings", "--state", "awaiting_approval", "--limit", 2, "--keys-only")
    assert first.stdout.splitlines() == ["K-1", "K-2"] and "more than 2 bookings match" in first.stderr
    keys = tmp_path / "run.keys"
    keys.write_text(koa("bookings", "--state", "awaiting_approval", "--keys-only").stdout, encoding="utf-8")
    approved = koa("approve", "--keys-file", keys, "--user", "schmidt")
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.splitlines()[-1] == "3 bookings approved by schmidt"
    assert koa("bookings", "--state", "awaiting_approval", "--keys-only").stdout == ""
    assert koa("bookings", "--state", "recorded", "--keys-only").stdout.splitlines() == ["S-1"]
    assert koa("bookings", "--state", "approved", "--keys-only").stdout.splitlines() == ["K-1", "K-2", "K-3"]
    assert koa("reverse", "S-1", "--reason", "doppelt", "--user", "mueller").exit_code == 0
    [storno] = koa("bookings", "--state", "reversal").stdout.splitlines()
    assert storno.split()[:2] == ["S-1/storno", "reversal"] and " -10,00 " in storno  # net amount
    refused = koa("bookings", "--category", "egt.gibt_es_nicht")
    assert refused.exit_code == 1 and "--category: unknown category" in refused.stderr
    assert koa("bookings", "--state", "offen").exit_code == 2


def test_the_list_reads_page_after_page_without_losing_or_repeating_a_booking(koa, monkeypatch):
    from ledger import cli_bookings

    monkeypatch.setattr(cli_bookings, "PAGE_ROWS", 2)  # pages of two: the keyset loop is exercised
    for key in ("K-5", "K-1", "K-4", "K-2", "K-3"):
        book_big(koa, key)
    keys = [f"K-{i}" for i in range(1, 6)]
    assert koa("bookings", "--keys-only").stdout.splitlines() == keys
    for limit in (1, 2, 3, 4):
        r = koa("bookings", "--keys-only", "--limit", limit)
        assert r.stdout.splitlines() == keys[:limit] and "more than" in r.stderr
    r = koa("bookings", "--keys-only", "--limit", 5)
    assert r.stdout.splitlines() == keys and "more than" not in r.stderr
