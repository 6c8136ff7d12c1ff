"""Tamper evidence: every stored event is sealed into a hash chain in log order.

seal(n) = SHA-256(seal(n-1) | position | originator id | version | topic | length | stored bytes)

The recorders (ledger/recorders.py) write each event's seal in the same transaction as the event,
while they hold the write lock of the event table, so the chain has no gaps and no forks. An event
altered, deleted or inserted behind the application's back breaks the chain at a position that
`verify` names. A rewrite of the whole chain from some point on is caught by an anchor: a
(position, seal) pair written down outside the database (`koa audit head`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

GENESIS = bytes(32)
SEAL_BYTES = 32


def seal(
    prev: bytes, position: int, originator_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    assert len(prev) == SEAL_BYTES and position > 0 and version > 0
    h = hashlib.sha256(prev)
    h.update(position.to_bytes(8, "big"))
    h.update(str(originator_id).encode())
    h.update(b"\0")
    h.update(version.to_bytes(8, "big"))
    h.update(topic.encode())
    h.update(b"\0")
    h.update(len(state).to_bytes(8, "big"))
    h.update(state)
    return h.digest()


def sealer(topic: str, version: int) -> Callable[[bytes, int, UUID | str | bytes, bytes], bytes]:
    """seal() for many events of one topic and version (a bulk import): the same bytes hashed,
    with the constant parts encoded once."""
    middle = b"\0" + version.to_bytes(8, "big") + topic.encode() + b"\0"
    sha256 = hashlib.sha256

    def seal_one(prev: bytes, position: int, originator_id: UUID | str | bytes, state: bytes) -> bytes:
        """originator_id may also be its text already encoded (as a bulk insert returns it)."""
        h = sha256(prev)
        h.update(
            position.to_bytes(8, "big")
            + (originator_id if type(originator_id) is bytes else str(originator_id).encode())
            + middle
            + len(state).to_bytes(8, "big")
            + state
        )
        return h.digest()

    return seal_one


def chain(prev: bytes, positions: Iterable[int], events: Iterable) -> list[tuple[int, bytes]]:
    """Seals for newly stored events (StoredEvent-like: originator_id, originator_version, topic, state)."""
    out = []
    for position, e in zip(positions, events, strict=True):
        prev = seal(prev, position, e.originator_id, e.originator_version, e.topic, e.state)
        out.append((position, prev))
    return out


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One position of the log as read back for verification: the event, its seal, or both."""

    position: int
    originator_id: UUID | str | None
    originator_version: int | None
    topic: str | None
    state: bytes | None
    seal: bytes | None


@dataclass(frozen=True, slots=True)
class Anchor:
    position: int
    seal: bytes

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """'POSITION:HEX', as printed by `koa audit head`."""
        try:
            pos, hexseal = text.strip().split(":", 1)
            anchor = cls(int(pos), bytes.fromhex(hexseal))
        except ValueError:
            raise ValueError(f"anchor must be POSITION:SEAL (hex), not {text!r}") from None
        if anchor.position <= 0 or len(anchor.seal) != SEAL_BYTES:
            raise ValueError(f"anchor must be POSITION:SEAL with a 64-digit hex seal, not {text!r}")
        return anchor

    def __str__(self) -> str:
        return f"{self.position}:{self.seal.hex()}"


@dataclass(frozen=True, slots=True)
class Verdict:
    intact: bool
    count: int  # events checked (up to the break, if any)
    position: int  # last good position, or the position where the chain breaks
    head: bytes  # seal of the last good position
    reason: str = ""

    def __str__(self) -> str:
        if self.intact:
            return f"intact: {self.count} events, head {self.position}:{self.head.hex()}"
        return f"BROKEN at position {self.position}: {self.reason}"


def verify(entries: Iterator[LogEntry], anchor: Anchor | None = None) -> Verdict:
    """Recompute the chain over entries in position order; stop at the first break."""
    prev, count, last = GENESIS, 0, 0
    anchor_seen = anchor is None
    for e in entries:
        if e.position <= 0:
            return Verdict(
                False,
                count,
                e.position,
                prev,
                "a position below 1: written behind the application's back",
            )
        if e.position <= last:  # the chain is only defined in log order
            raise ValueError(f"log entries out of order: {e.position} after {last}")
        if e.state is None:
            return Verdict(
                False,
                count,
                e.position,
                prev,
                "the event is missing (deleted), its seal is still there",
            )
        if e.seal is None:
            return Verdict(
                False,
                count,
                e.position,
                prev,
                "the event has no seal (written behind the application's back)",
            )
        assert e.originator_id is not None and e.originator_version is not None and e.topic is not None
        expected = seal(prev, e.position, e.originator_id, e.originator_version, e.topic, e.state)
        if expected != e.seal:
            return Verdict(
                False,
                count,
                e.position,
                prev,
                "the stored event does not match its seal: it was altered, or an event before it was removed",
            )
        if anchor is not None and e.position == anchor.position:
            if e.seal != anchor.seal:
                return Verdict(False, count, e.position, prev, f"the seal differs from the anchor {anchor}")
            anchor_seen = True
        prev, count, last = e.seal, count + 1, e.position
    if not anchor_seen:
        assert anchor is not None
        return Verdict(
            False,
            count,
            anchor.position,
            prev,
            f"the anchored position {anchor.position} is not in the log",
        )
    return Verdict(True, count, last, prev)
