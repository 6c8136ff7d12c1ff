"""The spool of a payment run's encoded events gives back exactly what went in, in order."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.run_spool as run_spool
from ledger.run_spool import RunSpool

_record = st.tuples(
    st.integers(0, 2**62),
    st.integers(1, 9999),
    st.integers(0, 4),
    st.binary(min_size=1, max_size=3000),
)


@settings(max_examples=50, deadline=None)
@given(records=st.lists(_record, max_size=60), read_bytes=st.sampled_from([64, 1000, 1 << 20]))
def test_what_is_spooled_comes_back_in_order(records, read_bytes):
    ids = [uuid4() for _ in records]
    old = run_spool.READ_BYTES
    run_spool.READ_BYTES = read_bytes  # records cross block boundaries both when written and read
    try:
        with RunSpool() as spool:
            for (index, year, quarter, tail), oid in zip(records, ids, strict=True):
                spool.add(index, oid.bytes, str(oid), year, quarter, tail)
            back = list(spool)
    finally:
        run_spool.READ_BYTES = old
    assert spool.count == len(records)
    assert [(r.index, r.year, r.quarter, r.tail) for r in back] == records
    assert [r.oid for r in back] == [oid.bytes for oid in ids]
    assert [r.oid_text.decode() for r in back] == [str(oid) for oid in ids]


def test_a_record_out_of_bounds_is_refused():
    with RunSpool() as spool, pytest.raises(AssertionError):
        spool.add(0, uuid4().bytes, "not a uuid", 2025, 1, b"{}")
