"""Random, reproducible samples for the internal control system (IKS): per branch (cost centre)
and month, a number of bookings to check. Every draw is recorded as an event, so a sample redrawn
until it suits somebody shows as several draws."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from eventsourcing.domain import Aggregate, event

from domain.errors import ValidationError

MONTH_RE = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")
PER_BRANCH_MAX = 1000
SEED_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_draw(month: str, per_branch: int, seed: str) -> None:
    if not MONTH_RE.fullmatch(month):
        raise ValidationError("must be YYYY-MM", "month")
    if not 1 <= per_branch <= PER_BRANCH_MAX:
        raise ValidationError(f"must be between 1 and {PER_BRANCH_MAX}", "per_branch")
    if not SEED_RE.fullmatch(seed):
        raise ValidationError("1-64 letters, digits or ._-", "seed")


def draw(
    population: Mapping[str, Sequence[str]], per_branch: int, seed: str, month: str
) -> dict[str, list[str]]:
    """The same population, size, seed and month always give the same sample.

    Each branch has its own generator, seeded from (month, seed, branch), over its keys in sorted
    order: the draw does not depend on the order bookings were read in, nor on other branches.
    """
    out: dict[str, list[str]] = {}
    for branch in sorted(population):
        keys = sorted(population[branch])
        rng = random.Random(f"{month}|{seed}|{branch}")
        out[branch] = sorted(rng.sample(keys, min(per_branch, len(keys))))
    return out


class SampleDraw(Aggregate):
    @event("Drawn")
    def __init__(
        self,
        month: str,
        per_branch: int,
        seed: str,
        drawn_by: str,
        population_sizes: dict[str, int],
        sample: dict[str, list[str]],
    ) -> None:
        self.month = month
        self.per_branch = per_branch
        self.seed = seed
        self.drawn_by = drawn_by
        self.population_sizes = population_sizes
        self.sample = sample
