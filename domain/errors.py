"""Domain errors. Each names the field (or rule) and the reason, so callers can show it as is."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused a command. `field` names the input at fault, if any."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class ValidationError(DomainError):
    """An input value is malformed or out of range."""


class UnknownCategory(ValidationError):
    pass


class StateRefused(DomainError):
    """The input is well-formed, but the books' state refuses it now (HTTP 409, not 422): a
    quarter closed before the one before it, a released slice changed, money shifted from a
    title that has no allocation yet."""


class FourEyesViolation(DomainError):
    """The recorder of a booking tried to approve it (BHO §§ 70, 77)."""


class AlreadyApproved(DomainError):
    pass


class ReversalRefused(DomainError):
    """A reversal of a reversal, or of a booking already reversed."""


class KeyConflict(DomainError):
    """A booking key is already used for a booking with different content."""


class NotFound(DomainError):
    """No aggregate with the given reference."""


class BookingNotFound(NotFound):
    pass


class RateMissing(DomainError):
    """No rate is on file for the year (and Land) a figure needs."""
