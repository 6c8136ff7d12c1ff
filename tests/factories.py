"""Small builders for test input."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date

from domain.booking import BookingContent, Kind
from domain.sampling import METHOD_HMAC, SampleDraw

BASE = BookingContent(
    key="T-1",
    kind=Kind.PAYMENT,
    amount_cents=50_000,
    category="kdu",
    payment_date=date(2025, 2, 27),
    service_from=date(2025, 3, 1),
    service_to=date(2025, 3, 31),
    document_ref="ZA-202503",
    case_ref="08221BG0000001",
    contract_ref="",
    cost_centre="JC-NORD",
    text="Miete März",
)


def booking(key: str = "T-1", **changes) -> BookingContent:
    return replace(BASE, key=key, **changes)


CSV_HEADER = (
    "key;kind;amount;category;payment_date;service_from;service_to;document_ref;case_ref;cost_centre;text"
)


SAMPLE_BRANCHES = ("JC-NORD", "JC-SUED", "JC-WEST")


def seed_sample_month(ledger) -> dict[str, list[str]]:
    """For the IKS sample tests: 12 bookings per branch paid in November 2025, one each in October
    and December (not in the population); returns November's keys per branch."""
    contents, population = [], {}
    for branch in SAMPLE_BRANCHES:
        for i in range(1, 13):
            key = f"LR-202511-{i:04d}-{branch}"
            contents.append(booking(key, cost_centre=branch, payment_date=date(2025, 11, 1 + i)))
            population.setdefault(branch, []).append(key)
        contents.append(booking(f"LR-202510-{branch}", cost_centre=branch, payment_date=date(2025, 10, 31)))
        contents.append(booking(f"LR-202512-{branch}", cost_centre=branch, payment_date=date(2025, 12, 1)))
    assert ledger.import_bookings(contents, recorded_by="mueller").created == len(contents)
    return population


def sample_sha256(keys: list[str]) -> str:
    """A branch's population fingerprint as the README documents it, computed apart from the domain."""
    return hashlib.sha256("".join(f"{k}\n" for k in sorted(keys)).encode()).hexdigest()


def forged_sample_draw(month: str, population: dict[str, list[str]], position: int) -> SampleDraw:
    """A draw of seed 4711, 5 per branch, recorded as if drawn, but with a JC-SUED pick exchanged
    and a JC-WEST population made up: a re-check must find both."""
    honest = SampleDraw.record(month, 5, "4711", population, position=position, drawn_by="pruefer")
    sample = {**honest.sample}
    outside = next(k for k in population["JC-SUED"] if k not in sample["JC-SUED"])
    sample["JC-SUED"] = sorted([*sample["JC-SUED"][1:], outside])
    return SampleDraw(
        month,
        5,
        "4711",
        "pruefer",
        honest.population_sizes,
        sample,
        position,
        {**honest.population_sha256, "JC-WEST": sample_sha256(["X-1"])},
        honest.population_fingerprint,
        METHOD_HMAC,
    )


def csv_row(
    key: str,
    amount: str = "500,00",
    category: str = "kdu",
    kind: str = "payment",
    paid: str = "27.02.2025",
    case: str = "08221BG0000001",
) -> str:
    return f"{key};{kind};{amount};{category};{paid};01.03.2025;31.03.2025;ZA-202503;{case};JC-NORD;Miete"
