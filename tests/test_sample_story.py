"""An IKS sample on a real store (SQLite and PostgreSQL), through `koa audit sample`: drawn, booked
into afterwards, re-checked, drawn again; and a draw recorded before draws kept their position and
fingerprint (a version 1 event) still loads and re-checks."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from uuid import uuid4

from click.testing import Result
from eventsourcing.persistence import StoredEvent

from domain.sampling import METHOD_HMAC, METHOD_RANDOM_SAMPLE
from ledger import samples
from ledger.bootstrap import Books
from ledger.recorded_events import plain_mapper
from tests.factories import SAMPLE_BRANCHES, forged_sample_draw, sample_sha256, seed_sample_month
from tests.races import meanwhile

MONTH = "2025-11"
BRANCHES = SAMPLE_BRANCHES
SAMPLE_LINE_RE = re.compile(r"^(\S+) \((\d+) bookings\): (.+)$")
DRAW_ARGS = ("audit", "sample", "--month", MONTH, "--per-branch", 5, "--seed", "4711", "--user", "pruefer")


def seed_bookings(books: Books) -> dict[str, list[str]]:
    return seed_sample_month(books.ledger)


def late_booking_args(key: str, branch: str = "JC-NORD") -> tuple[str, ...]:
    return (
        *("book", "--key", key, "--kind", "payment", "--amount", "500,00", "--category", "kdu"),
        *("--payment-date", "2025-11-28", "--service-from", "2025-11-01", "--service-to", "2025-11-30"),
        *("--document-ref", "ZA-202511", "--case-ref", "08221BG0000001", "--cost-centre", branch),
        *("--text", "Miete", "--user", "mueller"),
    )


def picks(result: Result) -> dict[str, list[str]]:
    assert result.exit_code == 0, result.output
    return {
        m.group(1): m.group(3).split(", ")
        for line in result.stdout.splitlines()
        if (m := SAMPLE_LINE_RE.match(line))
    }


def test_a_draw_still_reproduces_after_a_late_booking_and_a_redraw_moves_at_most_one_pick(koa, books: Books):
    population = seed_bookings(books)
    first = koa(*DRAW_ARGS)
    drawn = picks(first)
    assert set(drawn) == set(BRANCHES) and all(len(keys) == 5 for keys in drawn.values())
    [d1] = books.ledger.sample_draws(MONTH)
    assert d1.sample == drawn and d1.method == METHOD_HMAC
    assert d1.population_sizes == dict.fromkeys(BRANCHES, 12)
    assert d1.population_sha256 == {b: sample_sha256(keys) for b, keys in population.items()}
    position = books.ledger.max_notification_id() - 1  # the bookings; the draw is the last event
    assert d1.position == position
    assert f"recorded up to log position {position}, SHA-256 {d1.population_fingerprint}" in first.stdout

    # The reviewer's case: one more booking in the month for JC-NORD, recorded after the draw.
    late = koa(*late_booking_args("LR-202511-LATE"))
    assert late.exit_code == 0, late.output

    check = koa("audit", "sample", "--month", MONTH, "--check")
    assert check.exit_code == 0, check.output
    assert f"draw {d1.id} at " in check.stdout and ": reproduced" in check.stdout
    assert f"36 bookings recorded up to log position {position}" in check.stdout
    assert "sample: as recorded" in check.stdout
    assert check.stdout.splitlines()[-1] == f"1 of 1 draw(s) for {MONTH} reproduced"

    # The same seed again: the population has one more JC-NORD booking, which displaces at most
    # one pick there; the other branches are drawn exactly as before.
    again = picks(koa(*DRAW_ARGS))
    for branch in ("JC-SUED", "JC-WEST"):
        assert again[branch] == drawn[branch]
    assert len(set(drawn["JC-NORD"]) - set(again["JC-NORD"])) <= 1
    assert set(again["JC-NORD"]) - set(drawn["JC-NORD"]) <= {"LR-202511-LATE"}
    d1_, d2 = books.ledger.sample_draws(MONTH)
    assert d1_.sample == d1.sample and d2.position > d1.position
    assert d2.population_sizes == {**d1.population_sizes, "JC-NORD": 13}
    assert d2.population_sha256["JC-NORD"] != d1.population_sha256["JC-NORD"]
    assert {b: d2.population_sha256[b] for b in ("JC-SUED", "JC-WEST")} == {
        b: d1.population_sha256[b] for b in ("JC-SUED", "JC-WEST")
    }

    # Later bookings again; both recorded draws still reproduce, each from its own position.
    assert koa(*late_booking_args("LR-202511-LATE2", "JC-WEST")).exit_code == 0
    check = koa("audit", "sample", "--month", MONTH, "--check", "--seed", "4711")
    assert check.exit_code == 0, check.output
    assert check.stdout.count(": reproduced") == 2
    assert check.stdout.splitlines()[-1] == f"2 of 2 draw(s) for {MONTH} reproduced"
    assert koa("audit", "verify").exit_code == 0  # the draws are in the sealed log


def test_a_draw_the_seed_does_not_give_is_not_reproduced(koa, books: Books):
    population = seed_bookings(books)
    assert koa(*DRAW_ARGS).exit_code == 0
    position = books.ledger.max_notification_id()
    # Recorded as if drawn, but with a JC-SUED pick exchanged and a JC-WEST population made up.
    forged = forged_sample_draw(MONTH, population, position)
    books.ledger.save(forged)

    check = koa("audit", "sample", "--month", MONTH, "--check")
    assert check.exit_code == 1, check.output
    lines = check.stdout.splitlines()
    assert lines[0].endswith(": reproduced")  # the honest draw
    assert lines[3].startswith(f"draw {forged.id} ") and lines[3].endswith(": NOT reproduced")
    assert "(differs: JC-WEST)" in lines[4]
    assert lines[5] == "  sample: differs (JC-SUED)"
    assert check.stderr.strip() == f"koa: 1 of 2 draw(s) for {MONTH} not reproduced: {forged.id}"


def test_a_draw_recorded_before_positions_and_fingerprints_still_loads_and_rechecks(koa, books: Books):
    population = seed_bookings(books)
    # A draw as the first version of `koa audit sample` stored it: version 1 of the event, with
    # neither position nor fingerprint nor method, drawn by random.sample over the sorted keys.
    legacy = {
        b: sorted(random.Random(f"{MONTH}|4711|{b}").sample(sorted(keys), 5))
        for b, keys in population.items()
    }
    ledger = books.ledger
    assert plain_mapper(ledger)
    state = ledger.mapper.transcoder.encode(
        {
            "timestamp": datetime.now(UTC),
            "originator_topic": "domain.sampling:SampleDraw",
            "month": MONTH,
            "per_branch": 5,
            "seed": "4711",
            "drawn_by": "pruefer",
            "population_sizes": {b: len(keys) for b, keys in population.items()},
            "sample": legacy,
        }
    )
    old_id = uuid4()
    ledger.recorder.insert_events([StoredEvent(old_id, 1, "domain.sampling:SampleDraw.Drawn", state)])
    old_position = ledger.max_notification_id()

    [old] = ledger.sample_draws(MONTH)
    assert old.id == old_id and old.sample == legacy
    assert old.method == METHOD_RANDOM_SAMPLE and old.position is None and old.population_fingerprint == ""

    assert koa(*late_booking_args("LR-202511-LATE")).exit_code == 0
    new = picks(koa(*DRAW_ARGS))  # a new draw of the same seed: today's method, other picks
    assert new != legacy

    check = koa("audit", "sample", "--month", MONTH, "--check")
    assert check.exit_code == 0, check.output
    lines = check.stdout.splitlines()
    assert lines[0] == (
        f"draw {old_id} at {old.created_on.isoformat(timespec='seconds')} by pruefer, seed 4711, "
        f"5 per branch, method random.sample: reproduced"
    )
    assert lines[1].startswith(
        f"  population: 36 bookings recorded before the draw's own position {old_position} "
    )
    assert lines[1].endswith(": sizes as recorded")
    assert lines[2] == "  sample: as recorded"
    assert lines[3].endswith("method hmac-sha256: reproduced")
    assert lines[-1] == f"2 of 2 draw(s) for {MONTH} reproduced"
    assert koa("audit", "verify").exit_code == 0


def test_check_and_draw_refuse_what_they_cannot_do(koa, books: Books):
    seed_bookings(books)
    before = books.ledger.max_notification_id()
    nothing = koa("audit", "sample", "--month", MONTH, "--check")
    assert nothing.exit_code == 1 and nothing.stderr.strip() == f"koa: --month: no recorded draws for {MONTH}"
    no_seed = koa("audit", "sample", "--month", MONTH)
    assert no_seed.exit_code == 1 and "--seed" in no_seed.stderr
    size = koa("audit", "sample", "--month", MONTH, "--check", "--per-branch", 3)
    assert size.exit_code == 1 and "--per-branch" in size.stderr
    assert books.ledger.max_notification_id() == before
    assert koa(*DRAW_ARGS).exit_code == 0
    other_seed = koa("audit", "sample", "--month", MONTH, "--check", "--seed", "other")
    assert other_seed.exit_code == 1
    assert other_seed.stderr.strip() == f"koa: --month: no recorded draws for {MONTH} with seed other"


def test_a_view_emptied_for_a_rebuild_while_a_draw_reads_it_leaves_out_nobody(
    books: Books, settings, monkeypatch
):
    """A rebuild empties the split view, then refills it from the log. A draw or a re-check that
    read the month's population in between would find it empty or partial, and record (or compare
    with) the wrong one; both read it again once the view holds their position."""
    population = seed_bookings(books)
    emptied = meanwhile(
        monkeypatch, settings, samples, "catch_up", lambda o: o.split_view.reset(o.ledger.name)
    )
    drawn = samples.draw_sample(books.ledger, books.split_view, MONTH, 5, "4711", drawn_by="pruefer")
    assert emptied
    assert drawn.position == books.ledger.max_notification_id() - 1
    assert drawn.population_sha256 == {b: sample_sha256(keys) for b, keys in population.items()}

    emptied_again = meanwhile(
        monkeypatch, settings, samples, "catch_up", lambda o: o.split_view.reset(o.ledger.name)
    )
    [check] = samples.check_draws(books.ledger, books.split_view, MONTH)
    assert emptied_again and check.reproduced and check.population_size == 36
