"""The other side of a race, played deterministically: another process's books act right after
the command under test has decided, before it saves."""

from __future__ import annotations

from ledger.bootstrap import open_books


def meanwhile(monkeypatch, settings, owner, name, act) -> list:
    """The other side of a race: `owner.name`, a decision of the command under test, runs
    `act(other)` once right after it decided, `other` being another process's books. Returns the
    arguments of that decision."""
    decide = getattr(owner, name)
    raced: list = []

    def deciding(*args, **kwargs):
        decided = decide(*args, **kwargs)
        if not raced:
            raced.append(args)
            with open_books(settings) as other:
                act(other)
        return decided

    monkeypatch.setattr(owner, name, deciding)
    return raced
