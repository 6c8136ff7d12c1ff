"""Retry-safe POSTs: an Idempotency-Key remembers the first response, per user, in the ledger's database.

A request first claims its key by inserting a pending row; the database's primary key decides which
of two concurrent requests with the same key runs (on PostgreSQL the second insert waits for the
first's commit, on SQLite for the write lock). The transaction that stores the command's events
marks the claim as carried out ("committed"), then the response is stored ("done"); a repeat with
the same body gets that response again, with another body 409, and while the first still runs 409
with Retry-After. Transient failures (a concurrent change, an unreachable store) are not
remembered, so the client's retry with the same key runs again. A claim whose request died is
taken over once stale, unless it is marked carried out: then the change is not made twice, and
the retry learns that its answer was lost (409).

Bookings, approvals and reversals skip the claim: their answer is stored with their events
(Idempotency.run_with_events).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from api.auth import Caller, authenticated
from api.problems import MEDIA_TYPE, ApiProblem, problem_for, respond
from ledger.bootstrap import Books, postgres_ddl_guard
from ledger.recorders import SideRow, SideRowConflict, with_every_save

KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as in the IETF draft's examples
PENDING_STALE_MS = 15 * 60 * 1000  # a claim this old belongs to a request that died: take it over
TABLE = "api_idempotency"
KEYS_PER_QUERY_MAX = 500  # bound parameters of keys_stored, well below SQLite's limit
log = logging.getLogger("koa.api")


@dataclass(frozen=True)
class Claim:
    created_ms: int  # tells this claim from a later one on the same key (after a take-over)


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    state: str  # "pending", "committed" (its events are stored, its answer not yet) or "done"
    status: int | None
    body: str | None
    headers: dict[str, str]
    created_ms: int


class IdempotencyStore:
    """The table of remembered responses, next to the event store (same database and schema)."""

    def __init__(self, books: Books, *, ttl_hours: int) -> None:
        recorder: Any = books.ledger.recorder
        self.datastore = recorder.datastore
        self.postgres = books.env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"
        self.table = f'"{self.datastore.schema}".{TABLE}' if self.postgres else TABLE
        self.ttl_ms = ttl_hours * 3600 * 1000
        with postgres_ddl_guard(books.env), self._txn() as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "owner text NOT NULL, idem_key text NOT NULL, fingerprint text NOT NULL, "
                "state text NOT NULL, status integer, body text, headers text, created_ms bigint NOT NULL, "
                "PRIMARY KEY (owner, idem_key))"
            )

    def _txn(self):
        return self.datastore.transaction(commit=True)

    def _q(self, sql: str) -> str:
        return sql if self.postgres else sql.replace("%s", "?")

    def claim(self, owner: str, key: str, fingerprint: str) -> Claim | Stored:
        """A Claim: the caller holds the key now and must complete() or release() it. Otherwise the
        stored row (the caller compares fingerprints and states)."""
        now = _now_ms()
        for _ in range(3):
            with self._txn() as c:
                c.execute(
                    self._q(
                        f"DELETE FROM {self.table} WHERE owner = %s AND idem_key = %s AND created_ms < %s"
                    ),
                    (owner, key, now - self.ttl_ms),
                )
                c.execute(
                    self._q(
                        f"INSERT INTO {self.table} (owner, idem_key, fingerprint, state, created_ms) "
                        "VALUES (%s, %s, %s, 'pending', %s) ON CONFLICT (owner, idem_key) DO NOTHING "
                        "RETURNING created_ms"
                    ),
                    (owner, key, fingerprint, now),
                )
                if c.fetchone() is not None:
                    return Claim(now)
                stored = self._select(c, owner, key)
            if stored is None:
                continue  # released between our insert and select: try again
            if stored.state == "pending" and _stale(stored, now):
                if self._take_over(owner, key, fingerprint, stored.created_ms, now):
                    return Claim(now)
                continue
            return stored
        raise ApiProblem(409, "idempotency-busy", "Key busy", "the key keeps changing hands; retry later")

    def _take_over(self, owner: str, key: str, fingerprint: str, seen_ms: int, now: int) -> bool:
        with self._txn() as c:
            c.execute(
                self._q(
                    f"UPDATE {self.table} SET created_ms = %s, fingerprint = %s WHERE owner = %s "
                    "AND idem_key = %s AND state = 'pending' AND created_ms = %s RETURNING created_ms"
                ),
                (now, fingerprint, owner, key, seen_ms),
            )
            return c.fetchone() is not None

    def committed_row(self, owner: str, key: str, claim: Claim) -> SideRow:
        """Marks the claim as carried out, written with the command's events (Ledger.save): from
        then on the claim is never taken over, even when its answer is never stored."""
        return SideRow(
            self._q(
                f"UPDATE {self.table} SET state = 'committed' WHERE owner = %s AND idem_key = %s "
                "AND created_ms = %s AND state = 'pending'"
            ),
            (owner, key, claim.created_ms),
        )

    def complete(self, owner: str, key: str, status: int, body: str, headers: dict[str, str]) -> None:
        with self._txn() as c:
            c.execute(
                self._q(
                    f"UPDATE {self.table} SET state = 'done', status = %s, body = %s, headers = %s "
                    "WHERE owner = %s AND idem_key = %s"
                ),
                (status, body, json.dumps(headers), owner, key),
            )

    def lookup(self, owner: str, key: str) -> Stored | None:
        """The row of a key, if any (an expired one is dropped first)."""
        with self._txn() as c:
            stored = self._select(c, owner, key)
        if stored is None or stored.created_ms >= _now_ms() - self.ttl_ms:
            return stored
        with self._txn() as c:
            c.execute(
                self._q(f"DELETE FROM {self.table} WHERE owner = %s AND idem_key = %s AND created_ms = %s"),
                (owner, key, stored.created_ms),
            )
        return None

    def keys_stored(self, owner: str, keys: Sequence[str]) -> set[str]:
        """Which of an owner's keys have a row (pending, committed, done or expired: each of those
        is for `lookup` and the request's own path to judge). One query for a batch of requests."""
        assert len(keys) <= KEYS_PER_QUERY_MAX
        if not keys:
            return set()
        if self.postgres:
            # One statement needs no transaction: BEGIN and ROLLBACK would be two more round trips
            # for the booking writer, which waits on each (api/booking_writer.py).
            with self.datastore.get_connection() as conn:
                rows = conn.execute(
                    f"SELECT idem_key FROM {self.table} WHERE owner = %s AND idem_key = ANY(%s)",
                    (owner, list(keys)),
                ).fetchall()
            return {row["idem_key"] for row in rows}
        marks = ", ".join(["?"] * len(keys))
        with self._txn() as c:
            c.execute(
                f"SELECT idem_key FROM {self.table} WHERE owner = ? AND idem_key IN ({marks})", (owner, *keys)
            )
            return {row["idem_key"] for row in c.fetchall()}

    def _select(self, c: Any, owner: str, key: str) -> Stored | None:
        c.execute(
            self._q(
                f"SELECT fingerprint, state, status, body, headers, created_ms FROM {self.table} "
                "WHERE owner = %s AND idem_key = %s"
            ),
            (owner, key),
        )
        row = c.fetchone()
        if row is None:
            return None
        return Stored(
            row["fingerprint"],
            row["state"],
            row["status"],
            row["body"],
            json.loads(row["headers"] or "{}"),
            int(row["created_ms"]),
        )

    def done_row(
        self, owner: str, key: str, fingerprint: str, status: int, body: str, headers: dict[str, str]
    ) -> SideRow:
        """The remembered answer as a row to be written in the transaction of the command's events."""
        return SideRow(
            self._q(
                f"INSERT INTO {self.table} (owner, idem_key, fingerprint, state, status, body, headers, "
                "created_ms) VALUES (%s, %s, %s, 'done', %s, %s, %s, %s)"
            ),
            (owner, key, fingerprint, status, body, json.dumps(headers), _now_ms()),
        )

    def put_done(
        self, owner: str, key: str, fingerprint: str, status: int, body: str, headers: dict[str, str]
    ) -> bool:
        """Remember an answer on its own (a command that stored no events); False if the key was
        taken meanwhile."""
        row = self.done_row(owner, key, fingerprint, status, body, headers)
        with self._txn() as c:
            c.execute(
                row.sql.rstrip() + " ON CONFLICT (owner, idem_key) DO NOTHING RETURNING created_ms",
                row.params,
            )
            return c.fetchone() is not None

    def release(self, owner: str, key: str) -> None:
        with self._txn() as c:
            c.execute(
                self._q(f"DELETE FROM {self.table} WHERE owner = %s AND idem_key = %s AND state = 'pending'"),
                (owner, key),
            )

    def purge(self) -> None:
        """Forget keys older than the retention (run at startup; claims also drop their own)."""
        with self._txn() as c:
            c.execute(self._q(f"DELETE FROM {self.table} WHERE created_ms < %s"), (_now_ms() - self.ttl_ms,))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stale(stored: Stored, now_ms: int) -> bool:
    return now_ms - stored.created_ms > PENDING_STALE_MS


# ---- what a POST endpoint uses --------------------------------------------------------------

Outcome = tuple[int, BaseModel, dict[str, str]]  # status, response body, extra headers (Location)


@dataclass
class Idempotency:
    store: IdempotencyStore
    owner: str
    key: str | None
    route: str  # method and path: the same key on another endpoint is another request

    def run(self, request: BaseModel | bytes, action: Callable[[], Outcome]) -> Response:
        """Run `action` once per key; answer repeats from the stored response."""
        if self.key is None:
            try:
                status, model, headers = action()
            except Exception as e:  # noqa: BLE001 - every failure becomes a problem response
                status, body, headers, _ = problem_for(e)
                return respond(status, body, headers)
            return _json_response(status, model, headers)
        fingerprint = self._fingerprint(request)
        claim = self.store.claim(self.owner, self.key, fingerprint)
        if isinstance(claim, Stored):
            return self._answer_repeat(claim, fingerprint)
        try:
            with with_every_save(self.store.committed_row(self.owner, self.key, claim)):
                status, model, headers = action()
            body, media_type = model.model_dump_json(), "application/json"
        except Exception as e:  # noqa: BLE001 - decided below whether the answer may be replayed
            status, problem_body, headers, replayable = problem_for(e)
            if not replayable:
                self._release_quietly()
                return respond(status, problem_body, headers)
            body, media_type = json.dumps(problem_body), MEDIA_TYPE
        except BaseException:
            self._release_quietly()
            raise
        headers = {**headers, "content-type": media_type}
        try:
            self.store.complete(self.owner, self.key, status, body, headers)
        except Exception:  # noqa: BLE001 - the work is done; the key stays pending until it is stale
            log.exception("could not store the response for an idempotency key")
        return Response(body, status_code=status, headers=headers)

    def run_with_events(
        self,
        request: BaseModel | bytes,
        action: Callable[[Callable[[Outcome], tuple[SideRow, ...]]], tuple[Outcome, bool]],
    ) -> Response:
        """run() for a command whose events can carry the answer: the answer is written in the
        same transaction as the events (stored if and only if they are), so there is no claim
        before and no second write after. `action(remember)` passes `remember(outcome)` (the rows
        to store with its events) to the Ledger and returns (outcome, whether they were stored).
        Two concurrent requests with one key: the database's primary key lets one transaction
        through; the other stores nothing and answers with the first's response."""
        if self.key is None:
            return self.run(request, lambda: action(lambda outcome: ())[0])
        key, fingerprint = self.key, self._fingerprint(request)
        stored = self.store.lookup(self.owner, key)
        if stored is not None:
            return self._answer_repeat(stored, fingerprint)

        remembered: list[tuple[int, str, dict[str, str]]] = []  # the answer of the latest attempt

        def remember(outcome: Outcome) -> tuple[SideRow, ...]:
            remembered[:] = [_json_answer(outcome)]
            return (self.store.done_row(self.owner, key, fingerprint, *remembered[0]),)

        try:
            (status, model, headers), stored_with_events = action(remember)
            if stored_with_events:  # answer with exactly the bytes stored for a repeat
                status, body, headers = remembered[-1]
            else:
                body, headers = model.model_dump_json(), _json_headers(headers)
        except SideRowConflict:
            return self._answer_taken(fingerprint)
        except Exception as e:  # noqa: BLE001 - decided below whether the answer may be replayed
            status, problem_body, headers, replayable = problem_for(e)
            if not replayable:
                return respond(status, problem_body, headers)
            body, stored_with_events = json.dumps(problem_body), False
            headers = {**headers, "content-type": MEDIA_TYPE}
        if not stored_with_events:
            try:
                if not self.store.put_done(self.owner, key, fingerprint, status, body, headers):
                    return self._answer_taken(fingerprint)
            except Exception:  # noqa: BLE001 - the answer stands; a retry runs again (no events here)
                log.exception("could not store the response for an idempotency key")
        return Response(body, status_code=status, headers=headers)

    def answer_with_events(
        self, request: BaseModel, outcome: Outcome
    ) -> tuple[tuple[SideRow, ...], Response]:
        """What run_with_events answers when the first attempt stores its events: the rows that
        remember the answer (to be saved with the events; none without a key) and the response,
        the bytes a repeat gets. For callers that save the events themselves (api/booking_writer.py)
        and only when no answer was stored for the key before (IdempotencyStore.keys_stored)."""
        status, body, headers = _json_answer(outcome)
        rows: tuple[SideRow, ...] = ()
        if self.key is not None:
            fingerprint = self._fingerprint(request)
            rows = (self.store.done_row(self.owner, self.key, fingerprint, status, body, headers),)
        return rows, Response(body, status_code=status, headers=headers)

    def _answer_taken(self, fingerprint: str) -> Response:
        """Another request with this key stored its answer first: that answer, or why not."""
        stored = self.store.lookup(self.owner, self.key or "")
        if stored is None:  # dropped again meanwhile (expired): let the client retry
            raise ApiProblem(409, "idempotency-busy", "Key busy", "the key keeps changing hands; retry later")
        return self._answer_repeat(stored, fingerprint)

    def _fingerprint(self, request: BaseModel | bytes) -> str:
        h = hashlib.sha256(self.route.encode())
        if isinstance(request, BaseModel):
            h.update(json.dumps(request.model_dump(mode="json"), sort_keys=True).encode())
        else:
            h.update(request)
        return h.hexdigest()

    def _answer_repeat(self, stored: Stored, fingerprint: str) -> Response:
        if stored.fingerprint != fingerprint:
            raise ApiProblem(
                409,
                "idempotency-mismatch",
                "Idempotency key reused",
                f"Idempotency-Key {self.key!r} was first used with another request; use a new key",
            )
        if stored.state == "committed" and _stale(stored, _now_ms()):
            raise ApiProblem(
                409,
                "idempotency-answer-lost",
                "Request carried out, answer lost",
                f"the request with Idempotency-Key {self.key!r} was carried out, but its response was "
                "not kept; read the resource's current state instead of repeating the request",
            )
        if stored.state != "done":
            raise ApiProblem(
                409,
                "idempotency-in-flight",
                "Request in progress",
                f"a request with Idempotency-Key {self.key!r} is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        assert stored.status is not None and stored.body is not None
        return Response(
            stored.body, status_code=stored.status, headers={**stored.headers, "Idempotent-Replayed": "true"}
        )

    def _release_quietly(self) -> None:
        assert self.key is not None
        try:
            self.store.release(self.owner, self.key)
        except Exception:  # noqa: BLE001 - the claim then goes stale and is taken over
            log.exception("could not release an idempotency key")


def _json_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "content-type": "application/json"}


def _json_answer(outcome: Outcome) -> tuple[int, str, dict[str, str]]:
    """Status, body and headers of an answer, as they are sent and remembered for a repeat."""
    status, model, headers = outcome
    return status, model.model_dump_json(), _json_headers(headers)


def _json_response(status: int, model: BaseModel, headers: dict[str, str]) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


async def idempotency(
    request: Request,
    caller: Annotated[Caller, Depends(authenticated)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="any unique string (e.g. a UUID); the same key and body again return the first response",
            examples=["5f0c5b0e-0d4e-4a53-9a0a-1e6f1b2c3d4e"],
        ),
    ] = None,
) -> Idempotency:
    idem = _idempotency(request, caller, idempotency_key)
    if idem is None:
        raise ApiProblem(
            422,
            "validation",
            "Invalid input",
            "Idempotency-Key: 1-255 visible ASCII characters",
            errors=[
                {"field": "Idempotency-Key", "reason": "1-255 visible ASCII characters", "location": "header"}
            ],
        )
    return idem


def valid_idempotency(request: Request, caller: Caller) -> Idempotency | None:
    """What `idempotency` resolves to, for a presolver (api.presolve); None where the declared
    path would refuse the header (it reports the error)."""
    return _idempotency(request, caller, request.headers.get("idempotency-key"))


def _idempotency(request: Request, caller: Caller, key: str | None) -> Idempotency | None:
    """None for a malformed key."""
    if key is not None and not KEY_RE.fullmatch(key):
        return None
    return Idempotency(
        request.app.state.services.idempotency, caller.user, key, f"{request.method} {request.url.path}"
    )


Idem = Annotated[Idempotency, Depends(idempotency)]
