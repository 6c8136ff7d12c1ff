"""Chunking of large saves on PostgreSQL (see ledger/pg_recorder.py for why)."""

from __future__ import annotations

from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.recorders import CHUNK_BYTES_MAX, CHUNK_EVENTS_MAX, chunks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, CHUNK_BYTES_MAX // 3), max_size=60), st.integers(0, 3))
def test_chunks_keep_order_and_bounds(sizes, repeat):
    events = [StoredEvent(uuid4(), 1, "t", b"x" * s) for s in sizes * (repeat + 1)]
    parts = list(chunks(events))
    assert [e for p in parts for e in p] == events
    for p in parts:
        assert len(p) <= CHUNK_EVENTS_MAX
        assert len(p) == 1 or sum(len(e.state) + len(e.topic) + 64 for e in p) <= CHUNK_BYTES_MAX


def test_many_small_events_are_cut_by_count():
    events = [StoredEvent(uuid4(), 1, "t", b"") for _ in range(CHUNK_EVENTS_MAX * 2 + 1)]
    assert [len(p) for p in chunks(events)] == [CHUNK_EVENTS_MAX, CHUNK_EVENTS_MAX, 1]
