"""Audit services over the stored log: verify the seal chain, the head to anchor, a booking's
history. Reads only; the live read models are never touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import StoredEvent

from domain.settlement import FundsDraw, FundsRepayment
from exports.audit_export import SealedEvent, Transfer
from ledger import seals
from ledger.application import Ledger

PAGE = 5000
# Where verification starts: below any position. The recorders hand out positions from 1, but a
# row inserted behind their back may carry 0 or less, and the repository loads it like any other.
BELOW_ALL_POSITIONS = -(2**63)


def log_entries(app: Ledger, upto: int | None = None) -> Iterator[seals.LogEntry]:
    """Events and seals merged by position, in pages; either side may be missing at a position.

    Both sides end at `upto`, by default at the log's end as it stood when verification began.
    An event and its seal are committed together, but the two sides are read by separate
    queries: a save committed between the last page of events and the last page of seals would
    otherwise show as an event missing beside its seal."""
    recorder: Any = app.recorder
    if not hasattr(recorder, "seal_pages"):
        raise RuntimeError("this store was opened without the sealing recorder")
    if upto is None:
        upto = recorder.log_end()
    if upto is None:
        return

    def events() -> Iterator[Any]:
        after = BELOW_ALL_POSITIONS
        while True:
            page = recorder.select_notifications(start=after, limit=PAGE, stop=upto, inclusive_of_start=False)
            if not page:
                return
            yield from page
            after = page[-1].id

    def seal_rows() -> Iterator[tuple[int, bytes]]:
        after = BELOW_ALL_POSITIONS
        while True:
            page = recorder.seal_pages(after, PAGE, upto)
            if not page:
                return
            yield from page
            after = page[-1][0]

    # An id stored in another spelling is verified as stored: its seal covers the canonical one.
    misspelled: dict[int, str] = getattr(recorder, "misspelled_originator_ids", dict)()

    def entry(e: Any, seal: bytes | None) -> seals.LogEntry:
        oid = misspelled.get(e.id, e.originator_id)
        return seals.LogEntry(e.id, oid, e.originator_version, e.topic, e.state, seal)

    ev, se = events(), seal_rows()
    e, s = next(ev, None), next(se, None)
    while e is not None or s is not None:
        if s is None or (e is not None and e.id < s[0]):
            yield entry(e, None)
            e = next(ev, None)
        elif e is None or s[0] < e.id:
            yield seals.LogEntry(s[0], None, None, None, None, s[1])
            s = next(se, None)
        else:
            yield entry(e, s[1])
            e, s = next(ev, None), next(se, None)


def verify_log(app: Ledger, anchor: seals.Anchor | None = None, *, upto: int | None = None) -> seals.Verdict:
    """The seal chain verified from its start up to `upto` (default: the log's end)."""
    return seals.verify(log_entries(app, upto), anchor)


def head(app: Ledger) -> seals.Verdict:
    """The verified head: position and seal of the last event (an anchor to write down)."""
    return verify_log(app)


def books_identity(app: Ledger, position: int) -> str:
    """The books a report was made from, named by what they hold rather than where they are: the
    seal of the last event up to the report's position covers every event before it (seals.py).
    The same books opened by another host name or file path give the same words, so a report's
    reproduction there gives the same bytes; a store whose history differs does not. `koa audit
    verify` checks the seal."""
    seal_at = getattr(app.recorder, "seal_at", None)
    found = seal_at(position) if seal_at is not None and position > 0 else None
    if found is None:
        return f"Ereignisprotokoll bis Position {position}, ohne Siegel"
    sealed, seal = found
    return f"Ereignisprotokoll bis Position {sealed}, Siegel {seal.hex()}"


@dataclass(frozen=True, slots=True)
class HistoryLine:
    key: str
    version: int
    event: str
    at: datetime
    who: str
    detail: str


def booking_history(app: Ledger, key: str) -> list[HistoryLine]:
    """Every event of a booking and of its counter-booking, oldest first."""
    lines: list[HistoryLine] = []
    keys = [key]
    original = app.get_booking(key)
    if original.reversal_key:
        keys.append(original.reversal_key)
    if original.reverses_key:
        keys.insert(0, original.reverses_key)
    for k in keys:
        for e in app.booking_history(k):
            name = type(e).__name__
            if name == "Recorded":
                who = e.recorded_by
                detail = (
                    f"{e.kind} {e.amount_cents / 100:.2f} EUR {e.category}, paid {e.payment_date}, "
                    f"service {e.service_from}..{e.service_to}, fiscal {e.fiscal_year} Q{e.quarter} "
                    f"({e.fiscal_rule}), voucher {e.document_ref}"
                    + (f", reverses {e.reverses_key}: {e.reason}" if e.reverses_key else "")
                    + (", needs approval" if e.requires_approval else "")
                )
            elif name == "Approved":
                who, detail = e.approved_by, "approved"
            elif name == "Reversed":
                who, detail = e.reversed_by, f"reversed by {e.reversal_key}: {e.reason}"
            else:
                who, detail = "", name
            lines.append(HistoryLine(k, e.originator_version, name, e.timestamp, who, detail))
    return sorted(lines, key=lambda h: (h.at, h.key, h.version))


def sealed_events(app: Ledger, upto: int | None = None) -> Iterator[SealedEvent]:
    """The log as the auditors' export writes it, up to `upto` (default: the log's end): each
    event with its seal and the one before."""
    prev = ""
    for e in log_entries(app, upto):
        if e.state is None or e.seal is None:
            raise RuntimeError(f"the log is broken at position {e.position}: run `koa audit verify`")
        stored = StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
        recorded_at = app.mapper.to_domain_event(stored).timestamp
        yield SealedEvent(
            position=e.position,
            originator_id=str(e.originator_id),
            originator_version=e.originator_version,
            topic=e.topic,
            recorded_at=recorded_at,
            state=e.state,
            seal=e.seal.hex(),
            prev_seal=prev,
        )
        prev = e.seal.hex()


def transfers(app: Ledger, upto: int | None = None) -> list[Transfer]:
    """Every draw of federal funds and every repayment to the Bund up to log position `upto`
    (default: all), in log order, as the auditors' export writes them (the KoA-VV report's funds
    drawn are made of them)."""
    found = [
        Transfer("draw", e.document_ref, e.federal_title, e.fiscal_year, e.value_date,
                 e.amount_cents, 0, "", e.recorded_by, e.timestamp, position)
        for position, e in app.recorded_at_positions(FundsDraw.Recorded, upto)
    ] + [
        Transfer("repayment", e.document_ref, e.federal_title, e.fiscal_year, e.value_date,
                 e.amount_cents, e.interest_cents, e.reason, e.recorded_by, e.timestamp, position)
        for position, e in app.recorded_at_positions(FundsRepayment.Recorded, upto)
    ]  # fmt: skip
    return sorted(found, key=lambda t: t.notification_id)
