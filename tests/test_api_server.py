"""The real server: `koa serve` in a subprocess on a free loopback port, spoken to over HTTP with httpx.

End to end on both stores; and 20 concurrent clients on PostgreSQL posting and approving with
repeated idempotency keys and retries: afterwards every booking exists exactly once, every event was
stored once, and the split equals the sum of the bookings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ledger.bootstrap import open_books
from ledger.port_census import connections_by_process, listening_socket_count
from ledger.settings import Settings
from projections.batch import ViewBatch
from projections.split_projection import recorded_row
from tests.api_fixtures import TOKENS, auth, booking_body
from tests.factories import booking

KOA = str(Path(sys.executable).parent / "koa")
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(store_env: dict[str, str], token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOA_", "POSTGRES_", "PERSISTENCE_"))}
    return env | store_env | {"KOA_TOKENS_FILE": str(token_file), "KOA_ENV": "production"}


@contextlib.contextmanager
def running_server(store_env: dict[str, str], token_file: Path, cwd: Path, workers: int = 1) -> Iterator[str]:
    port = _free_port()
    env = _server_env(store_env, token_file)
    log = cwd / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KOA, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"koa serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"koa serve did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: the lifespan closes the store
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_post_approve_reverse_and_download_with_each_role(store, token_file, tmp_path):
    big = booking_body("E2E-1", amount="23.500,00", category="egt.aktivierung", case_ref="")
    with running_server(store, token_file, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.post("/bookings", json=big).status_code == 401
        posted = http.post("/bookings", json=big, headers=auth("clerk", **{"Idempotency-Key": "e2e-1"}))
        assert posted.status_code == 201 and posted.json()["booking"]["state"] == "awaiting_approval"
        assert http.post("/bookings/E2E-1/approve", headers=auth("clerk")).status_code == 403
        approved = http.post("/bookings/E2E-1/approve", headers=auth("approver"))
        assert approved.status_code == 200 and approved.json()["approved_by"] == "schmidt"
        reversed_ = http.post(
            "/bookings/E2E-1/reverse", json={"reason": "Rechnung doppelt"}, headers=auth("clerk2")
        )
        assert reversed_.status_code == 201, reversed_.text
        for role in ("clerk", "approver", "auditor", "admin"):
            wb = http.get("/settlement/koa-vv", params={"year": 2025, "quarter": 1}, headers=auth(role))
            assert wb.status_code == 200 and wb.content[:2] == b"PK"  # an xlsx is a zip
        events = http.get("/audit/bookings/E2E-1/events", headers=auth("auditor")).json()
        assert [e["event"] for e in events] == ["Recorded", "Approved", "Recorded", "Reversed"]


CLIENTS = 20
BOOKINGS = 60
CLERK_TOKENS = ("clerk", "clerk2")
APPROVER_TOKENS = ("approver", "approver2")
RETRYABLE = {"urn:koa-ledger:problem:idempotency-in-flight", "urn:koa-ledger:problem:concurrent-change"}


def _amount_cents(n: int) -> int:
    return 2_000_000 + n * 101 if n % 4 == 0 else 10_000 + n * 37  # every 4th needs approval


def _body(n: int) -> dict:
    cents = _amount_cents(n)
    category = "egt.aktivierung" if n % 4 == 0 else "kdu"
    return booking_body(
        f"CC-{n:03d}",
        amount=f"{cents // 100}.{cents % 100:02d}",
        category=category,
        case_ref="" if n % 4 == 0 else "08221BG0000001",
    )


def _send(http: httpx.Client, statuses: list[int], method: str, path: str, **kwargs) -> httpx.Response:
    """Send, and send again with the same Idempotency-Key while the server says so (or drops us)."""
    for _attempt in range(100):
        try:
            r = http.request(method, path, **kwargs)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        statuses.append(r.status_code)
        if r.status_code == 409 and r.json()["type"] in RETRYABLE or r.status_code == 503:
            time.sleep(float(r.headers.get("retry-after", "0.1")) / 10)
            continue
        return r
    raise AssertionError(f"{method} {path}: no final answer after 100 attempts")


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two processes"])
def test_twenty_clients_post_and_approve_concurrently_and_every_booking_counts_once(
    pg_url, token_file, tmp_path, workers
):
    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(CLIENTS, timeout=60)

    def clerk(i: int, url: str) -> None:
        token = CLERK_TOKENS[i % 2]
        with httpx.Client(base_url=url, timeout=60) as http:
            barrier.wait()
            # Each booking is posted by several clients, each post sent twice (a retry after a lost
            # answer): the same user's same key replays, another user's post is the booking key's repeat.
            for n in [m for m in range(BOOKINGS) if m % 7 in (i % 7, (i + 3) % 7)]:
                h = auth(token, **{"Idempotency-Key": f"post-{n}"})
                for _ in range(2):
                    r = _send(http, statuses, "POST", "/bookings", json=_body(n), headers=h)
                    assert r.status_code in (200, 201), r.text

    def approver(i: int, url: str) -> None:
        token = APPROVER_TOKENS[i % 2]
        with httpx.Client(base_url=url, timeout=60) as http:
            barrier.wait()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                page = _send(
                    http,
                    statuses,
                    "GET",
                    "/bookings",
                    params={"state": "awaiting_approval"},
                    headers=auth(token),
                )
                waiting = [b["key"] for b in page.json()["items"]]
                posted = _send(http, statuses, "GET", "/bookings", params={"limit": 500}, headers=auth(token))
                if not waiting and len(posted.json()["items"]) == BOOKINGS:
                    return
                for key in waiting:
                    h = auth(token, **{"Idempotency-Key": f"approve-{key}"})
                    r = _send(http, statuses, "POST", f"/bookings/{key}/approve", headers=h)
                    # 409: another approver was first (already approved): the four eyes are still two.
                    assert r.status_code in (200, 409), r.text
                time.sleep(0.05)
            raise AssertionError("bookings still awaiting approval after 120 s")

    def run(role, i: int, url: str) -> None:
        try:
            role(i, url)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    store = {"KOA_DATABASE_URL": pg_url, "KOA_DATA_DIR": str(tmp_path / "var")}
    with running_server(store, token_file, tmp_path, workers) as url:
        threads = [
            threading.Thread(target=run, args=(clerk if i < 14 else approver, i, url)) for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert errors == [], errors[:3]
        assert not any(s >= 500 for s in statuses)
        with httpx.Client(base_url=url, timeout=60) as http:
            listed = http.get("/bookings", params={"limit": 500}, headers=auth("auditor")).json()["items"]
            split = http.get("/split", params={"year": 2025}, headers=auth("auditor")).json()
            verdict = http.get("/audit/verify", headers=auth("auditor")).json()
    keys = [b["key"] for b in listed]
    assert sorted(keys) == [f"CC-{n:03d}" for n in range(BOOKINGS)]  # each exactly once
    assert all(b["state"] in ("recorded", "approved") for b in listed)
    assert {b["recorded_by"] for b in listed} <= {TOKENS[t][0] for t in CLERK_TOKENS}
    large = [b for b in listed if b["requires_approval"]]
    assert large and all(b["approved_by"] in {TOKENS[t][0] for t in APPROVER_TOKENS} for b in large)
    # Exactly one Recorded event per booking and one Approved per large one: nothing stored twice.
    assert verdict["intact"] and verdict["events"] == BOOKINGS + len(large)
    assert split["total"]["net_cents"] == sum(_amount_cents(n) for n in range(BOOKINGS))
    assert split["total"]["booking_count"] == BOOKINGS
    assert statuses.count(200) + statuses.count(201) > BOOKINGS  # the repeats were answered, not refused


SPREAD_CONNECTIONS = 40


def _spread_connections(url: str) -> dict[int, int]:
    """Open SPREAD_CONNECTIONS keep-alive connections, one request each; which process holds how many."""
    clients = [httpx.Client(base_url=url, timeout=60) for _ in range(SPREAD_CONNECTIONS)]
    try:
        for http in clients:
            assert http.get("/health").status_code == 200
        return connections_by_process(urlsplit(url).port)
    finally:
        for http in clients:
            http.close()


def test_each_server_process_accepts_on_a_socket_of_its_own_also_after_it_was_replaced(
    pg_url, token_file, tmp_path
):
    """uvicorn's own supervisor shares one socket, and the first process to wake takes every
    connection pending (50 clients split 44/7): here each process listens on a socket of its own."""
    store = {"KOA_DATABASE_URL": pg_url, "KOA_DATA_DIR": str(tmp_path / "var")}
    with running_server(store, token_file, tmp_path, workers=2) as url:
        port = urlsplit(url).port
        assert listening_socket_count(port) == 2
        # A second server on the same port is refused, not let in to share the clients unnoticed.
        second = subprocess.run(
            [KOA, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=_server_env(store, token_file),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        assert second.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in second.stderr, second.stderr
        spread = _spread_connections(url)
        # The kernel hashes each connection's addresses: 40 land about evenly (fewer than 5 on one
        # side: one chance in ~10^6).
        assert len(spread) == 2 and min(spread.values()) >= 5, spread
        killed = next(iter(spread))
        os.kill(killed, signal.SIGKILL)
        # The supervisor replaces it on the same socket: the connections hashed to that socket
        # meanwhile wait in its queue and are answered by the replacement, none refused.
        deadline = time.monotonic() + START_TIMEOUT_S
        while killed in spread and time.monotonic() < deadline:
            spread = _spread_connections(url)
        assert killed not in spread and len(spread) == 2 and min(spread.values()) >= 5, spread
        assert listening_socket_count(port) == 2


def test_a_server_process_that_fails_to_start_stops_the_server(token_file, tmp_path):
    """The parent opens the store and starts; each server process then catches the split view up in
    its lifespan. A view that already holds the row of a booking it has not reached yet (altered
    behind the runner's back) fails that catch-up: the processes fail to start, and `koa serve`
    stops with exit 1 and a message instead of serving without a view or restarting forever."""
    data_dir = tmp_path / "var"
    with open_books(Settings(data_dir=data_dir, _env_file=None)) as books:
        books.ledger.record_booking(booking("TWICE"), recorded_by="clerk")
        (event,) = books.ledger.booking_history("TWICE")
        books.split_view.apply_untracked(ViewBatch([("record", recorded_row(event, 1))]))
    port = _free_port()
    served = subprocess.run(
        [KOA, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=_server_env({"KOA_DATA_DIR": str(data_dir)}, token_file),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S * 2,
    )
    assert served.returncode == 1, served.stderr
    assert "UNIQUE constraint failed: split_bookings.booking_id" in served.stderr, served.stderr
    assert "failed to start, stopping the parent process" in served.stderr, served.stderr
    assert "koa: stopped: a server process failed to start" in served.stderr, served.stderr
    assert listening_socket_count(port) == 0
