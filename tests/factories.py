"""Small builders for test input."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from domain.booking import BookingContent, Kind

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


def csv_row(
    key: str,
    amount: str = "500,00",
    category: str = "kdu",
    kind: str = "payment",
    paid: str = "27.02.2025",
    case: str = "08221BG0000001",
) -> str:
    return f"{key};{kind};{amount};{category};{paid};01.03.2025;31.03.2025;ZA-202503;{case};JC-NORD;Miete"
