"""A batch of view changes, built from a page of events and written in one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from projections.split_view import BookingRow, SplitViewQueries


class LazyRow(Protocol):
    def params(self) -> tuple:
        """The row's values in BOOKING_COLUMNS order (decoded only when written)."""


@dataclass
class ViewBatch:
    """Ordered view operations. New rows are buffered and inserted in bulk; an approval or reversal
    flushes the buffer first, because it may concern a booking recorded earlier in the same batch.

    A new row is a BookingRow, a LazyRow that decodes its event only while it is written (on
    PostgreSQL inside the COPY, so decoding here and inserting on the server overlap), or a plain
    tuple of its values (what a replay's writer process receives)."""

    ops: list[tuple[str, Any]] = field(default_factory=list)

    def record(self, row: BookingRow | LazyRow | tuple) -> None:
        self.ops.append(("record", row))

    def approve(self, booking_id: str, approved_by: str, at: datetime, period: tuple[int, int, str]) -> None:
        """period: (fiscal year, quarter, rule) in which the booking counts from its approval on."""
        self.ops.append(("approve", (booking_id, approved_by, at, period)))

    def mark_reversed(self, booking_id: str, reversal_key: str) -> None:
        self.ops.append(("reversed", (booking_id, reversal_key)))

    def __len__(self) -> int:
        return len(self.ops)

    def split_records(self) -> tuple[ViewBatch, ViewBatch]:
        """(the new rows, the approvals and reversals in their order). Applying the second after
        the first gives the same view as applying the batch: a new row does not depend on any
        approval or reversal, and those keep their order among themselves."""
        records = ViewBatch([o for o in self.ops if o[0] == "record"])
        return records, ViewBatch([o for o in self.ops if o[0] != "record"])

    def write(self, view: SplitViewQueries, c: Any) -> None:
        from projections.split_view import BOOKING_COLUMNS, BookingRow

        kind_i, cat_i, amount_i, sign_i, year_i, quarter_i, counted_i = (
            BOOKING_COLUMNS.index(name)
            for name in ("kind", "category", "amount_cents", "sign", "fiscal_year", "quarter", "counted")
        )
        pending: list[Any] = []
        deltas: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])

        def rows(items: list[Any]) -> Iterator[tuple]:
            """The items' values, counting the counted ones into the totals as they go by."""
            for item in items:
                t = type(item)
                p = (
                    item
                    if t is tuple
                    else tuple(getattr(item, col) for col in BOOKING_COLUMNS)
                    if t is BookingRow
                    else item.params()
                )
                if p[counted_i]:
                    d = deltas[(p[year_i], p[quarter_i], p[cat_i])]
                    d[0 if p[kind_i] == "payment" else 1] += p[sign_i] * p[amount_i]
                    d[2] += 1
                yield p

        for op, arg in self.ops:
            if op == "record":
                pending.append(arg)
                continue
            if pending:
                view.insert_params(c, rows(pending))
                pending = []
            if op == "approve":
                booking_id, approved_by, at, (year, quarter, rule) = arg
                row = view.select_row(c, booking_id)
                view.update_approval(c, booking_id, approved_by, at, year, quarter, rule)
                if not row.counted:
                    r = replace(row, counted=True, fiscal_year=year, quarter=quarter)
                    d = deltas[(r.fiscal_year, r.quarter, r.category)]
                    d[0 if r.kind == "payment" else 1] += r.sign * r.amount_cents
                    d[2] += 1
            else:
                view.update_reversal(c, *arg)
        if pending:
            view.insert_params(c, rows(pending))
        view.add_totals(c, deltas)
