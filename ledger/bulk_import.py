"""Bulk import of a payment run: Recorded events encoded directly, copied into the event table.

The library's path for a run (one Booking aggregate per row, Application.save) spends per booking
about 45 µs building the aggregate and its event, then the mapper, the transcoder's Python hooks
for dates, and psycopg dumping one composite value per event into an array. This module produces
the *same stored events* without any of that:

- every row is decided by domain.booking.recording_terms, the function Booking.record uses
  (validation, fiscal period, closed periods, approval threshold);
- the event's state is encoded here into exactly the bytes the library's mapper and JSONTranscoder
  write for a Booking.Recorded event (a test compares them byte for byte, and reads fast-path
  events back through the repository);
- on PostgreSQL, in one transaction, in two phases. First, without any lock, the rows are read,
  checked, decided and encoded in chunks; the encoded events go to a spool file (ledger/run_spool.py),
  their keys into a temporary table, so a run of a million rows is never held in memory. Then the
  library's table lock (`LOCK TABLE ... IN EXCLUSIVE MODE`) is taken and, with nobody else writing
  events: the calendar is looked at again (rows of a period closed meanwhile are decided again),
  keys stored by others since the first look are found by one join (same content: unchanged;
  other content refuses the run), the notification ids are taken as one contiguous block from the
  table's own sequence, and the spool is copied (binary COPY) into the event table with the
  moment of the copy as the events' timestamp, each event sealed as it goes, continuing the chain
  from the last seal. The lock is held for the copy alone: about a sixth of the run's time.
- an error anywhere (a bad row of the file, a key stored with other content, a closed period) stops
  the staging but not the checking, so every bad row is still reported; then the transaction is
  rolled back and nothing is stored. A killed process leaves nothing either: the server rolls back
  a transaction whose client is gone.

Other stores (SQLite, in-memory) get the same encoded events through the application recorder's
ordinary insert (which seals them), after a look-up of the stored keys; that path holds the run in
memory, as before.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from domain.booking import (
    Booking,
    BookingContent,
    booking_id,
    booking_id_bytes,
    content_of,
    recording_terms,
    require_same_content,
)
from domain.errors import DomainError
from domain.fiscal import FiscalPeriod
from domain.periods import CALENDAR_ID
from ledger import event_index, seals
from ledger.allocation_checks import RunsInForce
from ledger.recorded_events import RECORDED_TOPIC, FastRecorded, recorded_event
from ledger.recorders import CalendarChanged, SealingPostgresApplicationRecorder, StoredMeanwhile
from ledger.run_spool import RunSpool, Spooled

if TYPE_CHECKING:
    from ledger.application import ImportResult, Ledger, RowConflict

BOOKING_TOPIC = get_topic(Booking)
CHUNK_ROWS = 10_000  # rows looked up, checked and staged at a time (bounds memory, not the transaction)
COPY_BLOCK_ROWS = 500  # rows per block sent while the COPY runs
SEAL_CHUNK_ROWS = 20_000  # events per COPY of events and of their seals (a multiple of the block)
assert SEAL_CHUNK_ROWS % COPY_BLOCK_ROWS == 0
CONFLICTS_KEPT_MAX = 100_000  # a run with more refused rows is reported with the first ones only
JUDGE_BATCH_ROWS = 1_000  # rows whose key was stored meanwhile, looked up at a time
SAME = object()  # the key is stored already, with the same content


_esc = json.encoder.encode_basestring  # what the library's encoder writes for a str (ensure_ascii=False)
_BOOL = {True: "true", False: "false"}
_STATE_HEAD = '{"timestamp":{"_type_":"datetime_iso","_data_":'
_STATE_TOPIC = ',"originator_topic":' + _esc(BOOKING_TOPIC)


def recorded_state(
    c: BookingContent, period: FiscalPeriod, *, recorded_by: str, requires_approval: bool, timestamp: datetime
) -> bytes:
    """The stored state of the Booking.Recorded event Booking.record(c) would produce: the event's
    attributes in the order the library keeps them (timestamp, originator_topic, then __init__'s
    arguments), dates and the timestamp as the transcodings `date_iso` and `datetime_iso`, written
    as the library's JSONTranscoder writes them (compact, UTF-8). Spelled out as one template
    because this runs once per booking of a run; tests/test_bulk_import.py compares the bytes with
    the library's mapper for arbitrary contents."""
    return _state_head(timestamp) + recorded_state_tail(
        c, period, recorded_by=recorded_by, requires_approval=requires_approval
    )


def _state_head(timestamp: datetime) -> bytes:
    """The state up to and including the timestamp: written when the event is stored."""
    return f"{_STATE_HEAD}{_esc(timestamp.isoformat())}}}".encode()


def recorded_state_tail(
    c: BookingContent, period: FiscalPeriod, *, recorded_by: str, requires_approval: bool
) -> bytes:
    """The state after the timestamp: decided and encoded while the run is checked."""
    amount = c.amount_cents
    assert type(amount) is int and type(period.year) is int and type(period.quarter) is int
    return (
        f"{_STATE_TOPIC}"
        f',"key":{_esc(c.key)},"kind":{_esc(str(c.kind))},"amount_cents":{amount}'
        f',"category":{_esc(c.category)}'
        f',"payment_date":{{"_type_":"date_iso","_data_":"{c.payment_date.isoformat()}"}}'
        f',"service_from":{{"_type_":"date_iso","_data_":"{c.service_from.isoformat()}"}}'
        f',"service_to":{{"_type_":"date_iso","_data_":"{c.service_to.isoformat()}"}}'
        f',"document_ref":{_esc(c.document_ref)},"case_ref":{_esc(c.case_ref)}'
        f',"contract_ref":{_esc(c.contract_ref)},"cost_centre":{_esc(c.cost_centre)}'
        f',"text":{_esc(c.text)},"fiscal_year":{period.year},"quarter":{period.quarter}'
        f',"fiscal_rule":{_esc(str(period.rule))},"recorded_by":{_esc(recorded_by)}'
        f',"requires_approval":{_BOOL[requires_approval]}'
        ',"reverses_key":"","reason":"","withdraws_unapproved":false}'
    ).encode()


# A spooled event decoded before it is stored (to compare or decide it again) needs some timestamp.
_PLACEHOLDER_HEAD = _state_head(datetime(2000, 1, 1, tzinfo=UTC))


class RunHadBadRows(Exception):
    """The source reported bad rows (None items): nothing was stored. The source lists them."""

    def __init__(self, conflicts: list[RowConflict]) -> None:
        super().__init__("the run has bad rows; nothing was stored")
        self.conflicts = conflicts  # found besides the source's own errors


class NotThisPath(Exception):
    """Nothing was stored: the run must go through Ledger.import_bookings (read whole)."""


class DrawsOnCommitment(NotThisPath):
    """A row of the run is a payment under a measure commitment: its drawdown is an event of the
    commitment, which this path does not write. Nothing was stored; use Ledger.import_bookings."""


class AllocationRunMeanwhile(NotThisPath):
    """A cost allocation run was booked, while the rows were checked, for a period the run books
    its cost types into by hand. Nothing was stored; decided again, those rows are refused."""


class CommitmentChecker:
    """Whether a row would draw on a stored commitment (looked up once per contract in a run).
    Remembers the contracts found without one: a commitment made for one of them while the run is
    checked must still stop the run, so the store looks at them again under its lock
    (`absent_ids`)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.known: dict[str, bool] = {}

    def __call__(self, c: BookingContent | None) -> bool:
        from domain.commitment import commitment_id

        if c is None or not c.contract_ref or c.kind != "payment":
            return False
        if c.contract_ref not in self.known:
            self.known[c.contract_ref] = commitment_id(c.contract_ref) in self.ledger.repository
        return self.known[c.contract_ref]

    def refuse(self, c: BookingContent | None) -> None:
        """DrawsOnCommitment if the row would draw on a stored commitment."""
        if self(c):
            assert c is not None
            raise DrawsOnCommitment(f"booking {c.key} draws on the commitment of contract {c.contract_ref}")

    def absent_ids(self) -> list[UUID]:
        from domain.commitment import commitment_id

        return [commitment_id(ref) for ref, found in self.known.items() if not found]


def _refusing_commitment_draws(
    draws: CommitmentChecker, items: Iterable[BookingContent | None]
) -> Iterator[BookingContent | None]:
    for c in items:
        draws.refuse(c)
        yield c


def _commitment_made_meanwhile() -> DrawsOnCommitment:
    return DrawsOnCommitment(
        "a commitment was made for a contract of this run while the run was checked; its payments "
        "draw on it now"
    )


def store_run(ledger: Ledger, items: Iterable[BookingContent | None], *, recorded_by: str) -> ImportResult:
    """Store a payment run atomically. `items` may be a generator; None marks a row the source
    found bad (the source reports it): then nothing is stored and RunHadBadRows is raised after
    every row was checked. Key conflicts and closed periods raise ImportRefused, nothing stored.
    Keys must be unique within the run (the caller checks; the store's primary key refuses).
    A payment under a stored commitment raises DrawsOnCommitment, nothing stored."""
    draws = CommitmentChecker(ledger)
    items = _refusing_commitment_draws(draws, items)
    if isinstance(ledger.recorder, SealingPostgresApplicationRecorder):
        return _PostgresRun(ledger, recorded_by).store(items, draws)
    return _store_through_recorder(ledger, items, recorded_by, draws)


def _decide(
    ledger: Ledger,
    index: int,
    c: BookingContent,
    old: BookingContent | None,
    recorded_by: str,
    calendar: Any,
    conflicts: list[RowConflict],
    runs: RunsInForce,
) -> Any:
    """The new booking's (period, needs approval); SAME if the key is stored (`old`) with this
    content; None if the row is refused (then it is in conflicts)."""
    from ledger.application import RowConflict

    try:
        if old is not None:
            require_same_content(old, c)
            return SAME
        terms = recording_terms(
            c, recorded_by=recorded_by, catalogue=ledger.catalogue, rates=ledger.base_rates, calendar=calendar
        )
        runs.refuse(c, terms[0].year, terms[0].quarter)
        return terms
    except DomainError as e:
        if len(conflicts) < CONFLICTS_KEPT_MAX:
            conflicts.append(RowConflict(index, e))
        return None


def _chunks(items: Iterable[BookingContent | None]) -> Iterator[list[tuple[int, BookingContent | None]]]:
    it = enumerate(items)
    while chunk := list(islice(it, CHUNK_ROWS)):
        yield chunk


class _PostgresRun:
    def __init__(self, ledger: Ledger, recorded_by: str) -> None:
        self.ledger = ledger
        self.recorded_by = recorded_by
        rec = ledger.recorder
        assert isinstance(rec, SealingPostgresApplicationRecorder)
        self.rec = rec
        schema, table = Identifier(rec.datastore.schema), Identifier(rec.events_table_name)
        self.qualified = f'"{rec.datastore.schema}"."{rec.events_table_name}"'
        self.copy_events = SQL(
            "COPY {0}.{1} (originator_id, originator_version, topic, state, notification_id) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(schema, table)
        self.copy_seals = SQL("COPY {0}.{1} (notification_id, seal) FROM STDIN (FORMAT BINARY)").format(
            schema, Identifier(rec.seals_table_name)
        )
        self.select_first = SQL(
            "SELECT originator_id, state FROM {0}.{1} "
            "WHERE originator_id = ANY(%s::uuid[]) AND originator_version = 1"
        ).format(schema, table)
        self.select_last_id = SQL("SELECT COALESCE(MAX(notification_id), 0) AS n FROM {0}.{1}").format(
            schema, table
        )
        self.select_taken = SQL(
            "SELECT e.originator_id FROM {0}.{1} e JOIN koa_run_keys k USING (originator_id) "
            "WHERE e.notification_id > %s AND e.originator_version = 1"
        ).format(schema, table)
        self.finish = stored_form(ledger)
        self.runs = RunsInForce(ledger)

    def store(self, items: Iterable[BookingContent | None], draws: CommitmentChecker) -> ImportResult:
        """Two phases in one transaction. First every row is checked, decided and encoded without
        any lock, the events spooled to a file and their keys copied into a temporary table. Then,
        under the table lock, the spool is copied into the event table and sealed: the lock is
        held for what only it can make safe (ids, seals, the last look at the calendar and at keys
        stored meanwhile), not for reading and checking the file."""
        from ledger.application import ImportRefused, ImportResult

        ledger, rec = self.ledger, self.rec
        calendar, seen = ledger._calendar_seen()
        conflicts: list[RowConflict] = []
        bad_rows = unchanged = 0
        try:
            with (
                ExitStack() as spools,  # every spool file is closed (and gone) on the way out
                rec.datastore.get_connection() as conn,
                conn.transaction(),
                conn.cursor() as curs,
            ):
                spool = spools.enter_context(RunSpool())
                # Whatever the server's default: under the lock, every statement must see what
                # others committed before it (the last seal, the calendar, keys, commitments).
                curs.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                # Everything stored after this position was stored after the look-ups below began.
                curs.execute(self.select_last_id)
                watermark = curs.fetchone()["n"]
                curs.execute(_CREATE_KEYS)
                for chunk in _chunks(items):
                    good = [(i, c, booking_id_bytes(c.key)) for i, c in chunk if c is not None]
                    bad_rows += len(chunk) - len(good)
                    stored = self._stored(curs, [oid for _, _, oid in good])
                    new = []
                    for i, c, oid in good:
                        old = stored.get(oid)
                        terms = _decide(ledger, i, c, old, self.recorded_by, calendar, conflicts, self.runs)
                        if terms is SAME:
                            unchanged += 1
                        elif terms is not None:
                            new.append((i, c, oid, terms))
                    if bad_rows or conflicts or not new:
                        continue  # keep checking, write nothing more: it is rolled back anyway
                    self._spool(curs, spool, new)
                if bad_rows:
                    raise RunHadBadRows(conflicts)
                if conflicts:
                    raise ImportRefused(conflicts)
                if not spool.count:
                    return ImportResult(0, unchanged, None)
                curs.execute("CREATE INDEX ON koa_run_keys (originator_id)")
                curs.execute("ANALYZE koa_run_keys")

                locked_at = time.perf_counter()
                rec._lock_table(curs)
                # Nobody can store events now. What others stored while the rows were checked:
                try:
                    rec.require_versions(curs, [(oid, 0) for oid in draws.absent_ids()])
                except StoredMeanwhile:
                    raise _commitment_made_meanwhile() from None
                try:
                    rec.require_versions(curs, self.runs.versions_read())
                except StoredMeanwhile:
                    raise AllocationRunMeanwhile(
                        "a cost allocation run was booked for a period of this run while the run was "
                        "checked; rows booking its cost types by hand would count twice"
                    ) from None
                curs.execute(self.select_taken, (watermark,))
                taken = {r["originator_id"].bytes for r in curs.fetchall()}  # judged as they are copied
                curs.execute(rec.select_calendar_version, (CALENDAR_ID,))
                if curs.fetchone()["v"] != seen:
                    # A period was closed while the rows were checked; closing needs the lock we
                    # now hold, so this calendar stays. Rows of a now closed period are decided
                    # again, except those whose key was stored meanwhile (judged by their content).
                    calendar, seen = ledger._calendar_fresh()
                    spool = spools.enter_context(self._decide_again(spool, calendar, taken))
                rec._notify_channel(curs)
                created, last_id = self._copy(curs, spool, taken)
                unchanged += spool.count - created
            lock_held_ms = round((time.perf_counter() - locked_at) * 1000)
        except IntegrityError as e:  # the library's, translated from psycopg's by get_connection
            raise IntegrityError(f"payment run: a key occurs twice or was stored meanwhile: {e}") from e
        return ImportResult(created, unchanged, last_id, lock_held_ms)

    def _spool(
        self, curs: Any, spool: RunSpool, new: Sequence[tuple[int, BookingContent, bytes, Any]]
    ) -> None:
        """The chunk's events (without their timestamp) to the spool, their keys to the table."""
        recorded_by = self.recorded_by
        key_row = _KEY_ROW.pack
        keys = bytearray(_COPY_HEADER)
        for i, c, oid, (period, approval) in new:
            tail = recorded_state_tail(c, period, recorded_by=recorded_by, requires_approval=approval)
            spool.add(i, oid, _uuid_text(oid), period.year, period.quarter, tail)
            keys += key_row(1, 16, oid)
        with curs.copy(_COPY_KEYS) as cp:
            cp.write(keys + _COPY_TRAILER)

    def _decide_again(self, spool: RunSpool, calendar: Any, taken: set[bytes]) -> RunSpool:
        """The rare case of a period closed between the phases: rows decided for a period that is
        closed now are decided again (moved to the cash period, or refused: ImportRefused, nothing
        stored); the others stand, the calendar's change does not touch them. A new spool (the
        caller closes both)."""
        from ledger.application import ImportRefused

        conflicts: list[RowConflict] = []
        again = RunSpool()
        try:
            for r in spool:
                if r.oid in taken or not calendar.closing_of(r.year, r.quarter):
                    again.add(r.index, r.oid, r.oid_text.decode(), r.year, r.quarter, r.tail)
                    continue
                c = _spooled_content(r)
                terms = _decide(self.ledger, r.index, c, None, self.recorded_by, calendar, conflicts, self.runs)
                if terms is not None:
                    period, approval = terms
                    tail = recorded_state_tail(
                        c, period, recorded_by=self.recorded_by, requires_approval=approval
                    )
                    again.add(r.index, r.oid, r.oid_text.decode(), period.year, period.quarter, tail)
            if conflicts:
                raise ImportRefused(conflicts)
        except BaseException:
            again.close()
            raise
        return again

    def _copy(self, curs: Any, spool: RunSpool, taken: set[bytes]) -> tuple[int, int | None]:
        """COPY the spooled events into the event table with contiguous ids and the moment of the
        copy as their timestamp (an as-of replay sees the run when it was stored, not when its
        checking began), sealing each as it goes: the server inserts one block while the next is
        hashed. A key somebody stored since the first look (`taken`: their ids) is left
        out if it holds the same content, and refuses the run otherwise (ImportRefused)."""
        from ledger.application import ImportRefused

        curs.execute(self.rec.select_last_seal)
        row = curs.fetchone()
        prev = bytes(row["seal"]) if row else seals.GENESIS
        next_id = first = self._reserve_first_id(curs)
        head = _state_head(datetime_now_with_tzinfo())
        sealed = seals.sealer(RECORDED_TOPIC, 1)
        event_row, length, tail_id, seal_row = _EVENT_ROW.pack, _LEN.pack, _ID.pack, _SEAL_ROW.pack
        finish = self.finish
        conflicts: list[RowConflict] = []
        to_judge: list[Spooled] = []  # rows whose key was stored meanwhile, judged in batches
        records, done = iter(spool), False
        while not done:
            # One COPY of events, then one of their seals, per SEAL_CHUNK_ROWS: bounded memory
            # (the connection cannot take the seals while the events' COPY is open).
            seal_rows, count = bytearray(_COPY_HEADER), 0
            with curs.copy(self.copy_events) as cp:
                block = bytearray(_COPY_HEADER)
                for r in records:
                    if r.oid in taken:
                        to_judge.append(r)
                        if len(to_judge) == JUDGE_BATCH_ROWS:
                            self._judge_taken(curs, to_judge, conflicts)
                        continue
                    if conflicts:
                        continue  # keep judging, write nothing more: it is rolled back anyway
                    state = head + r.tail if finish is None else finish(head + r.tail)
                    prev = sealed(prev, next_id, r.oid_text, state)
                    block += event_row(5, 16, r.oid, 8, 1, len(_TOPIC_BYTES), _TOPIC_BYTES)
                    block += length(len(state))
                    block += state
                    block += tail_id(8, next_id)
                    seal_rows += seal_row(2, 8, next_id, 32, prev)
                    next_id, count = next_id + 1, count + 1
                    if count % COPY_BLOCK_ROWS == 0:
                        cp.write(block)
                        block = bytearray()
                        if count == SEAL_CHUNK_ROWS:
                            break
                else:
                    done = True
                cp.write(block + _COPY_TRAILER)
            if count:
                with curs.copy(self.copy_seals) as cp:
                    cp.write(seal_rows + _COPY_TRAILER)
        self._judge_taken(curs, to_judge, conflicts)
        if conflicts:
            raise ImportRefused(conflicts)  # the transaction rolls back
        created = next_id - first
        # The block of ids was taken under the lock; the sequence continues after it.
        curs.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
            (self.qualified, max(next_id - 1, first)),
        )
        return created, (next_id - 1 if created else None)

    def _judge_taken(self, curs: Any, rows: list[Spooled], conflicts: list[RowConflict]) -> None:
        """Rows whose key others stored while the run was checked: unchanged if stored with the
        same content, else a conflict. Emptied, so memory stays bounded by the batch."""
        from ledger.application import RowConflict

        if not rows:
            return
        stored = self._stored(curs, [r.oid for r in rows])
        for r in rows:
            try:
                require_same_content(stored[r.oid], _spooled_content(r))
            except DomainError as e:
                if len(conflicts) < CONFLICTS_KEPT_MAX:
                    conflicts.append(RowConflict(r.index, e))
        rows.clear()

    def _stored(self, curs: Any, ids: list[bytes]) -> dict[bytes, BookingContent]:
        """The content stored under each of these ids (16 bytes each), where one is stored."""
        if not ids:
            return {}
        # As one array literal of hex digits (PostgreSQL reads a uuid without its hyphens): psycopg
        # dumps a list of UUID objects one Python call per element (~5 % of a run's time).
        curs.execute(self.select_first, ("{" + ",".join(oid.hex() for oid in ids) + "}",))
        return {
            r["originator_id"].bytes: content_of(self._event(r["originator_id"], bytes(r["state"])))
            for r in curs.fetchall()
        }

    def _reserve_first_id(self, curs: Any) -> int:
        curs.execute("SELECT nextval(pg_get_serial_sequence(%s, 'notification_id')) AS n", (self.qualified,))
        return int(curs.fetchone()["n"])

    def _event(self, oid: UUID, state: bytes) -> Any:
        return recorded_event(self.ledger, oid, state)


def _uuid_text(oid: bytes) -> str:
    """str(UUID(bytes=oid)), without building the UUID."""
    h = oid.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _spooled_content(r: Spooled) -> BookingContent:
    """The content of a spooled event: the plain JSON this module wrote (whatever the mapper does
    to it on the way into the store)."""
    return content_of(FastRecorded(UUID(bytes=r.oid), _PLACEHOLDER_HEAD + r.tail))


def stored_form(ledger: Ledger) -> Callable[[bytes], bytes] | None:
    """What the library's mapper does to an encoded state before storing it (compress, then
    encrypt: Mapper.to_stored_event), for stores configured with COMPRESSOR_TOPIC or CIPHER_TOPIC;
    None for a plain store."""
    compressor, cipher = ledger.mapper.compressor, ledger.mapper.cipher
    if compressor is None and cipher is None:
        return None

    def finish(state: bytes) -> bytes:
        if compressor is not None:
            state = compressor.compress(state)
        if cipher is not None:
            state = cipher.encrypt(state)
        return state

    return finish


# PostgreSQL's binary COPY format: signature, flags, header extension length; each row a field
# count and per field its length and bytes (big-endian); -1 as the field count ends the data.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_TOPIC_BYTES = RECORDED_TOPIC.encode()
_EVENT_ROW = struct.Struct(f"!hi16siqi{len(_TOPIC_BYTES)}s")  # uuid, version, topic; the state follows
_LEN = struct.Struct("!i")
_ID = struct.Struct("!iq")
_SEAL_ROW = struct.Struct("!hiqi32s")
_KEY_ROW = struct.Struct("!hi16s")
_CREATE_KEYS = "CREATE TEMPORARY TABLE koa_run_keys (originator_id uuid NOT NULL) ON COMMIT DROP"
_COPY_KEYS = "COPY koa_run_keys (originator_id) FROM STDIN (FORMAT BINARY)"


def _store_through_recorder(
    ledger: Ledger, items: Iterable[BookingContent | None], recorded_by: str, draws: CommitmentChecker
) -> ImportResult:
    """SQLite and in-memory stores: the encoded events through the recorder's own insert, which
    checks under its lock that the calendar is the one decided on and that no commitment was made
    meanwhile for a contract of the run (else everything is looked at again)."""
    from ledger.application import ImportRefused, ImportResult

    run = list(items)
    bad_rows = sum(1 for c in run if c is None)
    good = [(i, c) for i, c in enumerate(run) if c is not None]
    finish = stored_form(ledger)
    for attempt in range(3):
        runs = RunsInForce(ledger)
        if attempt:
            draws = CommitmentChecker(ledger)  # a commitment stored meanwhile: look again
            for _, c in good:
                draws.refuse(c)
        stored = event_index.recorded_contents(ledger, [booking_id(c.key) for _, c in good])
        calendar, seen = ledger._calendar_seen()
        conflicts: list[RowConflict] = []
        new: list[StoredEvent] = []
        timestamp = datetime_now_with_tzinfo()
        for i, c in good:
            terms = _decide(ledger, i, c, stored.get(booking_id(c.key)), recorded_by, calendar, conflicts, runs)
            if terms is not None and terms is not SAME:
                state = recorded_state(
                    c, terms[0], recorded_by=recorded_by, requires_approval=terms[1], timestamp=timestamp
                )
                if finish is not None:
                    state = finish(state)
                new.append(StoredEvent(booking_id(c.key), 1, RECORDED_TOPIC, state))
        if bad_rows:
            raise RunHadBadRows(conflicts)
        if conflicts:
            raise ImportRefused(conflicts)
        if not new:
            return ImportResult(0, len(good), None)
        try:
            ids = ledger.recorder.insert_events(
                new, calendar_version=seen, absent_ids=draws.absent_ids(), versions_read=runs.versions_read()
            )
        except CalendarChanged:
            ledger._calendar_fresh()
            continue  # a period closed meanwhile: decide again against the new calendar
        except IntegrityError:
            continue  # a key, a commitment or an allocation run stored meanwhile: look and decide again
        return ImportResult(len(new), len(good) - len(new), ids[-1] if ids else None)
    raise IntegrityError("payment run kept conflicting with concurrent writers; try again")
