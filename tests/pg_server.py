"""A PostgreSQL server for the test suite: the one on 127.0.0.1:5432 when it answers, otherwise a
throwaway server started from the PostgreSQL binaries on this machine (initdb + pg_ctl in a temp
directory, as the `postgres` system user when running as root, since PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

START_TIMEOUT_S = 30


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    origin: str  # "existing" or "throwaway"

    def url(self, dbname: str, schema: str = "public") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}?schema={schema}&connect_timeout=5"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )


def _answers(host: str, port: int, user: str) -> bool:
    try:
        with psycopg.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found on this machine")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_server() -> Iterator[PgServer]:
    bindir = _bindir()
    tmp = Path(tempfile.mkdtemp(prefix="koa-pg-"))
    data, sock, log = tmp / "data", tmp / "sock", tmp / "log"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd: str) -> None:
        res = subprocess.run([*as_user, *cmd], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip() or res.stdout.strip()}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        run(
            str(bindir / "pg_ctl"),
            "start",
            "-w",
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers("127.0.0.1", port, "postgres"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"throwaway PostgreSQL did not answer on port {port}; see {log}")
            time.sleep(0.2)
        yield PgServer("127.0.0.1", port, "postgres", "throwaway")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """KOA_TEST_PG_HOST/PORT/USER name a server; default 127.0.0.1:5432 as postgres.
    KOA_TEST_PG_THROWAWAY=1 forces a throwaway server even when that one answers."""
    host = os.environ.get("KOA_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("KOA_TEST_PG_PORT", "5432"))
    user = os.environ.get("KOA_TEST_PG_USER", "postgres")
    if os.environ.get("KOA_TEST_PG_THROWAWAY") != "1" and _answers(host, port, user):
        yield PgServer(host, port, user, "existing")
        return
    with throwaway_server() as server:
        yield server
