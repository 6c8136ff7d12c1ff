"""Translate koa settings into the eventsourcing library's environment.

Default: the library's SQLite module, one file under the data directory. PostgreSQL when
KOA_DATABASE_URL is set, or when the library's own PERSISTENCE_MODULE/POSTGRES_* variables say so.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.settings import Settings

PG_RECORDER_TOPIC = "ledger.recorders:SealingPostgresApplicationRecorder"
SQLITE_RECORDER_TOPIC = "ledger.recorders:SealingSQLiteApplicationRecorder"
SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def store_env(settings: Settings) -> dict[str, str]:
    if settings.database_url:
        return postgres_env(settings.database_url)
    if os.environ.get("PERSISTENCE_MODULE", "").strip() == "eventsourcing.postgres":
        # The library's own variables: taken over explicitly, so the schema guard sees them too.
        env = {k: v for k, v in os.environ.items() if k.startswith("POSTGRES_")}
        missing = [k for k in ("POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_USER") if not env.get(k)]
        if missing:
            raise ValueError(f"PERSISTENCE_MODULE=eventsourcing.postgres needs {', '.join(missing)}")
        schema = env.get("POSTGRES_SCHEMA", "public")
        if not SCHEMA_RE.match(schema):
            raise ValueError(f"POSTGRES_SCHEMA: {schema!r} is not a plain lower-case name")
        env.setdefault("POSTGRES_PASSWORD", "")
        env.setdefault("POSTGRES_PORT", "5432")
        return env | {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": PG_RECORDER_TOPIC,
        }
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"KOA_DATA_DIR: cannot create {settings.data_dir}: {e.strerror}") from None
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        # Absolute: it is named in exports, whose bytes must not depend on how the path was spelled.
        "SQLITE_DBNAME": str((settings.data_dir / "koa.sqlite").resolve()),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER_TOPIC,
    }


def postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if not parts.hostname or not parts.path.strip("/"):
        raise ValueError("KOA_DATABASE_URL needs a host and a database name")
    query = parse_qs(parts.query)
    schema = query.get("schema", ["public"])[0]
    if not SCHEMA_RE.match(schema):
        raise ValueError(f"KOA_DATABASE_URL: schema {schema!r} is not a plain lower-case name")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", ["10"])[0],
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["2"])[0],
        "POSTGRES_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": PG_RECORDER_TOPIC,
    }


def describe(env: dict[str, str]) -> str:
    """Where the store is, for messages (never the password)."""
    module = env.get("PERSISTENCE_MODULE") or os.environ.get("PERSISTENCE_MODULE", "")
    if module == "eventsourcing.sqlite":
        return f"SQLite {env['SQLITE_DBNAME']}"
    get = lambda k: env.get(k) or os.environ.get(k, "")  # noqa: E731
    return f"PostgreSQL {get('POSTGRES_HOST')}:{get('POSTGRES_PORT') or 5432}/{get('POSTGRES_DBNAME')}"
