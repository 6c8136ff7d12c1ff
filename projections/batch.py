"""A batch of view changes, built from a page of events and written in one transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.split_view import BookingRow, SplitViewQueries


@dataclass
class ViewBatch:
    """Ordered view operations. New rows are buffered and inserted in bulk; an approval or reversal
    flushes the buffer first, because it may concern a booking recorded earlier in the same batch."""

    ops: list[tuple[str, Any]] = field(default_factory=list)

    def record(self, row: BookingRow) -> None:
        self.ops.append(("record", row))

    def approve(self, booking_id: str, approved_by: str, at: datetime, period: tuple[int, int, str]) -> None:
        """period: (fiscal year, quarter, rule) in which the booking counts from its approval on."""
        self.ops.append(("approve", (booking_id, approved_by, at, period)))

    def mark_reversed(self, booking_id: str, reversal_key: str) -> None:
        self.ops.append(("reversed", (booking_id, reversal_key)))

    def __len__(self) -> int:
        return len(self.ops)

    def write(self, view: SplitViewQueries, c: Any) -> None:
        pending: list[BookingRow] = []
        deltas: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])

        def count(row: BookingRow) -> None:
            d = deltas[(row.fiscal_year, row.quarter, row.category)]
            if row.kind == "payment":
                d[0] += row.sign * row.amount_cents
            else:
                d[1] += row.sign * row.amount_cents
            d[2] += 1

        for op, arg in self.ops:
            if op == "record":
                pending.append(arg)
                if arg.counted:
                    count(arg)
            else:
                view.insert_rows(c, pending)
                pending = []
                if op == "approve":
                    booking_id, approved_by, at, (year, quarter, rule) = arg
                    row = view.select_row(c, booking_id)
                    view.update_approval(c, booking_id, approved_by, at, year, quarter, rule)
                    if not row.counted:
                        count(replace(row, counted=True, fiscal_year=year, quarter=quarter))
                else:
                    view.update_reversal(c, *arg)
        view.insert_rows(c, pending)
        view.add_totals(c, deltas)
