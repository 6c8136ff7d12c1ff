"""A measure commitment (Mittelbindung): a provider contract for one Eingliederung instrument binds
budget before money flows, sliced by fiscal year (later years are Verpflichtungsermächtigungen).

Payments booked with the contract's reference draw down the slice of their fiscal year; a drawdown
beyond what remains of that slice is refused, naming the remainder. A reversal gives its amount back.
The commitment is increased or reduced by events with reasons, and a year's remainder is released.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.booking import REF_RE, TEXT_LEN_MAX, check_reason, check_user, is_one_line
from domain.budget import check_amount, check_year
from domain.errors import DomainError, StateRefused, ValidationError
from domain.money import format_eur

COMMITMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:koa-ledger:commitment")
SLICES_MAX = 10  # a contract over more than ten fiscal years is a typo
DRAWDOWNS_MAX = 100_000  # per commitment: the aggregate holds them all in memory


class CommitmentExceeded(DomainError):
    """A drawdown beyond the remaining amount of its year's slice, or a reduction below what was drawn."""


def commitment_id(contract_ref: str) -> UUID:
    return uuid5(COMMITMENT_NAMESPACE, contract_ref)


class Commitment(Aggregate):
    @staticmethod
    def create_id(contract_ref: str) -> UUID:  # type: ignore[override]
        return commitment_id(contract_ref)

    @classmethod
    def make(
        cls,
        *,
        contract_ref: str,
        instrument: str,
        provider: str,
        slices_cents: dict[int, int],
        reason: str,
        made_by: str,
        known_instruments: set[str],
    ) -> Commitment:
        if not REF_RE.fullmatch(contract_ref):
            raise ValidationError("required: 1-64 letters, digits or ._:/-", "contract_ref")
        if not instrument.startswith("egt.") or instrument not in known_instruments:
            raise ValidationError("must be an Eingliederung instrument (egt.*, see `koa categories`)", "instrument")
        provider = provider.strip()
        if not provider or len(provider) > TEXT_LEN_MAX or not is_one_line(provider):
            raise ValidationError(
                f"required, one line of at most {TEXT_LEN_MAX} characters, without control characters", "provider"
            )
        if not slices_cents:
            raise ValidationError("at least one fiscal year's slice is required", "slices")
        if len(slices_cents) > SLICES_MAX:
            raise ValidationError(f"at most {SLICES_MAX} fiscal years", "slices")
        for year, cents in slices_cents.items():
            check_year(year)
            check_amount(cents, zero_ok=False, field=f"slices.{year}")
        reason = check_reason(reason)
        check_user(made_by, "made_by")
        return cls(
            contract_ref=contract_ref,
            instrument=instrument,
            provider=provider,
            slices_cents={str(y): c for y, c in sorted(slices_cents.items())},
            reason=reason,
            made_by=made_by,
        )

    @event("Made")
    def __init__(
        self,
        contract_ref: str,
        instrument: str,
        provider: str,
        slices_cents: dict[str, int],
        reason: str,
        made_by: str,
    ) -> None:
        self.contract_ref = contract_ref
        self.instrument = instrument
        self.provider = provider
        self.made_by = made_by
        # Keys are years as strings: events and snapshots go through JSON.
        self.slice_cents = dict(slices_cents)
        self.drawn_cents = {y: 0 for y in slices_cents}
        self.released_cents = {y: 0 for y in slices_cents}
        self.drawdowns: dict[str, list] = {}  # booking key -> [year, cents]
        self.given_back: dict[str, list] = {}  # reversal's key -> [year, cents] it gave back
        self.released_years: list[int] = []

    # ---- commands --------------------------------------------------------------------------

    def increase(self, *, year: int, amount_cents: int, reason: str, changed_by: str) -> None:
        check_year(year)
        check_amount(amount_cents, zero_ok=False)
        reason = check_reason(reason)
        check_user(changed_by, "changed_by")
        self._guard_not_released(year)
        if str(year) not in self.slice_cents and len(self.slice_cents) >= SLICES_MAX:
            raise ValidationError(f"at most {SLICES_MAX} fiscal years", "year")
        self._increased(year=year, amount_cents=amount_cents, reason=reason, changed_by=changed_by)

    def reduce(self, *, year: int, amount_cents: int, reason: str, changed_by: str) -> None:
        check_year(year)
        check_amount(amount_cents, zero_ok=False)
        reason = check_reason(reason)
        check_user(changed_by, "changed_by")
        self._guard_not_released(year)
        remaining = self.remaining_cents(year)
        if amount_cents > remaining:
            raise CommitmentExceeded(
                f"{self.contract_ref}: the {year} slice can be reduced by at most its remaining "
                f"{format_eur(remaining)} € (drawn {format_eur(self.drawn_cents.get(str(year), 0))} €)",
                field="amount",
            )
        self._reduced(year=year, amount_cents=amount_cents, reason=reason, changed_by=changed_by)

    def release(self, *, year: int, reason: str, released_by: str) -> int:
        """Release what remains of a year's slice (the measure is finished); returns the amount."""
        check_year(year)
        reason = check_reason(reason)
        check_user(released_by, "released_by")
        self._guard_not_released(year)
        if str(year) not in self.slice_cents:
            raise ValidationError(f"{self.contract_ref} has no slice for {year}", "year")
        amount = self.remaining_cents(year)
        self._released(year=year, amount_cents=amount, reason=reason, released_by=released_by)
        return amount

    def draw(self, *, booking_key: str, year: int, amount_cents: int) -> None:
        """A payment booked under this contract draws down its fiscal year's slice."""
        assert amount_cents > 0
        if booking_key in self.drawdowns:
            raise ValidationError(f"booking {booking_key} already drew on {self.contract_ref}", "key")
        if len(self.drawdowns) >= DRAWDOWNS_MAX:
            raise ValidationError(f"{self.contract_ref} has reached {DRAWDOWNS_MAX} drawdowns", "contract_ref")
        self._guard_room(year, amount_cents, field="amount")
        self._drawn(booking_key=booking_key, year=year, amount_cents=amount_cents)

    def undraw(self, *, booking_key: str, reversal_key: str) -> None:
        """A reversal gives back what its original drew (to the same year's slice)."""
        year, cents = self.drawdowns[booking_key]
        self._undrawn(booking_key=booking_key, reversal_key=reversal_key, year=year, amount_cents=cents)

    def move_drawdown(self, *, booking_key: str, year: int) -> None:
        """An invoice approved after its year was closed counts in the open year: its drawdown
        moves to that year's slice, which must hold it (else the approval is refused)."""
        from_year, cents = self.drawdowns[booking_key]
        assert from_year != year, "the drawdown is in that year already"
        self._guard_room(
            year,
            cents,
            field="contract_ref",
            why=f"booking {booking_key} counts in {year} once approved ({from_year} is closed), but ",
        )
        self._drawdown_moved(booking_key=booking_key, from_year=from_year, year=year, amount_cents=cents)

    def _guard_room(self, year: int, amount_cents: int, *, field: str, why: str = "") -> None:
        remaining = self.remaining_cents(year)
        if amount_cents > remaining:
            released = " (released)" if self.is_released(year) else ""
            raise CommitmentExceeded(
                f"{why}{format_eur(amount_cents)} € exceed what remains of the {year} slice of commitment "
                f"{self.contract_ref}{released}: {format_eur(remaining)} €; increase the commitment first",
                field=field,
            )

    def _guard_not_released(self, year: int) -> None:
        if self.is_released(year):
            raise StateRefused(f"the {year} slice of {self.contract_ref} is released", "year")

    # ---- events (state only) ---------------------------------------------------------------

    @event("Increased")
    def _increased(self, year: int, amount_cents: int, reason: str, changed_by: str) -> None:
        y = str(year)
        self.slice_cents[y] = self.slice_cents.get(y, 0) + amount_cents
        self.drawn_cents.setdefault(y, 0)
        self.released_cents.setdefault(y, 0)

    @event("Reduced")
    def _reduced(self, year: int, amount_cents: int, reason: str, changed_by: str) -> None:
        self.slice_cents[str(year)] -= amount_cents

    @event("Released")
    def _released(self, year: int, amount_cents: int, reason: str, released_by: str) -> None:
        self.released_cents[str(year)] = amount_cents
        self.released_years.append(year)

    @event("Drawn")
    def _drawn(self, booking_key: str, year: int, amount_cents: int) -> None:
        self.drawn_cents[str(year)] += amount_cents
        self.drawdowns[booking_key] = [year, amount_cents]

    @event("Undrawn")
    def _undrawn(self, booking_key: str, reversal_key: str, year: int, amount_cents: int) -> None:
        self._take_back(year, amount_cents)
        del self.drawdowns[booking_key]
        self.given_back[reversal_key] = [year, amount_cents]

    @event("DrawdownMoved")
    def _drawdown_moved(self, booking_key: str, from_year: int, year: int, amount_cents: int) -> None:
        self._take_back(from_year, amount_cents)
        self.drawn_cents[str(year)] += amount_cents
        self.drawdowns[booking_key] = [year, amount_cents]

    def _take_back(self, year: int, amount_cents: int) -> None:
        """A drawdown leaves the year's slice (state only, within an event)."""
        y = str(year)
        self.drawn_cents[y] -= amount_cents
        if self.is_released(year):
            self.released_cents[y] += amount_cents  # a released year's money stays released

    # ---- queries ---------------------------------------------------------------------------

    def is_released(self, year: int) -> bool:
        return year in self.released_years

    def years(self) -> list[int]:
        return sorted(int(y) for y in self.slice_cents)

    def remaining_cents(self, year: int) -> int:
        """What the year's slice still binds: slice − drawn − released (0 for a year without slice)."""
        y = str(year)
        if y not in self.slice_cents:
            return 0
        remaining = self.slice_cents[y] - self.drawn_cents[y] - self.released_cents[y]
        assert remaining >= 0, (self.contract_ref, year, remaining)
        return remaining
