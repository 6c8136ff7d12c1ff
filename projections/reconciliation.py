"""Überleitung Doppik → Kameralistik for one year: the same counted bookings seen by payment date,
by fiscal year (cash, with the December-for-January and run-off rules) and by service period
(accrual), and every booking that moves between them, with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.accrual import accrual_by_year
from projections.split_view import BookingRow, SplitViewQueries

REASONS = {
    "december_for_january": "Dezember für Januar: im Vorjahr gezahlt, Haushaltsjahr der Leistung",
    "runoff": "Auslaufperiode: im Folgejahr gezahlt, Haushaltsjahr der Leistung",
    "after_closing": "nach Abschluss des Zeitraums freigegeben: im offenen Zeitraum",
    "service": "Leistungszeitraum (teilweise) in einem anderen Jahr",
}


@dataclass(frozen=True, slots=True)
class Move:
    booking_key: str
    category: str
    reason: str
    from_view: str  # "payment" -> "cash", or "cash" -> "accrual"
    cents: int  # what the booking adds to the target view's year minus what it adds to the source's


@dataclass
class Reconciliation:
    year: int
    payment_cents: int = 0  # net of bookings paid in the year (payment date)
    cash_cents: int = 0  # net of bookings of the fiscal year
    accrual_cents: int = 0  # net of the service days falling into the year
    moves: list[Move] = field(default_factory=list)

    def check(self) -> None:
        """The moves explain the differences exactly."""
        rule_moves = sum(m.cents for m in self.moves if m.from_view == "payment")
        service_moves = sum(m.cents for m in self.moves if m.from_view == "cash")
        assert self.payment_cents + rule_moves == self.cash_cents
        assert self.cash_cents + service_moves == self.accrual_cents


def reconcile(view: SplitViewQueries, year: int) -> Reconciliation:
    result = Reconciliation(year)
    for row in view.bookings_touching_year(year):
        _add(result, row)
    result.check()
    return result


def _add(result: Reconciliation, row: BookingRow) -> None:
    year, net = result.year, row.net_cents
    paid = net if row.payment_date.year == year else 0
    cash = net if row.fiscal_year == year else 0
    accrual = accrual_by_year(net, row.service_from, row.service_to).get(year, 0)
    result.payment_cents += paid
    result.cash_cents += cash
    result.accrual_cents += accrual
    if cash != paid:
        reason = REASONS.get(row.fiscal_rule, f"Regel {row.fiscal_rule}")
        result.moves.append(Move(row.booking_key, row.category, reason, "payment", cash - paid))
    if accrual != cash:
        result.moves.append(Move(row.booking_key, row.category, REASONS["service"], "cash", accrual - cash))
