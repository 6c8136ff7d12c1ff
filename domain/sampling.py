"""Random, reproducible samples for the internal control system (IKS): per branch (cost centre)
and month, a number of bookings to check. Every draw is recorded as an event, so a sample redrawn
until it suits somebody shows as several draws.

A draw records the log position its population was read at and a SHA-256 fingerprint of that
population, so it can be re-checked later from the bookings recorded up to that position, whatever
was booked into the month since. The picks of a branch are its keys with the smallest
HMAC-SHA256(key=f"{month}|{seed}|{branch}", msg=booking key): a booking added to the branch later
displaces at most one of them. Draws recorded before that (method "random.sample") are re-checked
with the method they were drawn with.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.errors import ValidationError

MONTH_RE = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")
PER_BRANCH_MAX = 1000
SEED_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

METHOD_HMAC = "hmac-sha256"  # every draw since the draws record position and fingerprint
METHOD_RANDOM_SAMPLE = "random.sample"  # the draws recorded before (class_version 1 events)
METHODS = (METHOD_HMAC, METHOD_RANDOM_SAMPLE)


def check_draw(month: str, per_branch: int, seed: str) -> None:
    if not MONTH_RE.fullmatch(month):
        raise ValidationError("must be YYYY-MM", "month")
    if not 1 <= per_branch <= PER_BRANCH_MAX:
        raise ValidationError(f"must be between 1 and {PER_BRANCH_MAX}", "per_branch")
    if not SEED_RE.fullmatch(seed):
        raise ValidationError("1-64 letters, digits or ._-", "seed")


def draw(
    population: Mapping[str, Iterable[str]],
    per_branch: int,
    seed: str,
    month: str,
    method: str = METHOD_HMAC,
) -> dict[str, list[str]]:
    """The same population, size, seed, month and method always give the same sample (each
    branch's picks sorted by key).

    Each branch is drawn on its own, from (month, seed, branch) and its set of keys: the draw does
    not depend on the order bookings were read in, nor on other branches.

    hmac-sha256: the `per_branch` keys with the smallest HMAC-SHA256 under the branch's key
    f"{month}|{seed}|{branch}". Adding one key to a branch changes at most one of its picks (the
    new key takes the place of the largest pick if its own value is smaller).
    random.sample: the method of the first draws, kept to re-check them: `random.sample` over the
    sorted keys with a generator seeded from f"{month}|{seed}|{branch}"; one more key reshuffles
    every pick.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}")
    out: dict[str, list[str]] = {}
    for branch in sorted(population):
        if method == METHOD_HMAC:
            keys = set(population[branch])
            secret = branch_secret(month, seed, branch)
            picks = heapq.nsmallest(
                min(per_branch, len(keys)),
                keys,
                key=lambda k: (hmac.digest(secret, k.encode(), "sha256"), k),
            )
        else:  # exactly as drawn then
            keys = sorted(population[branch])
            picks = random.Random(f"{month}|{seed}|{branch}").sample(keys, min(per_branch, len(keys)))
        out[branch] = sorted(picks)
    return out


def branch_secret(month: str, seed: str, branch: str) -> bytes:
    """The HMAC key of a branch's draw."""
    return f"{month}|{seed}|{branch}".encode()


def branch_fingerprint(keys: Iterable[str]) -> str:
    """SHA-256 (hex) of a branch's population: its booking keys in code-point order, each
    followed by a newline, UTF-8 (`sort -u keys.txt | sha256sum` with LC_ALL=C gives the same)."""
    return hashlib.sha256("".join(f"{k}\n" for k in sorted(set(keys))).encode()).hexdigest()


def population_fingerprint(population: Mapping[str, Iterable[str]]) -> str:
    """SHA-256 (hex) of the whole population: one line "branch<TAB>key" per booking, ordered by
    branch and key (code-point order), each followed by a newline, UTF-8."""
    lines = "".join(
        f"{branch}\t{k}\n" for branch in sorted(population) for k in sorted(set(population[branch]))
    )
    return hashlib.sha256(lines.encode()).hexdigest()


class SampleDraw(Aggregate):
    class Drawn(Aggregate.Created):
        """Version 2 added position, population_sha256, population_fingerprint and method;
        version 1 events are upcast on loading (position and fingerprints unknown, method
        random.sample)."""

        month: str
        per_branch: int
        seed: str
        drawn_by: str
        population_sizes: dict[str, int]
        sample: dict[str, list[str]]
        position: int | None
        population_sha256: dict[str, str]
        population_fingerprint: str
        method: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["position"] = None
            state["population_sha256"] = {}
            state["population_fingerprint"] = ""
            state["method"] = METHOD_RANDOM_SAMPLE

    @event(Drawn)
    def __init__(
        self,
        month: str,
        per_branch: int,
        seed: str,
        drawn_by: str,
        population_sizes: dict[str, int],
        sample: dict[str, list[str]],
        position: int | None,
        population_sha256: dict[str, str],
        population_fingerprint: str,
        method: str,
    ) -> None:
        self.month = month
        self.per_branch = per_branch
        self.seed = seed
        self.drawn_by = drawn_by
        self.population_sizes = population_sizes
        self.sample = sample
        # The population is every booking paid in the month and recorded at or before this log
        # position (None: a draw recorded before positions were; see ledger.samples).
        self.position = position
        self.population_sha256 = population_sha256  # branch -> branch_fingerprint
        self.population_fingerprint = population_fingerprint  # "" where not recorded
        self.method = method

    @classmethod
    def record(
        cls,
        month: str,
        per_branch: int,
        seed: str,
        population: Mapping[str, Sequence[str]],
        *,
        position: int,
        drawn_by: str,
    ) -> SampleDraw:
        """Draw with the current method from a population read as of `position`."""
        check_draw(month, per_branch, seed)
        return cls(
            month,
            per_branch,
            seed,
            drawn_by,
            {branch: len(set(keys)) for branch, keys in sorted(population.items())},
            draw(population, per_branch, seed, month, METHOD_HMAC),
            position,
            {branch: branch_fingerprint(keys) for branch, keys in sorted(population.items())},
            population_fingerprint(population),
            METHOD_HMAC,
        )
