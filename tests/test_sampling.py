"""The IKS draw itself (domain.sampling): stable picks, fingerprints, the first draws' method, and
the draw event's versions. The draws on real stores are in test_sample_story.py."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from domain.sampling import (
    METHOD_HMAC,
    METHOD_RANDOM_SAMPLE,
    SampleDraw,
    branch_fingerprint,
    draw,
    population_fingerprint,
)

KEY = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,20}", fullmatch=True)
BRANCH = st.from_regex(r"[A-Z]{2}-[A-Z0-9]{1,6}", fullmatch=True)
SEED = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
MONTH = st.sampled_from(["2025-01", "2025-11", "2026-02"])


@given(
    keys=st.sets(KEY, max_size=60),
    added=KEY,
    others=st.dictionaries(BRANCH, st.sets(KEY, min_size=1, max_size=10), max_size=3),
    per_branch=st.integers(1, 25),
    seed=SEED,
    month=MONTH,
)
def test_one_more_key_in_a_branch_changes_at_most_one_of_its_picks(
    keys, added, others, per_branch, seed, month
):
    branch = "JC-NORD"
    others.pop(branch, None)
    before = draw({branch: keys, **others}, per_branch, seed, month)
    after = draw({branch: keys | {added}, **others}, per_branch, seed, month)
    old, new = set(before[branch]), set(after[branch])
    assert len(old - new) <= 1 and len(new - old) <= 1
    assert new - old <= {added}  # only the new key can come in ...
    assert len(new) == min(per_branch, len(keys | {added}))  # ... taking one place or a free one
    assert {b: after[b] for b in others} == {b: before[b] for b in others}  # other branches: as they were


@given(keys=st.sets(KEY, min_size=1, max_size=40), per_branch=st.integers(1, 10), seed=SEED, month=MONTH)
def test_the_picks_are_the_smallest_hmacs_under_month_seed_and_branch(keys, per_branch, seed, month):
    secret = f"{month}|{seed}|JC-SUED".encode()
    ranked = sorted(keys, key=lambda k: hmac.new(secret, k.encode(), hashlib.sha256).digest())
    expected = sorted(ranked[:per_branch])
    # The order the population comes in does not matter.
    shuffled = list(keys)
    random.Random(7).shuffle(shuffled)
    assert draw({"JC-SUED": shuffled}, per_branch, seed, month) == {"JC-SUED": expected}
    assert draw({"JC-SUED": shuffled}, per_branch, seed, month, METHOD_HMAC) == {"JC-SUED": expected}


POPULATION = {
    "JC-NORD": [f"LR-202511-{i:07d}-KDU" for i in range(1, 13)],
    "JC-SUED": [f"LR-202511-{i:07d}-BG" for i in range(1, 9)],
    "JC-WEST": ["W-1", "W-2"],
}


def test_the_first_draws_method_gives_what_it_gave_then():
    # Drawn with domain/sampling.py as it was before draws recorded their method (commit 4f6e805).
    assert draw(POPULATION, 5, "4711", "2025-11", METHOD_RANDOM_SAMPLE) == {
        "JC-NORD": [f"LR-202511-{i:07d}-KDU" for i in (5, 8, 9, 10, 11)],
        "JC-SUED": [f"LR-202511-{i:07d}-BG" for i in (2, 3, 4, 7, 8)],
        "JC-WEST": ["W-1", "W-2"],
    }
    # The current method picks other keys from the same seed (documented in the README).
    assert draw(POPULATION, 5, "4711", "2025-11") == {
        "JC-NORD": [f"LR-202511-{i:07d}-KDU" for i in (2, 3, 4, 9, 11)],
        "JC-SUED": [f"LR-202511-{i:07d}-BG" for i in (2, 3, 4, 6, 7)],
        "JC-WEST": ["W-1", "W-2"],
    }


def test_fingerprints_are_sha256_of_the_sorted_keys_one_per_line():
    assert branch_fingerprint(["b", "a", "B"]) == hashlib.sha256(b"B\na\nb\n").hexdigest()
    assert branch_fingerprint([]) == hashlib.sha256(b"").hexdigest()
    assert (
        population_fingerprint({"JC-SUED": ["x"], "JC-NORD": ["b", "a"]})
        == hashlib.sha256(b"JC-NORD\ta\nJC-NORD\tb\nJC-SUED\tx\n").hexdigest()
    )
    assert population_fingerprint({"A": ["k"]}) != population_fingerprint({"B": ["k"]})


def test_a_draw_records_position_fingerprints_and_method():
    d = SampleDraw.record("2025-11", 5, "4711", POPULATION, position=123, drawn_by="pruefer")
    assert d.position == 123 and d.method == METHOD_HMAC
    assert d.population_sizes == {"JC-NORD": 12, "JC-SUED": 8, "JC-WEST": 2}
    assert d.population_sha256 == {b: branch_fingerprint(keys) for b, keys in POPULATION.items()}
    assert d.population_fingerprint == population_fingerprint(POPULATION)
    assert d.sample == draw(POPULATION, 5, "4711", "2025-11")


def test_a_version_1_draw_event_loads_with_the_first_method_and_nothing_recorded_about_its_population():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    state = app.mapper.transcoder.encode(
        {
            "timestamp": datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
            "originator_topic": "domain.sampling:SampleDraw",
            "month": "2025-11",
            "per_branch": 5,
            "seed": "4711",
            "drawn_by": "pruefer",
            "population_sizes": {"JC-WEST": 2},
            "sample": {"JC-WEST": ["W-1", "W-2"]},
        }
    )
    draw_id = uuid4()
    app.recorder.insert_events([StoredEvent(draw_id, 1, "domain.sampling:SampleDraw.Drawn", state)])
    old = app.repository.get(draw_id)
    assert isinstance(old, SampleDraw)
    assert (old.month, old.seed, old.per_branch, old.drawn_by) == ("2025-11", "4711", 5, "pruefer")
    assert old.sample == {"JC-WEST": ["W-1", "W-2"]}
    assert old.position is None and old.population_sha256 == {} and old.population_fingerprint == ""
    assert old.method == METHOD_RANDOM_SAMPLE
    # A new draw is stored as version 2, with every field.
    new = SampleDraw.record("2025-11", 1, "s", {"A": ["k"]}, position=1, drawn_by="pruefer")
    stored = app.mapper.to_stored_event(new.collect_events()[0])
    assert stored.topic == "domain.sampling:SampleDraw.Drawn"
    fields = app.mapper.transcoder.decode(stored.state)
    assert fields["class_version"] == 2 and fields["method"] == METHOD_HMAC and fields["position"] == 1
