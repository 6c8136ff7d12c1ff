"""Group commit, on SQLite and PostgreSQL: concurrent single bookings share transactions, yet every
writer gets its own outcome — created, an idempotent repeat, or a key conflict — and the log stays
one sealed chain with every booking once."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from domain.errors import KeyConflict
from ledger.audit import verify_log
from ledger.group_commit import GroupCommit
from ledger.recorders import SideRow, with_every_save
from tests.factories import booking

WRITERS = 12


class _SlowFirstSave:
    """The ledger, with its first joint save held back a moment so the other writers queue behind it."""

    def __init__(self, ledger) -> None:
        self.ledger, self.first = ledger, True

    def save(self, *events, **kwargs):
        if self.first:
            self.first = False
            time.sleep(0.3)
        return self.ledger.save(*events, **kwargs)


def _together(fn, n: int) -> list:
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - the outcome is what the test checks
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_bookings_share_transactions_and_each_writer_gets_its_own_outcome(books):
    ledger = books.ledger
    ledger.record_booking(booking("GC-STORED", amount_cents=100), recorded_by="clerk")
    group = GroupCommit(_SlowFirstSave(ledger))
    ledger.group_commit = group
    before = ledger.max_notification_id()

    def write(i: int):
        if i % 4 == 3:  # the same key and content as writer i-1: an idempotent repeat
            return ledger.record_booking(booking(f"GC-{i - 1}", amount_cents=1_000 + i - 1), recorded_by="clerk")
        if i == 9:  # a key already stored with other content: refused, the others unharmed
            return ledger.record_booking(booking("GC-STORED", amount_cents=999), recorded_by="clerk")
        return ledger.record_booking(booking(f"GC-{i}", amount_cents=1_000 + i), recorded_by="clerk")

    results = _together(write, WRITERS)
    assert group.largest_batch > 1  # writers did share a transaction
    assert isinstance(results[9], KeyConflict)
    created = {r.booking.key for r in results if not isinstance(r, Exception) and r.created}
    repeats = [r for r in results if not isinstance(r, Exception) and not r.created]
    firsts = {f"GC-{i}" for i in range(WRITERS) if i % 4 != 3 and i != 9}
    assert created == firsts  # each distinct key created exactly once
    assert len(created) + len(repeats) == WRITERS - 1
    assert all(r.booking.amount_cents == 1_000 + int(r.booking.key[3:]) for r in repeats)
    for key in firsts:
        assert ledger.get_booking(key).amount_cents == 1_000 + int(key[3:])
    # Every booking's one Recorded event, nothing else, and the seal chain intact.
    new = ledger.recorder.select_notifications(start=before, limit=100, inclusive_of_start=False)
    assert len(new) == len(firsts)  # (ids may have gaps: a failed joint save consumed some on PostgreSQL)
    assert verify_log(ledger).intact


def test_a_joint_save_that_fails_saves_each_writer_on_its_own(books):
    """Two writers race for one key inside a batch: the joint save fails on the store's key, then
    each is saved alone — one wins, the other sees the stored booking and gets it back as a repeat."""
    ledger = books.ledger
    ledger.group_commit = GroupCommit(_SlowFirstSave(ledger))
    same = booking("GC-SAME", amount_cents=4_200)

    def write(i: int):
        if i == 0:
            return ledger.record_booking(booking("GC-LEAD", amount_cents=1), recorded_by="clerk")
        if i in (1, 2):
            return ledger.record_booking(same, recorded_by="clerk")
        return ledger.record_booking(replace(same, key=f"GC-OTHER-{i}"), recorded_by="clerk")

    results = _together(write, 6)
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(r.created for r in results[1:3]) == [False, True]
    assert all(r.created for r in results[3:])
    assert ledger.get_booking("GC-SAME").amount_cents == 4_200
    assert verify_log(ledger).intact


@pytest.mark.parametrize("writers", [1, 3])
def test_without_concurrency_a_writer_leads_its_own_save(books, writers):
    ledger = books.ledger
    ledger.group_commit = GroupCommit(ledger)
    for i in range(writers):
        assert ledger.record_booking(booking(f"GC-SOLO-{i}"), recorded_by="clerk").created
    assert ledger.group_commit.largest_batch == 1


def test_a_leaders_rows_for_every_save_go_with_its_own_events_only(books):
    """The API marks its idempotency claim in the transaction of the command's events
    (with_every_save). A writer that leads a joint save also saves the others' events, in its own
    thread: its rows must not go with theirs. Here the leader's booking is a repeat of a stored
    key (its save fails, its next attempt stores nothing), the others' are new: no row of the
    leader may be stored, one per other writer is."""
    ledger = books.ledger
    rec = ledger.recorder
    postgres = hasattr(rec.datastore, "schema")
    table = f'"{rec.datastore.schema}".gc_marks' if postgres else "gc_marks"
    with rec.datastore.transaction(commit=True) as c:
        c.execute(f"CREATE TABLE {table} (who text NOT NULL)")
    insert = f"INSERT INTO {table} (who) VALUES ({'%s' if postgres else '?'})"
    stored = booking("GC-MARK-STORED", amount_cents=100)
    ledger.record_booking(stored, recorded_by="clerk")
    group = GroupCommit(_SlowFirstSave(ledger))  # the first writer leads, the others queue
    ledger.group_commit = group

    def write(i: int):
        if i:
            time.sleep(0.05)  # writer 0 is the leader
        with with_every_save(SideRow(insert, (f"w{i}",))):
            c = stored if i == 0 else booking(f"GC-MARK-{i}", amount_cents=100 + i)
            return ledger.record_booking(c, recorded_by="clerk")

    results = _together(write, 4)
    assert not any(isinstance(r, Exception) for r in results), results
    assert group.largest_batch > 1
    assert not results[0].created and all(r.created for r in results[1:])
    with rec.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT who FROM {table}")
        marks = sorted(r["who"] if postgres else r[0] for r in c.fetchall())
    assert marks == ["w1", "w2", "w3"]
