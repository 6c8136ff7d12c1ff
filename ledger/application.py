"""The Ledger application: the one place where commands become stored events."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding
from eventsourcing.utils import get_topic

from domain.booking import (
    KEY_RE,
    REF_RE,
    Booking,
    BookingContent,
    booking_id,
    check_reason,
    check_user,
    require_same_content,
)
from domain.budget import Budget, budget_id
from domain.catalogue import Catalogue
from domain.commitment import Commitment, CommitmentExceeded, commitment_id
from domain.cost_allocation import CostsBookedDirectly
from domain.errors import (
    AlreadyApproved,
    BookingNotFound,
    DomainError,
    FourEyesViolation,
    KeyConflict,
    NotFound,
    StateRefused,
    ValidationError,
)
from domain.interest import Interest, repayment_interest
from domain.money import format_eur
from domain.parameters import PARAMETERS_ID, ParameterBook
from domain.periods import CALENDAR_ID, PeriodCalendar, PeriodClosed, label
from domain.rates import RateTable
from domain.retention import AccountsAdoption, adoption_id
from domain.sampling import SampleDraw, check_draw
from domain.settlement import FundsDraw, FundsRepayment, RepaidTally, Submission, check_transfer
from ledger import bulk_import, event_index
from ledger.allocation_checks import RunsInForce
from ledger.recorders import CalendarChanged, SideRow, SideRowConflict, rows_for_every_save

# A payment run is stored in one transaction; this bounds the transaction. On PostgreSQL a run read
# from a file is streamed (ledger/bulk_import.py), so memory does not grow with the rows' content.
IMPORT_ROWS_MAX = 1_000_000
# A batch approval (Sammelanordnung) is one transaction; this bounds it. 10,000 keys of at most
# 80 characters also stay below the API's 1 MiB body limit.
APPROVE_KEYS_MAX = 10_000


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True)
class Posted:
    booking: Booking
    created: bool  # False: the key already held this content (an idempotent repeat)


@dataclass(frozen=True)
class ImportResult:
    created: int
    unchanged: int
    last_notification_id: int | None
    lock_held_ms: int | None = None  # how long the event table was locked (PostgreSQL bulk path)


@dataclass(frozen=True)
class RowConflict:
    index: int  # position in the imported sequence
    error: DomainError


class ImportRefused(Exception):
    def __init__(self, conflicts: list[RowConflict]) -> None:
        super().__init__(f"{len(conflicts)} rows refused (key conflicts or closed periods)")
        self.conflicts = conflicts


@dataclass(frozen=True)
class ApprovalRefusal:
    index: int  # position of the key in the batch (0-based)
    key: str
    error: DomainError  # what a single approval of the key would raise (or why the key is malformed)

    @property
    def reason(self) -> str:
        return self.error.reason

    @property
    def kind(self) -> str:
        """invalid, not-found, four-eyes, already-approved, period-closed, commitment-exceeded,
        costs-booked-directly or refused."""
        for cls, kind in _REFUSAL_KINDS:
            if isinstance(self.error, cls):
                return kind
        return "refused"


_REFUSAL_KINDS: tuple[tuple[type[DomainError], str], ...] = (
    (ValidationError, "invalid"),
    (NotFound, "not-found"),
    (FourEyesViolation, "four-eyes"),
    (AlreadyApproved, "already-approved"),
    (PeriodClosed, "period-closed"),
    (CommitmentExceeded, "commitment-exceeded"),
    (CostsBookedDirectly, "costs-booked-directly"),
)


class ApprovalsRefused(DomainError):
    """A batch approval refused: every refused key with its reason, by position. Nothing was stored."""

    def __init__(self, refusals: list[ApprovalRefusal], total: int) -> None:
        assert refusals
        super().__init__(f"{len(refusals)} of {total} keys refused; nothing was approved", "keys")
        self.refusals = refusals
        self.total = total


def _refuse_moving_into_run(runs: RunsInForce, booking: Booking, period: tuple[int, int]) -> None:
    """An approval moves the booking from its closed period into the approval's: refused where a
    cost allocation run books its cost type there, with what the clerk can do instead."""
    if ref := runs.run_in_force(booking, booking.fiscal_year, booking.quarter):
        now = label(booking.fiscal_year, booking.quarter)
        raise CostsBookedDirectly(
            f"approved now, {booking.key} would count in {now} (its own period {label(*period)} is "
            f"closed), where the cost allocation run {ref} in force books {booking.category}: it would "
            f"count twice; withdraw it (koa reverse {booking.key}) and put the cost into the run's input",
            "on",
        )


def _booking_not_found(key: str) -> BookingNotFound:
    return BookingNotFound(f"no booking with key {key!r}", field="key")


def _repayment_figures(r: FundsRepayment) -> tuple:
    """What makes a repayment the same when its voucher is given again."""
    return (r.federal_title, r.fiscal_year, r.value_date, r.amount_cents, r.interest_since, r.reason)


class Ledger(Application):
    name = "Ledger"
    log_section_size = 1000

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        catalogue: Catalogue | None = None,
        rates: RateTable | None = None,
    ) -> None:
        super().__init__(env)
        self._calendar_kept: tuple[PeriodCalendar, int] | None = None  # see _calendar_seen
        self.catalogue = catalogue or Catalogue.load()
        self.base_rates = rates or RateTable.load()  # the shipped defaults; see `rates`

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # ---- commands --------------------------------------------------------------------------

    def record_booking(
        self,
        content: BookingContent,
        *,
        recorded_by: str,
        side_rows: Callable[[Booking], Sequence[SideRow]] | None = None,
    ) -> Posted:
        """Record a booking under its key; the same key and content again returns the first one.
        `side_rows(booking)`: rows stored in the same transaction as a new booking (the API's
        answer for its Idempotency-Key); SideRowConflict if one of them was stored meanwhile."""
        for attempt in range(3):
            # The first attempt takes the key for new (the common case: no read before the write);
            # a key stored already fails the save or the rules, and the next attempt looks it up.
            existing = self._find(content.key) if attempt else None
            if existing is not None:
                content.validate(self.catalogue)
                require_same_content(existing.content(), content)
                return Posted(existing, created=False)
            calendar, seen = self._calendar_seen()
            try:
                booking, commitments, refused, guard = self._new_booking(content, recorded_by, calendar)
                if refused:
                    raise refused[0][1]
            except DomainError:
                if attempt == 0 and self._find(content.key) is not None:
                    continue  # a repeat of a stored booking (its period may be closed by now)
                raise
            rows = tuple(side_rows(booking)) if side_rows else ()
            try:
                self.save(booking, *commitments, calendar_version=seen, side_rows=rows, versions_read=guard)
            except CalendarChanged:
                continue  # a period was closed meanwhile: decide again against the new calendar
            except SideRowConflict:
                raise  # not the booking's key: the caller's (nothing was stored)
            except IntegrityError:
                continue  # the same key (compare with theirs), an allocation run or a commitment stored meanwhile
            return Posted(booking, created=True)
        raise IntegrityError(f"booking {content.key!r} kept conflicting with concurrent writers; try again")

    def decide_new_booking(self, content: BookingContent, *, recorded_by: str) -> tuple[Booking, int] | None:
        """The first attempt of record_booking, not saved: the booking decided as new against the
        kept calendar, and that calendar's version (for `save_new_bookings`). None where
        record_booking must decide: an invoice under a contract (with a commitment it draws on it,
        without one it must find none made before its save), a cost type of the allocation runs
        booked by hand. Raises what the rules raise (which, for a key stored
        before, record_booking answers as a repeat)."""
        calendar, seen = self._calendar_seen()
        booking, commitments, refused, guard = self._new_booking(content, recorded_by, calendar)
        if commitments or refused or guard:
            return None
        return booking, seen

    def _new_booking(
        self, content: BookingContent, recorded_by: str, calendar: PeriodCalendar
    ) -> tuple[Booking, list[Commitment], list[tuple[int, DomainError]], list[tuple[UUID, int]]]:
        """A booking decided as new, the commitments it draws on, the drawdown refused, if any, and
        what to save it with as `versions_read` (an allocation run of its period stored meanwhile)."""
        booking = Booking.record(
            content,
            recorded_by=recorded_by,
            catalogue=self.catalogue,
            rates=self.base_rates,  # threshold and run-off days: not parameters (yet)
            calendar=calendar,
        )
        runs = RunsInForce(self)
        runs.refuse(content, booking.fiscal_year, booking.quarter)
        commitments, refused, absent = self._draw_commitments([booking])
        return booking, commitments, refused, runs.versions_read() + absent

    def bookings_stored(self, ids: Sequence[UUID]) -> set[UUID]:
        """Which of these booking ids are stored already (one query, not one per id)."""
        return event_index.stored_ids(self, ids)

    def save_new_bookings(
        self, bookings: Sequence[Booking], *, calendar_version: int, side_rows: Sequence[SideRow] = ()
    ) -> None:
        """Store bookings of `decide_new_booking` (decided against `calendar_version`) and the side
        rows in one transaction: all or nothing. Fails as a save does (a key stored meanwhile, the
        calendar changed, a side row taken); then each goes through record_booking for its own outcome."""
        assert bookings
        assert all(b.version == 1 for b in bookings)  # new aggregates only, one event each
        self.save(*bookings, calendar_version=calendar_version, side_rows=tuple(side_rows))

    def approve_booking(
        self,
        key: str,
        *,
        approved_by: str,
        on: date | None = None,
        side_rows: Callable[[Booking], Sequence[SideRow]] | None = None,
    ) -> Booking:
        """`side_rows(booking)`: rows stored in the same transaction as the approval.
        Raises the domain's refusal as it is (BookingNotFound, FourEyesViolation, ...)."""
        rows = (lambda bookings: side_rows(bookings[0])) if side_rows else None
        try:
            [booking] = self._approve_each([key], approved_by=approved_by, on=on, side_rows=rows)
        except ApprovalsRefused as e:
            raise e.refusals[0].error from None
        return booking

    def approve_bookings(
        self,
        keys: Sequence[str],
        *,
        approved_by: str,
        on: date | None = None,
        side_rows: Callable[[list[Booking]], Sequence[SideRow]] | None = None,
    ) -> list[Booking]:
        """Approve several bookings at once (a Sammelanordnung): all or none, in one transaction,
        each key under the same rules as approve_booking. ApprovalsRefused names every refused key
        with its reason: malformed or repeated keys first (then the books are not read), else every
        key the books refuse. `side_rows(bookings)`: rows stored in the same transaction."""
        keys = list(keys)
        check_user(approved_by, "approved_by")
        if not keys:
            raise ValidationError("at least one booking key is required", "keys")
        if len(keys) > APPROVE_KEYS_MAX:
            raise ValidationError(
                f"{len(keys)} keys: at most {APPROVE_KEYS_MAX} in one batch; split it", "keys"
            )
        malformed: list[ApprovalRefusal] = []
        seen: set[str] = set()
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not KEY_RE.fullmatch(key):
                reason = "not a booking key (1-80 letters, digits or ._:/#- starting with a letter or digit)"
                malformed.append(ApprovalRefusal(i, str(key), ValidationError(reason, "keys")))
            elif key in seen:
                reason = f"key {key} is given more than once in the batch"
                malformed.append(ApprovalRefusal(i, key, ValidationError(reason, "keys")))
            seen.add(str(key))
        if malformed:
            raise ApprovalsRefused(malformed, len(keys))
        return self._approve_each(keys, approved_by=approved_by, on=on, side_rows=side_rows)

    def _approve_each(
        self,
        keys: list[str],
        *,
        approved_by: str,
        on: date | None,
        side_rows: Callable[[list[Booking]], Sequence[SideRow]] | None,
    ) -> list[Booking]:
        """Approve distinct keys in one save, or raise ApprovalsRefused with every refusal."""
        for _attempt in range(3):
            calendar, seen = self._calendar_seen()
            day = on or date.today()
            approved: list[Booking] = []
            refused: list[ApprovalRefusal] = []
            # One instance per commitment: several invoices under it move their drawdowns in turn.
            commitments: dict[str, Commitment | None] = {}
            runs = RunsInForce(self)
            # Read in bulk (one query per 1,000 keys): a key per query took 10,000 keys ~6 s.
            for i, (key, booking) in enumerate(zip(keys, self.find_bookings(keys), strict=True)):
                try:
                    if booking is None:
                        raise _booking_not_found(key)
                    period = (booking.fiscal_year, booking.quarter)
                    booking.approve(approved_by=approved_by, calendar=calendar, on=day)
                    if (booking.fiscal_year, booking.quarter) != period:  # its own was closed meanwhile
                        _refuse_moving_into_run(runs, booking, period)
                    self._drawdown_to_counting_year(booking, commitments)
                except DomainError as e:
                    refused.append(ApprovalRefusal(i, key, e))
                    continue
                approved.append(booking)
            if refused:
                raise ApprovalsRefused(refused, len(keys))
            moved = [c for c in commitments.values() if c is not None and c.pending_events]
            try:
                self.save(
                    *approved,
                    *moved,
                    calendar_version=seen,
                    side_rows=tuple(side_rows(approved)) if side_rows else (),
                    versions_read=runs.versions_read(),
                )
            except SideRowConflict:
                raise  # not the bookings': the caller's (nothing was stored)
            except IntegrityError:  # a concurrent approval, closing or drawdown: the guards decide again
                continue
            return approved
        what = f"booking {keys[0]!r}" if len(keys) == 1 else f"{len(keys)} bookings"
        raise IntegrityError(f"{what} kept changing under concurrent writers; try again")

    def _drawdown_to_counting_year(
        self, booking: Booking, commitments: dict[str, Commitment | None]
    ) -> Commitment | None:
        """The commitment, if the approval moved its invoice to another year (the invoice's was
        closed meanwhile): the drawdown follows to that year's slice (CommitmentExceeded if it does
        not hold it). `commitments`: the ones loaded so far by contract, added to here."""
        if not booking.contract_ref:
            return None
        if booking.contract_ref not in commitments:
            commitments[booking.contract_ref] = self._commitment(booking.contract_ref)
        commitment = commitments[booking.contract_ref]
        drawdown = commitment.drawdowns.get(booking.key) if commitment else None
        if commitment is None or drawdown is None or drawdown[0] == booking.fiscal_year:
            return None
        commitment.move_drawdown(booking_key=booking.key, year=booking.fiscal_year)
        return commitment

    def reverse_booking(
        self,
        key: str,
        *,
        reason: str,
        reversed_by: str,
        on: date | None = None,
        side_rows: Callable[[Booking, Booking], Sequence[SideRow]] | None = None,
    ) -> Booking:
        """Reverse a booking by a counter-booking; both are stored in one transaction.

        `on` is the day of the correction (default: today), used when the original's period is closed.
        `side_rows(original, counter)`: rows stored in the same transaction.
        """
        for _attempt in range(3):
            original = self.get_booking(key)
            calendar, seen = self._calendar_seen()
            counter = original.reverse(
                reason=reason, reversed_by=reversed_by, on=on or date.today(), calendar=calendar
            )
            commitment = self._commitment(original.contract_ref) if original.contract_ref else None
            if commitment is not None and original.key in commitment.drawdowns:
                commitment.undraw(booking_key=original.key, reversal_key=counter.key)
            else:
                commitment = None
            rows = tuple(side_rows(original, counter)) if side_rows else ()
            try:
                self.save(
                    original,
                    counter,
                    *([commitment] if commitment else []),
                    calendar_version=seen,
                    side_rows=rows,
                )
            except SideRowConflict:
                raise  # not the booking's: the caller's (nothing was stored)
            except IntegrityError:  # a concurrent reversal or closing: the guards decide again
                continue
            return counter
        raise IntegrityError(f"booking {key!r} kept changing under concurrent writers; try again")

    def import_bookings(self, contents: Sequence[BookingContent], *, recorded_by: str) -> ImportResult:
        """Store a payment run atomically: all new bookings in one transaction, or none.

        Keys already stored with the same content are skipped (re-import changes nothing);
        a key stored with other content refuses the whole run. The events are encoded and copied
        into the store in bulk (ledger/bulk_import.py), the same events Booking.record gives.
        """
        if len(contents) > IMPORT_ROWS_MAX:
            raise ValidationError(f"more than {IMPORT_ROWS_MAX} bookings in one run: split it", "run")
        check_user(recorded_by, "recorded_by")
        keys: set[str] = set()
        for c in contents:
            if c.key in keys:
                raise ValidationError(f"key {c.key!r} occurs twice in the run", "key")
            keys.add(c.key)
        del keys
        for _attempt in range(2):
            if self._draws_on_commitments(contents):
                # Invoices under commitments: the drawdowns are events of the commitments, saved
                # with the bookings; such runs are small, the aggregate path carries them.
                return self._import_with_aggregates(contents, recorded_by=recorded_by)
            try:
                return bulk_import.store_run(self, contents, recorded_by=recorded_by)
            except bulk_import.NotThisPath:
                continue  # a commitment or an allocation run was stored meanwhile: decide again
        raise IntegrityError("payment run kept conflicting with concurrent writers; try again")

    def import_stream(self, contents: Iterable[BookingContent | None], *, recorded_by: str) -> ImportResult:
        """import_bookings for a run streamed from a file: never held in memory as a whole.

        The source checks that keys are unique and marks a row it found bad with None: then
        every row is still checked, nothing is stored and bulk_import.RunHadBadRows is raised.
        A row that would draw on a commitment stops it with bulk_import.DrawsOnCommitment (nothing
        stored), as does a cost allocation run booked meanwhile (AllocationRunMeanwhile; both are
        bulk_import.NotThisPath): such a run goes through import_bookings."""
        check_user(recorded_by, "recorded_by")
        return bulk_import.store_run(self, contents, recorded_by=recorded_by)

    def _draws_on_commitments(self, contents: Iterable[BookingContent]) -> bool:
        checked = bulk_import.CommitmentChecker(self)
        return any(checked(c) for c in contents)

    def _import_with_aggregates(
        self, contents: Sequence[BookingContent], *, recorded_by: str
    ) -> ImportResult:
        """The library's path: one Booking aggregate per row, saved with the commitments drawn on."""
        for _attempt in range(3):
            # Look up what is stored first, so a re-import builds no aggregates at all.
            stored = event_index.recorded_contents(self, [booking_id(c.key) for c in contents])
            calendar, calendar_version = self._calendar_seen()
            rates = self.base_rates
            conflicts: list[RowConflict] = []
            new: list[Booking] = []
            new_index: dict[int, int] = {}  # id(booking) -> row index, for drawdown refusals
            runs = RunsInForce(self)
            for i, c in enumerate(contents):
                old = stored.get(booking_id(c.key))
                if old is None:
                    try:
                        b = Booking.record(
                            c,
                            recorded_by=recorded_by,
                            catalogue=self.catalogue,
                            rates=rates,
                            calendar=calendar,
                        )
                        runs.refuse(c, b.fiscal_year, b.quarter)
                        new.append(b)
                        new_index[id(b)] = i
                    except DomainError as e:  # e.g. a closed period: reported with its row
                        conflicts.append(RowConflict(i, e))
                    continue
                try:
                    require_same_content(old, c)
                except KeyConflict as e:
                    conflicts.append(RowConflict(i, e))
            commitments, refused, absent = self._draw_commitments(new)
            conflicts += [RowConflict(new_index[id(new[i])], e) for i, e in refused]
            if conflicts:
                raise ImportRefused(sorted(conflicts, key=lambda c: c.index))
            if not new:
                return ImportResult(0, len(contents), None)
            try:
                recordings = self.save(
                    *new,
                    *commitments,
                    calendar_version=calendar_version,
                    versions_read=runs.versions_read() + absent,
                )
            except IntegrityError:
                # A concurrent writer took some of the keys (or booked an allocation run of their
                # period, or made a commitment for their contract) meanwhile: look again. (The failed save
                # consumed the new aggregates' pending events; they are built afresh.)
                continue
            last = recordings[-1].notification.id if recordings else None
            return ImportResult(len(new), len(contents) - len(new), last)
        raise IntegrityError("payment run kept conflicting with concurrent writers; try again")

    def record_sample_draw(
        self,
        month: str,
        per_branch: int,
        seed: str,
        population: dict[str, list[str]],
        *,
        position: int,
        drawn_by: str,
    ) -> SampleDraw:
        """Draw the IKS sample from a population read as of log `position` and store the draw
        (who, when, seed, result, position, the population's fingerprints, method)."""
        check_draw(month, per_branch, seed)
        check_user(drawn_by, "drawn_by")
        record = SampleDraw.record(month, per_branch, seed, population, position=position, drawn_by=drawn_by)
        self.save(record)
        return record

    def sample_draws(self, month: str) -> list[SampleDraw]:
        """Every recorded draw for a month, oldest first (redraws show here)."""
        return [d for _, d in self.sample_draws_at(month)]

    def sample_draws_at(self, month: str) -> list[tuple[int, SampleDraw]]:
        """Every recorded draw for a month with the log position of its event, oldest first."""
        return [
            (n.id, self.repository.get(e.originator_id))
            for n, e in self._recorded_notes(SampleDraw.Drawn)
            if e.month == month
        ]

    @property
    def rates(self) -> RateTable:
        """The rates in force now: the shipped defaults with every parameter set since."""
        return self.rates_as_of(None)

    def rates_as_of(self, as_of: datetime | None, up_to_position: int | None = None) -> RateTable:
        """The rates as they were set up to a moment (None: now), for reports as of that moment,
        with each year's Eingliederungsbudget as it stood then (the split caps EGT spending at it);
        with `up_to_position`, only what was stored up to that log position (an export's cut)."""
        changes = self._parameter_events(as_of, up_to_position)
        rates = self.base_rates.with_settings(
            [(e.name, e.year, e.land, Decimal(e.value)) for e in changes if type(e).__name__ == "Set"]
        ).with_basiszinssatz(
            [(e.valid_from, Decimal(e.value)) for e in changes if type(e).__name__ == "BaseRateSet"]
        )

        @functools.cache
        def egt_funds(year: int) -> int | None:
            budget = self.budget_as_of(year, as_of, up_to_position)
            return None if budget is None else budget.funds_cents("egt")

        return rates.with_egt_funds(egt_funds)

    def budget_as_of(
        self, year: int, as_of: datetime | None = None, up_to_position: int | None = None
    ) -> Budget | None:
        """The year's budget as recorded up to a moment (None: now) and a log position (None: all);
        None if there is none."""
        return self.aggregate_as_of(budget_id(year), as_of, up_to_position)

    def aggregate_as_of(
        self, aggregate_id: UUID, as_of: datetime | None, up_to_position: int | None = None
    ) -> Any:
        """An aggregate from its events recorded up to a moment (None: all) and stored up to a log
        position (None: all); None if it had none."""
        aggregate = None
        for e in self._events_up_to(aggregate_id, up_to_position):
            if as_of is not None and e.timestamp > as_of:
                break
            aggregate = e.mutate(aggregate)
        return aggregate

    def parameter_changes(self, as_of: datetime | None = None) -> list[Any]:
        """Every Set event of the parameter book (who, when, why), oldest first."""
        return [e for e in self._parameter_events(as_of) if type(e).__name__ == "Set"]

    def base_rate_changes(self, as_of: datetime | None = None) -> list[Any]:
        """Every Basiszinssatz set since the shipped table (who, when, why), oldest first."""
        return [e for e in self._parameter_events(as_of) if type(e).__name__ == "BaseRateSet"]

    def _parameter_events(self, as_of: datetime | None, up_to_position: int | None = None) -> list[Any]:
        """The parameter book's events up to a moment and a log position (None: all): one read
        (none before the first)."""
        return [
            e
            for e in self._events_up_to(PARAMETERS_ID, up_to_position)
            if as_of is None or e.timestamp <= as_of
        ]

    def _events_up_to(self, aggregate_id: UUID, up_to_position: int | None) -> Iterable[Any]:
        if up_to_position is None:
            return self.events.get(aggregate_id)
        return [
            self.mapper.to_domain_event(s)
            for s in event_index.stored_events_up_to(self.recorder, aggregate_id, up_to_position)
        ]

    def set_parameter(
        self, *, name: str, year: int, value: Decimal, land: str, reason: str, set_by: str
    ) -> ParameterBook:
        book = self._parameter_book()
        book.set(name=name, year=year, value=value, land=land, reason=reason, set_by=set_by)
        self.save(book)
        return book

    def set_base_rate(self, *, valid_from: date, value: Decimal, reason: str, set_by: str) -> ParameterBook:
        book = self._parameter_book()
        book.set_base_rate(valid_from=valid_from, value=value, reason=reason, set_by=set_by)
        self.save(book)
        return book

    def _parameter_book(self) -> ParameterBook:
        try:
            return self.repository.get(PARAMETERS_ID)
        except AggregateNotFoundError:
            return ParameterBook()

    def calendar(self) -> PeriodCalendar:
        """The closed periods (an empty calendar until something is closed), read afresh."""
        return self._read_calendar()[0]

    def _read_calendar(self) -> tuple[PeriodCalendar, int]:
        try:
            calendar = self.repository.get(CALENDAR_ID)
        except AggregateNotFoundError:
            return PeriodCalendar(), 0
        return calendar, calendar.version

    def _calendar_seen(self) -> tuple[PeriodCalendar, int]:
        """The calendar and the version a command decides against (not to be changed by it).

        Kept between commands: the recorder checks the version under its write lock, so a closing
        by anyone meanwhile makes the save fail with CalendarChanged, which drops the kept one
        (Ledger.save) and the command decides again against the new calendar."""
        seen = self._calendar_kept
        if seen is None:
            seen = self._calendar_kept = self._read_calendar()
        return seen

    def _calendar_fresh(self) -> tuple[PeriodCalendar, int]:
        """The calendar read again now (after a CalendarChanged outside Ledger.save)."""
        self._calendar_kept = None
        return self._calendar_seen()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if rows := rows_for_every_save():
            kwargs["side_rows"] = (*kwargs.get("side_rows", ()), *rows)
        try:
            return super().save(*objs, **kwargs)
        except CalendarChanged:
            self._calendar_kept = None
            raise

    def close_period(self, *, year: int, quarter: int, closed_by: str) -> PeriodCalendar:
        check_user(closed_by, "closed_by")
        calendar = self.calendar()
        calendar.close(year=year, quarter=quarter, closed_by=closed_by)
        self.save(calendar)
        self._calendar_kept = None
        return calendar

    def record_funds_draw(self, **kwargs) -> FundsDraw:
        """Record a Mittelabruf; the same voucher again with the same figures is a repeat, not a second draw."""
        draw_ = FundsDraw.record(**kwargs)
        try:
            existing = self.repository.get(draw_.id)
        except AggregateNotFoundError:
            self.save(draw_)
            return draw_
        same = all(getattr(existing, k) == getattr(draw_, k) for k in kwargs if k != "recorded_by")
        if not same:
            raise KeyConflict(
                f"voucher {draw_.document_ref!r} is already recorded with other figures",
                "document_ref",
            )
        return existing

    def repayment_interest(self, *, amount_cents: int, interest_since: date, value_date: date) -> Interest:
        """The interest on funds repaid to the Bund (Basiszinssatz + points), by the rates now."""
        rates = self.rates
        return repayment_interest(
            amount_cents,
            interest_since,
            value_date,
            rates.basiszinssatz,
            lambda year: rates.dated("repayment_interest_points", year),
        )

    def record_funds_repayment(
        self,
        *,
        federal_title: str,
        fiscal_year: int,
        value_date: date,
        amount_cents: int,
        interest_since: date,
        document_ref: str,
        reason: str,
        recorded_by: str,
    ) -> FundsRepayment:
        """Record funds repaid to the Bund with their interest; at most what was drawn for the title
        and year less earlier repayments. The same voucher again with the same figures is a repeat."""
        check_transfer(federal_title, fiscal_year, value_date, amount_cents, document_ref, recorded_by)
        if value_date > date.today():
            raise ValidationError("must not be in the future (record a repayment once it is made)", "date")
        given = (federal_title, fiscal_year, value_date, amount_cents, interest_since, reason.strip())
        interest = self.repayment_interest(
            amount_cents=amount_cents, interest_since=interest_since, value_date=value_date
        )
        for _attempt in range(3):
            try:
                existing = self.repository.get(FundsRepayment.create_id(document_ref))
            except AggregateNotFoundError:
                pass
            else:
                if given == _repayment_figures(existing):
                    return existing
                raise KeyConflict(
                    f"voucher {document_ref!r} is already recorded as a repayment with other figures",
                    "document_ref",
                )
            repayment = FundsRepayment.record(
                federal_title=federal_title,
                fiscal_year=fiscal_year,
                value_date=value_date,
                amount_cents=amount_cents,
                interest=interest,
                document_ref=document_ref,
                reason=reason,
                recorded_by=recorded_by,
            )
            tally = self._repaid_tally(federal_title, fiscal_year)
            net_drawn = self._drawn_cents(federal_title, fiscal_year) - tally.repaid_cents
            if amount_cents > net_drawn:
                raise StateRefused(
                    f"exceeds the funds drawn for {federal_title} {fiscal_year} less repayments "
                    f"({format_eur(net_drawn)} €)",
                    "amount",
                )
            tally.add(document_ref, amount_cents)
            try:
                self.save(repayment, tally)
            except IntegrityError:  # another repayment of these funds, or this voucher: decide again
                continue
            return repayment
        raise IntegrityError("repayments of these funds kept changing under concurrent writers; try again")

    def net_drawn_cents(self, federal_title: str, fiscal_year: int) -> int:
        """Funds drawn for a title and fiscal year, less what was repaid of them."""
        net = (
            self._drawn_cents(federal_title, fiscal_year)
            - self._repaid_tally(federal_title, fiscal_year).repaid_cents
        )
        assert net >= 0, (federal_title, fiscal_year, net)
        return net

    def _drawn_cents(self, federal_title: str, fiscal_year: int) -> int:
        return sum(
            e.amount_cents
            for e in self.recorded(FundsDraw.Recorded)
            if (e.federal_title, e.fiscal_year) == (federal_title, fiscal_year)
        )

    def _repaid_tally(self, federal_title: str, fiscal_year: int) -> RepaidTally:
        try:
            return self.repository.get(RepaidTally.create_id(federal_title, fiscal_year))
        except AggregateNotFoundError:
            return RepaidTally(federal_title, fiscal_year)

    def record_adoption(
        self,
        *,
        fiscal_year: int,
        adopted_on: date,
        resolution_ref: str,
        recorded_by: str,
        corrects: str | None = None,
        reason: str | None = None,
        today: date | None = None,
    ) -> tuple[AccountsAdoption, bool]:
        """Record that the council adopted a fiscal year's accounts (GemHVO BW § 39: the retention
        periods run from 1 January after it). The same figures again are a repeat (False); other
        figures are a KeyConflict unless given as a correction: `corrects` names the adoption on
        record by its resolution, with a `reason`, and is stored as a new event beside it."""
        today = today or date.today()
        check_user(recorded_by, "recorded_by")
        if corrects is None and reason is not None:
            raise ValidationError(
                "only with a correction: name the adoption it corrects (corrects)", "reason"
            )
        if corrects is not None:
            if not REF_RE.fullmatch(corrects):
                raise ValidationError(
                    "the resolution of the adoption on record, 1-64 letters, digits or ._:/-", "corrects"
                )
            reason = check_reason(reason or "")
        for _attempt in range(3):
            existing = self.adoption_as_of(fiscal_year)
            if existing is None or corrects is None:
                # Checked as a first recording (saved only if there is none): a repeat with bad
                # input is refused as bad input, not answered as a repeat or a conflict.
                first = AccountsAdoption.record(
                    fiscal_year=fiscal_year,
                    adopted_on=adopted_on,
                    resolution_ref=resolution_ref,
                    recorded_by=recorded_by,
                    calendar=self.calendar(),
                    today=today,
                )
            if existing is None:
                if corrects is not None:
                    raise StateRefused(f"no adoption of {fiscal_year} is on record to correct", "corrects")
                adoption = first
            elif corrects is None:
                existing.refuse_other_figures(adopted_on, resolution_ref)
                return existing, False
            elif existing.same_figures(adopted_on, resolution_ref):
                return existing, False  # this correction is on record already: a repeat
            else:
                adoption = existing
                adoption.correct(
                    adopted_on=adopted_on,
                    resolution_ref=resolution_ref,
                    corrects=corrects,
                    reason=reason or "",
                    corrected_by=recorded_by,
                    today=today,
                )
            try:
                self.save(adoption)
            except IntegrityError:
                continue  # recorded or corrected meanwhile by someone else: decide again
            return adoption, True
        raise IntegrityError(
            f"the adoption of {fiscal_year} kept changing under concurrent writers; try again"
        )

    def adoption_as_of(self, fiscal_year: int, as_of: datetime | None = None) -> AccountsAdoption | None:
        """The adoption of a fiscal year's accounts as recorded up to a moment (None: now)."""
        return self.aggregate_as_of(adoption_id(fiscal_year), as_of)

    def record_submission(self, **kwargs) -> Submission:
        submission = Submission.record(**kwargs)
        self.save(submission)
        return submission

    def recorded(self, event_class: type, *, up_to_position: int | None = None) -> list:
        """Every event of one class from the log, oldest first (few: draws, submissions, samples)."""
        return [e for _, e in self._recorded_notes(event_class, up_to_position=up_to_position)]

    def recorded_at_positions(
        self, event_class: type, up_to_position: int | None = None
    ) -> list[tuple[int, Any]]:
        """(log position, event) of every event of one class up to a position (default: all),
        oldest first (few: draws, repayments)."""
        return [(n.id, e) for n, e in self._recorded_notes(event_class, up_to_position=up_to_position)]

    def _recorded_notes(
        self, event_class: type, *, up_to_position: int | None = None
    ) -> list[tuple[Any, Any]]:
        """(notification, decoded event) of every event of one class from the log, oldest first."""
        topic = get_topic(event_class)
        found: list[tuple[Any, Any]] = []
        after = 0
        while True:
            page = self.recorder.select_notifications(
                start=after,
                limit=1000,
                topics=[topic],
                inclusive_of_start=False,
                stop=up_to_position,
            )
            if not page:
                return found
            found += [(n, self.mapper.to_domain_event(n)) for n in page]
            after = page[-1].id

    def _draw_commitments(
        self, bookings: Sequence[Booking]
    ) -> tuple[list[Commitment], list[tuple[int, DomainError]], list[tuple[UUID, int]]]:
        """Payments under the contract of a commitment draw down its slice of their fiscal year.

        Returns the commitments drawn on (to be saved with the bookings), the refused drawdowns by
        position, and the commitments found absent as `versions_read` (version 0): a payment under
        a contract without a commitment draws on none, so a commitment made before it is saved
        must fail the save, or its payment would count as committed and as spent.
        """
        touched: dict[str, Commitment | None] = {}
        refused: list[tuple[int, DomainError]] = []
        for i, b in enumerate(bookings):
            if not b.contract_ref or b.kind != "payment" or b.reverses_key:
                continue
            if b.contract_ref not in touched:
                touched[b.contract_ref] = self._commitment(b.contract_ref)
            commitment = touched[b.contract_ref]
            if commitment is None:
                continue
            try:
                if b.category != commitment.instrument:
                    raise ValidationError(
                        f"contract {b.contract_ref} commits {commitment.instrument}, not {b.category}",
                        "category",
                    )
                commitment.draw(booking_key=b.key, year=b.fiscal_year, amount_cents=b.amount_cents)
            except DomainError as e:
                refused.append((i, e))
        absent = [(commitment_id(ref), 0) for ref, c in touched.items() if c is None]
        return [c for c in touched.values() if c is not None], refused, absent

    def _commitment(self, contract_ref: str) -> Commitment | None:
        try:
            return self.repository.get(commitment_id(contract_ref))
        except AggregateNotFoundError:
            return None

    def get_commitment(self, contract_ref: str) -> Commitment:
        commitment = self._commitment(contract_ref)
        if commitment is None:
            raise NotFound(f"no commitment for contract {contract_ref!r}", field="contract_ref")
        return commitment

    # ---- queries ---------------------------------------------------------------------------

    def get_booking(self, key: str) -> Booking:
        booking = self._find(key)
        if booking is None:
            raise _booking_not_found(key)
        return booking

    def find_bookings(self, keys: Sequence[str]) -> list[Booking | None]:
        """The booking of each key, in the keys' order, None where a key has none: what _find
        gives for each, read in bulk (event_index.replay_aggregates: one query per 1,000 keys)."""
        ids = [booking_id(key) for key in keys]
        found = event_index.replay_aggregates(self, ids)
        return [found.get(i) for i in ids]

    def booking_history(self, key: str) -> list[Any]:
        self.get_booking(key)
        return list(self.events.get(booking_id(key)))

    def _find(self, key: str) -> Booking | None:
        try:
            return self.repository.get(booking_id(key))
        except AggregateNotFoundError:
            return None

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0
