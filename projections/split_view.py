"""The split read model: one row per booking, and running totals per (fiscal year, quarter, category).

The view is a tracking recorder of the eventsourcing library, so every batch of applied events and
the log position it reached commit in one transaction: each event counts exactly once, and a restart
resumes where the last commit left off. One implementation per store; the SQL is shared, written
with %s placeholders (SQLite's are converted).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL, Literal

from domain.booking import booking_id
from domain.split import GroupTotal

KEYS_PER_QUERY = 500  # bound parameters per look-up (well below SQLite's limit)
BOOKING_COLUMNS = (
    "booking_id",
    "booking_key",
    "kind",
    "category",
    "amount_cents",
    "sign",
    "fiscal_year",
    "quarter",
    "fiscal_rule",
    "payment_date",
    "service_from",
    "service_to",
    "document_ref",
    "case_ref",
    "contract_ref",
    "cost_centre",
    "text",
    "recorded_by",
    "recorded_at",
    "requires_approval",
    "approved_by",
    "approved_at",
    "reverses_key",
    "reversal_key",
    "reason",
    "counted",
    "notification_id",
)


@dataclass(frozen=True, slots=True)
class BookingRow:
    booking_id: str
    booking_key: str
    kind: str
    category: str
    amount_cents: int
    sign: int  # +1 for a booking, -1 for a counter-booking (reversal)
    fiscal_year: int
    quarter: int
    fiscal_rule: str
    payment_date: date
    service_from: date
    service_to: date
    document_ref: str
    case_ref: str
    contract_ref: str
    cost_centre: str
    text: str
    recorded_by: str
    recorded_at: datetime
    requires_approval: bool
    approved_by: str
    approved_at: datetime | None
    reverses_key: str
    reversal_key: str
    reason: str
    counted: bool
    notification_id: int

    @property
    def net_cents(self) -> int:
        """Contribution to the category's net spending: payments add, receipts subtract."""
        return self.sign * (self.amount_cents if self.kind == "payment" else -self.amount_cents)


class _Counted(NamedTuple):
    counted: bool
    year: int  # the fiscal year it counts in (while not counted: the one it would count in now)
    other: str  # the column asked for


def list_index_sql(prefix: str, bytewise: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS split_bookings_list_idx ON {prefix}split_bookings "
        f"(fiscal_year, category, quarter, booking_key{bytewise})"
    )


def _table_sql(prefix: str, types: dict[str, str]) -> list[str]:
    t = types
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}split_bookings ("
        # booking_key is unique because booking_id is derived from it (uuid5) and is the key: no
        # second unique index to maintain on every insert.
        f"booking_id {t['id']} {t['id_key']}, booking_key text NOT NULL, kind text NOT NULL, "
        "category text NOT NULL, amount_cents bigint NOT NULL, sign integer NOT NULL, "
        "fiscal_year integer NOT NULL, quarter integer NOT NULL, fiscal_rule text NOT NULL, "
        f"payment_date {t['date']} NOT NULL, service_from {t['date']} NOT NULL, "
        f"service_to {t['date']} NOT NULL, document_ref text NOT NULL, case_ref text NOT NULL, "
        "contract_ref text NOT NULL, cost_centre text NOT NULL, text text NOT NULL, "
        f"recorded_by text NOT NULL, recorded_at {t['ts']} NOT NULL, "
        f"requires_approval {t['bool']} NOT NULL, approved_by text NOT NULL, approved_at {t['ts']}, "
        "reverses_key text NOT NULL, reversal_key text NOT NULL, reason text NOT NULL, "
        f"counted {t['bool']} NOT NULL, notification_id bigint NOT NULL)",
        # The Belegliste reads a year's bookings category by category in (quarter, key) order, and
        # the reports' look-ups give year, quarter and category: one index serves both. Keys in
        # code-point order ("C"; SQLite's default is the same), as the reports sort them.
        list_index_sql(prefix, t["bytewise"]),
        # The few bookings that reverse another: the Belegliste pairs each with its original
        # (exports/koavv_belege.py). Without it every query of the list scanned the whole year for
        # them (+5-7 s for a workbook of 2M bookings); partial, it holds only Stornos.
        "CREATE INDEX IF NOT EXISTS split_bookings_reversals_idx "
        f"ON {prefix}split_bookings (fiscal_year) WHERE reverses_key <> ''",
        f"CREATE TABLE IF NOT EXISTS {prefix}split_totals ("
        "fiscal_year integer NOT NULL, quarter integer NOT NULL, category text NOT NULL, "
        "expenditure_cents bigint NOT NULL, receipts_cents bigint NOT NULL, "
        "booking_count bigint NOT NULL, PRIMARY KEY (fiscal_year, quarter, category))",
    ]


class SnapshotEnded(RuntimeError):
    """A read through a snapshot of the view after the snapshot's context has ended."""


class SnapshotReadOnly(RuntimeError):
    """A write through a snapshot of the view."""


class ViewBehind(RuntimeError):
    """The view stays behind a log position a reader needs: a rebuild is refilling it."""


_ENDED = object()  # the connection of a snapshot whose context has ended


class SplitViewQueries(ABC):
    """Store-independent reads and writes; subclasses give the dialect and the snapshot.

    A view is either live (each read its own transaction, so two reads may see two states while
    other processes catch the view up) or a snapshot (see snapshot(): every read in one read
    transaction, one state of the books)."""

    prefix: str = ""
    bytewise: str = ""  # the collation that orders text by code point, as the list index does
    empty_table = "DELETE FROM"  # SQLite empties a table without a WHERE at once
    position: int | None = None  # a snapshot's tracking position; None on the live view
    _pinned: Any = None  # a snapshot's connection, in its open read transaction
    _snapshot_token: Any = None  # what another connection needs to see that state (PostgreSQL)

    @contextmanager
    def _txn(self, *, commit: bool) -> Iterator[Any]:
        """A transaction of the view's own datastore, yielding a cursor; on a snapshot, a cursor in
        the snapshot's read transaction (and no writes)."""
        if self._pinned is None:
            with self.datastore.transaction(commit=commit) as c:  # type: ignore[attr-defined]
                yield c
            return
        if commit:
            raise SnapshotReadOnly("a snapshot of the split view is read-only")
        if self._pinned is _ENDED:
            raise SnapshotEnded("the snapshot of the split view has ended: read it inside its context")
        with self._pinned.cursor() as c:
            yield c

    @contextmanager
    def snapshot(self, application_name: str) -> Iterator[SplitViewQueries]:
        """One state of the view for a series of reads: a copy of this view whose reads all go
        through one read transaction (PostgreSQL: REPEATABLE READ, READ ONLY; SQLite: one read
        transaction of the WAL, which keeps the state of its first read), however far other
        processes catch the view up meanwhile. Its `position` is the log position that state has
        applied (read in the same transaction), so a report from it shows exactly the events up to
        there. Writes through it are refused; reads after the context has ended fail
        (SnapshotEnded) rather than fall back to the live view."""
        with self._snapshot_connection() as (conn, token):
            pinned = copy.copy(self)
            pinned._pinned, pinned._snapshot_token = conn, token
            try:
                with pinned._txn(commit=False) as c:
                    c.execute(
                        self._q(
                            f"SELECT MAX(notification_id) AS position FROM {self._tracking_table()} "
                            "WHERE application_name = %s"
                        ),
                        (application_name,),
                    )
                    found = c.fetchone()
                pinned.position = int(found["position"] or 0) if found is not None else 0
                yield pinned
            finally:
                pinned._pinned = _ENDED

    @abstractmethod
    def _snapshot_connection(self) -> AbstractContextManager[tuple[Any, Any]]:
        """A connection of the view's datastore in an open read transaction that keeps one state,
        and what other connections need to see the same state (or None)."""

    def _q(self, sql: str) -> str:
        return sql

    # ---- writes (one transaction per batch) -------------------------------------------------

    def apply_batch(self, batch: ViewBatch, tracking: Tracking, *, start: int) -> None:
        """Apply a page of events that follows position `start`, in one transaction.

        The position is moved first, from exactly `start` to the page's end: that takes the
        tracking row's lock before anything is read, and a second runner holding a page from the
        same start finds the position moved and is refused (IntegrityError) as a whole. Checking only
        that the end increases would let two overlapping pages both apply an approval.
        """
        assert tracking.notification_id > start >= 0
        with self._txn(commit=True) as c:
            self._advance_tracking(c, tracking.application_name, start, tracking.notification_id)
            batch.write(self, c)

    def _advance_tracking(self, c: Any, application_name: str, start: int, end: int) -> None:
        table = self._tracking_table()
        if start == 0:
            # The first page: no row yet (a duplicate key here means another runner was first).
            c.execute(
                self._q(f"INSERT INTO {table} (application_name, notification_id) VALUES (%s, %s)"),
                (application_name, end),
            )
            return
        c.execute(
            self._q(
                f"UPDATE {table} SET notification_id = %s "
                "WHERE application_name = %s AND notification_id = %s RETURNING notification_id"
            ),
            (end, application_name, start),
        )
        if c.fetchone() is None:
            raise IntegrityError(f"{application_name}: the view is no longer at position {start}")

    def insert_rows(self, c: Any, rows: Sequence[BookingRow]) -> None:
        self.insert_params(c, (tuple(getattr(r, col) for col in BOOKING_COLUMNS) for r in rows))

    def insert_params(self, c: Any, rows: Iterable[tuple]) -> None:
        """Insert rows given as values in BOOKING_COLUMNS order (Python types)."""
        marks = ",".join(["%s"] * len(BOOKING_COLUMNS))
        c.executemany(
            self._q(
                f"INSERT INTO {self.prefix}split_bookings ({','.join(BOOKING_COLUMNS)}) VALUES ({marks})"
            ),
            list(rows),
        )

    def select_row(self, c: Any, booking_id: str) -> BookingRow:
        c.execute(
            self._q(
                f"SELECT {','.join(BOOKING_COLUMNS)} FROM {self.prefix}split_bookings WHERE booking_id = %s"
            ),
            (booking_id,),
        )
        found = c.fetchone()
        assert found is not None, f"event for a booking the view has not seen: {booking_id}"
        return self._to_row(found)

    def update_approval(
        self, c: Any, booking_id: str, approved_by: str, at: datetime, year: int, quarter: int, rule: str
    ) -> None:
        c.execute(
            self._q(
                f"UPDATE {self.prefix}split_bookings SET approved_by = %s, approved_at = %s, counted = %s, "
                "fiscal_year = %s, quarter = %s, fiscal_rule = %s WHERE booking_id = %s"
            ),
            (approved_by, self._ts_param(at), True, year, quarter, rule, booking_id),
        )

    def _ts_param(self, at: datetime) -> object:
        return at

    def update_reversal(self, c: Any, booking_id: str, reversal_key: str) -> None:
        c.execute(
            self._q(f"UPDATE {self.prefix}split_bookings SET reversal_key = %s WHERE booking_id = %s"),
            (reversal_key, booking_id),
        )

    def add_totals(self, c: Any, deltas: dict[tuple[int, int, str], list[int]]) -> None:
        if not deltas:
            return
        c.executemany(
            self._q(
                f"INSERT INTO {self.prefix}split_totals AS t VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (fiscal_year, quarter, category) DO UPDATE SET "
                "expenditure_cents = t.expenditure_cents + excluded.expenditure_cents, "
                "receipts_cents = t.receipts_cents + excluded.receipts_cents, "
                "booking_count = t.booking_count + excluded.booking_count"
            ),
            [(y, q, cat, e, r, n) for (y, q, cat), (e, r, n) in sorted(deltas.items())],
        )

    def reset(self, application_name: str) -> None:
        """Empty the view and forget its position (for a rebuild), in one transaction."""
        with self._txn(commit=True) as c:
            c.execute(self._q(f"{self.empty_table} {self.prefix}split_bookings"))
            c.execute(self._q(f"{self.empty_table} {self.prefix}split_totals"))
            c.execute(
                self._q(f"DELETE FROM {self._tracking_table()} WHERE application_name = %s"),
                (application_name,),
            )

    def drop_list_index(self) -> None:
        """For a bulk load (a rebuild): one sorted build afterwards instead of an insert per row."""
        with self._txn(commit=True) as c:
            c.execute(self._q(f"DROP INDEX IF EXISTS {self.prefix}split_bookings_list_idx"))

    def create_list_index(self) -> None:
        with self._txn(commit=True) as c:
            c.execute(self._q(list_index_sql(self.prefix, self.bytewise)))

    def apply_untracked(self, batch: ViewBatch) -> None:
        """Apply a batch in one transaction without moving the position: only for a store that no
        runner follows while it is being built (a replay's, which moves the position once at the
        end, so that a store left half-built by a crash has none)."""
        with self._txn(commit=True) as c:
            batch.write(self, c)

    @abstractmethod
    def _tracking_table(self) -> str:
        """The qualified name of the tracking table."""

    # ---- reads -----------------------------------------------------------------------------

    def totals(self, year: int, quarter: int | None = None) -> list[GroupTotal]:
        sql = (
            "SELECT fiscal_year, quarter, category, expenditure_cents, receipts_cents, booking_count "
            f"FROM {self.prefix}split_totals WHERE fiscal_year = %s"
        )
        params: tuple = (year,)
        if quarter is not None:
            sql += " AND quarter = %s"
            params += (quarter,)
        with self._txn(commit=False) as c:
            c.execute(self._q(sql + " ORDER BY fiscal_year, quarter, category"), params)
            return [
                GroupTotal(
                    int(r["fiscal_year"]),
                    int(r["quarter"]),
                    r["category"],
                    int(r["expenditure_cents"]),
                    int(r["receipts_cents"]),
                    int(r["booking_count"]),
                )
                for r in c.fetchall()
            ]

    def awaiting_by_category(self, year: int) -> dict[str, int]:
        """Net amount per category of the year's bookings still awaiting approval (ordered, not yet
        counted; withdrawn ones and counter-bookings left out)."""
        with self._txn(commit=False) as c:
            c.execute(
                self._q(
                    f"SELECT category, kind, SUM(amount_cents) AS cents FROM {self.prefix}split_bookings "
                    "WHERE fiscal_year = %s AND counted = %s AND reversal_key = '' AND reverses_key = '' "
                    "GROUP BY category, kind"
                ),
                (year, False),
            )
            out: dict[str, int] = {}
            for r in c.fetchall():
                cents = int(r["cents"])
                out[r["category"]] = out.get(r["category"], 0) + (cents if r["kind"] == "payment" else -cents)
            return out

    def reversals_not_counted_in(self, keys: Sequence[str], year: int) -> set[str]:
        """Of these counter-bookings' keys, those whose original counts in `year` while they do
        not: awaiting approval, or counted in a later year because `year` was closed when they
        were recorded or approved. (A withdrawal's original never counted.)"""
        counters = self._counted_by_id(keys, "reverses_key")
        elsewhere = {
            k: c.other for k, c in counters.items() if c.other and not (c.counted and c.year == year)
        }
        originals = self._counted_by_id(list(elsewhere.values()), "booking_key")
        return {
            k
            for k, original in elsewhere.items()
            if (o := originals.get(original)) is not None and o.counted and o.year == year
        }

    def _counted_by_id(self, keys: Sequence[str], column: str) -> dict[str, _Counted]:
        """key -> whether and in which year it counts, and `column`, for the keys the view holds
        (looked up by primary key)."""
        out: dict[str, _Counted] = {}
        with self._txn(commit=False) as c:
            for start in range(0, len(keys), KEYS_PER_QUERY):
                some = keys[start : start + KEYS_PER_QUERY]
                c.execute(
                    self._q(
                        f"SELECT booking_key, counted, fiscal_year, {column} AS other "
                        f"FROM {self.prefix}split_bookings "
                        f"WHERE booking_id IN ({','.join(['%s'] * len(some))})"
                    ),
                    [str(booking_id(k)) for k in some],
                )
                for r in c.fetchall():
                    out[r["booking_key"]] = _Counted(bool(r["counted"]), int(r["fiscal_year"]), r["other"])
        return out

    def years(self) -> list[int]:
        with self._txn(commit=False) as c:
            c.execute(
                self._q(f"SELECT DISTINCT fiscal_year FROM {self.prefix}split_totals ORDER BY fiscal_year")
            )
            return [int(r["fiscal_year"]) for r in c.fetchall()]

    def booked_years(self, recorded_up_to: datetime | None = None) -> list[int]:
        """The fiscal years that hold any booking, counted or not (an unapproved or reversed booking
        has its voucher too); with `recorded_up_to`, only bookings recorded up to that moment.
        A walk up the list index (its first column is the year): one look-up per year instead of a
        scan of every booking (with a moment, a look-up reads on past the bookings recorded later)."""
        table = f"{self.prefix}split_bookings"
        cond, params = "", []
        if recorded_up_to is not None:
            cond, params = " AND recorded_at <= %s", [self._ts_param(recorded_up_to.astimezone(UTC))] * 2
        with self._txn(commit=False) as c:
            c.execute(
                self._q(
                    "WITH RECURSIVE y(fiscal_year) AS ("
                    f"SELECT MIN(fiscal_year) FROM {table} WHERE fiscal_year > 0{cond} "
                    "UNION ALL "
                    f"SELECT (SELECT MIN(fiscal_year) FROM {table} WHERE fiscal_year > y.fiscal_year{cond}) "
                    "FROM y WHERE y.fiscal_year IS NOT NULL"
                    ") SELECT fiscal_year FROM y WHERE fiscal_year IS NOT NULL"
                ),
                params,
            )
            return [int(r["fiscal_year"]) for r in c.fetchall()]

    def bookings_paid_between(self, first: date, last: date) -> list[BookingRow]:
        """Every booking (counted or not) with a payment date in [first, last], by key."""
        with self._txn(commit=False) as c:
            c.execute(
                self._q(
                    f"SELECT {','.join(BOOKING_COLUMNS)} FROM {self.prefix}split_bookings "
                    "WHERE payment_date >= %s AND payment_date <= %s ORDER BY booking_key"
                ),
                (self._date_param(first), self._date_param(last)),
            )
            return [self._to_row(r) for r in c.fetchall()]

    def _date_param(self, d: date) -> object:
        return d

    def bookings_touching_year(self, year: int) -> list[BookingRow]:
        """Counted bookings paid in, belonging to, or serving the year (for the reconciliation)."""
        first, last = self._date_param(date(year, 1, 1)), self._date_param(date(year, 12, 31))
        with self._txn(commit=False) as c:
            c.execute(
                self._q(
                    f"SELECT {','.join(BOOKING_COLUMNS)} FROM {self.prefix}split_bookings WHERE counted = %s "
                    "AND (fiscal_year = %s OR (payment_date >= %s AND payment_date <= %s) "
                    "OR (service_from <= %s AND service_to >= %s)) ORDER BY booking_key"
                ),
                (True, year, first, last, last, first),
            )
            return [self._to_row(r) for r in c.fetchall()]

    def bookings(
        self,
        year: int,
        quarter: int | None = None,
        category: str | None = None,
        *,
        counted_only: bool = True,
    ) -> list[BookingRow]:
        sql = f"SELECT {','.join(BOOKING_COLUMNS)} FROM {self.prefix}split_bookings WHERE fiscal_year = %s"
        params: tuple = (year,)
        if quarter is not None:
            sql += " AND quarter = %s"
            params += (quarter,)
        if category is not None:
            sql += " AND category = %s"
            params += (category,)
        if counted_only:
            sql += " AND counted = %s"
            params += (True,)
        with self._txn(commit=False) as c:
            c.execute(self._q(sql + f" ORDER BY quarter, category, booking_key{self.bytewise}"), params)
            return [self._to_row(r) for r in c.fetchall()]

    def table_dump(self) -> dict[str, list[tuple]]:
        """Every row of the view in a fixed order: for comparing a rebuild with the live view."""
        with self._txn(commit=False) as c:
            c.execute(self._q(f"SELECT * FROM {self.prefix}split_bookings ORDER BY booking_key"))
            bookings = [tuple(r[k] for k in BOOKING_COLUMNS) for r in c.fetchall()]
            c.execute(
                self._q(f"SELECT * FROM {self.prefix}split_totals ORDER BY fiscal_year, quarter, category")
            )
            totals = [tuple(r) if not hasattr(r, "values") else tuple(r.values()) for r in c.fetchall()]
        return {"split_bookings": bookings, "split_totals": totals}

    def _to_row(self, r: Any) -> BookingRow:
        return BookingRow(
            booking_id=str(r["booking_id"]),
            booking_key=r["booking_key"],
            kind=r["kind"],
            category=r["category"],
            amount_cents=int(r["amount_cents"]),
            sign=int(r["sign"]),
            fiscal_year=int(r["fiscal_year"]),
            quarter=int(r["quarter"]),
            fiscal_rule=r["fiscal_rule"],
            payment_date=_date(r["payment_date"]),
            service_from=_date(r["service_from"]),
            service_to=_date(r["service_to"]),
            document_ref=r["document_ref"],
            case_ref=r["case_ref"],
            contract_ref=r["contract_ref"],
            cost_centre=r["cost_centre"],
            text=r["text"],
            recorded_by=r["recorded_by"],
            recorded_at=_ts(r["recorded_at"]),
            requires_approval=bool(r["requires_approval"]),
            approved_by=r["approved_by"],
            approved_at=_ts(r["approved_at"]) if r["approved_at"] is not None else None,
            reverses_key=r["reverses_key"],
            reversal_key=r["reversal_key"],
            reason=r["reason"],
            counted=bool(r["counted"]),
            notification_id=int(r["notification_id"]),
        )


def _date(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(v)


def _ts(v: Any) -> datetime:
    """In UTC, as the replay's store keeps it: PostgreSQL gives a timestamptz in the session's
    time zone (the server's default unless set), and an export writes the moment as it is."""
    moment = v if isinstance(v, datetime) else datetime.fromisoformat(v)
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


class SQLiteSplitView(SplitViewQueries, SQLiteTrackingRecorder):
    """Split view in the same SQLite file as the events (tables unprefixed, like the library's)."""

    column_types = {
        "id": "text",
        "id_key": "PRIMARY KEY",
        "date": "text",
        "ts": "text",
        "bool": "integer",
        "bytewise": "",
    }

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + _table_sql("", self.column_types)

    @contextmanager
    def _snapshot_connection(self) -> Iterator[tuple[Any, Any]]:
        # BEGIN is deferred: the snapshot's first read (its position) fixes the state it sees. In
        # WAL mode (the library's for a file) writers go on meanwhile, and this connection keeps
        # that state until the transaction ends.
        with self.datastore.get_connection(commit=False) as conn, conn.transaction(commit=False):
            yield conn, None

    def _q(self, sql: str) -> str:
        return sql.replace("%s", "?")

    def insert_params(self, c: Any, rows: Iterable[tuple]) -> None:
        # SQLite stores dates and moments as ISO text (booleans it takes as they are: integers).
        iso = _ISO_COLUMNS

        def converted() -> Iterator[list]:
            for r in rows:
                r = list(r)
                for i in iso:
                    if r[i] is not None and type(r[i]) is not str:
                        r[i] = r[i].isoformat()
                yield r

        super().insert_params(c, converted())

    def _date_param(self, d: date) -> object:
        return d.isoformat()

    def _ts_param(self, at: datetime) -> object:
        return at.isoformat()

    def _tracking_table(self) -> str:
        return "tracking"


_REPLAY_ID_INDEX = "split_bookings_id_idx"


class ReplaySplitView(SQLiteSplitView):
    """The fresh, throwaway store of a replay. Its booking ids are unique through an index of their
    own instead of the table's PRIMARY KEY, so that the replay can load every booking first and
    build that index once, sorted: inserting 2 million random UUIDs into a B-tree costs ~3 x as
    much per booking as inserting 100,000 (measured), building it afterwards ~1.6 µs each."""

    column_types = {**SQLiteSplitView.column_types, "id_key": "NOT NULL"}

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), self._id_index_sql()]

    @staticmethod
    def _id_index_sql() -> str:
        return f"CREATE UNIQUE INDEX IF NOT EXISTS {_REPLAY_ID_INDEX} ON split_bookings (booking_id)"

    def insert_params(self, c: Any, rows: Iterable[tuple]) -> None:
        # The replay's rows arrive with their dates and moments as ISO text already
        # (projections/replay.py): nothing to convert.
        SplitViewQueries.insert_params(self, c, rows)

    def drop_id_index(self) -> None:
        """Until create_id_index, a booking can be inserted but not looked up by its id."""
        with self._txn(commit=True) as c:
            c.execute(f"DROP INDEX IF EXISTS {_REPLAY_ID_INDEX}")

    def create_id_index(self) -> None:
        with self._txn(commit=True) as c:
            c.execute(self._id_index_sql())


_ISO_COLUMNS = tuple(
    BOOKING_COLUMNS.index(c)
    for c in ("payment_date", "service_from", "service_to", "recorded_at", "approved_at")
)


SNAPSHOT_IDLE_SECONDS_MAX = 600  # a live export's snapshot may sit idle this long between reads


class PostgresSplitView(SplitViewQueries, PostgresTrackingRecorder):
    """Split view in the same PostgreSQL database and schema as the events."""

    bytewise = ' COLLATE "C"'
    empty_table = "TRUNCATE"  # DELETE would leave 2M dead rows for the rebuild to wade through
    column_types = {
        "id": "uuid",
        "id_key": "PRIMARY KEY",
        "date": "date",
        "ts": "timestamptz",
        "bool": "boolean",
        "bytewise": bytewise,
    }

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.prefix = f'"{self.datastore.schema}".'
        self.sql_create_statements += [SQL(s) for s in _table_sql(self.prefix, self.column_types)]  # type: ignore[arg-type]

    @contextmanager
    def _snapshot_connection(self) -> Iterator[tuple[Any, Any]]:
        with self.datastore.get_connection() as conn, conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # The holder sits idle in its transaction while the report is written (a 2M-booking
            # Belegliste: ~6 s), longer than the library's idle_in_transaction_session_timeout (5 s
            # by default): the server would end the session, and with it the exported snapshot.
            conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{SNAPSHOT_IDLE_SECONDS_MAX}s'")
            # TRUNCATE (a rebuild's reset) is not MVCC-safe: committed after the state is fixed, it
            # would show this transaction the tables empty beside the old position. Held from
            # before the state is fixed to its end, this lock makes a reset wait for the snapshot.
            conn.execute(
                f"LOCK TABLE {self.prefix}split_bookings, {self.prefix}split_totals IN ACCESS SHARE MODE"
            )
            # The transaction's first query: it fixes the state, and other connections can take
            # the same state by its name while this transaction is open (parallel_read).
            found = conn.execute("SELECT pg_export_snapshot() AS token").fetchone()
            yield conn, found["token"]

    @contextmanager
    def parallel_read(self) -> Iterator[Any]:
        """A read transaction on a connection of its own (for work in another thread), yielding a
        cursor: on a snapshot it sees the snapshot's state (SET TRANSACTION SNAPSHOT), on the
        live view the state of its first query."""
        if self._pinned is _ENDED:
            raise SnapshotEnded("the snapshot of the split view has ended: read it inside its context")
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(force_rollback=True),
            conn.cursor() as c,
        ):
            if self._snapshot_token is not None:
                c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                c.execute(SQL("SET TRANSACTION SNAPSHOT {}").format(Literal(self._snapshot_token)))
            yield c

    def _tracking_table(self) -> str:
        return f'{self.prefix}"{self.tracking_table_name}"'

    def insert_params(self, c: Any, rows: Iterable[tuple]) -> None:
        """COPY: rows are sent as they are produced, so the server inserts while the caller decodes."""
        with c.copy(f"COPY {self.prefix}split_bookings ({','.join(BOOKING_COLUMNS)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)


from projections.batch import ViewBatch  # noqa: E402  (cycle: the batch writes through the view)
