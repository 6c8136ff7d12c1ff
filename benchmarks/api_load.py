"""Benchmark: the HTTP API under load, against a bare GET /health of the same server in the same run.

    .venv/bin/python benchmarks/api_load.py [--clients 50] [--seconds 20] [--baseline-seconds 5]
    .venv/bin/python benchmarks/api_load.py --url http://127.0.0.1:8000 --token CLERK_TOKEN

Without --url it starts `koa serve` on a free loopback port over a fresh PostgreSQL database
`koa_bench_api_<pid>` (dropped at the end, also on error), with a token file of its own. Then:
  1. baseline: N clients call GET /health (no token, no store) as fast as they can: what the server
     and this client machinery manage at all;
  2. load: N clients post bookings (each its own key and Idempotency-Key, below the approval
     threshold) for the given time; bookings/s, latency p50/p99;
  3. meanwhile one probe posts a booking of its own category every half second and then reads the
     split until the booking shows: the lag from POST to the split, p50/p99 (issue 7).
Clients are asyncio tasks, one keep-alive connection each (KeepAlive below; aiohttp for the lag
probe); the server and the clients share the machine's cores, so the ratio to the baseline (same
run, same machine) is the figure that travels.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
from harness import Row, child_env, create_database, database_url, describe_server, drop_database, print_table

from ledger.port_census import connections_by_process

KOA = str(Path(sys.executable).parent / "koa")
PROBE_CATEGORY = "erstausstattung"  # the load books kdu only, so the probe's line counts the probe alone
PROBE_EVERY_S = 0.5


def booking(key: str, category: str = "kdu") -> dict[str, str]:
    return {
        "key": key,
        "kind": "payment",
        "amount": "123,45",
        "category": category,
        "payment_date": "2025-02-27",
        "service_from": "2025-03-01",
        "service_to": "2025-03-31",
        "document_ref": "BENCH-1",
        "cost_centre": "JC-NORD",
        "case_ref": "08221BG0000001" if category == "kdu" else "",
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ---- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bench_server(token: str, workers: int = 1) -> Iterator[tuple[str, str]]:
    """koa serve over a fresh bench database; yields (url, description of the store)."""
    db = f"koa_bench_api_{os.getpid()}"
    create_database(db)
    tmp = Path(tempfile.mkdtemp(prefix="koa-bench-api-"))
    tokens = tmp / "tokens.toml"
    tokens.write_text(f'[[tokens]]\ntoken = "{token}"\nuser = "bench"\nroles = ["clerk", "auditor"]\n')
    tokens.chmod(0o600)
    port = _free_port()
    env = child_env() | {
        "KOA_DATABASE_URL": database_url(db) + "&pool_size=10",
        "KOA_TOKENS_FILE": str(tokens),
        "KOA_ENV": "production",
        "KOA_DATA_DIR": str(tmp / "var"),
    }
    log = (tmp / "server.log").open("wb")
    cmd = [KOA, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"koa serve did not start:\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, describe_server()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        drop_database(db)


# ---- the clients ---------------------------------------------------------------------------------


class KeepAlive:
    """One keep-alive HTTP/1.1 connection for the load's hot loops: each request written as bytes,
    each response read by its Content-Length. The load generator shares the server's two cores,
    and every millisecond of client CPU is one the server does not get: httpx cost ~1.9 ms per
    POST, aiohttp 0.24-0.30 ms, this 0.08-0.09 ms (the "client CPU" rows). Enough HTTP for
    uvicorn's answers to these requests and no more: a response without Content-Length, or
    chunked, stops the benchmark. The lag probe, which reads JSON, keeps aiohttp."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> KeepAlive:
        u = urlsplit(url)
        assert u.scheme == "http" and u.hostname and u.port, url
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        return cls(reader, writer, f"{u.hostname}:{u.port}")

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        """The response's status; its body is read and dropped."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        response = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        start = response.find(b"\r\ncontent-length:")
        if start < 0 or b"\r\ntransfer-encoding:" in response:
            raise RuntimeError(f"{method} {path}: a response this client cannot read: {response[:300]!r}")
        end = response.index(b"\r\n", start + 2)
        await self.reader.readexactly(int(response[start + 17 : end]))
        return int(response[9:12])

    def close(self) -> None:
        self.writer.close()


async def health_rate(url: str, clients: int, seconds: float) -> tuple[int, float, float]:
    """(requests, seconds, this process's CPU seconds) of N clients calling GET /health."""
    done = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        http = await KeepAlive.open(url)
        try:
            while time.perf_counter() < stop:
                status = await http.request("GET", "/health", {})
                if status != 200:
                    raise RuntimeError(f"GET /health answered {status}")
                done += 1
        finally:
            http.close()

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done, time.perf_counter() - t0, time.process_time() - cpu0


async def load(url: str, token: str, clients: int, seconds: float) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[int, int] = {}
    created = 0
    run = f"{os.getpid()}-{int(time.time())}"
    stop = time.perf_counter() + seconds

    async def poster() -> None:
        nonlocal created
        http = await KeepAlive.open(url)
        n = next(numbers)
        try:
            for seq in itertools.count():
                if time.perf_counter() >= stop:
                    return
                key = f"LD-{run}-{n}-{seq}"
                body = json.dumps(booking(key)).encode()
                t = time.perf_counter()
                status = await http.request("POST", "/bookings", headers | {"Idempotency-Key": key}, body)
                latencies.append(time.perf_counter() - t)
                if status == 201:
                    created += 1
                else:
                    errors[status] = errors.get(status, 0) + 1
        finally:
            http.close()

    async def probe(http: aiohttp.ClientSession) -> None:
        for seq in itertools.count(1):
            if time.perf_counter() >= stop:
                return
            key = f"PR-{run}-{seq}"
            async with http.post("/bookings", json=booking(key, PROBE_CATEGORY), headers=headers) as r:
                await r.read()
            if r.status != 201:
                errors[r.status] = errors.get(r.status, 0) + 1
                continue
            posted = time.perf_counter()
            while True:
                async with http.get("/split", params={"year": 2025, "quarter": 1}, headers=headers) as r:
                    split = await r.json()
                counts = [s["booking_count"] for s in split["lines"] if s["category"] == PROBE_CATEGORY]
                if counts and counts[0] >= seq:
                    lags.append(time.perf_counter() - posted)
                    break
            await asyncio.sleep(PROBE_EVERY_S)

    split: list[int] = []

    async def count_connections() -> None:
        await asyncio.sleep(seconds / 2)  # every client has connected by then
        split.extend(sorted(connections_by_process(urlsplit(url).port or 80).values(), reverse=True))

    numbers = itertools.count()
    t0, cpu0 = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(count_connections(), probe(http), *(poster() for _ in range(clients)))
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0,
        "created": created,
        "latencies": latencies,
        "lags": lags,
        "errors": errors,
        "split": split,
    }


def split_text(split: list[int]) -> str:
    """`28/23` for two server processes; what a server on another machine shows: unknown."""
    return "/".join(map(str, split)) if split else "unknown (not on this machine, or no /proc)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes (koa serve --workers)")
    parser.add_argument("--url", help="a running server (default: start one on a fresh PostgreSQL database)")
    parser.add_argument(
        "--token", help="with --url: a token with the roles clerk and auditor (or clerk and any reader)"
    )
    args = parser.parse_args(argv)
    if args.url and not args.token:
        parser.error("--url needs --token")

    def measure(url: str, token: str, where: str) -> int:
        done, base_s, base_cpu_s = asyncio.run(health_rate(url, args.clients, args.baseline_seconds))
        result = asyncio.run(load(url, token, args.clients, args.seconds))
        lat, lags = result["latencies"], result["lags"]
        table = [
            Row.throughput("GET /health (baseline)", done, "requests/s", base_s),
            Row.throughput("POST /bookings", result["created"], "bookings/s", result["seconds"]),
            Row("POST latency p50", percentile(lat, 50) * 1000, "ms", decimals=1),
            Row("POST latency p99", percentile(lat, 99) * 1000, "ms", decimals=1),
            Row("POST -> split lag p50", percentile(lags, 50) * 1000, "ms", decimals=1),
            Row("POST -> split lag p99", percentile(lags, 99) * 1000, "ms", decimals=1),
            Row("client CPU per GET /health", base_cpu_s / max(done, 1) * 1000, "ms", decimals=2),
            Row("client CPU per POST", result["cpu_s"] / max(len(lat), 1) * 1000, "ms", decimals=2),
        ]
        print_table(
            f"API load: {args.clients} clients, {args.seconds:g} s, against {where}",
            done / base_s,
            table,
            label_width=24,
            unit_width=11,
        )
        print(f"({len(lags)} lag probes; responses other than 201: {result['errors'] or 'none'})")
        print(f"(connections per server process, halfway: {split_text(result['split'])})")
        return 1 if result["errors"] or not result["created"] else 0

    if args.url:
        return measure(args.url, args.token, args.url)
    token = os.urandom(24).hex()
    with bench_server(token, args.workers) as (url, where):
        return measure(url, token, f"koa serve on {where}")


if __name__ == "__main__":
    sys.exit(main())
