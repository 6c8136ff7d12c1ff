"""The Belegliste: every booking behind a KoA-VV report, with its own shares, as one CSV file.

A year of a big city has millions of bookings: written row by row into the workbook they took
minutes (openpyxl: ~5,800 rows/s). The workbook therefore holds the figures and, per category and
quarter, an index into this list (Belegverzeichnis); the list itself is a CSV file beside the
workbook, and the workbook states its SHA-256 (which the figures' hash covers too), so the list
belongs to the workbook as firmly as a sheet would.

Format, fixed so that the same bookings give the same bytes on every store and path:
UTF-8, ',' separated, a value in double quotes only when it is empty or holds a comma, a quote
(doubled) or a line break (as PostgreSQL's COPY writes CSV), '\\n' after each line, a header line of the field names of BelegRow, then one line per booking (no value can hold
a line break: keys, references, users and codes are restricted), ordered by federal title (in
settlement order), category, quarter, booking key (by code point). Dates are YYYY-MM-DD, the
recording moment is UTC as PostgreSQL writes it (2025-03-01 12:00:05.25+00), amounts are
integer cents. A booking's
line number in the file is its row in the list, the header being line 1.

Two ways to the same bytes:
- PostgreSQL: one `COPY (SELECT ...) TO STDOUT`, the shares computed by the server with window
  functions (largest remainder per quarter and category, ties to the smaller booking key; a
  booking and its Storno in the group get their own share half up and its negation), exactly
  as domain.money.allocate_share_cents_paired does; the rows are never Python objects.
- Everywhere else (SQLite, the replay store of an as-of report, reports built in memory):
  projections.split_queries.booking_shares per category and quarter, written with the csv module.
tests/test_koavv_belege.py holds the two to the same bytes.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from exports.koavv_model import TITLE_ORDER, BelegRow

FIELDS = tuple(f.name for f in fields(BelegRow))
COPY_CONNECTIONS = 2  # categories copied at once
NOBODY = 2**62  # a threshold remainder above every remainder: no booking gets a cent
PAIRED = -1  # the remainder the SQL gives a booking paired with its Storno: never ranked


def title_rank(title: str) -> tuple[int, str]:
    """Settlement order; a title the model does not know goes last rather than failing."""
    return (TITLE_ORDER.index(title), "") if title in TITLE_ORDER else (len(TITLE_ORDER), title)


def list_key(b: BelegRow) -> tuple:
    return (title_rank(b.federal_title), b.category, b.quarter, b.booking_key)


def csv_values(b: BelegRow) -> list[Any]:
    return [
        b.booking_key,
        b.fiscal_year,
        b.quarter,
        b.payment_date.isoformat(),
        b.service_from.isoformat(),
        b.service_to.isoformat(),
        utc_text(b.recorded_at),
        b.category,
        b.federal_title,
        b.kind,
        b.net_cents,
        b.federal_cents,
        b.municipal_cents,
        b.document_ref,
        b.case_ref,
        b.cost_centre,
        b.reverses_key,
        b.approved_by,
    ]


def utc_text(moment: datetime) -> str:
    """A moment as PostgreSQL writes a timestamptz in UTC with DateStyle ISO: 2025-03-01 12:00:05.25+00
    (fraction without trailing zeros, none at a full second). A naive moment is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "+00"


def csv_field(value: Any) -> str:
    """A value as PostgreSQL's COPY writes it in CSV: quoted only when empty or when it holds a
    comma, a quote (doubled) or a line break."""
    text = value if type(value) is str else str(value)
    if text == "" or "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: Iterable[Any]) -> str:
    return ",".join(map(csv_field, values)) + "\n"


def header_bytes() -> bytes:
    return csv_line(FIELDS).encode()


@dataclass(frozen=True)
class Group:
    """The bookings of one category in one quarter: their sums and their lines in the list."""

    federal_title: str
    category: str
    quarter: int
    booking_count: int
    net_cents: int
    federal_cents: int
    municipal_cents: int
    first_line: int  # 0 when the group is empty
    last_line: int


def write_csv(belege: Any, out: BinaryIO) -> None:
    """The Belegliste of a report's bookings: a ViewBelege (from the store) or a list of BelegRow."""
    out.write(header_bytes())
    if isinstance(belege, ViewBelege):
        belege.write_rows(out)
    else:
        _write_rows(sorted(belege, key=list_key), out)


def write_csv_hashed(belege: Any, out: BinaryIO | None) -> str:
    """write_csv into `out` (None: nowhere), returning the SHA-256 of what was written."""
    tee = _Tee(out)
    write_csv(belege, tee)  # type: ignore[arg-type]
    return tee.hexdigest()


def sha256(belege: Any) -> str:
    return write_csv_hashed(belege, None)


def groups(belege: Any) -> list[Group]:
    """The Belegverzeichnis: one group per category and quarter, in list order."""
    if isinstance(belege, ViewBelege):
        return belege.groups
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for b in belege:
        s = sums[(title_rank(b.federal_title), b.category, b.quarter, b.federal_title)]
        s[0] += 1
        s[1] += b.net_cents
        s[2] += b.federal_cents
        s[3] += b.municipal_cents
    return _placed([(k[3], k[1], k[2], *v) for k, v in sorted(sums.items())])


def _placed(rows: Iterable[tuple]) -> list[Group]:
    out, line = [], 2
    for title, category, quarter, count, net, federal, municipal in rows:
        first, last = (line, line + count - 1) if count else (0, 0)
        out.append(Group(title, category, quarter, count, net, federal, municipal, first, last))
        line += count
    return out


class _Tee:
    """Hashes what is written and passes it on to a file, if any."""

    def __init__(self, f: BinaryIO | None) -> None:
        self.f, self.h = f, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return self.f.write(data) if self.f is not None else len(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _write_rows(rows: Iterable[BelegRow], out: BinaryIO) -> None:
    lines: list[str] = []
    for b in rows:
        lines.append(csv_line(csv_values(b)))
        if len(lines) == 10_000:
            out.write("".join(lines).encode())
            lines = []
    out.write("".join(lines).encode())


def _check_group(line: Any, count: int, net: int, federal: int, municipal: int) -> None:
    """The bookings read for a split line must be the line's: its number, net and shares."""
    want = (line.booking_count, line.net_cents, line.federal_cents, line.municipal_cents)
    if (count, net, federal, municipal) != want:
        raise ValueError(
            f"{line.category} Q{line.quarter}: the bookings ({count}, net {net}, federal {federal}, "
            f"municipal {municipal} cents) do not add up to the line ({want[0]}, net {want[1]}, "
            f"federal {want[2]}, municipal {want[3]} cents): the view changed while the report was read?"
        )


class ViewBelege:
    """The bookings of a report, read from the split view only when the list is written.

    `lines` are the report's split lines (per quarter and category), in list order; they give the
    Belegverzeichnis without reading a single booking. Iterating gives the BelegRows (the
    reference path, for the JSON export and comparisons).

    The lines and the bookings must be one state of the books: a live report passes a snapshot of
    the view (SplitViewQueries.snapshot, ledger.cli_settlement.report_for), so that other
    processes' catch-ups between building the report and writing its list change nothing. Both
    paths check what they write against the lines all the same, and raise ValueError (so the
    workbook writes no file) rather than write a list that does not add up to the figures: the
    reference path counts and sums each group's rows as it yields them, the COPY path checks each
    group's count and sums (its histogram) and each category's rows."""

    def __init__(
        self,
        view: Any,
        catalogue: Any,
        rates: Any,
        land: str,
        year: int,
        lines: Sequence[Any],
    ) -> None:
        self.view, self.catalogue, self.rates, self.land, self.year = view, catalogue, rates, land, year
        self.lines = sorted(lines, key=lambda s: (title_rank(s.federal_title), s.category, s.quarter))
        self.groups = _placed(
            (
                s.federal_title,
                s.category,
                s.quarter,
                s.booking_count,
                s.net_cents,
                s.federal_cents,
                s.municipal_cents,
            )
            for s in self.lines
        )

    def __len__(self) -> int:
        return sum(g.booking_count for g in self.groups)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[BelegRow]:
        from projections.split_queries import booking_shares

        for s in self.lines:
            if not s.booking_count:
                continue
            shares = booking_shares(
                self.view, self.catalogue, self.rates, self.land, self.year, s.quarter, s.category, s
            )
            _check_group(
                s,
                len(shares),
                sum(x.net_cents for x in shares),
                sum(x.federal_cents for x in shares),
                sum(x.municipal_cents for x in shares),
            )
            for share in shares:
                r = share.row
                yield BelegRow(
                    booking_key=r.booking_key,
                    fiscal_year=r.fiscal_year,
                    quarter=r.quarter,
                    payment_date=r.payment_date,
                    service_from=r.service_from,
                    service_to=r.service_to,
                    recorded_at=r.recorded_at,
                    category=r.category,
                    federal_title=s.federal_title,
                    kind=r.kind,
                    net_cents=share.net_cents,
                    federal_cents=share.federal_cents,
                    municipal_cents=share.municipal_cents,
                    document_ref=r.document_ref,
                    case_ref=r.case_ref,
                    cost_centre=r.cost_centre,
                    reverses_key=r.reverses_key,
                    approved_by=r.approved_by,
                )

    def write_rows(self, out: BinaryIO) -> None:
        from projections.split_view import PostgresSplitView

        if isinstance(self.view, PostgresSplitView) and self.lines:
            self._copy_rows(out)
        else:
            _write_rows(iter(self), out)

    def _copy_rows(self, out: BinaryIO) -> None:
        """The rows by PostgreSQL itself, without sorting (see the module's docstring):

        1. one aggregate over the year's counted bookings: per quarter, category and remainder of
           the exact share (net * num mod den) the count and the sums of the nets and floors;
        2. here, per quarter and category, from that histogram: the group's share (the line's: its
           year's cumulative share less the quarters' before), the cents missing to it from the floors, and so the
           threshold remainder T above which every booking gets a cent, and how many of those
           with remainder exactly T get one (the first ones by key); the groups' sums are checked
           against the report's lines;
        3. per category, in settlement order, one COPY that reads its bookings in (quarter, key)
           order from split_bookings_list_idx and numbers those with remainder T as it goes (a
           running count, so no sort): the booking's cent is decided on the row."""
        cats = list(dict.fromkeys(s.category for s in self.lines))  # list order
        rates = {s.category: Decimal(s.federal_rate) for s in self.lines}
        ratios = [rates[c].as_integer_ratio() for c in cats]
        # A line the Eingliederungsbudget cut off carries its share as a rate rounded to six
        # decimals; that rate may well give the line's total, but the reference path shares such
        # a line by net amount, and the two rank the cents differently (a cent apart in about one
        # of 30 such lines). Only a line whose rate is the table's (or whose share is nil) is copied.
        one_rate = all(
            Decimal(s.federal_rate) == rates[s.category]
            and not s.budget_capped
            and (
                s.federal_cents == 0
                or Decimal(s.federal_rate)
                == self.rates.federal_rate(self.catalogue.get(s.category), self.year, self.land).rate
            )
            for s in self.lines
        )
        if not one_rate or any(num > 900_000 for num, _ in ratios):  # net * num must stay within bigint
            # A line whose share is not its rate times its net (the Eingliederungsbudget ran out in
            # it) or a category with several rates: the reference path shares each line as it is.
            _write_rows(iter(self), out)
            return
        nums, dens = [num for num, _ in ratios], [den for _, den in ratios]
        quarters = sorted({s.quarter for s in self.lines})
        table = f"{self.view.prefix}split_bookings"
        # Only rates with a fraction leave remainders to rank (Bund 100 %, Kommune 100 % do not).
        ranked = [i for i, d in enumerate(dens) if d != 1]
        params = {
            "cats": [cats[i] for i in ranked],
            "nums": [nums[i] for i in ranked],
            "dens": [dens[i] for i in ranked],
            "year": self.year,
            "quarters": quarters,
        }
        # Every read on a connection of its own, in the view's state (a snapshot's: the same as
        # the lines'), so the categories can be copied on two connections at once.
        with self.view.parallel_read() as curs:
            # The planner expects a group per booking; there are a few hundred: hash them in memory.
            curs.execute("SET LOCAL work_mem = '64MB'")
            curs.execute(_HISTOGRAM_SQL.format(table=table, paired=_PAIRED_SQL.format(table=table)), params)
            rows = curs.fetchall()
        hist: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
        sums: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in rows:
            key = (r["quarter"], r["category"])
            s_ = sums[key]
            s_[0] += int(r["n"])
            s_[1] += int(r["net"])
            if int(r["rem"]) == PAIRED:
                continue  # original and Storno: opposite shares of their own, no cent to rank
            hist[key].append((int(r["rem"]), int(r["n"])))
            s_[2] += int(r["fl"])
        thresholds: dict[tuple[int, str], tuple[int, int]] = {}
        for line in self.lines:
            key = (line.quarter, line.category)
            num, den = rates[line.category].as_integer_ratio()
            if den == 1:
                continue  # checked by its number of rows below
            count, net, floors = sums.get(key, [0, 0, 0])
            target = line.federal_cents  # the quarter's part of the year's share, rounded once
            _check_group(line, count, net, target, net - target)
            # Within a cent of the exact share of the bookings read (money.allocate_share_cents).
            assert abs(target * den - net * num) <= den, (key, target, net)
            missing, above = target - floors, 0
            if missing < 0:
                # A cent below the floors (money.allocate_share_cents: the year's net crossed zero
                # between two exact halves): rare, and the reference path takes it off the last.
                _write_rows(iter(self), out)
                return
            assert missing <= count, (key, missing, count)  # a cent at most per booking
            t, need = NOBODY, 0  # no booking gets a cent
            for rem, n in sorted(hist.get(key, ()), reverse=True):
                if missing <= above:
                    break
                t, need = rem, missing - above
                above += n
            thresholds[key] = (t, need)

        def copy_category(i: int, cat: str, sink: BinaryIO) -> None:
            lines = [s for s in self.lines if s.category == cat and s.booking_count]
            rows = 0
            if not lines:
                return
            copy_params = {
                "year": self.year,
                "category": cat,
                "title": lines[0].federal_title,
                "num": nums[i],
                "den": dens[i],
                "quarters": [s.quarter for s in lines],
                # indexed by quarter (1..4): the threshold and how many at it get a cent
                "t": [thresholds.get((q, cat), (NOBODY, 0))[0] for q in range(1, 5)],
                "need": [thresholds.get((q, cat), (NOBODY, 0))[1] for q in range(1, 5)],
            }
            with self.view.parallel_read() as curs:
                # Dates and moments in PostgreSQL's own ISO output (to_char costs a third more).
                curs.execute("SET LOCAL DateStyle = 'ISO, YMD'")
                curs.execute("SET LOCAL TimeZone = 'UTC'")
                # A whole-number rate (Bund 100 %, Kommune 100 %) leaves no remainders to rank.
                sql = _COPY_EXACT_SQL if dens[i] == 1 else _COPY_SQL
                with curs.copy(
                    sql.format(table=table, paired=_PAIRED_SQL.format(table=table)), copy_params
                ) as cp:
                    # The server sends a message per row: gather them, write (and hash) by the MiB.
                    buf, rows = bytearray(), 0
                    for chunk in cp:
                        buf += chunk
                        rows += 1
                        if len(buf) >= 1 << 20:
                            sink.write(buf)
                            buf = bytearray()
                    sink.write(buf)
            expected = sum(s.booking_count for s in lines)
            if rows != expected:
                raise ValueError(
                    f"{cat}: {rows} bookings written to the Belegliste, {expected} in the report's "
                    "lines (the view changed while the list was read?)"
                )

        # Two categories at a time on two connections (the server does the work; on two cores that
        # halves the time): the first straight to `out`, the others into temporary files that are
        # appended in order.
        with ThreadPoolExecutor(max_workers=COPY_CONNECTIONS, thread_name_prefix="belege") as pool:
            spools = [tempfile.TemporaryFile() for _ in cats[1:]]
            try:
                futures = [pool.submit(copy_category, 0, cats[0], out)] if cats else []
                futures += [
                    pool.submit(copy_category, i, c, f)
                    for i, (c, f) in enumerate(zip(cats[1:], spools, strict=True), 1)
                ]
                futures[0].result()
                for future, spool in zip(futures[1:], spools, strict=True):
                    future.result()
                    spool.seek(0)
                    while block := spool.read(1 << 20):
                        out.write(block)
            finally:
                for f in spools:
                    f.close()


# A booking paired with its Storno (projections.split_queries.reversal_pairs): a counted Storno
# and its counted original in the same year, quarter and category with exactly opposite nets. The
# pairs are found once per query from the few rows that reverse another, and each row is then only
# looked up in their hash: a correlated look-up per row cost ~0.85 s at 100,000 bookings.
_NET = "{a}.sign * CASE WHEN {a}.kind = 'payment' THEN {a}.amount_cents ELSE -{a}.amount_cents END"
_PAIRED_SQL = f"""v.booking_key COLLATE "C" IN (
    SELECT p.k FROM {{table}} s
    JOIN {{table}} o
        ON o.fiscal_year = s.fiscal_year AND o.category = s.category AND o.quarter = s.quarter
        AND o.booking_key COLLATE "C" = s.reverses_key AND o.counted
        AND {_NET.format(a="o")} = -({_NET.format(a="s")}),
    LATERAL (VALUES (s.booking_key), (o.booking_key)) AS p(k)
    WHERE s.reverses_key <> '' AND s.counted AND s.fiscal_year = %(year)s
)"""

# Per booking: net = signed cents; its exact share net * num / den (rate = num / den); fl = the
# floor of that; rem = net * num - fl * den, 0 <= rem < den, or PAIRED (-1) for a booking paired
# with its Storno. All in bigint: |net| <= 10^10 and num <= 9 * 10^5 (else the Python path).
# PostgreSQL's / truncates toward zero, hence the CASE.
_HISTOGRAM_SQL = """
SELECT quarter, category, CASE WHEN paired THEN -1 ELSE net * num - fl * den END AS rem, count(*) AS n,
    sum(net) AS net, sum(fl) AS fl
FROM (
    SELECT v.quarter, v.category, r.num, r.den, n.net, n.net * r.num AS p, {paired} AS paired
    FROM {table} v
    JOIN unnest(%(cats)s::text[], %(nums)s::bigint[], %(dens)s::bigint[]) AS r(category, num, den)
        ON r.category = v.category,
        LATERAL (SELECT v.sign * CASE WHEN v.kind = 'payment' THEN v.amount_cents
                                      ELSE -v.amount_cents END AS net) n
    WHERE v.fiscal_year = %(year)s AND v.quarter = ANY(%(quarters)s::int[]) AND v.counted
) b, LATERAL (SELECT CASE WHEN p < 0 AND p %% den <> 0 THEN p / den - 1 ELSE p / den END AS fl) f
GROUP BY quarter, category, 3
"""

# A booking paired with its Storno gets its own share, half up away from zero (domain.money.share_cents),
# so the Storno's is exactly its negation; the others get their floor and, by remainder, a cent.
_COPY_SQL = """
COPY (
SELECT booking_key, fiscal_year, quarter, payment_date, service_from, service_to, recorded_at,
    category, %(title)s::text, kind, net, federal, net - federal,
    document_ref, case_ref, cost_centre, reverses_key, approved_by
FROM (
    SELECT b.*, CASE
            WHEN paired THEN CASE WHEN net < 0 THEN -1 ELSE 1 END
                * ((2 * abs(net) * %(num)s::bigint + %(den)s::bigint) / (2 * %(den)s::bigint))
            ELSE fl + CASE
                WHEN rem > t THEN 1
                WHEN rem = t AND count(*) FILTER (WHERE rem = t) OVER w <= need THEN 1
                ELSE 0 END
        END AS federal
    FROM (
        SELECT v.*, net, fl, paired,
            CASE WHEN paired THEN -1 ELSE net * %(num)s::bigint - fl * %(den)s::bigint END AS rem,
            (%(t)s::bigint[])[v.quarter] AS t, (%(need)s::bigint[])[v.quarter] AS need
        FROM {table} v,
            LATERAL (SELECT v.sign * CASE WHEN v.kind = 'payment' THEN v.amount_cents
                                          ELSE -v.amount_cents END AS net) n,
            LATERAL (SELECT {paired} AS paired) pr,
            LATERAL (SELECT CASE WHEN net * %(num)s::bigint < 0 AND (net * %(num)s::bigint) %% %(den)s::bigint <> 0
                                 THEN net * %(num)s::bigint / %(den)s::bigint - 1
                                 ELSE net * %(num)s::bigint / %(den)s::bigint END AS fl) f
        WHERE v.fiscal_year = %(year)s AND v.category = %(category)s
            AND v.quarter = ANY(%(quarters)s::int[]) AND v.counted
        ORDER BY v.quarter, v.booking_key COLLATE "C"
    ) b
    WINDOW w AS (PARTITION BY quarter ORDER BY booking_key COLLATE "C" ROWS UNBOUNDED PRECEDING)
) s
ORDER BY quarter, booking_key COLLATE "C"
) TO STDOUT (FORMAT csv)
"""

_COPY_EXACT_SQL = """
COPY (
SELECT booking_key, fiscal_year, quarter, payment_date, service_from, service_to, recorded_at,
    category, %(title)s::text, kind, net, net * %(num)s::bigint, net - net * %(num)s::bigint,
    document_ref, case_ref, cost_centre, reverses_key, approved_by
FROM (
    SELECT v.*, v.sign * CASE WHEN v.kind = 'payment' THEN v.amount_cents ELSE -v.amount_cents END AS net
    FROM {table} v
    WHERE v.fiscal_year = %(year)s AND v.category = %(category)s
        AND v.quarter = ANY(%(quarters)s::int[]) AND v.counted
) b
ORDER BY quarter, booking_key COLLATE "C"
) TO STDOUT (FORMAT csv)
"""
