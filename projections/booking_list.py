"""Bookings from the split view by filter, in key order, a page at a time (keyset pagination: the
page after a key, so a page stays stable while bookings are added elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import ValidationError
from projections.split_view import BOOKING_COLUMNS, BookingRow, SplitViewQueries

# The states of domain.booking.Booking.state, as the view's columns express them. A withdrawal is
# the counter-booking of a booking that never counted (it was reversed while awaiting approval).
STATES = ("recorded", "awaiting_approval", "approved", "reversed", "reversal", "withdrawal")
_PLAIN = "b.reversal_key = '' AND b.reverses_key = ''"
_STATE_SQL = {
    "recorded": (f"{_PLAIN} AND b.requires_approval = %s AND b.approved_by = ''", (False,)),
    "awaiting_approval": (f"{_PLAIN} AND b.requires_approval = %s AND b.approved_by = ''", (True,)),
    "approved": (f"{_PLAIN} AND b.approved_by <> ''", ()),
    "reversed": ("b.reversal_key <> ''", ()),
    "reversal": ("b.reversal_key = '' AND b.reverses_key <> '' AND o.counted = %s", (True,)),
    "withdrawal": ("b.reversal_key = '' AND b.reverses_key <> '' AND o.counted = %s", (False,)),
}


@dataclass(frozen=True)
class BookingFilter:
    year: int | None = None
    quarter: int | None = None
    category: str | None = None
    state: str | None = None
    case_ref: str | None = None
    document_ref: str | None = None

    def __post_init__(self) -> None:
        # Text a store cannot take (PostgreSQL refuses NUL; a lone surrogate is no UTF-8) is bad
        # input of that filter, not a store failure to retry.
        for field in ("category", "case_ref", "document_ref"):
            value = getattr(self, field)
            if value is not None and not _storable(value):
                raise ValidationError("contains a NUL character or text that is not UTF-8", field)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def state_of(row: BookingRow, original_counted: bool | None) -> str:
    if row.reversal_key:
        return "reversed"
    if row.reverses_key:
        return "withdrawal" if original_counted is False else "reversal"
    if row.requires_approval and not row.approved_by:
        return "awaiting_approval"
    return "approved" if row.approved_by else "recorded"


def list_bookings(
    view: SplitViewQueries, f: BookingFilter, *, after_key: str | None, limit: int
) -> list[tuple[BookingRow, str]]:
    """Up to `limit` bookings with keys after `after_key`, each with its state."""
    assert f.state is None or f.state in _STATE_SQL, f.state
    where, params = ["1 = 1"], []
    for column, value in (
        ("fiscal_year", f.year),
        ("quarter", f.quarter),
        ("category", f.category),
        ("case_ref", f.case_ref),
        ("document_ref", f.document_ref),
    ):
        if value is not None:
            where.append(f"b.{column} = %s")
            params.append(value)
    if f.state is not None:
        sql, state_params = _STATE_SQL[f.state]
        where.append(sql)
        params.extend(state_params)
    if after_key is not None:
        where.append("b.booking_key > %s")
        params.append(after_key)
    table = f"{view.prefix}split_bookings"
    columns = ", ".join(f"b.{c} AS {c}" for c in BOOKING_COLUMNS)
    sql = (
        f"SELECT {columns}, o.counted AS original_counted FROM {table} b "
        f"LEFT JOIN {table} o ON b.reverses_key <> '' AND o.booking_key = b.reverses_key "
        f"WHERE {' AND '.join(where)} ORDER BY b.booking_key LIMIT %s"
    )
    with view._txn(commit=False) as c:
        c.execute(view._q(sql), (*params, limit))
        out = []
        for r in c.fetchall():
            row = view._to_row(r)
            counted = r["original_counted"]
            out.append((row, state_of(row, None if counted is None else bool(counted))))
        return out
