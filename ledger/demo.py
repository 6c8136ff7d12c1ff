"""A realistic, deterministic year of a mid-size city's SGB II books (for `koa demo` and tests).

Households (Bedarfsgemeinschaften) are paid Bürgergeld and KdU monthly in advance: the run for
January is paid on the last banking days of December (and belongs to the new year). Besides the
runs: one-off needs, education and participation, measure invoices (large ones need approval),
administrative costs, receipts (Rückforderungen), a few reversals, and run-off payments in January
for services of the old year.
"""

from __future__ import annotations

import random
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, timedelta

from domain.booking import BookingContent, Kind

OFFICE = "08221"  # prefix of the Bedarfsgemeinschaft numbers
COST_CENTRES = ("JC-NORD", "JC-SUED", "JC-MITTE", "JC-WEST")
PROVIDERS = ("BT-Bildungswerk", "AGH-Stadtwerkstatt", "IB-Qualifizierung", "Kolping-Akademie")
HOUSEHOLDS_MAX = 200_000


@dataclass
class DemoYear:
    year: int
    runs: list[tuple[str, list[BookingContent]]] = field(default_factory=list)  # (label, run)
    approvals: list[str] = field(default_factory=list)  # keys to approve
    reversals: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)

    @property
    def booking_count(self) -> int:
        return sum(len(r) for _, r in self.runs)


def _last_workday_before(d: date) -> date:
    d -= timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def quarter_last_workday(year: int, quarter: int) -> date:
    assert 1 <= quarter <= 4, quarter
    return _last_workday_before(date(year + quarter // 4, 3 * quarter % 12 + 1, 1))


def _month_end(y: int, m: int) -> date:
    return date(y, m, monthrange(y, m)[1])


def _cents(rng: random.Random, low_eur: int, high_eur: int) -> int:
    return rng.randint(low_eur * 100, high_eur * 100)


def generate(year: int = 2025, households: int = 2000, seed: int = 2025) -> DemoYear:
    assert 1 <= households <= HOUSEHOLDS_MAX
    rng = random.Random(seed)
    demo = DemoYear(year)
    homes = [
        (
            f"{OFFICE}BG{n:07d}",
            _cents(rng, 250, 1600),  # Regelbedarf + Mehrbedarfe of the household
            _cents(rng, 380, 1150),  # Unterkunft und Heizung
            COST_CENTRES[n % len(COST_CENTRES)],
        )
        for n in range(1, households + 1)
    ]

    def content(
        key,
        kind,
        cents,
        category,
        paid,
        s_from,
        s_to,
        doc,
        case="",
        contract="",
        cc="JC-MITTE",
        text="",
    ):
        return BookingContent(key, kind, cents, category, paid, s_from, s_to, doc, case, contract, cc, text)

    for m in range(1, 13):
        first, last = date(year, m, 1), _month_end(year, m)
        paid = _last_workday_before(first)  # paid in advance, before the month starts
        run: list[BookingContent] = []
        for case, bg_cents, kdu_cents, cc in homes:
            if rng.random() < 0.03:  # a household not entitled this month
                continue
            n = case[-7:]
            run.append(
                content(
                    f"LR-{year}{m:02d}-{n}-BG",
                    Kind.PAYMENT,
                    bg_cents,
                    "buergergeld",
                    paid,
                    first,
                    last,
                    f"ZA-{year}{m:02d}",
                    case,
                    cc=cc,
                    text="Regelbedarf",
                )
            )
            run.append(
                content(
                    f"LR-{year}{m:02d}-{n}-KDU",
                    Kind.PAYMENT,
                    kdu_cents,
                    "kdu",
                    paid,
                    first,
                    last,
                    f"ZA-{year}{m:02d}",
                    case,
                    cc=cc,
                    text="Unterkunft und Heizung",
                )
            )
        demo.runs.append((f"Zahllauf {year}-{m:02d}", run))

        other: list[BookingContent] = []
        scale = max(1, households // 100)

        def many(other, m, first, last, prefix, n, category, lo, hi, kind=Kind.PAYMENT, text=""):
            for i in range(n):
                case, _, _, cc = homes[rng.randrange(len(homes))]
                day = date(year, m, rng.randint(1, 28))
                other.append(
                    content(
                        f"{prefix}-{year}{m:02d}-{i:04d}",
                        kind,
                        _cents(rng, lo, hi),
                        category,
                        day,
                        first,
                        last,
                        f"B-{prefix}-{year}{m:02d}{i:04d}",
                        case,
                        cc=cc,
                        text=text,
                    )
                )

        many(other, m, first, last, "EB", scale, "einmal_bund", 40, 600, text="Einmaliger Bedarf")
        many(
            other,
            m,
            first,
            last,
            "EA",
            scale,
            "erstausstattung",
            150,
            1800,
            text="Erstausstattung Wohnung",
        )
        many(other, m, first, last, "KS", scale // 2 + 1, "kdu_sonst", 300, 2500, text="Mietkaution")
        many(other, m, first, last, "BUT", 5 * scale, "but", 15, 180, text="Bildung und Teilhabe")
        many(
            other,
            m,
            first,
            last,
            "VB",
            3 * scale,
            "egt.vermittlungsbudget",
            20,
            400,
            text="Vermittlungsbudget",
        )
        many(
            other,
            m,
            first,
            last,
            "EGS",
            scale // 2 + 1,
            "egt.einstiegsgeld",
            150,
            450,
            text="Einstiegsgeld",
        )
        many(
            other,
            m,
            first,
            last,
            "RF",
            2 * scale,
            "buergergeld",
            30,
            900,
            kind=Kind.RECEIPT,
            text="Rückforderung",
        )
        many(
            other,
            m,
            first,
            last,
            "NK",
            scale,
            "kdu",
            20,
            700,
            kind=Kind.RECEIPT,
            text="Nebenkostenguthaben",
        )
        many(
            other,
            m,
            first,
            last,
            "KA",
            scale // 4 + 1,
            "kommunal_egl",
            200,
            1500,
            text="Schuldnerberatung",
        )

        # Measure invoices from providers; the big ones need a second person's approval.
        for p, provider in enumerate(PROVIDERS):
            cat = (
                "egt.aktivierung",
                "egt.arbeitsgelegenheiten",
                "egt.weiterbildung",
                "egt.aktivierung",
            )[p]
            key = f"MN-{year}{m:02d}-{p}"
            other.append(
                content(
                    key,
                    Kind.PAYMENT,
                    _cents(rng, 4000, 40000) * max(1, scale // 10),
                    cat,
                    min(last, date(year, m, 25)),
                    first,
                    last,
                    f"RE-{provider[:6]}-{year}{m:02d}",
                    contract=f"V-{year}-{p:03d}",
                    text=f"Rechnung {provider}",
                )
            )
        # Administrative costs: monthly totals of the job centre (need approval: above the threshold).
        per = max(1, scale // 20)
        for cat, lo, hi in (
            ("vwk.personal", 380000, 420000),
            ("vwk.sachkosten", 40000, 70000),
            ("vwk.personalnebenkosten", 15000, 25000),
        ):
            key = f"VK-{year}{m:02d}-{cat.split('.')[1]}"
            other.append(
                content(
                    key,
                    Kind.PAYMENT,
                    _cents(rng, lo, hi) * per,
                    cat,
                    min(last, date(year, m, 28)),
                    first,
                    last,
                    f"VK-{year}{m:02d}",
                    text="Verwaltungskosten Monat",
                )
            )
        demo.runs.append((f"Einzelbuchungen {year}-{m:02d}", other))
        demo.approvals += [c.key for c in other if c.key.startswith(("MN-", "VK-"))]

    # Run-off period: December invoices paid in January of the next year still count for this year.
    runoff = [
        content(
            f"MN-{year}12-late-{p}",
            Kind.PAYMENT,
            _cents(rng, 800, 6000),
            "egt.aktivierung",
            date(year + 1, 1, 12),
            date(year, 12, 1),
            date(year, 12, 31),
            f"RE-late-{year}-{p}",
            contract=f"V-{year}-{p:03d}",
            text="Rechnung Dezember (Auslaufperiode)",
        )
        for p in range(3)
    ]
    demo.runs.append((f"Auslaufperiode {year + 1}-01", runoff))

    # A few wrong bookings, reversed with a reason.
    for m in (2, 5, 9, 11):
        monthly_run = demo.runs[2 * (m - 1)][1]
        kdu_keys = [c.key for c in monthly_run if c.category == "kdu"]
        demo.reversals.append((rng.choice(kdu_keys), "Doppelzahlung: Miete direkt an Vermieter"))
    return demo
