"""A payment run's encoded events, spooled to a temporary file while the run is checked.

The bulk import (ledger/bulk_import.py) checks and encodes every row before it takes the event
table's lock; the encoded events wait here, on disk rather than in memory (a run of a million rows
is ~650 MB of events), and are read back once, in order, under the lock. The file is anonymous
(in the temp directory, TMPDIR): it disappears when closed, and with the process.

A record: the row's index in the run, the booking id (16 bytes and its 36-character text, as the
seal hashes it), the fiscal year and quarter the row was decided for, and the event's state
without its leading timestamp, which is written when the event is stored.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from typing import NamedTuple

_HEAD = struct.Struct("!q16s36sHBi")  # index, id, id text, fiscal year, quarter, length of the tail
READ_BYTES = 1 << 20
TAIL_BYTES_MAX = 64 * 1024  # a booking's state is under 2 KiB; anything larger is a bug


class Spooled(NamedTuple):
    index: int
    oid: bytes
    oid_text: bytes
    year: int
    quarter: int
    tail: bytes


class RunSpool:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="koa-run-")  # noqa: SIM115 (closed by close())
        self._pending = bytearray()
        self.count = 0

    def add(self, index: int, oid: bytes, oid_text: str, year: int, quarter: int, tail: bytes) -> None:
        assert len(oid) == 16 and len(oid_text) == 36 and 0 < len(tail) <= TAIL_BYTES_MAX
        self._pending += _HEAD.pack(index, oid, oid_text.encode(), year, quarter, len(tail))
        self._pending += tail
        self.count += 1
        if len(self._pending) >= READ_BYTES:
            self._file.write(self._pending)
            self._pending = bytearray()

    def __iter__(self) -> Iterator[Spooled]:
        """The records in the order they were added (once writing is done)."""
        f, head, size = self._file, _HEAD.unpack_from, _HEAD.size
        f.write(self._pending)
        self._pending = bytearray()
        f.flush()
        f.seek(0)
        buf, at, seen = b"", 0, 0
        while block := f.read(READ_BYTES):
            buf = buf[at:] + block
            at = 0
            while len(buf) - at >= size:
                index, oid, text, year, quarter, length = head(buf, at)
                end = at + size + length
                if end > len(buf):
                    break
                yield Spooled(index, oid, text, year, quarter, buf[at + size : end])
                at, seen = end, seen + 1
        assert at == len(buf) and seen == self.count, "the spool file was cut short"
        f.seek(0, 2)  # further adds append

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
